import { describe, it, expect, vi, afterEach } from 'vitest'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { collector } from './collector.js'
import { Chalk } from 'chalk'
import { FRAME_MARK, FrameRuns, foldedRun, isFrameLine, mayHoldFrames } from '../../src/output/cpp-frames.js'
import { mulberry32 } from './prng.js'
import { Prefixer, type LineOrigin } from '../../src/output/prefix.js'
import { TerminalSink } from '../../src/output/terminal.js'
import { LiveRegion } from '../../src/output/live.js'
import { NodeOutput, type OutputLine } from '../../src/output/node-output.js'
import { JobOutput, type PlannedNode } from '../../src/output/job-output.js'
import { RunLog } from '../../src/output/logdir.js'

const plain = new Chalk({ level: 0 })

/** A torch C++ stack trace's frame line, as c10 prints them. */
const frameLine = (n: number, lead = ''): string =>
  `${lead}frame #${n}: c10::Error::Error(c10::SourceLocation, std::string) + 0x${(0x96 + n).toString(16)} (0x7f3b2c1d2e3f in /usr/lib/x86_64-linux-gnu/libc10.so)`
const frames = (count: number, lead = ''): string[] => Array.from({ length: count }, (_v, i) => frameLine(i, lead))
const RAISED =
  'Exception raised from recvBytes at ../torch/csrc/distributed/c10d/Utils.hpp:670 (most recent call first):'

const NOT_LOGGED = (n: number): string => `… ${n} C++ frames (not shown; --log-dir keeps them)`
const LOGGED = (n: number): string => `… ${n} C++ frames, in the log`

function setup(
  o: { logged?: boolean; show?: (origin: LineOrigin) => boolean; live?: LiveRegion; log?: string[] } = {},
) {
  const stdout = collector(o.log)
  const stderr = collector(o.log)
  const prefixer = new Prefixer({
    nodes: [
      { node: 0, host: 'a' },
      { node: 1, host: 'b' },
    ],
    tagged: true,
    maxRank: 1,
    maxLocalRank: 1,
    chalk: plain,
    timestamps: false,
  })
  const sink = new TerminalSink({
    stdout: stdout.stream,
    stderr: stderr.stream,
    prefixer,
    show: o.show ?? (() => true),
    ...(o.logged === undefined ? {} : { logged: o.logged }),
    ...(o.live ? { live: o.live } : {}),
  })
  return { sink, stdout, stderr }
}

const origin = (rank: number | undefined, stream: 'stdout' | 'stderr' = 'stderr', node = 0): LineOrigin =>
  rank === undefined
    ? { node, host: node === 0 ? 'a' : 'b', stream }
    : { node, host: node === 0 ? 'a' : 'b', rank, localRank: rank, stream }
/** One 'line' of `origin`. */
const line = (o: LineOrigin, text: string, at = 0): OutputLine => ({ ...o, kind: 'line', text: Buffer.from(text), at })
/** One 'lines' block of `origin`: the lines, each with its \n. */
const block = (o: LineOrigin, lines: readonly string[], at = 0): OutputLine => ({
  ...o,
  kind: 'lines',
  text: Buffer.from(lines.map((l) => `${l}\n`).join('')),
  count: lines.length,
  at,
})

// ---------------------------------------------------------------------------------------------------

describe('isFrameLine', () => {
  it.each<[string, string]>([
    ['a frame', frameLine(0)],
    ['a high frame number', frameLine(1234)],
    ['indented', `    ${frameLine(3)}`],
    ['tab-indented', `\t${frameLine(3)}`],
    ['torch’s rank prefix', `[rank0]:${frameLine(7)}`],
    ['rank prefix with a space after it', `[rank12]: ${frameLine(7)}`],
    ['blanks before the rank prefix', `  [rank3]:${frameLine(7)}`],
    ['torchrun --tee’s prefix', `[default0]:${frameLine(2)}`],
    ['shortest', 'frame #0:'],
    [
      'the frame of a Python-side trace without a symbol',
      'frame #31: <unknown function> + 0x94ac3 (0x7f3b in /lib/x86_64-linux-gnu/libc.so.6)',
    ],
  ])('%s: yes', (_name, text) => {
    expect(isFrameLine(Buffer.from(text))).toBe(true)
  })

  it.each<[string, string]>([
    ['"frame #" mid-sentence', 'dropped frame #3: the decoder was late'],
    ['"frame #" after a word', `error in ${frameLine(0)}`],
    ['the line before a trace', RAISED],
    ['no number', 'frame #: x'],
    ['no colon after the number', 'frame #12 c10::Error'],
    ['a letter in the number', 'frame #1a: x'],
    ['capitalised', 'Frame #0: x'],
    ['no space before #', 'frame#0: x'],
    ['cut short', 'frame #0'],
    ['a prefix that is no rank prefix', '[E ProcessGroupNCCL.cpp:1234]:frame #0: x'],
    ['a rank prefix without its colon', '[rank0] frame #0: x'],
    ['a rank prefix without a number', '[rank]:frame #0: x'],
    ['an empty line', ''],
    ['blanks only', '   '],
  ])('%s: no', (_name, text) => {
    expect(isFrameLine(Buffer.from(text))).toBe(false)
  })

  it('looks only between start and end (a line of a block)', () => {
    const text = Buffer.from(`hello\n${frameLine(0)}\nframe #1`)
    const second = text.indexOf('\n') + 1
    expect(isFrameLine(text, 0, second - 1)).toBe(false)
    expect(isFrameLine(text, second, text.indexOf('\n', second))).toBe(true)
    // `frame #1` with the block's end before its colon would be: it is cut short here.
    expect(isFrameLine(text, text.lastIndexOf('frame'), text.length)).toBe(false)
    expect(isFrameLine(Buffer.from('frame #1: x'), 0, 8)).toBe(false)
  })
})

describe('mayHoldFrames', () => {
  const lines = (...l: string[]): Buffer => Buffer.from(l.map((x) => `${x}\n`).join(''))

  it.each<[string, string[], boolean]>([
    ['frames', [RAISED, frameLine(0), frameLine(1)], true],
    ['one frame after ordinary lines', ['a', 'b', `  [rank3]: ${frameLine(4)}`], true],
    ['a frame first in the block', [frameLine(0)], true],
    ['no # at all', ['epoch 3 of 5: loss 0.1 from frames', 'done'], false],
    ['# in ordinary lines', ['## epoch 3', 'step #4', '|#####     | 50%', '#'], false],
    ['a line with a # before a frame-looking part', ['x # frame #0: y'], false],
    ['a # line, then a frame', ['# comment', frameLine(0)], true],
    ['"frame #" mid-sentence: may (the lines decide)', ['dropped frame #3: late'], true],
  ])('%s: %s', (_name, l, yes) => {
    expect(mayHoldFrames(lines(...l))).toBe(yes)
  })

  it('never false for a block that holds a frame line (random blocks)', () => {
    const random = mulberry32(20)
    const pool = [
      '',
      '#',
      '# x',
      'frame',
      'frame #',
      'frame #1',
      'frame #1:',
      ' frame #2: x',
      '[rank0]:frame #3: y',
      '[rank]:frame #3: y',
      'a#b',
      '##',
      'frame ##1:',
      'fframe #1:',
      '\tframe #10: z',
      'x frame #1: y',
    ]
    for (let i = 0; i < 3000; i++) {
      const block = lines(
        ...Array.from({ length: 1 + Math.floor(random() * 6) }, () => pool[Math.floor(random() * pool.length)]!),
      )
      const any = block
        .toString()
        .split('\n')
        .slice(0, -1)
        .some((l) => isFrameLine(Buffer.from(l)))
      if (any) expect(mayHoldFrames(block), JSON.stringify(block.toString())).toBe(true)
    }
  })

  it('every frame line holds FRAME_MARK, right before its first #', () => {
    for (const l of [frameLine(0), `[rank0]:${frameLine(9)}`, 'frame #0:'])
      expect(Buffer.from(l).indexOf('#')).toBe(Buffer.from(l).indexOf(FRAME_MARK) + FRAME_MARK.length - 1)
  })
})

describe('FrameRuns and foldedRun', () => {
  it('counts per key; take ends a run and forgets it', () => {
    const runs = new FrameRuns<string>()
    const made = vi.fn((): string => 'origin')
    runs.add('a', Buffer.from('frame #0: x'), made)
    runs.add('b', Buffer.from('frame #0: y'), made)
    runs.add('a', Buffer.from('frame #1: x'), made)
    expect(runs.size).toBe(2)
    expect(made).toHaveBeenCalledTimes(2) // only for a run's first frame
    expect(runs.take('a')).toMatchObject({ origin: 'origin', count: 2 })
    expect(runs.take('a')).toBeUndefined()
    expect(runs.size).toBe(1)
  })

  it('keeps a copy of the first frame: the chunk it came in may be reused', () => {
    const runs = new FrameRuns<null>()
    const chunk = Buffer.from('frame #0: x')
    runs.add('k', chunk, () => null)
    chunk.fill(0x41)
    expect(runs.take('k')?.first.toString()).toBe('frame #0: x')
  })

  it('words the fold line for a log dir or none; a single frame is itself', () => {
    const run = { origin: null, count: 31, first: Buffer.from('frame #0: x') }
    expect(foldedRun(run, true).toString()).toBe(LOGGED(31))
    expect(foldedRun(run, false).toString()).toBe(NOT_LOGGED(31))
    expect(foldedRun({ ...run, count: 1 }, false).toString()).toBe('frame #0: x')
  })
})

// ---------------------------------------------------------------------------------------------------

describe('TerminalSink folds C++ frames', () => {
  const r0 = origin(0)
  const r1 = origin(1)

  it('a run of frames becomes one line with its count, printed when the next line of that origin comes', () => {
    const { sink, stderr } = setup()
    sink.writeBatch([line(r0, 'RuntimeError: boom'), line(r0, RAISED), ...frames(31).map((f) => line(r0, f))])
    expect(stderr.lines()).toEqual(['[n0 a r0]! RuntimeError: boom', `[n0 a r0]! ${RAISED}`])
    sink.write(line(r0, 'after'))
    expect(stderr.lines()).toEqual([
      '[n0 a r0]! RuntimeError: boom',
      `[n0 a r0]! ${RAISED}`,
      `[n0 a r0]! ${NOT_LOGGED(31)}`,
      '[n0 a r0]! after',
    ])
  })

  it('with a log dir, the fold line says the frames are in the log', () => {
    const { sink, stderr } = setup({ logged: true })
    sink.writeBatch([...frames(5).map((f) => line(r0, f)), line(r0, 'next')])
    expect(stderr.lines()).toEqual([`[n0 a r0]! ${LOGGED(5)}`, '[n0 a r0]! next'])
  })

  it('two traces, a line between them: two fold lines', () => {
    const { sink, stderr } = setup()
    sink.writeBatch([
      line(r0, RAISED),
      ...frames(4).map((f) => line(r0, f)),
      line(r0, RAISED),
      ...frames(7).map((f) => line(r0, f)),
      line(r0, 'done'),
    ])
    expect(stderr.lines()).toEqual([
      `[n0 a r0]! ${RAISED}`,
      `[n0 a r0]! ${NOT_LOGGED(4)}`,
      `[n0 a r0]! ${RAISED}`,
      `[n0 a r0]! ${NOT_LOGGED(7)}`,
      '[n0 a r0]! done',
    ])
  })

  it('two traces back to back (frame numbers start again at 0) are one run: no other line ends it', () => {
    const { sink, stderr } = setup()
    sink.writeBatch([...frames(3).map((f) => line(r0, f)), ...frames(2).map((f) => line(r0, f)), line(r0, 'x')])
    expect(stderr.lines()).toEqual([`[n0 a r0]! ${NOT_LOGGED(5)}`, '[n0 a r0]! x'])
  })

  it('frames of two ranks interleaved are counted per rank; each rank’s other lines end only its own run', () => {
    const { sink, stderr } = setup()
    const batch: OutputLine[] = []
    for (let i = 0; i < 10; i++) {
      batch.push(line(r0, frameLine(i)))
      if (i < 6) batch.push(line(r1, frameLine(i)))
    }
    batch.push(line(r1, 'r1 goes on'))
    sink.writeBatch(batch)
    expect(stderr.lines()).toEqual([`[n0 a r1]! ${NOT_LOGGED(6)}`, '[n0 a r1]! r1 goes on'])
    sink.write(line(r0, 'r0 goes on'))
    expect(stderr.lines().slice(2)).toEqual([`[n0 a r0]! ${NOT_LOGGED(10)}`, '[n0 a r0]! r0 goes on'])
  })

  it('the same rank on stdout and stderr: two origins, two runs', () => {
    const { sink, stdout, stderr } = setup()
    const out = origin(0, 'stdout')
    sink.writeBatch([
      line(out, frameLine(0)),
      line(r0, frameLine(0)),
      line(out, frameLine(1)),
      line(r0, frameLine(1)),
      line(r0, frameLine(2)),
      line(out, 'o'),
      line(r0, 'e'),
    ])
    expect(stdout.lines()).toEqual([`[n0 a r0]  ${NOT_LOGGED(2)}`, '[n0 a r0]  o'])
    expect(stderr.lines()).toEqual([`[n0 a r0]! ${NOT_LOGGED(3)}`, '[n0 a r0]! e'])
  })

  it('the same rank numbers on two nodes are two origins', () => {
    const { sink, stderr } = setup()
    const n1 = origin(0, 'stderr', 1)
    sink.writeBatch([
      line(r0, frameLine(0)),
      line(n1, frameLine(0)),
      line(r0, frameLine(1)),
      line(n1, 'n1'),
      line(r0, 'n0'),
    ])
    // n1's run of one frame is printed as that frame
    expect(stderr.lines()).toEqual([
      `[n1 b r0]! ${frameLine(0)}`,
      '[n1 b r0]! n1',
      `[n0 a r0]! ${NOT_LOGGED(2)}`,
      '[n0 a r0]! n0',
    ])
  })

  it('a block mixing ordinary lines and frames: the ordinary lines in order, each run folded where it was', () => {
    const { sink, stderr } = setup()
    sink.write(block(r0, ['before', RAISED, ...frames(12), 'between', RAISED, ...frames(3, '[rank0]:'), 'after']))
    expect(stderr.lines()).toEqual([
      '[n0 a r0]! before',
      `[n0 a r0]! ${RAISED}`,
      `[n0 a r0]! ${NOT_LOGGED(12)}`,
      '[n0 a r0]! between',
      `[n0 a r0]! ${RAISED}`,
      `[n0 a r0]! ${NOT_LOGGED(3)}`,
      '[n0 a r0]! after',
    ])
  })

  it('a run goes on across blocks and lines, and is ended by a block without frames', () => {
    const { sink, stderr } = setup()
    sink.write(block(r0, [RAISED, ...frames(10)]))
    sink.write(line(r0, frameLine(10)))
    sink.write(block(r0, frames(20).slice(11)))
    expect(stderr.lines()).toEqual([`[n0 a r0]! ${RAISED}`])
    sink.write(block(r0, ['x', 'y']))
    expect(stderr.lines()).toEqual([
      `[n0 a r0]! ${RAISED}`,
      `[n0 a r0]! ${NOT_LOGGED(20)}`,
      '[n0 a r0]! x',
      '[n0 a r0]! y',
    ])
  })

  it('a block that ends in frames keeps its run pending; a block of another origin does not end it', () => {
    const { sink, stderr } = setup()
    sink.write(block(r0, ['a', ...frames(4)]))
    sink.write(block(r1, ['other rank', 'still']))
    expect(stderr.lines()).toEqual(['[n0 a r0]! a', '[n0 a r1]! other rank', '[n0 a r1]! still'])
  })

  it('lines that only mention "frame #" are not folded, in a block or alone', () => {
    const { sink, stderr } = setup()
    const mentions = ['dropped frame #3: late', 'video frame #12: ok', `see ${frameLine(0)}`]
    sink.write(block(r0, mentions))
    for (const m of mentions) sink.write(line(r0, m))
    expect(stderr.lines()).toEqual([...mentions, ...mentions].map((m) => `[n0 a r0]! ${m}`))
  })

  it('a block without frames goes out byte for byte as without folding, in one write', () => {
    const { sink, stdout } = setup()
    const text = Array.from({ length: 200 }, (_v, i) =>
      i % 10 === 0 ? `## step #${i}: frame rate ${i}` : `step ${i} loss 0.${i}`,
    )
    sink.write(block(origin(1, 'stdout'), text))
    expect(stdout.chunks).toHaveLength(1)
    expect(stdout.text()).toBe(text.map((t) => `[n0 a r1]  ${t}\n`).join(''))
  })

  it('hidden origins are neither printed nor counted', () => {
    const { sink, stderr } = setup({ show: (o) => o.rank === 1 })
    sink.writeBatch([
      ...frames(5).map((f) => line(r0, f)),
      line(r0, 'hidden'),
      ...frames(2).map((f) => line(r1, f)),
      line(r1, 'shown'),
    ])
    expect(stderr.lines()).toEqual([`[n0 a r1]! ${NOT_LOGGED(2)}`, '[n0 a r1]! shown'])
    expect(sink.end([r0])).toBe(true)
    expect(stderr.lines()).toHaveLength(2)
  })

  it('a progress state printed as a line (no TTY) ends the run', () => {
    const { sink, stderr } = setup()
    sink.writeBatch([line(r0, frameLine(0)), line(r0, frameLine(1)), { ...line(r0, '50%'), kind: 'progress' }])
    expect(stderr.lines()).toEqual([`[n0 a r0]! ${NOT_LOGGED(2)}`, '[n0 a r0]! 50%'])
  })

  it('with timestamps, the fold line has the time of the run’s first frame', () => {
    const stderr = collector()
    const prefixer = new Prefixer({
      nodes: [{ node: 0, host: 'a' }],
      tagged: true,
      maxRank: 0,
      maxLocalRank: 0,
      chalk: plain,
      timestamps: true,
    })
    const sink = new TerminalSink({ stdout: collector().stream, stderr: stderr.stream, prefixer, show: () => true })
    const at = (ms: number): number => new Date(2026, 0, 2, 3, 4, 5, ms).getTime()
    sink.writeBatch([line(r0, frameLine(0), at(100)), line(r0, frameLine(1), at(200)), line(r0, 'x', at(300))])
    expect(stderr.lines()).toEqual([`03:04:05.100 [n0 a r0]! ${NOT_LOGGED(2)}`, '03:04:05.300 [n0 a r0]! x'])
  })

  describe('end(): the origin’s output ended', () => {
    it('prints the pending runs of the origins named, and only theirs', () => {
      const { sink, stdout, stderr } = setup()
      const out1 = origin(1, 'stdout')
      sink.writeBatch([
        line(r0, frameLine(0)),
        line(r0, frameLine(1)),
        line(r1, frameLine(0)),
        line(r1, frameLine(1)),
        line(out1, frameLine(0)),
        line(out1, frameLine(1)),
        line(out1, frameLine(2)),
      ])
      expect(sink.end([r0, out1])).toBe(true)
      expect(stderr.lines()).toEqual([`[n0 a r0]! ${NOT_LOGGED(2)}`])
      expect(stdout.lines()).toEqual([`[n0 a r1]  ${NOT_LOGGED(3)}`])
      sink.end([r0, r1, out1])
      expect(stderr.lines()).toEqual([`[n0 a r0]! ${NOT_LOGGED(2)}`, `[n0 a r1]! ${NOT_LOGGED(2)}`])
      expect(stdout.lines()).toHaveLength(1)
    })

    it('nothing pending: nothing written', () => {
      const { sink, stdout, stderr } = setup()
      expect(sink.end([r0, r1])).toBe(true)
      expect(stdout.chunks.length + stderr.chunks.length).toBe(0)
    })

    it('a single frame left pending is printed as itself', () => {
      const { sink, stderr } = setup()
      sink.write(line(r0, frameLine(0)))
      sink.end([r0])
      expect(stderr.lines()).toEqual([`[n0 a r0]! ${frameLine(0)}`])
    })
  })

  describe('with a LiveRegion', () => {
    afterEach(() => {
      vi.useRealTimers()
    })

    it('the fold line is printed above the region like any line', () => {
      vi.useFakeTimers()
      const log: string[] = []
      const live = new LiveRegion({ columns: 80, rows: 24, write: (d) => (log.push(String(d)), true) })
      const { sink } = setup({ live, log })
      live.setStatus('running')
      vi.advanceTimersByTime(80)
      sink.writeBatch([line(r0, frameLine(0)), line(r0, frameLine(1))])
      expect(log).toEqual(['running\n']) // nothing printed yet: the region stays
      sink.end([r0])
      expect(log).toEqual(['running\n', '\x1b[1A\r\x1b[J', `[n0 a r0]! ${NOT_LOGGED(2)}\n`])
      vi.advanceTimersByTime(80)
      expect(log.at(-1)).toBe('running\n')
    })
  })
})

// ---------------------------------------------------------------------------------------------------

describe('NodeOutput ends the runs: the fold line comes before anything the origin prints after', () => {
  const frame = (rank: number, localRank: number, data: string): Buffer => {
    const payload = Buffer.from(data)
    return Buffer.concat([Buffer.from(`\x1eF${rank},${localRank}:${payload.length}\x1f`, 'latin1'), payload])
  }
  const endFrame = (rank: number, localRank: number): Buffer => Buffer.from(`\x1eF${rank},${localRank}:0\x1f`, 'latin1')

  function node(tagged: boolean, logged = false) {
    const { sink, stdout, stderr } = setup({ logged })
    const out = new NodeOutput(0, 'a', [sink], { tagged, now: () => 0 })
    return { out, stdout, stderr }
  }

  it('at the end of the stream (a flood of frames, untagged, in blocks)', async () => {
    const { out, stderr } = node(false)
    const src = new PassThrough()
    const done = out.pipe(src, 'stderr')
    src.write(`Traceback: boom\n${RAISED}\n`)
    for (let i = 0; i < 1500; i += 100)
      src.write(
        frames(1500)
          .slice(i, i + 100)
          .map((f) => `${f}\n`)
          .join(''),
      )
    await new Promise((r) => setImmediate(r))
    expect(stderr.lines()).toEqual(['[n0 a]   ! Traceback: boom', `[n0 a]   ! ${RAISED}`])
    src.end()
    await done
    expect(stderr.lines()).toEqual([
      '[n0 a]   ! Traceback: boom',
      `[n0 a]   ! ${RAISED}`,
      `[n0 a]   ! ${NOT_LOGGED(1500)}`,
    ])
    expect(out.lines).toBe(1502) // every frame is still a line of the node's
  })

  it('a last frame without its \\n, the stream ending: counted, then folded', async () => {
    const { out, stderr } = node(false)
    const src = new PassThrough()
    const done = out.pipe(src, 'stderr')
    src.end(`${frameLine(0)}\n${frameLine(1)}`)
    await done
    expect(stderr.lines()).toEqual([`[n0 a]   ! ${NOT_LOGGED(2)}`])
  })

  it('when a rank’s stream ends (its zero-length frame), before the node’s ends', async () => {
    const { out, stderr } = node(true, true)
    const src = new PassThrough()
    const done = out.pipe(src, 'stderr')
    src.write(Buffer.concat([frame(0, 0, `${RAISED}\n${frames(8).join('\n')}\n`), frame(1, 1, `${frameLine(0)}\n`)]))
    await new Promise((r) => setImmediate(r))
    expect(stderr.lines()).toEqual([`[n0 a r0]! ${RAISED}`])
    src.write(endFrame(0, 0))
    await new Promise((r) => setImmediate(r))
    expect(stderr.lines()).toEqual([`[n0 a r0]! ${RAISED}`, `[n0 a r0]! ${LOGGED(8)}`])
    src.end(
      Buffer.concat([frame(1, 1, `${frameLine(1)}\n${frameLine(2)}\n`), Buffer.from('torchrun: worker 0 failed\n')]),
    )
    await done
    expect(stderr.lines()).toEqual([
      `[n0 a r0]! ${RAISED}`,
      `[n0 a r0]! ${LOGGED(8)}`,
      '[n0 a]   ! torchrun: worker 0 failed',
      `[n0 a r1]! ${LOGGED(3)}`,
    ])
  })

  it('sinks without end() still get every line (the log keeps the frames)', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'fanout-frames-'))
    try {
      const log = await RunLog.create(tmp, 'run', [{ node: 0, host: 'a' }])
      const { sink, stderr } = setup({ logged: true })
      const out = new NodeOutput(0, 'a', [sink, log], { tagged: false, now: () => Date.UTC(2026, 0, 1) })
      const src = new PassThrough()
      const done = out.pipe(src, 'stderr')
      src.end(`${frames(3).join('\n')}\n`)
      await done
      await log.close()
      expect(stderr.lines()).toEqual([`[n0 a]   ! ${LOGGED(3)}`])
      const logged = readFileSync(join(log.dir, 'node0-a.log'), 'utf8').split('\n').filter(Boolean)
      expect(logged).toHaveLength(3)
      for (const [i, l] of logged.entries()) expect(l).toContain(frameLine(i))
    } finally {
      rmSync(tmp, { recursive: true, force: true })
    }
  })
})

describe('JobOutput tells the terminal whether a log dir is written', () => {
  const NODES: PlannedNode[] = [{ rank: 0, host: 'a', nproc: 1, firstRank: 0 }]

  async function run(log?: RunLog): Promise<string> {
    const stderr = new PassThrough()
    const job = new JobOutput(
      NODES,
      { timestamps: false, quiet: false, json: false, tagged: false, staticRanks: true },
      { stdout: new PassThrough(), stderr, chalk: plain, now: () => 0, ...(log ? { log } : {}) },
    )
    const src = new PassThrough()
    const done = job.forNode({ rank: 0, host: 'a' }, () => {}).pipe(src, 'stderr')
    src.end(`${frames(4).join('\n')}\nafter\n`)
    await done
    return (stderr.read() as Buffer | null)?.toString() ?? ''
  }

  it('without --log-dir', async () => {
    expect(await run()).toBe(`[n0 a]! ${NOT_LOGGED(4)}\n[n0 a]! after\n`)
  })

  it('with --log-dir', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'fanout-frames-'))
    try {
      const log = await RunLog.create(tmp, 'run', [{ node: 0, host: 'a' }])
      expect(await run(log)).toBe(`[n0 a]! ${LOGGED(4)}\n[n0 a]! after\n`)
      await log.close()
    } finally {
      rmSync(tmp, { recursive: true, force: true })
    }
  })
})
