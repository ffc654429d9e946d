// The block path of the output (many whole lines handed over as one 'lines' event): everything it
// produces must be exactly what the line-by-line path produces.
import { describe, it, expect } from 'vitest'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough, Writable } from 'node:stream'
import { Chalk } from 'chalk'
import { hasText, lastLines, LineSplitter, splitLines, type LineEvent } from '../../src/output/lines.js'
import { RecentLines } from '../../src/output/recent.js'
import { NodeOutput, type LineSink, type OutputLine } from '../../src/output/node-output.js'
import { Prefixer } from '../../src/output/prefix.js'
import { TerminalSink } from '../../src/output/terminal.js'
import { JsonEvents } from '../../src/output/json.js'
import { nodeLogName, RunLog } from '../../src/output/logdir.js'
import { mulberry32 } from './prng.js'

const b = (s: string): Buffer => Buffer.from(s, 'utf8')
const hex = (evs: readonly LineEvent[]): Array<[string, string]> => evs.map((e) => [e.kind, e.text.toString('hex')])

/** Feeds the chunks, then end(), with or without blocks. */
function feed(chunks: readonly Buffer[], blocks: boolean, max?: number): LineEvent[] {
  const s = new LineSplitter(max, { blocks })
  const out: LineEvent[] = []
  for (const c of chunks) out.push(...s.push(c))
  out.push(...s.end())
  return out
}

/** Blocks replaced by the 'line' events they stand for. */
const expand = (evs: readonly LineEvent[]): LineEvent[] =>
  evs.flatMap((e): LineEvent[] =>
    e.kind === 'lines' ? splitLines(e.text).map((text) => ({ kind: 'line', text })) : [e],
  )

function cutAt(buf: Buffer, rand: () => number, pieces: number): Buffer[] {
  const cuts = Array.from({ length: pieces }, () => Math.floor(rand() * (buf.length + 1))).sort((x, y) => x - y)
  const out: Buffer[] = []
  let at = 0
  for (const c of [...cuts, buf.length]) {
    out.push(Buffer.from(buf.subarray(at, c))) // own copies: the splitter may keep views
    at = c
  }
  return out
}

function randomText(rand: () => number, alphabet: readonly string[], n: number): Buffer {
  let s = ''
  for (let k = 0; k < n; k++) s += alphabet[Math.floor(rand() * alphabet.length)]!
  return b(s)
}

describe('LineSplitter with blocks', () => {
  it.each<[string, string[], Array<[string, string]>]>([
    [
      'whole lines in one chunk: one block',
      ['a\nb\nc\n'],
      [
        ['line', 'a'],
        ['lines', 'b\nc\n'],
      ],
    ],
    [
      'a partial last line stays pending',
      ['a\nb\nc'],
      [
        ['line', 'a'],
        ['lines', 'b\n'],
        ['line', 'c'],
      ],
    ],
    [
      'the carry ends the first line',
      ['xx', 'y\nz\n'],
      [
        ['line', 'xxy'],
        ['lines', 'z\n'],
      ],
    ],
    [
      'empty lines are lines of a block',
      ['a\n\n\nb\n'],
      [
        ['line', 'a'],
        ['lines', '\n\nb\n'],
      ],
    ],
    [
      'a chunk with \\r goes line by line',
      ['a\nb\rc\nd\n'],
      [
        ['line', 'a'],
        ['progress', 'b'],
        ['line', 'c'],
        ['line', 'd'],
      ],
    ],
    [
      'a progress state before: the first line shows it, the block follows',
      ['bar\r\r', '\nx\ny\nz\n'],
      [
        ['progress', 'bar'],
        ['line', 'bar'],
        ['line', 'x'],
        ['lines', 'y\nz\n'],
      ],
    ],
  ])('%s', (_name, chunks, expected) => {
    expect(feed(chunks.map(b), true).map((e) => [e.kind, e.text.toString('utf8')])).toEqual(expected)
  })

  it('blocks are at most maxLineBytes long; a longer line goes line by line', () => {
    const evs = feed([b('s\naa\nbb\ncc\nverylongline\ndd\n')], true, 6)
    expect(evs.map((e) => [e.kind, e.text.toString()])).toEqual([
      ['line', 's'],
      ['lines', 'aa\nbb\n'],
      ['lines', 'cc\n'],
      ['line', 'verylo'],
      ['line', 'ngline'],
      ['line', 'dd'],
    ])
  })

  it('the count of a block is its number of lines', () => {
    const evs = feed([b('x\n' + 'line\n'.repeat(1000))], true)
    const block = evs.find((e) => e.kind === 'lines')
    expect(block).toMatchObject({ kind: 'lines', count: 1000 })
  })

  it('randomized: with blocks expanded, exactly the events of the line-by-line path (600 seeded cases)', () => {
    const rand = mulberry32(0xb10c)
    const alphabets = [
      ['a', 'é', '\n'],
      ['a', 'é', '\n', '\r', '😀'],
      ['ab', '\n', '\n\n', '\xff'],
    ]
    for (let c = 0; c < 600; c++) {
      const alphabet = alphabets[c % alphabets.length]!
      const text = randomText(rand, alphabet, Math.floor(rand() * 80))
      const max = c % 4 === 0 ? 3 + Math.floor(rand() * 8) : undefined
      const chunks = cutAt(text, rand, Math.floor(rand() * 6))
      const ctx = `case ${c}: ${JSON.stringify(text.toString('latin1'))} max ${max}`
      const blocks = feed(chunks, true, max)
      expect(hex(expand(blocks)), ctx).toEqual(hex(feed(chunks, false, max)))
      for (const e of blocks) {
        if (e.kind !== 'lines') continue
        expect(e.text[e.text.length - 1], ctx).toBe(0x0a)
        expect(e.text.includes(0x0d), ctx).toBe(false)
        expect(e.text.length, ctx).toBeLessThanOrEqual(max ?? Infinity)
        expect(e.count, ctx).toBe(splitLines(e.text).length)
      }
    }
  })
})

describe('block helpers', () => {
  it.each<[string, string[]]>([
    ['a\n', ['a']],
    ['a\nb\n', ['a', 'b']],
    ['\n\n', ['', '']],
    ['x\n\ny\n', ['x', '', 'y']],
  ])('splitLines(%j)', (block, lines) => {
    expect(splitLines(b(block)).map(String)).toEqual(lines)
  })

  it.each<[string, number, string[]]>([
    ['a\nb\nc\n', 2, ['b', 'c']],
    ['a\nb\nc\n', 5, ['a', 'b', 'c']],
    ['a\n  \nc\n\n', 2, ['a', 'c']],
    ['\n', 3, []],
    ['a\nb\n', 0, []],
  ])('lastLines(%j, %i, hasText)', (block, n, lines) => {
    expect(lastLines(b(block), n, hasText).map(String)).toEqual(lines)
  })

  it.each<[string, Buffer, boolean]>([
    ['letters', b('abc'), true],
    ['spaces and tabs', b(' \t  '), false],
    ['empty', b(''), false],
    ['a control character is text (trim keeps it)', b('\x01'), true],
    ['escape sequence', b('\x1b[0m'), true],
    ['no-break space only', b('\u00a0\u3000'), false],
    ['non-ASCII letter', b('é'), true],
    ['invalid UTF-8 (U+FFFD is text)', Buffer.from([0xff]), true],
  ])('hasText: %s', (_name, line, expected) => {
    expect(hasText(line)).toBe(expected)
    expect(hasText(line)).toBe(line.toString('utf8').trim() !== '')
  })
})

describe('RecentLines', () => {
  /** The model: every line with text, tagged, the last n. */
  const model = (items: Array<[number | undefined, string]>, n: number): string[] =>
    items
      .filter(([, t]) => t.trim() !== '')
      .map(([r, t]) => (r === undefined ? t : `[r${r}] ${t}`))
      .slice(-Math.min(n, 20))
      .slice(-n)

  it('randomized lines and blocks: the last lines with text, as line by line (300 seeded cases)', () => {
    const rand = mulberry32(0x7a11)
    const words = ['a', 'bb', '', ' ', '  \t', 'x y', 'é']
    for (let c = 0; c < 300; c++) {
      const recent = new RecentLines(20)
      const all: Array<[number | undefined, string]> = []
      for (let k = Math.floor(rand() * 12); k > 0; k--) {
        const rank = rand() < 0.3 ? Math.floor(rand() * 3) : undefined
        const lines = Array.from(
          { length: 1 + Math.floor(rand() * 30) },
          () => words[Math.floor(rand() * words.length)]!,
        )
        if (lines.length === 1 && rand() < 0.5) recent.addLine(rank, Buffer.from(b(lines[0]!)))
        else recent.addBlock(rank, b(lines.map((l) => l + '\n').join('')))
        if (rand() < 0.5) recent.settle()
        all.push(...lines.map((l): [number | undefined, string] => [rank, l]))
      }
      for (const n of [1, 5, 20]) expect(recent.last(n), `case ${c} n ${n}`).toEqual(model(all, n))
    }
  })

  it("settle() copies what is still kept one chunk late: after the next chunk's settle, the chunks it came from may change", () => {
    const recent = new RecentLines(20)
    const line = b('hello')
    const block = b('one\ntwo\n')
    recent.addLine(undefined, line.subarray(0, 5))
    recent.addBlock(1, block)
    recent.settle() // the end of the chunk that brought them: still views
    recent.settle() // the end of the next one: copied
    line.fill(0x78)
    block.fill(0x78)
    expect(recent.last(3)).toEqual(['hello', '[r1] one', '[r1] two'])
  })
})

describe('NodeOutput with blocks: the sinks write what the line-by-line path writes', () => {
  const plain = new Chalk({ level: 0 })
  const collector = () => {
    const chunks: Buffer[] = []
    const stream = new Writable({
      write(c: Buffer, _e, cb) {
        chunks.push(Buffer.from(c))
        cb()
      },
    })
    return { stream, bytes: () => Buffer.concat(chunks) }
  }

  async function pipe(out: NodeOutput, chunks: readonly Buffer[]): Promise<void> {
    const src = new PassThrough()
    const done = out.pipe(src, 'stdout')
    for (const c of chunks) src.write(c)
    src.end()
    await done
  }

  it('terminal: prefix + line + \\n for every line, whatever the chunking (100 seeded floods)', async () => {
    const rand = mulberry32(0xf100d)
    for (let c = 0; c < 100; c++) {
      const text = randomText(rand, ['log line ', 'é', '\n', '\n', '\xff\xfe'], 200 + Math.floor(rand() * 300))
      const { stream, bytes } = collector()
      const prefixer = new Prefixer({
        nodes: [{ node: 0, host: 'hôte' }],
        tagged: false,
        maxRank: 0,
        maxLocalRank: 0,
        chalk: plain,
        timestamps: false,
      })
      const sink = new TerminalSink({ stdout: stream, stderr: stream, prefixer, show: () => true })
      const out = new NodeOutput(0, 'hôte', [sink], { tagged: false, now: () => 0 })
      await pipe(out, cutAt(text, rand, 1 + Math.floor(rand() * 8)))
      const lines = feed([text], false).map((e) => e.text)
      const prefix = b('[n0 hôte]  ')
      expect(bytes().equals(Buffer.concat(lines.flatMap((l) => [prefix, l, b('\n')]))), `case ${c}`).toBe(true)
      expect(out.lines).toBe(lines.length)
    }
  })

  it('--json gets one line event per line; a sink without blocks gets lines one by one', async () => {
    const { stream, bytes } = collector()
    const json = new JsonEvents(stream, () => 0).withFilter(() => true)
    const seen: OutputLine[] = []
    const plainSink: LineSink = { write: (l) => (seen.push(l), true), onDrain: (r) => r() }
    const out = new NodeOutput(3, 'h', [json, plainSink], { tagged: false, now: () => 0 })
    await pipe(out, [b('a\nb\nc\nd')])
    const events = bytes()
      .toString()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { text: string; node: number })
    expect(events.map((e) => e.text)).toEqual(['a', 'b', 'c', 'd'])
    expect(events.every((e) => e.node === 3)).toBe(true)
    expect(seen.map((l) => [l.kind, l.text.toString()])).toEqual([
      ['line', 'a'],
      ['line', 'b'],
      ['line', 'c'],
      ['line', 'd'],
    ])
  })

  it('--log-dir: the same file as line by line (one time and tag per line)', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'fanout-blocks-'))
    try {
      const log = await RunLog.create(tmp, 'run', [{ node: 0, host: 'h' }])
      const out = new NodeOutput(0, 'h', [log], { tagged: false, now: () => Date.UTC(2026, 0, 1) })
      await pipe(out, [b('one\ntwo\nthree\n')])
      await log.close()
      const lines = readFileSync(join(log.dir, nodeLogName(0, 'h')), 'utf8')
        .split('\n')
        .filter((l) => l !== '')
      expect(lines).toEqual(['one', 'two', 'three'].map((t) => `2026-01-01T00:00:00.000Z [node]  ${t}`))
    } finally {
      rmSync(tmp, { recursive: true, force: true })
    }
  })

  it('tail() after a flood: the last lines with text', async () => {
    const out = new NodeOutput(0, 'h', [], { tagged: false, now: () => 0 })
    await pipe(out, [b(Array.from({ length: 100 }, (_v, i) => `line ${i}\n\n`).join(''))])
    expect(out.tail(3)).toEqual(['line 97', 'line 98', 'line 99'])
    expect(out.lines).toBe(200)
  })
})
