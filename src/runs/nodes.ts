import { resolveNodes } from '../hosts/nodes.js'
import { connectEach } from '../launch/connect-nodes.js'
import type { RunIo } from '../launch/io.js'
import { readerCommand, type ReaderMode } from '../node/run-files.js'
import type { Transport } from '../transport/types.js'
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

/** What attach and logs say of a node whose reader found no run directory. */
export const noDirectory = (record: RunRecord, node: RunNode): string =>
  `node ${node.rank} (${node.host}) has no directory ${nodeRunDir(record.dir, node.rank)}`

/** Runs the reader on a node and hands over its messages as they come; settles, with its stderr, when it ends. */
export async function streamNode(
  transport: Transport,
  record: RunRecord,
  rank: number,
  mode: ReaderMode,
  from: { seq: number; offset: number },
  lines: number,
  onMessage: (m: ReaderMessage) => void,
): Promise<{ done: Promise<string> }> {
  const proc = await transport.exec(readerCommand(record.python, nodeRunDir(record.dir, rank), mode, from, lines))
  proc.end()
  const parser = new ReaderParser()
  let stderr = ''
  proc.stdout.on('data', (b: Buffer) => parser.push(b).forEach(onMessage))
  proc.stderr.on('data', (b: Buffer) => (stderr += b.toString()))
  return { done: proc.done.then(() => stderr.trim()) }
}

/** A node's state (the reader's `state` mode); undefined when the node has no such run directory. */
export async function nodeStatus(
  transport: Transport,
  record: RunRecord,
  rank: number,
): Promise<NodeStatus | undefined> {
  let status: NodeStatus | undefined
  let missing = false
  const reader = await streamNode(transport, record, rank, 'state', { seq: 0, offset: 0 }, 0, (m) => {
    if (m.kind === 'state') status = m.status
    else if (m.kind === 'missing') missing = true
  })
  const said = await reader.done
  if (status || missing) return status
  throw new Error(said || 'the run reader said nothing')
}
