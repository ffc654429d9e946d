import type { NodeOutput } from '../output/node-output.js'
import type { ExitStatus, RemoteProcess, Transport } from '../transport/types.js'

// What the supervisor watches and what it reports, shared with the summary that prints it.

/** A node's launcher, started and ready to be watched. */
export interface Job {
  rank: number
  host: string
  proc: RemoteProcess
  transport: Transport
}

export interface NodeResult {
  rank: number
  host: string
  status: ExitStatus
  startedAt: number
  endedAt: number
  /** True when fanout stopped this node (teardown), so its end is a consequence, not a cause. */
  stoppedByFanout: boolean
  output: Pick<NodeOutput, 'lines' | 'ranks' | 'tail'>
}

/** The root cause of a failed job: the first node that failed, and how. */
export interface Failure {
  rank: number
  host: string
  /** The code fanout exits with: the worker's or launcher's exit code, 128+N for a signal, 255 for a lost node. */
  exitCode: number
  what: string
  /** What the node printed last before it failed (not the noise of the teardown that followed). */
  lastLines: string[]
}

export type StopReason = 'INT' | 'TERM' | 'HUP' | 'TIMEOUT'
