import { spawn } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, expect, it } from 'vitest'
import { cluster, clusterArgs, describeCluster, fanoutEnv, runFanout, waitNoSurvivors, writeWork } from './cluster.js'
import { renderTerminal } from './terminal-emulator.js'

const BIN = fileURLToPath(new URL('../../bin/fanout.js', import.meta.url))
const hostfile = (): string => writeWork('hosts-out', 'h1\nh2\nh3\n')

// Every rank prints numbered lines with print(), which under -u writes the text and the newline
// separately: without per-rank tags, two ranks of a node interleave inside a line. Rank 0 draws a
// progress bar with \r on stderr; every rank ends with a line that has no newline.
const CHATTY = `
import os, sys, time
rank = int(os.environ["RANK"])
for i in range(20):
    print(f"rank {rank} line {i} " + "x" * 40)
print(f"rank {rank} err line", file=sys.stderr)
if rank == 0:
    for p in range(0, 101, 5):
        sys.stderr.write(f"\\rprogress {p:3d}%")
        sys.stderr.flush()
        time.sleep(0.05)
    sys.stderr.write("\\n")
sys.stdout.write(f"rank {rank} last line without newline")
`

const FAIL_ON_NODE1 = `
import os, sys, torch.distributed as dist
print(f"rank {os.environ['RANK']} starting")
if os.environ["GROUP_RANK"] == "1":
    sys.stderr.write("node 1 giving up\\n")
    sys.exit(3)
dist.init_process_group("gloo")
`

// Every rank floods both streams with numbered lines, as fast as print() goes, for argv[1] seconds,
// and ends each stream with a line that has no newline and says how many lines it printed.
const FLOOD = `
import os, sys, time
rank, end = os.environ["RANK"], time.time() + float(sys.argv[1])
i = 0
while time.time() < end:
    for _ in range(100):
        print(f"r{rank} out {i} " + "o" * (i % 50) + "x" * 100)
        print(f"r{rank} err {i}", file=sys.stderr)
        i += 1
sys.stdout.write(f"r{rank} out end {i}")
sys.stderr.write(f"r{rank} err end {i}")
`

/**
 * Checks one of fanout's streams as it arrives: every FLOOD line of every rank exactly once and in
 * order (line i of rank r must be the next one expected for r), then the rank's end line.
 */
function floodChecker(stream: 'out' | 'err') {
  const next = new Map<number, number>()
  const ended = new Map<number, number>()
  const problems: string[] = []
  let partial = ''
  let last = ''
  const line = (l: string): void => {
    const m = /^\[n\d+ n\d+ r(\d+)\][ !]+r(\d+) (out|err) (end )?(\d+)(?: (o*)x{100})?$/.exec(l)
    // the launcher's own lines (no rank in the prefix) are not the flood's
    if (!m || m[1] !== m[2] || m[3] !== stream)
      return void (/^\[n\d+ n\d+ r/.test(l) && problems.length < 10 && problems.push(`unexpected: ${l.slice(0, 200)}`))
    const rank = Number(m[1])
    const i = Number(m[5])
    if (m[4]) return void ended.set(rank, i)
    const want = next.get(rank) ?? 0
    if (i !== want || ended.has(rank) || (stream === 'out' && m[6]?.length !== i % 50)) {
      if (problems.length < 10) problems.push(`rank ${rank}: got line ${i}, expected ${want}: ${l.slice(0, 200)}`)
    }
    next.set(rank, i + 1)
  }
  return {
    stream,
    next,
    ended,
    push: (b: Buffer): void => {
      const text = partial + b.toString()
      const lines = text.split('\n')
      partial = lines.pop() ?? ''
      for (const l of lines) line(l)
      last = (last + text).slice(-3000)
    },
    errors: (): string[] => (partial ? [...problems, `unterminated: ${partial.slice(0, 200)}`] : problems),
    tail: (): string => last,
  }
}

const nodeOf = (rank: number): number => Math.floor(rank / 2)
const prefixOf = (rank: number): string => `[n${nodeOf(rank)} h${nodeOf(rank) + 1} r${rank}]`

afterEach(async () => {
  expect(await waitNoSurvivors(cluster?.hosts ?? [])).toEqual([])
})

describeCluster('output of a 3-host job (2 ranks each)', () => {
  it("non-TTY: every rank's lines whole, in order, under its own host:rank prefix; progress throttled; last partial line kept", async () => {
    writeWork('chatty.py', CHATTY)
    const run = await runFanout(['-H', hostfile(), ...clusterArgs(), '--nproc-per-node', '2', 'chatty.py'])
    expect(run.code, run.stderr).toBe(0)
    const out = run.stdout.split('\n')
    for (let rank = 0; rank < 6; rank++) {
      const mine = out.filter((l) => l.startsWith(`${prefixOf(rank)}  `))
      expect(mine, run.stdout).toEqual([
        ...Array.from({ length: 20 }, (_v, i) => `${prefixOf(rank)}  rank ${rank} line ${i} ${'x'.repeat(40)}`),
        `${prefixOf(rank)}  rank ${rank} last line without newline`,
      ])
      expect(run.stderr.split('\n')).toContain(`${prefixOf(rank)}! rank ${rank} err line`)
    }
    // 21 states were drawn in about a second: a non-TTY gets the first and the finished line, not 21.
    const progress = run.stderr.split('\n').filter((l) => l.includes('progress'))
    expect(progress).toEqual([`${prefixOf(0)}! progress   0%`, `${prefixOf(0)}! progress 100%`])
    expect(run.stderr).toMatch(/n1\s+h2\s+2-3\s+exit 0\s+[\d.]+ s\s+4\d\n/)
  })

  it("no line lost: 8 hosts × 2 ranks flooding both streams for 30 s, read by a slow consumer, arrive exactly once and in order, with fanout's memory bounded", async () => {
    writeWork('flood.py', FLOOD)
    const nodes = Array.from({ length: 8 }, (_, i) => `n${i + 1}`)
    const bin = fileURLToPath(new URL('../../bin/fanout.js', import.meta.url))
    const probe = fileURLToPath(new URL('../fixtures/memory-probe.mjs', import.meta.url))
    const report = join(cluster?.work ?? '', `memory-${Date.now()}.json`)
    const child = spawn(
      process.execPath,
      [
        '--expose-gc',
        '--import',
        probe,
        '--',
        bin,
        '-H',
        writeWork('hosts-flood', nodes.join('\n') + '\n'),
        ...clusterArgs(),
        '--nproc-per-node',
        '2',
        'flood.py',
        '30',
      ],
      { cwd: cluster?.work, env: fanoutEnv({ FANOUT_MEMORY_PROBE: report }), stdio: ['ignore', 'pipe', 'pipe'] },
    )
    // The output is far too big to keep: each stream is checked as it arrives.
    const stdout = floodChecker('out')
    const stderr = floodChecker('err')
    child.stdout.on('data', stdout.push)
    child.stderr.on('data', stderr.push)
    // A slow terminal: stdout is not read for 300 ms out of every 400.
    const slow = setInterval(() => {
      child.stdout.pause()
      setTimeout(() => child.stdout.resume(), 300)
    }, 400)
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
    clearInterval(slow)
    expect(code, stderr.tail()).toBe(0)
    for (const check of [stdout, stderr]) {
      expect(check.errors(), check.stream).toEqual([])
      // every one of the 16 ranks ended its stream, with the count of lines it printed, and that many arrived
      expect(
        [...check.ended.keys()].sort((x, y) => x - y),
        check.stream,
      ).toEqual(Array.from({ length: 16 }, (_, r) => r))
      for (const [rank, printed] of check.ended)
        expect(check.next.get(rank), `rank ${rank} ${check.stream}`).toBe(printed)
    }
    const total = [...stdout.next.values()].reduce((x, y) => x + y, 0)
    expect(total).toBeGreaterThan(16 * 10_000) // a real flood, not a trickle
    // Backpressure reaches the nodes instead of piling up here: what fanout holds alive (measured
    // after garbage collection) is a few MB per node in flight — SSH windows, stream buffers — never
    // the output itself, however long the flood. (Without shared stdout/stderr backpressure on the
    // channel it held 20 MB per node and growing.)
    const peak = JSON.parse(readFileSync(report, 'utf8')) as { arrayBuffers: number; heapUsed: number; rss: number }
    expect(peak.arrayBuffers).toBeGreaterThan(0)
    expect(peak.arrayBuffers + peak.heapUsed, JSON.stringify(peak)).toBeLessThan(100e6)
  }, 180_000)

  it('--only 0 --timestamps shows rank 0 only, while --log-dir keeps every line of every rank (0700/0600) and summary.json', async () => {
    writeWork('chatty.py', CHATTY)
    const logs = join(cluster?.work ?? '', `logs-${Date.now()}`)
    const run = await runFanout([
      '-H',
      hostfile(),
      ...clusterArgs(),
      '--nproc-per-node',
      '2',
      '--only',
      '0',
      '--timestamps',
      '--log-dir',
      logs,
      'chatty.py',
    ])
    expect(run.code, run.stderr).toBe(0)
    const jobLines = run.stdout.split('\n').filter(Boolean)
    expect(jobLines).toHaveLength(21)
    for (const l of jobLines) expect(l).toMatch(/^\d\d:\d\d:\d\d\.\d\d\d \[n0 h1 r0\]  rank 0 /)
    expect(run.stderr).not.toMatch(/ r[1-5]\]/)
    const runId = /fanout: run (\S+); logs in (\S+)/.exec(run.stderr)
    expect(runId?.[2]).toBe(join(logs, runId?.[1] ?? ''))
    const dir = runId?.[2] ?? ''
    expect(readdirSync(dir).sort()).toEqual([
      'fanout.log',
      'node0-h1.log',
      'node1-h2.log',
      'node2-h3.log',
      'summary.json',
    ])
    expect(statSync(dir).mode & 0o777).toBe(0o700)
    for (const f of readdirSync(dir)) expect(statSync(join(dir, f)).mode & 0o777, f).toBe(0o600)
    for (let rank = 0; rank < 6; rank++) {
      const file = readFileSync(join(dir, `node${nodeOf(rank)}-h${nodeOf(rank) + 1}.log`), 'utf8')
      for (const text of [
        `[r${rank}]  rank ${rank} line 0 `,
        `[r${rank}]  rank ${rank} line 19 `,
        `[r${rank}]! rank ${rank} err line`,
        `[r${rank}]  rank ${rank} last line without newline`,
      ])
        expect(file, `rank ${rank}`).toContain(text)
      expect(file).not.toContain('\x1b[')
    }
    const summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as Record<string, unknown> & {
      nodes: Array<Record<string, unknown>>
    }
    expect(summary).toMatchObject({ run_id: runId?.[1], exit_code: 0, attempts: 1, root_cause: null })
    expect(summary.nodes.map((n) => [n.node, n.host, n.ranks, n.exit_code, n.signal, n.attempt])).toEqual([
      [0, 'h1', '0-1', 0, null, 1],
      [1, 'h2', '2-3', 0, null, 1],
      [2, 'h3', '4-5', 0, null, 1],
    ])
    for (const n of summary.nodes) expect(n.lines).toBeGreaterThanOrEqual(44)
    for (const n of summary.nodes)
      expect(Date.parse(String(n.ended_at))).toBeGreaterThanOrEqual(Date.parse(String(n.started_at)))
    expect(readFileSync(join(dir, 'fanout.log'), 'utf8')).toMatch(/^\S+Z run \S+; logs in /m)
  })

  it("--only-node h3 with a custom --prefix shows only h3's lines, in that format", async () => {
    writeWork('chatty.py', CHATTY)
    const run = await runFanout([
      '-H',
      hostfile(),
      ...clusterArgs(),
      '--nproc-per-node',
      '2',
      '--only-node',
      'h3',
      '--prefix',
      '{host}:{local_rank}',
      'chatty.py',
    ])
    expect(run.code, run.stderr).toBe(0)
    const lines = run.stdout.split('\n').filter(Boolean)
    expect(lines).toHaveLength(42)
    for (const l of lines) expect(l).toMatch(/^h3:([01])  rank (4|5) /)
    expect(lines.filter((l) => l.startsWith('h3:1  rank 5 line '))).toHaveLength(20)
    expect(run.stderr).not.toMatch(/^\[n[01]|^h[12]:/m)
  })

  it('--json: start, node states, a line event for every line of every rank, an exit per node and the summary', async () => {
    writeWork('chatty.py', CHATTY)
    const run = await runFanout(['-H', hostfile(), ...clusterArgs(), '--nproc-per-node', '2', '--json', 'chatty.py'])
    expect(run.code, run.stderr).toBe(0)
    const events = run.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(events[0]).toMatchObject({
      event: 'start',
      nodes: [
        { node: 0, host: 'h1' },
        { node: 1, host: 'h2' },
        { node: 2, host: 'h3' },
      ],
    })
    for (const state of ['connected', 'probed', 'launched'])
      expect(
        events
          .filter((e) => e.event === 'node-state' && e.state === state)
          .map((e) => e.node)
          .sort(),
      ).toEqual([0, 1, 2])
    for (let rank = 0; rank < 6; rank++) {
      const lines = events
        .filter((e) => e.event === 'line' && e.rank === rank && e.stream === 'stdout')
        .map((e) => e.text)
      expect(lines).toEqual([
        ...Array.from({ length: 20 }, (_v, i) => `rank ${rank} line ${i} ${'x'.repeat(40)}`),
        `rank ${rank} last line without newline`,
      ])
      expect(
        events.find(
          (e) => e.event === 'line' && e.rank === rank && e.stream === 'stderr' && e.text === `rank ${rank} err line`,
        ),
      ).toMatchObject({ node: nodeOf(rank), local_rank: rank % 2 })
    }
    expect(
      events
        .filter((e) => e.event === 'exit')
        .map((e) => [e.node, e.exit_code, e.ranks])
        .sort(),
    ).toEqual([
      [0, 0, '0-1'],
      [1, 0, '2-3'],
      [2, 0, '4-5'],
    ])
    expect(events[events.length - 1]).toMatchObject({ event: 'summary', exit_code: 0, root_cause: null })
    for (const e of events) expect(Number.isNaN(Date.parse(String(e.time)))).toBe(false)
  })

  it('--quiet with a failing node: no job output, the root cause first, summary.json names it', async () => {
    writeWork('fail_on_node1.py', FAIL_ON_NODE1)
    const logs = join(cluster?.work ?? '', `logs-${Date.now()}`)
    const run = await runFanout([
      '-H',
      hostfile(),
      ...clusterArgs(),
      '--nproc-per-node',
      '1',
      '--grace',
      '3',
      '--quiet',
      '--log-dir',
      logs,
      'fail_on_node1.py',
    ])
    expect(run.code, run.stderr).toBe(3)
    expect(run.stdout).toBe('')
    expect(run.stderr).not.toMatch(/^\[n\d/m)
    // The root cause, then the table with its row on top.
    expect(run.stderr).toMatch(
      /first failure: node 1 \(h2\): local rank 0 exited with code 3\nlast lines it printed:\n(.*\n)*  \[r1\] node 1 giving up\n\nnode\s+host\s+ranks\s+result.*\nn1\s+h2\s+1\s+local rank 0 exited with code 3 \[root cause\]/,
    )
    const dir = join(logs, readdirSync(logs)[0] ?? '')
    const summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as {
      exit_code: number
      root_cause: Record<string, unknown>
      nodes: Array<{ node: number; exit_code: number }>
    }
    expect(summary.exit_code).toBe(3)
    expect(summary.root_cause).toMatchObject({ node: 1, host: 'h2', exit_code: 3 })
    expect(summary.nodes.find((n) => n.node === 1)?.exit_code).toBe(3)
    expect(readFileSync(join(dir, 'node1-h2.log'), 'utf8')).toContain('[r1]! node 1 giving up')
    expect(readFileSync(join(dir, 'fanout.log'), 'utf8')).toMatch(
      /node 1 \(h2\) failed: local rank 0 exited with code 3/,
    )
  })

  it("stdout and stderr redirected to files (> out 2> err): every line byte for byte, prefixed, in order, the summary after the job's lines", async () => {
    // A file is written through fs.writeSync (output/file-writer.ts), not Node's stream for it.
    const dir = mkdtempSync(join(tmpdir(), 'fanout-redirect-'))
    const [out, err] = [join(dir, 'out'), join(dir, 'err')]
    const fds = [openSync(out, 'w'), openSync(err, 'w')]
    const job =
      "seq 1 20000 | sed \"s/^/$(hostname) line /\"; printf 'caf\\303\\251 \\377\\376 raw\\n'; printf 'err \\377\\n' >&2; printf 'no newline'"
    const child = spawn(
      process.execPath,
      ['--', BIN, '--hosts', 'h1,h2', ...clusterArgs(), '--launcher', 'none', '--', 'sh', '-c', job],
      { cwd: cluster?.work, env: fanoutEnv(), stdio: ['ignore', fds[0], fds[1]] },
    )
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
    for (const fd of fds) closeSync(fd)
    const stderr = readFileSync(err).toString('latin1')
    expect(code, stderr).toBe(0)
    const stdout = readFileSync(out).toString('latin1').split('\n')
    expect(stdout.pop()).toBe('') // the file ends with a newline
    for (const [node, host] of [
      [0, 'h1'],
      [1, 'h2'],
    ] as const) {
      const prefix = new RegExp(`^\\[n${node} ${host}\\] +`)
      const mine = stdout.filter((l) => prefix.test(l)).map((l) => l.replace(prefix, ''))
      expect(mine).toEqual([
        ...Array.from({ length: 20000 }, (_v, i) => `fo-${host} line ${i + 1}`),
        'caf\xc3\xa9 \xff\xfe raw',
        'no newline',
      ])
      const errPrefix = new RegExp(`^\\[n${node} ${host}\\]! +`) // a stderr line's prefix ends in !
      expect(
        stderr
          .split('\n')
          .filter((l) => errPrefix.test(l))
          .map((l) => l.replace(errPrefix, '')),
      ).toEqual(['err \xff'])
    }
    expect(stdout).toHaveLength(2 * 20002)
    // fanout's summary comes after the job's lines on stderr, as written
    expect(stderr).toMatch(/err \xff\n[\s\S]*\nn1\s+h2\s+.*exit 0/)
  })

  it('on a TTY (a pseudo-terminal), a progress bar is one updating row, and the status rows leave nothing behind', async () => {
    writeWork('chatty.py', CHATTY)
    const bin = fileURLToPath(new URL('../../bin/fanout.js', import.meta.url))
    const command = [
      'stty cols 120 rows 40;',
      'exec',
      process.execPath,
      '--',
      bin,
      '-H',
      hostfile(),
      ...clusterArgs(),
      '--nproc-per-node',
      '2',
      'chatty.py',
    ].join(' ')
    const child = spawn('script', ['-qefc', command, '/dev/null'], {
      cwd: cluster?.work,
      env: fanoutEnv(),
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let transcript = ''
    child.stdout.on('data', (b: Buffer) => (transcript += b.toString('utf8')))
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
    expect(code, transcript).toBe(0)
    // The region was drawn (cursor up, erase) while the job ran.
    expect(transcript).toMatch(/\x1b\[\d+A\r\x1b\[J/)
    const screen = renderTerminal(transcript)
    const bars = screen.filter((l) => l.includes('progress'))
    expect(bars, screen.join('\n')).toEqual([`${prefixOf(0)}! progress 100%`])
    expect(
      screen.some((l) => /running \d+:\d\d/.test(l)),
      screen.join('\n'),
    ).toBe(false)
    for (let rank = 0; rank < 6; rank++)
      expect(screen.filter((l) => l === `${prefixOf(rank)}  rank ${rank} line 19 ${'x'.repeat(40)}`)).toHaveLength(1)
    expect(screen.some((l) => /^n2\s+h3\s+4-5\s+exit 0/.test(l))).toBe(true)
  })
})
