import type { RunSummary } from './registry.js'

/** What a node's supervisor says of itself (its state.json). */
interface NodeState {
  run: string
  node: number
  host: string
  pid: number
  /** running, stopping, restarting, waiting (its job ended, the run goes on), lost, or the run's end: succeeded, failed, stopped, timed-out */
  state: string
  started_at: string
  attempt?: number
  pgid?: number
  exit_code?: number
  why?: string
  ended_at?: string
  hub?: string
}

/** A node's run directory as the reader (node/run-files.ts) found it. */
export interface NodeStatus {
  state: NodeState | null
  /** Node 0's, once the run ended. */
  summary: RunSummary | null
  /** The supervisor runs. */
  alive: boolean
  /** Segments of output removed by rotation (--detach-log-max) before they were read. */
  skipped: number
  segments: Array<[number, number | null]>
}

export type ReaderMessage =
  | { kind: 'chunk'; seq: number; offset: number; data: Buffer }
  | { kind: 'state'; status: NodeStatus }
  | { kind: 'end' }
  | { kind: 'missing' }

/** Splits the reader's stdout (`KIND FIELD... LEN\n` then LEN bytes) into its messages, across chunks. */
export class ReaderParser {
  private buffer: Buffer = Buffer.alloc(0)

  push(chunk: Buffer): ReaderMessage[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    const out: ReaderMessage[] = []
    for (;;) {
      const nl = this.buffer.indexOf(0x0a)
      if (nl < 0) break
      const head = this.buffer.subarray(0, nl).toString('latin1').split(' ')
      const len = Number(head[head.length - 1])
      if (!Number.isSafeInteger(len) || len < 0)
        throw new Error(`the run reader said ${JSON.stringify(head.join(' '))}`)
      if (this.buffer.length < nl + 1 + len) break
      const payload = this.buffer.subarray(nl + 1, nl + 1 + len)
      this.buffer = this.buffer.subarray(nl + 1 + len)
      const kind = head[0]
      if (kind === 'chunk') out.push({ kind, seq: Number(head[1]), offset: Number(head[2]), data: payload })
      else if (kind === 'state') out.push({ kind, status: JSON.parse(payload.toString('utf8')) as NodeStatus })
      else if (kind === 'end' || kind === 'missing') out.push({ kind })
    }
    return out
  }
}
