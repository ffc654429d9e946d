import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import { FanoutError, unreadable, usageError } from '../errors.js'
import { MAX_BYTES, parseHostfile, parseHostList, type HostEntry, type ParsedHostfile } from './hostfile.js'
import { selectHosts, type Selection } from './select.js'

/** Where the nodes come from and which of them to use: every command takes these. */
export interface HostListOptions extends HostSource, Selection {}

/** Where the host list comes from: one of these, else SLURM's allocation. */
export interface HostSource {
  /** A hostfile path, or `-` for stdin. */
  hostfile?: string
  /** `--hosts a,b,gpu[1-4]`. */
  hosts?: string
  /** `--via srun`: the SLURM allocation whose nodes are reached through srun (its list is SLURM_JOB_NODELIST). */
  slurmJobId?: string
}

/** What cli.ts hands in: only it reads the environment and stdin. */
export interface SourceIo {
  env: Readonly<Record<string, string | undefined>>
  /** Reads stdin to its end, or until more than maxBytes came. */
  readStdin: (maxBytes: number) => Promise<Buffer>
}

/** Size and encoding checks shared by files and stdin: a huge or binary input fails cleanly. */
function decode(bytes: Buffer, name: string): string {
  if (bytes.length > MAX_BYTES)
    throw new FanoutError(`${name}: too large for a hostfile (over ${MAX_BYTES} bytes)`, 'HOSTFILE')
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    throw new FanoutError(`${name}: not a text file (not UTF-8)`, 'HOSTFILE')
  }
}

/**
 * Reads at most MAX_BYTES + 1 bytes: a device (`/dev/zero`) or a file that grows must not be read
 * whole into memory. File-system errors become messages that name the file.
 */
export function readHostfile(path: string): ParsedHostfile {
  let bytes: Buffer
  try {
    const fd = openSync(path, 'r')
    try {
      const stat = fstatSync(fd)
      if (stat.isDirectory()) throw new FanoutError(`${path}: is a directory, not a hostfile`, 'HOSTFILE')
      if (stat.isFile() && stat.size > MAX_BYTES)
        throw new FanoutError(`${path}: too large for a hostfile (over ${MAX_BYTES} bytes)`, 'HOSTFILE')
      const buffer = Buffer.alloc(MAX_BYTES + 1)
      let length = 0
      for (let n = 1; n > 0 && length < buffer.length; length += n)
        n = readSync(fd, buffer, length, buffer.length - length, null)
      bytes = buffer.subarray(0, length)
    } finally {
      closeSync(fd)
    }
  } catch (e) {
    if (e instanceof FanoutError) throw e
    throw new FanoutError(`${path}: cannot read hostfile: ${unreadable(e)}`, 'HOSTFILE')
  }
  return parseHostfile(decode(bytes, path), path)
}

/**
 * Slots for every node of a SLURM allocation: SLURM_GPUS_ON_NODE, else the count of SLURM_JOB_GPUS.
 * SLURM reports them for the node this runs on; allocations are taken to be alike on every node.
 */
function slurmSlots(env: SourceIo['env'], warn: (m: string) => void): number | undefined {
  const onNode = env.SLURM_GPUS_ON_NODE?.trim()
  if (onNode && /^[0-9]+$/.test(onNode) && Number(onNode) <= 4096) return Number(onNode) || undefined
  if (onNode) warn(`ignoring SLURM_GPUS_ON_NODE=${JSON.stringify(onNode)} (not a GPU count)`)
  const jobGpus = env.SLURM_JOB_GPUS?.split(',').filter((g) => g.trim() !== '') ?? []
  return jobGpus.length > 0 ? jobGpus.length : undefined
}

/**
 * The host list of the SLURM allocation this runs in, if any. `withSlots`: each node's slots from the
 * GPUs SLURM reports here (over SSH, which cannot see the allocation's GPUs); through srun each node's
 * probe counts the GPUs its own step was given instead, which may differ from node to node.
 */
export function slurmHosts(env: SourceIo['env'], withSlots = true): ParsedHostfile | undefined {
  const list = env.SLURM_JOB_NODELIST
  if (!list?.trim()) return undefined
  const { hosts, warnings } = parseHostList(list.trim(), 'SLURM_JOB_NODELIST')
  const slots = withSlots ? slurmSlots(env, (m) => warnings.push(m)) : undefined
  return { hosts: slots === undefined ? hosts : hosts.map((h): HostEntry => ({ ...h, slots })), warnings }
}

export const NO_HOSTS =
  'missing --hostfile FILE or --hosts LIST (the list of nodes), and not inside a SLURM allocation; see fanout --help'

/** Reads the host list from its one source: --hosts, --hostfile (`-`: stdin), or SLURM (args.ts refuses two). */
export async function loadHosts(source: HostSource, io: SourceIo): Promise<ParsedHostfile> {
  if (source.hosts !== undefined) return parseHostList(source.hosts, '--hosts')
  if (source.hostfile === '-') return parseHostfile(decode(await io.readStdin(MAX_BYTES), '<stdin>'), '<stdin>')
  if (source.hostfile !== undefined) return readHostfile(source.hostfile)
  const slurm = slurmHosts(io.env, source.slurmJobId === undefined)
  if (slurm) return slurm
  throw usageError(NO_HOSTS)
}

/** The nodes of the job, in rank order: the host list, narrowed by the selection flags. */
export async function resolveHostList(options: HostSource & Selection, io: SourceIo): Promise<ParsedHostfile> {
  const { hosts, warnings } = await loadHosts(options, io)
  return { hosts: selectHosts(hosts, options), warnings }
}
