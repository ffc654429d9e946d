import { EventEmitter } from 'node:events'
import type { Readable } from 'node:stream'
import type { JobOutput } from '../output/job-output.js'
import type { NodeOutput } from '../output/node-output.js'

/** A source NodeOutput reads that hands over each chunk at once (a replayed record's time is the clock then). */
class SyncSource extends EventEmitter {
  pause(): this {
    return this
  }
  resume(): this {
    return this
  }
}

/** `TIME nNODE ORIGIN STREAM ` (run-supervisor.ts), then the line's text. */
const RECORD = /^(\S+) n(\d+) (?:r(\d*)\/(\d*)|-) (out~?|err~?|fanout) /

export interface ReplayedEvent {
  node: number
  at: number
  text: string
}

/**
 * A detached run's records (node/run-supervisor.ts) shown as an attached run's output: each record
 * becomes again what the node printed, as the rank tagger framed it, and goes through the same
 * NodeOutput and sinks (prefixes, filters, progress rows), at the time it was written. The
 * supervisor's own records go to `onEvent`.
 */
export class Replay {
  private readonly nodes = new Map<
    number,
    { rest: Buffer; sources: Record<'stdout' | 'stderr', SyncSource>; output: NodeOutput; progress: Set<string> }
  >()
  private clock = Date.now()

  constructor(
    jobOutput: JobOutput,
    nodes: ReadonlyArray<{ rank: number; host: string }>,
    private readonly tagged: boolean,
    private readonly onEvent: (event: ReplayedEvent) => void,
    /** Progress states (`out~`) are shown: on a live terminal, where they are rows that change. */
    private readonly progress: boolean,
  ) {
    for (const n of nodes) {
      const sources = { stdout: new SyncSource(), stderr: new SyncSource() }
      const output = jobOutput.forNode(n, {})
      void output.pipe(sources.stdout as unknown as Readable, 'stdout')
      void output.pipe(sources.stderr as unknown as Readable, 'stderr')
      this.nodes.set(n.rank, { rest: Buffer.alloc(0), sources, output, progress: new Set() })
    }
  }

  /** The time of the record being replayed: the output's clock (JobOutputIo.now). */
  readonly now = (): number => this.clock

  /** Bytes of a node's log, in order; a record cut at the end waits for the rest. */
  push(node: number, data: Buffer): void {
    const n = this.nodes.get(node)
    if (!n) return
    const buf = n.rest.length === 0 ? data : Buffer.concat([n.rest, data])
    let start = 0
    for (;;) {
      const nl = buf.indexOf(0x0a, start)
      if (nl < 0) break
      this.record(node, buf.subarray(start, nl))
      start = nl + 1
    }
    n.rest = Buffer.from(buf.subarray(start))
  }

  /** One whole record (without its newline). */
  record(node: number, line: Buffer): void {
    const n = this.nodes.get(node)
    const head = RECORD.exec(line.subarray(0, 80).toString('latin1'))
    if (!n || !head) return
    const at = Date.parse(head[1] as string)
    if (!Number.isNaN(at)) this.clock = at
    const text = line.subarray(head[0].length)
    const stream = head[5] as string
    if (stream === 'fanout') return this.onEvent({ node, at: this.clock, text: text.toString('utf8') })
    const origin = head[3] === undefined ? '-' : `${head[3]}/${head[4]}`
    const key = `${origin}/${stream[0]}`
    const progress = stream.endsWith('~')
    if (progress && !this.progress) return
    // A line after a progress state rewrites it, as the \r the node printed did.
    const payload = progress
      ? Buffer.concat([Buffer.from('\r'), text])
      : Buffer.concat([n.progress.has(key) ? Buffer.from('\r') : Buffer.alloc(0), text, Buffer.from('\n')])
    if (progress) n.progress.add(key)
    else n.progress.delete(key)
    const source = n.sources[stream.startsWith('out') ? 'stdout' : 'stderr']
    if (this.tagged && origin !== '-') {
      for (let i = 0; i < payload.length; i += 4096) {
        const piece = payload.subarray(i, i + 4096)
        source.emit('data', Buffer.concat([Buffer.from(`\x1eF${head[3]},${head[4]}:${piece.length}\x1f`), piece]))
      }
    } else source.emit('data', payload)
  }

  /** Lines a node printed, all streams (for the status row). */
  lines(node: number): number {
    return this.nodes.get(node)?.output.lines ?? 0
  }

  /** The end of every node's output: what a sink held back goes out. */
  end(): void {
    for (const n of this.nodes.values()) {
      n.sources.stdout.emit('end')
      n.sources.stderr.emit('end')
    }
  }
}
