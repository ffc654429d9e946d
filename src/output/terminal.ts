import type { Writable } from 'node:stream'
import { FrameRuns, foldedRun, isFrameLine, mayHoldFrames, type FrameRun } from './cpp-frames.js'
import { whenDrained } from './drain.js'
import { writesNow } from './file-writer.js'
import { plainText, type LiveRegion } from './live.js'
import type { LineSink, OutputLine } from './node-output.js'
import { originKey, type LineOrigin, type Prefixer } from './prefix.js'
import { PrefixedBytes } from './prefixed-bytes.js'

/** Which lines the terminal shows (`--only`, `--only-node`, `--quiet`); the log files get every line. */
export interface LineFilter {
  quiet?: boolean
  /** Global ranks to show (`--only`). */
  ranks?: ReadonlySet<number>
  /** Node ranks to show (`--only-node`). */
  nodes?: ReadonlySet<number>
}

/**
 * Builds the filter. A line without a rank (the launcher's own, or any line with --launcher none) is
 * shown under --only when its node runs one of the ranks asked for: `ranksOf` gives a node's ranks
 * (planned, or as seen so far when torchrun assigns them).
 */
export function lineFilter(
  filter: LineFilter,
  ranksOf: (node: number) => Iterable<number>,
): (origin: LineOrigin) => boolean {
  const { quiet, ranks, nodes } = filter
  if (quiet) return () => false
  return (o) => {
    if (nodes && !nodes.has(o.node)) return false
    if (!ranks) return true
    if (o.rank !== undefined) return ranks.has(o.rank)
    for (const r of ranksOf(o.node)) if (ranks.has(r)) return true
    return false
  }
}

/** Decides when a progress state is printed as a line where it cannot be redrawn in place. */
export class ProgressThrottle {
  private readonly last = new Map<string, number>()

  constructor(private readonly intervalMs: number) {}

  /** True at most once per interval per key; a finished line resets its key, so the next bar shows at once. */
  due(key: string, at: number, finished = false): boolean {
    if (finished) {
      this.last.delete(key)
      return true
    }
    const last = this.last.get(key)
    if (last !== undefined && at - last < this.intervalMs) return false
    this.last.set(key, at)
    return true
  }
}

/** How often a progress bar's state is printed as a line when the terminal is not a TTY. */
export const PROGRESS_INTERVAL_MS = 10_000

export interface TerminalSinkOptions {
  stdout: Writable
  stderr: Writable
  prefixer: Prefixer
  show: (origin: LineOrigin) => boolean
  /** On a TTY: progress bars are redrawn in place there, and lines are printed above it. */
  live?: LiveRegion
  progressIntervalMs?: number
  /** Every line also goes to --log-dir: the line that stands for a folded C++ stack trace says so. */
  logged?: boolean
}

/** Where a pending run of C++ frames came from, and when its first frame arrived: its fold line's prefix. */
type RunOrigin = LineOrigin & { at: number }

const LF = 0x0a

/**
 * The job's lines on fanout's stdout and stderr, prefixed, filtered, with progress bars tamed, and each
 * run of a process's C++ stack frames (torch's `frame #0: …` lines, often thousands at a failure)
 * folded into one line that says how many there were: the log files and --json keep them all.
 */
export class TerminalSink implements LineSink {
  readonly blocks = true
  private readonly throttle: ProgressThrottle
  private blocked: Writable | undefined
  private readonly bytes = new PrefixedBytes()
  /** The frames counted and not printed yet, per origin: their line is printed when the run ends. */
  private readonly frames = new FrameRuns<RunOrigin>()

  constructor(private readonly options: TerminalSinkOptions) {
    this.throttle = new ProgressThrottle(options.progressIntervalMs ?? PROGRESS_INTERVAL_MS)
  }

  write(line: OutputLine): boolean {
    return this.writeBatch([line])
  }

  /** Prints the lines that are shown, one write per run of lines going to the same stream. */
  writeBatch(lines: readonly OutputLine[]): boolean {
    let ok = true
    let dest: Writable | undefined
    const out = this.bytes
    for (const line of lines) {
      if (!this.options.show(line)) continue
      const key = originKey(line)
      if (!this.printed(line, key)) continue
      const to = line.stream === 'stdout' ? this.options.stdout : this.options.stderr
      if (to !== dest) ok = this.send(dest) && ok
      dest = to
      const prefix = this.options.prefixer.prefixBytes(line, line.at)
      // With no run pending, a block without a frame (native searches for a `#`, no decoding) or a line
      // that is no frame goes out as it is: the flood of a job's ordinary lines pays nothing more.
      const plain =
        this.frames.size === 0 &&
        (line.kind === 'lines' ? !mayHoldFrames(line.text) : line.kind === 'progress' || !isFrameLine(line.text))
      if (!plain) this.fold(line, key, prefix)
      else if (line.kind === 'lines') out.lines(line.text, prefix)
      else out.line(prefix, line.text)
    }
    return this.send(dest) && ok
  }

  /** The output of these origins ended: the frame runs they left pending are printed now. */
  end(origins: readonly LineOrigin[]): boolean {
    if (this.frames.size === 0) return true
    let ok = true
    let dest: Writable | undefined
    for (const origin of origins) {
      const run = this.frames.take(originKey(origin))
      if (!run) continue
      const to = origin.stream === 'stdout' ? this.options.stdout : this.options.stderr
      if (to !== dest) ok = this.send(dest) && ok
      dest = to
      this.appendRun(run)
    }
    return this.send(dest) && ok
  }

  /** Writes what was appended to `dest`: false when it is full (its drain resumes the nodes). */
  private send(dest: Writable | undefined): boolean {
    const out = this.bytes
    if (!dest || out.length === 0) return true
    const { live } = this.options
    const written = live
      ? live.print(dest, out.take())
      : writesNow(dest)
        ? out.takeInto((bytes) => dest.writeNow(bytes))
        : dest.write(out.take())
    if (!written) this.blocked = dest
    return written
  }

  /**
   * Appends a line or block of an origin that has a frame run pending or prints frames: frame lines are
   * counted, and the run's line goes out before the first other line of that origin.
   */
  private fold(line: OutputLine, key: string, prefix: Buffer): void {
    const out = this.bytes
    const text = line.text
    const origin = (): RunOrigin => ({
      node: line.node,
      host: line.host,
      rank: line.rank,
      localRank: line.localRank,
      stream: line.stream,
      at: line.at,
    })
    if (line.kind !== 'lines') {
      if (line.kind === 'line' && isFrameLine(text)) return this.frames.add(key, text, origin)
      this.endRun(key)
      out.line(prefix, text)
      return
    }
    if (!mayHoldFrames(text)) {
      this.endRun(key)
      out.lines(text, prefix)
      return
    }
    // Every line ends in \n (a block's last byte is one); the lines between frames go out as blocks.
    let others = 0
    for (let start = 0; start < text.length;) {
      const end = text.indexOf(LF, start)
      if (isFrameLine(text, start, end)) {
        if (others < start) {
          this.endRun(key)
          out.lines(text.subarray(others, start), prefix)
        }
        this.frames.add(key, text.subarray(start, end), origin)
        others = end + 1
      }
      start = end + 1
    }
    if (others < text.length) {
      this.endRun(key)
      out.lines(text.subarray(others), prefix)
    }
  }

  /** Appends the line of `key`'s pending frame run, if it has one (its lines go where this line goes: same origin). */
  private endRun(key: string): void {
    const run = this.frames.take(key)
    if (run) this.appendRun(run)
  }

  /** The line a finished run is printed as, with the prefix its frames would have had. */
  private appendRun(run: FrameRun<RunOrigin>): void {
    this.bytes.line(
      this.options.prefixer.prefixBytes(run.origin, run.origin.at),
      foldedRun(run, this.options.logged === true),
    )
  }

  /** Whether a shown line is printed as a line; a progress state on a TTY goes to the live region instead. */
  private printed(line: OutputLine, key: string): boolean {
    const { live, prefixer } = this.options
    if (line.kind === 'progress') {
      if (live) {
        live.setProgress(key, prefixer.prefix(line, line.at) + plainText(line.text.toString('utf8')))
        return false
      }
      return this.throttle.due(key, line.at)
    }
    live?.clearProgress(key)
    this.throttle.due(key, line.at, true)
    return true
  }

  onDrain(resume: () => void): void {
    whenDrained(this.blocked, resume)
  }
}
