import { describe, it, expect, vi, beforeEach, afterEach } from 'vitest'
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough, Writable } from 'node:stream'
import { collector } from './collector.js'
import { Chalk } from 'chalk'
import yargs from 'yargs'
import { FanoutError } from '../../src/errors.js'
import { Prefixer, checkPrefixFormat, timestamp, type LineOrigin, type PrefixOptions } from '../../src/output/prefix.js'
import { lineFilter, ProgressThrottle, TerminalSink, PROGRESS_INTERVAL_MS } from '../../src/output/terminal.js'
import { originKey } from '../../src/output/prefix.js'
import { LiveRegion, fitWidth, plainText } from '../../src/output/live.js'
import { NodeOutput, type LineSink, type OutputLine } from '../../src/output/node-output.js'
import { RunLog, newRunId, nodeLogName } from '../../src/output/logdir.js'
import { JsonEvents } from '../../src/output/json.js'
import { parseIndexList, resolveOnlyNodes } from '../../src/output/options.js'
import { readOutputOptions, withOutputOptions } from '../../src/cli/options/output.js'
import { JobOutput, type PlannedNode } from '../../src/output/job-output.js'

// ---------------------------------------------------------------------------------------------------
// Helpers and fakes

const plain = new Chalk({ level: 0 })
const colour = new Chalk({ level: 1 })

const ANSI = /\x1b\[[0-9;]*m/g
const visible = (s: string): string => s.replace(ANSI, '')

/** Lets pending stream events ('data', 'end', nextTick work) run. */
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** Asserts that `fn` throws a FanoutError with code USAGE whose message matches `message`. */
function expectUsage(fn: () => unknown, message?: RegExp): void {
  let caught: unknown
  try {
    fn()
  } catch (e) {
    caught = e
  }
  expect(caught).toBeInstanceOf(FanoutError)
  expect((caught as FanoutError).code).toBe('USAGE')
  if (message) expect((caught as FanoutError).message).toMatch(message)
}

/** A Writable that holds every write until release(): its write() returns false, and 'drain' comes on release. */
class GatedWritable extends Writable {
  readonly chunks: Buffer[] = []
  private readonly held: Array<(e?: Error | null) => void> = []

  constructor() {
    super({ highWaterMark: 1 })
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.chunks.push(Buffer.from(chunk))
    this.held.push(cb)
  }

  release(): void {
    while (this.held.length > 0) this.held.shift()!()
  }
}

/** A fake TTY for LiveRegion; `log` can be shared with a Writable, to see the order of everything written. */
function fakeTty(columns = 80, rows = 24, log: string[] = []) {
  return {
    log,
    tty: {
      columns,
      rows,
      write(data: string | Uint8Array): boolean {
        log.push(typeof data === 'string' ? data : Buffer.from(data).toString('utf8'))
        return true
      },
    },
  }
}

/** A sink that records (copies of) every line and answers write() with `answer()`. */
function recorder(answer: () => boolean = () => true) {
  const lines: OutputLine[] = []
  const drains: Array<() => void> = []
  const sink: LineSink = {
    write(line) {
      lines.push({ ...line, text: Buffer.from(line.text) })
      return answer()
    },
    onDrain(resume) {
      drains.push(resume)
    },
  }
  return { sink, lines, drains }
}

type Shown = [number | undefined, string, string] // rank, stream, text
const shown = (lines: readonly OutputLine[]): Shown[] => lines.map((l) => [l.rank, l.stream, l.text.toString('utf8')])

/** A rank tagger frame, and the zero-length frame that ends a rank's stream. */
const frame = (rank: number | '', localRank: number | '', data: string | Buffer): Buffer => {
  const payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : data
  return Buffer.concat([Buffer.from(`\x1eF${rank},${localRank}:${payload.length}\x1f`, 'latin1'), payload])
}
const endFrame = (rank: number, localRank: number): Buffer => Buffer.from(`\x1eF${rank},${localRank}:0\x1f`, 'latin1')

function outputLine(o: Partial<Omit<OutputLine, 'text'>> & { text?: Buffer | string } = {}): OutputLine {
  const { text, ...rest } = o
  return {
    node: 0,
    host: 'a',
    stream: 'stdout',
    kind: 'line',
    at: 0,
    ...rest,
    text: typeof text === 'string' ? Buffer.from(text) : (text ?? Buffer.from('hello')),
  }
}

function prefixer(o: Partial<PrefixOptions> = {}): Prefixer {
  return new Prefixer({
    nodes: [{ node: 0, host: 'a' }],
    tagged: true,
    maxRank: 0,
    maxLocalRank: 0,
    chalk: plain,
    timestamps: false,
    ...o,
  })
}

// ---------------------------------------------------------------------------------------------------

describe('Prefixer', () => {
  const out = (rank?: number, localRank?: number): LineOrigin => ({
    node: 0,
    host: 'a',
    stream: 'stdout',
    ...(rank === undefined ? {} : { rank }),
    ...(localRank === undefined ? {} : { localRank }),
  })

  it('default tagged prefix is [n<node> <host> r<rank>] followed by two spaces', () => {
    expect(prefixer().prefix(out(0, 0), 0)).toBe('[n0 a r0]  ')
  })

  it('default untagged prefix is [n<node> <host>]', () => {
    expect(prefixer({ tagged: false }).prefix(out(), 0)).toBe('[n0 a]  ')
  })

  it('marks stderr with "!"', () => {
    const p = prefixer()
    expect(p.prefix({ ...out(0, 0), stream: 'stderr' }, 0)).toBe('[n0 a r0]! ')
    expect(p.prefix(out(0, 0), 0)).toBe('[n0 a r0]  ')
  })

  it('pads a shorter label so that the text starts in one column', () => {
    const p = prefixer({ maxRank: 10 })
    expect(p.prefix(out(3, 0), 0)).toBe('[n0 a r3]   ')
    expect(p.prefix(out(10, 0), 0)).toBe('[n0 a r10]  ')
    expect(p.prefix(out(), 0)).toBe('[n0 a]      ')
  })

  describe('every prefix of one job has the same visible width', () => {
    const hosts = ['a', 'gpu-node-02', 'bb', 'x.example.com']
    const nodes = hosts.map((host, node) => ({ node, host }))
    const widest = '[n3 x.example.com r11]'.length + 2

    it.each([
      ['without colour', plain],
      ['with colour', colour],
    ])('%s', (_name, chalk) => {
      const p = new Prefixer({ nodes, tagged: true, maxRank: 11, maxLocalRank: 2, chalk, timestamps: false })
      const widths = new Set<number>()
      for (const { node, host } of nodes) {
        for (const stream of ['stdout', 'stderr'] as const) {
          for (let local = 0; local < 3; local++)
            widths.add(visible(p.prefix({ node, host, stream, rank: node * 3 + local, localRank: local }, 0)).length)
          widths.add(visible(p.prefix({ node, host, stream }, 0)).length) // torchrun's own, untagged line
        }
      }
      expect([...widths]).toEqual([widest])
    })

    it('untagged job: as wide as the longest [n<node> <host>]', () => {
      const p = new Prefixer({ nodes, tagged: false, maxRank: 11, maxLocalRank: 2, chalk: plain, timestamps: false })
      expect(p.prefix({ node: 0, host: 'a', stream: 'stdout' }, 0)).toBe(
        '[n0 a]'.padEnd('[n3 x.example.com]'.length) + '  ',
      )
      expect(p.prefix({ node: 3, host: 'x.example.com', stream: 'stdout' }, 0)).toBe('[n3 x.example.com]  ')
    })
  })

  it.each<[string, string, boolean, LineOrigin, string]>([
    [
      'all fields',
      '{host}/{node}/{rank}/{local_rank}',
      true,
      { node: 0, host: 'a', stream: 'stdout', rank: 3, localRank: 1 },
      'a/0/3/1  ',
    ],
    [
      'missing rank and local rank are -',
      '{host}/{node}/{rank}/{local_rank}',
      true,
      { node: 0, host: 'a', stream: 'stdout' },
      'a/0/-/-  ',
    ],
    [
      'a field twice, text around',
      '<{rank}:{rank}> on {host}',
      true,
      { node: 0, host: 'a', stream: 'stdout', rank: 2, localRank: 0 },
      '<2:2> on a  ',
    ],
    ['untagged job: {rank} is -', '{node}:{rank}', false, { node: 0, host: 'a', stream: 'stdout' }, '0:-  '],
    [
      'stderr marker after a custom format',
      '{host}',
      true,
      { node: 0, host: 'a', stream: 'stderr', rank: 0, localRank: 0 },
      'a! ',
    ],
  ])('custom format: %s', (_name, format, tagged, origin, expected) => {
    expect(prefixer({ format, tagged, maxRank: 3, maxLocalRank: 1 }).prefix(origin, 0)).toBe(expected)
  })

  it('custom format: padded to the widest rank and local rank', () => {
    const p = prefixer({ format: 'r{rank}.{local_rank}', maxRank: 12, maxLocalRank: 10 })
    expect(p.prefix({ node: 0, host: 'a', stream: 'stdout', rank: 1, localRank: 1 }, 0)).toBe('r1.1' + '  ' + '  ')
  })

  it('format false (--no-prefix) gives no prefix at all', () => {
    const p = prefixer({ format: false, maxRank: 99 })
    expect(p.prefix(out(5, 1), 0)).toBe('')
    expect(p.prefix({ ...out(5, 1), stream: 'stderr' }, 0)).toBe('')
  })

  describe('timestamps', () => {
    const at = new Date(2026, 0, 2, 3, 4, 5, 6).getTime()

    it('timestamp() is the local HH:MM:SS.mmm and a space', () => {
      expect(timestamp(at)).toBe('03:04:05.006 ')
      expect(timestamp(new Date(2026, 10, 27, 23, 59, 59, 999).getTime())).toBe('23:59:59.999 ')
    })

    it('start each prefix with the time the line arrived', () => {
      const p = prefixer({ timestamps: true })
      expect(p.prefix(out(0, 0), at)).toBe('03:04:05.006 [n0 a r0]  ')
      // The prefix itself is cached; the time is not.
      expect(p.prefix(out(0, 0), at + 1000)).toBe('03:04:06.006 [n0 a r0]  ')
    })

    it('with --no-prefix: only the time', () => {
      expect(prefixer({ timestamps: true, format: false }).prefix(out(0, 0), at)).toBe('03:04:05.006 ')
    })
  })

  describe('colour', () => {
    it('level 1: the label is coloured per node and the stderr marker red', () => {
      const p = new Prefixer({
        nodes: [
          { node: 0, host: 'a' },
          { node: 1, host: 'b' },
        ],
        tagged: false,
        maxRank: 0,
        maxLocalRank: 0,
        chalk: colour,
        timestamps: false,
      })
      expect(p.prefix({ node: 0, host: 'a', stream: 'stdout' }, 0)).toBe('\x1b[36m[n0 a]\x1b[39m  ')
      expect(p.prefix({ node: 1, host: 'b', stream: 'stderr' }, 0)).toBe('\x1b[32m[n1 b]\x1b[39m\x1b[31m!\x1b[39m ')
    })

    it('level 1 with timestamps: the time is dim', () => {
      const p = prefixer({ chalk: colour, timestamps: true })
      expect(p.prefix(out(0, 0), new Date(2026, 0, 2, 3, 4, 5, 6).getTime())).toMatch(
        /^\x1b\[2m03:04:05\.006 \x1b\[22m/,
      )
    })

    it('level 0: no escape codes anywhere', () => {
      const p = prefixer({ timestamps: true, maxRank: 5 })
      for (const stream of ['stdout', 'stderr'] as const)
        expect(p.prefix({ ...out(1, 0), stream }, 0)).not.toContain('\x1b')
    })
  })
})

describe('checkPrefixFormat', () => {
  it.each(['{host}', '[{node}:{rank}/{local_rank}]', 'plain text', '{host} {host}', 'brace { alone'])(
    'accepts %j',
    (format) => {
      expect(checkPrefixFormat(format)).toBe(format)
    },
  )

  it.each<[string, RegExp]>([
    ['{foo}', /unknown field \{foo\}/],
    ['[{host} {Rank}]', /unknown field \{Rank\}/],
    ['{}', /unknown field \{\}/],
    ['{ host }', /unknown field/],
    ['a\tb', /control characters/],
    ['\x1b[31m{host}', /control characters/],
    ['{host}\n', /control characters/],
    ['x\x7f', /control characters/],
  ])('rejects %j', (format, message) => {
    expectUsage(() => checkPrefixFormat(format), message)
    expectUsage(() => checkPrefixFormat(format), /--prefix/)
  })
})

// ---------------------------------------------------------------------------------------------------

describe('lineFilter', () => {
  // node 0 runs ranks 0-1, node 1 runs ranks 2-3, node 2 has not shown its ranks yet
  const ranksOf = (node: number): number[] => ({ 0: [0, 1], 1: [2, 3] })[node] ?? []
  const o = (node: number, rank?: number): LineOrigin => ({
    node,
    host: `h${node}`,
    stream: 'stdout',
    ...(rank === undefined ? {} : { rank }),
  })

  it.each<[string, Parameters<typeof lineFilter>[0], LineOrigin, boolean]>([
    ['no filter shows a rank line', {}, o(1, 3), true],
    ['no filter shows an untagged line', {}, o(2), true],
    ['quiet hides a rank line', { quiet: true }, o(0, 0), false],
    ['quiet hides an untagged line', { quiet: true }, o(0), false],
    ['--only shows a listed rank', { ranks: new Set([2]) }, o(1, 2), true],
    ['--only hides another rank', { ranks: new Set([2]) }, o(1, 3), false],
    ['--only hides another node’s rank', { ranks: new Set([2]) }, o(0, 0), false],
    ['--only: untagged line of a node running the rank', { ranks: new Set([3]) }, o(1), true],
    ['--only: untagged line of a node not running the rank', { ranks: new Set([3]) }, o(0), false],
    ['--only: untagged line of a node with no known ranks', { ranks: new Set([3]) }, o(2), false],
    ['--only-node shows its node', { nodes: new Set([1]) }, o(1, 2), true],
    ['--only-node hides other nodes', { nodes: new Set([1]) }, o(0, 0), false],
    ['--only-node hides other nodes’ untagged lines', { nodes: new Set([1]) }, o(0), false],
    [
      '--only and --only-node both apply: rank on the node',
      { ranks: new Set([2]), nodes: new Set([1]) },
      o(1, 2),
      true,
    ],
    ['--only and --only-node both apply: rank elsewhere', { ranks: new Set([0]), nodes: new Set([1]) }, o(0, 0), false],
    [
      '--only and --only-node both apply: other rank on the node',
      { ranks: new Set([0]), nodes: new Set([1]) },
      o(1, 2),
      false,
    ],
  ])('%s', (_name, filter, origin, expected) => {
    expect(lineFilter(filter, ranksOf)(origin)).toBe(expected)
  })

  it('asks ranksOf each time, so ranks learnt later count', () => {
    const ranks: number[] = []
    const show = lineFilter({ ranks: new Set([5]) }, () => ranks)
    expect(show(o(0))).toBe(false)
    ranks.push(5)
    expect(show(o(0))).toBe(true)
  })
})

describe('ProgressThrottle', () => {
  it('is due at most once per interval per key', () => {
    const t = new ProgressThrottle(1000)
    expect(t.due('a', 0)).toBe(true)
    expect(t.due('a', 1)).toBe(false)
    expect(t.due('a', 999)).toBe(false)
    expect(t.due('b', 500)).toBe(true) // another process
    expect(t.due('a', 1000)).toBe(true)
    expect(t.due('a', 1999)).toBe(false)
    expect(t.due('b', 1499)).toBe(false)
    expect(t.due('b', 1500)).toBe(true)
  })

  it('a finished line is always due and resets its key', () => {
    const t = new ProgressThrottle(1000)
    expect(t.due('a', 0)).toBe(true)
    expect(t.due('a', 10, true)).toBe(true)
    expect(t.due('a', 11, true)).toBe(true)
    expect(t.due('a', 20)).toBe(true) // the next bar shows at once
    expect(t.due('a', 30)).toBe(false)
  })

  it('originKey tells processes and streams apart', () => {
    const keys = new Set([
      originKey({ node: 0, host: 'a', stream: 'stdout' }),
      originKey({ node: 0, host: 'a', stream: 'stderr' }),
      originKey({ node: 1, host: 'b', stream: 'stdout' }),
      originKey({ node: 0, host: 'a', stream: 'stdout', rank: 0, localRank: 0 }),
      originKey({ node: 0, host: 'a', stream: 'stdout', rank: 1, localRank: 1 }),
    ])
    expect(keys.size).toBe(5)
  })
})

// ---------------------------------------------------------------------------------------------------

describe('TerminalSink without a TTY', () => {
  function setup(o: { show?: (origin: LineOrigin) => boolean; interval?: number } = {}) {
    const stdout = collector()
    const stderr = collector()
    const sink = new TerminalSink({
      stdout: stdout.stream,
      stderr: stderr.stream,
      prefixer: prefixer({ maxRank: 1, maxLocalRank: 1 }),
      show: o.show ?? (() => true),
      ...(o.interval === undefined ? {} : { progressIntervalMs: o.interval }),
    })
    return { sink, stdout, stderr }
  }
  const r = (rank: number): Partial<OutputLine> => ({ rank, localRank: rank })

  it('prefixes each line and routes it by stream', () => {
    const { sink, stdout, stderr } = setup()
    expect(sink.write(outputLine({ ...r(0), text: 'out one' }))).toBe(true)
    expect(sink.write(outputLine({ ...r(1), stream: 'stderr', text: 'err one' }))).toBe(true)
    expect(sink.write(outputLine({ ...r(1), text: 'out two' }))).toBe(true)
    expect(stdout.text()).toBe('[n0 a r0]  out one\n[n0 a r1]  out two\n')
    expect(stderr.text()).toBe('[n0 a r1]! err one\n')
  })

  it('writes the bytes of the line as they are (no decoding)', () => {
    const raw: Buffer[] = []
    const stdout = new Writable({ write: (c: Buffer, _e, cb) => (raw.push(Buffer.from(c)), cb()) })
    const sink = new TerminalSink({ stdout, stderr: collector().stream, prefixer: prefixer(), show: () => true })
    const bytes = Buffer.from([0x61, 0xff, 0xfe, 0x1b, 0x5b, 0x6d, 0x62])
    sink.write(outputLine({ ...r(0), text: bytes }))
    expect(Buffer.concat(raw).equals(Buffer.concat([Buffer.from('[n0 a r0]  '), bytes, Buffer.from('\n')]))).toBe(true)
  })

  it('hidden lines are not written, and write() still returns true', () => {
    const { sink, stdout, stderr } = setup({ show: (o) => o.rank === 1 })
    expect(sink.write(outputLine({ ...r(0), text: 'hidden' }))).toBe(true)
    expect(sink.write(outputLine({ ...r(0), stream: 'stderr', text: 'hidden too' }))).toBe(true)
    expect(sink.write(outputLine({ ...r(0), kind: 'progress', text: '10%' }))).toBe(true)
    expect(sink.write(outputLine({ ...r(1), text: 'shown' }))).toBe(true)
    expect(stdout.text()).toBe('[n0 a r1]  shown\n')
    expect(stderr.text()).toBe('')
  })

  it('prints a progress state at most once per interval per process; the finished line always', () => {
    const { sink, stdout } = setup()
    const I = PROGRESS_INTERVAL_MS
    const p = (rank: number, at: number, text: string): OutputLine =>
      outputLine({ ...r(rank), kind: 'progress', at, text })
    sink.write(p(0, 0, 'r0 0%'))
    sink.write(p(1, 0, 'r1 0%')) // another process: its own interval
    sink.write(p(0, 1000, 'r0 10%'))
    sink.write(p(0, I - 1, 'r0 50%'))
    sink.write(p(1, I / 2, 'r1 50%'))
    sink.write(p(0, I, 'r0 60%'))
    sink.write(p(0, I + 1, 'r0 61%'))
    sink.write(outputLine({ ...r(0), at: I + 2, text: 'r0 100% done' }))
    sink.write(p(0, I + 3, 'r0 next bar 0%')) // the finished line reset the throttle
    sink.write(p(0, I + 4, 'r0 next bar 1%'))
    expect(stdout.text().split('\n')).toEqual([
      '[n0 a r0]  r0 0%',
      '[n0 a r1]  r1 0%',
      '[n0 a r0]  r0 60%',
      '[n0 a r0]  r0 100% done',
      '[n0 a r0]  r0 next bar 0%',
      '',
    ])
  })

  it('the interval can be set', () => {
    const { sink, stdout } = setup({ interval: 100 })
    for (const at of [0, 50, 99, 100, 150, 200])
      sink.write(outputLine({ ...r(0), kind: 'progress', at, text: `t${at}` }))
    expect(stdout.text()).toBe('[n0 a r0]  t0\n[n0 a r0]  t100\n[n0 a r0]  t200\n')
  })

  describe('backpressure', () => {
    it('write() returns false when the destination is full, and onDrain resumes on its drain', () => {
      const stdout = new GatedWritable()
      const sink = new TerminalSink({ stdout, stderr: collector().stream, prefixer: prefixer(), show: () => true })
      expect(sink.write(outputLine({ rank: 0, localRank: 0, text: 'x' }))).toBe(false)
      const resume = vi.fn()
      sink.onDrain(resume)
      expect(resume).not.toHaveBeenCalled()
      stdout.release()
      expect(resume).toHaveBeenCalledTimes(1)
      expect(Buffer.concat(stdout.chunks).toString()).toBe('[n0 a r0]  x\n')
    })

    it('waits for the stream that was full (stderr), not the other one', () => {
      const stdout = new GatedWritable()
      const stderr = new GatedWritable()
      const sink = new TerminalSink({ stdout, stderr, prefixer: prefixer(), show: () => true })
      expect(sink.write(outputLine({ rank: 0, localRank: 0, stream: 'stderr', text: 'e' }))).toBe(false)
      const resume = vi.fn()
      sink.onDrain(resume)
      stdout.release()
      expect(resume).not.toHaveBeenCalled()
      stderr.release()
      expect(resume).toHaveBeenCalledTimes(1)
    })

    it('many waiters on one stream share one drain listener and all resume', () => {
      const stdout = new GatedWritable()
      const sink = new TerminalSink({ stdout, stderr: collector().stream, prefixer: prefixer(), show: () => true })
      const resumes = Array.from({ length: 20 }, () => vi.fn())
      for (const resume of resumes) {
        expect(sink.write(outputLine({ rank: 0, localRank: 0, text: 'x' }))).toBe(false)
        sink.onDrain(resume)
      }
      expect(stdout.listenerCount('drain')).toBe(1)
      stdout.release()
      for (const resume of resumes) expect(resume).toHaveBeenCalledTimes(1)
      expect(stdout.listenerCount('drain')).toBe(0)
    })

    it('onDrain with nothing full resumes at once', () => {
      const { sink } = setup()
      const resume = vi.fn()
      sink.onDrain(resume)
      expect(resume).toHaveBeenCalledTimes(1)
    })
  })
})

// ---------------------------------------------------------------------------------------------------

describe('fitWidth', () => {
  it.each<[string, string, number, string]>([
    ['short text unchanged', 'hello', 10, 'hello'],
    ['exact width unchanged', 'hello', 5, 'hello'],
    ['cut to the width', 'hello world', 5, 'hello'],
    ['SGR codes kept and not counted', '\x1b[36mabc\x1b[39m', 3, '\x1b[36mabc\x1b[39m'],
    ['cut inside colour closes it', '\x1b[36mabc\x1b[39m', 2, '\x1b[36mab\x1b[0m'],
    ['prefix colour, then text', '\x1b[36m[n0]\x1b[39m  12345', 8, '\x1b[36m[n0]\x1b[39m  12\x1b[0m'],
    ['wide characters count 2', '中文字', 5, '中文'],
    ['wide character not split across the edge', 'ab中', 3, 'ab'],
    ['wide characters exactly fitting', 'ab中', 4, 'ab中'],
    ['emoji count 2 and stay whole', '😀😀x', 3, '😀'],
    ['narrow non-ASCII counts 1', 'héllo', 3, 'hél'],
    ['zero width', 'abc', 0, ''],
  ])('%s', (_name, text, width, expected) => {
    expect(fitWidth(text, width)).toBe(expected)
  })
})

describe('plainText', () => {
  it.each<[string, string, string]>([
    ['colour codes', '\x1b[31mred\x1b[0m text', 'red text'],
    ['cursor moves and erases', '\x1b[2K\x1b[1G 50%|###', ' 50%|###'],
    ['private mode sequences', '\x1b[?25lbar\x1b[?25h', 'bar'],
    ['OSC title ended by BEL', '\x1b]0;title\x07text', 'text'],
    ['OSC ended by ST', '\x1b]8;;http://x\x1b\\link', 'link'],
    ['two-byte escapes (reverse index, save cursor)', '\x1bMup\x1b7\x1b8', 'up'],
    ['charset selection (tput sgr0)', '\x1b(Bbar\x1b[m', 'bar'],
    ['tabs become spaces', 'a\tb', 'a b'],
    ['other control characters dropped', 'bell\x07 nul\x00 del\x7f bs\x08 vt\x0b', 'bell nul del bs vt'],
    ['stray newline and carriage return dropped', 'a\nb\rc', 'abc'],
    ['UTF-8 text kept', 'héllo 中文 😀', 'héllo 中文 😀'],
  ])('%s', (_name, text, expected) => {
    expect(plainText(text)).toBe(expected)
  })
})

describe('LiveRegion', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  const ERASE = (n: number): string => `\x1b[${n}A\r\x1b[J`

  it('draws 80 ms after a change, one row per progress line and the status row last', () => {
    const { tty, log } = fakeTty()
    const live = new LiveRegion(tty)
    live.setStatus('running 0:01')
    live.setProgress('a', 'bar a 10%')
    live.setProgress('b', 'bar b 20%')
    vi.advanceTimersByTime(79)
    expect(log).toEqual([])
    vi.advanceTimersByTime(1)
    expect(log).toEqual(['bar a 10%\nbar b 20%\nrunning 0:01\n'])
  })

  it('changes within 80 ms are drawn once; a redraw erases the rows drawn before', () => {
    const { tty, log } = fakeTty()
    const live = new LiveRegion(tty)
    live.setProgress('a', 'a 1%')
    live.setProgress('a', 'a 2%')
    live.setProgress('b', 'b 1%')
    vi.advanceTimersByTime(80)
    live.setProgress('a', 'a 3%')
    vi.advanceTimersByTime(80)
    expect(log).toEqual(['a 2%\nb 1%\n', ERASE(2), 'a 3%\nb 1%\n'])
  })

  it('setStatus with the same text does not redraw', () => {
    const { tty, log } = fakeTty()
    const live = new LiveRegion(tty)
    live.setStatus('s')
    vi.advanceTimersByTime(100)
    live.setStatus('s')
    vi.advanceTimersByTime(100)
    expect(log).toEqual(['s\n'])
  })

  it('clearProgress removes a row; clearing an unknown key changes nothing', () => {
    const { tty, log } = fakeTty()
    const live = new LiveRegion(tty)
    live.setProgress('a', 'a')
    live.setProgress('b', 'b')
    vi.advanceTimersByTime(80)
    live.clearProgress('nope')
    vi.advanceTimersByTime(80)
    expect(log).toEqual(['a\nb\n'])
    live.clearProgress('a')
    vi.advanceTimersByTime(80)
    expect(log).toEqual(['a\nb\n', ERASE(2), 'b\n'])
  })

  it('cuts every row to the terminal width less one column', () => {
    const { tty, log } = fakeTty(30, 24)
    const live = new LiveRegion(tty)
    live.setProgress('a', '\x1b[36m[n0 a r0]\x1b[39m  ' + 'x'.repeat(100))
    live.setStatus('s'.repeat(50))
    vi.advanceTimersByTime(80)
    const rows = log.join('').split('\n')
    expect(rows).toHaveLength(3)
    expect(visible(rows[0]!)).toHaveLength(29)
    expect(rows[0]).toMatch(/^\x1b\[36m\[n0 a r0\]\x1b\[39m {2}x+\x1b\[0m$/)
    expect(rows[1]).toBe('s'.repeat(29))
  })

  it('never cuts to fewer than 20 columns; 80 columns when the width is unknown', () => {
    const narrow = fakeTty(5, 24)
    const live = new LiveRegion(narrow.tty)
    live.setStatus('y'.repeat(100))
    vi.advanceTimersByTime(80)
    expect(narrow.log).toEqual(['y'.repeat(20) + '\n'])

    const log: string[] = []
    const unknown = new LiveRegion({ write: (d) => (log.push(String(d)), true) })
    unknown.setStatus('z'.repeat(100))
    vi.advanceTimersByTime(80)
    expect(log).toEqual(['z'.repeat(79) + '\n'])
  })

  it('print() erases the region, writes, and redraws it 80 ms later', () => {
    const { tty, log } = fakeTty()
    const dest = collector(log)
    const live = new LiveRegion(tty)
    live.setProgress('a', 'bar')
    live.setStatus('status')
    vi.advanceTimersByTime(80)
    expect(live.print(dest.stream, 'a line\n')).toBe(true)
    expect(log).toEqual(['bar\nstatus\n', ERASE(2), 'a line\n'])
    vi.advanceTimersByTime(80)
    expect(log).toEqual(['bar\nstatus\n', ERASE(2), 'a line\n', 'bar\nstatus\n'])
  })

  it('print() with nothing drawn writes no erase sequence', () => {
    const { tty, log } = fakeTty()
    const live = new LiveRegion(tty)
    live.print(tty, 'first\n')
    vi.advanceTimersByTime(200)
    expect(log).toEqual(['first\n'])
  })

  it('print() returns what the destination write returned', () => {
    const { tty } = fakeTty()
    const live = new LiveRegion(tty)
    expect(live.print(new GatedWritable(), 'x\n')).toBe(false)
  })

  it('collapses more progress rows than half the terminal into "… and N more progress bars"', () => {
    const { tty, log } = fakeTty(80, 10) // room for 10/2 - 1 = 4 progress rows, and the status row
    const live = new LiveRegion(tty)
    for (let i = 0; i < 6; i++) live.setProgress(`k${i}`, `bar ${i}`)
    live.setStatus('status')
    vi.advanceTimersByTime(80)
    expect(log).toEqual(['bar 0\nbar 1\nbar 2\n… and 3 more progress bars\nstatus\n'])
    live.print(tty, 'line\n')
    expect(log.at(-2)).toBe(ERASE(5))
  })

  it('as many progress rows as there is room for are all shown', () => {
    const { tty, log } = fakeTty(80, 10)
    const live = new LiveRegion(tty)
    for (let i = 0; i < 4; i++) live.setProgress(`k${i}`, `bar ${i}`)
    vi.advanceTimersByTime(80)
    expect(log).toEqual(['bar 0\nbar 1\nbar 2\nbar 3\n'])
  })

  it('reset() erases and empties the region; it can be filled again', () => {
    const { tty, log } = fakeTty()
    const live = new LiveRegion(tty)
    live.setProgress('a', 'bar')
    live.setStatus('status')
    vi.advanceTimersByTime(80)
    live.setProgress('a', 'bar 2') // a pending redraw is cancelled by reset()
    live.reset()
    expect(log).toEqual(['bar\nstatus\n', ERASE(2)])
    vi.advanceTimersByTime(200)
    expect(log).toHaveLength(2)
    live.setStatus('again')
    vi.advanceTimersByTime(80)
    expect(log).toEqual(['bar\nstatus\n', ERASE(2), 'again\n'])
  })

  it('stop() erases the region for good', () => {
    const { tty, log } = fakeTty()
    const live = new LiveRegion(tty)
    live.setProgress('a', 'bar')
    vi.advanceTimersByTime(80)
    live.setProgress('a', 'bar 2')
    live.stop()
    expect(log).toEqual(['bar\n', ERASE(1)])
    live.setProgress('b', 'more')
    live.setStatus('status')
    live.print(tty, 'summary\n')
    vi.advanceTimersByTime(500)
    expect(log).toEqual(['bar\n', ERASE(1), 'summary\n'])
  })
})

describe('TerminalSink with a LiveRegion', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  function setup(columns = 80, rows = 24) {
    const { tty, log } = fakeTty(columns, rows)
    const stdout = collector(log)
    const stderr = collector(log)
    const live = new LiveRegion(tty)
    const sink = new TerminalSink({
      stdout: stdout.stream,
      stderr: stderr.stream,
      prefixer: prefixer({ maxRank: 1, maxLocalRank: 1 }),
      show: () => true,
      live,
    })
    return { sink, live, log, stdout, stderr }
  }
  const progress = (rank: number, text: string, at = 0): OutputLine =>
    outputLine({ rank, localRank: rank, kind: 'progress', text, at })
  const line = (rank: number, text: string, stream: 'stdout' | 'stderr' = 'stdout'): OutputLine =>
    outputLine({ rank, localRank: rank, text, stream })

  it('progress goes into the region, not out as a line, every state (no throttle)', () => {
    const { sink, live, log, stdout } = setup()
    live.setStatus('running')
    expect(sink.write(progress(0, '10%', 0))).toBe(true)
    expect(sink.write(progress(0, '11%', 1))).toBe(true)
    expect(sink.write(progress(1, '50%', 2))).toBe(true)
    expect(stdout.text()).toBe('')
    vi.advanceTimersByTime(80)
    expect(log).toEqual(['[n0 a r0]  11%\n[n0 a r1]  50%\nrunning\n'])
  })

  it('job escape sequences and control characters are stripped from region rows', () => {
    const { sink, log } = setup()
    sink.write(progress(0, '\x1b[32m50%\x1b[0m\t|##  |\x07'))
    vi.advanceTimersByTime(80)
    expect(log).toEqual(['[n0 a r0]  50% |##  |\n'])
  })

  it('rows are cut to the terminal width', () => {
    const { sink, log } = setup(40)
    sink.write(progress(0, '█'.repeat(100)))
    vi.advanceTimersByTime(80)
    expect(log).toEqual(['[n0 a r0]  ' + '█'.repeat(39 - 11) + '\n'])
  })

  it('a line is printed above the region: erase, line, redraw', () => {
    const { sink, live, log } = setup()
    live.setStatus('running')
    sink.write(progress(0, '10%'))
    vi.advanceTimersByTime(80)
    expect(sink.write(line(1, 'hello'))).toBe(true)
    expect(sink.write(line(1, 'oops', 'stderr'))).toBe(true)
    expect(log).toEqual(['[n0 a r0]  10%\nrunning\n', '\x1b[2A\r\x1b[J', '[n0 a r1]  hello\n', '[n0 a r1]! oops\n'])
    vi.advanceTimersByTime(80)
    expect(log.at(-1)).toBe('[n0 a r0]  10%\nrunning\n')
  })

  it('the line that ends a progress bar replaces its row', () => {
    const { sink, log } = setup()
    sink.write(progress(0, '99%'))
    sink.write(progress(1, '50%'))
    vi.advanceTimersByTime(80)
    sink.write(line(0, '100% done'))
    vi.advanceTimersByTime(80)
    expect(log).toEqual([
      '[n0 a r0]  99%\n[n0 a r1]  50%\n',
      '\x1b[2A\r\x1b[J',
      '[n0 a r0]  100% done\n',
      '[n0 a r1]  50%\n',
    ])
  })

  it('more progress rows than half the terminal collapse', () => {
    const { sink, live, log } = setup(80, 8) // room for 3
    for (let i = 0; i < 2; i++) sink.write(progress(i, `${i}`))
    sink.write(outputLine({ node: 0, rank: 0, localRank: 0, stream: 'stderr', kind: 'progress', text: 'e0' }))
    sink.write(outputLine({ node: 0, rank: 1, localRank: 1, stream: 'stderr', kind: 'progress', text: 'e1' }))
    live.setStatus('st')
    vi.advanceTimersByTime(80)
    expect(log).toEqual(['[n0 a r0]  0\n[n0 a r1]  1\n… and 2 more progress bars\nst\n'])
  })

  it('reset() and stop() erase the region', () => {
    const { sink, live, log } = setup()
    sink.write(progress(0, '1%'))
    vi.advanceTimersByTime(80)
    live.reset()
    expect(log).toEqual(['[n0 a r0]  1%\n', '\x1b[1A\r\x1b[J'])
    sink.write(progress(0, '2%'))
    vi.advanceTimersByTime(80)
    live.stop()
    expect(log).toEqual(['[n0 a r0]  1%\n', '\x1b[1A\r\x1b[J', '[n0 a r0]  2%\n', '\x1b[1A\r\x1b[J'])
  })

  it('hidden progress does not reach the region', () => {
    const { tty, log } = fakeTty()
    const live = new LiveRegion(tty)
    const sink = new TerminalSink({
      stdout: collector().stream,
      stderr: collector().stream,
      prefixer: prefixer(),
      show: () => false,
      live,
    })
    expect(sink.write(progress(0, '1%'))).toBe(true)
    vi.advanceTimersByTime(200)
    expect(log).toEqual([])
  })
})

// ---------------------------------------------------------------------------------------------------

describe('NodeOutput', () => {
  const now = (): number => 1234

  /** Pipes the chunks of each stream (in turn, each ended) and waits for all to finish. */
  async function run(
    out: NodeOutput,
    streams: Partial<Record<'stdout' | 'stderr', Array<string | Buffer>>>,
  ): Promise<void> {
    const done: Promise<void>[] = []
    for (const [name, chunks] of Object.entries(streams) as Array<['stdout' | 'stderr', Array<string | Buffer>]>) {
      const src = new PassThrough()
      done.push(out.pipe(src, name))
      for (const c of chunks) src.write(c)
      src.end()
    }
    await Promise.all(done)
  }

  describe('untagged', () => {
    it('splits each stream into lines, and counts them', async () => {
      const { sink, lines } = recorder()
      const out = new NodeOutput(2, 'gpu02', [sink], { tagged: false, now })
      await run(out, { stdout: ['one\ntw', 'o\n', 'three'], stderr: ['err\r\n', 'pa', 'rt\n'] })
      const stdout = lines.filter((l) => l.stream === 'stdout')
      const stderr = lines.filter((l) => l.stream === 'stderr')
      expect(shown(stdout)).toEqual([
        [undefined, 'stdout', 'one'],
        [undefined, 'stdout', 'two'],
        [undefined, 'stdout', 'three'],
      ])
      expect(shown(stderr)).toEqual([
        [undefined, 'stderr', 'err'],
        [undefined, 'stderr', 'part'],
      ])
      expect(out.lines).toBe(5)
      for (const l of lines) {
        expect(l).toMatchObject({ node: 2, host: 'gpu02', kind: 'line', at: 1234 })
        expect(l.rank).toBeUndefined()
        expect(l.localRank).toBeUndefined()
      }
      expect(out.ranks.size).toBe(0)
    })

    it('frame-like bytes are left as they are', async () => {
      const { sink, lines } = recorder()
      const out = new NodeOutput(0, 'a', [sink], { tagged: false, now })
      await run(out, { stdout: [Buffer.concat([frame(1, 1, 'x\n')])] })
      expect(lines).toHaveLength(1)
      expect(lines[0]!.rank).toBeUndefined()
      expect(lines[0]!.text.toString('latin1')).toBe('\x1eF1,1:2\x1fx')
    })

    it('progress states are passed on as progress, and not counted', async () => {
      const { sink, lines } = recorder()
      const out = new NodeOutput(0, 'a', [sink], { tagged: false, now })
      await run(out, { stderr: ['10%\r20%\r', '100%\n'] })
      expect(lines.map((l) => [l.kind, l.text.toString()])).toEqual([
        ['progress', '10%'],
        ['progress', '20%'],
        ['line', '100%'],
      ])
      expect(out.lines).toBe(1)
    })
  })

  describe('tagged', () => {
    it('gives each line its rank and local rank; untagged bytes stay untagged', async () => {
      const { sink, lines } = recorder()
      const out = new NodeOutput(1, 'b', [sink], { tagged: true, now })
      await run(out, {
        stdout: [
          Buffer.concat([Buffer.from('torchrun says hi\n'), frame(4, 0, 'r4 line\n'), frame(5, 1, 'r5 line\n')]),
        ],
      })
      expect(lines.map((l) => [l.rank, l.localRank, l.text.toString()])).toEqual([
        [undefined, undefined, 'torchrun says hi'],
        [4, 0, 'r4 line'],
        [5, 1, 'r5 line'],
      ])
      expect(lines[0]?.rank).toBeUndefined()
      expect(out.lines).toBe(3)
    })

    it("reassembles a line split over two frames of one rank with another rank's frame between", async () => {
      const { sink, lines } = recorder()
      const out = new NodeOutput(0, 'a', [sink], { tagged: true, now })
      await run(out, {
        stdout: [
          frame(0, 0, 'hel'),
          frame(1, 1, 'world\n'),
          Buffer.concat([frame(0, 0, 'lo\nnext'), frame(1, 1, 'again\n')]),
          frame(0, 0, ' one\n'),
        ],
      })
      expect(shown(lines)).toEqual([
        [1, 'stdout', 'world'],
        [0, 'stdout', 'hello'],
        [1, 'stdout', 'again'],
        [0, 'stdout', 'next one'],
      ])
    })

    it('a frame header split across chunks still works', async () => {
      const { sink, lines } = recorder()
      const out = new NodeOutput(0, 'a', [sink], { tagged: true, now })
      const bytes = Buffer.concat([frame(7, 3, 'split header\n'), frame(8, 0, 'two\n')])
      await run(out, { stdout: [bytes.subarray(0, 3), bytes.subarray(3, 20), bytes.subarray(20)] })
      expect(shown(lines)).toEqual([
        [7, 'stdout', 'split header'],
        [8, 'stdout', 'two'],
      ])
      expect(lines[0]!.localRank).toBe(3)
    })

    it("ends a rank's partial line at its end frame, before the stream ends", async () => {
      const { sink, lines } = recorder()
      const out = new NodeOutput(0, 'a', [sink], { tagged: true, now })
      const src = new PassThrough()
      const done = out.pipe(src, 'stdout')
      src.write(Buffer.concat([frame(2, 0, 'no newline'), frame(3, 1, 'still open')]))
      await tick()
      expect(lines).toEqual([])
      src.write(endFrame(2, 0))
      await tick()
      expect(shown(lines)).toEqual([[2, 'stdout', 'no newline']])
      // the rank may print again after its end frame (a new worker of a restarted group)
      src.write(frame(2, 0, 'reborn\n'))
      await tick()
      expect(shown(lines)).toEqual([
        [2, 'stdout', 'no newline'],
        [2, 'stdout', 'reborn'],
      ])
      src.end()
      await done
      expect(shown(lines)).toEqual([
        [2, 'stdout', 'no newline'],
        [2, 'stdout', 'reborn'],
        [3, 'stdout', 'still open'],
      ])
    })

    it('records the ranks seen', async () => {
      const { sink } = recorder()
      const out = new NodeOutput(0, 'a', [sink], { tagged: true, now })
      expect([...out.ranks]).toEqual([])
      await run(out, {
        stdout: [frame(6, 0, 'x\n'), frame(7, 1, 'y\n'), frame(6, 0, 'z\n')],
        stderr: [frame(9, 3, 'w\n')],
      })
      expect([...out.ranks].sort((a, b) => a - b)).toEqual([6, 7, 9])
    })

    it('a rank with only a progress state still gets a line at the end', async () => {
      const { sink, lines } = recorder()
      const out = new NodeOutput(0, 'a', [sink], { tagged: true, now })
      await run(out, { stderr: [frame(0, 0, '10%\r'), frame(0, 0, '20%\r')] })
      expect(lines.map((l) => [l.kind, l.rank, l.text.toString()])).toEqual([
        ['progress', 0, '10%'],
        ['progress', 0, '20%'],
        ['line', 0, '20%'],
      ])
    })
  })

  describe('tail', () => {
    it('returns the last non-empty lines, tagged lines with [rN]', async () => {
      const { sink } = recorder()
      const out = new NodeOutput(0, 'a', [sink], { tagged: true, now })
      await run(out, {
        stdout: ['untagged\n', '\n', '   \n', frame(3, 1, 'from three\n\n'), frame(0, 0, 'from zero\n')],
      })
      expect(out.tail(10)).toEqual(['untagged', '[r3] from three', '[r0] from zero'])
      expect(out.tail(2)).toEqual(['[r3] from three', '[r0] from zero'])
      expect(out.tail(0)).toEqual([])
      expect(out.tail(-1)).toEqual([])
      expect(out.lines).toBe(6) // empty lines are counted, not kept
    })

    it('keeps at most the last 20 lines', async () => {
      const { sink } = recorder()
      const out = new NodeOutput(0, 'a', [sink], { tagged: false, now })
      await run(out, { stdout: [Array.from({ length: 30 }, (_v, i) => `line ${i}\n`).join('')] })
      expect(out.tail(100)).toEqual(Array.from({ length: 20 }, (_v, i) => `line ${i + 10}`))
      expect(out.lines).toBe(30)
    })
  })

  it('onStderrLine sees the stderr lines only, with their rank, once the tail holds them', async () => {
    const seen: string[] = []
    const { sink } = recorder()
    const out: NodeOutput = new NodeOutput(0, 'a', [sink], {
      tagged: true,
      now,
      onStderrLine: (t, rank) => seen.push(`${rank}:${t.toString()}:${out.tail(1).join('')}`),
    })
    await run(out, {
      stdout: ['out\n', frame(1, 1, 'out r1\n')],
      stderr: ['err\n', frame(1, 1, 'Traceback\n'), frame(1, 1, '5%\r')],
    })
    expect(seen).toEqual(['undefined:err:err', '1:Traceback:[r1] Traceback', '1:5%:[r1] 5%'])
  })

  it('every sink gets every line', async () => {
    const a = recorder()
    const b = recorder()
    const out = new NodeOutput(0, 'a', [a.sink, b.sink], { tagged: false, now })
    await run(out, { stdout: ['x\ny\n'] })
    expect(shown(a.lines)).toEqual(shown(b.lines))
    expect(a.lines).toHaveLength(2)
  })

  describe('backpressure', () => {
    it('a sink returning false pauses the source until its onDrain callback runs', async () => {
      let full = true
      const { sink, lines, drains } = recorder(() => !full)
      const out = new NodeOutput(0, 'a', [sink], { tagged: false, now })
      const src = new PassThrough()
      const done = out.pipe(src, 'stdout')
      src.write('a\nb\n')
      await tick()
      expect(shown(lines).map((l) => l[2])).toEqual(['a', 'b'])
      // The chunk's lines are handed over together: one wait for the sink, however many lines were refused.
      expect(drains).toHaveLength(1)
      expect(src.isPaused()).toBe(true)
      src.write('c\n')
      await tick()
      expect(lines).toHaveLength(2) // nothing is read while paused
      full = false
      drains[0]!()
      expect(src.isPaused()).toBe(false)
      await tick()
      expect(shown(lines).map((l) => l[2])).toEqual(['a', 'b', 'c'])
      src.end('last partial')
      await done
      expect(shown(lines).map((l) => l[2])).toEqual(['a', 'b', 'c', 'last partial'])
      expect(out.lines).toBe(4)
    })

    it('waits for every sink that was full', async () => {
      let fullA = true
      let fullB = true
      const a = recorder(() => !fullA)
      const b = recorder(() => !fullB)
      const out = new NodeOutput(0, 'a', [a.sink, b.sink], { tagged: false, now })
      const src = new PassThrough()
      const done = out.pipe(src, 'stdout')
      src.write('x\n')
      await tick()
      expect(src.isPaused()).toBe(true)
      fullA = false
      a.drains[0]!()
      expect(src.isPaused()).toBe(true)
      fullB = false
      b.drains[0]!()
      expect(src.isPaused()).toBe(false)
      src.end()
      await done
    })

    it('a sink that resumes at once does not pause the source', async () => {
      const sink: LineSink = { write: () => false, onDrain: (resume) => resume() }
      const out = new NodeOutput(0, 'a', [sink], { tagged: false, now })
      const src = new PassThrough()
      const done = out.pipe(src, 'stdout')
      src.write('x\ny\n')
      await tick()
      expect(src.isPaused()).toBe(false)
      src.end()
      await done
      expect(out.lines).toBe(2)
    })

    it('with a real TerminalSink: a full stdout pauses the node until it drains', async () => {
      const stdout = new GatedWritable()
      const term = new TerminalSink({
        stdout,
        stderr: collector().stream,
        prefixer: prefixer({ tagged: false }),
        show: () => true,
      })
      const out = new NodeOutput(0, 'a', [term], { tagged: false, now })
      const src = new PassThrough()
      const done = out.pipe(src, 'stdout')
      src.write('one\n')
      await tick()
      expect(src.isPaused()).toBe(true)
      stdout.release()
      expect(src.isPaused()).toBe(false)
      src.end('two')
      await done
      stdout.release()
      expect(Buffer.concat(stdout.chunks).toString()).toBe('[n0 a]  one\n[n0 a]  two\n')
    })
  })

  it('pipe() resolves when the source is destroyed, flushing the partial line', async () => {
    const { sink, lines } = recorder()
    const out = new NodeOutput(0, 'a', [sink], { tagged: false, now })
    const src = new PassThrough()
    const done = out.pipe(src, 'stdout')
    src.write('cut off')
    await tick()
    src.destroy()
    await done
    expect(shown(lines)).toEqual([[undefined, 'stdout', 'cut off']])
  })
})

// ---------------------------------------------------------------------------------------------------

describe('JsonEvents', () => {
  const AT = Date.UTC(2026, 0, 2, 3, 4, 5, 6)
  const ISO = '2026-01-02T03:04:05.006Z'

  function setup() {
    const out = collector()
    const json = new JsonEvents(out.stream, () => AT)
    const events = (): Array<Record<string, unknown>> =>
      out
        .text()
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>)
    return { out, json, events }
  }

  it('emit() writes one JSON object per line, event and ISO time first', () => {
    const { out, json, events } = setup()
    expect(json.emit('start', { run_id: 'r1', nodes: [{ node: 0, host: 'a' }] })).toBe(true)
    json.emit('node-state', { node: 0, host: 'a', state: 'connected' }, AT + 1000)
    expect(out.text().endsWith('\n')).toBe(true)
    expect(out.text().split('\n')).toHaveLength(3)
    expect(out.text()).toMatch(/^\{"event":"start","time":"2026-01-02T03:04:05\.006Z",/)
    expect(events()).toEqual([
      { event: 'start', time: ISO, run_id: 'r1', nodes: [{ node: 0, host: 'a' }] },
      { event: 'node-state', time: '2026-01-02T03:04:06.006Z', node: 0, host: 'a', state: 'connected' },
    ])
  })

  it('a text with newlines stays on one line', () => {
    const { out, json } = setup()
    json.emit('exit', { result: 'a\nb' })
    expect(out.text().split('\n')).toHaveLength(2)
  })

  it('withFilter(show): line events with node, host, rank, local_rank, stream and text', () => {
    const { json, events } = setup()
    const sink = json.withFilter(() => true)
    expect(
      sink.write(outputLine({ node: 1, host: 'b', rank: 5, localRank: 1, stream: 'stderr', text: 'boom', at: AT })),
    ).toBe(true)
    sink.write(outputLine({ node: 0, host: 'a', text: 'torchrun', at: AT }))
    sink.write(outputLine({ node: 0, host: 'a', rank: 2, text: 'no local', at: AT }))
    expect(events()).toEqual([
      { event: 'line', time: ISO, node: 1, host: 'b', rank: 5, local_rank: 1, stream: 'stderr', text: 'boom' },
      { event: 'line', time: ISO, node: 0, host: 'a', stream: 'stdout', text: 'torchrun' },
      { event: 'line', time: ISO, node: 0, host: 'a', rank: 2, local_rank: null, stream: 'stdout', text: 'no local' },
    ])
  })

  it('omits hidden lines (and write() returns true)', () => {
    const { json, events } = setup()
    const sink = json.withFilter((o) => o.rank === 1)
    expect(sink.write(outputLine({ rank: 0, localRank: 0, text: 'hidden' }))).toBe(true)
    expect(sink.write(outputLine({ rank: 1, localRank: 1, text: 'shown' }))).toBe(true)
    expect(events().map((e) => e.text)).toEqual(['shown'])
  })

  it('marks progress, at most once a second per process; the finished line always', () => {
    const { json, events } = setup()
    const sink = json.withFilter(() => true)
    const p = (rank: number, at: number, text: string): OutputLine =>
      outputLine({ rank, localRank: rank, kind: 'progress', at, text })
    sink.write(p(0, 0, 'a0'))
    sink.write(p(0, 500, 'a500'))
    sink.write(p(1, 500, 'b500'))
    sink.write(p(0, 999, 'a999'))
    sink.write(p(0, 1000, 'a1000'))
    sink.write(outputLine({ rank: 0, localRank: 0, at: 1001, text: 'done' }))
    sink.write(p(0, 1002, 'again'))
    const got = events().map((e) => [e.text, e.progress])
    expect(got).toEqual([
      ['a0', true],
      ['b500', true],
      ['a1000', true],
      ['done', undefined],
      ['again', true],
    ])
    expect(events()[3]).not.toHaveProperty('progress')
  })

  it('invalid UTF-8 becomes U+FFFD', () => {
    const { json, events } = setup()
    json.withFilter(() => true).write(outputLine({ text: Buffer.from([0x61, 0xff, 0x62, 0xc3]) }))
    expect(events()[0]!.text).toBe('a\ufffdb\ufffd')
  })

  it('backpressure: onDrain waits for the output to drain', () => {
    const out = new GatedWritable()
    const json = new JsonEvents(out, () => AT)
    const sink = json.withFilter(() => true)
    expect(sink.write(outputLine())).toBe(false)
    const resume = vi.fn()
    sink.onDrain(resume)
    expect(resume).not.toHaveBeenCalled()
    out.release()
    expect(resume).toHaveBeenCalledTimes(1)
  })

  it('onDrain resumes at once when the output is not full', () => {
    const { json } = setup()
    const resume = vi.fn()
    json.withFilter(() => true).onDrain(resume)
    expect(resume).toHaveBeenCalledTimes(1)
  })
})

// ---------------------------------------------------------------------------------------------------

describe('parseIndexList', () => {
  it.each<[string, number[]]>([
    ['0', [0]],
    ['7', [7]],
    ['0,4-7', [0, 4, 5, 6, 7]],
    [' 3 - 5 ', [3, 4, 5]],
    ['3-3', [3]],
    ['5,1,3', [1, 3, 5]],
    ['1,1,0-2,2', [0, 1, 2]],
    ['007', [7]],
  ])('%j → %j', (value, expected) => {
    expect(parseIndexList('only', value)).toEqual(expected)
  })

  it.each(['a', '5-3', '-1', '1,', ',1', '1,,2', '', '1-', '1.5', '0x1', '2-3-4', '12345678', '0-2000000'])(
    'rejects %j, naming the flag',
    (value) => {
      expectUsage(() => parseIndexList('only', value), /^--only: /)
    },
  )

  it('names the item that is wrong', () => {
    expectUsage(() => parseIndexList('only', '0,5-3,7'), /"5-3"/)
  })
})

describe('resolveOnlyNodes', () => {
  const hosts = ['gpu01', 'gpu02', 'gpu03', 'gpu01', '10.0.0.5']

  it.each<[string[], number[]]>([
    [['0'], [0]],
    [
      ['0', '2-3'],
      [0, 2, 3],
    ],
    [['gpu02'], [1]],
    [['gpu01'], [0, 3]], // a host listed twice: both nodes
    [
      ['10.0.0.5', '1'],
      [1, 4],
    ],
    [
      ['1', 'gpu02', '0-1'],
      [0, 1],
    ],
  ])('%j → %j', (items, expected) => {
    expect([...resolveOnlyNodes(items, hosts)].sort((a, b) => a - b)).toEqual(expected)
  })

  it('an unknown host is an error naming --only-node and the host', () => {
    expectUsage(() => resolveOnlyNodes(['gpu09'], hosts), /--only-node: no node is host "gpu09"/)
  })

  it.each([['5'], ['3-5'], ['99']])('index out of range (%s) is an error naming --only-node', (item) => {
    expectUsage(() => resolveOnlyNodes([item], hosts), /--only-node: there is no node \d+ \(the job has 5: 0 to 4\)/)
  })

  it('a bad range is an error naming --only-node', () => {
    expectUsage(() => resolveOnlyNodes(['3-1'], hosts), /^--only-node: /)
  })
})

describe('readOutputOptions', () => {
  it('defaults', () => {
    expect(readOutputOptions({})).toStrictEqual({
      color: 'auto',
      plain: false,
      timestamps: false,
      quiet: false,
      json: false,
      rankTags: true,
    })
  })

  it.each<[string, Record<string, unknown>, Record<string, unknown>]>([
    ['prefix format', { prefix: '[{host}:{rank}]' }, { prefix: '[{host}:{rank}]' }],
    ['--no-prefix', { prefix: false }, { prefix: false }],
    ['--only', { only: '0,2-3' }, { onlyRanks: [0, 2, 3] }],
    ['--only-node, trimmed', { 'only-node': '0, gpu01 ,2-3' }, { onlyNodes: ['0', 'gpu01', '2-3'] }],
    ['--log-dir', { 'log-dir': '/tmp/logs' }, { logDir: '/tmp/logs' }],
    ['--no-rank-tags', { 'rank-tags': false }, { rankTags: false }],
    [
      'flags',
      { timestamps: true, quiet: true, json: true, plain: true, color: 'never' },
      { timestamps: true, quiet: true, json: true, plain: true, color: 'never' },
    ],
    ['--json --only', { json: true, only: '1' }, { json: true, onlyRanks: [1] }],
  ])('%s', (_name, args, expected) => {
    expect(readOutputOptions(args)).toMatchObject(expected)
  })

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['--quiet with --only', { quiet: true, only: '0' }, /--quiet .*--only/],
    ['--quiet with --only-node', { quiet: true, 'only-node': 'gpu01' }, /--quiet .*--only-node/],
    ['--json with --prefix', { json: true, prefix: '{host}' }, /--prefix .*--json/],
    ['bad prefix field', { prefix: '{foo}' }, /\{foo\}/],
    ['empty prefix', { prefix: '' }, /--prefix needs a value/],
    ['--prefix twice', { prefix: ['{host}', '{rank}'] }, /--prefix was given more than once/],
    ['bad --only', { only: '1-x' }, /^--only: /],
    ['empty --only', { only: ' ' }, /--only needs a value/],
    ['empty --only-node item', { 'only-node': '0,,1' }, /--only-node: empty item/],
    ['--log-dir twice', { 'log-dir': ['a', 'b'] }, /--log-dir was given more than once/],
  ])('rejects %s', (_name, args, message) => {
    expectUsage(() => readOutputOptions(args), message)
  })

  describe('from the command line (withOutputOptions)', () => {
    const parse = (argv: string[]): Record<string, unknown> =>
      withOutputOptions(yargs(argv)).strict().exitProcess(false).parseSync() as Record<string, unknown>

    it('defaults', () => {
      expect(readOutputOptions(parse([]))).toStrictEqual({
        color: 'auto',
        plain: false,
        timestamps: false,
        quiet: false,
        json: false,
        rankTags: true,
      })
    })

    it.each<[string[], Record<string, unknown>]>([
      [['--no-prefix'], { prefix: false }],
      [['--prefix', '{host}|'], { prefix: '{host}|' }],
      [['--only', '0,4-7', '--timestamps'], { onlyRanks: [0, 4, 5, 6, 7], timestamps: true }],
      [['-q'], { quiet: true }],
      [['--no-rank-tags', '--json', '--color', 'never'], { rankTags: false, json: true, color: 'never' }],
      [['--only-node', 'gpu01,1', '--log-dir', 'logs'], { onlyNodes: ['gpu01', '1'], logDir: 'logs' }],
    ])('%j', (argv, expected) => {
      expect(readOutputOptions(parse(argv))).toMatchObject(expected)
    })
  })
})

// ---------------------------------------------------------------------------------------------------

describe('logdir', () => {
  it.each<[Date, number, string]>([
    [new Date(2026, 10, 27, 10, 15, 14), 0.25, '20261127-101514-400000'],
    [new Date(2026, 0, 2, 3, 4, 5), 0, '20260102-030405-000000'],
    [new Date(1999, 11, 31, 23, 59, 59), 0.9999999999, '19991231-235959-ffffff'],
  ])('newRunId(%s, %s)', (date, random, expected) => {
    expect(newRunId(date, () => random)).toBe(expected)
  })

  it.each<[number, string, string]>([
    [1, 'gpu02', 'node1-gpu02.log'],
    [0, 'node-a.example.com', 'node0-node-a.example.com.log'],
    [3, '10.0.0.7', 'node3-10.0.0.7.log'],
    [2, 'fe80::1', 'node2-fe80__1.log'],
    [4, '[2001:db8::5]', 'node4-_2001_db8__5_.log'],
    [5, 'a/../b', 'node5-a_.._b.log'],
    [6, 'host name', 'node6-host_name.log'],
  ])('nodeLogName(%i, %j) = %j', (node, host, expected) => {
    expect(nodeLogName(node, host)).toBe(expected)
  })

  describe('RunLog', () => {
    let tmp: string
    beforeEach(() => {
      tmp = mkdtempSync(join(tmpdir(), 'fanout-logdir-'))
    })
    afterEach(() => {
      rmSync(tmp, { recursive: true, force: true })
    })

    const nodes = [
      { node: 0, host: 'gpu01' },
      { node: 1, host: 'gpu02' },
      { node: 2, host: 'fe80::1' },
    ]
    const mode = (p: string): number => statSync(p).mode & 0o777
    const T0 = Date.UTC(2026, 0, 2, 3, 4, 5, 6)
    const iso = (at: number): string => new Date(at).toISOString()
    const read = (log: RunLog, name: string): string[] => readFileSync(join(log.dir, name), 'utf8').split('\n')

    it('creates DIR and DIR/<run-id> (0700) with their parents', async () => {
      const parent = join(tmp, 'a', 'b')
      const log = await RunLog.create(parent, '20260102-030405-abcdef', nodes)
      expect(log.dir).toBe(join(parent, '20260102-030405-abcdef'))
      expect(mode(log.dir)).toBe(0o700)
      expect(mode(parent)).toBe(0o700)
      expect(mode(join(tmp, 'a'))).toBe(0o700)
      await log.close()
    })

    it('an existing DIR is fine; the same run id twice is refused', async () => {
      const a = await RunLog.create(tmp, 'run1', nodes)
      await a.close()
      const b = await RunLog.create(tmp, 'run2', nodes)
      await b.close()
      await expect(RunLog.create(tmp, 'run1', nodes)).rejects.toMatchObject({
        code: 'USAGE',
        message: expect.stringMatching(/--log-dir/),
      })
    })

    it('refuses a directory it cannot create (under a regular file): USAGE naming --log-dir', async () => {
      const file = join(tmp, 'file')
      writeFileSync(file, 'x')
      const p = RunLog.create(join(file, 'logs'), 'run', nodes)
      await expect(p).rejects.toBeInstanceOf(FanoutError)
      await expect(p).rejects.toMatchObject({
        code: 'USAGE',
        message: expect.stringMatching(/^--log-dir: cannot create .*file.*logs/),
      })
    })

    it('writes each node’s lines to node<k>-<host>.log: ISO time, [rN] or [node], ! for stderr', async () => {
      const log = await RunLog.create(tmp, 'run', nodes)
      const text = (t: string): Buffer => Buffer.from(t)
      expect(
        log.write(outputLine({ node: 1, host: 'gpu02', rank: 3, localRank: 1, text: text('hello'), at: T0 })),
      ).toBe(true)
      log.write(
        outputLine({
          node: 1,
          host: 'gpu02',
          rank: 3,
          localRank: 1,
          stream: 'stderr',
          text: text('warning'),
          at: T0 + 1,
        }),
      )
      log.write(outputLine({ node: 1, host: 'gpu02', text: text('torchrun line'), at: T0 + 2 }))
      log.write(outputLine({ node: 1, host: 'gpu02', stream: 'stderr', text: text('torchrun err'), at: T0 + 3 }))
      log.write(outputLine({ node: 2, host: 'fe80::1', rank: 4, localRank: 0, text: text('v6'), at: T0 }))
      log.write(
        outputLine({
          node: 0,
          host: 'gpu01',
          rank: 0,
          localRank: 0,
          text: Buffer.from([0x1b, 0x5b, 0x33, 0x31, 0x6d, 0xff, 0x0a]),
          at: T0,
        }),
      )
      await log.close()
      expect(readdirSync(log.dir).sort()).toEqual([
        'fanout.log',
        'node0-gpu01.log',
        'node1-gpu02.log',
        'node2-fe80__1.log',
      ])
      expect(read(log, 'node1-gpu02.log')).toEqual([
        `${iso(T0)} [r3]  hello`,
        `${iso(T0 + 1)} [r3]! warning`,
        `${iso(T0 + 2)} [node]  torchrun line`,
        `${iso(T0 + 3)} [node]! torchrun err`,
        '',
      ])
      expect(read(log, 'node2-fe80__1.log')).toEqual([`${iso(T0)} [r4]  v6`, ''])
      // the exact bytes, colours included
      const raw = readFileSync(join(log.dir, 'node0-gpu01.log'))
      expect(
        raw.equals(
          Buffer.concat([
            Buffer.from(`${iso(T0)} [r0]  `),
            Buffer.from([0x1b, 0x5b, 0x33, 0x31, 0x6d, 0xff, 0x0a]),
            Buffer.from('\n'),
          ]),
        ),
      ).toBe(true)
      expect(read(log, 'node1-gpu02.log')[0]).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z \[r3\]  hello$/)
    })

    it('files are 0600', async () => {
      const log = await RunLog.create(tmp, 'run', nodes)
      log.write(outputLine({ node: 0, host: 'gpu01', text: 'x', at: T0 }))
      log.event('started', T0)
      await log.writeSummary({ exit_code: 0 })
      await log.close()
      const files = readdirSync(log.dir)
      expect(files.sort()).toEqual(['fanout.log', 'node0-gpu01.log', 'summary.json'])
      for (const f of files) expect([f, mode(join(log.dir, f))]).toEqual([f, 0o600])
    })

    it('throttles progress states (once per 10 s per process); finished lines always', async () => {
      const log = await RunLog.create(tmp, 'run', nodes)
      const p = (rank: number, at: number, text: string): OutputLine =>
        outputLine({ node: 0, host: 'gpu01', rank, localRank: rank, kind: 'progress', at, text })
      log.write(p(0, T0, '0%'))
      log.write(p(1, T0 + 1, 'other 0%'))
      log.write(p(0, T0 + 5000, '50%'))
      log.write(p(0, T0 + 9999, '99%'))
      log.write(p(0, T0 + 10_000, '100%'))
      log.write(outputLine({ node: 0, host: 'gpu01', rank: 0, localRank: 0, at: T0 + 10_001, text: 'done' }))
      log.write(p(0, T0 + 10_002, 'next 0%'))
      await log.close()
      expect(read(log, 'node0-gpu01.log')).toEqual([
        `${iso(T0)} [r0]  0%`,
        `${iso(T0 + 1)} [r1]  other 0%`,
        `${iso(T0 + 10_000)} [r0]  100%`,
        `${iso(T0 + 10_001)} [r0]  done`,
        `${iso(T0 + 10_002)} [r0]  next 0%`,
        '',
      ])
    })

    it('startAttempt marks every node’s file', async () => {
      const log = await RunLog.create(tmp, 'run', nodes)
      log.write(outputLine({ node: 0, host: 'gpu01', text: 'first try', at: T0 }))
      log.startAttempt(2, T0 + 1)
      log.write(outputLine({ node: 0, host: 'gpu01', text: 'second try', at: T0 + 2 }))
      await log.close()
      expect(read(log, 'node0-gpu01.log')).toEqual([
        `${iso(T0)} [node]  first try`,
        `${iso(T0 + 1)} ----- attempt 2 -----`,
        `${iso(T0 + 2)} [node]  second try`,
        '',
      ])
      expect(read(log, 'node1-gpu02.log')).toEqual([`${iso(T0 + 1)} ----- attempt 2 -----`, ''])
      expect(read(log, 'node2-fe80__1.log')).toEqual([`${iso(T0 + 1)} ----- attempt 2 -----`, ''])
    })

    it("fanout.log: fanout's own messages, one time-stamped line each", async () => {
      const log = await RunLog.create(tmp, 'run', nodes)
      log.event('connected to 3 nodes', T0)
      log.event('node 1 failed:\nexit 1', T0 + 1)
      await log.close()
      expect(read(log, 'fanout.log')).toEqual([
        `${iso(T0)} connected to 3 nodes`,
        `${iso(T0 + 1)} node 1 failed:`,
        `${iso(T0 + 1)} exit 1`,
        '',
      ])
    })

    it('summary.json holds the summary, pretty-printed', async () => {
      const log = await RunLog.create(tmp, 'run', nodes)
      const summary = { exit_code: 1, root_cause: { node: 1, host: 'gpu02' }, nodes: [{ node: 0, result: 'exit 0' }] }
      await log.writeSummary(summary)
      await log.close()
      const text = readFileSync(join(log.dir, 'summary.json'), 'utf8')
      expect(JSON.parse(text)).toEqual(summary)
      expect(text).toBe(JSON.stringify(summary, null, 2) + '\n')
    })

    it('close() flushes everything written', async () => {
      const log = await RunLog.create(tmp, 'run', nodes)
      const big = 'y'.repeat(1000)
      for (let i = 0; i < 3000; i++)
        log.write(outputLine({ node: 1, host: 'gpu02', rank: 2, localRank: 0, text: `${i} ${big}`, at: T0 }))
      log.event('bye', T0)
      await log.close()
      const lines = read(log, 'node1-gpu02.log')
      expect(lines).toHaveLength(3001)
      expect(lines[2999]).toBe(`${iso(T0)} [r2]  2999 ${big}`)
      expect(read(log, 'fanout.log')).toEqual([`${iso(T0)} bye`, ''])
    })

    it('a line of a node missing from the list goes to node<k>-unknown.log', async () => {
      const log = await RunLog.create(tmp, 'run', nodes)
      log.write(outputLine({ node: 9, host: 'zzz', text: 'stray', at: T0 }))
      await log.close()
      expect(read(log, 'node9-unknown.log')).toEqual([`${iso(T0)} [node]  stray`, ''])
    })

    it('onDrain with nothing full resumes at once', async () => {
      const log = await RunLog.create(tmp, 'run', nodes)
      const resume = vi.fn()
      log.onDrain(resume)
      expect(resume).toHaveBeenCalledTimes(1)
      await log.close()
    })
  })
})

// ---------------------------------------------------------------------------------------------------

describe('JobOutput', () => {
  const NODES: PlannedNode[] = [
    { rank: 0, host: 'a', nproc: 2, firstRank: 0 },
    { rank: 1, host: 'bb', nproc: 2, firstRank: 2 },
  ]
  type JobOptions = ConstructorParameters<typeof JobOutput>[1]
  const BASE: JobOptions = { timestamps: false, quiet: false, json: false, tagged: true, staticRanks: true }
  const read = (s: PassThrough): string => (s.read() as Buffer | null)?.toString('utf8') ?? ''

  function setup(options: Partial<JobOptions> = {}, io: Partial<ConstructorParameters<typeof JobOutput>[2]> = {}) {
    const stdout = new PassThrough()
    const stderr = new PassThrough()
    const job = new JobOutput(NODES, { ...BASE, ...options }, { stdout, stderr, chalk: plain, now: () => 0, ...io })
    return { job, stdout, stderr }
  }

  /** One attempt: pipes the node's stdout and stderr chunks through forNode(). */
  async function feed(
    job: JobOutput,
    node: number,
    o: { stdout?: Buffer[]; stderr?: Buffer[] },
    onStderr: (t: Buffer) => void = () => {},
  ): Promise<void> {
    const out = job.forNode({ rank: node, host: NODES[node]!.host }, { onStderrLine: onStderr })
    const done: Promise<void>[] = []
    for (const name of ['stdout', 'stderr'] as const) {
      const src = new PassThrough()
      done.push(out.pipe(src, name))
      for (const c of o[name] ?? []) src.write(c)
      src.end()
    }
    await Promise.all(done)
  }

  describe('status()', () => {
    it('clock, running nodes and line counts per node', async () => {
      const { job } = setup()
      expect(job.status(42_000, 2, false)).toBe('running 0:42 · 2/2 nodes · 0 lines (n0 0 · n1 0)')
      await feed(job, 0, { stdout: [frame(0, 0, 'a\nb\n'), frame(1, 1, 'c\n')] })
      await feed(job, 1, { stderr: [frame(2, 0, 'd\n')] })
      expect(job.status(65_999, 1, false)).toBe('running 1:05 · 1/2 nodes · 4 lines (n0 3 · n1 1)')
      expect(job.status(3_725_000, 0, true)).toBe('stopping 62:05 · 0/2 nodes · 4 lines (n0 3 · n1 1)')
    })

    it('a new attempt counts afresh', async () => {
      const { job } = setup()
      await feed(job, 0, { stdout: [frame(0, 0, 'a\nb\n')] })
      await feed(job, 0, { stdout: [frame(0, 0, 'c\n')] })
      expect(job.status(0, 2, false)).toBe('running 0:00 · 2/2 nodes · 1 lines (n0 1 · n1 0)')
    })

    it('colours the head: cyan running, yellow stopping', () => {
      const { job } = setup({}, { chalk: colour })
      expect(job.status(1000, 2, false)).toMatch(/^\x1b\[36mrunning 0:01\x1b\[39m · /)
      expect(job.status(1000, 2, true)).toMatch(/^\x1b\[33mstopping 0:01\x1b\[39m · /)
    })

    describe('in a width', () => {
      const many = (n: number): PlannedNode[] =>
        Array.from({ length: n }, (_v, i) => ({ rank: i, host: `h${i}`, nproc: 1, firstRank: i }))
      async function job256(chalk = plain): Promise<JobOutput> {
        const job = new JobOutput(
          many(256),
          { ...BASE },
          { stdout: new PassThrough(), stderr: new PassThrough(), chalk, now: () => 0 },
        )
        for (const node of [0, 1, 7, 200]) {
          const src = new PassThrough()
          const done = job.forNode({ rank: node, host: `h${node}` }, () => {}).pipe(src, 'stdout')
          src.end(frame(node, 0, 'x\n'.repeat(node + 1000)))
          await done
        }
        const src = new PassThrough()
        const done = job.forNode({ rank: 255, host: 'h255' }, () => {}).pipe(src, 'stdout')
        src.end('x\n'.repeat(12345)) // untagged: more than a frame holds
        await done
        return job
      }
      const HEAD = 'running 0:42 · 256/256 nodes · 16553 lines'

      it('keeps the head and the counts that fit, whole, and says how many nodes it left out', async () => {
        const job = await job256()
        const row = job.status(42_000, 256, false, 99)
        expect(row).toBe(`${HEAD} (n0 1000 · n1 1001 · n2 0 · n3 0 · n4 0 · … +251 nodes)`)
        expect(row.length).toBe(98) // n5 0 and its separator would make it 105
        for (let width = 30; width < 400; width++) {
          const r = job.status(42_000, 256, false, width)
          expect(r.startsWith(HEAD)).toBe(true)
          expect(r.length <= width || r === HEAD).toBe(true)
          const counts = /^[^(]*\((.*)\)$/.exec(r)?.[1]?.split(' · ') ?? []
          const shown = counts.filter((c) => /^n\d+ \d+$/.test(c))
          // the counts kept are the first nodes' and whole; the note counts the rest
          expect(shown).toEqual(
            Array.from({ length: shown.length }, (_v, i) => `n${i} ${[0, 1, 7].includes(i) ? i + 1000 : 0}`),
          )
          if (counts.length > 0)
            expect(counts.at(-1)).toBe(`… +${256 - shown.length} node${256 - shown.length === 1 ? '' : 's'}`)
        }
      })

      it('a width for every count: the row as without one', async () => {
        const job = await job256()
        const whole = job.status(42_000, 256, false)
        expect(whole).toMatch(/ · n254 0 · n255 12345\)$/)
        expect(job.status(42_000, 256, false, whole.length)).toBe(whole)
        // one column less: `n255 12345` gives way to `… +1 node`, one shorter
        const upTo = (n: number): string => whole.slice(0, whole.indexOf(` · n${n + 1} `))
        expect(job.status(42_000, 256, false, whole.length - 1)).toBe(`${upTo(254)} · … +1 node)`)
        expect(job.status(42_000, 256, false, whole.length - 2)).toBe(`${upTo(253)} · … +2 nodes)`)
      })

      it('no room for the note: the head alone; no room for the head: the head still (the region cuts it)', async () => {
        const job = await job256()
        expect(job.status(42_000, 256, false, HEAD.length + ' (… +256 nodes)'.length)).toBe(`${HEAD} (… +256 nodes)`)
        expect(job.status(42_000, 256, false, HEAD.length + ' (… +256 nodes)'.length - 1)).toBe(HEAD)
        expect(job.status(42_000, 256, false, 10)).toBe(HEAD)
      })

      it('the colour codes of the head take no room', async () => {
        const job = await job256(colour)
        const row = job.status(42_000, 256, false, 99)
        expect(row).toContain('\x1b[36m')
        expect(visible(row)).toBe(`${HEAD} (n0 1000 · n1 1001 · n2 0 · n3 0 · n4 0 · … +251 nodes)`)
      })

      it('the live region gives its width: the terminal’s less one, at least 20', () => {
        expect(new LiveRegion(fakeTty(120).tty).width).toBe(119)
        expect(new LiveRegion({ write: () => true }).width).toBe(79)
        expect(new LiveRegion(fakeTty(10).tty).width).toBe(20)
        const { tty } = fakeTty(120)
        const live = new LiveRegion(tty)
        tty.columns = 60 // a resized terminal
        expect(live.width).toBe(59)
      })
    })
  })

  describe('ranksOf()', () => {
    it('static rendezvous: the planned ranks', () => {
      const { job } = setup()
      expect(job.ranksOf(0)).toEqual([0, 1])
      expect(job.ranksOf(1)).toEqual([2, 3])
    })

    it('c10d (staticRanks false): the ranks seen so far, sorted', async () => {
      const { job } = setup({ staticRanks: false })
      expect(job.ranksOf(1)).toEqual([])
      await feed(job, 1, { stdout: [frame(3, 1, 'x\n'), frame(0, 0, 'y\n')] })
      expect(job.ranksOf(1)).toEqual([0, 3])
      expect(job.ranksOf(0)).toEqual([])
    })
  })

  describe('forNode() and the terminal', () => {
    it('prefixes each line with node, host and rank, padded to the widest ([n1 bb r3])', async () => {
      const { job, stdout, stderr } = setup()
      const errs: string[] = []
      await feed(
        job,
        0,
        { stdout: [Buffer.from('torchrun\n'), frame(1, 1, 'hello\n')], stderr: [frame(0, 0, 'oops\n')] },
        (t) => errs.push(t.toString()),
      )
      await feed(job, 1, { stdout: [frame(3, 1, 'three\n')] })
      expect(read(stdout)).toBe('[n0 a]      torchrun\n[n0 a r1]   hello\n[n1 bb r3]  three\n')
      expect(read(stderr)).toBe('[n0 a r0] ! oops\n') // the marker stays in one column too
      expect(errs).toEqual(['oops'])
    })

    it('pads to the largest global and local rank of the whole job', async () => {
      const nodes: PlannedNode[] = [
        { rank: 0, host: 'a', nproc: 8, firstRank: 0 },
        { rank: 1, host: 'b', nproc: 12, firstRank: 8 },
      ]
      const stdout = new PassThrough()
      const job = new JobOutput(nodes, { ...BASE }, { stdout, stderr: new PassThrough(), chalk: plain })
      const other = new JobOutput(
        nodes,
        { ...BASE, prefix: '{local_rank}|' },
        { stdout, stderr: new PassThrough(), chalk: plain },
      )
      for (const j of [job, other]) {
        const src = new PassThrough()
        const done = j.forNode({ rank: 0, host: 'a' }, () => {}).pipe(src, 'stdout')
        src.end(frame(1, 1, 'x\n'))
        await done
      }
      // world size 20: [n0 a r19]; largest local rank 11: "11|"
      expect(read(stdout)).toBe('[n0 a r1]   x\n1|   x\n')
    })

    it('untagged job: [n<node> <host>]', async () => {
      const { job, stdout } = setup({ tagged: false })
      expect(job.tagged).toBe(false)
      await feed(job, 1, { stdout: [Buffer.from('plain\n')] })
      expect(read(stdout)).toBe('[n1 bb]  plain\n')
    })

    it('--prefix and --timestamps', async () => {
      const at = new Date(2026, 0, 2, 3, 4, 5, 6).getTime()
      const { job, stdout } = setup({ prefix: '{host}#{rank}', timestamps: true }, { now: () => at })
      await feed(job, 0, { stdout: [frame(1, 1, 'x\n')] })
      expect(read(stdout)).toBe('03:04:05.006 a#1   x\n')
    })

    it('--only: rank lines of other ranks hidden; untagged lines shown where a node runs the rank', async () => {
      const { job, stdout } = setup({ onlyRanks: [2] })
      await feed(job, 0, { stdout: [Buffer.from('n0 torchrun\n'), frame(0, 0, 'r0\n')] })
      await feed(job, 1, { stdout: [Buffer.from('n1 torchrun\n'), frame(2, 0, 'r2\n'), frame(3, 1, 'r3\n')] })
      expect(read(stdout)).toBe('[n1 bb]     n1 torchrun\n[n1 bb r2]  r2\n')
      // hidden lines are still counted
      expect(job.status(0, 2, false)).toContain('5 lines (n0 2 · n1 3)')
    })

    it('--only under c10d: a node’s untagged lines show once it has printed a rank asked for', async () => {
      const { job, stdout } = setup({ onlyRanks: [2], staticRanks: false })
      await feed(job, 1, { stdout: [Buffer.from('before\n'), frame(2, 0, 'r2\n'), Buffer.from('after\n')] })
      expect(read(stdout)).toBe('[n1 bb r2]  r2\n[n1 bb]     after\n')
    })

    it('--only-node (nodeFilter)', async () => {
      const { job, stdout } = setup({ nodeFilter: new Set([1]) })
      await feed(job, 0, { stdout: [frame(0, 0, 'zero\n')] })
      await feed(job, 1, { stdout: [frame(2, 0, 'one\n')] })
      expect(read(stdout)).toBe('[n1 bb r2]  one\n')
    })

    it('--quiet: nothing on the terminal, lines still counted', async () => {
      const { job, stdout, stderr } = setup({ quiet: true })
      await feed(job, 0, { stdout: [frame(0, 0, 'x\n')], stderr: [frame(0, 0, 'y\n')] })
      expect(read(stdout)).toBe('')
      expect(read(stderr)).toBe('')
      expect(job.status(0, 2, false)).toContain('2 lines')
    })

    it('with a live region, progress goes to the region, lines above it', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
      try {
        const { tty, log } = fakeTty()
        const live = new LiveRegion(tty)
        const { job, stdout, stderr } = setup({}, { live })
        const out = job.forNode({ rank: 0, host: 'a' }, () => {})
        const src = new PassThrough()
        const done = out.pipe(src, 'stderr')
        src.write(frame(0, 0, '10%\r20%\r'))
        await tick()
        vi.advanceTimersByTime(80)
        expect(log).toEqual(['[n0 a r0] ! 10%\n']) // 20% waits: its \r may be half of a \r\n
        expect(read(stderr)).toBe('')
        src.end(frame(0, 0, '\n'))
        await done
        // the bar's last state became its line: the row is erased, the line printed
        expect(log.slice(1)).toEqual(['\x1b[1A\r\x1b[J'])
        expect(read(stderr)).toBe('[n0 a r0] ! 20%\n')
        vi.advanceTimersByTime(80)
        expect(log).toHaveLength(2)
        expect(read(stdout)).toBe('')
      } finally {
        vi.useRealTimers()
      }
    })
  })

  describe('with --json', () => {
    it('lines go to the JSON events, not the terminal', async () => {
      const jsonOut = collector()
      const json = new JsonEvents(jsonOut.stream, () => 0)
      const { job, stdout, stderr } = setup({ json: true, onlyRanks: [0, 1] }, { json })
      await feed(job, 0, { stdout: [frame(1, 1, 'hello\n')], stderr: [frame(0, 0, 'oops\n')] })
      await feed(job, 1, { stdout: [frame(2, 0, 'hidden by --only\n')] })
      expect(read(stdout)).toBe('')
      expect(read(stderr)).toBe('')
      const events = jsonOut
        .text()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>)
      expect(
        events.map(({ time: _t, ...e }) => e).sort((x, y) => String(x.text).localeCompare(String(y.text))),
      ).toEqual([
        { event: 'line', node: 0, host: 'a', rank: 1, local_rank: 1, stream: 'stdout', text: 'hello' },
        { event: 'line', node: 0, host: 'a', rank: 0, local_rank: 0, stream: 'stderr', text: 'oops' },
      ])
    })
  })

  describe('with --log-dir', () => {
    let tmp: string
    beforeEach(() => {
      tmp = mkdtempSync(join(tmpdir(), 'fanout-joblog-'))
    })
    afterEach(() => {
      rmSync(tmp, { recursive: true, force: true })
    })

    it('the log gets every line, hidden on the terminal or not', async () => {
      const log = await RunLog.create(
        tmp,
        'run',
        NODES.map((n) => ({ node: n.rank, host: n.host })),
      )
      const { job, stdout } = setup({ onlyRanks: [1] }, { log, now: () => Date.UTC(2026, 0, 1) })
      await feed(job, 0, { stdout: [frame(0, 0, 'zero\n'), frame(1, 1, 'one\n')] })
      await log.close()
      expect(read(stdout)).toBe('[n0 a r1]   one\n')
      expect(readFileSync(join(log.dir, 'node0-a.log'), 'utf8')).toBe(
        '2026-01-01T00:00:00.000Z [r0]  zero\n2026-01-01T00:00:00.000Z [r1]  one\n',
      )
    })
  })
})

describe('batching', () => {
  it('a chunk of many lines reaches the terminal as one write per stream run, in order', async () => {
    const writes: string[] = []
    const dest = new Writable({ write: (c: Buffer, _e, cb) => (writes.push(c.toString()), cb()) })
    const prefixer = new Prefixer({
      nodes: [{ node: 0, host: 'a' }],
      tagged: false,
      maxRank: 0,
      maxLocalRank: 0,
      chalk: new Chalk({ level: 0 }),
      timestamps: false,
    })
    const sink = new TerminalSink({ stdout: dest, stderr: dest, prefixer, show: () => true })
    const out = new NodeOutput(0, 'a', [sink], { tagged: false, now: () => 0 })
    const src = new PassThrough()
    const done = out.pipe(src, 'stdout')
    src.end(Array.from({ length: 500 }, (_v, i) => `line ${i}\n`).join(''))
    await done
    expect(writes).toHaveLength(1)
    expect(writes[0]?.split('\n')).toHaveLength(501)
    expect(writes[0]?.startsWith('[n0 a]  line 0\n[n0 a]  line 1\n')).toBe(true)
  })
})

describe('node-wide backpressure', () => {
  it("a sink full from stdout pauses the node's stderr too (ssh2 reopens a channel's window whenever stderr is read)", async () => {
    let full = true
    const drains: Array<() => void> = []
    const sink = { write: () => !full, onDrain: (resume: () => void) => void drains.push(resume) }
    const out = new NodeOutput(0, 'a', [sink], { tagged: false, now: () => 0 })
    const stdout = new PassThrough()
    const stderr = new PassThrough()
    void out.pipe(stdout, 'stdout')
    void out.pipe(stderr, 'stderr')
    stdout.write('a\n')
    await new Promise((r) => setImmediate(r))
    expect(stdout.isPaused()).toBe(true)
    expect(stderr.isPaused()).toBe(true)
    full = false
    drains.forEach((d) => d())
    expect(stdout.isPaused()).toBe(false)
    expect(stderr.isPaused()).toBe(false)
  })
})

describe('whenDrained', () => {
  it('resumes at once when there is no stream, or the stream has nothing to drain; else on its drain', async () => {
    const { whenDrained } = await import('../../src/output/drain.js')
    const calls: string[] = []
    whenDrained(undefined, () => calls.push('none'))
    const held: Array<() => void> = []
    const dest = new Writable({ highWaterMark: 1, write: (_c, _e, cb) => void held.push(cb) })
    whenDrained(dest, () => calls.push('idle'))
    expect(calls).toEqual(['none', 'idle'])
    expect(dest.write('xx')).toBe(false)
    whenDrained(dest, () => calls.push('drained'))
    expect(calls).toEqual(['none', 'idle'])
    held.shift()?.()
    await new Promise((r) => setImmediate(r))
    expect(calls).toEqual(['none', 'idle', 'drained'])
  })
})
