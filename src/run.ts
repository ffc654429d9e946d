import type { ChalkInstance } from 'chalk'
import type { Options } from './args.js'
import { FanoutError } from './errors.js'
import { makePrefixes } from './output.js'
import { describeCommand, parseProbe, planLaunch, type NodeFacts, type PlanNode } from './plan.js'
import { jobCommand, probeCommand, readProbeLines, routeCommand } from './remote.js'
import { resolveHostList, type SourceIo } from './hostsource.js'
import { resolveNodes, type NodeSpec } from './nodes.js'
import { formatSummary, jobExitCode } from './summary.js'
import { Supervisor, type Job, type StopReason } from './supervisor.js'
import { capture, type Transport } from './transport/types.js'
import type { Ui } from './ui.js'

export interface RunIo extends SourceIo {
  stdout: NodeJS.WriteStream
  stderr: NodeJS.WriteStream
  env: NodeJS.ProcessEnv
  chalk: ChalkInstance
  ui: Ui
  /** Subscribes to the user's stop requests (Ctrl-C, SIGTERM, SIGHUP); returns the unsubscribe. */
  onStop: (handler: (reason: StopReason) => void) => () => void
}

const label = (n: NodeSpec): string => `n${n.rank} ${n.entry.host}`
const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/** Fails the launch with every node's error listed, after closing what was opened. */
function failPhase(results: PromiseSettledResult<unknown>[], nodes: NodeSpec[], transports: Transport[]): void {
  const errors = results.flatMap((r, i) => (r.status === 'rejected' ? [{ node: nodes[i], error: r.reason as unknown }] : []))
  if (errors.length === 0) return
  for (const t of transports) t.close()
  const first = errors[0]?.error
  const text = errors.map(({ node, error }) => `${node ? `node ${node.rank}: ` : ''}${message(error)}`).join('\n')
  throw new FanoutError(text, first instanceof FanoutError ? first.code : 'CONNECT')
}

async function connectNodes(nodes: NodeSpec[], options: Options, io: RunIo): Promise<Transport[]> {
  const { localTransport } = await import('./transport/local.js')
  const hasSsh = nodes.some((n) => n.ssh)
  const ssh = hasSsh ? await import('./transport/ssh.js') : undefined
  const { limitHandshakes } = await import('./connect.js')
  const sshOptions = { connectTimeoutS: options.connectTimeoutS, keepaliveS: options.keepaliveS, keepaliveCountMax: 3, agentSocket: io.env.SSH_AUTH_SOCK }
  const connect = limitHandshakes((n: NodeSpec) => (n.ssh && ssh ? ssh.connectSsh(n.ssh, sshOptions) : Promise.resolve(localTransport())), {
    maxInFlight: options.maxHandshakes,
    retries: 4,
    backoffMs: 200,
    isRetryable: (e) => ssh?.isDroppedHandshake(e) ?? false,
  })
  const results = await io.ui.phase('connect', nodes.map((n) => ({ label: label(n), run: () => connect(n) })))
  const transports = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
  failPhase(results, nodes, transports)
  return transports
}

async function probeNodes(nodes: NodeSpec[], transports: Transport[], options: Options, io: RunIo): Promise<PlanNode[]> {
  const probes = await io.ui.phase('probe', nodes.map((n, i) => ({
    label: label(n),
    run: async (): Promise<NodeFacts> => {
      const t = transports[i] as Transport
      const { stdout } = await capture(t, probeCommand(options.python, i === 0 && options.masterPort === undefined))
      const facts = parseProbe(stdout, t.kind === 'ssh')
      if (!facts.python) throw new FanoutError(`${n.entry.host}: ${options.python} not found (pass --python with the interpreter that has torch)`, 'PROBE')
      if (facts.torch === false) throw new FanoutError(`${n.entry.host}: torch cannot be imported by ${facts.python} (pass --python with the interpreter that has torch)`, 'PROBE')
      return facts
    },
  })))
  failPhase(probes, nodes, transports)
  const facts = probes.map((r) => (r as PromiseFulfilledResult<NodeFacts>).value)
  const { masterAddress } = await import('./plan.js')
  const master = masterAddress(facts, options.masterAddr)
  const routes = await io.ui.phase('route', nodes.map((n, i) => ({
    label: label(n),
    run: async () => readProbeLines((await capture(transports[i] as Transport, routeCommand(master))).stdout).get('iface') || undefined,
  })))
  return nodes.map((n, i): PlanNode => {
    const route = routes[i]
    const iface = route?.status === 'fulfilled' ? route.value : undefined
    if (!iface) io.ui.warn(`node ${n.rank} (${n.entry.host}): no interface routes to ${master}; GLOO/NCCL_SOCKET_IFNAME left unset`)
    const node: PlanNode = { rank: n.rank, host: n.entry.host, facts: facts[i] as NodeFacts }
    if (n.entry.slots !== undefined) node.slots = n.entry.slots
    if (n.entry.gpus !== undefined) node.gpus = n.entry.gpus
    if (iface) node.iface = iface
    return node
  })
}

/** The whole pipeline: hostfile → nodes → connect → probe → plan → launch → supervise → summary. */
export async function runJob(options: Options, io: RunIo): Promise<number> {
  const { hosts, warnings } = await resolveHostList(options, io)
  for (const w of warnings) io.ui.warn(w)
  const flags = { user: options.user, port: options.sshPort, identity: options.identity, configFile: options.sshConfig }
  const nodes = await resolveNodes(hosts, flags)
  const transports = await connectNodes(nodes, options, io)
  try {
    const planNodes = await probeNodes(nodes, transports, options, io)
    const plan = planLaunch(planNodes, { ...options, cwd: options.chdir })
    const procs = plan.nodes.map((n) => n.nproc)
    io.ui.info(`master ${plan.masterAddr}:${plan.masterPort} (node 0, ${nodes[0]?.entry.host}); ${nodes.length} node(s), ${procs.reduce((a, b) => a + b, 0)} process(es): ${procs.join(' + ')}`)
    if (options.dryRun) {
      for (const n of plan.nodes) io.stdout.write(`# node ${n.rank} (${n.host})\n${describeCommand(n)}\n`)
      return 0
    }
    const prefixes = makePrefixes(nodes.map((n) => ({ rank: n.rank, host: n.entry.host })), io.chalk)
    const started = await io.ui.phase('launch', plan.nodes.map((n, i) => ({
      label: label(nodes[i] as NodeSpec),
      run: () => (transports[i] as Transport).exec(jobCommand({ cwd: n.cwd, env: n.env, argv: n.argv, heartbeatTimeoutS: options.heartbeatTimeoutS, graceS: Math.ceil(options.graceS) })),
    })))
    const jobs: Job[] = started.flatMap((r, i) => r.status === 'fulfilled'
      ? [{ rank: i, host: nodes[i]?.entry.host ?? '', proc: r.value, transport: transports[i] as Transport, prefix: prefixes.get(i) ?? { out: Buffer.alloc(0), err: Buffer.alloc(0) } }]
      : [])
    const log = (m: string): void => io.ui.info(m)
    const supervisor = new Supervisor(jobs, {
      stdout: io.stdout,
      stderr: io.stderr,
      heartbeatMs: 1000,
      graceMs: options.graceS * 1000,
      killOnFailure: options.killOnFailure,
      timeoutMs: options.timeoutS === undefined ? undefined : options.timeoutS * 1000,
      log,
    })
    // Nothing is half-launched: if a node could not start, the ones that did are stopped at once.
    if (jobs.length < nodes.length) supervisor.abort(`${nodes.length - jobs.length} node(s) could not start the job`)
    const unsubscribe = io.onStop((reason) => supervisor.interrupt(reason))
    const results = await supervisor.results.finally(unsubscribe)
    failPhase(started, nodes, [])
    io.stderr.write(formatSummary(results, supervisor.firstFailure, io.chalk))
    return jobExitCode(results, supervisor.firstFailure, supervisor.stopReason)
  } finally {
    for (const t of transports) t.close()
  }
}
