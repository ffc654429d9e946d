import type { Options } from '../cli/parse.js'
import type { JobEnv } from '../plan/env.js'
import { holdProbe } from './held.js'
import type { ReachCheck } from './reach.js'
import type { Busy } from './wait-for-gpus.js'
import type { NodeSpec } from '../hosts/nodes.js'
import { failPhase, label } from './phase.js'
import { masterAddress, nprocOf, parseProbe, type NodeFacts, type PlanNode } from '../plan/plan.js'
import { busyGpus, usedGpus } from '../plan/gpus.js'
import type { PreflightNode } from '../plan/preflight.js'
import { heldProbeCommand, probeCommand, probeInput, readProbeLines, routeCommand, type ProbeSpec } from '../node/probe.js'
import type { RunIo } from './run.js'
import { capture, type RemoteProcess, type Transport } from '../transport/types.js'

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
    ...(routeTo === undefined ? {} : { routeTo }), ...(options.launcher.rdzvBackend === 'c10d' ? { c10d: true } : {}),
  }
}

export interface ProbeNodesInput {
  nodes: NodeSpec[]
  transports: Transport[]
  options: Options
  io: RunIo
  /** The job's environment (an explicit CUDA_VISIBLE_DEVICES narrows the GPUs the job uses). */
  jobEnv: JobEnv
  /**
   * Where each node's probe leaves its shell waiting for the plan (heldProbeCommand), by node: the
   * reachability check runs there, and the first attempt starts the job there. Absent: plain probes.
   */
  held?: (RemoteProcess | undefined)[]
}

/** The node as the plan sees it: its host-list entry and the facts its probe found. */
function planNode(n: NodeSpec, facts: NodeFacts): PlanNode {
  const node: PlanNode = { rank: n.rank, host: n.entry.host, facts }
  if (n.entry.slots !== undefined) node.slots = n.entry.slots
  if (n.entry.gpus !== undefined) node.gpus = n.entry.gpus
  return node
}

/** What holds the GPUs a node's job will use (nothing without nvidia-smi). */
function busyOn(node: PlanNode, options: Options, jobEnv: JobEnv): Busy {
  const { gpuList, gpuProcesses } = node.facts
  if (!gpuList || !gpuProcesses || gpuProcesses.length === 0) return []
  const cvd = jobEnv.explicit.CUDA_VISIBLE_DEVICES ?? node.facts.cudaVisibleDevices
  const used = usedGpus(gpuList, { ...(node.gpus ? { selected: node.gpus } : {}), ...(cvd === undefined ? {} : { cvd }), nproc: nprocOf(node, { ...options, jobEnv }) })
  return busyGpus(used, gpuProcesses)
}

/**
 * Probes every node, checks what the probes found (the pre-flight: set-up, directory, script, python,
 * torch and its version across nodes, busy GPUs; --wait-for-gpus waits here), finds each node's route
 * to the master, and with held shells proves that every node reaches the master's port. Any problem
 * stops the launch before anything is launched (exit 2), naming each node.
 */
export async function probeNodes(input: ProbeNodesInput): Promise<PlanNode[]> {
  const { nodes, transports, options, io, held, jobEnv } = input
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
  const found: PreflightNode[] = probes.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
  const planNodes = nodes.map((n, i) => planNode(n, (found[i] as PreflightNode).facts))
  const busy = new Map(planNodes.map((n) => [n.rank, busyOn(n, options, jobEnv)]))
  if (options.waitForGpusS !== undefined && [...busy.values()].some((b) => b.length > 0)) {
    const { waitForGpus } = await import('./wait-for-gpus.js')
    const query = async (rank: number): Promise<Busy> => {
      const i = nodes.findIndex((n) => n.rank === rank)
      const node = planNodes[i] as PlanNode
      // The probe without Python: what the set-up steps make of PATH (nvidia-smi) counts, as before.
      const facts = parseProbe((await probe(transports[i] as Transport, { ...probeSpec(i, options, undefined), wantPort: false, torch: false })).stdout, node.facts.viaSsh)
      node.facts = { ...node.facts, ...(facts.gpuList ? { gpuList: facts.gpuList } : {}), gpuProcesses: facts.gpuProcesses ?? [] }
      return busyOn(node, options, jobEnv)
    }
    const waiting = new Map([...busy].filter(([, b]) => b.length > 0).map(([rank, b]) => [rank, { host: nodes.find((n) => n.rank === rank)?.entry.host ?? '', busy: b }]))
    for (const [rank, b] of await waitForGpus({ busy: waiting, query, waitS: options.waitForGpusS, info: (m) => io.ui.info(m), onStop: io.onStop })) busy.set(rank, b)
  }
  const { checkPreflight, preflightError } = await import('../plan/preflight.js')
  const checked = found.map((f) => ({ ...f, busy: busy.get(f.rank) ?? [] }))
  const { table, errors, warnings } = checkPreflight(checked, {
    launcher: launcher.kind, scriptIsFile: scriptIsFile(options), script: options.script, cwd: options.chdir, python: options.python, setup: options.setup,
    strict: options.strict, allowVersionSkew: options.allowVersionSkew, allowBusyGpus: options.allowBusyGpus, ...(options.masterPort === undefined ? {} : { masterPort: options.masterPort }),
  })
  for (const w of warnings) io.ui.warn(w)
  io.stderr.write(table)
  if (errors.length > 0) throw preflightError(errors)
  const facts = planNodes.map((n) => n.facts)
  const master = masterAddress(facts, options.masterAddr)
  const probed = master === master0 && facts.every((f) => f.routeIface !== undefined)
  const routes = probed
    ? facts.map((f) => ({ iface: f.routeIface, src: f.srcAddr }))
    : (await io.ui.phase('route', nodes.map((n, i) => ({
        label: label(n),
        run: async () => {
          const lines = readProbeLines((await capture(transports[i] as Transport, routeCommand(master))).stdout)
          return { iface: lines.get('iface'), src: lines.get('src') }
        },
      })))).map((r) => (r.status === 'fulfilled' ? r.value : { iface: undefined, src: undefined }))
  planNodes.forEach((node, i) => {
    const { iface, src } = routes[i] ?? {}
    if (iface) node.iface = iface
    else io.ui.warn(`node ${node.rank} (${node.host}): no interface routes to ${master}; GLOO/NCCL_SOCKET_IFNAME left unset`)
    if (src) node.facts = { ...node.facts, srcAddr: src }
  })
  if (held) await proveReach(planNodes, held, master, options, io)
  return planNodes
}

/**
 * The reachability check (launch/reach.ts), where it can run: more than one node, a launcher with a
 * rendezvous port (not --launcher none) and Python on every node, every shell still held.
 */
async function proveReach(planNodes: PlanNode[], held: (RemoteProcess | undefined)[], master: string, options: Options, io: RunIo): Promise<void> {
  const port = options.masterPort ?? planNodes[0]?.facts.freePort
  if (planNodes.length < 2 || options.launcher.kind === 'none' || port === undefined) return
  const reachNodes = planNodes.map((n, i) => ({ n, proc: held[i], python: n.facts.python }))
  if (reachNodes.some((r) => !r.proc || !r.python)) return
  const { checkReach } = await import('./reach.js')
  const problems = await checkReach(io.ui, reachNodes.map(({ n, proc, python }) => ({
    rank: n.rank, host: n.host, proc: proc as RemoteProcess, python: python as string, ...(n.iface ? { iface: n.iface } : {}),
  })), { master: { addr: master, port }, timeoutS: options.connectTimeoutS, ...masterName(planNodes) })
  if (problems.length === 0) return
  const { preflightError } = await import('../plan/preflight.js')
  throw preflightError(problems)
}

/**
 * torch 1.x's c10d rendezvous (no --local-addr) gives the workers the host name of the node whose
 * agent got group rank 0 (torch sorts the agents by host name): the name every node must resolve.
 */
function masterName(planNodes: readonly PlanNode[]): Pick<ReachCheck, 'masterName'> {
  const named = planNodes.filter((n) => n.facts.localAddrFlag === false && n.facts.fqdn)
  if (named.length === 0) return {}
  const first = [...named].sort((a, b) => ((a.facts.fqdn as string) < (b.facts.fqdn as string) ? -1 : 1))[0] as PlanNode
  const addrs = [first.facts.srcAddr, first.facts.serverAddr].filter((a): a is string => a !== undefined)
  return { masterName: { name: first.facts.fqdn as string, rank: first.rank, addrs } }
}
