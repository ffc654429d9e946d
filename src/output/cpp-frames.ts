// torch's C++ stack traces (`frame #0: c10::Error::Error(...) + 0x96 (0x7f… in …/libc10.so)`, one line
// per frame, often dozens per trace and one trace per rank) as the terminal folds them: each run of a
// process's consecutive frame lines becomes one line saying how many there were. Pure: byte-wise
// detection and per-origin counting, no I/O, no decoding.

/** The bytes every frame line holds where its text starts. */
export const FRAME_MARK = Buffer.from('frame #', 'latin1')

const SP = 0x20
const TAB = 0x09
const LF = 0x0a
const HASH = 0x23
const COLON = 0x3a
const OPEN = 0x5b
const CLOSE = 0x5d
const isDigit = (c: number | undefined): boolean => c !== undefined && c >= 0x30 && c <= 0x39
const isLetter = (c: number | undefined): boolean => c !== undefined && (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a

/** Skips spaces and tabs from `i`. */
function blanks(line: Uint8Array, i: number, end: number): number {
  while (i < end && (line[i] === SP || line[i] === TAB)) i++
  return i
}

/**
 * Whether `line` (from `start` to `end`, without its \n) is a frame of a C++ stack trace: after
 * optional blanks and an optional `[rank0]:` (torch's per-rank prefix; any `[<letters><digits>]:`,
 * which also takes torchrun's `[default0]:` of --tee), it starts with `frame #<digits>:`. A line that
 * only mentions "frame #" further on is not one.
 */
export function isFrameLine(line: Uint8Array, start = 0, end = line.length): boolean {
  let i = blanks(line, start, end)
  if (line[i] === OPEN) {
    let j = i + 1
    while (j < end && isLetter(line[j])) j++
    const digits = j
    while (j < end && isDigit(line[j])) j++
    if (digits === i + 1 || j === digits || line[j] !== CLOSE || line[j + 1] !== COLON) return false
    i = blanks(line, j + 2, end)
  }
  if (end - i < FRAME_MARK.length + 2) return false // `frame #`, a digit and the colon
  for (let k = 0; k < FRAME_MARK.length; k++) if (line[i + k] !== FRAME_MARK[k]) return false
  i += FRAME_MARK.length
  if (!isDigit(line[i])) return false
  while (i < end && isDigit(line[i])) i++
  return i < end && line[i] === COLON
}

/**
 * Whether a 'lines' block (whole lines, each ending in \n) may hold a frame line: one of its lines has
 * `frame ` right before its first `#`. A block for which this is false holds none, and goes out as it is.
 *
 * Searched by its `#`s, not as `frame #`: a log's text is full of `f`s, on each of which a search for
 * the whole mark stops (measured on training-log lines: 0.3 ms per MB, as much as fanout's whole
 * handling of them), while a `#` is rare, and one that is not a frame's ends the look at its line.
 */
export function mayHoldFrames(block: Buffer): boolean {
  const before = FRAME_MARK.length - 1 // `frame `
  for (let p = block.indexOf(HASH); p !== -1;) {
    if (p >= before) {
      let k = 0
      while (k < before && block[p - before + k] === FRAME_MARK[k]) k++
      if (k === before) return true
    }
    // Nothing before a frame line's mark holds a `#`: the rest of this line cannot make it one.
    const eol = block.indexOf(LF, p)
    if (eol === -1) return false
    p = block.indexOf(HASH, eol + 1)
  }
  return false
}

/** One run of consecutive frame lines of one origin, not printed yet. */
export interface FrameRun<O> {
  /** Whose run it is, and what its fold line is printed as (prefix, stream): the run's first frame's. */
  origin: O
  count: number
  /** The first frame line (an owned copy): a run of one is printed as itself, not as a fold. */
  first: Buffer
}

/**
 * The pending runs, one per origin key at most: a frame line adds to its origin's run, anything else
 * that origin prints ends it (take). Runs of different origins interleave freely.
 */
export class FrameRuns<O> {
  private readonly runs = new Map<string, FrameRun<O>>()

  /** How many origins have a run pending: 0 lets a caller skip every look-up. */
  get size(): number {
    return this.runs.size
  }

  /** A frame line of `key`: counted in its run, or the first of a new one (`origin()` is called only then). */
  add(key: string, line: Uint8Array, origin: () => O): void {
    const run = this.runs.get(key)
    if (run) run.count++
    else this.runs.set(key, { origin: origin(), count: 1, first: Buffer.from(line) })
  }

  /** Ends `key`'s run: returns it (undefined when none is pending) and forgets it. */
  take(key: string): FrameRun<O> | undefined {
    const run = this.runs.get(key)
    if (run) this.runs.delete(key)
    return run
  }
}

/**
 * What a finished run is printed as, without a prefix or \n: `… 31 C++ frames, in the log` when every
 * line goes to --log-dir too (`logged`), else `… 31 C++ frames (not shown; --log-dir keeps them)`; a
 * run of a single frame is that frame's own line.
 */
export function foldedRun(run: FrameRun<unknown>, logged: boolean): Buffer {
  if (run.count === 1) return run.first
  return Buffer.from(
    `… ${run.count} C++ frames${logged ? ', in the log' : ' (not shown; --log-dir keeps them)'}`,
    'utf8',
  )
}
