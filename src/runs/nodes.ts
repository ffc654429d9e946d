import { resolveNodes } from '../hosts/nodes.js'
import { connectEach } from '../launch/connect-nodes.js'
import type { RunIo } from '../launch/io.js'
import { readerCommand, type ReaderMode } from '../node/run-files.js'
import { capture, type RemoteProcess, type Transport } from '../transport/types.js'
import { ReaderParser, type NodeStatus, type ReaderMessage } from './messages.js'
import { nodeRunDir, type RunRecord } from './registry.js'

/** A node of a recorded run, reached again, or why not. */
export interface RunNode {
  rank: number
  host: string
  transport?: Transport
  error?: string
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/** Connects to a run's nodes (all, or `only`) as the launch did: the host list and SSH settings it recorded. */
export async function reachRun(record: RunRecord, io: RunIo, only?: ReadonlySet<number>): Promise<RunNode[]> {
  const specs = (await resolveNodes(record.hosts, record.ssh)).filter((s) => !only || only.has(s.rank))
  const results = await connectEach(specs, record.ssh, io)
  return specs.map((s, i) => {
    const r = results[i] as PromiseSettledResult<Transport>
    return r.status === 'fulfilled'
      ? { rank: s.rank, host: s.entry.host, transport: r.value }
      : { rank: s.rank, host: s.entry.host, error: message(r.reason) }
  })
}

export const closeRun = (nodes: readonly RunNode[]): void => nodes.forEach((n) => n.transport?.close())

/** A node's state (the reader's `state` mode); undefined when the node has no such run directory. */
export async function nodeStatus(
  transport: Transport,
  record: RunRecord,
  rank: number,
): Promise<NodeStatus | undefined> {
  const { stdout, stderr, status } = await capture(
    transport,
    readerCommand(record.python, nodeRunDir(record.dir, rank), 'state'),
  )
  const messages = new ReaderParser().push(Buffer.from(stdout, 'latin1'))
  for (const m of messages) if (m.kind === 'state') return m.status
  if (messages.some((m) => m.kind === 'missing')) return undefined
  throw new Error(stderr.trim() || `the run reader ended with ${status.code ?? status.signal}`)
}

/** Runs the reader on a node and hands over its messages as they come; settles when it ends. */
export async function streamNode(
  transport: Transport,
  record: RunRecord,
  rank: number,
  mode: ReaderMode,
  from: { seq: number; offset: number },
  lines: number,
  onMessage: (m: ReaderMessage) => void,
): Promise<{ proc: RemoteProcess; done: Promise<string> }> {
  const proc = await transport.exec(readerCommand(record.python, nodeRunDir(record.dir, rank), mode, from, lines))
  proc.end()
  const parser = new ReaderParser()
  let stderr = ''
  proc.stdout.on('data', (b: Buffer) => parser.push(b).forEach(onMessage))
  proc.stderr.on('data', (b: Buffer) => (stderr += b.toString()))
  return { proc, done: proc.done.then(() => stderr.trim()) }
}
