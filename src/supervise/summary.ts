import type { ChalkInstance } from 'chalk'
import { alignColumns, collapseRuns } from '../output/table.js'
import { describeStatus, exitCodeOf, failed, failureNotes, STOP_CODES } from './exit-status.js'
import type { Failure, NodeResult, StopReason } from './types.js'

export { describeStatus, exitCodeOf, stopCode } from './exit-status.js'

/** One line per attempt of a job run with --restarts, after the last attempt's table. */
export function formatAttempts(outcomes: ReadonlyArray<{ exitCode: number; failure?: Failure }>): string {
  const lines = outcomes.map((o, i) => {
    const cause = o.failure ? ` (first failure: node ${o.failure.rank} (${o.failure.host}): ${o.failure.what})` : ''
    return `  attempt ${i + 1}: ${o.exitCode === 0 ? 'succeeded' : `failed, exit ${o.exitCode}${cause}`}`
  })
  return ['attempts:', ...lines].join('\n') + '\n'
}

/**
 * fanout's own exit code: 130/143/129 when the user stopped the job, 124 after --timeout, else the first failed node's
 * code (the root cause, not the nodes fanout stopped because of it), else 0.
 */
export function jobExitCode(
  results: readonly NodeResult[],
  firstFailure: Failure | undefined,
  stopReason: StopReason | undefined,
): number {
  if (stopReason) return STOP_CODES[stopReason]
  if (firstFailure) return firstFailure.exitCode
  const other = results.find((r) => failed(r.status))
  return other ? exitCodeOf(other.status) || 1 : 0
}

/** The column of the summary table that says how a node ended: the one cut to the terminal's width. */
const RESULT = 3

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`

/** `0-3,8`: a node's global ranks, runs collapsed; `-` when unknown. */
export const rankList = (ranks: readonly number[]): string => collapseRuns(ranks) || '-'

/** One node's result as summary.json and --json report it. */
export interface NodeRecord {
  node: number
  host: string
  ranks: string
  exit_code: number
  launcher_exit_code: number
  signal: string | null
  lost: string | null
  result: string
  started_at: string
  ended_at: string
  duration_s: number
  lines: number
  stopped_by_fanout: boolean
  root_cause: boolean
  attempt?: number
  /** What SLURM said of the node's step (--via srun) beyond its exit code: a node failure, a cancellation. */
  slurm?: string[]
}

/**
 * One node's result. For the root cause, `exit_code` and `result` say what failed there (a worker's
 * exit code as torchrun reported it), and `launcher_exit_code` how its launcher ended after.
 */
export function nodeRecord(r: NodeResult, ranks: string, rootCause?: Failure): NodeRecord {
  const root = rootCause?.rank === r.rank ? rootCause : undefined
  return {
    node: r.rank,
    host: r.host,
    ranks,
    exit_code: root?.exitCode ?? exitCodeOf(r.status),
    launcher_exit_code: exitCodeOf(r.status),
    signal: r.status.signal,
    lost: r.status.lost ?? null,
    result: root ? root.what : describeStatus(r.status),
    root_cause: root !== undefined,
    started_at: new Date(r.startedAt).toISOString(),
    ended_at: new Date(r.endedAt).toISOString(),
    duration_s: Math.round(r.endedAt - r.startedAt) / 1000,
    lines: r.output.lines,
    stopped_by_fanout: r.stoppedByFanout,
    ...(failureNotes(r.status).length > 0 ? { slurm: failureNotes(r.status) } : {}),
  }
}

/** Cuts `text` to at most `max` characters, the last of them `…` when it was longer. */
function cut(text: string, max: number): string {
  if (text.length <= max) return text
  let end = Math.max(0, max - 1)
  const last = text.charCodeAt(end - 1)
  if (last >= 0xd800 && last <= 0xdbff) end-- // never half of a surrogate pair
  return text.slice(0, end).trimEnd() + '…'
}

/** A result cut to `max` characters, its tag (` [root cause]`) kept whole where there is room: it says what the row is. */
function cutResult(what: string, tag: string, max: number): string {
  return tag && max >= tag.length + 2 ? cut(what, max - tag.length) + tag : cut(what + tag, max)
}

export interface SummaryOptions {
  /**
   * The terminal's columns: the result column is cut (ending in `…`) so that every row of the table
   * fits, the other columns stay whole. Unset: nothing is cut (the log).
   */
  width?: number
}

/**
 * The root cause first (which node, how, and the last lines it printed), then the per-node table with
 * the root cause's row on top and every other failed node after it.
 */
export function formatSummary(
  results: readonly NodeResult[],
  firstFailure: Failure | undefined,
  chalk: ChalkInstance,
  ranks: (node: number) => string = () => '-',
  options: SummaryOptions = {},
): string {
  const out: string[] = []
  if (firstFailure) {
    out.push(chalk.red(`first failure: node ${firstFailure.rank} (${firstFailure.host}): ${firstFailure.what}`))
    if (firstFailure.lastLines.length > 0)
      out.push('last lines it printed:', ...firstFailure.lastLines.map((l) => `  ${l}`))
    out.push('')
  }
  const order = [...results].sort(
    (a, b) => Number(b.rank === firstFailure?.rank) - Number(a.rank === firstFailure?.rank) || a.rank - b.rank,
  )
  const rows = order.map((r) => {
    // The root cause's row says what failed there (a worker's exit), not how its launcher ended after.
    const [what, tag] =
      r.rank === firstFailure?.rank
        ? [firstFailure.what, ' [root cause]']
        : [describeStatus(r.status), r.stoppedByFanout && failed(r.status) ? ' [stopped by fanout]' : '']
    return {
      what,
      tag,
      cells: [
        `n${r.rank}`,
        r.host,
        ranks(r.rank),
        what + tag,
        seconds(r.endedAt - r.startedAt),
        String(r.output.lines),
      ],
    }
  })
  const head = ['node', 'host', 'ranks', 'result', 'duration', 'lines']
  if (options.width !== undefined) {
    // The other columns, as wide as alignColumns makes them, and two spaces between each two: the
    // result column gets the rest (at least its header's width: a row may overflow then).
    const others = head.reduce(
      (sum, h, c) => (c === RESULT ? sum : sum + Math.max(h.length, ...rows.map((r) => r.cells[c]?.length ?? 0))),
      0,
    )
    const room = Math.max(head[RESULT]!.length, options.width - others - 2 * (head.length - 1))
    for (const r of rows) r.cells[RESULT] = cutResult(r.what, r.tag, room)
  }
  const [header = '', ...lines] = alignColumns([head, ...rows.map((r) => r.cells)])
  out.push(
    chalk.bold(header),
    ...lines.map((text, i) => {
      const r = order[i]
      return r && failed(r.status) ? (r.rank === firstFailure?.rank ? chalk.red(text) : chalk.yellow(text)) : text
    }),
  )
  return out.join('\n') + '\n'
}
