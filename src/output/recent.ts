import { hasText, lastLines, lineStart } from './lines.js'

interface Entry {
  rank: number | undefined
  /** One line, or the end of a 'lines' block (each line ending in \n). */
  text: Buffer
  block: boolean
  /**
   * Still a view into its chunk: 'new' until the end of the chunk that brought it, 'old' after; an
   * 'old' view still kept at the end of the next chunk is copied then (see settle()).
   */
  view: 'new' | 'old' | false
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
  // Positions only (no view, no pair per line): this runs for every block of a flood.
  for (let end = block.length - 1; end >= 0 && found < max;) {
    const start = lineStart(block, end)
    if (hasText(block, start, end)) {
      first = start
      found++
    }
    end = start - 1
  }
  return { found, start: first }
}

/**
 * The last `max` lines with text (not only whitespace) of a node, for the failure report. Of a block,
 * only its last lines with text are kept (copied only if they outlive the next chunk: settle()), and
 * nothing is decoded until asked for: a flood of lines costs a scan of each block's end, not a copy
 * and a decode of every line.
 */
export class RecentLines {
  private readonly entries: Entry[] = []
  private total = 0

  constructor(private readonly max: number) {}

  addLine(rank: number | undefined, text: Buffer): void {
    if (hasText(text)) this.push({ rank, text, block: false, view: 'new', withText: 1 })
  }

  addBlock(rank: number | undefined, block: Buffer): void {
    const { found, start } = textLinesFromEnd(block, this.max)
    if (found > 0) this.push({ rank, text: block.subarray(start), block: true, view: 'new', withText: found })
  }

  private push(entry: Entry): void {
    this.entries.push(entry)
    this.total += entry.withText
    // Entries that newer ones make unnecessary go (and with them the chunks their views hold).
    while (this.entries.length > 1 && this.total - this.entries[0]!.withText >= this.max)
      this.total -= this.entries.shift()!.withText
  }

  /**
   * Called once a chunk is done. A view kept would hold its whole chunk (and whatever larger buffer
   * the transport cut it from) alive, so what is kept is copied, but one chunk late: in a flood the
   * next chunk's block has replaced it by then, and nothing is copied at all (measured: copying each
   * block's last lines was about 4 % of a flood's CPU). Chunks are never reused, only kept: at most one
   * chunk's worth per node outlives its turn.
   */
  settle(): void {
    for (const e of this.entries) {
      if (e.view === 'old') {
        e.text = Buffer.from(e.text)
        e.view = false
      } else if (e.view === 'new') e.view = 'old'
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
