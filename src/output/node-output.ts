import type { Readable } from 'node:stream'
import { FrameDemux, type Segment } from './frames.js'
import { LineSplitter, type LineEvent } from './lines.js'
import type { LineOrigin } from './prefix.js'

/** One line (or the current state of a line being rewritten with \r) from a node, as the sinks see it. */
export interface OutputLine extends LineOrigin {
  kind: LineEvent['kind']
  /** The line's bytes, without its line ending, exactly as the process wrote them. */
  text: Buffer
  /** When it arrived (ms since the epoch). */
  at: number
}

/** Where lines go: the terminal, the log files, --json. `write` returns false to pause the node until `onDrain`. */
export interface LineSink {
  write(line: OutputLine): boolean
  /** All the lines one chunk of a node's output completed, in order: one write instead of one per line. */
  writeBatch?(lines: readonly OutputLine[]): boolean
  onDrain(resume: () => void): void
}

const TAIL_LINES = 20

/**
 * Everything one node prints, split into lines per stream and per rank (frames of the rank tagger, see
 * rank-tag.ts), counted, kept short for the failure report, and handed to the sinks. A sink that
 * cannot keep up pauses the node's stream (backpressure to the remote side, not an unbounded buffer).
 */
export class NodeOutput {
  /** Finished lines from every stream and rank, shown or not. */
  lines = 0
  /** The global ranks seen printing (with c10d, torchrun assigns them: this is how fanout learns them). */
  readonly ranks = new Set<number>()
  private readonly recent: string[] = []
  /** The node's streams being read, and how many sinks they wait for. */
  private readonly sources = new Set<Readable>()
  private waiting = 0

  constructor(
    readonly node: number,
    readonly host: string,
    private readonly sinks: readonly LineSink[],
    private readonly options: { tagged: boolean; now: () => number; onStderrLine?: (text: Buffer) => void },
  ) {}

  /** Relays one of the node's streams until it ends (or closes or fails). */
  pipe(source: Readable, stream: LineOrigin['stream']): Promise<void> {
    const demux = this.options.tagged ? new FrameDemux() : undefined
    const splitters = new Map<string, { origin: LineOrigin; lines: LineSplitter }>()
    // A full sink pauses every stream of the node, not just the one that filled it: ssh2 shares one
    // flow-control window between a channel's stdout and stderr, and reopens it whenever stderr is
    // read, so a paused stdout alone would keep buffering here without bound.
    const resume = (): void => {
      if (--this.waiting === 0) for (const s of this.sources) s.resume()
    }
    this.sources.add(source)
    // The lines of one chunk are collected and handed over together: a flood of short lines costs one
    // write per chunk, not one per line.
    let batch: OutputLine[] = []
    const emit = (origin: LineOrigin, events: LineEvent[]): void => {
      const at = this.options.now()
      for (const e of events) {
        const line: OutputLine = { ...origin, kind: e.kind, text: e.text, at }
        if (e.kind === 'line') this.count(line)
        batch.push(line)
      }
    }
    const flush = (): void => {
      if (batch.length === 0) return
      const lines = batch
      batch = []
      for (const sink of this.sinks) {
        const ok = sink.writeBatch ? sink.writeBatch(lines) : lines.map((l) => sink.write(l)).every(Boolean)
        if (!ok) {
          this.waiting++
          sink.onDrain(resume)
        }
      }
    }
    const feed = (segments: Segment[]): void => {
      for (const s of segments) {
        const key = `${s.rank ?? ''},${s.localRank ?? ''}`
        let split = splitters.get(key)
        if (!split) {
          const origin: LineOrigin = { node: this.node, host: this.host, stream }
          if (s.rank !== undefined) origin.rank = s.rank
          if (s.localRank !== undefined) origin.localRank = s.localRank
          split = { origin, lines: new LineSplitter() }
          splitters.set(key, split)
        }
        if (s.data.length > 0) emit(split.origin, split.lines.push(s.data))
        if (s.end) {
          emit(split.origin, split.lines.end())
          splitters.delete(key)
        }
      }
    }
    return new Promise((resolve) => {
      source.on('data', (chunk: Buffer) => {
        feed(demux ? demux.push(chunk) : [{ data: chunk }])
        flush()
        if (this.waiting > 0) for (const s of this.sources) s.pause()
      })
      let finished = false
      const finish = (): void => {
        if (finished) return
        finished = true
        if (demux) feed(demux.end())
        for (const { origin, lines } of splitters.values()) emit(origin, lines.end())
        flush()
        this.sources.delete(source)
        resolve()
      }
      source.once('end', finish)
      source.once('close', finish)
      source.once('error', finish)
    })
  }

  private count(line: OutputLine): void {
    this.lines++
    if (line.rank !== undefined) this.ranks.add(line.rank)
    if (line.stream === 'stderr') this.options.onStderrLine?.(line.text)
    const text = line.text.toString('utf8')
    if (text.trim() === '') return
    this.recent.push(line.rank === undefined ? text : `[r${line.rank}] ${text}`)
    if (this.recent.length > TAIL_LINES) this.recent.shift()
  }

  /** The last `n` non-empty lines, every stream and rank together, in arrival order. */
  tail(n: number): string[] {
    return n <= 0 ? [] : this.recent.slice(-n)
  }
}
