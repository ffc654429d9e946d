import { describe, it, expect } from 'vitest'
import { PassThrough, Writable } from 'node:stream'
import { Chalk } from 'chalk'
import { LinePrefixer, NodeOutputStats, makePrefixes, pipePrefixed } from '../../src/output.js'

const PREFIX = Buffer.from('[n0 host]  ')
const KiB64 = 64 * 1024

/** Feeds the chunks, then end(); returns everything emitted and the prefixer. */
function run(chunks: readonly Buffer[], prefix = PREFIX): { out: Buffer; pushes: Array<Buffer | null>; lp: LinePrefixer } {
  const lp = new LinePrefixer(prefix)
  const pushes = chunks.map((c) => lp.push(c))
  const last = lp.end()
  const out = Buffer.concat([...pushes, last].filter((b): b is Buffer => b !== null))
  return { out, pushes, lp }
}

/** Every line of `text` prefixed exactly once, the last one completed with a newline. */
function prefixed(text: string, prefix = PREFIX.toString()): string {
  const parts = text.split(/(?<=\n)/)
  return parts.map((l) => prefix + (l.endsWith('\n') ? l : l + '\n')).join('')
}

const decoder = new TextDecoder('utf-8', { fatal: true })

const TEXTS: Array<[string, string]> = [
  ['ASCII lines', 'first line\nsecond line\nthird\n'],
  ['multi-byte and CRLF, last line unterminated', 'héllo wörld\nline two 😀\r\n\n中文 last'],
  ['only newlines', '\n\n\n'],
  ['one unterminated line', 'no newline at all'],
  ['emoji at every line end', '😀\n🚀\n𝄞'],
  ['CR alone is not a line end', 'progress 10%\rprogress 20%\rdone\n'],
]

describe('LinePrefixer', () => {
  it.each(TEXTS)('%s: split at every pair of boundaries', (_name, text) => {
    const bytes = Buffer.from(text)
    const expected = prefixed(text)
    for (let i = 0; i <= bytes.length; i++) {
      for (let j = i; j <= bytes.length; j++) {
        const { out, pushes } = run([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)])
        expect(out.toString(), `split at ${i},${j}`).toBe(expected)
        // Output is always whole lines: never a broken UTF-8 character.
        for (const p of pushes) if (p) expect(() => decoder.decode(p)).not.toThrow()
      }
    }
  })

  it.each(TEXTS)('%s: byte by byte', (_name, text) => {
    const bytes = Buffer.from(text)
    const { out, pushes, lp } = run([...bytes].map((b) => Buffer.from([b])))
    expect(out.toString()).toBe(prefixed(text))
    for (const p of pushes) if (p) expect(() => decoder.decode(p)).not.toThrow()
    expect(lp.lines).toBe(text.split(/(?<=\n)/).length)
  })

  it.each<[string, string[], number]>([
    ['three terminated lines', ['a\nb\nc\n'], 3],
    ['last line completed by end()', ['a\nb'], 2],
    ['empty lines count', ['\n\n'], 2],
    ['nothing', [], 0],
    ['empty chunks', ['', '', ''], 0],
    ['CRLF', ['a\r\nb\r\n'], 2],
  ])('lines: %s → %i', (_name, chunks, lines) => {
    const { lp } = run(chunks.map((c) => Buffer.from(c)))
    expect(lp.lines).toBe(lines)
  })

  it('push returns null until a line is complete; end() returns null when nothing is held', () => {
    const lp = new LinePrefixer(PREFIX)
    expect(lp.push(Buffer.from('par'))).toBeNull()
    expect(lp.push(Buffer.from(''))).toBeNull()
    expect(lp.push(Buffer.from('tial\nne'))?.toString()).toBe(`${PREFIX}partial\n`)
    expect(lp.push(Buffer.from('xt\n'))?.toString()).toBe(`${PREFIX}next\n`)
    expect(lp.end()).toBeNull()
    expect(lp.lines).toBe(2)
  })

  it('\\r\\n is kept as is', () => {
    expect(run([Buffer.from('a\r\nb\r\n')]).out.toString()).toBe(`${PREFIX}a\r\n${PREFIX}b\r\n`)
  })

  it('an empty prefix passes the bytes through unchanged', () => {
    const text = 'x\ny\n😀'
    expect(run([Buffer.from(text)], Buffer.alloc(0)).out.toString()).toBe('x\ny\n😀\n')
  })

  it.each([
    ['in 10 000-byte chunks', 10_000],
    ['in 1-MiB chunk', 1 << 20],
    ['in 65 535-byte chunks', KiB64 - 1],
    ['in 65 537-byte chunks', KiB64 + 1],
  ])('a 200 000-byte line without newline %s comes out in 64 KiB pieces, none lost', (_name, size) => {
    const line = Buffer.alloc(200_000, 'x')
    const chunks: Buffer[] = []
    for (let i = 0; i < line.length; i += size) chunks.push(line.subarray(i, i + size))
    const { out } = run([...chunks, Buffer.from('\nnext\n')])
    const pieces = out.toString().split('\n').slice(0, -1)
    expect(pieces.every((p) => p.startsWith(PREFIX.toString()))).toBe(true)
    const bodies = pieces.map((p) => p.slice(PREFIX.length))
    expect(bodies.slice(0, 3).map((b) => b.length)).toEqual([KiB64, KiB64, KiB64])
    expect(bodies[3]?.length).toBe(200_000 - 3 * KiB64)
    expect(bodies[4]).toBe('next')
    expect(bodies.slice(0, 4).join('')).toBe(line.toString())
  })

  it('a long line is not held back: pieces come out before its newline', () => {
    const lp = new LinePrefixer(PREFIX)
    expect(lp.push(Buffer.alloc(KiB64, 'y'))).toBeNull()
    const out = lp.push(Buffer.from('y'))
    expect(out?.toString()).toBe(`${PREFIX}${'y'.repeat(KiB64)}\n`)
    expect(lp.end()?.toString()).toBe(`${PREFIX}y\n`)
  })

  it('a long line whose newline is in the same chunk is emitted whole', () => {
    const line = 'z'.repeat(3 * KiB64) + '\n'
    expect(run([Buffer.from(line)]).out.toString()).toBe(PREFIX.toString() + line)
  })

  // Splitting a long line into pieces must not cut a multi-byte character in two (the class
  // promises never to break a UTF-8 character): each piece should be valid UTF-8 on its own.
  it('a long line of multi-byte characters is cut only between characters', () => {
    const text = '😀'.repeat(50_000) + 'é'.repeat(3) // 200 006 bytes; 65 536 is a multiple of 4, so shift by 1
    const line = Buffer.from('a' + text)
    const chunks: Buffer[] = []
    for (let i = 0; i < line.length; i += 4096) chunks.push(line.subarray(i, i + 4096))
    const lp = new LinePrefixer(Buffer.alloc(0))
    const outs = [...chunks.map((c) => lp.push(c)), lp.end()].filter((b): b is Buffer => b !== null)
    for (const o of outs) expect(() => decoder.decode(o)).not.toThrow()
    expect(Buffer.concat(outs).toString().replace(/\n/g, '')).toBe('a' + text)
  })
})

describe('NodeOutputStats.tail', () => {
  const tailOf = (chunks: string[], n: number): string[] => {
    const stats = new NodeOutputStats()
    for (const c of chunks) stats.record(Buffer.from(c))
    return stats.tail(n)
  }

  it.each<[string, string[], number, string[]]>([
    ['nothing recorded', [], 5, []],
    ['last n', ['a\nb\nc\nd\n'], 2, ['c', 'd']],
    ['fewer lines than n', ['a\nb\n'], 10, ['a', 'b']],
    ['blank and whitespace-only lines skipped', ['a\n\n   \n\t\nb\n'], 5, ['a', 'b']],
    ['CR stripped', ['a\r\nb\r\n'], 5, ['a', 'b']],
    ['unterminated last line counts', ['a\nb'], 1, ['b']],
    ['lines split across chunks', ['hel', 'lo\nwor', 'ld\n'], 5, ['hello', 'world']],
  ])('%s', (_name, chunks, n, expected) => {
    expect(tailOf(chunks, n)).toEqual(expected)
  })

  it('keeps only the end of a long output', () => {
    const lines = Array.from({ length: 5000 }, (_, i) => `line ${i}`)
    expect(tailOf([lines.join('\n') + '\n'], 3)).toEqual(['line 4997', 'line 4998', 'line 4999'])
    const chunked = lines.map((l) => l + '\n')
    expect(tailOf(chunked, 10)).toEqual(lines.slice(-10))
    // Not more than the last 4 KiB is kept.
    expect(tailOf(chunked, 10_000).join('\n').length).toBeLessThanOrEqual(4096)
  })

  it('a multi-byte character split between two records is whole in the tail', () => {
    const stats = new NodeOutputStats()
    const bytes = Buffer.from('x 😀 y\n')
    stats.record(bytes.subarray(0, 4))
    stats.record(bytes.subarray(4))
    expect(stats.tail(1)).toEqual(['x 😀 y'])
  })
})

describe('makePrefixes', () => {
  it('pads labels to one width; stderr is marked with !', () => {
    const chalk = new Chalk({ level: 0 })
    const prefixes = makePrefixes([{ rank: 0, host: 'a' }, { rank: 1, host: 'gpu-node-17' }, { rank: 10, host: 'b' }], chalk)
    const width = '[n1 gpu-node-17]'.length
    expect(prefixes.get(0)?.out.toString()).toBe('[n0 a]'.padEnd(width) + '  ')
    expect(prefixes.get(1)?.out.toString()).toBe('[n1 gpu-node-17]  ')
    expect(prefixes.get(10)?.out.toString()).toBe('[n10 b]'.padEnd(width) + '  ')
    expect(prefixes.get(0)?.err.toString()).toBe('[n0 a]'.padEnd(width) + '! ')
    expect(prefixes.get(1)?.err.toString()).toBe('[n1 gpu-node-17]! ')
    const widths = [...prefixes.values()].map((p) => p.out.length)
    expect(new Set(widths).size).toBe(1)
  })

  it('colours when asked, one colour per node', () => {
    const chalk = new Chalk({ level: 1 })
    const prefixes = makePrefixes([{ rank: 0, host: 'a' }, { rank: 1, host: 'b' }], chalk)
    const a = prefixes.get(0)?.out.toString() ?? ''
    const b = prefixes.get(1)?.out.toString() ?? ''
    expect(a).toContain('\x1b[')
    expect(a.slice(0, 5)).not.toBe(b.slice(0, 5))
  })
})

describe('pipePrefixed', () => {
  it('prefixes every line of a stream and counts them', async () => {
    const source = new PassThrough()
    const written: Buffer[] = []
    const dest = new Writable({
      write(chunk: Buffer, _enc, cb) {
        written.push(chunk)
        cb()
      },
    })
    const stats = new NodeOutputStats()
    const done = pipePrefixed(source, dest, Buffer.from('> '), stats)
    source.write('one\ntw')
    source.write('o\nthree')
    source.end()
    await done
    expect(Buffer.concat(written).toString()).toBe('> one\n> two\n> three\n')
    expect(stats.lines).toBe(3)
    expect(stats.tail(2)).toEqual(['two', 'three'])
  })
})
