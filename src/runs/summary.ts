import type { ChalkInstance } from 'chalk'
import { formatAttempts, formatSummary, rankList } from '../supervise/summary.js'
import type { Failure, NodeResult } from '../supervise/types.js'
import type { RunSummary, SummaryNode } from './registry.js'

const failureOf = (n: SummaryNode): Failure => ({
  rank: n.node,
  host: n.host,
  exitCode: n.exit_code,
  what: n.result,
  lastLines: n.last_lines,
})

/** A detached run's summary (node 0's summary.json) as the table an attached run prints at its end. */
export function formatRunSummary(summary: RunSummary, chalk: ChalkInstance, width?: number): string {
  const last = summary.nodes.filter((n) => n.attempt === summary.attempts)
  const results: NodeResult[] = last.map((n) => ({
    rank: n.node,
    host: n.host,
    status: { code: n.code, signal: n.signal, ...(n.lost ? { lost: n.lost } : {}) },
    startedAt: Date.parse(n.started_at),
    endedAt: Date.parse(n.ended_at),
    stoppedByFanout: n.stopped_by_fanout,
    output: { lines: n.lines, ranks: new Set(n.ranks), tail: (k: number) => n.last_lines.slice(-k) },
  }))
  const ranks = (node: number): string => rankList(last.find((n) => n.node === node)?.ranks ?? [])
  const root = summary.root_cause ? failureOf(summary.root_cause) : undefined
  let text = formatSummary(results, root, chalk, ranks, width === undefined ? {} : { width })
  if (summary.attempts > 1) {
    const outcomes = Array.from({ length: summary.attempts }, (_v, i) => {
      const cause = summary.nodes.find((n) => n.attempt === i + 1 && n.root_cause)
      const exitCode = summary.attempt_results?.find((a) => a.attempt === i + 1)?.exit_code ?? cause?.exit_code ?? 0
      return { exitCode, ...(cause ? { failure: failureOf(cause) } : {}) }
    })
    text += formatAttempts(outcomes)
  }
  return text + `run ${summary.run_id}: ${describeEnd(summary)}\n`
}

/** `failed, exit 3: node 1 (h2) exited with code 3`, `succeeded`, `stopped (fanout stop), exit 130`. */
export function describeEnd(summary: RunSummary): string {
  const cause = summary.root_cause
    ? `: node ${summary.root_cause.node} (${summary.root_cause.host}) ${summary.root_cause.result}`
    : ''
  return summary.exit_code === 0 ? summary.state : `${summary.state}, exit ${summary.exit_code}${cause}`
}
