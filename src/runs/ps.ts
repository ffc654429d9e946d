import type { RunIo } from '../launch/io.js'
import { alignColumns } from '../output/table.js'
import type { NodeStatus } from './messages.js'
import { closeRun, nodeStatus, reachRun } from './nodes.js'
import { nodeRunDir, type Registry, type RunRecord, type RunSummary } from './registry.js'
import { describeEnd } from './summary.js'

/** One run as `ps` shows it. */
export interface RunRow {
  run: string
  /** running, stopping, restarting, succeeded, failed, stopped, timed-out, unreachable, vanished */
  state: string
  exit_code: number | null
  /** The root cause, or why the state is what it is. */
  detail: string | null
  nodes: number
  hosts: string[]
  started_at: string
  ended_at: string | null
  duration_s: number
  command: string[]
  /** Each node's own state, when the nodes were asked. */
  node_states?: Array<{ node: number; host: string; state: string; why?: string }>
}

const ENDED = new Set(['succeeded', 'failed', 'stopped', 'timed-out'])

function row(record: RunRecord, state: string, detail: string | null, summary?: RunSummary): RunRow {
  const started = Date.parse(record.started_at)
  const ended = summary ? Date.parse(summary.ended_at) : undefined
  return {
    run: record.id,
    state,
    exit_code: summary?.exit_code ?? null,
    detail,
    nodes: record.nodes.length,
    hosts: record.nodes.map((n) => n.host),
    started_at: record.started_at,
    ended_at: summary?.ended_at ?? null,
    duration_s: Math.round(((ended ?? Date.now()) - started) / 100) / 10,
    command: record.command,
  }
}

/**
 * A run's state, asked of its nodes: node 0's summary once it ended (cached here: it cannot change),
 * else what node 0's supervisor is doing; a node 0 that cannot be reached, or whose supervisor is gone
 * without a summary, says so.
 */
export async function runState(record: RunRecord, registry: Registry, io: RunIo): Promise<RunRow> {
  const cached = registry.ended(record.id)
  if (cached) return row(record, cached.state, describeEnd(cached), cached)
  const nodes = await reachRun(record, io)
  try {
    const statuses = await Promise.all(
      nodes.map(async (n) => {
        if (!n.transport) return { n, error: n.error ?? 'unreachable' }
        try {
          return { n, status: await nodeStatus(n.transport, record, n.rank) }
        } catch (e) {
          return { n, error: e instanceof Error ? e.message : String(e) }
        }
      }),
    )
    const nodeStates = statuses.map(
      ({ n, status, error }: { n: { rank: number; host: string }; status?: NodeStatus; error?: string }) => {
        const state = error
          ? 'unreachable'
          : !status
            ? 'missing'
            : status.alive
              ? (status.state?.state ?? 'starting')
              : status.state?.state && ENDED.has(status.state.state)
                ? status.state.state
                : 'vanished'
        const why = error ?? status?.state?.why
        return { node: n.rank, host: n.host, state, ...(why ? { why } : {}) }
      },
    )
    const zero = statuses[0]
    const summary = zero && 'status' in zero ? zero.status?.summary : undefined
    let result: RunRow
    if (summary) {
      registry.markEnded(record.id, summary)
      result = row(record, summary.state, describeEnd(summary), summary)
    } else if (!zero || zero.error) result = row(record, 'unreachable', `node 0: ${zero?.error ?? 'not reached'}`)
    else if (zero.status?.alive) {
      const s = zero.status.state
      const others = nodeStates.filter((n) => n.node !== 0 && n.state !== s?.state)
      const note = [s?.why, ...others.map((n) => `node ${n.node} ${n.state}${n.why ? ` (${n.why})` : ''}`)].filter(
        Boolean,
      )
      result = row(record, s?.state ?? 'running', note.length > 0 ? note.join('; ') : null)
    } else
      result = row(
        record,
        'vanished',
        !zero.status
          ? `node 0 has no ${nodeRunDir(record.dir, 0)}`
          : "node 0's supervisor is gone without a summary (the node restarted, or it was killed)",
      )
    return { ...result, node_states: nodeStates }
  } finally {
    closeRun(nodes)
  }
}

const clock = (s: number): string => {
  const t = Math.floor(s)
  const h = Math.floor(t / 3600)
  const m = Math.floor((t % 3600) / 60)
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(t % 60).padStart(2, '0')}s`
}

/** `fanout ps`: a table, newest run first; the state column says how each ended, or that it runs. */
export function formatRuns(rows: readonly RunRow[]): string {
  if (rows.length === 0) return 'no detached runs launched from this machine (fanout --detach ...)\n'
  const lines = alignColumns([
    ['RUN', 'STATE', 'NODES', 'STARTED', 'DURATION', 'COMMAND'],
    ...rows.map((r) => [
      r.run,
      r.exit_code !== null && r.exit_code !== 0 ? `${r.state} (${r.exit_code})` : r.state,
      `${r.nodes} (${r.hosts.slice(0, 3).join(',')}${r.hosts.length > 3 ? ',…' : ''})`,
      r.started_at.replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
      clock(r.duration_s),
      r.command.join(' '),
    ]),
  ])
  const details = rows.flatMap((r) => (r.detail && r.state !== 'succeeded' ? [`  ${r.run}: ${r.detail}`] : []))
  return [...lines, ...(details.length > 0 ? ['', ...details] : [])].join('\n') + '\n'
}
