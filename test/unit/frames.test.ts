import { describe, it, expect } from 'vitest'
import { FrameDemux, type Segment } from '../../src/output/frames.js'

const frame = (rank: number | '', localRank: number | '', data: string | Buffer): Buffer => {
  const payload = typeof data === 'string' ? Buffer.from(data, 'latin1') : data
  return Buffer.concat([Buffer.from(`\x1eF${rank},${localRank}:${payload.length}\x1f`, 'latin1'), payload])
}
const raw = (s: string): Buffer => Buffer.from(s, 'latin1')

/** Compact view: ['u', text] untagged, [rank, localRank, text] data, [rank, localRank, 'END'] end; adjacent pieces of one kind merged. */
type View = [number | undefined | 'u', number | undefined, string] | ['u', string]
function view(segs: Segment[]): unknown[] {
  const out: unknown[][] = []
  for (const s of segs) {
    if (s.end) {
      expect(s.data.length).toBe(0)
      out.push([s.rank, s.localRank, 'END'])
      continue
    }
    expect(s.data.length).toBeGreaterThan(0)
    const text = s.data.toString('latin1')
    const last = out.at(-1)
    const untagged = s.rank === undefined && s.localRank === undefined
    if (untagged && last?.[0] === 'u') last[1] += text
    else if (!untagged && last && last[0] === s.rank && last[1] === s.localRank && last[2] !== 'END') last[2] += text
    else out.push(untagged ? ['u', text] : [s.rank, s.localRank, text])
  }
  return out
}

function demuxAll(chunks: Buffer[]): Segment[] {
  const d = new FrameDemux()
  return [...chunks.flatMap((c) => d.push(c)), ...d.end()]
}

/** Per-stream bytes: untagged, and each `rank,localRank` (with '|END' appended at an end frame). */
function streams(segs: Segment[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const s of segs) {
    const key = s.rank === undefined && s.localRank === undefined ? 'u' : `${s.rank},${s.localRank}`
    out[key] = (out[key] ?? '') + (s.end ? '|END' : s.data.toString('latin1'))
  }
  return out
}

describe('FrameDemux: one push', () => {
  it.each<[string, Buffer, View[]]>([
    ['a single frame', frame(0, 0, 'hello\n'), [[0, 0, 'hello\n']]],
    ['untagged text only', raw('[I torchrun] starting\n'), [['u', '[I torchrun] starting\n']]],
    [
      'ranks interleaved with untagged text',
      Buffer.concat([
        raw('log A\n'),
        frame(0, 0, 'r0 a\n'),
        frame(1, 1, 'r1 '),
        frame(0, 0, 'r0 b\n'),
        raw('log B\n'),
        frame(1, 1, 'a\n'),
        frame(12, 4, 'x'),
      ]),
      [
        ['u', 'log A\n'],
        [0, 0, 'r0 a\n'],
        [1, 1, 'r1 '],
        [0, 0, 'r0 b\n'],
        ['u', 'log B\n'],
        [1, 1, 'a\n'],
        [12, 4, 'x'],
      ],
    ],
    [
      'a payload holding 0x1e and header-like text',
      frame(3, 1, '\x1eF1,0:5\x1fab\x1e\x1e'),
      [[3, 1, '\x1eF1,0:5\x1fab\x1e\x1e']],
    ],
    ['binary payload', frame(0, 0, Buffer.from([0, 0xff, 0xfe, 0x1f, 0x1e, 0x0a])), [[0, 0, '\x00\xff\xfe\x1f\x1e\n']]],
    // A frame of unknown rank carries no rank, like untagged bytes (its end frame still says end).
    [
      'empty rank fields',
      Buffer.concat([raw('log '), frame('', '', 'anon'), frame('', '', '')]),
      [
        ['u', 'log anon'],
        [undefined, undefined, 'END'],
      ],
    ],
    ['empty local rank only', frame(5, '', 'x'), [[5, undefined, 'x']]],
    ['leading zeros in the numbers', raw('\x1eF007,01:0003\x1fabc'), [[7, 1, 'abc']]],
    ['largest payload', frame(0, 0, 'z'.repeat(4096)), [[0, 0, 'z'.repeat(4096)]]],
    [
      'end frames',
      Buffer.concat([frame(0, 0, 'last'), frame(0, 0, ''), frame(1, 0, ''), frame('', 3, '')]),
      [
        [0, 0, 'last'],
        [0, 0, 'END'],
        [1, 0, 'END'],
        [undefined, 3, 'END'],
      ],
    ],
    ['a lone 0x1e in text', raw('a\x1eb\n'), [['u', 'a\x1eb\n']]],
    ['0x1e followed by the wrong byte', raw('\x1eX1,0:1\x1fa'), [['u', '\x1eX1,0:1\x1fa']]],
    ['LEN over 4096', raw('\x1eF1,0:99999\x1fabc'), [['u', '\x1eF1,0:99999\x1fabc']]],
    ['LEN 4097', raw('\x1eF1,0:4097\x1f'), [['u', '\x1eF1,0:4097\x1f']]],
    ['LEN of six digits', raw('\x1eF1,0:000001\x1fa'), [['u', '\x1eF1,0:000001\x1fa']]],
    ['an empty LEN', raw('\x1eF1,0:\x1fa'), [['u', '\x1eF1,0:\x1fa']]],
    ['a rank of ten digits (header too long)', raw('\x1eF1234567890,0:1\x1fa'), [['u', '\x1eF1234567890,0:1\x1fa']]],
    ['a non-digit in a field', raw('\x1eF1a,0:1\x1fa'), [['u', '\x1eF1a,0:1\x1fa']]],
    [
      'a bad candidate right before a real frame',
      Buffer.concat([raw('\x1eF1'), frame(2, 0, 'ok')]),
      [
        ['u', '\x1eF1'],
        [2, 0, 'ok'],
      ],
    ],
    [
      'a bad candidate holding a real frame',
      Buffer.concat([raw('\x1eF\x1eF'), frame(2, 0, 'ok'), raw('\x1e')]),
      [
        ['u', '\x1eF\x1eF'],
        [2, 0, 'ok'],
        ['u', '\x1e'],
      ],
    ],
  ])('%s', (_name, input, expected) => {
    expect(view(demuxAll([input]))).toEqual(expected)
  })
})

describe('FrameDemux: split input', () => {
  const mixed = Buffer.concat([
    raw('[torchrun] W0 launching\n'),
    frame(0, 0, 'epoch 1 \x1eF0,0:3\x1f'),
    frame(1, 1, Buffer.from([0xff, 0x00, 0x1e])),
    raw('\x1e\x1eF9'),
    frame(10, 2, 'x\ny'),
    raw('\x1eF1,0:99999\x1f'),
    frame(0, 0, ''),
    frame('', '', 'anon'),
    raw('tail \x1eZ'),
    frame(1, 1, 'z'),
    frame(1, 1, ''),
  ])
  const whole = streams(demuxAll([mixed]))

  it('one push gives the expected streams', () => {
    expect(whole).toEqual({
      u: '[torchrun] W0 launching\n\x1e\x1eF9\x1eF1,0:99999\x1fanontail \x1eZ',
      '0,0': 'epoch 1 \x1eF0,0:3\x1f|END',
      '1,1': '\xff\x00\x1ez|END',
      '10,2': 'x\ny',
    })
  })

  it('every two-cut split (three chunks) gives the same streams', () => {
    for (let i = 0; i <= mixed.length; i++) {
      for (let j = i; j <= mixed.length; j++) {
        const got = streams(demuxAll([mixed.subarray(0, i), mixed.subarray(i, j), mixed.subarray(j)]))
        if (JSON.stringify(got) !== JSON.stringify(whole)) expect({ i, j, got }).toEqual({ i, j, got: whole })
      }
    }
  })

  it('byte by byte gives the same streams', () => {
    expect(streams(demuxAll([...mixed].map((b) => Buffer.from([b]))))).toEqual(whole)
  })

  it('copies what it holds: a reused input buffer does not change held bytes', () => {
    const d = new FrameDemux()
    const buf = Buffer.from('ab\x1eF1,', 'latin1')
    expect(view(d.push(buf))).toEqual([['u', 'ab']])
    buf.fill(0x41)
    expect(view(d.push(raw('2:2\x1fhi')))).toEqual([[1, 2, 'hi']])
  })

  it.each<[string, string, View[]]>([
    [
      'a trailing 0x1e',
      'text\x1e',
      [
        ['u', 'text'],
        ['u', '\x1e'],
      ],
    ],
    [
      'a trailing partial header',
      'text\x1eF12,',
      [
        ['u', 'text'],
        ['u', '\x1eF12,'],
      ],
    ],
    ['a header without payload', '\x1eF1,0:5\x1f', []],
  ])('end() flushes %s as untagged', (_name, input, expected) => {
    const d = new FrameDemux()
    const pushed = d.push(raw(input))
    const ended = d.end()
    expect([...view(pushed), ...view(ended)]).toEqual(expected)
    expect(d.end()).toEqual([])
  })

  it('holds nothing back that cannot become a header', () => {
    const d = new FrameDemux()
    expect(view(d.push(raw('a\x1eF1,0:5000')))).toEqual([['u', 'a\x1eF1,0:5000']])
    expect(view(d.push(raw('a\x1eF1,0:50')))).toEqual([['u', 'a']])
    expect(view(d.push(raw('00\x1fb')))).toEqual([['u', '\x1eF1,0:5000\x1fb']])
  })

  it('streams a payload split over pushes as it arrives', () => {
    const d = new FrameDemux()
    const f = frame(4, 0, 'abcdef')
    expect(view(d.push(f.subarray(0, 11)))).toEqual([[4, 0, 'abc']])
    expect(view(d.push(f.subarray(11)))).toEqual([[4, 0, 'def']])
  })
})
