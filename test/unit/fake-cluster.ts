import { PassThrough } from 'node:stream'
import { Chalk } from 'chalk'
import { Writable } from 'node:stream'
import { PROBE_END } from '../../src/node/probe.js'
import { REACH_END } from '../../src/node/reach.js'
import type { RunIo } from '../../src/launch/io.js'
import type { PhaseItem, Ui } from '../../src/output/ui.js'
import type { ExitStatus, RemoteProcess, Transport } from '../../src/transport/types.js'
import type { NodeSpec } from '../../src/hosts/nodes.js'
import type { RemoteFs } from '../../src/sync/remote-fs.js'

/**
 * A cluster of fake nodes for the launch's unit tests: each node is a Transport that answers fanout's
 * node programs (told apart by the name after the program: fanout-held, fanout-probe, fanout-route,
 * fanout-job) as the real ones would on stdout, stderr and exit, reading the word blocks fanout sends
 * on stdin (node/job.ts wordsBlock). It records what it was asked, so that a test can say what ran where.
 */

/** What a node's job does in a given attempt (1-based). */
interface JobScript {
  lines?: string[]
  exitCode: number
  /** How long it runs before it exits. */
  afterMs?: number
}

export interface FakeNodeOptions {
  /** The `fanout.KEY=VALUE` facts its probe prints (merged over sane defaults). */
  facts?: Record<string, string>
  job?: (attempt: number) => JobScript
}

/** Reads wordsBlock blocks (a count, then that many words, last first) off a stream of stdin writes. */
class BlockReader {
  private text = ''
  private ended = false
  private wake: (() => void) | undefined

  push(data: string): void {
    this.text += data
    this.wake?.()
  }

  end(): void {
    this.ended = true
    this.wake?.()
  }

  /** The next block's words in their order, or undefined at EOF. Control bytes between blocks are skipped. */
  async next(): Promise<string[] | undefined> {
    for (;;) {
      this.text = this.text.replace(/^[.ITKS]+/, '')
      const lines = this.text.split('\n')
      const n = Number(lines[0])
      if (lines.length > 1 && /^\d+$/.test(lines[0] ?? '') && lines.length > n + 1) {
        const words = lines
          .slice(1, n + 1)
          .reverse()
          .map((w) => w.replace(/\\n/g, '\n').replace(/\\\\/g, '\\'))
        this.text = lines.slice(n + 1).join('\n')
        return words
      }
      if (this.ended) return undefined
      await new Promise<void>((r) => (this.wake = r))
    }
  }
}

class FakeProcess implements RemoteProcess {
  readonly stdout = new PassThrough()
  readonly stderr = new PassThrough()
  readonly stdin = new BlockReader()
  readonly done: Promise<ExitStatus>
  private settle!: (s: ExitStatus) => void
  stopped: string | undefined

  constructor() {
    this.done = new Promise((r) => (this.settle = r))
  }

  write(data: string): void {
    const stop = /[ITK]/.exec(data)
    if (stop && this.stopped === undefined && !/\n/.test(data)) this.stopped = stop[0]
    this.stdin.push(data)
  }

  end(): void {
    this.stdin.end()
  }

  exit(code: number): void {
    this.stdout.end()
    this.stderr.end()
    this.settle({ code, signal: null })
  }
}

export class FakeNode implements Transport {
  readonly kind = 'ssh'
  readonly peerAddress: string
  /** The node programs run here, by name, in order. */
  readonly ran: string[] = []
  /** The first word of every block a held shell was sent (reach, job). */
  readonly heldOrders: string[] = []
  closed = false
  private attempt = 0
  private port = 29500

  constructor(
    readonly rank: number,
    private readonly options: FakeNodeOptions = {},
  ) {
    this.peerAddress = `10.0.0.${11 + rank}`
  }

  private facts(wantPort: boolean): string {
    const addr = this.peerAddress
    const facts: Record<string, string> = {
      ssh_connection: `10.0.0.1 50000 ${addr} 22`,
      cwd: 'ok',
      python: '/usr/bin/python3',
      torch: 'yes',
      python_version: '3.13.5',
      torch_version: '2.6.0',
      gpus: '2',
      script: 'ok',
      iface: 'eth0',
      src: addr,
      ...(wantPort ? { free_port: String(this.port++) } : {}),
      ...this.options.facts,
    }
    return Object.entries(facts)
      .map(([k, v]) => `fanout.${k}=${v}\n`)
      .join('')
  }

  async exec(command: string): Promise<RemoteProcess> {
    const name = /' (fanout-[a-z]+)(?: |$)(?![\s\S]*' fanout-)/.exec(command)?.[1] ?? 'unknown'
    this.ran.push(name)
    const p = new FakeProcess()
    void this.play(name, command, p)
    return p
  }

  private async play(name: string, command: string, p: FakeProcess): Promise<void> {
    // Whether the probe was asked for a free port: its third argument (after the directory and python).
    const wantPort =
      / fanout-(?:held|probe) '[^']*' '[^']*' '1'/.test(command) || / fanout-(?:held|probe) \S+ \S+ 1 /.test(command)
    if (name === 'fanout-route') {
      p.stdout.write(`fanout.iface=eth0\nfanout.src=${this.peerAddress}\n`)
      return p.exit(0)
    }
    if (name === 'fanout-probe' || name === 'fanout-held') {
      await p.stdin.next() // its set-up words
      p.stdout.write(this.facts(wantPort))
      if (name === 'fanout-probe') return p.exit(0)
      p.stdout.write(`${PROBE_END}\n`)
      p.stderr.write(`${PROBE_END}\n`)
      for (;;) {
        const block = await p.stdin.next()
        if (block === undefined) return p.exit(1) // EOF: the launch was called off, nothing runs
        this.heldOrders.push(block[0] ?? '')
        if (block[0] === 'reach') {
          const role = block[3]
          p.stdout.write(
            role === 'listen'
              ? 'fanout.reach_listen=ok\nfanout.reach_accepted=1\n'
              : `fanout.reach=ok ${this.peerAddress}\n`,
          )
          p.stdout.write(`${REACH_END}\n`)
          p.stderr.write(`${REACH_END}\n`)
          continue
        }
        return this.runJob(p)
      }
    }
    if (name === 'fanout-job') return this.runJob(p)
    p.exit(127)
  }

  private async runJob(p: FakeProcess): Promise<void> {
    await p.stdin.next() // set-up words
    await p.stdin.next() // NAME=VALUE words
    this.attempt++
    const script = this.options.job?.(this.attempt) ?? { exitCode: 0 }
    for (const line of script.lines ?? []) p.stdout.write(`${line}\n`)
    await new Promise((r) => setTimeout(r, script.afterMs ?? 5))
    p.exit(script.exitCode)
  }

  files(): Promise<RemoteFs> {
    throw new Error('no files on a fake node')
  }

  onLost(): void {}

  close(): void {
    this.closed = true
  }
}

/** A Ui that runs every phase at once and keeps what it was told. */
export function recordingUi(): Ui & { said: string[] } {
  const said: string[] = []
  return {
    said,
    async phase<T>(title: string, items: PhaseItem<T>[]): Promise<PromiseSettledResult<T>[]> {
      said.push(`phase ${title}`)
      return Promise.all(
        items.map(async (item): Promise<PromiseSettledResult<T>> => {
          try {
            return { status: 'fulfilled', value: await item.run(() => {}) }
          } catch (reason) {
            return { status: 'rejected', reason }
          }
        }),
      )
    },
    info: (m: string) => void said.push(m),
    warn: (m: string) => void said.push(`warning: ${m}`),
  }
}

/** A stream that keeps what is written to it. */
export function sink(): NodeJS.WriteStream & { text: () => string } {
  const chunks: Buffer[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(Buffer.from(chunk))
      cb()
    },
  })
  return Object.assign(stream, {
    text: () => Buffer.concat(chunks).toString('utf8'),
  }) as unknown as NodeJS.WriteStream & { text: () => string }
}

/** A RunIo over fake nodes: nothing of this process's streams, signals or network is touched. */
export function fakeIo(
  nodes: readonly FakeNode[],
): RunIo & { ui: ReturnType<typeof recordingUi>; stdout: ReturnType<typeof sink>; stderr: ReturnType<typeof sink> } {
  return {
    stdout: sink(),
    stderr: sink(),
    env: {},
    chalk: new Chalk({ level: 0 }),
    ui: recordingUi(),
    readStdin: async () => Buffer.alloc(0),
    onStop: () => () => {},
    openTransport: async (spec: NodeSpec) => nodes[spec.rank] as FakeNode,
  }
}
