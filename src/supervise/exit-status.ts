import { constants } from 'node:os'
import type { ExitStatus } from '../transport/types.js'
import type { StopReason } from './types.js'

// How a node's launcher ended, in the words and codes fanout reports it with.

/** A signal's number on this machine (`TERM` → 15), as a shell counts 128+N. */
const signalNumber = (name: string): number | undefined => (constants.signals as Record<string, number>)[`SIG${name}`]

/** Whether the node failed: lost, killed by a signal, or a non-zero exit. */
export const failed = (s: ExitStatus): boolean => s.lost !== undefined || s.signal !== null || s.code !== 0

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

/**
 * What SLURM said about a step's end that its exit code does not: `srun: error: h2: task 0: Exited
 * with exit code 3` repeats it; a node failure, a cancellation or a time limit does not.
 */
const slurmNotes = (status: ExitStatus): string[] => [
  ...new Set((status.said ?? []).filter((l) => !/: task \d+: Exited with exit code \d+$/.test(l))),
]

/** What SLURM said of a failed step beyond its exit code; a step that ended well needs no remark (srun's notices about the cluster's configuration). */
export const failureNotes = (status: ExitStatus): string[] => (failed(status) ? slurmNotes(status) : [])

/** `exit 137 (killed (SIGKILL; often out of memory))`, `signal TERM (terminated …)`, `connection lost: …`, then SLURM's notes. */
export function describeStatus(status: ExitStatus): string {
  if (status.lost !== undefined) return `connection lost: ${status.lost}`
  const code = exitCodeOf(status)
  const meaning = CODE_MEANINGS[code]
  const head = status.signal !== null ? `signal ${status.signal}` : `exit ${code}`
  const notes = failureNotes(status)
  const said = notes.length > 0 ? `; ${notes.slice(0, 2).join('; ')}` : ''
  return (meaning && code !== 0 ? `${head} (${meaning})` : head) + said
}

export const STOP_CODES: Record<StopReason, number> = { INT: 130, TERM: 143, HUP: 129, TIMEOUT: 124 }

export const stopCode = (reason: StopReason): number => STOP_CODES[reason]
