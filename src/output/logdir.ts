import { createWriteStream, type WriteStream } from 'node:fs'
import { mkdir, stat, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { usageError } from '../errors.js'
import { whenDrained } from './drain.js'
import type { LineSink, OutputLine } from './node-output.js'
import { originKey } from './prefix.js'
import { PrefixedBytes } from './prefixed-bytes.js'
import { ProgressThrottle, PROGRESS_INTERVAL_MS } from './terminal.js'

/** `20261127-101514-3f9a2c`: sortable, readable, unique enough to be a directory and a rendezvous id. */
export function newRunId(now: Date, random: () => number): string {
  const two = (n: number): string => String(n).padStart(2, '0')
  const day = `${now.getFullYear()}${two(now.getMonth() + 1)}${two(now.getDate())}`
  const time = `${two(now.getHours())}${two(now.getMinutes())}${two(now.getSeconds())}`
  const tail = Math.floor(random() * 0x1000000)
    .toString(16)
    .padStart(6, '0')
  return `${day}-${time}-${tail}`
}

/** `node1-gpu02.log`; characters a file name should not hold (an IPv6 address's colons) become `_`. */
export const nodeLogName = (node: number, host: string): string =>
  `node${node}-${host.replace(/[^A-Za-z0-9._-]/g, '_')}.log`

/**
 * `mkdir -p` with 0700 for what it creates, one level at a time: Node's recursive mkdir spins forever
 * under /proc (nodejs/node#… on 20.x), and a bad --log-dir must fail, not hang.
 */
async function makeDirs(path: string): Promise<void> {
  const missing: string[] = []
  for (let p = resolve(path); ; p = dirname(p)) {
    try {
      if ((await stat(p)).isDirectory()) break
      throw Object.assign(new Error(`${p} is not a directory`), { code: 'ENOTDIR' })
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(p) === p) throw e
      missing.unshift(p)
    }
  }
  for (const p of missing) await mkdir(p, { mode: 0o700 })
}
const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/**
 * `--log-dir DIR`: DIR/<run-id>/ holds node<k>-<host>.log (every line of that node, shown in the
 * terminal or not, without colour), fanout.log (fanout's own messages) and summary.json. Only the
 * user can read them: directories 0700, files 0600 (logs can hold tokens a script printed).
 */
export class RunLog implements LineSink {
  readonly blocks = true
  private readonly files = new Map<number, WriteStream>()
  private readonly events: WriteStream
  private readonly throttle = new ProgressThrottle(PROGRESS_INTERVAL_MS)
  private blocked: WriteStream | undefined
  private readonly bytes = new PrefixedBytes()

  private constructor(
    readonly dir: string,
    private readonly nodes: ReadonlyArray<{ node: number; host: string }>,
  ) {
    this.events = this.open('fanout.log')
  }

  /** Creates DIR (0700, with its parents) and DIR/<runId>; refuses a directory fanout cannot create. */
  static async create(
    parent: string,
    runId: string,
    nodes: ReadonlyArray<{ node: number; host: string }>,
  ): Promise<RunLog> {
    const dir = join(parent, runId)
    try {
      await makeDirs(parent)
      await mkdir(dir, { mode: 0o700 })
    } catch (e) {
      throw usageError(`--log-dir: cannot create ${dir}: ${message(e)}`)
    }
    return new RunLog(dir, nodes)
  }

  private open(name: string): WriteStream {
    const stream = createWriteStream(join(this.dir, name), { flags: 'a', mode: 0o600 })
    // A full disk must not crash the job: the log stops, the job goes on, and the user is told once.
    stream.on('error', (e) => process.emitWarning(`fanout: cannot write ${join(this.dir, name)}: ${message(e)}`))
    return stream
  }

  private file(node: number): WriteStream {
    let f = this.files.get(node)
    if (!f) {
      const host = this.nodes.find((n) => n.node === node)?.host ?? 'unknown'
      this.files.set(node, (f = this.open(nodeLogName(node, host))))
    }
    return f
  }

  /** A line of fanout's own, with the time. */
  event(text: string, at = Date.now()): void {
    this.events.write(
      text
        .split('\n')
        .map((l) => `${new Date(at).toISOString()} ${l}\n`)
        .join(''),
    )
  }

  /** Marks where an attempt of a job run with --restarts begins, in every node's file. */
  startAttempt(attempt: number, at = Date.now()): void {
    for (const n of this.nodes)
      this.file(n.node).write(`${new Date(at).toISOString()} ----- attempt ${attempt} -----\n`)
  }

  write(line: OutputLine): boolean {
    return this.writeBatch([line])
  }

  /** Appends the lines to their nodes' files: one write per node per batch. */
  writeBatch(lines: readonly OutputLine[]): boolean {
    const byNode = new Map<number, OutputLine[]>()
    for (const line of lines) {
      if (!this.throttle.due(originKey(line), line.at, line.kind !== 'progress')) continue
      let list = byNode.get(line.node)
      if (!list) byNode.set(line.node, (list = []))
      list.push(line)
    }
    let ok = true
    for (const [node, list] of byNode) {
      for (const line of list) {
        const tag = line.rank === undefined ? '[node]' : `[r${line.rank}]`
        const head = Buffer.from(`${new Date(line.at).toISOString()} ${tag}${line.stream === 'stderr' ? '!' : ' '} `)
        if (line.kind === 'lines') this.bytes.lines(line.text, head)
        else this.bytes.line(head, line.text)
      }
      const f = this.file(node)
      if (!f.write(this.bytes.take())) {
        ok = false
        this.blocked = f
      }
    }
    return ok
  }

  onDrain(resume: () => void): void {
    whenDrained(this.blocked, resume)
  }

  async writeSummary(summary: unknown): Promise<void> {
    await writeFile(join(this.dir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n', { mode: 0o600 })
  }

  /** Flushes and closes every file. */
  async close(): Promise<void> {
    const all = [...this.files.values(), this.events]
    await Promise.all(all.map((s) => new Promise<void>((resolve) => (s.closed ? resolve() : s.end(resolve)))))
  }
}
