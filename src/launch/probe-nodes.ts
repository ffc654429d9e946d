import {
  heldProbeCommand,
  probeCommand,
  probeInput,
  readProbeLines,
  routeCommand,
  type ProbeSpec,
} from '../node/probe.js'
import type { JobEnv } from '../plan/env.js'
import { busyGpus, usedGpus } from '../plan/gpus.js'
import { scriptIsFile, type LauncherOptions } from '../plan/launcher.js'
import type { JobOptions, PreflightOptions } from '../plan/options.js'
import { masterAddress, nprocOf, parseProbe, type NodeFacts, type PlanNode } from '../plan/plan.js'
import { capture, type RemoteProcess, type Transport } from '../transport/types.js'
import type { ConnectedNode, ProbedNode } from './cluster.js'
import { holdProbe } from './held.js'
import type { RunIo } from './io.js'
import { failPhase, label } from './phase.js'
import type { ReachCheck } from './reach.js'
import type { Busy } from './wait-for-gpus.js'

/** Runs the probe on a node (its set-up lines on stdin) and collects what it printed. */
export const probe = (t: Transport, spec: ProbeSpec): ReturnType<typeof capture> =>
  capture(t, probeCommand(spec), probeInput(spec))

/** Node i's probe: held (the start of its job command, heldProbeCommand) or plain. */
async function runProbe(
  t: Transport,
  spec: ProbeSpec,
  hold: boolean,
): Promise<{ stdout: string; stderr: string; proc?: RemoteProcess }> {
  if (!hold) return probe(t, spec)
  const { stdout, stderr, proc } = await holdProbe(t, heldProbeCommand(spec), probeInput(spec))
  return { stdout, stderr, ...(proc ? { proc } : {}) }
}

/** What node i's probe asks, `routeTo` being where the master is expected (see probeNodes). */
function probeSpec(i: number, job: JobOptions, launcher: LauncherOptions, routeTo: string | undefined): ProbeSpec {
  return {
    python: job.python,
    wantPort: i === 0 && job.masterPort === undefined,
    cwd: job.chdir,
    setup: job.setup,
    torch: launcher.kind !== 'none',
    ...(scriptIsFile(launcher, job.script) ? { script: job.script } : {}),
    ...(i === 0 && job.masterPort !== undefined ? { port: job.masterPort } : {}),
    ...(routeTo === undefined ? {} : { routeTo }),
    ...(launcher.rdzvBackend === 'c10d' ? { c10d: true } : {}),
  }
}

export interface ProbeNodesInput {
  nodes: readonly ConnectedNode[]
  job: JobOptions
  launcher: LauncherOptions
  preflight: PreflightOptions
  /** The reachability check waits this long for a node's connection (the connect timeout). */
  connectTimeoutS: number
  /** The job's environment (an explicit CUDA_VISIBLE_DEVICES narrows the GPUs the job uses). */
  jobEnv: JobEnv
  /**
   * Each probe leaves its node's shell waiting for the plan (heldProbeCommand): the reachability
   * check runs there, and the first attempt starts the job there. False: plain probes.
   */
  hold: boolean
  /** Told of each held shell as its probe ends, so that the launch's cleanup can end the ones no attempt took. */
  onHeld?: (shell: RemoteProcess) => void
  io: RunIo
}

/** What holds the GPUs a node's job will use (nothing without nvidia-smi). */
function busyOn(node: PlanNode, job: JobOptions, jobEnv: JobEnv): Busy {
  const { gpuList, gpuProcesses } = node.facts
  if (!gpuList || !gpuProcesses || gpuProcesses.length === 0) return []
  const cvd = jobEnv.explicit.CUDA_VISIBLE_DEVICES ?? node.facts.cudaVisibleDevices
  const used = usedGpus(gpuList, {
    ...(node.gpus ? { selected: node.gpus } : {}),
    ...(cvd === undefined ? {} : { cvd }),
    nproc: nprocOf(node, { ...job, jobEnv }),
  })
  return busyGpus(used, gpuProcesses)
}

/** A node's addresses over srun: its SLURM NodeAddr, not an SSH_CONNECTION it may have inherited from the login. */
function reachedBySlurm(facts: NodeFacts, address: string | undefined): void {
  delete facts.clientAddr
  if (address) facts.serverAddr = address
  else delete facts.serverAddr
}

/**
 * Probes every node, checks what the probes found (the pre-flight: set-up, directory, script, python,
 * torch and its version across nodes, busy GPUs; --wait-for-gpus waits here), finds each node's route
 * to the master, and with held shells proves that every node reaches the master's port. Any problem
 * stops the launch before anything is launched (exit 2), naming each node.
 */
export async function probeNodes(input: ProbeNodesInput): Promise<ProbedNode[]> {
  const { nodes, job, launcher, io } = input
  const specs = nodes.map((n) => n.spec)
  // Where the master will be, if that can be told before node 0's probe: --master-addr, or the address
  // fanout's connection to node 0 reached (its sshd reports the same one unless NAT sits between). The
  // probes then also find each node's route to it; a guess that turns out wrong costs the route phase.
  const master0 = job.masterAddr ?? nodes[0]?.transport.peerAddress
  const probes = await io.ui.phase(
    'probe',
    nodes.map(({ spec, transport }, i) => ({
      label: label(spec),
      node: { rank: spec.rank, host: spec.entry.host },
      run: async (): Promise<ProbedNode> => {
        const { stdout, stderr, proc } = await runProbe(transport, probeSpec(i, job, launcher, master0), input.hold)
        if (proc) input.onHeld?.(proc)
        const plan: PlanNode = {
          rank: spec.rank,
          host: spec.entry.host,
          facts: parseProbe(stdout, transport.kind !== 'local'),
        }
        // Over srun, a node is reached at the address SLURM knows it by: node 0's is the master's.
        if (transport.kind === 'srun') reachedBySlurm(plan.facts, transport.peerAddress)
        if (spec.entry.slots !== undefined) plan.slots = spec.entry.slots
        if (spec.entry.gpus !== undefined) plan.gpus = spec.entry.gpus
        return { spec, transport, plan, probeStderr: stderr, ...(proc ? { held: proc } : {}) }
      },
    })),
    'probed',
  )
  failPhase(probes, specs)
  const probed = probes.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
  await checkPreflight(probed, input)
  const master = masterAddress(
    probed.map((n) => n.plan.facts),
    job.masterAddr,
  )
  await findRoutes(probed, master, master0 === master, io)
  if (input.hold) await proveReach(probed, master, input)
  return probed
}

/**
 * The pre-flight (plan/preflight.ts) on what the probes found, with what holds each node's GPUs
 * (--wait-for-gpus waits for them here): the table, then any problem stops the launch (exit 2).
 */
async function checkPreflight(probed: readonly ProbedNode[], input: ProbeNodesInput): Promise<void> {
  const { job, launcher, preflight, jobEnv, io } = input
  const busy = new Map(probed.map((n) => [n.spec.rank, busyOn(n.plan, job, jobEnv)]))
  if (preflight.waitForGpusS !== undefined && [...busy.values()].some((b) => b.length > 0)) {
    const { waitForGpus } = await import('./wait-for-gpus.js')
    const query = async (rank: number): Promise<Busy> => {
      const i = probed.findIndex((n) => n.spec.rank === rank)
      const node = probed[i] as ProbedNode
      // The probe without Python: what the set-up steps make of PATH (nvidia-smi) counts, as before.
      const facts = parseProbe(
        (await probe(node.transport, { ...probeSpec(i, job, launcher, undefined), wantPort: false, torch: false }))
          .stdout,
        node.plan.facts.remote,
      )
      node.plan.facts = {
        ...node.plan.facts,
        ...(facts.gpuList ? { gpuList: facts.gpuList } : {}),
        gpuProcesses: facts.gpuProcesses ?? [],
      }
      return busyOn(node.plan, job, jobEnv)
    }
    const waiting = new Map(
      probed
        .filter((n) => (busy.get(n.spec.rank) ?? []).length > 0)
        .map((n) => [n.spec.rank, { host: n.spec.entry.host, busy: busy.get(n.spec.rank) ?? [] }]),
    )
    for (const [rank, b] of await waitForGpus({
      busy: waiting,
      query,
      waitS: preflight.waitForGpusS,
      info: (m) => io.ui.info(m),
      onStop: io.onStop,
    }))
      busy.set(rank, b)
  }
  const plan = await import('../plan/preflight.js')
  const { table, errors, warnings } = plan.checkPreflight(
    probed.map((n) => ({
      rank: n.spec.rank,
      host: n.spec.entry.host,
      facts: n.plan.facts,
      stderr: n.probeStderr,
      busy: busy.get(n.spec.rank) ?? [],
    })),
    {
      launcher: launcher.kind,
      scriptIsFile: scriptIsFile(launcher, job.script),
      script: job.script,
      cwd: job.chdir,
      python: job.python,
      setup: job.setup,
      strict: preflight.strict,
      allowVersionSkew: preflight.allowVersionSkew,
      allowBusyGpus: preflight.allowBusyGpus,
      ...(job.masterPort === undefined ? {} : { masterPort: job.masterPort }),
    },
  )
  for (const w of warnings) io.ui.warn(w)
  io.stderr.write(table)
  if (errors.length > 0) throw plan.preflightError(errors)
}

/**
 * Each node's interface to the master and its own address on that route: from the probes when they
 * were asked about the master that it turned out to be (`probed`), else one more short command a node.
 */
async function findRoutes(nodes: readonly ProbedNode[], master: string, probed: boolean, io: RunIo): Promise<void> {
  const known = probed && nodes.every((n) => n.plan.facts.routeIface !== undefined)
  const routes = known
    ? nodes.map((n) => ({ iface: n.plan.facts.routeIface, src: n.plan.facts.srcAddr }))
    : (
        await io.ui.phase(
          'route',
          nodes.map(({ spec, transport }) => ({
            label: label(spec),
            run: async () => {
              const lines = readProbeLines((await capture(transport, routeCommand(master))).stdout)
              return { iface: lines.get('iface'), src: lines.get('src') }
            },
          })),
        )
      ).map((r) => (r.status === 'fulfilled' ? r.value : { iface: undefined, src: undefined }))
  nodes.forEach(({ plan }, i) => {
    const { iface, src } = routes[i] ?? {}
    if (iface) plan.iface = iface
    else
      io.ui.warn(
        `node ${plan.rank} (${plan.host}): no interface routes to ${master}; GLOO/NCCL_SOCKET_IFNAME left unset`,
      )
    if (src) plan.facts = { ...plan.facts, srcAddr: src }
  })
}

/**
 * The reachability check (launch/reach.ts), where it can run: more than one node, a launcher with a
 * rendezvous port (not --launcher none) and Python on every node, every shell still held.
 */
async function proveReach(nodes: readonly ProbedNode[], master: string, input: ProbeNodesInput): Promise<void> {
  const port = input.job.masterPort ?? nodes[0]?.plan.facts.freePort
  if (nodes.length < 2 || input.launcher.kind === 'none' || port === undefined) return
  const reachNodes = nodes.flatMap((n) =>
    n.held && n.plan.facts.python
      ? [
          {
            rank: n.spec.rank,
            host: n.spec.entry.host,
            proc: n.held,
            python: n.plan.facts.python,
            ...(n.plan.iface ? { iface: n.plan.iface } : {}),
          },
        ]
      : [],
  )
  if (reachNodes.length < nodes.length) return
  const { checkReach } = await import('./reach.js')
  const problems = await checkReach(input.io.ui, reachNodes, {
    master: { addr: master, port },
    timeoutS: input.connectTimeoutS,
    ...masterName(nodes.map((n) => n.plan)),
  })
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
