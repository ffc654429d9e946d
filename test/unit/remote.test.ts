import { describe, it, expect, afterEach, beforeAll, afterAll } from 'vitest'
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer, type AddressInfo } from 'node:net'
import { jobCommand, jobCommandSize, jobInput, MAX_COMMAND_BYTES, CONTROL, type JobSpec } from '../../src/node/job.js'
import {
  heldJobInput,
  heldProbeCommand,
  PROBE_END,
  probeCommand,
  probeCommandSize,
  probeInput,
  readProbeLines,
  routeCommand,
  type ProbeSpec,
} from '../../src/node/probe.js'
import { FanoutError } from '../../src/errors.js'
import { REACH_END, reachWords } from '../../src/node/reach.js'
import { wordsBlock } from '../../src/node/job.js'
import { parseProbe } from '../../src/plan/plan.js'

describe('readProbeLines', () => {
  it.each<[string, string, Record<string, string>]>([
    ['empty', '', {}],
    ['one fact', 'fanout.gpus=4\n', { gpus: '4' }],
    ['no trailing newline', 'fanout.gpus=4', { gpus: '4' }],
    ['empty value', 'fanout.ssh_connection=\n', { ssh_connection: '' }],
    [
      'value with spaces and =',
      'fanout.ssh_connection=10.0.0.5 50000 10.0.0.11 22\nfanout.x=a=b\n',
      { ssh_connection: '10.0.0.5 50000 10.0.0.11 22', x: 'a=b' },
    ],
    ['CRLF stripped', 'fanout.gpus=4\r\nfanout.python=/usr/bin/python3\r\n', { gpus: '4', python: '/usr/bin/python3' }],
    ['noise ignored', 'Welcome!\nfanout.gpus=2\nlast login\n', { gpus: '2' }],
    ['must start the line', ' fanout.gpus=2\nxfanout.gpus=3\n', {}],
    [
      'key must be lower-case letters and _',
      'fanout.GPUS=1\nfanout.a-b=1\nfanout.free_port=1\nfanout.=1\n',
      { free_port: '1' },
    ],
    ['no = is not a fact', 'fanout.gpus\n', {}],
    ['last one wins', 'fanout.gpus=1\nfanout.gpus=2\n', { gpus: '2' }],
    ['the shell prompt noise on the same line is not a fact', 'bash: warning fanout.gpus=2\n', {}],
  ])('%s', (_name, stdout, expected) => {
    expect(Object.fromEntries(readProbeLines(stdout))).toEqual(expected)
  })
})

// --- Running the real shell programs locally, the way the local transport does --------------

interface Ended {
  code: number | null
  signal: NodeJS.Signals | null
  ms: number
}

interface Started {
  child: ChildProcessWithoutNullStreams
  pid: number
  stdout: () => string
  stderr: () => string
  done: Promise<Ended>
}

const children: ChildProcessWithoutNullStreams[] = []
const timers: NodeJS.Timeout[] = []

/** `/bin/sh -c COMMAND` as leader of a new session, stdin/stdout/stderr pipes: what sshd (and the local transport) do. */
function start(command: string, env: NodeJS.ProcessEnv = process.env): Started {
  const child = spawn('/bin/sh', ['-c', command], { detached: true, stdio: ['pipe', 'pipe', 'pipe'], env })
  children.push(child)
  child.stdin.on('error', () => {})
  const out: Buffer[] = []
  const err: Buffer[] = []
  child.stdout.on('data', (b: Buffer) => out.push(b))
  child.stderr.on('data', (b: Buffer) => err.push(b))
  const t0 = Date.now()
  const done = new Promise<Ended>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, ms: Date.now() - t0 })),
  )
  const pid = child.pid
  if (pid === undefined) throw new Error('spawn failed')
  return {
    child,
    pid,
    stdout: () => Buffer.concat(out).toString('utf8'),
    stderr: () => Buffer.concat(err).toString('utf8'),
    done,
  }
}

/** Starts the job wrapper as a transport would: the command, then its set-up lines and environment on stdin. */
function startJob(spec: JobSpec, env?: NodeJS.ProcessEnv): Started {
  const p = start(jobCommand(spec), env)
  p.child.stdin.write(jobInput(spec))
  return p
}

/** Starts the probe as fanout does: the command, its set-up lines on stdin, then end of input. */
function startProbe(spec: ProbeSpec, env?: NodeJS.ProcessEnv): Started {
  const p = start(probeCommand(spec), env)
  p.child.stdin.end(probeInput(spec))
  return p
}

/** Fails if the promise takes longer than `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still running after ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

const groupAlive = (pgid: number): boolean => {
  try {
    process.kill(-pgid, 0)
    return true
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false
    throw e
  }
}

/** Waits until no process of the group is left; false if some remain after `ms`. */
async function groupGone(pgid: number, ms = 2000): Promise<boolean> {
  const deadline = Date.now() + ms
  while (groupAlive(pgid)) {
    if (Date.now() > deadline) return false
    await sleep(50)
  }
  return true
}

/** The watchdogs started for the job whose process group is `pgid` (they live in their own session). */
function watchdogsOf(pgid: number): number[] {
  if (!existsSync('/proc/self/cmdline')) return []
  const found: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue
    let cmdline: string
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'latin1')
    } catch {
      continue
    }
    if (cmdline.includes(`\0fanout-watchdog\0${pgid}\0`)) found.push(Number(entry))
  }
  return found
}

async function watchdogsGone(pgid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (watchdogsOf(pgid).length > 0) {
    if (Date.now() > deadline) return false
    await sleep(50)
  }
  return true
}

/** Writes a heartbeat every `ms` until the returned function is called. */
function heartbeat(child: ChildProcessWithoutNullStreams, ms = 500): () => void {
  const timer = setInterval(() => void (child.stdin.writable && child.stdin.write(CONTROL.heartbeat)), ms)
  timers.push(timer)
  return () => clearInterval(timer)
}

afterEach(() => {
  for (const t of timers.splice(0)) clearInterval(t)
  for (const child of children.splice(0)) {
    const pid = child.pid
    if (pid === undefined) continue
    for (const w of watchdogsOf(pid)) {
      try {
        process.kill(w, 'SIGKILL')
      } catch {}
    }
    try {
      process.kill(-pid, 'SIGKILL')
    } catch {}
    child.stdin.destroy()
  }
})

let dir: string
beforeAll(() => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), "fanout remote it's ")))
})
afterAll(() => {
  rmSync(dir, { recursive: true, force: true })
})

const job = (over: Partial<JobSpec>): JobSpec => ({
  cwd: dir,
  env: {},
  argv: ['true'],
  heartbeatTimeoutS: 5,
  graceS: 1,
  ...over,
})

describe('jobCommand: real execution through /bin/sh', () => {
  it('enters the directory, exports the env and passes argv byte for byte', async () => {
    const p = startJob(
      job({
        env: { A: 'x y', B: "it's $HOME\n", C: '', D: 'a=b=c', E: '$(touch pwned)`id`' },
        argv: [
          '/bin/sh',
          '-c',
          'pwd; printf "%s|" "$A" "$B" "$C" "$D" "$E"; printf "%s\\0" "$@"',
          'sh',
          'a b',
          '$(x)',
          '',
          "'",
          '--',
          '~',
          'é😀',
          'tab\there',
          'nl\n',
        ],
      }),
    )
    const end = await within(p.done, 5000, 'job')
    expect(p.stderr()).toBe('')
    expect(p.stdout()).toBe(
      `${dir}\nx y|it's $HOME\n||a=b=c|$(touch pwned)\`id\`|a b\0$(x)\0\0'\0--\0~\0é😀\0tab\there\0nl\n\0`,
    )
    expect(end).toMatchObject({ code: 0, signal: null })
    expect(existsSync(join(dir, 'pwned'))).toBe(false)
    expect(await groupGone(p.pid)).toBe(true)
    // The job is over: EOF lets its watchdog go at once instead of at its next heartbeat timeout.
    p.child.stdin.end()
    expect(await watchdogsGone(p.pid, 2000)).toBe(true)
  })

  it('the launcher keeps the wrapper pid and leads its process group', async () => {
    const p = startJob(job({ argv: ['/bin/sh', '-c', 'echo "$$ $(ps -o pgid= -p $$ | tr -d " ")"'] }))
    const end = await within(p.done, 5000, 'job')
    expect(end.code).toBe(0)
    expect(p.stdout()).toBe(`${p.pid} ${p.pid}\n`)
  })

  it('passes the job exit code through', async () => {
    const p = startJob(job({ argv: ['/bin/sh', '-c', 'echo out; echo err >&2; exit 42'] }))
    const end = await within(p.done, 5000, 'job')
    expect(end).toMatchObject({ code: 42, signal: null })
    expect(p.stdout()).toBe('out\n')
    expect(p.stderr()).toBe('err\n')
  })

  it.each([
    ['does not exist', () => join(dir, 'no such dir')],
    ['with shell characters', () => join(dir, 'missing $(id) `x`; *')],
  ])('a working directory that %s: exit 1, stderr names it', async (_name, cwdOf) => {
    const cwd = cwdOf()
    const p = startJob(job({ cwd, argv: ['/bin/sh', '-c', 'echo should not run'] }))
    const end = await within(p.done, 5000, 'job')
    expect(end).toMatchObject({ code: 1, signal: null })
    expect(p.stdout()).toBe('')
    expect(p.stderr()).toContain(cwd)
    expect(p.stderr()).toMatch(/does not exist/)
    expect(await groupGone(p.pid)).toBe(true)
    expect(watchdogsOf(p.pid)).toEqual([])
  })

  it('a command that is not found exits 127', async () => {
    const p = startJob(job({ argv: ['definitely-not-a-command-fanout', 'x'] }))
    const end = await within(p.done, 5000, 'job')
    expect(end.code).toBe(127)
  })
})

describe('jobCommand: the watchdog', () => {
  it('no heartbeat: the job is stopped after the heartbeat timeout', async () => {
    const p = startJob(job({ argv: ['sleep', '30'], heartbeatTimeoutS: 2, graceS: 1 }))
    await sleep(500)
    expect(watchdogsOf(p.pid)).toHaveLength(existsSync('/proc/self/cmdline') ? 1 : 0)
    const end = await within(p.done, 4000, 'job without heartbeats')
    expect(end.signal).toBe('SIGTERM')
    expect(end.ms).toBeGreaterThanOrEqual(1500)
    expect(await groupGone(p.pid)).toBe(true)
    expect(await watchdogsGone(p.pid, 2000)).toBe(true)
  }, 10_000)

  it('heartbeats keep the job alive; when they stop, the job is stopped', async () => {
    const p = startJob(job({ argv: ['sleep', '30'], heartbeatTimeoutS: 2, graceS: 1 }))
    const stop = heartbeat(p.child, 500)
    const early = await Promise.race([p.done, sleep(3500).then(() => 'running' as const)])
    expect(early).toBe('running')
    stop()
    const end = await within(p.done, 4000, 'job after heartbeats stopped')
    expect(end.signal).toBe('SIGTERM')
    expect(end.ms).toBeGreaterThanOrEqual(3500)
    expect(await groupGone(p.pid)).toBe(true)
  }, 12_000)

  it('EOF on stdin (coordinator gone): the job is stopped at once', async () => {
    const p = startJob(job({ argv: ['sleep', '30'], heartbeatTimeoutS: 10, graceS: 1 }))
    await sleep(200)
    p.child.stdin.end()
    const end = await within(p.done, 2000, 'job after EOF')
    expect(end.signal).toBe('SIGTERM')
    expect(await groupGone(p.pid)).toBe(true)
    expect(await watchdogsGone(p.pid, 2000)).toBe(true)
  }, 10_000)

  it('the whole process group is stopped, not only the launcher', async () => {
    // The launcher forks workers (as torchrun does); none may survive it.
    const p = startJob(
      job({ argv: ['/bin/sh', '-c', 'sleep 30 & sleep 30 & echo started; wait'], heartbeatTimeoutS: 10, graceS: 1 }),
    )
    await sleep(300)
    p.child.stdin.end()
    await within(p.done, 3000, 'job after EOF')
    expect(await groupGone(p.pid)).toBe(true)
  }, 10_000)

  it('I: the job gets SIGINT and may handle it (trap, exit 7)', async () => {
    const p = startJob(
      job({
        argv: ['/bin/sh', '-c', 'trap "echo got INT; exit 7" INT; echo ready; while :; do sleep 0.1; done'],
        heartbeatTimeoutS: 2,
        graceS: 1,
      }),
    )
    heartbeat(p.child, 500)
    await sleep(1000)
    expect(p.stdout()).toBe('ready\n')
    p.child.stdin.write(CONTROL.interrupt)
    const end = await within(p.done, 3000, 'job after I')
    expect(p.stdout()).toBe('ready\ngot INT\n')
    expect(end).toMatchObject({ code: 7, signal: null })
    expect(await groupGone(p.pid)).toBe(true)
  }, 10_000)

  it.each<[string, string, NodeJS.Signals]>([
    ['interrupt', CONTROL.interrupt, 'SIGINT'],
    ['terminate', CONTROL.terminate, 'SIGTERM'],
    ['kill', CONTROL.kill, 'SIGKILL'],
  ])(
    'control byte for %s (%j) → %s',
    async (_name, byte, signal) => {
      const p = startJob(job({ argv: ['sleep', '30'], heartbeatTimeoutS: 5, graceS: 1 }))
      heartbeat(p.child, 500)
      await sleep(300)
      p.child.stdin.write(byte)
      const end = await within(p.done, 2000, `job after ${byte}`)
      expect(end.signal).toBe(signal)
      expect(await groupGone(p.pid)).toBe(true)
    },
    10_000,
  )

  it('a job that ignores SIGTERM is killed after the grace period', async () => {
    const p = startJob(
      job({ argv: ['/bin/sh', '-c', 'trap "" TERM; while :; do sleep 0.1; done'], heartbeatTimeoutS: 10, graceS: 1 }),
    )
    await sleep(300)
    p.child.stdin.end()
    const end = await within(p.done, 4000, 'job ignoring TERM')
    expect(end.signal).toBe('SIGKILL')
    expect(end.ms).toBeGreaterThanOrEqual(1000)
    expect(await groupGone(p.pid)).toBe(true)
  }, 10_000)

  it('a group left with only a zombie (an orphan init has not collected yet) counts as empty: the watchdog goes at once', async () => {
    // The zombie's parent leaves the group and never collects it, as a late init would not; kill -0
    // still finds the group, so a watchdog trusting it alone would wait out the whole grace.
    const pidFile = join(dir, 'zombie-parent.pid')
    const holder =
      'import os, time\nif os.fork() == 0:\n    os._exit(0)\nos.setpgid(0, 0)\nopen(os.environ["PIDFILE"], "w").write(str(os.getpid()))\ntime.sleep(30)\n'
    const p = startJob(
      job({
        env: { PIDFILE: pidFile },
        // Ends once the holder wrote its pid (it has left the group by then): a fixed sleep lost that race on a busy machine.
        argv: [
          '/bin/sh',
          '-c',
          'python3 -c "$0" >/dev/null 2>&1 & until [ -s "$PIDFILE" ]; do sleep 0.05; done',
          holder,
        ],
        heartbeatTimeoutS: 10,
        graceS: 5,
      }),
    )
    await within(p.done, 3000, 'job')
    const parent = Number(readFileSync(pidFile, 'utf8'))
    try {
      expect(groupAlive(p.pid)).toBe(true)
      p.child.stdin.end()
      expect(await watchdogsGone(p.pid, 1500)).toBe(true)
    } finally {
      process.kill(parent, 'SIGKILL')
    }
  }, 10_000)

  it('a member left running after the launcher ended is still stopped, and killed after the grace', async () => {
    const p = startJob(
      job({
        argv: ['/bin/sh', '-c', '(trap "" TERM; while :; do sleep 0.1; done) >/dev/null 2>&1 & exit 0'],
        heartbeatTimeoutS: 10,
        graceS: 1,
      }),
    )
    await within(p.done, 3000, 'job')
    p.child.stdin.end()
    await sleep(600)
    expect(groupAlive(p.pid)).toBe(true)
    expect(await groupGone(p.pid, 3000)).toBe(true)
    expect(await watchdogsGone(p.pid, 2000)).toBe(true)
  }, 10_000)

  // A stand-in for torchrun's agent: it ignores SIGTERM and SIGINT (as torch's agent does while blocked
  // in a store call) and keeps a worker as its child; the worker obeys SIGTERM unless STUBBORN is set,
  // and says it is ready once it has chosen. With ORPHAN, a member of the group that is not its child
  // (its parent gone) ignores SIGTERM too. With SESSION, the worker runs in a session of its own, as
  // torch 2.x starts them. A SIGURG makes the worker say so (fanout's request for stacks).
  // The interpreter itself, by path: a version manager's python3 (pyenv's shim) would lead the group instead.
  const AGENT = [
    'import os, signal, subprocess, sys, time',
    'for s in (signal.SIGTERM, signal.SIGINT): signal.signal(s, signal.SIG_IGN)',
    'worker = "import signal, time\\nif %r: signal.signal(signal.SIGTERM, signal.SIG_IGN)\\nsignal.signal(signal.SIGURG, lambda n, f: print(\'stacks\', flush=True))\\nprint(\'ready\', flush=True)\\nwhile True: time.sleep(60)" % bool(os.environ.get("STUBBORN"))',
    'if os.environ.get("ORPHAN"): subprocess.run(["/bin/sh", "-c", "(trap \\"\\" TERM; exec sleep 30) >/dev/null 2>&1 &"])',
    // Out of the group, such a worker goes with its agent as fanout's rank tagger makes it (PR_SET_PDEATHSIG).
    'import ctypes',
    'def child(): [signal.signal(s, signal.SIG_DFL) for s in (signal.SIGTERM, signal.SIGINT)]; ctypes.CDLL(None).prctl(1, signal.SIGKILL)',
    'w = subprocess.Popen([sys.executable, "-c", worker], preexec_fn=child, start_new_session=bool(os.environ.get("SESSION")))',
    'w.wait()',
    'time.sleep(60)',
  ].join('\n')
  const agentJob = (over: Partial<JobSpec> = {}): JobSpec =>
    job({ argv: ['/usr/bin/python3', '-c', AGENT], heartbeatTimeoutS: 10, graceS: 10, agent: true, ...over })
  const ready = async (p: Started): Promise<void> => {
    for (let i = 0; i < 100 && !p.stdout().includes('ready'); i++) await sleep(50)
    expect(p.stdout()).toBe('ready\n')
  }
  // Starts the stand-in agent (with heartbeats every `beatMs`, if given), runs `stop` once its worker
  // is ready, and returns how long after that the agent was killed with SIGKILL, its group then gone.
  const msUntilAgentKilled = async (
    stop: (p: Started) => Promise<void> | void,
    beatMs?: number,
  ): Promise<{ p: Started; ms: number }> => {
    const p = startJob(agentJob())
    if (beatMs !== undefined) heartbeat(p.child, beatMs)
    await ready(p)
    const sent = Date.now()
    await stop(p)
    expect((await within(p.done, 5000, 'idle agent')).signal).toBe('SIGKILL')
    const ms = Date.now() - sent
    expect(await groupGone(p.pid)).toBe(true)
    return { p, ms }
  }

  it.each([
    ['T', CONTROL.terminate],
    ['I', CONTROL.interrupt],
  ])(
    '%s to an agent (torchrun) whose workers are then gone: the agent is killed 2–3 s later, not after the grace',
    async (_name, byte) => {
      const { ms } = await msUntilAgentKilled((p) => void p.child.stdin.write(byte), 500)
      expect(ms).toBeGreaterThanOrEqual(1900)
    },
    12_000,
  )

  it('an idle agent is killed alone: a member of the group that is not its worker keeps its grace', async () => {
    const p = startJob(agentJob({ env: { ORPHAN: '1' }, graceS: 2 }))
    heartbeat(p.child, 500)
    await ready(p)
    p.child.stdin.write(CONTROL.terminate)
    expect((await within(p.done, 5000, 'idle agent')).signal).toBe('SIGKILL')
    await sleep(500)
    expect(groupAlive(p.pid)).toBe(true)
    p.child.stdin.end()
    expect(await groupGone(p.pid, 4000)).toBe(true)
  }, 12_000)

  it.each<[string, Partial<JobSpec>]>([
    ['the same launcher, not an agent (--launcher none): it keeps the whole grace', { agent: false }],
    [
      'an agent whose worker still runs (it handles SIGTERM slowly): left alone until the grace',
      { env: { STUBBORN: '1' } },
    ],
    [
      'an agent whose worker still runs in a session of its own (torch 2.x): left alone until the grace too',
      { env: { STUBBORN: '1', SESSION: '1' } },
    ],
  ])(
    '%s',
    async (_name, over) => {
      const p = startJob(agentJob(over))
      heartbeat(p.child, 500)
      await ready(p)
      p.child.stdin.write(CONTROL.terminate)
      const early = await Promise.race([p.done, sleep(3000).then(() => 'running' as const)])
      expect(early).toBe('running')
      p.child.stdin.write(CONTROL.kill)
      expect((await within(p.done, 2000, 'job after K')).signal).toBe('SIGKILL')
    },
    12_000,
  )

  it('EOF (coordinator gone) with an agent whose workers are then gone: killed after about 2 s, not the grace', async () => {
    const { p, ms } = await msUntilAgentKilled((p) => void p.child.stdin.end())
    expect(ms).toBeGreaterThanOrEqual(1900)
    expect(await watchdogsGone(p.pid, 2000)).toBe(true)
  }, 12_000)

  it("T, then EOF before the agent's 2 s are up: EOF does not restart them (killed about 2 s after T, not 2 s after EOF)", async () => {
    const { ms } = await msUntilAgentKilled(async (p) => {
      p.child.stdin.write(CONTROL.terminate)
      await sleep(1500)
      p.child.stdin.end()
    }, 250)
    // The worker is gone at once and seen so within a heartbeat: killed by ~2.3 s; a restart at EOF would make it >= 3.5 s.
    expect(ms).toBeLessThan(3100)
  }, 12_000)

  it.each([
    ['in the group', {}],
    ['in a session of its own (torch 2.x)', { SESSION: '1' }],
  ])(
    "S: the agent's workers (%s) get SIGURG, and go on; nothing else is signalled",
    async (_name, env) => {
      const p = startJob(agentJob({ env }))
      heartbeat(p.child, 500)
      await ready(p)
      p.child.stdin.write(CONTROL.stacks)
      for (let i = 0; i < 60 && !p.stdout().includes('stacks'); i++) await sleep(50)
      expect(p.stdout()).toBe('ready\nstacks\n')
      expect(p.child.exitCode).toBeNull()
      p.child.stdin.write(CONTROL.kill)
      expect((await within(p.done, 2000, 'job after K')).signal).toBe('SIGKILL')
    },
    12_000,
  )

  it('heartbeats do nothing to the job', async () => {
    const p = startJob(job({ argv: ['/bin/sh', '-c', 'sleep 1.5; echo done'], heartbeatTimeoutS: 2, graceS: 1 }))
    heartbeat(p.child, 100)
    const end = await within(p.done, 4000, 'job')
    expect(end).toMatchObject({ code: 0, signal: null })
    expect(p.stdout()).toBe('done\n')
  }, 10_000)
})

describe('probeCommand: pre-flight facts and set-up steps', () => {
  const run = async (spec: Parameters<typeof probeCommand>[0]): Promise<{ stdout: string; stderr: string }> => {
    const p = startProbe(spec)
    await within(p.done, 8000, 'probe')
    return { stdout: p.stdout(), stderr: p.stderr() }
  }
  it('finds the directory and the script, and reports what is missing', async () => {
    writeFileSync(join(dir, 'train.py'), '')
    expect(
      parseProbe(
        (await run({ python: 'no-such-python', wantPort: false, cwd: dir, script: 'train.py' })).stdout,
        false,
      ),
    ).toMatchObject({ cwd: true, script: true })
    expect(
      parseProbe((await run({ python: 'no-such-python', wantPort: false, cwd: dir, script: 'nope.py' })).stdout, false),
    ).toMatchObject({ cwd: true, script: false })
    expect(
      parseProbe((await run({ python: 'no-such-python', wantPort: false, cwd: join(dir, 'missing') })).stdout, false),
    ).toMatchObject({ cwd: false })
  }, 10_000)
  it('runs set-up steps first, in one shell (exports reach later steps), source works in sh', async () => {
    writeFileSync(join(dir, 'activate'), 'export FANOUT_SETUP_SEEN=yes\n')
    const { stdout, stderr } = await run({
      python: 'no-such-python',
      wantPort: false,
      cwd: dir,
      setup: [`source "${join(dir, 'activate')}"`, 'echo "setup says $FANOUT_SETUP_SEEN"', 'false', 'echo never'],
    })
    expect(parseProbe(stdout, false).setupFailed).toEqual({ step: 3, code: 1 })
    expect(stderr).toContain('setup says yes')
    expect(stderr).not.toContain('never')
  }, 10_000)
  it('with the real python3: versions, and whether a port is free', async () => {
    const facts = parseProbe((await run({ python: 'python3', wantPort: true, cwd: dir, port: 1 })).stdout, false)
    expect(facts.pythonVersion).toMatch(/^3\.\d+\.\d+$/)
    expect(typeof facts.portFree).toBe('boolean')
  }, 10_000)
  it('with the real python3, a free port: one that binds, and a port in use is told', async () => {
    const facts = parseProbe(
      (await run({ python: '/usr/bin/python3', wantPort: true, cwd: dir, torch: false })).stdout,
      false,
    )
    expect(facts.freePort).toBeGreaterThan(0)
    const busy = createServer()
    await new Promise<void>((r) => busy.listen(0, '0.0.0.0', r))
    try {
      const port = (busy.address() as AddressInfo).port
      expect(
        parseProbe(
          (await run({ python: '/usr/bin/python3', wantPort: false, cwd: dir, torch: false, port })).stdout,
          false,
        ).portFree,
      ).toBe(false)
    } finally {
      busy.close()
    }
  }, 10_000)
  // torch's version is read from its version.py without importing torch, or re: a fake torch package shows each form.
  it.each<[string, string, string]>([
    ['single quotes', "__version__ = '2.1.0+cu121'\n", '2.1.0+cu121'],
    ['double quotes, no spaces', '__version__="1.13.0a0"\n', '1.13.0a0'],
    [
      'named in __all__ first',
      "from typing import Optional\n__all__ = ['__version__', 'debug']\n__version__ = '2.4.0'\ngit_version = 'abc'\n",
      '2.4.0',
    ],
    ['a tab before =', "__version__\t= '2.0.1'\n", '2.0.1'],
    ['not a literal', '__version__ = get_version()\n', ''],
  ])(
    'with the real python3, torch found on its path: version.py with %s',
    async (_name, text, version) => {
      const site = mkdtempSync(join(dir, 'site-'))
      mkdirSync(join(site, 'torch'))
      writeFileSync(join(site, 'torch', '__init__.py'), 'raise SystemExit("the probe must not import torch")\n')
      writeFileSync(join(site, 'torch', 'version.py'), text)
      const p = startProbe(
        { python: '/usr/bin/python3', wantPort: false, cwd: dir, torch: true },
        { ...process.env, PYTHONPATH: site },
      )
      await within(p.done, 8000, 'probe')
      const lines = readProbeLines(p.stdout())
      expect(lines.get('torch')).toBe('yes')
      expect(lines.get('torch_version')).toBe(version)
      expect(lines.get('python_version')).toMatch(/^3\.\d+\.\d+$/)
    },
    10_000,
  )
})

describe('probeCommand: real execution through /bin/sh', () => {
  let bin: string
  beforeAll(() => {
    bin = join(dir, 'bin dir')
    mkdirSync(bin, { recursive: true })
    // nvidia-smi's two queries: $FAKE_GPUS GPUs, and the processes $FAKE_APPS names (`UUID, PID, MiB` lines);
    // and a "python" answering the probe's two questions.
    writeFileSync(
      join(bin, 'nvidia-smi'),
      [
        '#!/bin/sh',
        'case $1 in',
        '  --query-gpu=index,uuid,memory.used,memory.total) i=0; while [ "$i" -lt "${FAKE_GPUS:-0}" ]; do echo "$i, GPU-$i, 0, 81559"; i=$((i + 1)); done ;;',
        '  --query-compute-apps=gpu_uuid,pid,used_memory) [ -z "$FAKE_APPS" ] || printf "%s\\n" "$FAKE_APPS" ;;',
        '  *) exit 1 ;;',
        'esac',
      ].join('\n') + '\n',
    )
    writeFileSync(
      join(bin, "py'thon"),
      // Called as PYTHON [-S] -c PROGRAM TORCH WANT_PORT PORT (see PYTHON_PROBE); -S only without the torch lookup.
      '#!/bin/sh\n[ "$1" = -S ] && { echo no-site >&2; shift; }\nshift 2\n[ "$1" = 1 ] && echo fanout.torch=yes\n[ "$2" = 1 ] && echo fanout.free_port=12345\nexit 0\n',
    )
    chmodSync(join(bin, 'nvidia-smi'), 0o755)
    chmodSync(join(bin, "py'thon"), 0o755)
  })

  const baseEnv = (): NodeJS.ProcessEnv => {
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` }
    for (const k of ['SSH_CONNECTION', 'CUDA_VISIBLE_DEVICES', 'GLOO_SOCKET_IFNAME', 'NCCL_SOCKET_IFNAME', 'FAKE_GPUS'])
      delete env[k]
    return env
  }

  async function probe(python: string, wantPort: boolean, env: NodeJS.ProcessEnv, torch = true): Promise<string> {
    const p = startProbe({ python, wantPort, cwd: dir, torch }, env)
    const end = await within(p.done, 8000, 'probe')
    expect(end).toMatchObject({ code: 0, signal: null })
    return p.stdout()
  }

  it.each<[string, boolean, boolean, Record<string, unknown>]>([
    // --launcher none: no torch lookup (no Python start), but node 0 still finds a port with it
    ['--launcher none, node 0', false, true, { python: expect.stringContaining('py'), freePort: 12345 }],
    ['--launcher none, other nodes: Python is not run at all', false, false, { python: expect.stringContaining('py') }],
    ['torchrun, other nodes', true, false, { python: expect.stringContaining('py'), torch: true }],
  ])('%s', async (_name, torch, wantPort, expected) => {
    const stdout = await probe(join(bin, "py'thon"), wantPort, baseEnv(), torch)
    const facts = parseProbe(stdout, false)
    expect(facts).toMatchObject(expected)
    if (!torch) expect(facts.torch).toBeUndefined()
    if (!wantPort) expect(facts.freePort).toBeUndefined()
  })

  it.each<[string, Partial<ProbeSpec>, string[]]>([
    [
      'torch, a free port and a port to check: one start, with site-packages',
      { torch: true, wantPort: true, port: 29500 },
      ['-c 1 1 29500'],
    ],
    ['--launcher none, node 0: one start without site (-S)', { torch: false, wantPort: true }, ['-S -c 0 1 ']],
    ['--launcher none, other nodes: none', { torch: false, wantPort: false }, []],
  ])('starts Python at most once: %s', async (_name, over, calls) => {
    const log = join(dir, `python calls ${calls.length} ${Object.keys(over).join('')}`)
    const python = join(bin, 'counting-python')
    writeFileSync(
      python,
      `#!/bin/sh\n[ "$1" = -S ] && { s='-S '; shift; }\nshift\nprintf '%s-c %s %s %s\\n' "$s" "$2" "$3" "$4" >>"$FANOUT_PY_LOG"\n`,
    )
    chmodSync(python, 0o755)
    const p = startProbe({ python, wantPort: false, cwd: dir, ...over }, { ...baseEnv(), FANOUT_PY_LOG: log })
    expect(await within(p.done, 8000, 'probe')).toMatchObject({ code: 0 })
    expect(existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []).toEqual(calls)
  })

  it('names the route to the expected master when asked (routeTo), and only then', async () => {
    const run = async (routeTo?: string): Promise<string> => {
      const p = startProbe(
        { python: join(bin, "py'thon"), wantPort: false, cwd: dir, torch: false, ...(routeTo ? { routeTo } : {}) },
        baseEnv(),
      )
      expect(await within(p.done, 8000, 'probe')).toMatchObject({ code: 0 })
      return p.stdout()
    }
    expect(parseProbe(await run('127.0.0.1'), false).routeIface).toBe('lo')
    expect(parseProbe(await run(), false).routeIface).toBeUndefined()
  })

  it('reports the SSH connection, GPUs narrowed by CUDA_VISIBLE_DEVICES, ifnames, python, torch and a port', async () => {
    const env = {
      ...baseEnv(),
      SSH_CONNECTION: '10.0.0.5 50000 10.0.0.11 22',
      CUDA_VISIBLE_DEVICES: '0,1',
      GLOO_SOCKET_IFNAME: 'eth9',
      FAKE_GPUS: '4',
    }
    const python = join(bin, "py'thon")
    const stdout = await probe(python, true, env)
    expect(parseProbe(stdout, true)).toEqual({
      remote: true,
      gpus: 2,
      cudaVisibleDevices: '0,1',
      gpuList: [0, 1, 2, 3].map((index) => ({ index, uuid: `GPU-${index}`, memoryUsed: 0, memoryTotal: 81559 })),
      gpuProcesses: [],
      clientAddr: '10.0.0.5',
      serverAddr: '10.0.0.11',
      python,
      torch: true,
      freePort: 12345,
      cwd: true,
      presetIfnames: { GLOO_SOCKET_IFNAME: 'eth9' },
    })
  }, 10_000)

  it('without SSH, CUDA_VISIBLE_DEVICES or python: only the GPU count', async () => {
    const stdout = await probe('no-such-python-fanout', true, { ...baseEnv(), FAKE_GPUS: '3' })
    const raw = Object.fromEntries(readProbeLines(stdout))
    expect(raw).toEqual({
      ssh_connection: '',
      cuda_visible_devices: '<unset>',
      gloo_socket_ifname: '',
      nccl_socket_ifname: '',
      gpu: '2, GPU-2, 0, 81559',
      gpus: '3',
      cwd: 'ok',
    })
    expect(parseProbe(stdout, false)).toEqual({
      remote: false,
      gpus: 3,
      cwd: true,
      presetIfnames: {},
      gpuList: [0, 1, 2].map((index) => ({ index, uuid: `GPU-${index}`, memoryUsed: 0, memoryTotal: 81559 })),
      gpuProcesses: [],
    })
  }, 10_000)

  it("reads what holds the GPUs: nvidia-smi's compute apps, with the owner and command ps gives for each pid", async () => {
    // This test's own process is the "holder" of GPU 1 (ps can see it); pid 999999999 is one ps cannot.
    const apps = `GPU-1, ${process.pid}, 30000\nGPU-0, 999999999, [N/A]\nNo running processes found`
    const stdout = await probe('no-such-python-fanout', false, { ...baseEnv(), FAKE_GPUS: '2', FAKE_APPS: apps })
    const facts = parseProbe(stdout, false)
    expect(facts.gpuProcesses).toEqual([
      {
        gpuUuid: 'GPU-1',
        pid: process.pid,
        memory: 30000,
        user: expect.stringMatching(/\S/),
        command: expect.stringContaining('node'),
      },
      { gpuUuid: 'GPU-0', pid: 999999999 },
    ])
  }, 10_000)

  it.each<[string, string, number]>([
    ['a blank line, no newline at the end', '0, GPU-0, 1, 2\n\n1, GPU-1, 1, 2', 2],
    ['an error instead of a list', 'No devices were found\n', 0],
    ['nothing at all', '', 0],
    ['only lines that start with an index count', 'x0, GPU-0\n 1, GPU-1\n2, GPU-2, 0, 1\nNVIDIA-SMI has failed\n', 1],
  ])(
    'counts the GPUs nvidia-smi --query-gpu lists: %s',
    async (_name, listing, gpus) => {
      const odd = join(dir, `odd nvidia ${gpus} ${listing.length}`)
      mkdirSync(odd, { recursive: true })
      writeFileSync(join(odd, 'listing'), listing)
      writeFileSync(
        join(odd, 'nvidia-smi'),
        `#!/bin/sh\ncase $1 in --query-gpu=*) cat "${join(odd, 'listing')}" ;; esac\n`,
      )
      chmodSync(join(odd, 'nvidia-smi'), 0o755)
      const stdout = await probe('no-such-python-fanout', false, {
        ...baseEnv(),
        PATH: `${odd}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      })
      expect(readProbeLines(stdout).get('gpus')).toBe(String(gpus))
    },
    10_000,
  )

  it('no free port is asked for unless wanted; CUDA_VISIBLE_DEVICES="" hides every GPU', async () => {
    const stdout = await probe(join(bin, "py'thon"), false, { ...baseEnv(), FAKE_GPUS: '8', CUDA_VISIBLE_DEVICES: '' })
    const facts = parseProbe(stdout, false)
    expect(facts.freePort).toBeUndefined()
    expect(facts.torch).toBe(true)
    expect(facts.gpus).toBe(0)
  }, 10_000)

  // Outside CI without a python3: skipped; under CI (.ci/run installs python3-torch) a missing one fails.
  it.skipIf(
    !process.env.CI &&
      !existsSync('/usr/bin/python3') &&
      !process.env.PATH?.split(':').some((d) => existsSync(join(d, 'python3'))),
  )(
    'with the real python3, the free port is a port number',
    async () => {
      const stdout = await probe('python3', true, baseEnv())
      const facts = parseProbe(stdout, false)
      expect(facts.python).toMatch(/python3$/)
      expect(typeof facts.torch).toBe('boolean')
      expect(facts.freePort).toBeGreaterThanOrEqual(1)
      expect(facts.freePort).toBeLessThanOrEqual(65535)
    },
    15_000,
  )
})

describe('heldProbeCommand: the probe, then the job it is sent on stdin, in one session', () => {
  const END = `${PROBE_END}\n`
  /** Starts a held probe as fanout does (its set-up lines on stdin) and waits until both streams end with the marker. */
  async function startHeld(spec: ProbeSpec): Promise<Started> {
    const p = start(heldProbeCommand(spec))
    p.child.stdin.write(probeInput(spec))
    await within(
      (async () => {
        while (!p.stdout().endsWith(END) || !p.stderr().endsWith(END)) await sleep(20)
      })(),
      8000,
      'held probe',
    )
    return p
  }
  const probeSpec = (over: Partial<ProbeSpec> = {}): ProbeSpec => ({
    python: 'python3',
    wantPort: true,
    cwd: dir,
    torch: false,
    ...over,
  })

  it('prints what the plain probe prints, marks its end on stdout and stderr, and waits', async () => {
    const spec = probeSpec({ setup: ['echo "set-up output" >&2'] })
    const plain = startProbe(spec)
    await within(plain.done, 8000, 'probe')
    const p = await startHeld(spec)
    const facts = (out: string): Record<string, string> => {
      const all = Object.fromEntries(readProbeLines(out))
      delete all.free_port // a fresh port each time
      return all
    }
    expect(facts(p.stdout())).toEqual(facts(plain.stdout()))
    expect(readProbeLines(p.stdout()).get('free_port')).toMatch(/^\d+$/)
    expect(p.stderr()).toBe(`set-up output\n${END}`)
    await sleep(300)
    expect(p.child.exitCode).toBeNull() // still waiting for the job
  }, 15_000)

  it('runs the job it is sent as the wrapper would: argv and env byte for byte, set-up steps once, the same pid leading its group', async () => {
    const setup = ['export COUNT=$((COUNT + 1))', 'alias exec=false']
    const p = await startHeld(probeSpec({ setup }))
    const argv = [
      '/bin/sh',
      '-c',
      'echo "$$ $(ps -o pgid= -p $$ | tr -d " ") $COUNT|$A|$(pwd)"; printf "%s\\0" "$@"',
      'sh',
      'a b',
      '$(x)',
      '',
      "'",
      'nl\n',
      '--',
    ]
    p.child.stdin.write(heldJobInput(job({ env: { A: "it's\n$HOME" }, setup, argv })))
    const stop = heartbeat(p.child)
    expect(await within(p.done, 5000, 'job')).toMatchObject({ code: 0, signal: null })
    stop()
    expect(p.stdout().slice(p.stdout().indexOf(END) + END.length)).toBe(
      `${p.pid} ${p.pid} 1|it's\n$HOME|${dir}\na b\0$(x)\0\0'\0nl\n\0--\0`,
    )
    expect(p.stderr()).toBe(END)
    p.child.stdin.end()
    expect(await watchdogsGone(p.pid, 2000)).toBe(true)
  }, 15_000)

  it('runs the reachability check it is sent (node/reach.ts) and marks its end, then still runs the job', async () => {
    const server = createServer((c) => c.end())
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as AddressInfo).port
    try {
      const p = await startHeld(probeSpec())
      const REACH = `${REACH_END}\n`
      p.child.stdin.write(
        wordsBlock(
          reachWords(
            'python3',
            { role: 'connect', names: ['localhost', 'no-such-host.invalid'] },
            '127.0.0.1',
            port,
            5,
          ),
        ),
      )
      await within(
        (async () => {
          while (!p.stdout().endsWith(REACH) || !p.stderr().endsWith(REACH)) await sleep(20)
        })(),
        8000,
        'reach',
      )
      const after = p.stdout().slice(p.stdout().indexOf(END) + END.length)
      expect(after).toMatch(
        /^fanout\.reach=ok 127\.0\.0\.1\nfanout\.resolve=localhost( \S+)*\nfanout\.resolve=no-such-host\.invalid\nfanout\.reach_end\n$/,
      )
      expect(after).toMatch(/resolve=localhost.* 127\.0\.0\.1/)
      p.child.stdin.write(heldJobInput(job({ argv: ['/bin/sh', '-c', 'echo job ran'] })))
      const stop = heartbeat(p.child)
      expect(await within(p.done, 5000, 'job')).toMatchObject({ code: 0 })
      stop()
      expect(p.stdout().endsWith(`${REACH}job ran\n`)).toBe(true)
    } finally {
      server.close()
    }
  }, 20_000)

  it('the job it starts has the watchdog: EOF on stdin stops the whole group at once', async () => {
    const p = await startHeld(probeSpec())
    p.child.stdin.write(heldJobInput(job({ argv: ['/bin/sh', '-c', 'sleep 30 & sleep 30'] })))
    await sleep(500)
    expect(groupAlive(p.pid)).toBe(true)
    p.child.stdin.end()
    expect(await groupGone(p.pid, 3000)).toBe(true)
    expect(await watchdogsGone(p.pid, 2000)).toBe(true)
  }, 15_000)

  it.each([
    ['no plan at all (the launch was called off)', ''],
    ['a plan cut short', 'cut'],
  ])(
    '%s: runs nothing and exits 1',
    async (_name, how) => {
      const marker = join(dir, 'held-ran')
      const p = await startHeld(probeSpec())
      const input = heldJobInput(job({ argv: ['touch', marker] }))
      p.child.stdin.end(how === 'cut' ? input.slice(0, input.indexOf(marker)) : '')
      expect((await within(p.done, 5000, 'held')).code).toBe(1)
      expect(existsSync(marker)).toBe(false)
    },
    15_000,
  )
})

describe('routeCommand', () => {
  async function route(address: string): Promise<string> {
    const p = start(routeCommand(address))
    p.child.stdin.end()
    const end = await within(p.done, 5000, 'route')
    expect(end.code).toBe(0)
    return p.stdout()
  }

  it('prints one fanout.iface and one fanout.src line, whatever the machine has', async () => {
    expect(await route('127.0.0.1')).toMatch(/^fanout\.iface=[^\n]*\nfanout\.src=[^\n]*\n$/)
  })

  it("the master's own address: the interface holding it, not a route, and the address itself as the source", async () => {
    expect(await route('127.0.0.1')).toBe('fanout.iface=lo\nfanout.src=127.0.0.1\n')
  })

  it('a host name is resolved on the node first (ip takes addresses only); an unknown one has no interface', async () => {
    expect(await route('localhost')).toBe('fanout.iface=lo\nfanout.src=127.0.0.1\n')
    expect(await route('no-such-host.invalid')).toBe('fanout.iface=\nfanout.src=\n')
  })
})

describe('jobCommand: what the user gives cannot reach the wrapper itself', () => {
  // Prints the named variables and argv as one JSON line.
  const SHOW = [
    'python3',
    '-c',
    'import json, os, sys; print(json.dumps([{k: os.environ.get(k) for k in sys.argv[1].split()}, sys.argv[2:]]))',
  ]
  async function runJob(
    spec: Partial<JobSpec>,
    env?: NodeJS.ProcessEnv,
  ): Promise<{ stdout: string; stderr: string; code: number | null }> {
    const p = startJob(job(spec), env)
    const stop = heartbeat(p.child)
    const end = await within(p.done, 5000, 'job')
    stop()
    p.child.stdin.end()
    return { stdout: p.stdout(), stderr: p.stderr(), code: end.code }
  }

  it('--env names the wrapper once kept its own state in (n, m, i, hb, grace, dir, step) arrive as given, and later words keep their places', async () => {
    const env = {
      n: 'x',
      m: '$(id)',
      i: '5',
      hb: 'zz',
      grace: 'never',
      dir: '/nowhere',
      step: "it's",
      pg: '1',
      LAST: 'last',
    }
    // Sleeping past a heartbeat check: a watchdog that took hb=zz would have stopped the job at once.
    const argv = [
      '/bin/sh',
      '-c',
      'sleep 1.2; exec "$@"',
      'sh',
      ...SHOW,
      Object.keys(env).join(' ') + ' SET_UP',
      'a b',
      '--',
      "'",
    ]
    const r = await runJob({ env, setup: ['true', 'export SET_UP=yes'], argv })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout)).toEqual([{ ...env, SET_UP: 'yes' }, ['a b', '--', "'"]])
  }, 10_000)

  it('--env values and set-up lines travel on stdin, not on the command line (ps shows that to every user), and arrive byte for byte', async () => {
    const env = {
      SECRET: 'hunter2-on-stdin',
      BACKSLASHES: 'a\\b\\\\c \\n \\c \\0101 %s %b \\',
      LINES: '\nfirst\n\nlast\n\n',
      SPACES: '  both ends \t',
      CR: 'dos\r\n',
      _fanout_w: "a user variable named like the reader's own",
    }
    const setup = ['export FROM_SETUP="setup-secret"', 'printf "%s" "line\\with\\backslash" >/dev/null']
    const spec = job({ env, setup, argv: [...SHOW, `${Object.keys(env).join(' ')} FROM_SETUP`] })
    const command = jobCommand(spec)
    for (const secret of ['hunter2-on-stdin', 'setup-secret', 'first']) expect(command).not.toContain(secret)
    const r = await runJob(spec)
    expect(r.stderr).toBe('')
    expect(JSON.parse(r.stdout)).toEqual([{ ...env, FROM_SETUP: 'setup-secret' }, []])
  }, 10_000)

  it("input that breaks off before the job's environment is complete runs nothing", async () => {
    const marker = join(dir, 'ran')
    const spec = job({ env: { A: '1', B: '2' }, argv: ['touch', marker] })
    const p = start(jobCommand(spec))
    p.child.stdin.end(jobInput(spec).slice(0, -4)) // the last word cut short
    expect((await within(p.done, 5000, 'job')).code).toBe(1)
    expect(existsSync(marker)).toBe(false)
  })

  it('set-up steps may use any variable and positional parameter (for i in …, m=, step=, shift, set --), or alias exec', async () => {
    const setup = [
      'for i in a b c; do :; done',
      'm=0 n=0 step=x _fanout=y',
      'shift; shift; set -- clobbered',
      'export SEEN_I="$i" SEEN_ARGS="$*"',
      "alias exec='echo aliased' shift=true",
    ]
    const r = await runJob({ setup, argv: [...SHOW, 'SEEN_I SEEN_ARGS', 'x', '-y'] })
    expect(r.stderr).toBe('')
    expect(JSON.parse(r.stdout)).toEqual([{ SEEN_I: 'c', SEEN_ARGS: 'clobbered' }, ['x', '-y']])
  }, 10_000)

  it('a set-up line is code run as written: quotes, $, newlines, a here-document', async () => {
    const setup = [
      `X='a b'; Y="$X \\"q\\" \\$HOME"; export SEEN="$X|$Y"`,
      'for i in 1 2\ndo Z="$Z$i"\ndone\nexport Z',
      'export DOC="$(cat <<\'EOF\'\n$not `expanded`\nEOF\n)"',
    ]
    const r = await runJob({ setup, argv: [...SHOW, 'SEEN Z DOC'] })
    expect(r.stderr).toBe('')
    expect(JSON.parse(r.stdout)).toEqual([{ SEEN: 'a b|a b "q" $HOME', Z: '12', DOC: '$not `expanded`' }, []])
  }, 10_000)

  it('a failing step is named by its number and text, and nothing is launched', async () => {
    const r = await runJob({
      setup: ['for i in 1 2; do :; done', 'i=7; false', 'echo never'],
      argv: ['echo', 'launched'],
    })
    expect(r.code).toBe(1)
    expect(r.stdout).toBe('')
    expect(r.stderr).toBe('fanout: set-up step 2 failed with exit 1: i=7; false\n')
  }, 10_000)

  it('source FILE ARGS passes ARGS as the positional parameters, as bash does (sh has only `.`)', async () => {
    writeFileSync(join(dir, 'args.sh'), 'export SRC_ARGS="$#:$1|$2"\n')
    const r = await runJob({ setup: ["source ./args.sh one 'two words'"], argv: [...SHOW, 'SRC_ARGS'] })
    expect(JSON.parse(r.stdout)).toEqual([{ SRC_ARGS: '2:one|two words' }, []])
  }, 10_000)

  it("~/DIR is under the node's $HOME", async () => {
    mkdirSync(join(dir, "sub dir 'q'"), { recursive: true })
    const r = await runJob({ cwd: "~/sub dir 'q'", argv: ['pwd'] }, { ...process.env, HOME: dir })
    expect(r.stdout).toBe(`${dir}/sub dir 'q'\n`)
    const home = await runJob({ cwd: '~', argv: ['pwd'] }, { ...process.env, HOME: dir })
    expect(home.stdout).toBe(`${dir}\n`)
  }, 10_000)
})

describe('probeCommand: set-up steps as the job runs them', () => {
  it('runs them in the working directory (a relative venv works), and they cannot change what the probe asks', async () => {
    writeFileSync(join(dir, 'train.py'), '')
    mkdirSync(join(dir, 'venv', 'bin'), { recursive: true })
    writeFileSync(join(dir, 'venv', 'bin', 'activate'), 'export FANOUT_RELATIVE_VENV=yes\n')
    const p = startProbe({
      python: 'python3',
      wantPort: true,
      cwd: dir,
      script: 'train.py',
      setup: [
        '. venv/bin/activate',
        'echo "venv: $FANOUT_RELATIVE_VENV"',
        'py=no-python want_port=0 script=missing.py port=1 dir=/nowhere; shift; set -- x',
        'alias shift=true',
      ],
    })
    await within(p.done, 8000, 'probe')
    expect(p.stderr()).toContain('venv: yes')
    const facts = parseProbe(p.stdout(), false)
    expect(facts).toMatchObject({ cwd: true, script: true })
    expect(facts.python).toMatch(/python3$/)
    expect(facts.freePort).toBeGreaterThan(0)
    expect(facts.setupFailed).toBeUndefined()
  }, 10_000)
})

describe('command size: Linux MAX_ARG_STRLEN', () => {
  const SH = ['/bin/sh', '-c', 'printf "%s" "${#1}"', 'sh']
  it(`is ${MAX_COMMAND_BYTES} bytes on this machine: /bin/sh -c COMMAND of that size runs, one byte more is E2BIG`, () => {
    const ok = spawnSync('/bin/sh', ['-c', ': ' + 'x'.repeat(MAX_COMMAND_BYTES - 2)])
    expect(ok.error).toBeUndefined()
    expect(ok.status).toBe(0)
    const over = spawnSync('/bin/sh', ['-c', ': ' + 'x'.repeat(MAX_COMMAND_BYTES - 1)])
    expect((over.error as NodeJS.ErrnoException | undefined)?.code).toBe('E2BIG')
  })

  it('jobCommand: a command of exactly the limit is built and runs; one byte more is a USAGE error naming the limit, the size and its parts', async () => {
    const base = jobCommandSize(job({ argv: SH })).total
    const fill = MAX_COMMAND_BYTES - base - 1 // one space and the word, unquoted
    const command = jobCommand(job({ argv: [...SH, 'x'.repeat(fill)] }))
    expect(Buffer.byteLength(command)).toBe(MAX_COMMAND_BYTES)
    const p = start(command)
    p.child.stdin.write(jobInput(job({ argv: [...SH, 'x'.repeat(fill)] })))
    await within(p.done, 5000, 'job')
    p.child.stdin.end()
    expect(p.stdout()).toBe(String(fill))
    // With an environment and a set-up line, one byte over: refused, with the parts as they travel.
    const more = { env: { E: 'é' }, setup: ['true'] } // 'E=é' and true, each with its space: 7 and 5 bytes
    const over = job({
      ...more,
      argv: [...SH, 'x'.repeat(MAX_COMMAND_BYTES - jobCommandSize(job({ ...more, argv: SH })).total)],
    })
    const size = jobCommandSize(over)
    expect(size).toMatchObject({ total: MAX_COMMAND_BYTES + 1, env: 7, setup: 5 })
    let err: unknown
    try {
      jobCommand(over)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(FanoutError)
    expect((err as FanoutError).exitCode).toBe(2)
    expect((err as FanoutError).message).toMatch(
      new RegExp(
        `would be ${MAX_COMMAND_BYTES + 1} bytes, over the limit of ${MAX_COMMAND_BYTES} bytes \\(Linux's MAX_ARG_STRLEN`,
      ),
    )
    expect((err as FanoutError).message).toContain(
      `the program and its arguments take ${size.argv} bytes, the environment 7, the set-up lines 5, and fanout's own wrapper ${size.fixed}`,
    )
    expect(size.argv + size.env + size.setup + size.fixed).toBe(size.total)
  }, 10_000)

  it("quoting counts: a single quote travels as '\\'' (4 bytes), the word in quotes (2 more)", () => {
    const plain = jobCommandSize(job({ argv: ['x'.repeat(100)] }))
    const quotes = jobCommandSize(job({ argv: ["'".repeat(100)] }))
    expect(quotes.argv - plain.argv).toBe(302)
    expect(quotes.total - plain.total).toBe(302)
  })

  it('probeCommand refuses set-up lines that do not fit', () => {
    expect(() =>
      probeCommand({ python: 'python3', wantPort: false, cwd: '/', setup: ['x'.repeat(MAX_COMMAND_BYTES)] }),
    ).toThrow(/over the limit of 131071 bytes/)
    expect(probeCommandSize({ python: 'python3', wantPort: false, cwd: '/', setup: ['x'.repeat(1000)] }).setup).toBe(
      1001,
    )
  })
})
