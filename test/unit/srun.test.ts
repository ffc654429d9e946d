import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseArgs } from '../../src/cli/dispatch.js'
import type { RunOptions } from '../../src/launch/options.js'
import { describeStatus } from '../../src/supervise/exit-status.js'
import { nodeAddresses, srunArgs, srunHasOverlap, srunTransport, SrunMessages } from '../../src/transport/srun.js'
import { capture } from '../../src/transport/types.js'
import { refusal } from './refusal.js'

/** Feeds `chunks` through SrunMessages: what passes on (the node's stderr), and what SLURM said. */
async function filter(chunks: string[]): Promise<{ passed: string; said: string[] }> {
  const m = new SrunMessages()
  let passed = ''
  m.on('data', (b: Buffer) => (passed += b.toString()))
  const ended = new Promise((r) => m.on('end', r))
  for (const c of chunks) m.write(Buffer.from(c))
  m.end()
  await ended
  return { passed, said: m.said }
}

describe('SrunMessages: SLURM lines out of a step’s stderr', () => {
  it('takes srun and slurmstepd lines out, passes every other byte as it comes', async () => {
    const r = await filter([
      'Traceback (most recent call last):\n  File "x.py"\n',
      'srun: error: h2: task 0: Exited with exit code 3\n',
      'slurmstepd: error: *** STEP 7.0 ON h2 CANCELLED AT 2026-12-06T10:00:00 ***\n',
      'progress 10%\rprogress 20%',
    ])
    expect(r.passed).toBe('Traceback (most recent call last):\n  File "x.py"\nprogress 10%\rprogress 20%')
    expect(r.said).toEqual([
      'srun: error: h2: task 0: Exited with exit code 3',
      'slurmstepd: error: *** STEP 7.0 ON h2 CANCELLED AT 2026-12-06T10:00:00 ***',
    ])
  })

  it('recognises a prefix split across chunks, byte by byte', async () => {
    const text =
      'a line\nsrun: Job step aborted: Waiting up to 4 seconds for job step to finish.\nsrunner: mine\nslurmstepd-h1: error: x\n'
    const r = await filter([...text])
    expect(r.passed).toBe('a line\nsrunner: mine\n')
    expect(r.said).toEqual([
      'srun: Job step aborted: Waiting up to 4 seconds for job step to finish.',
      'slurmstepd-h1: error: x',
    ])
  })

  it('a line that only starts like srun is passed whole; a SLURM line without a newline is kept at the end', async () => {
    const r = await filter(['sr', 'u', 'nning fast\n', 'srun: error: Node failure on h3'])
    expect(r.passed).toBe('srunning fast\n')
    expect(r.said).toEqual(['srun: error: Node failure on h3'])
  })

  it('the prefix counts only at a line start', async () => {
    const r = await filter(['x srun: error: y\n'])
    expect(r.passed).toBe('x srun: error: y\n')
    expect(r.said).toEqual([])
  })
})

describe('srunArgs', () => {
  it('one task on the one node, in the allocation, the command as one argument of /bin/sh -c', () => {
    const args = srunArgs({ jobId: '42', node: 'gpu07' }, "echo 'a b'; exit 3")
    expect(args.slice(-3)).toEqual(['/bin/sh', '-c', "echo 'a b'; exit 3"])
    expect(args).toEqual(
      expect.arrayContaining(['--jobid=42', '--nodes=1', '--ntasks=1', '--nodelist=gpu07', '--kill-on-bad-exit=1']),
    )
  })
})

describe('describeStatus with what SLURM said', () => {
  it('adds what the exit code does not say, not the line that repeats it', () => {
    expect(describeStatus({ code: 3, signal: null, said: ['srun: error: h2: task 0: Exited with exit code 3'] })).toBe(
      'exit 3',
    )
    expect(
      describeStatus({
        code: 1,
        signal: null,
        said: ['srun: error: Node failure on h2', 'srun: error: Node failure on h2'],
      }),
    ).toBe('exit 1 (error); srun: error: Node failure on h2')
  })
})

/**
 * A stand-in srun: records its arguments, runs the command, and says what srun says of a failed task;
 * `exec`: becomes the command (so that a signal to srun reaches it, as srun forwards it to the step).
 */
function fakeSrun(exec = false): { path: string; argsFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'fanout-srun-'))
  const path = join(dir, 'srun')
  const argsFile = join(dir, 'args')
  writeFileSync(
    path,
    `#!/bin/sh
printf '%s\\n' "$@" > '${argsFile}'
while [ "$#" -gt 3 ]; do shift; done
${exec ? 'exec ' : ''}"$1" "$2" "$3"
rc=$?
[ "$rc" = 0 ] || echo "srun: error: h9: task 0: Exited with exit code $rc" >&2
exit $rc
`,
  )
  chmodSync(path, 0o755)
  return { path, argsFile }
}

describe('srunTransport (a stand-in srun)', () => {
  it('runs the command with stdin, splits SLURM’s lines from the node’s stderr, and reports the exit', async () => {
    const { path, argsFile } = fakeSrun()
    const t = srunTransport(
      { jobId: '7', node: 'h9' },
      {
        srun: path,
        address: '10.1.2.3',
        env: { PATH: process.env.PATH, SSH_CONNECTION: '1 2 3 4', SLURM_GPUS_PER_TASK: '1', SLURM_JOB_ID: '7' },
      },
    )
    expect(t.kind).toBe('srun')
    expect(t.peerAddress).toBe('10.1.2.3')
    const r = await capture(
      t,
      'read x; echo "got $x ${SSH_CONNECTION:-none} ${SLURM_GPUS_PER_TASK:-none} $SLURM_JOB_ID"; echo oops >&2; exit 4',
      'hello\n',
    )
    // The login's SSH session and the allocation's task shape stay here; the rest goes with the step.
    expect(r.stdout).toBe('got hello none none 7\n')
    expect(r.stderr).toBe('oops\n')
    expect(r.status).toEqual({ code: 4, signal: null, said: ['srun: error: h9: task 0: Exited with exit code 4'] })
    expect(readFileSync(argsFile, 'utf8')).toContain('--nodelist=h9\n')
  })

  it('a missing srun is a clear failure, not a hang', async () => {
    const t = srunTransport({ jobId: '7', node: 'h9' }, { srun: '/nonexistent/srun' })
    const r = await capture(t, 'true')
    expect(r.status.code).toBe(127)
    expect(r.status.lost).toMatch(/srun not found: --via srun needs SLURM's client commands/)
  })

  it('close() ends a step still running', async () => {
    const { path } = fakeSrun(true)
    const t = srunTransport({ jobId: '7', node: 'h9' }, { srun: path })
    const proc = await t.exec('exec sleep 30')
    const started = Date.now()
    t.close()
    const status = await proc.done
    expect(status.signal ?? status.code).toBeTruthy()
    expect(Date.now() - started).toBeLessThan(10_000)
  })
})

describe('srunHasOverlap', () => {
  it.each<[string | undefined, boolean]>([
    ['slurm 22.05.8\n', true],
    ['slurm 20.11.9\n', true],
    ['slurm 20.02.7\n', false],
    ['slurm-wlm 19.05.5\n', false],
    ['slurm 24.11.1\n', true],
    [undefined, true],
  ])('%j → %s', async (version, expected) => {
    expect(await srunHasOverlap(async () => version)).toBe(expected)
  })

  it('without it, srun is not given --overlap', () => {
    expect(srunArgs({ jobId: '1', node: 'a' }, 'true', false)).not.toContain('--overlap')
    expect(srunArgs({ jobId: '1', node: 'a' }, 'true')).toContain('--overlap')
  })
})

describe('nodeAddresses', () => {
  it('reads each node’s NodeAddr from sinfo, resolving a name; a node not asked for is ignored', async () => {
    const calls: string[][] = []
    const addresses = await nodeAddresses(['h1', 'h2', 'h3'], async (cmd, args) => {
      calls.push([cmd, ...args])
      return 'h1 10.0.0.1\nh2 localhost\nh2 localhost\nx9 10.0.0.9\n'
    })
    expect(calls[0]?.slice(0, 1)).toEqual(['sinfo'])
    expect(calls[0]).toContain('h1,h2,h3')
    expect([...addresses]).toEqual([
      ['h1', '10.0.0.1'],
      ['h2', '127.0.0.1'],
    ])
  })

  it('no sinfo: no addresses', async () => {
    expect((await nodeAddresses(['h1'], async () => undefined)).size).toBe(0)
  })
})

describe('--via', () => {
  const ALLOC = { SLURM_JOB_ID: '12', SLURM_JOB_NODELIST: 'h[1-3]' }
  const run = async (argv: string[], env: Record<string, string>): Promise<RunOptions> => {
    const p = await parseArgs(argv, '/tmp', 100, env)
    if (p.kind !== 'run') throw new Error(`expected a run, got ${p.kind}`)
    return p.options
  }
  const refused = (argv: string[], env: Record<string, string>) =>
    refusal(() => parseArgs(argv, '/tmp', 100, env), 'USAGE')

  it('inside an allocation without a host list, srun is the default', async () => {
    expect((await run(['t.py'], ALLOC)).hosts.slurmJobId).toBe('12')
    expect((await run(['--via', 'srun', 't.py'], ALLOC)).hosts.slurmJobId).toBe('12')
  })

  it('--via ssh, or a host list, keeps SSH inside an allocation', async () => {
    expect((await run(['--via', 'ssh', 't.py'], ALLOC)).hosts.slurmJobId).toBeUndefined()
    expect((await run(['--hosts', 'a,b', 't.py'], ALLOC)).hosts.slurmJobId).toBeUndefined()
    // A node list without a job id (set by hand): SSH to its nodes, as before.
    expect((await run(['t.py'], { SLURM_JOB_NODELIST: 'h1' })).hosts.slurmJobId).toBeUndefined()
  })

  it.each<[string, string[], Record<string, string>, RegExp]>([
    ['an unknown transport', ['--via', 'pdsh', 't.py'], ALLOC, /--via must be ssh, srun or sbatch \(got "pdsh"\)/],
    ['srun outside an allocation', ['--via', 'srun', '--hosts', 'a', 't.py'], {}, /not on --hostfile\/--hosts/],
    ['srun without SLURM_JOB_ID', ['--via', 'srun', 't.py'], { SLURM_JOB_NODELIST: 'h1' }, /SLURM_JOB_ID is not set/],
    ['srun with a host list', ['--via', 'srun', '--hostfile', 'h', 't.py'], ALLOC, /select among them with --include/],
    ['a job id that is not one', ['t.py'], { ...ALLOC, SLURM_JOB_ID: '1;x' }, /SLURM_JOB_ID="1;x" is not a job id/],
    [
      '--sync over srun',
      ['--sync', 't.py'],
      ALLOC,
      /--sync copies files over SSH \(SFTP\), and --via srun makes no SSH connection/,
    ],
  ])('refuses %s (exit 2, before any connection)', async (_, argv, env, message) => {
    expect((await refused(argv, env)).message).toMatch(message)
  })
})
