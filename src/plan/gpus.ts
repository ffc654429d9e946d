// Which GPUs a node's job will use, and what else holds them: pure, from what the probe read
// (node/gpu-query.ts) and what the plan decides. A GPU held by a process that is not part of the
// launch (the classic leftover of a killed job) is a pre-flight error: the job would die of CUDA
// out-of-memory minutes later, or run at half speed.

/** One GPU as `nvidia-smi --query-gpu=index,uuid,memory.used,memory.total` lists it. */
export interface Gpu {
  index: number
  uuid: string
  /** MiB, when nvidia-smi could tell. */
  memoryUsed?: number
  memoryTotal?: number
}

/** A process on a GPU (`--query-compute-apps=gpu_uuid,pid,used_memory`), with what ps says of it. */
export interface GpuProcess {
  gpuUuid: string
  pid: number
  /** MiB, when nvidia-smi could tell (not in every container or MIG set-up). */
  memory?: number
  user?: string
  command?: string
}

const mib = (text: string | undefined): number | undefined => {
  const n = Number(text?.trim())
  return text !== undefined && /^\s*\d+\s*$/.test(text) ? n : undefined
}

/** Reads the probe's fanout.gpu, fanout.gpu_app and fanout.gpu_proc lines (values only, in order). */
export function parseGpus(
  gpuLines: readonly string[],
  appLines: readonly string[],
  procLines: readonly string[],
): { gpus: Gpu[]; processes: GpuProcess[] } {
  const gpus = gpuLines.flatMap((line): Gpu[] => {
    const [index, uuid, used, total] = line.split(',').map((f) => f.trim())
    if (!index || !/^\d+$/.test(index) || !uuid) return []
    const gpu: Gpu = { index: Number(index), uuid }
    const u = mib(used)
    const t = mib(total)
    if (u !== undefined) gpu.memoryUsed = u
    if (t !== undefined) gpu.memoryTotal = t
    return [gpu]
  })
  const owners = new Map<number, { user: string; command: string }>()
  for (const line of procLines) {
    const m = /^\s*(\d+)\s+(\S+)\s+(.*)$/.exec(line)
    if (m) owners.set(Number(m[1]), { user: m[2] ?? '', command: (m[3] ?? '').trim() })
  }
  const processes = appLines.flatMap((line): GpuProcess[] => {
    const [gpuUuid, pid, memory] = line.split(',').map((f) => f.trim())
    if (!gpuUuid || !pid || !/^\d+$/.test(pid)) return []
    const p: GpuProcess = { gpuUuid, pid: Number(pid) }
    const m = mib(memory)
    if (m !== undefined) p.memory = m
    const owner = owners.get(p.pid)
    if (owner) Object.assign(p, owner)
    return [p]
  })
  return { gpus, processes }
}

/**
 * The GPU indices a CUDA_VISIBLE_DEVICES value shows, in its order: indices or UUIDs (a prefix of one
 * is enough for CUDA), stopping at the first entry that names no GPU, as CUDA does. Undefined when
 * no list of the node's GPUs is known and an entry is not an index.
 */
export function visibleIndices(cvd: string, gpus: readonly Gpu[]): number[] {
  const out: number[] = []
  for (const raw of cvd.split(',')) {
    const id = raw.trim()
    let index: number | undefined
    if (/^\d+$/.test(id)) index = Number(id)
    else if (id.startsWith('GPU-')) index = gpus.find((g) => g.uuid.startsWith(id))?.index
    if (index === undefined || (gpus.length > 0 && !gpus.some((g) => g.index === index))) break
    out.push(index)
  }
  return out
}

export interface GpuUse {
  /** The GPU indices chosen by the selection flags (--include host@0,1), if any. */
  selected?: readonly number[]
  /** CUDA_VISIBLE_DEVICES as the job will see it: --env's, else the node's own; undefined when unset. */
  cvd?: string
  /** Processes per node (the plan's). */
  nproc: number
}

/**
 * The GPUs the job will use on a node: those it can see (the selection, else CUDA_VISIBLE_DEVICES,
 * else all), the first `nproc` of them when it runs fewer processes than that, as a script that puts
 * local rank i on device i does.
 */
export function usedGpus(gpus: readonly Gpu[], use: GpuUse): Gpu[] {
  const all = gpus.map((g) => g.index)
  const visible = use.selected ? [...use.selected] : use.cvd !== undefined ? visibleIndices(use.cvd, gpus) : all
  const used = visible.slice(0, Math.max(0, Math.min(visible.length, use.nproc)))
  return used.flatMap((i) => gpus.filter((g) => g.index === i))
}

/** The processes holding any of `used`, in GPU order. */
export function busyGpus(
  used: readonly Gpu[],
  processes: readonly GpuProcess[],
): Array<{ gpu: Gpu; process: GpuProcess }> {
  return used.flatMap((gpu) => processes.filter((p) => p.gpuUuid === gpu.uuid).map((process) => ({ gpu, process })))
}

/** `GPU 1 is held by pid 4242 (alice: python old_train.py, 30000 MiB)`. */
export function describeBusy(b: { gpu: Gpu; process: GpuProcess }): string {
  const p = b.process
  const command = p.command && p.command.length > 120 ? `${p.command.slice(0, 119)}…` : p.command
  const who = p.user !== undefined ? `${p.user}: ${command ?? '?'}` : 'not visible to ps on the node'
  const memory = p.memory !== undefined ? `, ${p.memory} MiB` : ''
  return `GPU ${b.gpu.index} is held by pid ${p.pid} (${who}${memory})`
}
