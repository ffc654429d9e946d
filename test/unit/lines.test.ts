import { describe, it, expect } from 'vitest'
import { LineSplitter, MAX_LINE_BYTES, type LineEvent } from '../../src/output/lines.js'
import { mulberry32 } from './prng.js'

type Kind = LineEvent['kind']
type Ev = [Kind, string]

const bytes = (s: string | Buffer): Buffer => (typeof s === 'string' ? Buffer.from(s, 'utf8') : s)

/** Feeds the chunks in order, then end(); all events in order. */
function feed(chunks: readonly (string | Buffer)[], max?: number): LineEvent[] {
  const s = new LineSplitter(max)
  const out: LineEvent[] = []
  for (const c of chunks) out.push(...s.push(bytes(c)))
  out.push(...s.end())
  return out
}

/** Readable form, for valid UTF-8 texts. */
const show = (evs: readonly LineEvent[]): Ev[] => evs.map((e): Ev => [e.kind, e.text.toString('utf8')])
/** Byte-exact form. */
const hex = (evs: readonly LineEvent[]): Ev[] => evs.map((e): Ev => [e.kind, e.text.toString('hex')])

const L = (t: string): Ev => ['line', t]
const P = (t: string): Ev => ['progress', t]

const strict = new TextDecoder('utf-8', { fatal: true })
const isValidUtf8 = (b: Buffer): boolean => {
  try {
    strict.decode(b)
    return true
  } catch {
    return false
  }
}

/** Splits `buf` at the given (sorted, possibly repeated) byte offsets. */
function chunksAt(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const out: Buffer[] = []
  let prev = 0
  for (const c of cuts) {
    out.push(buf.subarray(prev, c))
    prev = c
  }
  out.push(buf.subarray(prev))
  return out
}

/**
 * Reference model, written independently of the implementation, for texts without long lines:
 * split on \n; within a line, each \r-terminated non-empty segment is a progress state; the line shows
 * its last non-empty segment ('' if none). An unterminated tail is a line only if it shows something.
 */
function model(text: string): Ev[] {
  const out: Ev[] = []
  const parts = text.split('\n')
  parts.forEach((part, idx) => {
    const terminated = idx < parts.length - 1
    const segs = (terminated && part.endsWith('\r') ? part.slice(0, -1) : part).split('\r')
    let shown = ''
    segs.forEach((seg, k) => {
      if (seg === '') return
      shown = seg
      if (k < segs.length - 1) out.push(P(seg))
    })
    if (terminated || shown !== '') out.push(L(shown))
  })
  return out
}

describe('MAX_LINE_BYTES and constructor', () => {
  it('is 64 KiB', () => {
    expect(MAX_LINE_BYTES).toBe(65536)
  })

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('rejects maxLineBytes %s', (max) => {
    expect(() => new LineSplitter(max)).toThrow(RangeError)
  })
})

describe('LineSplitter: whole input at once', () => {
  it.each<{ name: string; input: string; want: Ev[] }>([
    { name: 'nothing', input: '', want: [] },
    { name: 'plain lines', input: 'a\nbc\n', want: [L('a'), L('bc')] },
    { name: 'one empty line', input: '\n', want: [L('')] },
    { name: 'empty lines count', input: '\n\na\n\n', want: [L(''), L(''), L('a'), L('')] },
    { name: 'partial last line completed by end()', input: 'a\nlast', want: [L('a'), L('last')] },
    { name: 'UTF-8 text', input: 'héllo 😀\nwörld', want: [L('héllo 😀'), L('wörld')] },
    { name: 'CRLF', input: 'a\r\nb\r\n', want: [L('a'), L('b')] },
    { name: 'CRLF alone is an empty line', input: '\r\n\r\n', want: [L(''), L('')] },
    { name: 'mixed LF and CRLF', input: 'a\nb\r\n\nc', want: [L('a'), L('b'), L(''), L('c')] },
    { name: 'trailing \\r at end()', input: 'abc\r', want: [P('abc'), L('abc')] },
    { name: 'lone \\r at end() emits nothing', input: '\r', want: [] },
    { name: '\\r after a finished line', input: 'a\n\r', want: [L('a')] },
    // The last \r is directly before \n, so it is a CRLF (dropped), not a carriage return: the last
    // segment ends the line without a progress event of its own.
    { name: 'print(end="\\r") then \\n', input: '10%\r20%\r30%\r\n', want: [P('10%'), P('20%'), L('30%')] },
    { name: 'print(end="\\r") short', input: '10%\r20%\r\n', want: [P('10%'), L('20%')] },
    { name: 'leading \\r (tqdm style)', input: '\r 10%\r 20%\n', want: [P(' 10%'), L(' 20%')] },
    {
      name: 'tqdm bar',
      input: '\r  0%|          | 0/10\r 50%|█████     | 5/10\r100%|██████████| 10/10\n',
      want: [P('  0%|          | 0/10'), P(' 50%|█████     | 5/10'), L('100%|██████████| 10/10')],
    },
    { name: 'tqdm then a normal line', input: '\r 1/2\r 2/2\ndone\n', want: [P(' 1/2'), L(' 2/2'), L('done')] },
    { name: 'never finished: end() emits the last state', input: '10%\r20%\r', want: [P('10%'), P('20%'), L('20%')] },
    { name: 'never finished, text after last \\r', input: '10%\r20%', want: [P('10%'), L('20%')] },
    { name: '\\r\\r emits nothing for the empty segment', input: 'a\r\rb\n', want: [P('a'), L('b')] },
    { name: 'empty segment before \\n falls back to progress', input: '10%\r\r\n', want: [P('10%'), L('10%')] },
    { name: 'only carriage returns', input: '\r\r\r\n', want: [L('')] },
    { name: 'progress does not leak into the next line', input: 'a\rb\n\n', want: [P('a'), L('b'), L('')] },
    { name: 'progress then CRLF then next line', input: '10%\r\nnext', want: [L('10%'), L('next')] },
    { name: 'line starting with \\r, unterminated', input: '\rabc', want: [L('abc')] },
  ])('$name', ({ input, want }) => {
    expect(show(feed([input]))).toEqual(want)
    expect(model(input)).toEqual(want) // the reference model used below agrees with the hand-written cases
  })
})

describe('LineSplitter: \\r and \\n in different chunks', () => {
  it.each<{ name: string; chunks: string[]; want: Ev[] }>([
    { name: 'CRLF split', chunks: ['a\r', '\nb\n'], want: [L('a'), L('b')] },
    { name: 'CRLF split, nothing after', chunks: ['a\r', '\n'], want: [L('a')] },
    { name: 'CRLF split by an empty chunk', chunks: ['a\r', '', '\n'], want: [L('a')] },
    { name: 'CRLF in three chunks', chunks: ['a', '\r', '\n', 'b'], want: [L('a'), L('b')] },
    { name: 'bare CRLF split', chunks: ['\r', '\n'], want: [L('')] },
    { name: 'lone \\r decided by the next chunk', chunks: ['a\r', 'b\n'], want: [P('a'), L('b')] },
    { name: 'lone \\r then \\r', chunks: ['a\r', '\r\n'], want: [P('a'), L('a')] },
    { name: 'trailing \\r decided by end()', chunks: ['a\r'], want: [P('a'), L('a')] },
    { name: 'progress across chunks', chunks: ['10%\r', '20%\r', '\n'], want: [P('10%'), L('20%')] },
    {
      name: 'progress, then \\r\\r across chunks',
      chunks: ['10%\r', '20%\r', '\r\n'],
      want: [P('10%'), P('20%'), L('20%')],
    },
    { name: 'segment across chunks', chunks: ['he', 'llo\r', 'wor', 'ld\n'], want: [P('hello'), L('world')] },
  ])('$name', ({ chunks, want }) => {
    expect(show(feed(chunks))).toEqual(want)
  })

  it('does not decide a trailing \\r until the next byte arrives', () => {
    const s = new LineSplitter()
    expect(s.push(bytes('a\r'))).toEqual([])
    expect(s.push(bytes(''))).toEqual([])
    expect(show(s.push(bytes('\n')))).toEqual([L('a')])
    expect(s.push(bytes('b\r'))).toEqual([])
    expect(show(s.push(bytes('c')))).toEqual([P('b')])
    expect(show(s.end())).toEqual([L('c')])
  })

  it('emits finished lines from push(), not only at end()', () => {
    const s = new LineSplitter()
    expect(show(s.push(bytes('a\nb\rc')))).toEqual([L('a'), P('b')])
    expect(show(s.end())).toEqual([L('c')])
  })

  it('is empty after end() and reusable', () => {
    const s = new LineSplitter()
    expect(show(s.push(bytes('x\ry')))).toEqual([P('x')])
    expect(show(s.end())).toEqual([L('y')])
    expect(s.end()).toEqual([])
    // No stale progress state or pending \r from before end().
    expect(show(s.push(bytes('\n')))).toEqual([L('')])
    s.push(bytes('p\r'))
    expect(show(s.end())).toEqual([P('p'), L('p')])
    expect(s.push(bytes('\n')).map((e) => [e.kind, e.text.length])).toEqual([['line', 0]])
  })
})

describe('LineSplitter: long lines', () => {
  it.each<{ name: string; max: number; input: string | Buffer; want: string[] }>([
    { name: 'ASCII, remainder at end()', max: 4, input: 'abcdefghij', want: ['abcd', 'efgh', 'ij'] },
    { name: 'ASCII, exact multiple', max: 4, input: 'abcdefgh', want: ['abcd', 'efgh'] },
    { name: 'exactly max is not cut', max: 4, input: 'abcd', want: ['abcd'] },
    { name: '2-byte é across the cut', max: 4, input: 'abcé', want: ['abc', 'é'] },
    { name: '2-byte é just before the cut', max: 4, input: 'abéx', want: ['abé', 'x'] },
    { name: '4-byte 😀 across the cut (3 back)', max: 4, input: 'ab😀', want: ['ab', '😀'] },
    { name: '4-byte 😀 starting at 1', max: 4, input: 'a😀b', want: ['a', '😀', 'b'] },
    { name: 'é run', max: 5, input: 'éééé', want: ['éé', 'éé'] },
    { name: '😀 run', max: 6, input: '😀😀😀', want: ['😀', '😀', '😀'] },
    { name: '3-byte € run', max: 7, input: '€€€€', want: ['€€', '€€'] },
  ])('$name (max $max)', ({ max, input, want }) => {
    const evs = feed([input], max)
    expect(show(evs)).toEqual(want.map(L))
    for (const e of evs) {
      expect(e.text.length).toBeLessThanOrEqual(max)
      expect(isValidUtf8(e.text)).toBe(true)
    }
    expect(Buffer.concat(evs.map((e) => e.text)).equals(bytes(input))).toBe(true)
  })

  it.each<{ name: string; max: number; input: string; want: Ev[] }>([
    { name: 'long line ended by \\n', max: 4, input: 'abcdefghi\nz\n', want: [L('abcd'), L('efgh'), L('i'), L('z')] },
    { name: 'long line ended by CRLF', max: 4, input: 'abcdefghi\r\n', want: [L('abcd'), L('efgh'), L('i')] },
    {
      name: 'long progress segment flushed as lines, rest is the state',
      max: 4,
      input: 'abcdefgh\rxy\n',
      want: [L('abcd'), P('efgh'), L('xy')],
    },
    {
      name: 'progress then long segment',
      max: 4,
      input: '12\rabcdefghi\n',
      want: [P('12'), L('abcd'), L('efgh'), L('i')],
    },
  ])('$name (max $max)', ({ max, input, want }) => {
    expect(show(feed([input], max))).toEqual(want)
  })

  it('flushes pieces during push() so that only the tail stays pending', () => {
    const s = new LineSplitter(4)
    expect(show(s.push(bytes('abcdefghij')))).toEqual([L('abcd'), L('efgh')])
    expect(s.push(bytes('kl'))).toEqual([]) // 'ijkl' is 4 bytes: not over max yet
    expect(show(s.push(bytes('m')))).toEqual([L('ijkl')])
    expect(show(s.end())).toEqual([L('m')])
  })

  it('never drops bytes of invalid UTF-8 (cut at max when no character start within 3 bytes)', () => {
    const input = Buffer.from([0x41, 0x80, 0x80, 0x80, 0x80, 0x80, 0x0a])
    expect(hex(feed([input], 4))).toEqual([
      ['line', '41808080'],
      ['line', '8080'],
    ])
  })

  it('cuts inside a character only when it cannot fit at all (max smaller than the character)', () => {
    expect(hex(feed(['é'], 1))).toEqual([
      ['line', 'c3'],
      ['line', 'a9'],
    ])
  })

  it('uses MAX_LINE_BYTES by default', () => {
    const input = Buffer.from('é'.repeat(100_000) + '\n') // 200,000 bytes of 2-byte characters
    const evs = feed([input.subarray(0, 70_001), input.subarray(70_001)])
    expect(evs.map((e) => e.text.length)).toEqual([65536, 65536, 65536, 3392])
    for (const e of evs) expect(isValidUtf8(e.text)).toBe(true)
    expect(Buffer.concat(evs.map((e) => e.text)).equals(input.subarray(0, -1))).toBe(true)
  })
})

describe('LineSplitter: chunk boundaries do not matter', () => {
  const TEXTS: { text: string; max?: number }[] = [
    { text: 'ab\ncd\n\nef' },
    { text: 'x\r\ny\r\n\r\n' },
    { text: '10%\r20%\r\r\n' },
    { text: '\r é\r😀\nz\r' },
    { text: 'a\rb\r\nc\n\rd' },
    { text: 'h€llo\r😀\r\n' },
    { text: 'abcdefé\r😀xyz\n', max: 5 }, // long segments too: cuts do not depend on chunking
    { text: 'ééé😀a\r\nbbbbbbb', max: 4 },
  ]

  it.each(TEXTS)('every split into three chunks: $text', ({ text, max }) => {
    const buf = bytes(text)
    const whole = hex(feed([buf], max))
    for (let i = 0; i <= buf.length; i++) {
      for (let j = i; j <= buf.length; j++) {
        expect(hex(feed(chunksAt(buf, [i, j]), max)), `split at ${i},${j}`).toEqual(whole)
      }
    }
  })

  it.each(TEXTS)('byte by byte: $text', ({ text, max }) => {
    const buf = bytes(text)
    const single = [...buf].map((x) => Buffer.from([x]))
    expect(hex(feed(single, max))).toEqual(hex(feed([buf], max)))
  })
})

describe('LineSplitter: invalid UTF-8 passes through byte-exact', () => {
  it.each<{ name: string; chunks: number[][]; want: Ev[] }>([
    { name: 'ff fe in one chunk', chunks: [[0xff, 0xfe, 0x0a]], want: [['line', 'fffe']] },
    { name: 'ff | fe across chunks', chunks: [[0xff], [0xfe, 0x0a]], want: [['line', 'fffe']] },
    {
      name: 'truncated 3-byte sequence at a chunk end',
      chunks: [[0x61, 0xe2, 0x82], [0x0a]],
      want: [['line', '61e282']],
    },
    { name: 'truncated sequence at end()', chunks: [[0xe2, 0x82]], want: [['line', 'e282']] },
    {
      name: 'valid € split across chunks',
      chunks: [
        [0xe2, 0x82],
        [0xac, 0x0a],
      ],
      want: [['line', 'e282ac']],
    },
    {
      name: 'invalid bytes around \\r',
      chunks: [
        [0xff, 0x0d],
        [0xfe, 0x0a],
      ],
      want: [
        ['progress', 'ff'],
        ['line', 'fe'],
      ],
    },
    {
      name: 'stray continuation bytes and CRLF',
      chunks: [
        [0x80, 0x0d],
        [0x0a, 0xbf],
      ],
      want: [
        ['line', '80'],
        ['line', 'bf'],
      ],
    },
  ])('$name', ({ chunks, want }) => {
    expect(hex(feed(chunks.map((c) => Buffer.from(c))))).toEqual(want)
  })
})

describe('LineSplitter: buffers', () => {
  it('keeps its own copy of what stays pending (callers may reuse chunk buffers)', () => {
    const s = new LineSplitter()
    const reused = Buffer.alloc(16)
    const pushReused = (text: string): Ev[] => {
      const n = reused.write(text)
      const evs = show(s.push(reused.subarray(0, n))) // read the events before the buffer is reused
      reused.fill(0x21) // '!' everywhere: anything still referencing the chunk would change
      return evs
    }
    expect(pushReused('ab\rcd')).toEqual([P('ab')])
    expect(pushReused('ef\r')).toEqual([])
    expect(pushReused('\r')).toEqual([P('cdef')])
    expect(pushReused('\n')).toEqual([L('cdef')]) // the progress state survived the buffer reuse
    expect(pushReused('tail')).toEqual([])
    expect(show(s.end())).toEqual([L('tail')])
  })

  it('handles many lines in one chunk in linear time', () => {
    const n = 200_000
    const input = Buffer.from('line\n'.repeat(n) + 'x\r'.repeat(n)) // \r only after all the \n
    const s = new LineSplitter()
    const evs = s.push(input)
    expect(evs.length).toBe(2 * n - 1) // the last 'x\r' waits for the next byte
    expect(evs[n - 1]).toEqual({ kind: 'line', text: Buffer.from('line') })
    expect(evs[n]).toEqual({ kind: 'progress', text: Buffer.from('x') })
    expect(show(s.end())).toEqual([P('x'), L('x')])
  })
})

describe('LineSplitter: randomized', () => {
  const ALPHABET = ['a', 'é', '\n', '\r', '😀']

  function randomCase(rand: () => number, alphabet: readonly string[], maxTokens: number) {
    const n = Math.floor(rand() * maxTokens)
    let text = ''
    for (let k = 0; k < n; k++) text += alphabet[Math.floor(rand() * alphabet.length)]!
    const buf = bytes(text)
    const cuts = Array.from({ length: Math.floor(rand() * 6) }, () => Math.floor(rand() * (buf.length + 1))).sort(
      (x, y) => x - y,
    )
    return { text, buf, chunks: chunksAt(buf, cuts) }
  }

  it('matches whole-text feeding and the reference model (400 seeded cases)', () => {
    const rand = mulberry32(0x5eed)
    for (let c = 0; c < 400; c++) {
      const { text, buf, chunks } = randomCase(rand, ALPHABET, 40)
      const whole = feed([buf])
      const ctx = `case ${c}: ${JSON.stringify(text)} in ${chunks.length} chunks`
      expect(hex(feed(chunks)), ctx).toEqual(hex(whole))
      expect(show(whole), ctx).toEqual(model(text))
      // As in the brief: the 'line' texts joined with \n equal the model's lines joined with \n.
      const lineTexts = whole.filter((e) => e.kind === 'line').map((e) => e.text)
      const joined = Buffer.concat(lineTexts.flatMap((t, k) => (k ? [bytes('\n'), t] : [t])))
      const modelLines = model(text)
        .filter(([kind]) => kind === 'line')
        .map(([, t]) => t)
      expect(joined.equals(bytes(modelLines.join('\n'))), ctx).toBe(true)
    }
  })

  it('with small maxLineBytes: chunking-independent, pieces bounded and valid UTF-8 (300 seeded cases)', () => {
    const rand = mulberry32(0xc0ffee)
    for (let c = 0; c < 300; c++) {
      const max = 4 + Math.floor(rand() * 6)
      const noCR = c % 2 === 0
      const { text, buf, chunks } = randomCase(rand, noCR ? ALPHABET.filter((t) => t !== '\r') : ALPHABET, 30)
      const ctx = `case ${c} (max ${max}): ${JSON.stringify(text)} in ${chunks.length} chunks`
      const whole = feed([buf], max)
      expect(hex(feed(chunks, max)), ctx).toEqual(hex(whole))
      for (const e of whole) {
        expect(e.text.length, ctx).toBeLessThanOrEqual(max)
        expect(isValidUtf8(e.text), ctx).toBe(true)
      }
      if (noCR) {
        // Without \r nothing is replaced: every byte but the \n comes out, in order.
        expect(Buffer.concat(whole.map((e) => e.text)).equals(bytes(text.replaceAll('\n', ''))), ctx).toBe(true)
        expect(
          whole.every((e) => e.kind === 'line'),
          ctx,
        ).toBe(true)
      }
    }
  })
})
