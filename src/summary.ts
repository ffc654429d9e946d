import type { ChalkInstance } from 'chalk'
import { alignColumns } from './table.js'
import { signalNumber } from './transport/local.js'
import type { ExitStatus } from './transport/types.js'
import { failed, type Failure, type NodeResult, type StopReason } from './supervisor.js'

const CODE_MEANINGS: Record<number, string> = {
  1: 'error',
  2: 'usage error',
  126: 'command not executable',
  127: 'command not found',
  130: 'interrupted (SIGINT)',
  134: 'aborted (SIGABRT)',
  137: 'killed (SIGKILL; often out of memory)',
  139: 'segmentation fault (SIGSEGV)',
  143: 'terminated (SIGTERM)',
  255: 'ssh or connection failure',
}

/** The exit code a shell would report for this status (128+N for a signal, 255 for a lost node). */
export function exitCodeOf(status: ExitStatus): number {
  if (status.lost !== undefined) return 255
  if (status.signal !== null) return 128 + (signalNumber(status.signal) ?? 0)
  return status.code ?? 255
}

/** `exit 137 (killed (SIGKILL; often out of memory))`, `signal TERM (terminated …)`, `connection lost: …` */
export function describeStatus(status: ExitStatus): string {
  if (status.lost !== undefined) return `connection lost: ${status.lost}`
  const code = exitCodeOf(status)
  const meaning = CODE_MEANINGS[code]
  const head = status.signal !== null ? `signal ${status.signal}` : `exit ${code}`
  return meaning && code !== 0 ? `${head} (${meaning})` : head
}

const STOP_CODES: Record<StopReason, number> = { INT: 130, TERM: 143, HUP: 129, TIMEOUT: 124 }

export const stopCode = (reason: StopReason): number => STOP_CODES[reason]

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
export function jobExitCode(results: readonly NodeResult[], firstFailure: Failure | undefined, stopReason: StopReason | undefined): number {
  if (stopReason) return STOP_CODES[stopReason]
  if (firstFailure) return firstFailure.exitCode
  const other = results.find((r) => failed(r.status))
  return other ? exitCodeOf(other.status) || 1 : 0
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`

/** The per-node table, then the root cause with the last lines it printed. */
export function formatSummary(results: readonly NodeResult[], firstFailure: Failure | undefined, chalk: ChalkInstance): string {
  const rows = results.map((r) => {
    const outcome = describeStatus(r.status) + (r.stoppedByFanout && failed(r.status) ? ' [stopped by fanout]' : '')
    return [`n${r.rank}`, r.host, outcome, seconds(r.endedAt - r.startedAt), String(r.output.lines)]
  })
  const [header = '', ...lines] = alignColumns([['node', 'host', 'result', 'duration', 'lines'], ...rows])
  const out = [chalk.bold(header), ...lines.map((text, i) => {
    const r = results[i]
    return r && failed(r.status) ? (r.rank === firstFailure?.rank ? chalk.red(text) : chalk.yellow(text)) : text
  })]
  if (firstFailure) {
    out.push('', chalk.red(`first failure: node ${firstFailure.rank} (${firstFailure.host}): ${firstFailure.what}`))
    if (firstFailure.lastLines.length > 0) out.push('last lines it printed:', ...firstFailure.lastLines.map((l) => `  ${l}`))
  }
  return out.join('\n') + '\n'
}
