import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { splitLines } from '../../src/output/lines.js'
import { PREFIX_WASM } from '../../src/output/prefix-wasm.js'
import { PrefixedBytes } from '../../src/output/prefixed-bytes.js'
import { mulberry32 } from './prng.js'

const b = (s: string): Buffer => Buffer.from(s)

/** What the builder must produce for a block: prefix + line + \n for every line, by the obvious route. */
const reference = (block: Buffer, prefix: Buffer): Buffer =>
  Buffer.concat(splitLines(block).flatMap((l) => [prefix, l, b('\n')]))

const prefixed = (block: Buffer, prefix: Buffer): Buffer => {
  const out = new PrefixedBytes()
  out.lines(block, prefix)
  return out.take()
}

describe('PrefixedBytes', () => {
  it.each<[string, Buffer, Buffer]>([
    ['ASCII prefix', b('a\nb\n'), b('[n0 x]  ')],
    ['UTF-8 host in the prefix, UTF-8 text', b('été\n日本\n'), b('[n1 hôte]  ')],
    ['invalid UTF-8 bytes pass unchanged', Buffer.from([0xff, 0xfe, 0x0a, 0x80, 0x0a]), b('\x1b[36m[n2]\x1b[39m ')],
    ['empty lines', b('\n\n'), b('> ')],
    ['one empty line', b('\n'), b('> ')],
    ['no prefix (--no-prefix): the block itself', b('a\n\nbc\n'), b('')],
    [
      'lines of 15, 16, 17 and 33 bytes (the 16-byte scan and its tail)',
      b(`${'x'.repeat(15)}\n${'y'.repeat(16)}\n${'z'.repeat(17)}\n${'w'.repeat(33)}\n`),
      b('[n0]  '),
    ],
    ['one line of 100 000 bytes', b(`${'q'.repeat(100_000)}\n`), b('[n3 a-very-long-host-name.example.com r12]  ')],
    [
      'a \\n in every position of a 16-byte window',
      b('\n0\n12\n345\n6789\nabcde\nfghijk\nlmnopqr\nstuvwxyz\n'),
      b('|'),
    ],
  ])('lines: %s, byte for byte what prefix + line + \\n per line gives', (_name, block, prefix) => {
    expect(prefixed(block, prefix).equals(reference(block, prefix))).toBe(true)
  })

  it('a block whose last byte is not a \\n ends its last line there, and the line gets its \\n', () => {
    expect(prefixed(b('a\nbc'), b('> ')).toString()).toBe('> a\n> b\n')
    expect(prefixed(b(''), b('> ')).toString()).toBe('')
  })

  it('line: prefix, text and a \\n; appends keep their order with blocks, and take empties the builder', () => {
    const out = new PrefixedBytes()
    out.lines(b('a\nb\n'), b('1 '))
    out.line(b('2 '), b('partial'))
    out.lines(b('c\n'), b(''))
    expect(out.length).toBe(20)
    expect(out.take().toString()).toBe('1 a\n1 b\n2 partial\nc\n')
    expect(out.length).toBe(0)
    out.line(b(''), b(''))
    expect(out.take().toString()).toBe('\n')
  })

  it('a taken Buffer is its own: what is appended later does not change it', () => {
    const out = new PrefixedBytes()
    out.lines(b('first\n'), b('> '))
    const first = out.take()
    out.lines(b('second\n'), b('> '))
    out.take()
    expect(first.toString()).toBe('> first\n')
  })

  it('grows its memory for large batches (every line empty, a long prefix: 41 bytes out per byte in)', () => {
    const out = new PrefixedBytes()
    const prefix = b('2026-11-28T02:00:00.000Z [r123]! [n3] ')
    const blocks = [b('\n'.repeat(65_536)), b('x\n'.repeat(40_000)), b(`${'long'.repeat(50_000)}\n`)]
    for (const block of blocks) out.lines(block, prefix)
    expect(out.take().equals(Buffer.concat(blocks.map((block) => reference(block, prefix))))).toBe(true)
  })

  it('random batches of blocks and lines, any bytes, any prefix: exactly what the reference gives (seeded)', () => {
    for (let seed = 1; seed <= 500; seed++) {
      const rnd = mulberry32(seed)
      const out = new PrefixedBytes()
      const expected: Buffer[] = []
      for (let k = 0, n = 1 + Math.floor(rnd() * 6); k < n; k++) {
        const prefix = Buffer.from(Array.from({ length: Math.floor(rnd() * 50) }, () => Math.floor(rnd() * 256)))
        const newlines = rnd() // how dense the line ends are
        const body = Array.from({ length: Math.floor(rnd() * 3000) }, () =>
          rnd() < newlines * 0.3 ? 10 : Math.floor(rnd() * 256),
        )
        if (rnd() < 0.3) {
          const text = Buffer.from(body.filter((c) => c !== 10))
          out.line(prefix, text)
          expected.push(prefix, text, b('\n'))
        } else if (body.length > 0 && rnd() < 0.2) {
          // A block without its final \n: its last byte ends the last line, and becomes that line's \n.
          const block = Buffer.from(body)
          out.lines(block, prefix)
          expected.push(reference(Buffer.from([...body.slice(0, -1), 10]), prefix))
        } else {
          const block = Buffer.from([...body, 10])
          out.lines(block, prefix)
          expected.push(reference(block, prefix))
        }
      }
      expect(out.take().equals(Buffer.concat(expected)), `seed ${seed}`).toBe(true)
    }
  })
})

// The bytes are committed (building fanout needs no wabt); they must be the .wat as it stands.
const wat2wasm = ((): boolean => {
  try {
    execFileSync('wat2wasm', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()
describe.skipIf(!wat2wasm && !process.env.CI)(
  "prefix-wasm.ts (without wat2wasm, from Debian's wabt, outside CI: skipped)",
  () => {
    it('holds prefix.wat as wat2wasm compiles it now (node scripts/wasm.mjs regenerates it)', () => {
      const now = execFileSync(
        process.execPath,
        [new URL('../../scripts/wasm.mjs', import.meta.url).pathname, '--print'],
        { encoding: 'utf8' },
      ).trim()
      expect(now).toBe(PREFIX_WASM)
    })
  },
)
