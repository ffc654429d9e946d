import { execFileSync } from 'node:child_process'
import { afterEach, beforeAll, expect, it } from 'vitest'
import {
  cluster,
  clusterArgs,
  describeCluster,
  host,
  runFanout,
  sshdSessions,
  startFanout,
  waitNoSurvivors,
  writeWork,
  type RunningFanout,
} from './cluster.js'

// Every scenario ends with: no process but sshd on any host, and the rendezvous port free again
// (nothing listens on it; after Ctrl-C and SIGKILL, on either torch, a real job relaunches on it at once).
// Most run on Debian 12's torch 1.13 (h1-h3); the core set runs on Debian 13's torch 2.6 (d1-d3) too,
// whose agents start every worker in a session of its own.
const HOSTS = ['h1', 'h2', 'h3']
const TORCH2 = ['d1', 'd2', 'd3']
const hostfile = (hosts = HOSTS): string => writeWork(`hosts-teardown-${hosts[0]}`, hosts.join('\n') + '\n')
let port = 29600
const nextPort = (): string => String(++port)

// Trains "forever" in small all_reduce steps. Options choose a rank that fails, hangs or ignores SIGINT.
const FOREVER = `
import os, signal, sys, time, torch, torch.distributed as dist
rank = int(os.environ["RANK"])
if "--ignore-int" in sys.argv:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
if "--hang" in sys.argv and rank == 5:
    time.sleep(100000)  # never joins: the others finish without it
dist.init_process_group("gloo")
if "--hang" in sys.argv:
    sys.stdout.write(f"rank {rank} done\\n"); sys.stdout.flush()
    sys.exit(0)
step = 0
while True:
    step += 1
    t = torch.ones(1)
    dist.all_reduce(t)
    if rank == 0:
        sys.stdout.write(f"step {step}\\n"); sys.stdout.flush()
    if "--fail" in sys.argv and rank == 3 and step == 3:
        raise RuntimeError("rank 3 blew up")
    time.sleep(0.2)
`
const QUICK = `
import sys, torch.distributed as dist
dist.init_process_group("gloo")
dist.barrier()
sys.stdout.write(f"rank {dist.get_rank()} relaunched\\n")
`

const args = (masterPort: string, ...extra: string[]): string[] => argsOn(HOSTS, masterPort, ...extra)
const argsOn = (hosts: string[], masterPort: string, ...extra: string[]): string[] => [
  '-H',
  hostfile(hosts),
  ...clusterArgs(),
  '--master-port',
  masterPort,
  ...extra,
]

/** Starts forever.py on the three hosts and waits until it is training (rank 0 printed step 3). */
async function startTraining(
  masterPort: string,
  flags: string[] = [],
  scriptArgs: string[] = [],
  hosts = HOSTS,
): Promise<RunningFanout> {
  const job = startFanout([...argsOn(hosts, masterPort, ...flags), 'forever.py', ...scriptArgs])
  await job.waitFor(/step 3\n/)
  return job
}

/** Nothing is left on any host, and nothing listens on the rendezvous port on node 0 any more. */
async function expectClean(masterPort: string, hosts = HOSTS): Promise<void> {
  expect(await waitNoSurvivors(hosts.map(host), 3000)).toEqual([])
  const master = host(hosts[0] as string)
  const listening = execFileSync('ip', ['netns', 'exec', master.namespace, 'ss', '-Htln', `sport = :${masterPort}`], {
    encoding: 'utf8',
  })
  expect(listening.trim()).toBe('')
}

/** As expectClean, and the same rendezvous port works for an immediate relaunch (a real torchrun job). */
async function expectCleanAndRelaunchable(masterPort: string, hosts = HOSTS): Promise<void> {
  await expectClean(masterPort, hosts)
  const again = await runFanout([...argsOn(hosts, masterPort, '--nproc-per-node', '1'), 'quick.py'])
  expect(again.code, again.stderr).toBe(0)
  expect(again.stdout.match(/relaunched/g)).toHaveLength(3)
}

afterEach(async () => {
  for (const h of [...HOSTS, ...TORCH2]) execFileSync('ip', ['link', 'set', host(h).link, 'up'])
  expect(await waitNoSurvivors(cluster?.hosts ?? [], 10_000)).toEqual([])
})
beforeAll(() => {
  writeWork('forever.py', FOREVER)
  writeWork('quick.py', QUICK)
})

describeCluster('teardown: no remote process outlives the job', () => {
  // SIGTERM and SIGHUP (terminal closed) to fanout behave like the first Ctrl-C.
  it.each<[NodeJS.Signals, number, string]>([
    ['SIGINT', 130, 'Ctrl-C'],
    ['SIGTERM', 143, 'SIGTERM'],
    ['SIGHUP', 129, 'SIGHUP'],
  ])('%s to fanout: SIGINT reaches every node, fanout exits %i, the port is free again', async (signal, code, what) => {
    const p = nextPort()
    const job = await startTraining(p)
    process.kill(job.pid, signal)
    const run = await job.done
    expect(run.code, run.stderr).toBe(code)
    expect(run.stderr).toContain(`${what}: sending SIGINT to 3 node(s)`)
    // One relaunch proves the port free (the others take the same path after the signal).
    await (signal === 'SIGINT' ? expectCleanAndRelaunchable(p) : expectClean(p))
  })

  it('two Ctrl-C in quick succession kill at once, even when the workers ignore SIGINT', async () => {
    const p = nextPort()
    const job = await startTraining(p, ['--grace', '60'], ['--ignore-int'])
    process.kill(job.pid, 'SIGINT')
    await new Promise((r) => setTimeout(r, 300))
    process.kill(job.pid, 'SIGINT')
    const run = await job.done
    expect(run.code).toBe(130)
    expect(run.stderr).toContain('second Ctrl-C: killing')
    expect(run.ms).toBeLessThan(60_000) // not the 60 s grace: the second Ctrl-C did it
    await expectClean(p)
  })

  it('one Ctrl-C, workers ignoring SIGINT: SIGKILL when the grace period runs out', async () => {
    const p = nextPort()
    const job = await startTraining(p, ['--grace', '3'], ['--ignore-int'])
    process.kill(job.pid, 'SIGINT')
    const run = await job.done
    expect(run.code).toBe(130)
    expect(run.stderr).toContain('grace period over: killing 3 node(s) still running')
    await expectClean(p)
  })

  it('works the same for a root login (sshd refuses "signal" requests for root; fanout does not need them)', async () => {
    const p = nextPort()
    const job = await startTraining(p, ['--user', 'root'])
    process.kill(job.pid, 'SIGKILL')
    await job.done
    expect(await waitNoSurvivors(HOSTS.map(host), 6000)).toEqual([])
    await expectClean(p)
  })

  it("--no-kill-on-failure lets the other nodes finish; the exit code is still the failed node's", async () => {
    writeWork(
      'one_fails.py',
      `
import os, sys, time
time.sleep(2)
if os.environ["GROUP_RANK"] == "1":
    sys.exit(3)
sys.stdout.write(f"rank {os.environ['RANK']} finished its work\\n")
`,
    )
    const run = await runFanout([...args(nextPort(), '--no-kill-on-failure'), 'one_fails.py'])
    expect(run.code).toBe(3)
    expect(run.stdout.match(/finished its work/g)).toHaveLength(4)
    expect(run.stderr).toMatch(/n0\s+h1\s+0-1\s+exit 0/)
    expect(run.stderr).toMatch(/n2\s+h3\s+4-5\s+exit 0/)
    expect(run.stderr).toContain('first failure: node 1 (h2): local rank')
    expect(run.stderr).not.toContain('stopping all')
  })

  it("SIGKILL to fanout: each node's watchdog sees the channel close and stops the job", async () => {
    const p = nextPort()
    const job = await startTraining(p, ['--heartbeat-timeout', '5'])
    process.kill(job.pid, 'SIGKILL')
    const killedAt = Date.now()
    await job.done
    expect(await waitNoSurvivors(HOSTS.map(host), 6000)).toEqual([])
    expect(Date.now() - killedAt).toBeLessThan(6000) // ≤ heartbeat timeout + 1 s
    await expectCleanAndRelaunchable(p)
  })

  it('a rank raising an exception on one node stops the whole job; the summary names that node', async () => {
    const p = nextPort()
    const run = await runFanout([...args(p), 'forever.py', '--fail'])
    expect(run.code).toBe(1)
    // Its peers fail too ("connection closed by peer"), and may be reported first: fanout then stops
    // h2's torchrun too, maybe before it reports its worker. Either way the summary names the node
    // whose rank raised, with the exception among the last lines it printed.
    expect(run.stderr).toMatch(
      /first failure: node 1 \(h2\): (local rank \d exited with code 1( after rank 3 raised RuntimeError: rank 3 blew up)?|exit 1 \(error\) after rank 3 raised RuntimeError: rank 3 blew up)\nlast lines it printed:\n(  .*\n)*  \[r3\] RuntimeError: rank 3 blew up/,
    )
    expect(run.stderr).toMatch(/node \d \(h\d\) failed: .*stopping all 3 running node\(s\)/)
    await expectClean(p)
  })

  it('a node whose torchrun does not act on the stop (its ranks done, a peer failed) is killed once its workers are gone, not after --grace', async () => {
    // torch's agent defers its SIGTERM handler while blocked in a store call (its exit barrier, after its
    // own ranks succeeded, waits up to 300 s for the failed node): a race fanout's SIGTERM sometimes
    // loses. A rank on h1 stops its agent (SIGSTOP) and exits 0, which makes that deterministic: the
    // agent is left with no worker, deaf to SIGTERM. The rank on h2 then fails.
    writeWork(
      'deaf_agent.py',
      [
        'import os, signal, sys, time',
        'if os.environ["GROUP_RANK"] == "0":',
        '    os.kill(os.getppid(), signal.SIGSTOP)',
        '    sys.exit(0)',
        'time.sleep(2)',
        'raise SystemExit("rank %s fails" % os.environ["RANK"])',
      ].join('\n') + '\n',
    )
    const run = await runFanout([
      '--hosts',
      'h1,h2',
      ...clusterArgs(),
      '--master-port',
      nextPort(),
      '--nproc-per-node',
      '1',
      '--grace',
      '60',
      'deaf_agent.py',
    ])
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(/first failure: node 1 \(h2\)/)
    expect(run.stderr).not.toMatch(/grace period over/)
    expect(run.ms).toBeLessThan(30_000)
    expect(await waitNoSurvivors(['h1', 'h2'].map(host), 3000)).toEqual([])
  })

  it("one node's sshd session killed mid-run: the node is lost, the others are stopped", async () => {
    const p = nextPort()
    const job = await startTraining(p)
    for (const pid of sshdSessions(host('h2'))) process.kill(pid, 'SIGKILL')
    const run = await job.done
    expect(run.code).toBe(255)
    expect(run.stderr).toMatch(/first failure: node 1 \(h2\): connection lost/)
    await expectClean(p)
  })

  it("one host's link cut: its watchdog stops the job on the heartbeat timeout, fanout stops the rest", async () => {
    const p = nextPort()
    const job = await startTraining(p, ['--heartbeat-timeout', '3', '--keepalive', '1'])
    execFileSync('ip', ['link', 'set', host('h2').link, 'down'])
    const cutAt = Date.now()
    // No EOF can reach h2: only the missing heartbeats tell its watchdog.
    expect(await waitNoSurvivors([host('h2')], 5000)).toEqual([])
    expect(Date.now() - cutAt).toBeLessThan(5000) // ≤ heartbeat timeout + ~1 s
    const run = await job.done
    expect(run.code).toBe(255)
    expect(run.stderr).toMatch(/first failure: node 1 \(h2\): connection lost/)
    execFileSync('ip', ['link', 'set', host('h2').link, 'up'])
    await expectClean(p)
  })

  it('--timeout ends a job where one rank hangs forever while the others finish (exit 124)', async () => {
    const p = nextPort()
    const run = await runFanout([...args(p, '--timeout', '20s'), 'forever.py', '--hang'])
    expect(run.code).toBe(124)
    expect(run.stderr).toContain('timeout: sending SIGTERM to')
    expect(run.ms).toBeLessThan(45_000)
    await expectClean(p)
  })

  it('stopping one job leaves another fanout job on the same hosts untouched', async () => {
    writeWork(
      'steady.py',
      `
import os, sys, time, torch.distributed as dist
dist.init_process_group("gloo")
time.sleep(12)
dist.barrier()
sys.stdout.write(f"steady rank {dist.get_rank()} finished\\n")
`,
    )
    const steady = startFanout([...args(nextPort(), '--nproc-per-node', '1'), 'steady.py'])
    const victim = await startTraining(nextPort())
    process.kill(victim.pid, 'SIGINT')
    expect((await victim.done).code).toBe(130)
    const run = await steady.done
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout.match(/steady rank \d finished/g)).toHaveLength(3)
  })
})

describeCluster('teardown on torch 2.6 hosts (Debian 13): workers in sessions of their own go too', () => {
  // torch 2.x starts each worker in a session of its own: the watchdog must still see it as its agent's
  // running worker, or the agent (idle in its eyes) would be killed 2 s after the stop, and the worker
  // with it, in the middle of its checkpoint.
  it.each([
    ['torch 1.13', HOSTS.slice(0, 2)],
    ['torch 2.6', TORCH2.slice(0, 2)],
  ])('Ctrl-C (%s): a worker that saves a checkpoint on SIGINT gets the --grace it needs', async (_torch, hosts) => {
    writeWork(
      'slow_stop.py',
      `
import signal, sys, time, torch.distributed as dist
dist.init_process_group("gloo")
rank = dist.get_rank()
def save(n, f):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # torch 1.13 gets SIGINT twice: from its group and its agent
    sys.stdout.write(f"rank {rank} saving a checkpoint\\n"); sys.stdout.flush()
    time.sleep(6)
    sys.stdout.write(f"rank {rank} checkpoint saved\\n"); sys.stdout.flush()
    sys.exit(0)
signal.signal(signal.SIGINT, save)
sys.stdout.write(f"rank {rank} training\\n"); sys.stdout.flush()
while True:
    time.sleep(0.2)
`,
    )
    const job = startFanout([...argsOn(hosts, nextPort(), '--nproc-per-node', '1', '--grace', '20'), 'slow_stop.py'])
    await job.waitFor(/rank 0 training\n[^]*rank 1 training\n|rank 1 training\n[^]*rank 0 training\n/)
    process.kill(job.pid, 'SIGINT')
    const run = await job.done
    expect(run.code).toBe(130)
    expect(run.stdout.match(/rank \d checkpoint saved/g)).toHaveLength(2)
    expect(run.stderr).not.toContain('grace period over')
    expect(await waitNoSurvivors(hosts.map(host), 5000)).toEqual([])
  })

  it('Ctrl-C: SIGINT reaches every node, fanout exits 130, nothing is left, the port is free again', async () => {
    const p = nextPort()
    const job = await startTraining(p, [], [], TORCH2)
    process.kill(job.pid, 'SIGINT')
    const run = await job.done
    expect(run.code, run.stderr).toBe(130)
    expect(run.stderr).toContain('Ctrl-C: sending SIGINT to 3 node(s)')
    await expectCleanAndRelaunchable(p, TORCH2)
  })

  it("SIGKILL to fanout: each node's watchdog sees the channel close and stops the job", async () => {
    const p = nextPort()
    const job = await startTraining(p, ['--heartbeat-timeout', '5'], [], TORCH2)
    process.kill(job.pid, 'SIGKILL')
    const killedAt = Date.now()
    await job.done
    expect(await waitNoSurvivors(TORCH2.map(host), 6000)).toEqual([])
    expect(Date.now() - killedAt).toBeLessThan(6000)
    await expectCleanAndRelaunchable(p, TORCH2)
  })

  it('a rank raising an exception on one node stops the whole job; the summary names that node', async () => {
    const p = nextPort()
    const run = await runFanout([...argsOn(TORCH2, p), 'forever.py', '--fail'])
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(
      /first failure: node 1 \(d2\): (local rank \d exited with code 1( after rank 3 raised RuntimeError: rank 3 blew up)?|exit 1 \(error\) after rank 3 raised RuntimeError: rank 3 blew up)\nlast lines it printed:\n(  .*\n)*  \[r3\] \[rank3\]: RuntimeError: rank 3 blew up/,
    )
    await expectClean(p, TORCH2)
  })

  it("one host's link cut: its watchdog stops the job on the heartbeat timeout, fanout stops the rest", async () => {
    const p = nextPort()
    const job = await startTraining(p, ['--heartbeat-timeout', '3', '--keepalive', '1'], [], TORCH2)
    execFileSync('ip', ['link', 'set', host('d2').link, 'down'])
    const cutAt = Date.now()
    expect(await waitNoSurvivors([host('d2')], 5000)).toEqual([])
    expect(Date.now() - cutAt).toBeLessThan(5000)
    const run = await job.done
    expect(run.code).toBe(255)
    expect(run.stderr).toMatch(/first failure: node 1 \(d2\): connection lost/)
    execFileSync('ip', ['link', 'set', host('d2').link, 'up'])
    await expectClean(p, TORCH2)
  })
})
