/**
 * Splits one node stream (its stdout or its stderr) into the rank tagger's frames and untagged bytes.
 *
 * A frame is `0x1e 'F' RANK ',' LOCAL_RANK ':' LEN 0x1f` followed by exactly LEN payload bytes, where
 * RANK and LOCAL_RANK are 0-9 decimal digits (empty: unknown) and LEN is 1-5 digits, at most 4096; a
 * zero-length frame says that the rank's stream ended. `0x1e 'S' RANK ',' LOCAL_RANK ':0' 0x1f` (no
 * payload) says that the rank's worker started: the tagger writes it once, before it execs the
 * worker, i.e. after the launcher's rendezvous. Anything else is untagged (torchrun's own lines).
 */

/** One piece of the stream: a rank's payload bytes, or untagged bytes (rank and localRank undefined). */
export interface Segment {
  rank?: number
  localRank?: number
  data: Buffer
  /** the rank's stream ended (zero-length frame) */
  end?: boolean
  /** the rank's worker started (an 'S' frame); no data */
  start?: boolean
}

const RS = 0x1e
const MAX_FRAME = 4096
/** 0x1e F, two fields of at most 9 digits, ',', ':', at most 5 digits of LEN, 0x1f. */
const MAX_HEADER = 2 + 9 + 1 + 9 + 1 + 5 + 1
const TERMINATOR = [0x2c, 0x3a, 0x1f] as const
const MAX_DIGITS = [9, 9, 5] as const
const EMPTY = Buffer.alloc(0)

interface Header {
  rank: number | undefined
  localRank: number | undefined
  len: number
  /** An 'S' header: the worker started (len is 0). */
  start: boolean
  /** index just after the header's 0x1f */
  next: number
}
const PARTIAL = 0
const BAD = 1

/** Reads the header candidate at b[p] (which is 0x1e): the header, BAD, or PARTIAL when b ends before it is decided. */
function parseHeader(b: Buffer, p: number): Header | typeof PARTIAL | typeof BAD {
  let q = p + 1
  if (q >= b.length) return PARTIAL
  const kind = b[q++]
  if (kind !== 0x46 && kind !== 0x53) return BAD
  const value: (number | undefined)[] = []
  for (let f = 0; f < 3; f++) {
    let digits = 0
    let v = 0
    for (;;) {
      if (q >= b.length) return PARTIAL
      const c = b[q++]!
      if (c >= 0x30 && c <= 0x39) {
        v = v * 10 + c - 0x30
        if (++digits > MAX_DIGITS[f]! || (f === 2 && v > MAX_FRAME)) return BAD
      } else if (c === TERMINATOR[f] && (digits > 0 || f < 2)) break
      else return BAD
    }
    value.push(digits > 0 ? v : undefined)
  }
  const start = kind === 0x53
  if (start && value[2] !== 0) return BAD
  return { rank: value[0], localRank: value[1], len: value[2]!, start, next: q }
}

function tagged(rank: number | undefined, localRank: number | undefined, data: Buffer, end?: true): Segment {
  const s: Segment = { data }
  if (rank !== undefined) s.rank = rank
  if (localRank !== undefined) s.localRank = localRank
  if (end) s.end = true
  return s
}

export class FrameDemux {
  /** A header candidate cut off by the end of the last chunk (our own copy; it starts with 0x1e). */
  private held: Buffer | undefined
  /** The frame whose payload is being read, with the bytes it still has to come. */
  private frame: { rank: number | undefined; localRank: number | undefined; left: number } | undefined

  push(chunk: Buffer): Segment[] {
    const out: Segment[] = []
    let i = 0
    const held = this.held
    if (held) {
      // Decide the held candidate with just enough of the new chunk; held[1..] holds no 0x1e, so when
      // it is no header all of it is untagged and the chunk is scanned from its start.
      const head = Buffer.concat([held, chunk.subarray(0, MAX_HEADER)])
      const h = parseHeader(head, 0)
      if (h === PARTIAL) {
        this.held = head
        return out
      }
      this.held = undefined
      if (h === BAD) out.push({ data: held })
      else {
        i = h.next - held.length
        this.open(h, out)
      }
    }
    this.scan(chunk, i, out)
    return out
  }

  /** End of stream: anything held back (a partial header) is returned as untagged data. */
  end(): Segment[] {
    const held = this.held
    this.held = undefined
    this.frame = undefined
    return held ? [{ data: held }] : []
  }

  private open(h: Header, out: Segment[]): void {
    if (h.start) out.push({ ...tagged(h.rank, h.localRank, EMPTY), start: true })
    else if (h.len === 0) out.push(tagged(h.rank, h.localRank, EMPTY, true))
    else this.frame = { rank: h.rank, localRank: h.localRank, left: h.len }
  }

  private scan(b: Buffer, i: number, out: Segment[]): void {
    let u = i // start of the current run of untagged bytes
    while (i < b.length) {
      const frame = this.frame
      if (frame) {
        const n = Math.min(frame.left, b.length - i)
        out.push(tagged(frame.rank, frame.localRank, b.subarray(i, i + n)))
        frame.left -= n
        if (frame.left === 0) this.frame = undefined
        u = i += n
        continue
      }
      const j = b.indexOf(RS, i)
      if (j < 0) break
      const h = parseHeader(b, j)
      if (h === BAD) {
        i = j + 1
        continue
      }
      if (u < j) out.push({ data: b.subarray(u, j) })
      if (h === PARTIAL) {
        this.held = Buffer.from(b.subarray(j))
        return
      }
      u = i = h.next
      this.open(h, out)
    }
    if (u < b.length) out.push({ data: b.subarray(u) })
  }
}
