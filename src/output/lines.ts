// Splits a remote process's output into lines, byte-wise and aware of \r progress bars (tqdm, rich).
// Pure: no I/O, no decoding. Only 0x0a and 0x0d are split points; both are ASCII and never occur inside
// a multi-byte UTF-8 character, so splitting there keeps valid UTF-8 valid whatever the chunking.

export type LineEvent =
  | { kind: 'line'; text: Buffer } // a finished line, without its line ending
  | { kind: 'progress'; text: Buffer } // the current state of a line being rewritten with \r (tqdm, rich)
  // `count` finished lines in one piece, each with its \n (the last byte is one), none holding a \r and
  // none longer than the limit: what a flood of log lines mostly is, handed over without a Buffer and
  // an event per line. Equivalent to `count` 'line' events (splitLines gives them back).
  | { kind: 'lines'; text: Buffer; count: number }

export const MAX_LINE_BYTES = 64 * 1024

const LF = 0x0a
const CR = 0x0d
const EOF = -1
const EMPTY = Buffer.alloc(0)

/**
 * Feed chunks with push(), then call end() once. Emitted texts may be views into the chunk just pushed
 * (no copy): use them before mutating or reusing that chunk. What the splitter keeps across pushes is
 * always its own copy.
 */
export class LineSplitter {
  readonly #max: number
  readonly #blocksOn: boolean
  // The pending segment (text since the last \r or line start), as owned copies; concatenated only
  // when the segment ends or grows past #max, so many small chunks do not copy the carry each time.
  #parts: Buffer[] = []
  #partsLen = 0
  // The pending segment ended in a \r that was the last byte seen: CRLF or carriage return is decided
  // by the next byte (or end()).
  #cr = false
  // The last non-empty \r segment of the current line: what the line shows if it ends with nothing new.
  #progress: Buffer | null = null
  #progressFresh = false // set during this push, so possibly a view into the caller's chunk

  /** `blocks`: runs of plain whole lines come out as 'lines' events (off: one 'line' event per line). */
  constructor(maxLineBytes: number = MAX_LINE_BYTES, { blocks = false }: { blocks?: boolean } = {}) {
    if (!Number.isInteger(maxLineBytes) || maxLineBytes < 1) {
      throw new RangeError(`maxLineBytes must be a positive integer, got ${maxLineBytes}`)
    }
    this.#max = maxLineBytes
    this.#blocksOn = blocks
  }

  push(chunk: Buffer): LineEvent[] {
    const out: LineEvent[] = []
    let i = 0
    if (this.#cr && chunk.length > 0) {
      this.#cr = false
      const crlf = chunk[0] === LF
      this.#endSegment(this.#takeCarry(EMPTY), crlf ? LF : CR, out)
      if (crlf) i = 1
    }
    if (this.#blocksOn && i < chunk.length && chunk.indexOf(CR, i) === -1) i = this.#blocks(chunk, i, out)
    // Next positions of \n and \r, each searched again only once passed: one native scan per byte,
    // never a rescan to the end of the chunk for every line.
    let nextLF = -2
    let nextCR = -2
    while (i < chunk.length) {
      if (nextLF !== -1 && nextLF < i) nextLF = chunk.indexOf(LF, i)
      if (nextCR !== -1 && nextCR < i) nextCR = chunk.indexOf(CR, i)
      const j = nextCR === -1 || (nextLF !== -1 && nextLF < nextCR) ? nextLF : nextCR
      if (j === -1) break
      if (j === nextLF) {
        this.#endSegment(this.#takeCarry(chunk.subarray(i, j)), LF, out)
        i = j + 1
      } else if (j + 1 === chunk.length) {
        this.#append(chunk.subarray(i, j)) // a \r at the chunk's end: wait for the next byte
        this.#cr = true
        i = chunk.length
      } else {
        const crlf = chunk[j + 1] === LF
        this.#endSegment(this.#takeCarry(chunk.subarray(i, j)), crlf ? LF : CR, out)
        i = j + (crlf ? 2 : 1)
      }
    }
    if (i < chunk.length) {
      this.#append(chunk.subarray(i))
      if (this.#partsLen > this.#max) {
        // Bound memory: emit the long head now and keep only the tail (at most #max bytes) pending.
        const rest = this.#cutLong(this.#takeCarry(EMPTY), out) // a view into our own copy: keep as is
        this.#parts = [rest]
        this.#partsLen = rest.length
      }
    }
    if (this.#progressFresh && this.#progress !== null) this.#progress = Buffer.from(this.#progress)
    this.#progressFresh = false
    return out
  }

  /** End of stream: a pending partial line (or pending progress state) is emitted as a final 'line'. */
  end(): LineEvent[] {
    const out: LineEvent[] = []
    let seg = this.#takeCarry(EMPTY)
    if (this.#cr) {
      // A \r as the very last byte is a carriage return: its segment becomes the progress state.
      this.#cr = false
      this.#endSegment(seg, CR, out)
      seg = EMPTY
    }
    this.#endSegment(seg, EOF, out)
    this.#progressFresh = false
    return out
  }

  /**
   * The chunk from `i` on holds no \r: its first line ends the pending one as usual (the carry, a
   * progress state), the whole lines after it go out as 'lines' blocks of at most #max bytes. Returns
   * where the per-line scan goes on: the partial last line, or a line too long for a block.
   */
  #blocks(chunk: Buffer, i: number, out: LineEvent[]): number {
    const first = chunk.indexOf(LF, i)
    if (first === -1) return i
    this.#endSegment(this.#takeCarry(chunk.subarray(i, first)), LF, out)
    i = first + 1
    while (i < chunk.length) {
      const last = chunk.lastIndexOf(LF, Math.min(chunk.length - 1, i + this.#max - 1))
      if (last < i) break
      let count = 0
      for (let p = chunk.indexOf(LF, i); p !== -1 && p <= last; p = chunk.indexOf(LF, p + 1)) count++
      out.push({ kind: 'lines', text: chunk.subarray(i, last + 1), count })
      i = last + 1
    }
    return i
  }

  #append(view: Buffer): void {
    if (view.length === 0) return
    this.#parts.push(Buffer.from(view)) // callers may reuse chunk buffers: keep a copy
    this.#partsLen += view.length
  }

  /** The pending segment followed by `tail`, clearing the carry; a view of `tail` when nothing was pending. */
  #takeCarry(tail: Buffer): Buffer {
    if (this.#parts.length === 0) return tail
    const seg = tail.length === 0 && this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat([...this.#parts, tail])
    this.#parts = []
    this.#partsLen = 0
    return seg
  }

  /** Emits leading pieces of at most #max bytes as lines while `seg` is longer than #max; returns the rest. */
  #cutLong(seg: Buffer, out: LineEvent[]): Buffer {
    while (seg.length > this.#max) {
      // Cut before the character that straddles #max: back over at most 3 continuation bytes (10xxxxxx).
      // Invalid UTF-8, or a character longer than #max, is cut at #max: bytes are never dropped.
      let cut = this.#max
      for (let k = 0; k < 3 && cut > 0 && (seg[cut]! & 0xc0) === 0x80; k++) cut--
      if (cut === 0 || (seg[cut]! & 0xc0) === 0x80) cut = this.#max
      out.push({ kind: 'line', text: seg.subarray(0, cut) })
      seg = seg.subarray(cut)
      this.#progress = null // the line's content went out as lines: an older state is stale
    }
    return seg
  }

  /** A segment ended by \n (LF), a lone \r (CR) or the end of the stream (EOF). */
  #endSegment(seg: Buffer, term: number, out: LineEvent[]): void {
    seg = this.#cutLong(seg, out)
    if (term === CR) {
      if (seg.length === 0) return // \r\r, or a line starting with \r: nothing new to show
      this.#progress = seg
      this.#progressFresh = true
      out.push({ kind: 'progress', text: seg })
      return
    }
    // The line shows its last non-empty segment; a line with no text at all is an empty line,
    // except at the end of the stream, where nothing pending means nothing to emit.
    const text = seg.length > 0 ? seg : this.#progress
    if (text !== null) out.push({ kind: 'line', text })
    else if (term === LF) out.push({ kind: 'line', text: EMPTY })
    this.#progress = null
    this.#progressFresh = false
  }
}

/** The lines of a 'lines' block, without their \n (views into it). */
export function splitLines(block: Buffer): Buffer[] {
  const lines: Buffer[] = []
  let start = 0
  for (let p = block.indexOf(LF); p !== -1; p = block.indexOf(LF, p + 1)) {
    lines.push(block.subarray(start, p))
    start = p + 1
  }
  return lines
}

/**
 * Up to `n` last lines of a 'lines' block for which `keep` holds, in order, as owned copies (the block
 * is a view into a chunk that should not be kept alive for them).
 */
export function lastLines(block: Buffer, n: number, keep: (line: Buffer) => boolean): Buffer[] {
  const found: Buffer[] = []
  for (let end = block.length - 1; end >= 0 && found.length < n;) {
    const start = lineStart(block, end)
    const line = block.subarray(start, end)
    if (keep(line)) found.push(Buffer.from(line))
    end = start - 1
  }
  return found.reverse()
}

/**
 * Where the line of a 'lines' block that ends at `end` (its \n) starts: walking a block's lines from
 * its end by position, `end = lineStart(block, end) - 1`, makes nothing per line.
 */
export const lineStart = (block: Buffer, end: number): number => (end === 0 ? 0 : block.lastIndexOf(LF, end - 1) + 1)

/**
 * Whether a line (`buf` from `start` to `end`) holds more than whitespace (as String.prototype.trim
 * sees it): a printable ASCII byte decides at once; only lines without one are decoded.
 */
export function hasText(buf: Buffer, start = 0, end = buf.length): boolean {
  for (let i = start; i < end; i++) {
    const c = buf[i]!
    if (c > 0x20 && c < 0x7f) return true
  }
  return buf.toString('utf8', start, end).trim() !== ''
}
