import type { Options } from './args.js'
import { holdProbe } from './held.js'
import type { NodeSpec } from './nodes.js'
import { failPhase, label } from './phase.js'
import { masterAddress, parseProbe, type NodeFacts, type PlanNode } from './plan.js'
import { heldProbeCommand, probeCommand, probeInput, readProbeLines, routeCommand, type ProbeSpec } from './remote-probe.js'
import type { RunIo } from './run.js'
import { capture, type RemoteProcess, type Transport } from './transport/types.js'

/** What a probe printed, and with `hold`, the shell it left waiting for the node's job. */
interface ProbeRun {
  stdout: string
  stderr: string
  proc?: RemoteProcess
}

/** Runs the probe on a node (its set-up lines on stdin) and collects what it printed. */
export const probe = (t: Transport, spec: ProbeSpec): ReturnType<typeof capture> => capture(t, probeCommand(spec), probeInput(spec))

/** Node i's probe: held (the start of its job command, heldProbeCommand) or plain. */
async function runProbe(t: Transport, spec: ProbeSpec, hold: boolean): Promise<ProbeRun> {
  if (!hold) return probe(t, spec)
  const { stdout, stderr, proc } = await holdProbe(t, heldProbeCommand(spec), probeInput(spec))
  return { stdout, stderr, ...(proc ? { proc } : {}) }
}

const scriptIsFile = (options: Options): boolean => options.script !== '' && options.launcher.kind !== 'none' && !options.launcher.module && !options.launcher.noPython

/** What node i's probe asks, `routeTo` being where the master is expected (see probeNodes). */
function probeSpec(i: number, options: Options, routeTo: string | undefined): ProbeSpec {
  return {
    python: options.python, wantPort: i === 0 && options.masterPort === undefined, cwd: options.chdir, setup: options.setup, torch: options.launcher.kind !== 'none',
    ...(scriptIsFile(options) ? { script: options.script } : {}), ...(i === 0 && options.masterPort !== undefined ? { port: options.masterPort } : {}),
    ...(routeTo === undefined ? {} : { routeTo }),
  }
}

/**
 * Probes every node. With `held`, each probe is the start of the node's job command: the shells left
 * waiting for the job are put in `held`, by node, for the first attempt to start.
 */
export async function probeNodes(nodes: NodeSpec[], transports: Transport[], options: Options, io: RunIo, held?: (RemoteProcess | undefined)[]): Promise<PlanNode[]> {
  const { launcher } = options
  // Where the master will be, if that can be told before node 0's probe: --master-addr, or the address
  // fanout's connection to node 0 reached (its sshd reports the same one unless NAT sits between). The
  // probes then also find each node's route to it; a guess that turns out wrong costs the route phase.
  const master0 = options.masterAddr ?? transports[0]?.peerAddress
  const probes = await io.ui.phase('probe', nodes.map((n, i) => ({
    label: label(n),
    node: { rank: n.rank, host: n.entry.host },
    run: async () => {
      const t = transports[i] as Transport
      const { stdout, stderr, proc } = await runProbe(t, probeSpec(i, options, master0), held !== undefined)
      if (held) held[i] = proc
      return { rank: n.rank, host: n.entry.host, facts: parseProbe(stdout, t.kind === 'ssh'), stderr }
    },
  })), 'probed')
  failPhase(probes, nodes, []) // runJob closes the transports
  const found = probes.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
  const { checkPreflight, preflightError } = await import('./preflight.js')
  const { table, errors, warnings } = checkPreflight(found, { launcher: launcher.kind, scriptIsFile: scriptIsFile(options), script: options.script, cwd: options.chdir, python: options.python, setup: options.setup, strict: options.strict, ...(options.masterPort === undefined ? {} : { masterPort: options.masterPort }) })
  for (const w of warnings) io.ui.warn(w)
  io.stderr.write(table)
  if (errors.length > 0) throw preflightError(errors)
  const facts = found.map((f) => f.facts)
  const master = masterAddress(facts, options.masterAddr)
  const probed = master === master0 && facts.every((f) => f.routeIface !== undefined)
  const routes = probed
    ? facts.map((f) => f.routeIface)
    : (await io.ui.phase('route', nodes.map((n, i) => ({
        label: label(n),
        run: async () => readProbeLines((await capture(transports[i] as Transport, routeCommand(master))).stdout).get('iface'),
      })))).map((r) => (r.status === 'fulfilled' ? r.value : undefined))
  return nodes.map((n, i): PlanNode => {
    const iface = routes[i] || undefined
    if (!iface) io.ui.warn(`node ${n.rank} (${n.entry.host}): no interface routes to ${master}; GLOO/NCCL_SOCKET_IFNAME left unset`)
    const node: PlanNode = { rank: n.rank, host: n.entry.host, facts: facts[i] as NodeFacts }
    if (n.entry.slots !== undefined) node.slots = n.entry.slots
    if (n.entry.gpus !== undefined) node.gpus = n.entry.gpus
    if (iface) node.iface = iface
    return node
  })
}
