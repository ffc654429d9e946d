import { FanoutError } from '../errors.js'
import { readProbeLines, readProbeList } from '../node/probe.js'
import { parseGpus, type Gpu, type GpuProcess } from './gpus.js'
import { shellJoin, shellQuote } from '../node/quote.js'
import { launcherCommand, type LauncherOptions } from './launcher.js'
import { RANK_TAGGER } from '../node/rank-tag.js'
import { isSecretName, type JobEnv } from './env.js'

/** What the probe learned about one node. */
export interface NodeFacts {
  /** Reached over the network (SSH, srun); false for the local transport, which has no address to learn. */
  remote: boolean
  /** GPUs visible to the job (nvidia-smi, narrowed by CUDA_VISIBLE_DEVICES); 0 without a GPU. */
  gpus: number
  /** How the node was reached: the server address of the SSH connection (`SSH_CONNECTION` field 3), or over srun its SLURM NodeAddr. */
  serverAddr?: string
  /** The client address of the SSH connection (field 1): this machine, as the node sees it. */
  clientAddr?: string
  /** The interpreter's resolved path, when it exists on the node. */
  python?: string
  torch?: boolean
  /** torch.__version__ as read from the installed package (not imported: that takes seconds). */
  torchVersion?: string
  pythonVersion?: string
  /** Pre-flight: the working directory and the script exist, the requested master port is free. */
  cwd?: boolean
  script?: boolean
  portFree?: boolean
  /** A set-up step (1-based) that failed, and its exit code. */
  setupFailed?: { step: number; code: number }
  /** A port that was free when probed (asked of node 0 only). */
  freePort?: number
  /** Socket interface variables already set by the node's own environment. */
  presetIfnames: { GLOO_SOCKET_IFNAME?: string; NCCL_SOCKET_IFNAME?: string }
  /** The interface that routes to the probe's `routeTo` address ('' for none), when it was asked for one. */
  routeIface?: string
  /** The node's own address on that route (`ip route get`'s src): what its torchrun is given as --local-addr. */
  srcAddr?: string
  /** The node's GPUs as nvidia-smi lists them (index, UUID, memory), when it has nvidia-smi. */
  gpuList?: Gpu[]
  /** The processes nvidia-smi sees on the node's GPUs, with their owner and command where ps tells. */
  gpuProcesses?: GpuProcess[]
  /** The node's own CUDA_VISIBLE_DEVICES, when set (the probe reads it after the set-up steps). */
  cudaVisibleDevices?: string
  /** Asked for a c10d rendezvous: torchrun has --local-addr (torch 2.x). */
  localAddrFlag?: boolean
  /** Asked for a c10d rendezvous without --local-addr: the host name torch's agent gives for this node. */
  fqdn?: string
}

/** How many devices a CUDA_VISIBLE_DEVICES value shows: CUDA stops at the first invalid entry (-1). */
function visibleDevices(cvd: string): number {
  const ids = cvd.split(',').map((s) => s.trim())
  const end = ids.findIndex((id) => id === '' || id.startsWith('-'))
  return end < 0 ? ids.length : end
}

/** Interprets a probe's output (see remote.ts) as facts. */
export function parseProbe(stdout: string, remote: boolean): NodeFacts {
  const raw = readProbeLines(stdout)
  const smiGpus = Number(raw.get('gpus') ?? 0) || 0
  const cvd = raw.get('cuda_visible_devices')
  let gpus = smiGpus
  // CUDA_VISIBLE_DEVICES narrows what CUDA will show; CUDA stops at the first invalid entry (-1).
  if (cvd !== undefined && cvd !== '<unset>') gpus = Math.min(smiGpus, visibleDevices(cvd))
  const facts: NodeFacts = { remote, gpus, presetIfnames: {} }
  if (cvd !== undefined && cvd !== '<unset>') facts.cudaVisibleDevices = cvd
  const [clientAddr, , serverAddr] = raw.get('ssh_connection')?.split(' ') ?? []
  if (serverAddr) facts.serverAddr = serverAddr
  if (clientAddr) facts.clientAddr = clientAddr
  const python = raw.get('python')
  if (python) facts.python = python
  if (raw.has('torch')) facts.torch = raw.get('torch') === 'yes'
  const torchVersion = raw.get('torch_version')
  if (torchVersion) facts.torchVersion = torchVersion
  const pythonVersion = raw.get('python_version')
  if (pythonVersion) facts.pythonVersion = pythonVersion
  const yes = (key: string): boolean | undefined =>
    raw.has(key) ? ['ok', 'yes'].includes(raw.get(key) ?? '') : undefined
  for (const [key, field] of [
    ['cwd', 'cwd'],
    ['script', 'script'],
    ['port_free', 'portFree'],
  ] as const) {
    const value = yes(key)
    if (value !== undefined) facts[field] = value
  }
  const setupFailed = /^(\d+) (\d+)$/.exec(raw.get('setup_failed') ?? '')
  if (setupFailed) facts.setupFailed = { step: Number(setupFailed[1]), code: Number(setupFailed[2]) }
  const port = Number(raw.get('free_port'))
  if (Number.isInteger(port) && port > 0) facts.freePort = port
  const gloo = raw.get('gloo_socket_ifname')
  const nccl = raw.get('nccl_socket_ifname')
  if (gloo) facts.presetIfnames.GLOO_SOCKET_IFNAME = gloo
  if (nccl) facts.presetIfnames.NCCL_SOCKET_IFNAME = nccl
  const iface = raw.get('iface')
  if (iface !== undefined) facts.routeIface = iface
  const src = raw.get('src')
  if (src) facts.srcAddr = src
  const gpuLines = readProbeList(stdout, 'gpu')
  if (gpuLines.length > 0) {
    const { gpus, processes } = parseGpus(gpuLines, readProbeList(stdout, 'gpu_app'), readProbeList(stdout, 'gpu_proc'))
    facts.gpuList = gpus
    facts.gpuProcesses = processes
  }
  if (raw.has('local_addr_flag')) facts.localAddrFlag = raw.get('local_addr_flag') === 'yes'
  const fqdn = raw.get('fqdn')
  if (fqdn) facts.fqdn = fqdn
  return facts
}

export interface PlanNode {
  rank: number
  host: string
  /** Processes, when the host list (slots=) or the selection (its GPU count) says. */
  slots?: number
  /** GPU indices chosen by the selection flags: CUDA_VISIBLE_DEVICES, and the process count. */
  gpus?: number[]
  facts: NodeFacts
  /** The interface that routes to the master address on this node, if found. */
  iface?: string
}

export interface PlanOptions {
  python: string
  cwd: string
  script: string
  scriptArgs: string[]
  nprocPerNode?: number
  masterAddr?: string
  masterPort?: number
  /** Which launcher and its flags; torchrun when absent. */
  launcher?: LauncherOptions
  /** The c10d rendezvous id, shared by the job's nodes. */
  runId?: string
  /** Tag each worker's output with its rank (launcher.ts). */
  rankTags?: boolean
  /** Variables to set on every node (env.ts): forwarded ones below fanout's own, explicit ones above. */
  jobEnv?: JobEnv
}

const TORCHRUN: LauncherOptions = { kind: 'torchrun', module: false, noPython: false, useEnv: false, launcherArgs: [] }

export interface NodeCommand {
  rank: number
  host: string
  nproc: number
  /** The node's first global rank under a static rendezvous (the nodes before it hold the ranks below). */
  firstRank: number
  /** The node's addresses as far as fanout knows (its own on the route to the master, the one SSH reached). */
  addrs: string[]
  cwd: string
  env: Record<string, string>
  argv: string[]
}

export interface LaunchPlan {
  masterAddr: string
  masterPort: number
  nodes: NodeCommand[]
}

/**
 * The master address: the flag, else the address node 0 was reached at. When node 0 is this machine
 * (local transport, no SSH_CONNECTION), it is this machine's address as the other nodes see it, or
 * loopback when every node is local.
 */
export function masterAddress(facts: readonly NodeFacts[], flag: string | undefined): string {
  if (flag) return flag
  const node0 = facts[0]
  if (node0?.serverAddr) return node0.serverAddr
  if (node0 && !node0.remote) return facts.find((f) => f.clientAddr)?.clientAddr ?? '127.0.0.1'
  throw new FanoutError(
    'cannot tell the address of node 0 (its SSH_CONNECTION was empty, or SLURM has no address for it); pass --master-addr',
    'PROBE',
  )
}

/**
 * A node's process count: --nproc-per-node, else the GPUs the selection chose for it, else its
 * slots=, else the GPUs it shows (an explicit CUDA_VISIBLE_DEVICES narrows them as its own would
 * have: the probe saw that one), else 1.
 */
export function nprocOf(
  node: Pick<PlanNode, 'gpus' | 'slots' | 'facts'>,
  options: Pick<PlanOptions, 'nprocPerNode' | 'jobEnv'>,
): number {
  const cvd = options.jobEnv?.explicit.CUDA_VISIBLE_DEVICES
  return (
    options.nprocPerNode ??
    node.gpus?.length ??
    node.slots ??
    Math.max(1, cvd === undefined ? node.facts.gpus : visibleDevices(cvd))
  )
}

/** Decides the exact command each node runs (see launcher.ts for each launcher's argv). */
export function planLaunch(nodes: readonly PlanNode[], options: PlanOptions): LaunchPlan {
  const masterAddr = masterAddress(
    nodes.map((n) => n.facts),
    options.masterAddr,
  )
  const masterPort = options.masterPort ?? nodes[0]?.facts.freePort
  if (masterPort === undefined)
    throw new FanoutError('could not find a free port on node 0; pass --master-port', 'PROBE')
  let firstRank = 0
  const commands = nodes.map((node): NodeCommand => {
    const nproc = nprocOf(node, options)
    const env: Record<string, string> = { PYTHONUNBUFFERED: '1' }
    if (node.gpus) {
      // Indices were chosen without probing (slots=, or --num-gpus' 0..N-1): a node with fewer GPUs
      // would fail later in CUDA with a far less helpful message. 0 GPUs: no nvidia-smi, nothing to check.
      const missing = node.gpus.filter((g) => node.facts.gpus > 0 && g >= node.facts.gpus)
      if (missing.length > 0)
        throw new FanoutError(
          `${node.host}: GPU ${missing.join(',')} was selected, but the node has ${node.facts.gpus} GPU(s) (0-${node.facts.gpus - 1})`,
          'PROBE',
        )
      env.CUDA_VISIBLE_DEVICES = node.gpus.join(',')
    }
    if (node.iface) {
      // A node's own setting wins: the user knows their fabric better than a route lookup does.
      env.GLOO_SOCKET_IFNAME = node.facts.presetIfnames.GLOO_SOCKET_IFNAME ?? node.iface
      env.NCCL_SOCKET_IFNAME = node.facts.presetIfnames.NCCL_SOCKET_IFNAME ?? node.iface
    }
    const launched = launcherCommand(options.launcher ?? TORCHRUN, {
      python: options.python,
      nnodes: nodes.length,
      nodeRank: node.rank,
      nproc,
      masterAddr,
      masterPort,
      runId: options.runId ?? 'fanout',
      script: options.script,
      scriptArgs: options.scriptArgs,
      rankTags: options.rankTags ?? false,
      ...(node.facts.torchVersion ? { torchVersion: node.facts.torchVersion } : {}),
      ...(node.facts.localAddrFlag && node.facts.srcAddr ? { localAddr: node.facts.srcAddr } : {}),
    })
    Object.assign(env, launched.env)
    const argv = launched.argv
    firstRank += nproc
    const addrs = [...new Set([node.facts.srcAddr, node.facts.serverAddr].filter((a): a is string => a !== undefined))]
    return {
      rank: node.rank,
      host: node.host,
      nproc,
      firstRank: firstRank - nproc,
      addrs,
      cwd: options.cwd,
      env: withJobEnv(env, node, options.jobEnv),
      argv,
    }
  })
  return { masterAddr, masterPort, nodes: commands }
}

/**
 * fanout's own variables, then the forwarded ones it does not set itself, then the explicit ones over
 * everything but the selection's CUDA_VISIBLE_DEVICES (run.ts refuses both). A forwarded
 * *_SOCKET_IFNAME names an interface of this machine: the node's own setting or its probed route wins.
 */
function withJobEnv(own: Record<string, string>, node: PlanNode, jobEnv: JobEnv | undefined): Record<string, string> {
  if (!jobEnv) return own
  const env = { ...own }
  for (const [k, v] of Object.entries(jobEnv.forwarded)) if (!(k in env) && !(k in node.facts.presetIfnames)) env[k] = v
  Object.assign(env, jobEnv.explicit)
  if (own.CUDA_VISIBLE_DEVICES !== undefined) env.CUDA_VISIBLE_DEVICES = own.CUDA_VISIBLE_DEVICES
  return env
}

/** The command as a person would type it on the node: what `--dry-run` shows, secret-looking values masked. */
export function describeCommand(node: NodeCommand): string {
  // NAME='value', not 'NAME=value': a quoted assignment is a command name to the shell.
  const env = Object.entries(node.env).map(([k, v]) => `${k}=${isSecretName(k) ? '***' : shellJoin([v])}`)
  // The tagger's Python source would bury the command; it is named instead (src/output/rank-tag.ts).
  const argv = node.argv.map((w) => (w === `-c${RANK_TAGGER}` ? '-c"$FANOUT_RANK_TAGGER"' : shellQuote(w))).join(' ')
  return `cd ${shellJoin([node.cwd])} && ${[...env, argv].join(' ')}`
}
