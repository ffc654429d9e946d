import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { JOB } from '../../src/node/job.js'
import { readerCommand, stopperCommand, type ReaderMode } from '../../src/node/run-files.js'
import {
  readDetached,
  supervisorCommand,
  supervisorInput,
  type RunSupervisorConfig,
} from '../../src/node/run-supervisor.js'
import { ReaderParser, type NodeStatus, type ReaderMessage } from '../../src/runs/messages.js'
import { localTransport } from '../../src/transport/local.js'
import { capture } from '../../src/transport/types.js'

// The detached run's node programs (node/run-supervisor.ts, node/run-files.ts), in real Python, with two
// "nodes" on this machine (the local transport, the hub on 127.0.0.1): records, the gang rules, the
// hub's door, rotation, the reader's protocol and the stopper. The e2e suite runs them over SSH with
// torchrun (test/e2e/detach.test.ts).

const ROOT = mkdtempSync('/tmp/fanout-run-supervisor-')

/** An interpreter's version (`3.9`), or undefined when it does not run. */
const versionOf = (python: string): string | undefined => {
  try {
    return execFileSync(python, ['-S', '-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim()
  } catch {
    return undefined
  }
}

// The interpreters they run on: this machine's python3 (or FANOUT_TEST_PYTHON), and Debian 11's
// Python 3.9 (its interpreter and standard library, from the root test/cluster/debian11-root.sh builds,
// which the unit tests' global setup runs as root): the oldest Debian still serves, and torch 2.6's
// oldest. Debian 13's 3.13 runs them in the e2e suite.
const DEBIAN11 = process.env.FANOUT_DEBIAN11_ROOT ?? '/var/cache/fanout-test/debian11'
const PYTHONS: Array<{ name: string; path: string }> = []
const here = process.env.FANOUT_TEST_PYTHON || 'python3'
const hereVersion = versionOf(here)
if (hereVersion) PYTHONS.push({ name: `${here} here, ${hereVersion}`, path: here })
else if (process.env.CI || process.env.FANOUT_TEST_PYTHON)
  throw new Error(`${here} is needed for the run supervisor tests`)
if (existsSync(join(DEBIAN11, 'usr/bin/python3'))) {
  const wrapper = join(ROOT, 'python3-debian11')
  writeFileSync(wrapper, `#!/bin/sh\nPYTHONHOME=${DEBIAN11}/usr exec ${DEBIAN11}/usr/bin/python3 "$@"\n`, {
    mode: 0o755,
  })
  PYTHONS.push({ name: `Debian 11's python3, ${versionOf(wrapper) ?? 'not running'}`, path: wrapper })
} else if (process.env.CI) throw new Error(`no Debian 11 root in ${DEBIAN11} (test/cluster/debian11-root.sh builds it)`)

/** The interpreter the tests of the current describe block use. */
let python = ''

let runs = 0
const started: number[] = []

afterAll(() => {
  for (const pid of started)
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // gone already
    }
})

interface Node {
  argv: string[]
  tagged?: boolean
}

/** Starts a run of `nodes` (each a sh -c command) with its hub on 127.0.0.1; the run's directory and its supervisors. */
async function startRun(
  nodes: Node[],
  over: Partial<RunSupervisorConfig> = {},
): Promise<{ id: string; dir: string; pids: number[]; port: number; secret: string }> {
  const id = `20261207-000000-${String(++runs).padStart(6, '0')}`
  const dir = join(ROOT, id)
  const secret = `secret-${runs}`
  const config = (rank: number, hub: Partial<RunSupervisorConfig>): RunSupervisorConfig => ({
    run: id,
    node: rank,
    host: `host${rank}`,
    nodes: nodes.map((_n, k) => ({ rank: k, host: `host${k}` })),
    dir: join(dir, `n${rank}`),
    secret,
    hb: 3,
    grace: 2,
    timeout: null,
    kill_on_failure: true,
    restarts: 0,
    worker_restarts: 0,
    fresh_port: true,
    log_max: 1 << 20,
    ...over,
    ...hub,
    job: {
      program: JOB,
      cwd: '/',
      env: { FANOUT_TEST: 'a b' },
      setup: [],
      argv: (nodes[rank] as Node).argv,
      agent: false,
      tagged: (nodes[rank] as Node).tagged ?? false,
      port: 29500,
      port_argv: [],
      port_env: [],
    },
  })
  const start = async (rank: number, hub: Partial<RunSupervisorConfig>) => {
    const { stdout, stderr } = await capture(
      localTransport(),
      supervisorCommand(python, id, rank),
      supervisorInput(config(rank, hub)),
    )
    const s = readDetached(stdout)
    if (!s) throw new Error(stderr)
    started.push(s.pid)
    return s
  }
  const hub = await start(0, { hub_bind: '127.0.0.1' })
  const others = await Promise.all(
    nodes.slice(1).map((_n, k) => start(k + 1, { hub_addr: '127.0.0.1', hub_port: hub.port })),
  )
  return { id, dir, pids: [hub.pid, ...others.map((o) => o.pid)], port: hub.port, secret }
}

const sh = (text: string): string[] => ['/bin/sh', '-c', text]
const alive = (pid: number): boolean => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('fanout-run')
  } catch {
    return false
  }
}
const json = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T

async function until(ok: () => boolean, withinMs: number, what: string): Promise<void> {
  const deadline = Date.now() + withinMs
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

const ended = (run: { pids: number[] }): Promise<void> =>
  until(() => run.pids.every((p) => !alive(p)), 30_000, 'the supervisors to end')

const output = (dir: string): string =>
  readdirSync(dir)
    .filter((f) => /^output\.\d+\.log$/.test(f))
    .sort((a, b) => Number(a.split('.')[1]) - Number(b.split('.')[1]))
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('')

async function read(dir: string, mode: ReaderMode, from = { seq: 0, offset: 0 }, lines = 0): Promise<ReaderMessage[]> {
  const { stdout } = await capture(localTransport(), readerCommand(python, dir, mode, from, lines))
  return new ReaderParser().push(Buffer.from(stdout, 'latin1'))
}

interface Summary {
  exit_code: number
  state: string
  root_cause: { node: number; exit_code: number; result: string; last_lines: string[] } | null
  nodes: Array<{ node: number; exit_code: number; stopped_by_fanout: boolean; result: string }>
}

describe.each(PYTHONS)('a detached run on its nodes ($name)', ({ path }) => {
  beforeAll(() => {
    python = path
  })

  it("runs each node's job, writes its lines as records, and node 0 writes the summary", async () => {
    const run = await startRun([
      { argv: sh('echo "zero $FANOUT_TEST"; echo oops >&2') },
      { argv: sh('sleep 0.3; echo one') },
    ])
    await ended(run)
    const zero = output(join(run.dir, 'n0'))
    expect(zero).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z n0 - out zero a b$/m)
    expect(zero).toMatch(/Z n0 - err oops$/m)
    expect(zero).toMatch(/Z n0 - fanout node 1 \(host1\) joined$/m)
    expect(output(join(run.dir, 'n1'))).toMatch(/Z n1 - out one$/m)
    const summary = json<Summary>(join(run.dir, 'n0', 'summary.json'))
    expect(summary).toMatchObject({ exit_code: 0, state: 'succeeded', root_cause: null })
    expect(summary.nodes.map((n) => n.exit_code)).toEqual([0, 0])
    expect(json<{ state: string }>(join(run.dir, 'n1', 'state.json')).state).toBe('succeeded')
    // The run directory is the user's alone.
    expect(
      execFileSync('stat', ['-c', '%a', join(run.dir, 'n0'), join(run.dir, 'n0', 'output.0.log')], {
        encoding: 'utf8',
      }),
    ).toBe('700\n600\n')
  })

  it('a failing node stops the others at once; it is the root cause, with its last lines', async () => {
    const run = await startRun([
      { argv: sh('echo working; sleep 60') },
      { argv: sh('sleep 0.5; echo "bad input" >&2; exit 3') },
    ])
    const t0 = Date.now()
    await ended(run)
    // Node 0's job was stopped (SIGTERM), not waited for: well within its 60 s.
    expect(Date.now() - t0).toBeLessThan(10_000)
    const summary = json<Summary>(join(run.dir, 'n0', 'summary.json'))
    expect(summary.exit_code).toBe(3)
    expect(summary.state).toBe('failed')
    expect(summary.root_cause).toMatchObject({ node: 1, exit_code: 3, result: 'exited with code 3' })
    expect(summary.root_cause?.last_lines).toEqual(['bad input'])
    expect(summary.nodes.find((n) => n.node === 0)).toMatchObject({ stopped_by_fanout: true, exit_code: 143 })
  })

  it("demultiplexes the rank tagger's frames, and keeps a rewritten line's last state", async () => {
    const frame = (rank: number, text: string): string =>
      `\\036F${rank},0:${Buffer.byteLength(text.replace(/\\n/g, '\n'))}\\037${text}`
    const run = await startRun([
      {
        argv: sh(
          `printf '\\036S4,0:0\\037${frame(4, 'from four\\n')}${frame(5, 'half ')}untagged\\n${frame(5, 'and rest\\n')}'; printf '10%%\\r50%%\\r100%%\\n'`,
        ),
        tagged: true,
      },
    ])
    await ended(run)
    const text = output(join(run.dir, 'n0'))
    expect(text).toMatch(/Z n0 r4\/0 out from four$/m)
    expect(text).toMatch(/Z n0 r5\/0 out half and rest$/m)
    expect(text).toMatch(/Z n0 - out untagged$/m)
    expect(text).toMatch(/Z n0 - out 100%$/m)
  })

  it('the hub answers only peers that know the run secret', async () => {
    const run = await startRun([{ argv: sh('sleep 3') }])
    const said = await new Promise<string>((resolve) => {
      let got = ''
      const s = connect(run.port, '127.0.0.1', () =>
        s.write(JSON.stringify({ t: 'hello', node: 0, nonce: 'x', mac: 'bad' }) + '\n'),
      )
      s.on('data', (b) => (got += b.toString()))
      s.on('close', () => resolve(got))
      s.on('error', () => resolve(got))
    })
    // A challenge, then the door closes: no welcome, no run data.
    expect(said).toMatch(/^\{"t": "hello", "nonce": "[0-9a-f]{32}"\}\n$/)
    expect(alive(run.pids[0] as number)).toBe(true)
    await ended(run)
    expect(json<Summary>(join(run.dir, 'n0', 'summary.json')).exit_code).toBe(0)
  })

  it('the reader sends the output from an offset, the last lines, and the state; past the cap, rotation', async () => {
    const run = await startRun(
      [{ argv: sh('i=0; while [ $i -lt 10000 ]; do echo "line $i of the flood"; i=$((i+1)); done') }],
      {
        log_max: 128 * 1024,
      },
    )
    await ended(run)
    const dir = join(run.dir, 'n0')
    const segments = readdirSync(dir).filter((f) => f.startsWith('output.'))
    // 10000 records of ~55 bytes: several halves of 64 KiB, so the first segments are gone.
    expect(segments.length).toBe(2)
    expect(segments).not.toContain('output.0.log')
    const all = await read(dir, 'read')
    const state = all.find((m) => m.kind === 'state') as { status: NodeStatus }
    expect(state.status.skipped).toBeGreaterThan(0)
    expect(state.status.alive).toBe(false)
    const text = Buffer.concat(all.flatMap((m) => (m.kind === 'chunk' ? [m.data] : []))).toString()
    expect(text).toContain('line 9999 of the flood')
    expect(all[all.length - 1]?.kind).toBe('end')
    const tail = await read(dir, 'tail', undefined, 3)
    const lines = Buffer.concat(tail.flatMap((m) => (m.kind === 'chunk' ? [m.data] : [])))
      .toString()
      .trimEnd()
      .split('\n')
    expect(lines).toHaveLength(3)
    expect(lines[2]).toMatch(/fanout run .* succeeded, exit 0$/)
    const chunks = tail.filter((m) => m.kind === 'chunk')
    const last = chunks[chunks.length - 1] as { seq: number; offset: number; data: Buffer }
    // From where the tail began, nothing more than those lines.
    const rest = await read(dir, 'read', { seq: last.seq, offset: last.offset + last.data.length })
    expect(rest.some((m) => m.kind === 'chunk')).toBe(false)
    expect((await read(join(run.dir, 'nope'), 'state'))[0]?.kind).toBe('missing')
  })

  it('the stopper stops the run as Ctrl-C does, and leaves nothing', async () => {
    const run = await startRun([{ argv: sh('echo up; exec sleep 60') }, { argv: sh('exec sleep 60') }])
    await until(() => output(join(run.dir, 'n0')).includes('out up'), 10_000, 'node 0 to start')
    const stops = await Promise.all(
      [0, 1].map((k) => capture(localTransport(), stopperCommand(python, join(run.dir, `n${k}`), 10))),
    )
    for (const s of stops) expect(JSON.parse(s.stdout)).toMatchObject({ running: true, left: 0, killed: [] })
    expect(run.pids.some(alive)).toBe(false)
    const summary = json<Summary>(join(run.dir, 'n0', 'summary.json'))
    expect(summary).toMatchObject({ exit_code: 130, state: 'stopped', root_cause: null })
    expect(existsSync(join(run.dir, 'n1', 'state.json'))).toBe(true)
  })
})

describe.runIf(versionOf('python3') !== undefined)('the node programs on older Pythons', () => {
  // A node may start them with a system python3 older than its torch's: RHEL 8's is 3.6, which no
  // Debian serves any more. This machine's Python parses them with 3.6's grammar (no walrus, no
  // positional-only parameters, no match); a library call newer than 3.6 is not caught here, only
  // one newer than 3.9 is (above).
  const PRINT_PROGRAM = join(ROOT, 'print-program')
  writeFileSync(
    PRINT_PROGRAM,
    '#!/bin/sh\n# Called as PYTHON -S -c PROGRAM ARGS...: prints PROGRAM.\nprintf %s "$3"\n',
    {
      mode: 0o755,
    },
  )
  const program = async (command: string): Promise<string> => (await capture(localTransport(), command)).stdout
  const parsesAs36 = (code: string): string =>
    // This machine's python3, whatever FANOUT_TEST_PYTHON is: 3.9's ast does not refuse the walrus.
    execFileSync(
      'python3',
      ['-c', 'import ast, sys; ast.parse(sys.stdin.read(), feature_version=(3, 6)); print("ok")'],
      { input: code, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] },
    ).trim()

  it('the supervisor, the reader and the stopper parse as Python 3.6', async () => {
    const supervisor = JSON.parse(
      supervisorInput({ job: {} } as unknown as RunSupervisorConfig).split('\n')[0] as string,
    ) as string
    const reader = await program(readerCommand(PRINT_PROGRAM, '/nowhere', 'state'))
    const stopper = await program(stopperCommand(PRINT_PROGRAM, '/nowhere', 1))
    for (const [name, code] of Object.entries({ supervisor, reader, stopper })) {
      expect(code, name).toMatch(/^\s*import /)
      expect(parsesAs36(code), name).toBe('ok')
    }
    // The grammar check is real: 3.8's walrus is refused.
    expect(() => parsesAs36('if (n := 1):\n    pass\n')).toThrow()
  })
})
