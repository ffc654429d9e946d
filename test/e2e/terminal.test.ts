import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, expect, it } from 'vitest'
import {
  cluster,
  clusterArgs,
  describeCluster,
  fanoutEnv,
  host,
  runFanout,
  startFanout,
  waitNoSurvivors,
  writeWork,
} from './cluster.js'
import { renderTerminal } from './terminal-emulator.js'

// Ctrl-C as a user types it, into a real terminal; and the localhost transport, whose processes run on
// this machine, where the cluster's leak check (its namespaces) does not look.

const BIN = fileURLToPath(new URL('../../bin/fanout.js', import.meta.url))
const HOSTS = ['h1', 'h2', 'h3']

afterEach(async () => {
  expect(await waitNoSurvivors(cluster?.hosts ?? [], 10_000)).toEqual([])
})

// Rank 0 draws a progress bar (a line rewritten with \r: a live row on a terminal) while every rank trains.
const TRAIN = `
import os, sys, time, torch, torch.distributed as dist
dist.init_process_group("gloo")
rank = dist.get_rank()
for step in range(1, 100000):
    t = torch.ones(1)
    dist.all_reduce(t)
    if rank == 0:
        sys.stderr.write(f"\\rtraining {step % 100:3d}%")
        sys.stderr.flush()
        if step % 5 == 0:
            sys.stdout.write(f"step {step}\\n"); sys.stdout.flush()
    time.sleep(0.1)
`

/** The processes of this machine whose command line holds `marker` (not this test's own). */
function localProcesses(marker: string): string[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)
    .flatMap((pid) => {
      try {
        const cmd = readFileSync(join('/proc', pid, 'cmdline'), 'utf8').replace(/\0/g, ' ')
        return cmd.includes(marker) ? [`${pid} ${cmd}`] : []
      } catch {
        return []
      }
    })
}

async function noLocalLeft(marker: string, withinMs = 6000): Promise<string[]> {
  const deadline = Date.now() + withinMs
  for (;;) {
    const left = localProcesses(marker)
    if (left.length === 0 || Date.now() > deadline) return left
    await new Promise((r) => setTimeout(r, 200))
  }
}

describeCluster('Ctrl-C typed into a terminal', () => {
  it('\\x03 on a pseudo-terminal, with the live rows on screen: SIGINT everywhere, exit 130, nothing left on any node, the screen clean', async () => {
    writeWork('train_bar.py', TRAIN)
    const hostfile = writeWork('hosts-tty', HOSTS.join('\n') + '\n')
    const command = [
      'stty cols 120 rows 40;',
      'exec',
      process.execPath,
      '--',
      BIN,
      '-H',
      hostfile,
      ...clusterArgs(),
      '--nproc-per-node',
      '1',
      'train_bar.py',
    ].join(' ')
    const child = spawn('script', ['-qefc', command, '/dev/null'], {
      cwd: cluster?.work,
      env: fanoutEnv(),
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let transcript = ''
    child.stdout.on('data', (b: Buffer) => (transcript += b.toString('utf8')))
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
    const deadline = Date.now() + 60_000
    while (!/step 10\r?\n/.test(transcript) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
    expect(transcript).toMatch(/step 10/)
    // The live rows are on screen now: the status row and the progress bar.
    expect(transcript).toMatch(/running \d+:\d\d/)
    child.stdin.write('\x03') // what the Ctrl-C key sends: the terminal turns it into SIGINT for the foreground group
    const code = await closed
    expect(code, transcript).toBe(130)
    expect(transcript).toContain('Ctrl-C: sending SIGINT to 3 node(s)')
    expect(await waitNoSurvivors(HOSTS.map(host), 5000)).toEqual([])
    const screen = renderTerminal(transcript)
    // No live row is left behind: neither the status row nor the bar's in-place state.
    expect(
      screen.filter((l) => /running \d+:\d\d|stopping \d+:\d\d/.test(l)),
      screen.join('\n'),
    ).toEqual([])
    expect(screen.filter((l) => /^\s*$/.test(l) === false).pop(), screen.join('\n')).toMatch(/^n\d\s+h\d\s+\S+\s+/)
    // The cursor is shown again if fanout hid it.
    const hid = transcript.lastIndexOf('\x1b[?25l')
    if (hid >= 0) expect(transcript.indexOf('\x1b[?25h', hid), 'cursor left hidden').toBeGreaterThan(hid)
  }, 90_000)
})

describeCluster('the localhost transport leaves nothing on this machine', () => {
  const torchFix = (): NodeJS.ProcessEnv => ({ PYTHONPATH: join(cluster?.dir ?? '', 'torch-fix') })
  // Each rank starts a child of its own (a data loader would), marked so the test can find it on this machine.
  const SPAWNS = (marker: string, then: string): string => `
import os, subprocess, sys, time
subprocess.Popen(["sh", "-c", "sleep 300", "${marker}"])
sys.stdout.write(f"rank {os.environ['RANK']} started\\n"); sys.stdout.flush()
${then}
`

  it("a failing rank: the job ends, and its ranks' children with it", async () => {
    const marker = `fanout-leak-fail-${process.pid}`
    writeWork(
      'local_fail.py',
      SPAWNS(marker, 'time.sleep(1)\nif os.environ["RANK"] == "1": sys.exit(3)\ntime.sleep(300)'),
    )
    const job = startFanout(
      [
        '--hosts',
        'localhost',
        '--python',
        '/usr/bin/python3',
        '--nproc-per-node',
        '2',
        '--grace',
        '3',
        'local_fail.py',
      ],
      { env: torchFix() },
    )
    await job.waitFor(/rank 0 started[\s\S]*rank 1 started|rank 1 started[\s\S]*rank 0 started/)
    expect(localProcesses(marker).length).toBeGreaterThan(0)
    const run = await job.done
    expect(run.code, run.stderr).toBe(3)
    expect(await noLocalLeft(marker)).toEqual([])
  })

  it('Ctrl-C (SIGINT to fanout): nothing of the job is left', async () => {
    const marker = `fanout-leak-int-${process.pid}`
    writeWork('local_wait.py', SPAWNS(marker, 'time.sleep(300)'))
    const job = startFanout(
      ['--hosts', 'localhost', '--python', '/usr/bin/python3', '--nproc-per-node', '2', 'local_wait.py'],
      { env: torchFix() },
    )
    await job.waitFor(/rank 0 started[\s\S]*rank 1 started|rank 1 started[\s\S]*rank 0 started/)
    expect(localProcesses(marker)).toHaveLength(2)
    process.kill(job.pid, 'SIGINT')
    expect((await job.done).code).toBe(130)
    expect(await noLocalLeft(marker)).toEqual([])
  })

  it("SIGKILL to fanout: the watchdog stops the job on the channel's end (a pipe here), and nothing is left", async () => {
    const marker = `fanout-leak-kill-${process.pid}`
    writeWork('local_wait.py', SPAWNS(marker, 'time.sleep(300)'))
    const job = startFanout(
      [
        '--hosts',
        'localhost',
        '--python',
        '/usr/bin/python3',
        '--nproc-per-node',
        '2',
        '--heartbeat-timeout',
        '3',
        'local_wait.py',
      ],
      { env: torchFix() },
    )
    await job.waitFor(/rank 0 started[\s\S]*rank 1 started|rank 1 started[\s\S]*rank 0 started/)
    process.kill(job.pid, 'SIGKILL')
    await job.done
    const left = await noLocalLeft(marker, 8000)
    expect(left).toEqual([])
    expect(await noLocalLeft('fanout-watchdog', 4000)).toEqual([])
  })
})
