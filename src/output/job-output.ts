import type { ChalkInstance } from 'chalk'
import type { OutputOptions } from './options.js'
import type { JsonEvents } from './json.js'
import type { LiveRegion } from './live.js'
import type { RunLog } from './logdir.js'
import { directWriter } from './file-writer.js'
import { NodeOutput, type LineSink, type NodeOutputHooks } from './node-output.js'
import { Prefixer } from './prefix.js'
import { lineFilter, TerminalSink } from './terminal.js'

export interface PlannedNode {
  rank: number
  host: string
  nproc: number
  /** First global rank; the node holds firstRank … firstRank + nproc - 1 under a static rendezvous. */
  firstRank: number
}

export interface JobOutputIo {
  stdout: NodeJS.WritableStream & import('node:stream').Writable
  stderr: NodeJS.WritableStream & import('node:stream').Writable
  chalk: ChalkInstance
  live?: LiveRegion
  json?: JsonEvents
  log?: RunLog
  now?: () => number
}

const SEP = ' · '

/**
 * Where every node's lines go for one job: the terminal (prefixed, filtered, progress bars tamed),
 * --json events and the --log-dir files. Made once per job; each attempt gets fresh NodeOutputs.
 */
export class JobOutput {
  readonly tagged: boolean
  private readonly sinks: LineSink[] = []
  private readonly outputs = new Map<number, NodeOutput>()
  private readonly planned: Map<number, number[]>

  constructor(
    private readonly nodes: readonly PlannedNode[],
    options: Pick<OutputOptions, 'prefix' | 'timestamps' | 'onlyRanks' | 'quiet' | 'json'> & {
      tagged: boolean
      nodeFilter?: ReadonlySet<number>
      staticRanks: boolean
    },
    private readonly io: JobOutputIo,
  ) {
    this.tagged = options.tagged
    // Under c10d torchrun hands out the ranks: they are known once a node's workers print.
    this.planned = new Map(
      options.staticRanks
        ? nodes.map((n) => [n.rank, Array.from({ length: n.nproc }, (_v, i) => n.firstRank + i)])
        : [],
    )
    const filter = {
      quiet: options.quiet,
      ...(options.onlyRanks ? { ranks: new Set(options.onlyRanks) } : {}),
      ...(options.nodeFilter ? { nodes: options.nodeFilter } : {}),
    }
    const show = lineFilter(filter, (node) => this.ranksOf(node))
    const worldSize = nodes.reduce((sum, n) => sum + n.nproc, 0)
    if (io.json) this.sinks.push(io.json.withFilter(show))
    else {
      const prefixer = new Prefixer({
        format: options.prefix,
        nodes: nodes.map((n) => ({ node: n.rank, host: n.host })),
        tagged: options.tagged,
        maxRank: Math.max(0, worldSize - 1),
        maxLocalRank: Math.max(0, ...nodes.map((n) => n.nproc - 1)),
        chalk: io.chalk,
        timestamps: options.timestamps,
      })
      this.sinks.push(
        new TerminalSink({
          stdout: directWriter(io.stdout),
          stderr: directWriter(io.stderr),
          prefixer,
          show,
          logged: io.log !== undefined,
          ...(io.live ? { live: io.live } : {}),
        }),
      )
    }
    if (io.log) this.sinks.push(io.log)
  }

  /** A node's ranks: planned, else those seen so far. */
  ranksOf(node: number): number[] {
    return this.planned.get(node) ?? [...(this.outputs.get(node)?.ranks ?? [])].sort((a, b) => a - b)
  }

  /** A fresh NodeOutput for one attempt of a node's job. */
  forNode(node: { rank: number; host: string }, hooks: NodeOutputHooks): NodeOutput {
    const output = new NodeOutput(node.rank, node.host, this.sinks, {
      tagged: this.tagged,
      now: this.io.now ?? Date.now,
      ...hooks,
    })
    this.outputs.set(node.rank, output)
    return output
  }

  /**
   * `running 0:42 · 3/3 nodes · 1204 lines (n0 402 · n1 401 · n2 401)`: the live region's status row.
   * Given the `width` it has, the row keeps its head and as many nodes' counts as fit, and says how
   * many it left out (`… +250 nodes)`): a row cut blindly would end inside a node's count, a number
   * that reads as a wrong one.
   */
  status(elapsedMs: number, running: number, stopping: boolean, width = Infinity): string {
    const s = Math.floor(elapsedMs / 1000)
    const clock = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`
    const total = [...this.outputs.values()].reduce((sum, o) => sum + o.lines, 0)
    const word = stopping ? `stopping ${clock}` : `running ${clock}`
    const rest = ` · ${running}/${this.nodes.length} nodes · ${total} lines`
    const head = (stopping ? this.io.chalk.yellow(word) : this.io.chalk.cyan(word)) + rest
    // Every character of the row takes one column (ASCII, `·`, `…`): lengths are widths.
    const room = width - word.length - rest.length - ' ()'.length
    const all = this.nodes.map((n) => `n${n.rank} ${this.outputs.get(n.rank)?.lines ?? 0}`)
    if (all.reduce((sum, c) => sum + c.length, SEP.length * (all.length - 1)) <= room)
      return `${head} (${all.join(SEP)})`
    // Not all fit: the first counts, as many as leave room for the note on the nodes after them.
    const more = (nodes: number): string => `… +${nodes} node${nodes === 1 ? '' : 's'}`
    const counts: string[] = []
    let used = 0
    for (const [i, count] of all.entries()) {
      const after = used + (i > 0 ? SEP.length : 0) + count.length
      if (after + SEP.length + more(all.length - i - 1).length > room) break
      counts.push(count)
      used = after
    }
    // The last count kept made sure the note fits; with none kept, the note alone may not.
    const note = more(all.length - counts.length)
    if (counts.length > 0 || note.length <= room) counts.push(note)
    return counts.length > 0 ? `${head} (${counts.join(SEP)})` : head
  }
}
