/**
 * The environment every tool of the benchmark runs in: this one, without NODE_EXTRA_CA_CERTS. Where it
 * is set (this project's machines set it to the system bundle, for a proxy), every Node process parses
 * those certificates at start-up, before any of its code runs: about 90 ms of CPU here, paid by fanout
 * and the ssh2 floor alike, for TLS that neither uses. The start-up measurement reports what it costs.
 */
export const ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_EXTRA_CA_CERTS'))
