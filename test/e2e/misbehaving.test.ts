import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, expect, it } from 'vitest'
import {
  cluster,
  clusterArgs,
  describeCluster,
  host,
  runFanout,
  sessionCount,
  startFanout,
  waitNoSurvivors,
  writeWork,
  type ClusterHost,
} from './cluster.js'

// Issue 20: clusters that are not uniform, and jobs that hang. Each check refuses before anything is
// launched, or names what hangs, on the namespaced cluster (h*: Debian 12, torch 1.13; d*: Debian 13,
// torch 2.6, host names that resolve nowhere).

const ALLREDUCE = `
import os, sys, torch, torch.distributed as dist
dist.init_process_group("gloo")
t = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
sys.stdout.write(f"rank {dist.get_rank()} of {dist.get_world_size()} sum {t.item():.0f}\\n")
dist.destroy_process_group()
`
const HELLO = 'import os, sys\nsys.stdout.write(f"hello from rank {os.environ[\'RANK\']}\\n")\n'
const sessions = (hosts: ClusterHost[]): number => hosts.reduce((n, h) => n + sessionCount(h), 0)

afterEach(async () => {
  expect(await waitNoSurvivors(cluster?.hosts ?? [], 10_000)).toEqual([])
})

describeCluster('refused before launch: what cannot work', () => {
  it('a torch 1.13 + 2.6 cluster is refused in seconds, naming both versions and their nodes (exit 2); --allow-version-skew lets check pass', async () => {
    writeWork('allreduce.py', ALLREDUCE)
    const run = await runFanout(['--hosts', 'h1,d2,d3', ...clusterArgs(), 'allreduce.py'])
    expect(run.code, run.stderr).toBe(2)
    expect(run.ms).toBeLessThan(20_000)
    expect(run.stderr).toMatch(
      /node +host +python +torch +gpus +pre-flight\nn0 +h1 +3\.11\.\d+ +1\.13\S* +2 +ok\nn1 +d2 +3\.13\.\d+ +2\.6\.\S+ +2 +ok\nn2 +d3 +3\.13\.\d+ +2\.6\.\S+ +2 +ok\n/,
    )
    expect(run.stderr).toMatch(
      /nodes run different torch versions, which cannot rendezvous with each other: torch 1\.13 on n0 \(1\.13\S*\); torch 2\.6 on n1-n2 \(2\.6\.\S+\)/,
    )
    expect(run.stderr).not.toMatch(/launch:|reach:/)
    expect(run.stdout).toBe('')
    const allowed = await runFanout([
      'check',
      '--hosts',
      'h1,d2,d3',
      ...clusterArgs(),
      '--allow-version-skew',
      'allreduce.py',
    ])
    expect(allowed.code, allowed.stderr).toBe(0)
    expect(allowed.stderr).toMatch(/warning: nodes run different torch versions, which cannot rendezvous/)
  })

  it('a node behind a firewall that lets SSH through is refused in seconds, naming it, the master address and port, and its interface', async () => {
    writeWork('hello.py', HELLO)
    // h3 drops every TCP connection it opens to h1, except to sshd.
    const nft = (script: string): void =>
      void execFileSync('ip', ['netns', 'exec', 'fo-h3', 'nft', '-f', '-'], { input: script })
    nft(
      'table inet fo_fw {\n chain out {\n  type filter hook output priority 0;\n  ip daddr 10.99.0.11 tcp dport != 22 drop\n }\n}\n',
    )
    try {
      const before = sessions(['h1', 'h2', 'h3'].map(host))
      const run = await runFanout(['--hosts', 'h1,h2,h3', ...clusterArgs(), 'hello.py'])
      expect(run.code, run.stderr).toBe(2)
      expect(run.ms).toBeLessThan(30_000)
      expect(run.stderr).toMatch(
        /node 2 \(h3\): cannot connect to the master at 10\.99\.0\.11:\d+ \(node 0's rendezvous port\) through eno1: timed out after 10 s/,
      )
      expect(run.stderr).not.toMatch(/node [01] \(h[12]\): cannot connect/)
      expect(run.stdout).not.toContain('hello from rank')
      // The check cost no session of its own: one per node, the probe's, which ran nothing more.
      expect(sessions(['h1', 'h2', 'h3'].map(host)) - before).toBe(3)
    } finally {
      nft('delete table inet fo_fw\n')
    }
  })

  it('a GPU held by a stale process is refused naming node, GPU, pid, user and command; check shows it; --wait-for-gpus waits for it; --allow-busy-gpus launches', async () => {
    writeWork('hello.py', HELLO)
    // A process of another user on h2 "holds" GPU 1 (the stand-in nvidia-smi reports it).
    const holder: ChildProcess = spawn(
      'ip',
      ['netns', 'exec', 'fo-h2', 'runuser', '-u', 'fanout-dash', '--', 'sleep', '300'],
      { stdio: 'ignore' },
    )
    const apps = join(cluster?.dir ?? '', 'gpu-apps', 'fo-h2')
    try {
      await new Promise((r) => setTimeout(r, 300))
      const pid = Number(
        execFileSync('pgrep', ['-u', 'fanout-dash', '-x', 'sleep'], { encoding: 'utf8' }).trim().split('\n')[0],
      )
      writeFileSync(apps, `1 ${pid} 30000\n`)
      const want = new RegExp(`node 1 \\(h2\\): GPU 1 is held by pid ${pid} \\(fanout-dash: sleep 300, 30000 MiB\\)`)
      const refused = await runFanout(['--hosts', 'h1,h2,h3', ...clusterArgs(), 'hello.py'])
      expect(refused.code, refused.stderr).toBe(2)
      expect(refused.stderr).toMatch(want)
      expect(refused.stderr).toMatch(
        /GPUs held by processes that are not part of this launch: .*--wait-for-gpus.*--allow-busy-gpus/,
      )
      expect(refused.stdout).not.toContain('hello from rank')
      const check = await runFanout(['check', '--hosts', 'h1,h2,h3', ...clusterArgs(), 'hello.py'])
      expect(check.code).toBe(2)
      expect(check.stderr).toMatch(new RegExp(`n1 +h2 .* GPU 1 is held by pid ${pid}`))
      // One process per node uses GPU 0 only: GPU 1 is not in the way.
      expect(
        (await runFanout(['check', '--hosts', 'h1,h2,h3', ...clusterArgs(), '--nproc-per-node', '1', 'hello.py'])).code,
      ).toBe(0)
      const allowed = await runFanout(['--hosts', 'h1,h2,h3', ...clusterArgs(), '--allow-busy-gpus', 'hello.py'])
      expect(allowed.code, allowed.stderr).toBe(0)
      expect(allowed.stderr).toMatch(/warning: node 1 \(h2\): GPU 1 is held by pid \d+ .*\(--allow-busy-gpus\)/)
      expect(allowed.stdout.match(/hello from rank/g)).toHaveLength(6)
      // Freed 4 s into a 60 s wait: the launch goes on.
      const waiting = startFanout(['--hosts', 'h1,h2,h3', ...clusterArgs(), '--wait-for-gpus', '60s', 'hello.py'])
      await waiting.waitFor(/waiting up to \d+ s for busy GPUs:\nnode 1 \(h2\): GPU 1 is held by pid/)
      setTimeout(() => process.kill(pid, 'SIGKILL'), 4000)
      const run = await waiting.done
      expect(run.code, run.stderr).toBe(0)
      expect(run.stderr).toMatch(/the GPUs are free after \d+ s/)
      expect(run.stdout.match(/hello from rank/g)).toHaveLength(6)
    } finally {
      holder.kill('SIGKILL')
      rmSync(apps, { force: true })
      spawn('pkill', ['-KILL', '-u', 'fanout-dash', '-x', 'sleep'], { stdio: 'ignore' })
    }
  })
})

describeCluster('c10d without name resolution', () => {
  it('torch 1.13 has no --local-addr: a c10d launch where a node cannot resolve the name torch will hand its workers is refused, naming it', async () => {
    writeWork('allreduce.py', ALLREDUCE)
    // fo-h1 (node 0's host name, the smallest: torch's rank-0 agent) stops resolving on this machine's
    // hosts (h1-h3 use its /etc/hosts), as on a lab machine nobody put in DNS.
    const hosts = readFileSync('/etc/hosts', 'utf8')
    writeFileSync(
      '/etc/hosts',
      hosts
        .split('\n')
        .filter((l) => !/ fo-h1 # fanout-test-cluster$/.test(l))
        .join('\n'),
    )
    try {
      const run = await runFanout(['--hosts', 'h1,h2,h3', ...clusterArgs(), '--rdzv-backend', 'c10d', 'allreduce.py'])
      expect(run.code, run.stderr).toBe(2)
      for (const [n, h] of [
        [1, 'h2'],
        [2, 'h3'],
      ]) {
        expect(run.stderr).toContain(
          `node ${n} (${h}): cannot resolve node 0's host name fo-h1, which torch's c10d rendezvous gives the workers as their master's address`,
        )
      }
      expect(run.stdout).toBe('')
    } finally {
      writeFileSync('/etc/hosts', hosts)
    }
    // Resolvable again: the same launch runs.
    const ok = await runFanout([
      '--hosts',
      'h1,h2,h3',
      ...clusterArgs(),
      '--rdzv-backend',
      'c10d',
      '--nproc-per-node',
      '1',
      'allreduce.py',
    ])
    expect(ok.code, ok.stderr).toBe(0)
    expect(ok.stdout.match(/sum 6/g)).toHaveLength(3)
  })
})

describeCluster('named while it hangs: where each rank is stuck', () => {
  // Rank 4 waits forever in a function of its own; the others in an all-reduce that needs it.
  const HANG = `
import os, sys, time, torch, torch.distributed as dist
dist.init_process_group("gloo")
rank = dist.get_rank()
def stuck_in_data_loader():
    while True:
        time.sleep(1)
def reduce_with_peers():
    t = torch.ones(1)
    dist.all_reduce(t)
sys.stdout.write(f"rank {rank} started\\n")
sys.stdout.flush()
if rank == 4:
    stuck_in_data_loader()
reduce_with_peers()
`

  it("--timeout on a hung 6-rank job (torch 2.6): every rank's Python stack is shown before it is stopped, naming the stuck function", async () => {
    writeWork('hang.py', HANG)
    const dir = mkdtempSync(join(tmpdir(), 'fanout-stacks-'))
    try {
      const run = await runFanout([
        '--hosts',
        'd1,d2,d3',
        ...clusterArgs(),
        '--timeout',
        '40s',
        '--log-dir',
        dir,
        'hang.py',
      ])
      expect(run.code, run.stderr).toBe(124)
      expect(run.stderr).toContain('timeout: the Python stack of every thread of every rank follows')
      // Rank 4's dump names its function, under its own prefix; the others are in their all-reduce.
      expect(run.stderr).toMatch(/\[n2 d3 r4\]! +File ".*hang\.py", line \d+ in stuck_in_data_loader/)
      for (const r of [0, 1, 2, 3, 5])
        expect(run.stderr).toMatch(
          new RegExp(`\\[n\\d d\\d r${r}\\]! +File ".*hang\\.py", line \\d+ in reduce_with_peers`),
        )
      // The stacks come before the stop, and the log directory keeps them too.
      expect(run.stderr.indexOf('in stuck_in_data_loader')).toBeLessThan(run.stderr.indexOf('timeout: sending SIGTERM'))
      const [runDir] = readdirSync(dir)
      expect(readFileSync(join(dir, runDir ?? '', 'node2-d3.log'), 'utf8')).toMatch(/in stuck_in_data_loader/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("SIGQUIT (Ctrl-\\) shows every rank's stack on demand, and the job goes on (torch 1.13)", async () => {
    writeWork(
      'steady_steps.py',
      `
import os, sys, time, torch.distributed as dist
dist.init_process_group("gloo")
def training_step(i):
    time.sleep(0.5)
for i in range(16):
    training_step(i)
    if dist.get_rank() == 0:
        sys.stdout.write(f"step {i}\\n"); sys.stdout.flush()
dist.barrier()
sys.stdout.write(f"rank {dist.get_rank()} done\\n")
`,
    )
    const job = startFanout(['--hosts', 'h1,h2', ...clusterArgs(), 'steady_steps.py'])
    await job.waitFor(/step 2\n/)
    process.kill(job.pid, 'SIGQUIT')
    await job.waitFor(/in training_step/)
    const run = await job.done
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr).toContain('SIGQUIT (Ctrl-\\): the Python stack of every thread of every rank follows')
    for (const r of [0, 1, 2, 3])
      expect(run.stderr).toMatch(
        new RegExp(`\\[n\\d h\\d r${r}\\]! +File ".*steady_steps\\.py", line \\d+ in training_step`),
      )
    expect(run.stdout.match(/rank \d done/g)).toHaveLength(4)
    // Before any job runs (here: the probe's set-up step), Ctrl-\ says there is nothing to show, and
    // does not end fanout (SIGQUIT's default would, with the nodes' shells still waiting).
    const early = startFanout([
      '--hosts',
      'h1,h2',
      ...clusterArgs(),
      '--setup',
      'sleep 3',
      '--launcher',
      'none',
      '--',
      'sh',
      '-c',
      'echo launched',
    ])
    await early.waitFor(/connect: /)
    process.kill(early.pid, 'SIGQUIT')
    const after = await early.done
    expect(after.code, after.stderr).toBe(0)
    expect(after.stderr).toContain('SIGQUIT (Ctrl-\\): no job is running now, so there are no stacks to show')
    expect(after.stdout.match(/launched/g)).toHaveLength(2)
  })

  it('a rendezvous that does not complete is named within --rdzv-timeout: the node that never joined, what it printed, exit 124', async () => {
    writeWork('allreduce.py', ALLREDUCE)
    // h3's job never gets to torchrun (its set-up hangs; the probe, without --env, does not).
    const run = await runFanout([
      '--hosts',
      'h1,h2,h3',
      ...clusterArgs(),
      '--rdzv-timeout',
      '20s',
      '--env',
      'HANG_ON=fo-h3',
      '--setup',
      '[ "$(hostname)" != "$HANG_ON" ] || { echo "waiting for the data volume"; sleep 600; }',
      'allreduce.py',
    ])
    expect(run.code, run.stderr).toBe(124)
    expect(run.ms).toBeLessThan(60_000)
    expect(run.stderr).toMatch(
      /rendezvous incomplete after 20 s \(--rdzv-timeout\): node 2 \(h3\) held it up; no node has started its workers; connected to the rendezvous store at 10\.99\.0\.11:\d+: node\(s\) 0, 1; not connected: node\(s\) 2/,
    )
    expect(run.stderr).toMatch(
      /first failure: node 2 \(h3\): its workers had not started 20 s after the launch: the rendezvous did not complete .*\nlast lines it printed:\n  waiting for the data volume/,
    )
  })
})

describeCluster('noise', () => {
  it('a C++ stack dump is one line in the terminal and whole in --log-dir', async () => {
    const frames = Array.from(
      { length: 31 },
      (_, i) =>
        `frame #${i}: c10::Error::Error(c10::SourceLocation, std::string) + 0x${(i * 16 + 150).toString(16)} (0x7f3b2c1d2e3f in /usr/lib/x86_64-linux-gnu/libc10.so)`,
    )
    writeWork(
      'cpp_trace.txt',
      [
        "terminate called after throwing an instance of 'c10::Error'",
        'Exception raised from recvBytes at ../torch/csrc/distributed/c10d/Utils.hpp:670 (most recent call first):',
        ...frames,
        'after the trace',
      ].join('\n') + '\n',
    )
    const dir = mkdtempSync(join(tmpdir(), 'fanout-frames-'))
    try {
      const run = await runFanout([
        '--hosts',
        'h1',
        ...clusterArgs(),
        '--log-dir',
        dir,
        '--launcher',
        'none',
        '--',
        'sh',
        '-c',
        'cat cpp_trace.txt >&2',
      ])
      expect(run.code, run.stderr).toBe(0)
      expect(run.stderr).toMatch(
        /\[n0 h1\] *! Exception raised from recvBytes .*\n\[n0 h1\] *! … 31 C\+\+ frames, in the log\n\[n0 h1\] *! after the trace\n/,
      )
      expect(run.stderr).not.toContain('frame #')
      const [runDir] = readdirSync(dir)
      expect(readFileSync(join(dir, runDir ?? '', 'node0-h1.log'), 'utf8').match(/frame #\d+:/g)).toHaveLength(31)
      const plain = await runFanout([
        '--hosts',
        'h1',
        ...clusterArgs(),
        '--launcher',
        'none',
        '--',
        'sh',
        '-c',
        'cat cpp_trace.txt >&2',
      ])
      expect(plain.stderr).toContain('… 31 C++ frames (not shown; --log-dir keeps them)')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
