import type { HostsOptions } from './parse.js'
import type { HostEntry } from '../hosts/hostfile.js'
import { resolveHostList, type SourceIo } from '../hosts/hostsource.js'
import { alignColumns } from '../output/table.js'

/**
 * One node as `fanout hosts --json` prints it: a stable format for scripts. null means "not in the
 * host list": the ssh config decides user and port, the GPU probe decides slots, and a node without
 * `gpus` keeps the GPUs it sees (no CUDA_VISIBLE_DEVICES from fanout).
 */
export interface HostRow {
  rank: number
  host: string
  user: string | null
  port: number | null
  /** Processes on the node, when known without probing. */
  slots: number | null
  /** GPU indices chosen by the selection: the node's CUDA_VISIBLE_DEVICES. */
  gpus: number[] | null
}

export const hostRows = (hosts: readonly HostEntry[]): HostRow[] =>
  hosts.map((h, rank) => ({ rank, host: h.host, user: h.user ?? null, port: h.port ?? null, slots: h.slots ?? null, gpus: h.gpus ?? null }))

/** The JSON array, or a table with `-` where a value is unknown. */
export function formatHosts(hosts: readonly HostEntry[], json: boolean): string {
  const rows = hostRows(hosts)
  if (json) return JSON.stringify(rows, null, 2) + '\n'
  const cell = (v: string | number | number[] | null): string => (v === null ? '-' : String(v))
  const table = rows.map((r) => [r.rank, r.host, r.user, r.port, r.slots, r.gpus].map(cell))
  return alignColumns([['rank', 'host', 'user', 'port', 'slots', 'gpus'], ...table]).join('\n') + '\n'
}

/** `fanout hosts`: resolves the host list and the selection, prints it, connects to nothing. */
export async function runHostsCommand(options: HostsOptions, io: SourceIo & { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream }): Promise<number> {
  const { hosts, warnings } = await resolveHostList(options, io)
  for (const w of warnings) io.stderr.write(`fanout: warning: ${w}\n`)
  io.stdout.write(formatHosts(hosts, options.json))
  return 0
}
