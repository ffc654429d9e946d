import { closeSync, openSync, readSync } from 'node:fs'
import { usageError } from '../errors.js'
import type { RunIo } from '../launch/io.js'
import { printSummary, showRun, type ShowOptions } from './attach.js'
import type { ReaderMessage } from './messages.js'
import { closeRun, nodeStatus, noDirectory, reachRun, streamNode, type RunNode } from './nodes.js'
import type { Registry, RunRecord } from './registry.js'
import type { Replay } from './replay.js'
import { formatBytes } from '../sync/limits.js'

export interface LogsOptions extends ShowOptions {
  node?: number
  follow: boolean
  summary: boolean
}

/** Reads a file's records one at a time without holding it whole (a node may keep 1 GiB). */
class RecordReader {
  private fd: number | undefined
  private buffer: Buffer = Buffer.alloc(0)
  private start = 0
  head: Buffer | undefined

  constructor(path: string) {
    try {
      this.fd = openSync(path, 'r')
    } catch {
      this.fd = undefined
    }
    this.next()
  }

  next(): void {
    for (;;) {
      const nl = this.buffer.indexOf(0x0a, this.start)
      if (nl >= 0) {
        this.head = this.buffer.subarray(this.start, nl)
        this.start = nl + 1
        return
      }
      const chunk = Buffer.alloc(1 << 20)
      const n = this.fd === undefined ? 0 : readSync(this.fd, chunk, 0, chunk.length, null)
      if (n === 0) {
        if (this.fd !== undefined) closeSync(this.fd)
        this.fd = undefined
        this.head = undefined
        return
      }
      this.buffer = Buffer.concat([this.buffer.subarray(this.start), chunk.subarray(0, n)])
      this.start = 0
    }
  }
}

/** Every record of the nodes' fetched logs, in the order they were written (by their time stamps). */
function replayFetched(files: ReadonlyArray<{ node: number; file: string }>, replay: Replay): void {
  const readers = files.map((f) => ({ node: f.node, reader: new RecordReader(f.file) }))
  for (;;) {
    let best: (typeof readers)[number] | undefined
    for (const r of readers) {
      const head = r.reader.head
      // ISO time stamps of one length sort as text; a tie keeps node order.
      if (head && (!best || head.subarray(0, 24).compare(best.reader.head!.subarray(0, 24)) < 0)) best = r
    }
    if (!best) return
    replay.record(best.node, best.reader.head!)
    best.reader.next()
  }
}

/**
 * `fanout logs RUN`: fetches what each node wrote since the last fetch into this machine's registry
 * (so that the logs outlive the cluster, and each call sends only what is new), then prints every
 * node's fetched lines in time order; `--follow` goes on with the live ones until the run ends;
 * `--summary` prints its summary table.
 */
export async function runLogs(record: RunRecord, registry: Registry, options: LogsOptions, io: RunIo): Promise<number> {
  if (options.node !== undefined && !record.nodes.some((n) => n.rank === options.node))
    throw usageError(`--node ${options.node}: run ${record.id} has nodes 0 to ${record.nodes.length - 1}`)
  if (options.summary) return summaryOf(record, registry, io)
  const selected = record.nodes.filter((n) => options.node === undefined || n.rank === options.node)
  const nodes = await reachRun(record, io, new Set(selected.map((n) => n.rank)))
  for (const n of nodes)
    if (!n.transport)
      io.ui.warn(`node ${n.rank} (${n.host}) cannot be reached (${n.error}): its lines fetched before are shown`)
  const files = selected.map((n) => ({ node: n.rank, file: registry.nodeLog(record.id, n.rank).file }))
  const { replay } = showRun(record, options, options.follow ? io : { ...io, live: undefined })
  let summary = registry.ended(record.id)
  const fetch = async (node: RunNode, onChunk?: (data: Buffer) => void): Promise<void> => {
    if (!node.transport) return
    let cursor = registry.nodeLog(record.id, node.rank).cursor
    let skipped = 0
    const onMessage = (m: ReaderMessage): void => {
      if (m.kind === 'chunk') {
        cursor = { seq: m.seq, offset: m.offset + m.data.length }
        registry.appendNodeLog(record.id, node.rank, m.data, cursor)
        onChunk?.(m.data)
      } else if (m.kind === 'state') {
        skipped = m.status.skipped
        if (node.rank === 0 && m.status.summary) summary = m.status.summary
      } else if (m.kind === 'missing') io.ui.warn(noDirectory(record, node))
    }
    const reader = await streamNode(
      node.transport,
      record,
      node.rank,
      options.follow ? 'follow' : 'read',
      cursor,
      0,
      onMessage,
    )
    const said = await reader.done
    if (skipped > 0)
      io.ui.warn(
        `node ${node.rank} (${node.host}): older output (${skipped} segment(s) of half of --detach-log-max, ${formatBytes(record.logMaxBytes / 2)} each) was dropped on the node before it was fetched`,
      )
    if (said && !options.follow) io.ui.warn(`node ${node.rank} (${node.host}): ${said}`)
  }
  let stopped = false
  const stopWatching = options.follow
    ? io.onStop(() => {
        stopped = true
        closeRun(nodes)
      })
    : () => {}
  try {
    if (!options.follow) {
      await Promise.all(nodes.map((n) => fetch(n)))
      replayFetched(files, replay)
    } else {
      replayFetched(files, replay)
      await Promise.all(nodes.map((n) => fetch(n, (data) => replay.push(n.rank, data))))
    }
  } finally {
    stopWatching()
    replay.end()
    io.live?.reset()
    closeRun(nodes)
  }
  if (summary) registry.markEnded(record.id, summary)
  if (stopped) io.ui.info(`stopped following run ${record.id}; it goes on (fanout stop ${record.id} stops it)`)
  else if (options.follow && summary) printSummary(summary, io)
  return 0
}

async function summaryOf(record: RunRecord, registry: Registry, io: RunIo): Promise<number> {
  let summary = registry.ended(record.id)
  if (!summary) {
    const [node0] = await reachRun(record, io, new Set([0]))
    try {
      if (!node0?.transport) throw new Error(node0?.error ?? 'no node 0')
      const status = await nodeStatus(node0.transport, record, 0)
      summary = status?.summary ?? undefined
      if (!summary)
        throw usageError(
          `run ${record.id} has no summary yet: it is ${status?.state?.state ?? 'unknown'} (fanout ps shows every run's state)`,
        )
    } finally {
      if (node0) closeRun([node0])
    }
    registry.markEnded(record.id, summary)
  }
  printSummary(summary, io)
  return 0
}
