import { CONTROL } from './remote.js'
import { LauncherLogScanner, pickRootCause, type FailureCandidate } from './launcher-log.js'
import type { NodeOutput } from './output/node-output.js'
import { describeStatus, exitCodeOf } from './summary.js'
import type { ExitStatus, RemoteProcess, Transport } from './transport/types.js'

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

/** Failures reported this long after the first one still compete to be the root cause. */
const ROOT_CAUSE_WINDOW_MS = 3000

export type StopReason = 'INT' | 'TERM' | 'HUP' | 'TIMEOUT'

export interface SuperviseOptions {
  /** Where a node's output goes; `onStderrLine` sees each stderr line (how launcher failures are noticed). */
  output: (job: Job, onStderrLine: (text: Buffer, rank: number | undefined) => void) => NodeOutput
  /** Told of each node's end as it happens (--json's exit events). */
  onExit?: (result: NodeResult) => void
  heartbeatMs: number
  /** How long a node may take to exit after SIGTERM/SIGINT before SIGKILL. */
  graceMs: number
  /** Stop every node when one fails (the srun --kill-on-bad-exit model). */
  killOnFailure: boolean
  /** End the whole job after this long (`--timeout`). */
  timeoutMs?: number
  log: (message: string) => void
  now?: () => number
}

export const failed = (s: ExitStatus): boolean => s.lost !== undefined || s.signal !== null || s.code !== 0

/**
 * Watches running jobs: relays their output, keeps each watchdog fed with heartbeats, and tears the
 * whole job down (signal, grace, kill) when a node fails or the user interrupts.
 */
export class Supervisor {
  readonly results: Promise<NodeResult[]>
  stopReason: StopReason | undefined
  private readonly failures: Array<Failure & FailureCandidate> = []
  private readonly running = new Map<number, Job>()
  private stopping = false
  private killTimer: NodeJS.Timeout | undefined

  constructor(
    jobs: readonly Job[],
    private readonly options: SuperviseOptions,
  ) {
    const now = options.now ?? Date.now
    for (const job of jobs) this.running.set(job.rank, job)
    const heartbeat = setInterval(() => {
      for (const job of this.running.values()) job.proc.write(CONTROL.heartbeat)
    }, options.heartbeatMs)
    const deadline = options.timeoutMs === undefined ? undefined : setTimeout(() => this.interrupt('TIMEOUT'), options.timeoutMs)
    this.results = Promise.all(jobs.map((job) => this.watch(job, now))).finally(() => {
      clearInterval(heartbeat)
      clearTimeout(this.killTimer)
      clearTimeout(deadline)
    })
  }

  private async watch(job: Job, now: () => number): Promise<NodeResult> {
    const startedAt = now()
    const lost = new Promise<ExitStatus>((resolve) => job.transport.onLost((reason) => resolve({ code: null, signal: null, lost: reason })))
    const log = new LauncherLogScanner()
    let reported = false
    const fail = (exitCode: number, what: string, seen = { lastLines: output.tail(10), afterStop: this.stopping }): void => {
      if (reported) return
      reported = true
      this.fail({ rank: job.rank, host: job.host, exitCode, what, lastLines: seen.lastLines, consequence: log.onlyConsequences, afterStop: seen.afterStop, at: now() })
    }
    // A rank's own exception, and what the node had printed up to it. torchrun reports the failed
    // worker only after it has stopped the others; stopped itself meanwhile (a peer's failure was seen
    // first), it never does, and its exit and last lines are teardown noise: this is what still tells.
    let raised: { what: string; lastLines: string[]; afterStop: boolean } | undefined
    const output = this.options.output(job, (text, rank) => {
      const worker = log.line(text)
      if (!raised && log.ownError !== undefined) {
        const what = `${rank === undefined ? 'its output showed' : `rank ${rank} raised`} ${log.ownError}`
        raised = { what, lastLines: output.tail(10), afterStop: this.stopping }
      }
      if (!worker) return
      const how = worker.exitCode < 0 ? `was killed by signal ${-worker.exitCode}` : `exited with code ${worker.exitCode}`
      // The tail ends with torchrun's report itself, which `what` says already.
      const seen = { lastLines: output.tail(11).slice(0, -1), afterStop: this.stopping }
      fail(worker.exitCode < 0 ? 128 - worker.exitCode : worker.exitCode, `local rank ${worker.localRank} ${how}`, seen)
    })
    const piped = Promise.all([output.pipe(job.proc.stdout, 'stdout'), output.pipe(job.proc.stderr, 'stderr')])
    const status = await Promise.race([job.proc.done.then(async (s) => (await piped, s)), lost])
    this.running.delete(job.rank)
    // EOF tells the node's watchdog to clear out anything the launcher left behind.
    job.proc.end()
    const stoppedByFanout = this.stopping
    if (failed(status)) {
      const code = exitCodeOf(status) || 1
      if (raised) fail(code, `${describeStatus(status)} after ${raised.what}`, raised)
      else fail(code, describeStatus(status))
    }
    const result: NodeResult = { rank: job.rank, host: job.host, status, startedAt, endedAt: now(), stoppedByFanout, output }
    this.options.onExit?.(result)
    return result
  }

  /** Nodes whose launcher has not ended yet. */
  get runningCount(): number {
    return this.running.size
  }

  /** fanout is stopping the job (failure, Ctrl-C, timeout). */
  get isStopping(): boolean {
    return this.stopping
  }

  /** The root cause of the failure, if the job failed (see pickRootCause). */
  get firstFailure(): Failure | undefined {
    return pickRootCause(this.failures)
  }

  /**
   * Records a node's failure and, on the first, stops every node. Failures soon after the first still
   * count (the first report is a race between the nodes); those after the user's stop do not.
   */
  private fail(failure: Failure & FailureCandidate): void {
    const first = this.failures[0]
    if (first ? failure.at - first.at > ROOT_CAUSE_WINDOW_MS : this.stopping) return
    this.failures.push(failure)
    if (first || !this.options.killOnFailure) return
    this.options.log(`node ${failure.rank} (${failure.host}) failed: ${failure.what}; stopping all ${this.running.size} running node(s)`)
    this.stop(CONTROL.terminate)
  }

  /** Sends `signal` to every running node now, and SIGKILL to those still running after the grace period. */
  private stop(signal: string): void {
    this.stopping = true
    for (const job of this.running.values()) job.proc.write(signal)
    if (signal === CONTROL.kill) return
    this.killTimer ??= setTimeout(() => {
      if (this.running.size === 0) return
      this.options.log(`grace period over: killing ${this.running.size} node(s) still running`)
      this.stop(CONTROL.kill)
    }, this.options.graceMs)
  }

  /** Stops every node because the job cannot go on (a node could not even start). */
  abort(why: string): void {
    this.options.log(`${why}; stopping the ${this.running.size} node(s) that started`)
    this.stop(CONTROL.terminate)
  }

  /**
   * Stops the job: the user asked (Ctrl-C, SIGTERM, SIGHUP: SIGINT to every node, as a terminal's
   * Ctrl-C would) or `--timeout` ran out (SIGTERM). A second request kills at once.
   */
  interrupt(reason: StopReason): void {
    const what = reason === 'INT' ? 'Ctrl-C' : reason === 'TIMEOUT' ? 'timeout' : `SIG${reason}`
    if (this.stopReason) {
      if (reason === 'TIMEOUT') return
      this.options.log(`second ${what}: killing ${this.running.size} node(s) now`)
      this.stop(CONTROL.kill)
      return
    }
    this.stopReason = reason
    const signal = reason === 'TIMEOUT' ? 'SIGTERM' : 'SIGINT'
    this.options.log(`${what}: sending ${signal} to ${this.running.size} node(s); SIGKILL in ${this.options.graceMs / 1000} s${reason === 'TIMEOUT' ? '' : ' or on a second Ctrl-C'}`)
    this.stop(reason === 'TIMEOUT' ? CONTROL.terminate : CONTROL.interrupt)
  }
}
