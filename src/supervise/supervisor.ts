import { CONTROL } from '../node/job.js'
import { LauncherLogScanner, pickRootCause, type FailureCandidate } from './launcher-log.js'
import type { NodeOutput, NodeOutputHooks } from '../output/node-output.js'
import { describeStatus, exitCodeOf, failed } from './exit-status.js'
import type { Failure, Job, NodeResult, StopReason } from './types.js'
import type { ExitStatus } from '../transport/types.js'

export type { Failure, Job, NodeResult, StopReason } from './types.js'

/** Failures reported this long after the first one still compete to be the root cause. */
const ROOT_CAUSE_WINDOW_MS = 3000

export interface SuperviseOptions {
  /** Where a node's output goes; the hooks see each stderr line (how launcher failures are noticed) and each worker's start. */
  output: (job: Job, hooks: Required<NodeOutputHooks>) => NodeOutput
  /** Told of each node's end as it happens (--json's exit events). */
  onExit?: (result: NodeResult) => void
  heartbeatMs: number
  /** How long a node may take to exit after SIGTERM/SIGINT before SIGKILL. */
  graceMs: number
  /** Stop every node when one fails (the srun --kill-on-bad-exit model). */
  killOnFailure: boolean
  /** End the whole job after this long (`--timeout`). */
  timeoutMs?: number
  /**
   * torchrun's --max-restarts: it restarts a node's failed workers this many times, reporting each
   * failure as it would a final one. Only the failure after the last restart fails the node.
   */
  workerRestarts?: number
  /**
   * The workers can print their Python stacks (the rank tagger's bootstrap): on --timeout and on a
   * rendezvous that does not complete, they are asked to first, and given this long to print them
   * before anything is stopped. Absent: no stacks (--no-rank-tags, --launcher none).
   */
  stacksMs?: number
  /**
   * `--rdzv-timeout`: a node whose workers have not started this long after the launch (workerStarted
   * was never called for it) while the job runs is a failure, named, and the job is stopped.
   */
  rendezvousTimeoutMs?: number
  /** More to say about a rendezvous that did not complete: which nodes are connected to the master's store, which not. */
  describeRendezvous?: () => Promise<{ text: string; missing: readonly number[] } | undefined>
  log: (message: string) => void
  now?: () => number
}

/** The exit code of a job whose rendezvous did not complete within --rdzv-timeout (as for --timeout). */
const RENDEZVOUS_EXIT_CODE = 124

/**
 * Watches running jobs: relays their output, keeps each watchdog fed with heartbeats, and tears the
 * whole job down (signal, grace, kill) when a node fails or the user interrupts.
 */
export class Supervisor {
  readonly results: Promise<NodeResult[]>
  stopReason: StopReason | undefined
  private readonly failures: Array<Failure & FailureCandidate> = []
  private readonly running = new Map<number, Job>()
  /** Each node's output, for the last lines of a node named without a failure of its own. */
  private readonly outputs = new Map<number, Pick<NodeOutput, 'tail'>>()
  /** Nodes with a worker started (the rank tagger said so). */
  private readonly started = new Set<number>()
  private stopping = false
  private killTimer: NodeJS.Timeout | undefined
  /** Runs the stop that waits for the workers' stacks (--timeout, --rdzv-timeout). */
  private stacksTimer: NodeJS.Timeout | undefined
  private readonly now: () => number

  constructor(
    jobs: readonly Job[],
    private readonly options: SuperviseOptions,
  ) {
    const now = options.now ?? Date.now
    this.now = now
    for (const job of jobs) this.running.set(job.rank, job)
    const heartbeat = setInterval(() => {
      for (const job of this.running.values()) job.proc.write(CONTROL.heartbeat)
    }, options.heartbeatMs)
    const deadline =
      options.timeoutMs === undefined ? undefined : setTimeout(() => this.interrupt('TIMEOUT'), options.timeoutMs)
    const rendezvous =
      options.rendezvousTimeoutMs === undefined
        ? undefined
        : setTimeout(() => void this.rendezvousTimedOut(), options.rendezvousTimeoutMs)
    this.results = Promise.all(jobs.map((job) => this.watch(job, now))).finally(() => {
      clearInterval(heartbeat)
      clearTimeout(this.killTimer)
      clearTimeout(deadline)
      clearTimeout(rendezvous)
      clearTimeout(this.stacksTimer)
    })
  }

  /** A worker of this node started: past its rendezvous. */
  workerStarted(rank: number): void {
    this.started.add(rank)
  }

  /** Asks every running node's workers to print the Python stack of every thread (SIGQUIT, --timeout). */
  dumpStacks(why: string): boolean {
    if (this.options.stacksMs === undefined || this.running.size === 0) {
      this.options.log(
        `${why}: no stacks to show (they need the rank tagger: not with --no-rank-tags or --launcher none)`,
      )
      return false
    }
    this.options.log(`${why}: the Python stack of every thread of every rank follows`)
    for (const job of this.running.values()) job.proc.write(CONTROL.stacks)
    return true
  }

  /** Runs `then` once the workers had time to print their stacks, or at once without stacks. */
  private afterStacks(why: string, then: () => void): void {
    if (!this.dumpStacks(why)) return then()
    this.stacksTimer = setTimeout(then, this.options.stacksMs)
  }

  /**
   * --rdzv-timeout ran out with nodes whose workers never started: torch would wait 15-30 minutes in
   * silence. The first such node is the failure (exit 124), every one is named with what it printed
   * last, the running ranks show their stacks, and the job is stopped.
   */
  private async rendezvousTimedOut(): Promise<void> {
    if (this.stopping) return
    const notStarted = [...this.running.values()].filter((j) => !this.started.has(j.rank))
    if (notStarted.length === 0) return
    const s = Math.round((this.options.rendezvousTimeoutMs ?? 0) / 1000)
    const joined = await this.options.describeRendezvous?.().catch(() => undefined)
    if (this.stopping) return
    // The nodes not even connected to the store are the ones holding the rendezvous up; without that
    // to go by (or if it names none of them), every node whose workers have not started is.
    const suspects = notStarted.filter((j) => joined?.missing.includes(j.rank))
    const named = suspects.length > 0 ? suspects : notStarted
    const first = named[0] as Job
    const others =
      this.started.size === 0
        ? 'no node has started its workers'
        : `node(s) ${[...this.started].sort((a, b) => a - b).join(', ')} started theirs`
    const why = `${others}${joined ? `; ${joined.text}` : ''}`
    this.options.log(
      `rendezvous incomplete after ${s} s (--rdzv-timeout): ${named.map((j) => `node ${j.rank} (${j.host})`).join(', ')} held it up; ${why}`,
    )
    for (const j of named.slice(1)) {
      const tail = this.outputs.get(j.rank)?.tail(5) ?? []
      this.options.log(
        `node ${j.rank} (${j.host}) last printed:${tail.length === 0 ? ' nothing' : tail.map((l) => `\n  ${l}`).join('')}`,
      )
    }
    const what = `its workers had not started ${s} s after the launch: the rendezvous did not complete (${why})`
    const failure = {
      rank: first.rank,
      host: first.host,
      exitCode: RENDEZVOUS_EXIT_CODE,
      what,
      lastLines: this.outputs.get(first.rank)?.tail(10) ?? [],
      consequence: false,
      afterStop: false,
      at: this.now(),
    }
    this.stopping = true // no other failure competes meanwhile; the stacks come first
    const stop = (): void => {
      if (this.stopReason) return // the user stopped it meanwhile: their stop is the outcome
      this.stopping = false
      this.fail(failure)
    }
    if (this.started.size > 0) this.afterStacks('rendezvous incomplete', stop)
    else stop()
  }

  private async watch(job: Job, now: () => number): Promise<NodeResult> {
    const startedAt = now()
    const lost = new Promise<ExitStatus>((resolve) =>
      job.transport.onLost((reason) => resolve({ code: null, signal: null, lost: reason })),
    )
    const log = new LauncherLogScanner()
    let reported = false
    const fail = (
      exitCode: number,
      what: string,
      seen = { lastLines: output.tail(10), afterStop: this.stopping },
    ): void => {
      if (reported) return
      reported = true
      this.fail({
        rank: job.rank,
        host: job.host,
        exitCode,
        what,
        lastLines: seen.lastLines,
        consequence: log.onlyConsequences,
        afterStop: seen.afterStop,
        at: now(),
      })
    }
    // A rank's own exception, and what the node had printed up to it. torchrun reports the failed
    // worker only after it has stopped the others; stopped itself meanwhile (a peer's failure was seen
    // first), it never does, and its exit and last lines are teardown noise: this is what still tells.
    let raised: { what: string; lastLines: string[]; afterStop: boolean; at: number } | undefined
    let reports = 0
    const onWorkerStart = (): void => this.workerStarted(job.rank)
    const output = this.options.output(job, {
      onWorkerStart,
      onStderrLine: (text, rank) => {
        const worker = log.line(text)
        if (!raised && log.ownError !== undefined) {
          const what = `${rank === undefined ? 'its output showed' : `rank ${rank} raised`} ${log.ownError}`
          raised = { what, lastLines: output.tail(10), afterStop: this.stopping, at: now() }
        }
        if (!worker) return
        const how =
          worker.exitCode < 0 ? `was killed by signal ${-worker.exitCode}` : `exited with code ${worker.exitCode}`
        const restarts = this.options.workerRestarts ?? 0
        if (++reports <= restarts && !this.stopping) {
          // torchrun restarts the node's workers itself; its report reads the same as a final one.
          this.options.log(
            `node ${job.rank} (${job.host}): local rank ${worker.localRank} ${how}; torchrun restarts its workers (restart ${reports} of ${restarts}, --max-restarts)`,
          )
          raised = undefined
          return
        }
        // A rank's own exception just before is what failed: its lines are the ones to show, not the
        // peers' that followed (torch 2's tracebacks are long enough to push it out of the tail). Else
        // the tail, which ends with torchrun's report itself, which `what` says already.
        const cause = raised && now() - raised.at <= ROOT_CAUSE_WINDOW_MS ? raised : undefined
        const seen = cause
          ? { lastLines: cause.lastLines, afterStop: this.stopping }
          : { lastLines: output.tail(11).slice(0, -1), afterStop: this.stopping }
        fail(
          worker.exitCode < 0 ? 128 - worker.exitCode : worker.exitCode,
          `local rank ${worker.localRank} ${how}${cause ? ` after ${cause.what}` : ''}`,
          seen,
        )
      },
    })
    this.outputs.set(job.rank, output)
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
    const result: NodeResult = {
      rank: job.rank,
      host: job.host,
      status,
      startedAt,
      endedAt: now(),
      stoppedByFanout,
      output,
    }
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
    this.options.log(
      `node ${failure.rank} (${failure.host}) failed: ${failure.what}; stopping all ${this.running.size} running node(s)`,
    )
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
      clearTimeout(this.stacksTimer)
      this.options.log(`second ${what}: killing ${this.running.size} node(s) now`)
      this.stop(CONTROL.kill)
      return
    }
    this.stopReason = reason
    const signal = reason === 'TIMEOUT' ? 'SIGTERM' : 'SIGINT'
    const stop = (): void => {
      clearTimeout(this.stacksTimer)
      this.options.log(
        `${what}: sending ${signal} to ${this.running.size} node(s); SIGKILL in ${this.options.graceMs / 1000} s${reason === 'TIMEOUT' ? '' : ' or on a second Ctrl-C'}`,
      )
      this.stop(reason === 'TIMEOUT' ? CONTROL.terminate : CONTROL.interrupt)
    }
    // Where is it stuck: a job that ran out of time shows its stacks before anything is stopped.
    if (reason === 'TIMEOUT') this.afterStacks('timeout', stop)
    else stop()
  }
}
