import { Chalk } from 'chalk'
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { parseArgs } from '../../src/cli/dispatch.js'
import { FanoutError } from '../../src/errors.js'
import { JobOutput } from '../../src/output/job-output.js'
import { ReaderParser } from '../../src/runs/messages.js'
import { formatRuns, type RunRow } from '../../src/runs/ps.js'
import { Registry, type RunRecord, type RunSummary } from '../../src/runs/registry.js'
import { Replay } from '../../src/runs/replay.js'
import { formatRunSummary } from '../../src/runs/summary.js'

// The client side of detached runs (runs/, cli/commands/runs.ts, --detach's flags), without nodes: the
// reader's messages, records shown as an attached run shows lines, the registry, the tables.

async function refused(argv: string[]): Promise<string> {
  try {
    await parseArgs(argv, '/w')
  } catch (e) {
    expect(e).toBeInstanceOf(FanoutError)
    expect((e as FanoutError).exitCode).toBe(2)
    return (e as FanoutError).message
  }
  throw new Error(`${argv.join(' ')} was not refused`)
}

describe('--detach and the runs commands on the command line', () => {
  it('--detach (-d) with its log cap', async () => {
    const a = await parseArgs(['-H', 'h', '-d', 'train.py', '--detach'], '/w')
    expect(a.kind === 'run' && a.options.detach).toEqual({ logMaxBytes: 1024 ** 3 })
    // The script's own --detach stays the script's.
    expect(a.kind === 'run' && a.options.job.scriptArgs).toEqual(['--detach'])
    const b = await parseArgs(['-H', 'h', '--detach', '--detach-log-max', '200MiB', 'train.py'], '/w')
    expect(b.kind === 'run' && b.options.detach).toEqual({ logMaxBytes: 200 * 1024 ** 2 })
    const c = await parseArgs(['-H', 'h', 'train.py'], '/w')
    expect(c.kind === 'run' && c.options.detach).toBeUndefined()
  })

  it.each([
    [['-H', 'h', '--detach-log-max', '1G', 't.py'], /--detach-log-max is for a detached run: add --detach/],
    [['-H', 'h', '-d', '--detach-log-max', '10K', 't.py'], /is not a size of at least 1MiB/],
    [['-H', 'h', '-d', '--json', 't.py'], /--detach with --json: it shapes the output this terminal shows/],
    [['-H', 'h', '-d', '--log-dir', 'x', 't.py'], /--detach with --log-dir/],
    [['-H', 'h', '-d', '--only', '0', 't.py'], /--detach with --only/],
    [['-H', 'h', '-d', '--dry-run', 't.py'], /--detach with --dry-run: --dry-run launches nothing/],
    [['check', '-H', 'h', '-d'], /--detach with fanout check/],
    [['-d', '--via', 'sbatch', '--nodes', '2', 't.py'], /--detach with --via sbatch/],
  ])('refuses %j', async (argv, message) => {
    expect(await refused(argv)).toMatch(message)
  })

  it('attach, logs, stop and ps take their own words, options after the run id too', async () => {
    const attach = await parseArgs(['attach', '20261207-1015', '--lines', '5'], '/w')
    expect(attach).toMatchObject({ kind: 'runs', options: { command: 'attach', run: '20261207-1015', lines: 5 } })
    const logs = await parseArgs(['logs', '-f', 'r1', '--node', '2', '--no-timestamps'], '/w')
    expect(logs).toMatchObject({
      kind: 'runs',
      options: { command: 'logs', run: 'r1', node: 2, follow: true, timestamps: false },
    })
    expect(await parseArgs(['logs', 'r1'], '/w')).toMatchObject({ options: { timestamps: true, summary: false } })
    expect(await parseArgs(['ps', '--json'], '/w')).toMatchObject({
      kind: 'runs',
      options: { command: 'ps', json: true },
    })
    expect(await parseArgs(['stop', 'r1'], '/w')).toMatchObject({
      kind: 'runs',
      options: { command: 'stop', run: 'r1' },
    })
    // Only as the first word: a script called ps still runs.
    expect(await parseArgs(['-H', 'h', 'ps'], '/w')).toMatchObject({ kind: 'run' })
  })

  it.each([
    [['attach'], /fanout attach: which run\?/],
    [['stop', 'a', 'b'], /takes one run id, not "b" too/],
    [['ps', 'a'], /fanout ps takes no run id/],
    [['logs', 'r', '--summary', '--follow'], /--summary prints the table of a run that ended/],
    [['logs', 'r', '--summary', '--node', '1'], /leave out --node/],
    [['attach', 'r', '--lines', 'x'], /--lines/],
    [['attach', 'r', '--bogus'], /unknown option --bogus/],
  ])('refuses %j', async (argv, message) => {
    expect(await refused(argv)).toMatch(message)
  })
})

describe('ReaderParser', () => {
  it('splits messages across chunks, wherever a chunk ends', () => {
    const stream = Buffer.concat([
      Buffer.from('chunk 0 0 6\nab\ncd\n'),
      Buffer.from(`state 15\n{"alive": true}`),
      Buffer.from('chunk 1 6 2\nxyend 0\n'),
    ])
    for (let cut = 0; cut <= stream.length; cut++) {
      const p = new ReaderParser()
      const all = [...p.push(stream.subarray(0, cut)), ...p.push(stream.subarray(cut))]
      expect(all.map((m) => m.kind)).toEqual(['chunk', 'state', 'chunk', 'end'])
      expect(all[0]).toMatchObject({ seq: 0, offset: 0, data: Buffer.from('ab\ncd\n') })
      expect(all[2]).toMatchObject({ seq: 1, offset: 6, data: Buffer.from('xy') })
    }
  })
})

const nodes = [
  { rank: 0, host: 'a', nproc: 2, firstRank: 0 },
  { rank: 1, host: 'b', nproc: 2, firstRank: 2 },
]

function replayInto(
  tagged: boolean,
  progress = false,
): { replay: Replay; out: () => string; err: () => string; events: string[] } {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  let o = ''
  let e = ''
  stdout.on('data', (b: Buffer) => (o += b.toString()))
  stderr.on('data', (b: Buffer) => (e += b.toString()))
  let replay: Replay | undefined
  const output = new JobOutput(
    nodes,
    { timestamps: true, quiet: false, json: false, tagged, staticRanks: true },
    {
      stdout: stdout as never,
      stderr: stderr as never,
      chalk: new Chalk({ level: 0 }),
      now: () => replay?.now() ?? 0,
    },
  )
  const events: string[] = []
  replay = new Replay(output, nodes, tagged, (ev) => events.push(`n${ev.node} ${ev.text}`), progress)
  return { replay, out: () => o, err: () => e, events }
}

describe("Replay: a run's records shown as an attached run's lines", () => {
  it("prefixes by node and rank, at the time each was written; fanout's records are events", () => {
    const { replay, out, err, events } = replayInto(true)
    replay.push(
      0,
      Buffer.from(
        '2026-12-07T01:02:03.456Z n0 r1/1 out loss 0.5\n2026-12-07T01:02:04.000Z n0 - fanout node 1 (b) joined\n2026-12-07T01:02:05',
      ),
    )
    replay.push(0, Buffer.from('.000Z n0 - err torchrun says\n'))
    replay.push(1, Buffer.from('2026-12-07T01:02:06.000Z n1 r3/1 err Traceback\nnot a record\n'))
    replay.end()
    const time = (iso: string): string => new Date(iso).toTimeString().slice(0, 8)
    expect(out()).toMatch(new RegExp(`^${time('2026-12-07T01:02:03.456Z')}\\.456 \\[n0 a r1\\]\\s+loss 0\\.5\\n$`))
    expect(err()).toMatch(/\[n0 a\]\s+! torchrun says\n/)
    expect(err()).toMatch(/\[n1 b r3\]\s*! Traceback\n/)
    expect(events).toEqual(['n0 node 1 (b) joined'])
    expect(replay.lines(0)).toBe(2)
  })

  it('progress states are rows of a live terminal only; the line after one replaces it', () => {
    const a = replayInto(false)
    a.replay.push(1, Buffer.from('2026-12-07T01:02:03.000Z n1 - out~ 50%\n2026-12-07T01:02:04.000Z n1 - out 100%\n'))
    a.replay.end()
    expect(a.out()).toMatch(/\[n1 b\]\s+100%\n$/)
    expect(a.out()).not.toContain('50%')
  })
})

describe('Registry', () => {
  const record = (id: string): RunRecord => ({
    id,
    started_at: '2026-12-07T10:15:14.000Z',
    command: ['train.py', '--epochs', '3'],
    dir: `~/.fanout/runs/${id}`,
    python: 'python3',
    hosts: [{ host: 'a', where: 'x:1' }],
    ssh: { identity: [], acceptNew: false, askPassword: false, connectTimeoutS: 5, maxHandshakes: 8, keepaliveS: 5 },
    nodes,
    tagged: true,
    staticRanks: true,
    graceS: 10,
    heartbeatTimeoutS: 15,
    logMaxBytes: 1024 ** 3,
  })

  it('finds a run by its id or a prefix of only one; says which when it cannot', () => {
    const registry = new Registry(mkdtempSync('/tmp/fanout-registry-'))
    registry.add(record('20261207-101514-3f9a2c'))
    registry.add(record('20261207-101514-aaaaaa'))
    registry.add(record('20261208-090000-000001'))
    mkdirSync(join(registry.dir, 'not-a-run'))
    expect(registry.list().map((r) => r.id)).toEqual([
      '20261208-090000-000001',
      '20261207-101514-aaaaaa',
      '20261207-101514-3f9a2c',
    ])
    expect(registry.find('20261208').id).toBe('20261208-090000-000001')
    expect(registry.find('20261207-101514-3f9a2c').id).toBe('20261207-101514-3f9a2c')
    expect(() => registry.find('20261207')).toThrow(/ambiguous: it starts 2 runs/)
    expect(() => registry.find('2027')).toThrow(/no run "2027" in .*fanout ps lists/)
    expect(() => registry.find('')).toThrow(/no run ""/)
  })

  it('appends what a node sent and keeps its cursor; an unwritable registry is a usage error', () => {
    const registry = new Registry(mkdtempSync('/tmp/fanout-registry-'))
    registry.add(record('20261207-101514-3f9a2c'))
    expect(registry.nodeLog('20261207-101514-3f9a2c', 1).cursor).toEqual({ seq: 0, offset: 0 })
    registry.appendNodeLog('20261207-101514-3f9a2c', 1, Buffer.from('x\n'), { seq: 2, offset: 10 })
    expect(registry.nodeLog('20261207-101514-3f9a2c', 1).cursor).toEqual({ seq: 2, offset: 10 })
    const file = join(mkdtempSync('/tmp/fanout-registry-'), 'file')
    writeFileSync(file, '')
    expect(() => new Registry(join(file, 'runs')).add(record('20261207-101514-3f9a2c'))).toThrow(
      /cannot record the run in .*XDG_STATE_HOME/,
    )
  })
})

describe('tables', () => {
  it("a run's summary reads as an attached run's, with its attempts", () => {
    const node = (n: number, attempt: number, exit: number, extra = {}) => ({
      node: n,
      host: n === 0 ? 'a' : 'b',
      attempt,
      ranks: [n * 2, n * 2 + 1],
      lines: 10,
      started_at: '2026-12-07T10:00:00.000Z',
      ended_at: '2026-12-07T10:00:05.000Z',
      stopped_by_fanout: false,
      last_lines: ['boom'],
      code: exit,
      exit_code: exit,
      signal: null,
      lost: null,
      result: `exited with code ${exit}`,
      ...extra,
    })
    const summary: RunSummary = {
      run_id: 'r1',
      started_at: '2026-12-07T10:00:00.000Z',
      ended_at: '2026-12-07T10:00:11.000Z',
      exit_code: 3,
      state: 'failed',
      attempts: 2,
      attempt_results: [
        { attempt: 1, exit_code: 5 },
        { attempt: 2, exit_code: 3 },
      ],
      root_cause: node(1, 2, 3, { result: 'local rank 0 exited with code 3', root_cause: true }),
      nodes: [
        node(0, 1, 5, { root_cause: true }),
        node(1, 1, 0),
        node(0, 2, 143, { code: null, signal: 'TERM', stopped_by_fanout: true }),
        node(1, 2, 3, { result: 'local rank 0 exited with code 3', root_cause: true }),
      ],
    }
    const text = formatRunSummary(summary, new Chalk({ level: 0 }))
    expect(text).toMatch(
      /^first failure: node 1 \(b\): local rank 0 exited with code 3\nlast lines it printed:\n  boom\n/,
    )
    expect(text).toMatch(/n1\s+b\s+2-3\s+local rank 0 exited with code 3 \[root cause\]\s+5\.0 s\s+10/)
    expect(text).toMatch(/n0\s+a\s+0-1\s+.*TERM.*\[stopped by fanout\]/)
    expect(text).toMatch(/attempt 1: failed, exit 5 \(first failure: node 0 \(a\): exited with code 5\)/)
    expect(text).toMatch(/attempt 2: failed, exit 3/)
    expect(text).toMatch(/run r1: failed, exit 3: node 1 \(b\) local rank 0 exited with code 3\n$/)
  })

  it('ps: one row per run, the failures explained under the table', () => {
    const row = (run: string, state: string, exit: number | null, detail: string | null): RunRow => ({
      run,
      state,
      exit_code: exit,
      detail,
      nodes: 4,
      hosts: ['a', 'b', 'c', 'd'],
      started_at: '2026-12-07T10:15:14.123Z',
      ended_at: null,
      duration_s: 3725,
      command: ['train.py', '--epochs', '3'],
    })
    const text = formatRuns([row('r2', 'running', null, null), row('r1', 'failed', 3, 'node 1 (b) exited with code 3')])
    expect(text.split('\n')[0]).toMatch(/^RUN\s+STATE\s+NODES\s+STARTED\s+DURATION\s+COMMAND$/)
    expect(text).toMatch(/r2\s+running\s+4 \(a,b,c,…\)\s+2026-12-07 10:15:14Z\s+1h02m\s+train\.py --epochs 3/)
    expect(text).toMatch(/r1\s+failed \(3\)/)
    expect(text).toMatch(/\n  r1: node 1 \(b\) exited with code 3\n$/)
    expect(formatRuns([])).toMatch(/no detached runs/)
  })
})
