import { execFileSync, spawn } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, expect, it } from 'vitest'
import {
  ALLREDUCE,
  FLAKY,
  cluster,
  clusterArgs,
  connectionCount,
  describeCluster,
  fanoutEnv,
  host,
  runFanout,
  startFanout,
  waitNoSurvivors,
  writeWork,
  type FanoutRun,
} from './cluster.js'

// fanout inside a SLURM allocation (test/cluster/slurm.sh: slurmctld here, slurmd on h1-h3), reaching
// the nodes through srun: no SSH login anywhere, the same output, summary and teardown as over SSH.

const NODES = ['h1', 'h2', 'h3'].map(host)
const BIN = fileURLToPath(new URL('../../bin/fanout.js', import.meta.url))
const DIR = cluster?.dir ?? ''
/**
 * What an SSH login on the test hosts gets from sshd's SetEnv (cluster.sh), which srun hands on from
 * here instead: the stand-in nvidia-smi and its GPU count, and the fix torch 1.13 needs on this Python.
 */
const SLURM_ENV = {
  SLURM_CONF: cluster?.slurmConf ?? '',
  PATH: `${DIR}/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`,
  FANOUT_TEST_GPUS: '2',
  PYTHONPATH: `${DIR}/torch-fix`,
}
const PYTHON = ['--python', '/usr/bin/python3']
/** fanout as `salloc -N3 fanout …` runs it: a child of salloc, inside the allocation. */
const salloc = (n: number): string[] => ['salloc', `--nodes=${n}`, '--quiet']
const inAllocation = (args: string[], n = 3): Promise<FanoutRun> =>
  runFanout([...PYTHON, ...args], { under: salloc(n), env: SLURM_ENV })

const logins = (): number[] => NODES.map(connectionCount)
/** SLURM's own lines: they belong in the summary, not raw in the output. */
const RAW_SLURM = /^(srun|slurmstepd|salloc)(-\S+)?: /m
/** The job steps still known to SLURM (none once fanout is done). */
const steps = (): string =>
  execFileSync('squeue', ['--steps', '--noheader'], { env: { ...process.env, ...SLURM_ENV }, encoding: 'utf8' }).trim()

afterEach(async () => {
  expect(await waitNoSurvivors([...NODES, ...['d1', 'd2', 'd3'].map(host)], 8000)).toEqual([])
})

// The scenarios every torch must pass: Debian 12's torch 1.13 (h1-h3, partition test) and Debian 13's
// torch 2.6 (d1-d3, partition debian13: their steps' launcher is Debian 13's python, slurm.sh).
const KINDS = [
  { torch: 'torch 1.13 (Debian 12)', names: ['h1', 'h2', 'h3'], python: PYTHON, partition: 'test' },
  {
    torch: 'torch 2.6 (Debian 13)',
    names: ['d1', 'd2', 'd3'],
    python: ['--python', `${DIR}/bin/python3-debian13`],
    partition: 'debian13',
  },
].map((k) => ({
  ...k,
  salloc: (n: number): string[] => ['salloc', `--partition=${k.partition}`, `--nodes=${n}`, '--quiet'],
}))

describeCluster.each(KINDS)('inside a SLURM allocation (srun, no SSH), $torch', (k) => {
  it('salloc -N3 fanout SCRIPT: every node through srun, 2 GPUs each, the same lines and summary as over SSH, zero SSH logins', async () => {
    writeWork('slurm_allreduce.py', ALLREDUCE)
    const loginsHere = (): number[] => k.names.map(host).map(connectionCount)
    const before = loginsHere()
    const run = await runFanout([...k.python, 'slurm_allreduce.py'], { under: k.salloc(3), env: SLURM_ENV })
    expect(run.code, run.stderr).toBe(0)
    expect(loginsHere(), 'SSH connections').toEqual(before)
    expect(run.stderr).toContain('6 process(es): 3 × 2')
    const ifaces = ['ens3', 'enp1s0', 'eno1']
    const jobLines = (out: string): string[] =>
      out
        .split('\n')
        .filter((l) => / sum \d+ iface /.test(l))
        .sort()
    const expected = [0, 1, 2, 3, 4, 5].map((rank) => {
      const node = Math.floor(rank / 2)
      return `[n${node} ${k.names[node]} r${rank}]  rank ${rank} of 6 node ${node} sum 21 iface ${ifaces[node]}`
    })
    expect(jobLines(run.stdout)).toEqual(expected.sort())
    expect(run.stdout + run.stderr).not.toMatch(RAW_SLURM)
    // The same job over SSH prints the same job lines and the same summary rows.
    const ssh = await runFanout(['--hosts', k.names.join(','), ...clusterArgs(), 'slurm_allreduce.py'])
    expect(ssh.code, ssh.stderr).toBe(0)
    expect(jobLines(ssh.stdout)).toEqual(jobLines(run.stdout))
    const rows = (out: string): string[] =>
      out
        .split('\n')
        .filter((l) => /^n\d\s+[hd]\d\s/.test(l))
        // node, host, ranks, result; not the duration, nor the line count (torch 2.6's warnings vary from run to run).
        .map((l) => l.replace(/\s+\d+\.\d s\s+\d+$/, ''))
    expect(rows(run.stderr)).toHaveLength(3)
    expect(rows(run.stderr)).toEqual(rows(ssh.stderr))
    expect(steps()).toBe('')
  })

  it('a failing node stops the others through SLURM: root cause named, its exit code, nothing left on any node', async () => {
    writeWork(
      'slurm_fail.py',
      `
import os, sys, time
if os.environ["GROUP_RANK"] == "1":
    sys.stderr.write("node 1 giving up\\n")
    sys.exit(3)
time.sleep(120)
`,
    )
    const run = await runFanout([...k.python, '--grace', '3', 'slurm_fail.py'], { under: k.salloc(3), env: SLURM_ENV })
    expect(run.code, run.stderr).toBe(3)
    expect(run.stderr).toContain(`first failure: node 1 (${k.names[1]})`)
    expect(run.stdout + run.stderr).toContain('node 1 giving up')
    expect(run.stdout + run.stderr).not.toMatch(RAW_SLURM)
    expect(run.stderr).toMatch(new RegExp(`n0\\s+${k.names[0]}\\s.*\\[stopped by fanout\\]`))
    expect(run.ms).toBeLessThan(60_000)
    expect(steps()).toBe('')
  })

  it('Ctrl-C typed into the terminal salloc runs fanout in: exit 130, every step gone, no raw srun lines', async () => {
    writeWork('slurm_sleep.py', 'import time\nprint("started", flush=True)\ntime.sleep(300)\n')
    // salloc makes its command the terminal's foreground process group: \x03 reaches fanout (and not
    // srun, which runs in a group of its own), as when a user presses Ctrl-C.
    const command = [...k.salloc(3), process.execPath, '--', BIN, ...k.python, 'slurm_sleep.py'].join(' ')
    const child = spawn('script', ['-qefc', command, '/dev/null'], {
      cwd: cluster?.work,
      env: fanoutEnv(SLURM_ENV),
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let transcript = ''
    child.stdout.on('data', (b: Buffer) => (transcript += b.toString('utf8')))
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
    const deadline = Date.now() + 60_000
    while (!/r5\]\s+started/.test(transcript) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
    expect(transcript).toMatch(/r5\]\s+started/)
    const sent = Date.now()
    child.stdin.write('\x03')
    const code = await closed
    expect(code, transcript).toBe(130)
    expect(Date.now() - sent).toBeLessThan(15_000)
    expect(transcript).toContain('Ctrl-C: sending SIGINT to 3 node(s)')
    expect(transcript).not.toMatch(RAW_SLURM)
    expect(await waitNoSurvivors(k.names.map(host), 5000)).toEqual([])
    expect(steps()).toBe('')
  })

  it("fanout killed (SIGKILL) inside the allocation: each step's stdin closes, the watchdogs stop the job, nothing is left", async () => {
    writeWork('slurm_sleep.py', 'import time\nprint("started", flush=True)\ntime.sleep(300)\n')
    const running = startFanout([...k.python, 'slurm_sleep.py'], { under: k.salloc(3), env: SLURM_ENV })
    await running.waitFor(/r5\]\s+started/, 60_000)
    // fanout is salloc's child: the coordinator, gone at once, with no chance to stop anything itself.
    const fanout = readFileSync(`/proc/${running.pid}/task/${running.pid}/children`, 'utf8').trim().split(/\s+/)
    expect(fanout).toHaveLength(1)
    process.kill(Number(fanout[0]), 'SIGKILL')
    await running.done
    expect(await waitNoSurvivors(k.names.map(host), 20_000)).toEqual([])
    const deadline = Date.now() + 10_000
    while (steps() !== '' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200))
    expect(steps()).toBe('')
  })
})

describeCluster('inside a SLURM allocation (srun, no SSH)', () => {
  it('fanout check in an allocation: the pre-flight table over srun, launching nothing; GPU counts per node from each step', async () => {
    writeWork('slurm_hello.py', 'print("hello")\n')
    // h3's step sees one GPU (as SLURM's CUDA_VISIBLE_DEVICES narrows a step's GPUs): one process there.
    const setup = ['--setup', '[ "$(hostname)" != fo-h3 ] || export CUDA_VISIBLE_DEVICES=0']
    const check = await runFanout(['check', ...PYTHON, ...setup, 'slurm_hello.py'], {
      under: salloc(3),
      env: SLURM_ENV,
    })
    expect(check.code, check.stderr).toBe(0)
    expect(check.stderr).toMatch(
      /\nn0\s+h1\s+3\.\S+\s+1\.13\S*\s+2\s+ok\nn1\s+h2\s+3\.\S+\s+1\.13\S*\s+2\s+ok\nn2\s+h3\s+3\.\S+\s+1\.13\S*\s+1\s+ok\n/,
    )
    expect(check.stdout).not.toContain('hello')
    const run = await inAllocation([...setup, 'slurm_hello.py'])
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr).toContain('3 node(s), 5 process(es): 2 × 2 + 1')
    expect(run.stdout.match(/\]\s+hello$/gm)).toHaveLength(5)
  })

  it('an allocation shaped for one task per GPU (salloc --ntasks-per-node=2) still gets one step per node, each with its GPUs', async () => {
    writeWork('slurm_hello.py', 'print("hello")\n')
    const run = await runFanout([...PYTHON, 'slurm_hello.py'], {
      under: ['salloc', '--nodes=3', '--ntasks-per-node=2', '--cpus-per-task=1', '--quiet'],
      env: SLURM_ENV,
    })
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr).toContain('3 node(s), 6 process(es): 3 × 2')
    expect(run.stdout.match(/\]\s+hello$/gm)).toHaveLength(6)
  })

  it('--restarts 1 over srun: a failed attempt relaunches every node as new steps; --log-dir keeps every node', async () => {
    writeWork('slurm_flaky.py', FLAKY)
    const logs = join(cluster?.work ?? '', 'slurm-logs')
    rmSync(logs, { recursive: true, force: true })
    const run = await inAllocation(['--restarts', '1', '--log-dir', logs, 'slurm_flaky.py'])
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr).toMatch(/attempt 1: failed, exit 5 \(first failure: node 1 \(h2\)[^\n]*\n  attempt 2: succeeded/)
    expect(run.stdout.match(/attempt 2 node \d sum 6/g)).toHaveLength(6)
    const [file = ''] = execFileSync('find', [logs, '-name', 'summary.json'], { encoding: 'utf8' }).trim().split('\n')
    const summary = JSON.parse(readFileSync(file, 'utf8')) as { attempts: number; nodes: Array<{ host: string }> }
    expect(summary.attempts).toBe(2)
    expect([...new Set(summary.nodes.map((n) => n.host))]).toEqual(['h1', 'h2', 'h3'])
  })

  it('what SLURM says of a step goes into the summary, not the output: a step cancelled with scancel', async () => {
    writeWork('slurm_sleep.py', 'import time\nprint("started", flush=True)\ntime.sleep(300)\n')
    const running = startFanout([...PYTHON, '--grace', '2', 'slurm_sleep.py'], { under: salloc(3), env: SLURM_ENV })
    await running.waitFor(/r5\]\s+started/, 60_000)
    const h2 = execFileSync('squeue', ['--steps', '--noheader', '--format', '%i %N'], {
      env: { ...process.env, ...SLURM_ENV },
      encoding: 'utf8',
    })
      .split('\n')
      .find((l) => / h2$/.test(l.trim()))
      ?.trim()
      .split(' ')[0]
    expect(h2).toMatch(/^\d+\.\d+$/)
    execFileSync('scancel', [h2 ?? ''], { env: { ...process.env, ...SLURM_ENV } })
    const run = await running.done
    expect(run.code, run.stderr).not.toBe(0)
    expect(run.stdout + run.stderr).not.toMatch(RAW_SLURM)
    expect(run.stderr).toMatch(/first failure: node 1 \(h2\): .*CANCELLED/)
  })

  it('--timeout ends the job through its steps: exit 124', async () => {
    writeWork('slurm_sleep.py', 'import time\nprint("started", flush=True)\ntime.sleep(300)\n')
    const run = await inAllocation(['--timeout', '8s', '--grace', '2', 'slurm_sleep.py'])
    expect(run.code, run.stderr).toBe(124)
    expect(run.stdout).toMatch(/started/)
    expect(run.stdout + run.stderr).not.toMatch(RAW_SLURM)
    expect(steps()).toBe('')
  })

  it('the selection flags narrow the allocation: --exclude h2 runs on h1 and h3 only', async () => {
    writeWork('slurm_allreduce.py', ALLREDUCE)
    const run = await inAllocation(['--exclude', 'h2', 'slurm_allreduce.py'])
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr).toContain('4 process(es): 2 × 2')
    expect(run.stdout).toContain('[n1 h3 r2]  rank 2 of 4 node 1 sum 10 iface eno1')
    expect(run.stdout).not.toMatch(/ h2 /)
  })

  it('--via ssh keeps SSH inside an allocation (clusters with pam_slurm_adopt)', async () => {
    writeWork('slurm_allreduce.py', ALLREDUCE)
    const before = logins()
    const run = await runFanout(['--via', 'ssh', ...clusterArgs(), 'slurm_allreduce.py'], {
      under: salloc(3),
      env: { SLURM_CONF: SLURM_ENV.SLURM_CONF },
    })
    expect(run.code, run.stderr).toBe(0)
    expect(logins().map((n, i) => n - (before[i] ?? 0))).toEqual([1, 1, 1])
  })

  it('sbatch -N3 --wrap "fanout SCRIPT": plain prefixed output and the summary in the job’s output file', async () => {
    writeWork('slurm_allreduce.py', ALLREDUCE)
    const out = join(cluster?.work ?? '', 'slurm-batch.out')
    rmSync(out, { force: true })
    const before = logins()
    const wrap = [process.execPath, '--', BIN, ...PYTHON, 'slurm_allreduce.py'].join(' ')
    execFileSync(
      'sbatch',
      ['--nodes=3', '--wait', '--quiet', `--output=${out}`, `--chdir=${cluster?.work}`, '--wrap', wrap],
      {
        env: fanoutEnv(SLURM_ENV),
        timeout: 100_000,
      },
    )
    expect(existsSync(out)).toBe(true)
    const text = readFileSync(out, 'utf8')
    expect(text).not.toContain('\x1b')
    expect(text).toContain('[n2 h3 r5]  rank 5 of 6 node 2 sum 21 iface eno1')
    expect(text).toMatch(/n0\s+h1\s+0-1\s+exit 0/)
    expect(text).not.toMatch(RAW_SLURM)
    expect(logins()).toEqual(before)
  })

  it('fanout --via sbatch --nodes 3 --wait: writes the script, submits it, follows its output, exits with the job’s code', async () => {
    writeWork('slurm_allreduce.py', ALLREDUCE)
    const before = logins()
    const run = await runFanout(
      ['--via', 'sbatch', '--nodes', '3', '--time', '5', '--wait', ...PYTHON, 'slurm_allreduce.py'],
      { env: SLURM_ENV },
    )
    expect(run.code, run.stderr).toBe(0)
    const [, jobId, script] = /submitted batch job (\d+) \((\S+\.sbatch)\)/.exec(run.stderr) ?? []
    expect(jobId).toBeDefined()
    expect(readFileSync(script ?? '', 'utf8')).toMatch(/^#SBATCH --nodes=3$/m)
    expect(run.stderr).toContain(`its output: ${cluster?.work}/fanout-${jobId}.out`)
    // The job's output, followed here as it was written: the lines and the summary.
    expect(run.stdout).toContain('[n2 h3 r5]  rank 5 of 6 node 2 sum 21 iface eno1')
    expect(run.stdout).toMatch(/n0\s+h1\s+0-1\s+exit 0/)
    expect(readFileSync(join(cluster?.work ?? '', `fanout-${jobId}.out`), 'utf8')).toContain('sum 21')
    expect(logins()).toEqual(before)
  })

  it('fanout --via sbatch without --wait prints the job id and returns; a failing job’s code comes back with --wait', async () => {
    writeWork('slurm_fail.py', 'import os, sys\nsys.exit(3 if os.environ["GROUP_RANK"] == "1" else 0)\n')
    const queued = await runFanout(['--via', 'sbatch', '--nodes', '2', ...PYTHON, 'slurm_fail.py'], { env: SLURM_ENV })
    expect(queued.code, queued.stderr).toBe(0)
    expect(queued.stdout).toMatch(/^\d+\n$/)
    expect(queued.stderr).toMatch(/stop it: scancel --signal=INT --batch \d+/)
    const failed = await runFanout(['--via', 'sbatch', '--nodes', '2', '--wait', ...PYTHON, 'slurm_fail.py'], {
      env: SLURM_ENV,
    })
    expect(failed.code, failed.stderr + failed.stdout).toBe(3)
    expect(failed.stdout).toMatch(/first failure: node 1 \(h2\)/)
    // The first job ran meanwhile, on its own.
    const first = join(cluster?.work ?? '', `fanout-${queued.stdout.trim()}.out`)
    const deadline = Date.now() + 30_000
    while (!/first failure/.test(existsSync(first) ? readFileSync(first, 'utf8') : '') && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 300))
    expect(readFileSync(first, 'utf8')).toMatch(/first failure: node 1 \(h2\)/)
  })

  it('Ctrl-C while --wait follows a batch job stops fanout in it (its own teardown), which ends the job: exit 130', async () => {
    writeWork('slurm_sleep.py', 'import time\nprint("started", flush=True)\ntime.sleep(300)\n')
    const running = startFanout(['--via', 'sbatch', '--nodes', '3', '--wait', ...PYTHON, 'slurm_sleep.py'], {
      env: SLURM_ENV,
    })
    await running.waitFor(/r5\]\s+started/, 60_000)
    process.kill(running.pid, 'SIGINT')
    const run = await running.done
    expect(run.code, run.stderr + run.stdout).toBe(130)
    expect(run.stderr).toMatch(/stopping batch job \d+ \(SIGINT to fanout in it/)
    expect(run.stdout).toContain('Ctrl-C: sending SIGINT to 3 node(s)')
    expect(run.stdout).not.toMatch(RAW_SLURM)
    expect(steps()).toBe('')
  })
})
