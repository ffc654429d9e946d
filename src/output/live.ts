import type { Writable } from 'node:stream'

/** The terminal LiveRegion draws on: what it needs of a TTY WriteStream. */
export interface Terminal {
  write(data: string | Uint8Array): boolean
  columns?: number
  rows?: number
}

// Escape sequences a job may print (colours, cursor moves): dropped from region rows, whose height
// must be exactly one terminal row each.
const ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[ -/]*[0-~]/g
const CONTROLS = /[\x00-\x08\x0a-\x1f\x7f]/g

/** Strips the job's escape sequences and control characters from text shown in a region row. */
export function plainText(text: string): string {
  return text.replace(ESCAPES, '').replace(/\t/g, ' ').replace(CONTROLS, '')
}

/** Cuts `text` (which may hold fanout's own SGR colour codes) to `width` visible columns. */
export function fitWidth(text: string, width: number): string {
  let out = ''
  let used = 0
  for (let i = 0; i < text.length;) {
    const sgr = /^\x1b\[[0-9;]*m/.exec(text.slice(i, i + 24))
    if (sgr) {
      out += sgr[0]
      i += sgr[0].length
      continue
    }
    const ch = String.fromCodePoint(text.codePointAt(i) ?? 32)
    const w =
      /[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\u{1f300}-\u{1faff}\u{20000}-\u{3fffd}]/u.test(
        ch,
      )
        ? 2
        : 1
    if (used + w > width) return out + (out.includes('\x1b[') ? '\x1b[0m' : '')
    out += ch
    used += w
    i += ch.length
  }
  return out
}

const REDRAW_MS = 80

/**
 * The rows at the bottom of a terminal that fanout keeps up to date while the job runs: one per
 * process with a progress bar (a line rewritten with \r) and a status line. Lines of the job are
 * printed above it: the region is erased, the lines written, and the region redrawn, so neither ever
 * garbles the other. Every row is cut to the terminal's width, so the row count is exact.
 */
export class LiveRegion {
  private readonly progress = new Map<string, string>()
  private status = ''
  private drawn = 0
  private timer: NodeJS.Timeout | undefined
  private stopped = false

  constructor(private readonly tty: Terminal) {}

  /** The columns a row may take (the terminal's, as it is now, less one); longer rows are cut. */
  get width(): number {
    return Math.max(20, (this.tty.columns ?? 80) - 1)
  }

  /** The current state of one process's progress line (`text` already prefixed). */
  setProgress(key: string, text: string): void {
    this.progress.set(key, text)
    this.schedule()
  }

  clearProgress(key: string): void {
    if (this.progress.delete(key)) this.schedule()
  }

  setStatus(text: string): void {
    if (text === this.status) return
    this.status = text
    this.schedule()
  }

  /** Writes job output (or a message of fanout's own) above the region. */
  print(dest: Writable | Terminal, data: string | Uint8Array): boolean {
    this.erase()
    const ok = dest.write(data)
    this.schedule()
    return ok
  }

  /** Empties the region (the attempt is over) and erases it; it can be filled again. */
  reset(): void {
    this.progress.clear()
    this.status = ''
    clearTimeout(this.timer)
    this.timer = undefined
    this.erase()
  }

  /** Removes the region for good: what follows (the summary) is printed where it was. */
  stop(): void {
    this.stopped = true
    clearTimeout(this.timer)
    this.timer = undefined
    this.erase()
  }

  private erase(): void {
    if (this.drawn === 0) return
    this.tty.write(`\x1b[${this.drawn}A\r\x1b[J`)
    this.drawn = 0
  }

  private schedule(): void {
    if (this.stopped || this.timer) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.redraw()
    }, REDRAW_MS)
    this.timer.unref()
  }

  private redraw(): void {
    if (this.stopped) return
    const width = this.width
    // Never more rows than half the screen: a 32-rank job must not push the log off the terminal.
    const room = Math.max(1, Math.floor((this.tty.rows ?? 24) / 2) - 1)
    const bars = [...this.progress.values()]
    const rows =
      bars.length > room ? [...bars.slice(0, room - 1), `… and ${bars.length - room + 1} more progress bars`] : bars
    if (this.status) rows.push(this.status)
    this.erase()
    if (rows.length === 0) return
    this.tty.write(rows.map((r) => fitWidth(r, width) + '\n').join(''))
    this.drawn = rows.length
  }
}
