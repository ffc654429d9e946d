import { hasText, lastLines, linesFromEnd } from './lines.js'

interface Entry {
  rank: number | undefined
  /** One line, or the end of a 'lines' block (each line ending in \n). */
  text: Buffer
  block: boolean
  /** A line still viewing its chunk: copied by settle() if it is still kept then. */
  view: boolean
  /** Its lines with text, counted from its end up to the keeper's maximum. */
  withText: number
}

/**
 * How many of the block's lines have text, counted from its end, stopping at `max`; and where the
 * first of them starts.
 */
function textLinesFromEnd(block: Buffer, max: number): { found: number; start: number } {
  let found = 0
  let first = block.length
  if (max > 0) {
    for (const [start, end] of linesFromEnd(block)) {
      if (!hasText(block.subarray(start, end))) continue
      first = start
      if (++found >= max) break
    }
  }
  return { found, start: first }
}

/**
 * The last `max` lines with text (not only whitespace) of a node, for the failure report. Of a block,
 * only its last lines with text are kept (one copy), and nothing is decoded until asked for: a flood of
 * lines costs a scan of each block's end, not a copy and a decode of every line.
 */
export class RecentLines {
  private readonly entries: Entry[] = []
  private total = 0

  constructor(private readonly max: number) {}

  addLine(rank: number | undefined, text: Buffer): void {
    if (hasText(text)) this.push({ rank, text, block: false, view: true, withText: 1 })
  }

  addBlock(rank: number | undefined, block: Buffer): void {
    const { found, start } = textLinesFromEnd(block, this.max)
    // Only the lines that may be shown, copied: a view would keep the whole chunk (and whatever
    // larger buffer the transport cut it from) alive.
    if (found > 0) this.push({ rank, text: Buffer.from(block.subarray(start)), block: true, view: false, withText: found })
  }

  private push(entry: Entry): void {
    this.entries.push(entry)
    this.total += entry.withText
    // Entries that newer ones make unnecessary go (and with them the chunks their views hold).
    while (this.entries.length > 1 && this.total - this.entries[0]!.withText >= this.max) this.total -= this.entries.shift()!.withText
  }

  /**
   * Copies the single lines still kept, so that they do not hold whole chunks: called once a chunk is
   * done. In a flood they are gone by then (the chunk's block replaced them), and nothing is copied.
   */
  settle(): void {
    for (const e of this.entries) {
      if (e.view) {
        e.text = Buffer.from(e.text)
        e.view = false
      }
    }
  }

  /** The last `n` (at most max) lines with text, oldest first, `[r3] ` before the lines of rank 3. */
  last(n: number): string[] {
    const out: string[] = []
    for (let i = this.entries.length - 1; i >= 0 && out.length < n; i--) {
      const e = this.entries[i]!
      const tag = e.rank === undefined ? '' : `[r${e.rank}] `
      const lines = e.block ? lastLines(e.text, n - out.length, hasText) : [e.text]
      for (let k = lines.length - 1; k >= 0; k--) out.push(tag + lines[k]!.toString('utf8'))
    }
    return out.reverse()
  }
}
