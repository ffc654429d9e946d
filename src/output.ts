import type { Readable, Writable } from 'node:stream'
import type { ChalkInstance } from 'chalk'

const NEWLINE = 0x0a
/** A line longer than this without a newline is printed in pieces rather than held back forever. */
const MAX_LINE_BYTES = 64 * 1024
/** How much of each stream's end is kept to show in a failure summary. */
const TAIL_BYTES = 4096

/** Moves a cut position back to the start of a UTF-8 character (continuation bytes are 10xxxxxx). */
function utf8Boundary(data: Buffer, at: number): number {
  let cut = at
  while (cut > at - 4 && ((data[cut] ?? 0) & 0xc0) === 0x80) cut--
  return cut
}

/**
 * Turns a byte stream into whole, prefixed lines. Works on bytes so that a UTF-8 character split
 * across chunks is never broken (a newline byte never occurs inside a multi-byte character), and
 * builds one buffer per chunk instead of one string per line.
 */
export class LinePrefixer {
  private carry: Buffer = Buffer.alloc(0)
  lines = 0

  constructor(private readonly prefix: Buffer) {}

  /** The prefixed whole lines completed by this chunk, or null if none. */
  push(chunk: Buffer): Buffer | null {
    const data = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk
    const parts: Buffer[] = []
    let start = 0
    for (let nl = data.indexOf(NEWLINE); nl !== -1; nl = data.indexOf(NEWLINE, start)) {
      parts.push(this.prefix, data.subarray(start, nl + 1))
      start = nl + 1
      this.lines++
    }
    while (data.length - start > MAX_LINE_BYTES) {
      const end = utf8Boundary(data, start + MAX_LINE_BYTES)
      parts.push(this.prefix, data.subarray(start, end), Buffer.from('\n'))
      start = end
    }
    this.carry = start === data.length ? Buffer.alloc(0) : Buffer.from(data.subarray(start))
    return parts.length > 0 ? Buffer.concat(parts) : null
  }

  /** The last line if it had no newline, completed with one. */
  end(): Buffer | null {
    if (this.carry.length === 0) return null
    this.lines++
    const out = Buffer.concat([this.prefix, this.carry, Buffer.from('\n')])
    this.carry = Buffer.alloc(0)
    return out
  }
}

export interface NodeLabel {
  rank: number
  host: string
}

const PALETTE = ['cyan', 'green', 'yellow', 'magenta', 'blue', 'cyanBright', 'greenBright', 'yellowBright', 'magentaBright', 'blueBright'] as const

/** `[n0 host]` prefixes, padded to one width, one colour per node; stderr is marked with `!`. */
export function makePrefixes(nodes: readonly NodeLabel[], chalk: ChalkInstance): Map<number, { out: Buffer; err: Buffer }> {
  const labels = nodes.map((n) => `[n${n.rank} ${n.host}]`)
  const width = Math.max(...labels.map((l) => l.length))
  const prefixes = new Map<number, { out: Buffer; err: Buffer }>()
  nodes.forEach((node, i) => {
    const label = labels[i] ?? ''
    const colour = chalk[PALETTE[node.rank % PALETTE.length] ?? 'cyan']
    const pad = ' '.repeat(width - label.length)
    prefixes.set(node.rank, {
      out: Buffer.from(`${colour(label)}${pad}  `),
      err: Buffer.from(`${colour(label)}${pad}${chalk.red('!')} `),
    })
  })
  return prefixes
}

/** What one node printed: line count and the end of its output (for failure reports). */
export class NodeOutputStats {
  lines = 0
  private recent: Buffer = Buffer.alloc(0)

  record(chunk: Buffer): void {
    this.recent = Buffer.concat([this.recent, chunk.subarray(-TAIL_BYTES)]).subarray(-TAIL_BYTES)
  }

  /** The last `n` non-empty lines printed, stdout and stderr together in arrival order. */
  tail(n: number): string[] {
    if (n <= 0) return []
    return this.recent.toString('utf8').split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.trim() !== '').slice(-n)
  }
}

// Sources paused because their terminal stream is full; one 'drain' listener per terminal stream
// resumes them all (a listener per node would trip Node's listener-leak warning on big clusters).
const pausedBy = new WeakMap<Writable, Set<Readable>>()

function pauseUntilDrain(source: Readable, dest: Writable): void {
  let paused = pausedBy.get(dest)
  if (!paused) {
    const set = new Set<Readable>()
    pausedBy.set(dest, (paused = set))
    dest.once('drain', () => {
      pausedBy.delete(dest)
      for (const s of set) s.resume()
    })
  }
  paused.add(source)
  source.pause()
}

/**
 * Copies a node's stream to a terminal stream with prefixes, pausing the node when the terminal
 * cannot keep up (backpressure instead of unbounded buffering). Resolves when the stream has ended.
 */
export function pipePrefixed(source: Readable, dest: Writable, prefix: Buffer, stats: NodeOutputStats): Promise<void> {
  const lines = new LinePrefixer(prefix)
  return new Promise((resolve) => {
    source.on('data', (chunk: Buffer) => {
      stats.record(chunk)
      const out = lines.push(chunk)
      if (out && !dest.write(out)) pauseUntilDrain(source, dest)
    })
    let finished = false
    const finish = (): void => {
      if (finished) return
      finished = true
      const last = lines.end()
      if (last) dest.write(last)
      stats.lines += lines.lines
      resolve()
    }
    source.once('end', finish)
    source.once('close', finish)
    source.once('error', finish)
  })
}
