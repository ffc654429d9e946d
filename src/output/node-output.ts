import type { Readable } from 'node:stream'
import { FrameDemux, type Segment } from './frames.js'
import { LineSplitter, splitLines, type LineEvent } from './lines.js'
import { RecentLines } from './recent.js'
import type { LineOrigin } from './prefix.js'

/** One line (or the current state of a line being rewritten with \r) from a node, as the sinks see it. */
export interface OutputLine extends LineOrigin {
  kind: LineEvent['kind']
  /**
   * The line's bytes, without its line ending, exactly as the process wrote them; for kind 'lines',
   * `count` whole lines, each with its \n (see lines.ts).
   */
  text: Buffer
  count?: number
  /** When it arrived (ms since the epoch). */
  at: number
}

/** Where lines go: the terminal, the log files, --json. `write` returns false to pause the node until `onDrain`. */
export interface LineSink {
  write(line: OutputLine): boolean
  /** All the lines one chunk of a node's output completed, in order: one write instead of one per line. */
  writeBatch?(lines: readonly OutputLine[]): boolean
  onDrain(resume: () => void): void
  /** The sink takes kind 'lines' (many lines in one OutputLine); others get them one by one. */
  readonly blocks?: boolean
  /**
   * Nothing more comes from these origins (a rank's stream ended, or the node's stream): what a sink
   * held back for them (the terminal's folded C++ frames) goes out now. Called after their last lines
   * were written; returns false as `write` does.
   */
  end?(origins: readonly LineOrigin[]): boolean
}

/** A batch with every 'lines' block expanded into its 'line's, for sinks that take no blocks. */
function expandBlocks(lines: readonly OutputLine[]): readonly OutputLine[] {
  if (!lines.some((l) => l.kind === 'lines')) return lines
  return lines.flatMap((l): OutputLine[] => {
    if (l.kind !== 'lines') return [l]
    const { count: _count, ...rest } = l
    return splitLines(l.text).map((text) => ({ ...rest, kind: 'line', text }))
  })
}

const TAIL_LINES = 20

/** What the supervisor learns from a node's output as it arrives. */
export interface NodeOutputHooks {
  /** Each stderr line (how launcher failures are noticed), with the rank that printed it. */
  onStderrLine?: (text: Buffer, rank: number | undefined) => void
  /** A worker of the node started (the rank tagger's start frame): past the rendezvous. */
  onWorkerStart?: (rank: number | undefined) => void
}

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
  private readonly recent = new RecentLines(TAIL_LINES)
  /** The node's streams being read, and how many sinks they wait for. */
  private readonly sources = new Set<Readable>()
  private waiting = 0

  constructor(
    readonly node: number,
    readonly host: string,
    private readonly sinks: readonly LineSink[],
    private readonly options: { tagged: boolean; now: () => number } & NodeOutputHooks,
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
    // The origins whose output ended in this chunk: told to the sinks after the batch's lines.
    let ended: LineOrigin[] = []
    const emit = (origin: LineOrigin, events: LineEvent[]): void => {
      const at = this.options.now()
      for (const e of events) {
        // Every line of the same shape (no spread, no property added later): V8 keeps the code that
        // reads them fast. Measured: a spread here cost a fifth of a flood's throughput.
        const line: OutputLine = {
          node: origin.node,
          host: origin.host,
          rank: origin.rank,
          localRank: origin.localRank,
          stream: origin.stream,
          kind: e.kind,
          text: e.text,
          at,
          count: e.kind === 'lines' ? e.count : undefined,
        }
        if (e.kind === 'lines') this.countBlock(line, e.count)
        else if (e.kind === 'line') this.count(line)
        batch.push(line)
      }
    }
    const flush = (): void => {
      this.recent.settle()
      if (batch.length === 0 && ended.length === 0) return
      const blocks = batch
      batch = []
      const ends = ended
      if (ends.length > 0) ended = []
      let expanded: readonly OutputLine[] | undefined
      for (const sink of this.sinks) {
        let ok = true
        if (blocks.length > 0) {
          const lines = sink.blocks ? blocks : (expanded ??= expandBlocks(blocks))
          ok = sink.writeBatch ? sink.writeBatch(lines) : lines.map((l) => sink.write(l)).every(Boolean)
        }
        if (ends.length > 0 && sink.end) ok = sink.end(ends) && ok
        if (!ok) {
          this.waiting++
          sink.onDrain(resume)
        }
      }
    }
    const feed = (segments: Segment[]): void => {
      for (const s of segments) {
        if (s.start) {
          this.options.onWorkerStart?.(s.rank)
          continue
        }
        const key = `${s.rank ?? ''},${s.localRank ?? ''}`
        let split = splitters.get(key)
        if (!split) {
          const origin: LineOrigin = { node: this.node, host: this.host, stream }
          if (s.rank !== undefined) origin.rank = s.rank
          if (s.localRank !== undefined) origin.localRank = s.localRank
          split = { origin, lines: new LineSplitter(undefined, { blocks: true }) }
          splitters.set(key, split)
        }
        if (s.data.length > 0) emit(split.origin, split.lines.push(s.data))
        if (s.end) {
          emit(split.origin, split.lines.end())
          splitters.delete(key)
          ended.push(split.origin)
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
        for (const { origin, lines } of splitters.values()) {
          emit(origin, lines.end())
          ended.push(origin)
        }
        flush()
        this.sources.delete(source)
        resolve()
      }
      source.once('end', finish)
      source.once('close', finish)
      source.once('error', finish)
      // A held probe's shell hands its streams over paused (held.ts): 'data' alone does not restart them.
      if (this.waiting === 0) source.resume()
    })
  }

  private count(line: OutputLine): void {
    this.lines++
    if (line.rank !== undefined) this.ranks.add(line.rank)
    // Kept first: a stderr line's handler may ask for the tail up to and including that line.
    this.recent.addLine(line.rank, line.text)
    if (line.stream === 'stderr') this.options.onStderrLine?.(line.text, line.rank)
  }

  /** count() for a 'lines' block, without decoding every line of it. */
  private countBlock(block: OutputLine, n: number): void {
    this.lines += n
    if (block.rank !== undefined) this.ranks.add(block.rank)
    const onStderrLine = block.stream === 'stderr' ? this.options.onStderrLine : undefined
    if (!onStderrLine) return this.recent.addBlock(block.rank, block.text)
    // Line by line, as count() does: the handler sees the tail up to its line, not the block's end.
    for (const l of splitLines(block.text)) {
      this.recent.addLine(block.rank, l)
      onStderrLine(l, block.rank)
    }
  }

  /** The last `n` non-empty lines, every stream and rank together, in arrival order. */
  tail(n: number): string[] {
    return n <= 0 ? [] : this.recent.last(Math.min(n, TAIL_LINES))
  }
}
