/**
 * What a node's stderr says about how it failed. Two things matter to fanout:
 *
 * 1. torchrun does not exit when a worker fails: with no restarts left it waits in an "exit barrier"
 *    for every other node (up to 5 minutes), while those nodes wait in rendezvous or a collective for
 *    the ranks that died. So the first sign of a failed node is torchrun's report of the worker:
 *      torch 1.x: ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: 3) local_rank: 0 (pid: 1234) of binary: …
 *      torch 2.x: E1127 10:00:00.000000 1234 torch/distributed/elastic/multiprocessing/api.py:869] failed (exitcode: 3) local_rank: 0 (pid: 1234) of binary: …
 * 2. When one rank dies, its peers fail a moment later with "connection closed by peer" and the like,
 *    and which node torchrun reports first is a race (it polls its workers every monitor interval).
 *    The exception lines tell a failure of its own from a consequence of someone else's.
 */
const WORKER_FAILED = /failed \(exitcode: (-?\d+)\) local_rank: (\d+) \(pid: \d+\) of binary/
// torch 2.x prints a worker's uncaught exception with every line prefixed `[rank3]: `.
const RANK_PREFIX = /^\[rank\d+\]:\s?/
// The last line of a Python traceback (`RuntimeError: …`, `torch.distributed.DistNetworkError: …`).
const EXCEPTION_LINE = /^(?:[A-Za-z_][\w.]*\.)?[A-Za-z_]\w*(?:Error|Exception|Interrupt|Exit)(?::|$)/
// Messages of a rank that lost its peers, or of a launcher that was told to stop: consequences.
const PEER_LOSS =
  /Connection closed by peer|Connection reset by peer|Broken pipe|NCCL communicator was aborted|NCCL error|remote process exited|network error|Socket Timeout|DistNetworkError|DistStoreError|RendezvousConnectionError|RendezvousClosedError|Watchdog caught collective operation timeout|SignalException|KeyboardInterrupt/i
const NEEDLES = ['failed (exitcode: ', 'Error', 'Exception', 'Interrupt', 'Exit'].map((s) => Buffer.from(s))
const hasNeedle = (data: Buffer): boolean => NEEDLES.some((n) => data.indexOf(n) !== -1)

export interface WorkerFailure {
  localRank: number
  /** The worker's exit code; a negative value is a signal number (Python's convention). */
  exitCode: number
}

/** Reads a launcher's stderr, chunk by chunk (lines split across chunks are joined first) or line by line. */
export class LauncherLogScanner {
  /** The first exception of its own raised on this node (not a peer-loss error): its last traceback line. */
  ownError: string | undefined
  /** Some rank on this node reported losing its peers. */
  peerLoss = false
  private carry = ''

  /** Returns torchrun's report of a failed worker, if this chunk completed one. */
  push(chunk: Buffer): WorkerFailure | undefined {
    // Fast path: most chunks hold none of the words, and a line split across chunks is caught by carry.
    if (this.carry === '' && !hasNeedle(chunk)) {
      const nl = chunk.lastIndexOf(0x0a)
      this.carry = chunk
        .subarray(nl + 1)
        .toString('utf8')
        .slice(-300)
      return undefined
    }
    const text = this.carry + chunk.toString('utf8')
    const nl = text.lastIndexOf('\n')
    this.carry = text.slice(nl + 1).slice(-300)
    let failure: WorkerFailure | undefined
    for (const line of nl === -1 ? [] : text.slice(0, nl).split('\n')) {
      const found = this.scan(line) // every line is scanned: a later one may still be an exception
      failure ??= found
    }
    return failure
  }

  /** The same for one whole line, without its newline (what the output layer hands over). */
  line(text: Buffer): WorkerFailure | undefined {
    return hasNeedle(text) ? this.scan(text.toString('utf8')) : undefined
  }

  private scan(line: string): WorkerFailure | undefined {
    const m = WORKER_FAILED.exec(line)
    if (m) return { exitCode: Number(m[1]), localRank: Number(m[2]) }
    const trimmed = line.trim().replace(RANK_PREFIX, '')
    if (EXCEPTION_LINE.test(trimmed)) {
      if (PEER_LOSS.test(line)) this.peerLoss = true
      else this.ownError ??= trimmed.length > 200 ? `${trimmed.slice(0, 200)}…` : trimmed
    }
    return undefined
  }

  /** True when everything this node said points at another node: it failed because a peer did. */
  get onlyConsequences(): boolean {
    return this.peerLoss && this.ownError === undefined
  }
}

export interface FailureCandidate {
  /** Only peer-loss errors on this node (see LauncherLogScanner.onlyConsequences). */
  consequence: boolean
  /** Reported after fanout had started stopping nodes: possibly fanout's own doing. */
  afterStop: boolean
  at: number
}

/**
 * The root cause among failures reported close together: a node that failed on its own beats one
 * that only lost its peers, a failure seen before fanout stopped anything beats one after, and
 * otherwise the earliest report wins.
 */
export function pickRootCause<T extends FailureCandidate>(candidates: readonly T[]): T | undefined {
  const key = (c: T): number[] => [c.consequence ? 1 : 0, c.afterStop ? 1 : 0, c.at]
  let best: T | undefined
  for (const c of candidates) {
    if (!best) best = c
    else {
      const [a, b] = [key(c), key(best)]
      const i = a.findIndex((v, k) => v !== b[k])
      if (i !== -1 && (a[i] ?? 0) < (b[i] ?? 0)) best = c
    }
  }
  return best
}
