import type { Writable } from 'node:stream'
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
export function lineFilter(filter: LineFilter, ranksOf: (node: number) => Iterable<number>): (origin: LineOrigin) => boolean {
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
}


/** The job's lines on fanout's stdout and stderr, prefixed, filtered, with progress bars tamed. */
export class TerminalSink implements LineSink {
  readonly blocks = true
  private readonly throttle: ProgressThrottle
  private blocked: Writable | undefined
  private readonly bytes = new PrefixedBytes()

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
    const send = (): void => {
      if (!dest || out.length === 0) return
      const { live } = this.options
      const to = dest
      const written = live ? live.print(to, out.take()) : writesNow(to) ? out.takeInto((bytes) => to.writeNow(bytes)) : to.write(out.take())
      if (!written) {
        ok = false
        this.blocked = dest
      }
    }
    for (const line of lines) {
      if (!this.shown(line)) continue
      const to = line.stream === 'stdout' ? this.options.stdout : this.options.stderr
      if (to !== dest) send()
      dest = to
      const prefix = this.options.prefixer.prefixBytes(line, line.at)
      if (line.kind === 'lines') out.lines(line.text, prefix)
      else out.line(prefix, line.text)
    }
    send()
    return ok
  }

  /** Whether a line is printed as a line; a progress state on a TTY goes to the live region instead. */
  private shown(line: OutputLine): boolean {
    const { live, prefixer } = this.options
    if (!this.options.show(line)) return false
    const key = originKey(line)
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
