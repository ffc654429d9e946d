import { existsSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { cluster, clusterArgs, describeCluster, runFanout, startFanout, writeWork, FLAKY } from './cluster.js'

const hostfile = (name: string, lines: string[]): string => writeWork(name, lines.join('\n') + '\n')

// Each rank reports what its launcher gave it, in one write (ranks of a node share a pipe).
const REPORT = `
import json, os, sys
import torch, torch.distributed as dist
dist.init_process_group("gloo")
t = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
env = {k: os.environ.get(k) for k in ["RANK", "LOCAL_RANK", "WORLD_SIZE", "GROUP_RANK"]}
sys.stdout.write("REPORT " + json.dumps({"argv": sys.argv[1:], "env": env, "sum": t.item()}) + "\\n")
`
const reports = (stdout: string): Array<{ argv: string[]; env: Record<string, string>; sum: number }> =>
  stdout
    .split('\n')
    .filter((l) => l.includes('REPORT '))
    .map((l) => JSON.parse(l.slice(l.indexOf('REPORT ') + 7)))

describeCluster('launchers', () => {
  it('heterogeneous nodes (2, 1 and 3 processes): WORLD_SIZE and the all-reduce sum are right on every rank', async () => {
    writeWork('report.py', REPORT)
    const run = await runFanout([
      '-H',
      hostfile('hosts-hetero', ['h1 slots=2', 'h2 slots=1', 'h3 slots=3']),
      ...clusterArgs(),
      'report.py',
    ])
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr).toContain('6 process(es): 2 + 1 + 3')
    const got = reports(run.stdout)
    expect(got.map((r) => Number(r.env.RANK)).sort()).toEqual([0, 1, 2, 3, 4, 5])
    for (const r of got) expect([r.env.WORLD_SIZE, r.sum]).toEqual(['6', 21])
    // Node ranks follow the hostfile: h2's single process is global rank 2.
    expect(run.stdout).toMatch(/\[n1 h2 r2\]\s+REPORT .*"RANK": "2"/)
  })

  // torch 1.x spells the flag with an underscore, torch 2.x with a dash.
  it.each([
    ['torch 1.13', ['h1', 'h2'], '--local_rank'],
    ['torch 2.6', ['d1', 'd2'], '--local-rank'],
  ])(
    'the legacy torch.distributed.launch passes the local rank to the script (%s: %s)',
    async (_torch, hosts, flag) => {
      writeWork('report.py', REPORT)
      const run = await runFanout([
        '-H',
        hostfile(`hosts-2-${hosts[0]}`, hosts),
        ...clusterArgs(),
        '--launcher',
        'launch',
        'report.py',
        '--lr',
        '0.1',
      ])
      expect(run.code, run.stderr).toBe(0)
      const got = reports(run.stdout)
      expect(got).toHaveLength(4)
      for (const r of got) expect(r.argv).toEqual([`${flag}=${r.env.LOCAL_RANK}`, '--lr', '0.1'])
      expect(got.map((r) => r.sum)).toEqual([10, 10, 10, 10])
    },
  )

  it('c10d rendezvous at the master, with a generated run id', async () => {
    writeWork('report.py', REPORT)
    const run = await runFanout([
      '-H',
      hostfile('hosts-3', ['h1', 'h2', 'h3']),
      ...clusterArgs(),
      '--rdzv-backend',
      'c10d',
      '--nproc-per-node',
      '1',
      'report.py',
    ])
    expect(run.code, run.stderr).toBe(0)
    const got = reports(run.stdout)
    expect(got.map((r) => r.sum)).toEqual([6, 6, 6])
    expect(got.map((r) => r.env.GROUP_RANK).sort()).toEqual(['0', '1', '2'])
  })

  it('-m runs a module', async () => {
    writeWork('report_mod.py', REPORT)
    const run = await runFanout([
      '-H',
      hostfile('hosts-2', ['h1', 'h2']),
      ...clusterArgs(),
      '-m',
      '--nproc-per-node',
      '1',
      'report_mod',
      'x',
    ])
    expect(run.code, run.stderr).toBe(0)
    expect(reports(run.stdout).map((r) => r.argv)).toEqual([['x'], ['x']])
  })

  it('--launcher none runs the command itself on 3 hosts, with rank and rendezvous in its environment', async () => {
    const run = await runFanout([
      '-H',
      hostfile('hosts-3', ['h1', 'h2', 'h3']),
      ...clusterArgs(),
      '--launcher',
      'none',
      '--master-port',
      '29555',
      '--',
      '/bin/sh',
      '-c',
      'echo "node $NODE_RANK of $NNODES at $MASTER_ADDR:$MASTER_PORT nproc $NPROC_PER_NODE args $*"',
      'sh',
      'a b',
    ])
    expect(run.code, run.stderr).toBe(0)
    for (const n of [0, 1, 2])
      expect(run.stdout).toContain(`[n${n} h${n + 1}]  node ${n} of 3 at 10.99.0.11:29555 nproc 2 args a b`)
  })
})

describeCluster('job-level restarts', () => {
  it('--restarts 1 relaunches every node after a failure, on a fresh port, with FANOUT_ATTEMPT', async () => {
    writeWork('flaky.py', FLAKY)
    const run = await runFanout([
      '-H',
      hostfile('hosts-3', ['h1', 'h2', 'h3']),
      ...clusterArgs(),
      '--restarts',
      '1',
      '--nproc-per-node',
      '1',
      'flaky.py',
    ])
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr).toMatch(/attempt 1 of 2 failed \(exit 5\); relaunching every node in 1 s on a fresh port/)
    expect(run.stderr).toMatch(
      /attempts:\n  attempt 1: failed, exit 5 \(first failure: node 1 \(h2\): local rank 0 exited with code 5\)\n  attempt 2: succeeded\n/,
    )
    const lines = run.stdout.split('\n').filter((l) => l.includes('attempt 2 node'))
    expect(lines).toHaveLength(3)
    for (const l of lines) expect(l).toContain('sum 3')
    const firstPort = /master 10\.99\.0\.11:(\d+) \(node 0/.exec(run.stderr)?.[1]
    const secondPort = /attempt 2 of 2: master 10\.99\.0\.11:(\d+)/.exec(run.stderr)?.[1]
    expect(firstPort).toMatch(/^\d+$/)
    expect(secondPort).toMatch(/^\d+$/)
    expect(secondPort).not.toBe(firstPort)
    expect(lines[0]).toContain(`port ${secondPort}`)
  })

  it('a Ctrl-C during the backoff ends the job: no further attempt (exit 130)', async () => {
    writeWork('always_fails.py', 'import os, sys\nsys.exit(4 if os.environ["GROUP_RANK"] == "1" else 0)\n')
    const job = startFanout([
      '-H',
      hostfile('hosts-3', ['h1', 'h2', 'h3']),
      ...clusterArgs(),
      '--restarts',
      '3',
      '--nproc-per-node',
      '1',
      'always_fails.py',
    ])
    await job.waitFor(/relaunching every node in 1 s/)
    process.kill(job.pid, 'SIGINT')
    const run = await job.done
    expect(run.code).toBe(130)
    expect(run.stderr).not.toContain('attempt 2 of 4: master')
  })
})

describeCluster('launchers on torch 2.6 hosts (Debian 13)', () => {
  it('--restarts 1 relaunches every node after a failure, on a fresh port', async () => {
    writeWork('flaky.py', FLAKY)
    const run = await runFanout([
      '-H',
      hostfile('hosts-d3', ['d1', 'd2', 'd3']),
      ...clusterArgs(),
      '--restarts',
      '1',
      '--nproc-per-node',
      '1',
      'flaky.py',
    ])
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr).toMatch(
      /attempts:\n  attempt 1: failed, exit 5 \(first failure: node 1 \(d2\): local rank 0 exited with code 5\)\n  attempt 2: succeeded\n/,
    )
    expect(run.stdout.split('\n').filter((l) => /attempt 2 node \d sum 3 port \d+$/.test(l))).toHaveLength(3)
  })

  it("c10d rendezvous on hosts whose names resolve nowhere: each node's torchrun is given its own address (--local-addr)", async () => {
    writeWork('report.py', REPORT)
    const run = await runFanout([
      '-H',
      hostfile('hosts-d3', ['d1', 'd2', 'd3']),
      ...clusterArgs(),
      '--rdzv-backend',
      'c10d',
      'report.py',
    ])
    expect(run.code, run.stderr).toBe(0)
    const got = reports(run.stdout)
    expect(got.map((r) => Number(r.env.RANK)).sort()).toEqual([0, 1, 2, 3, 4, 5])
    for (const r of got) expect(r.sum).toBe(21)
    const dry = await runFanout([
      '-H',
      hostfile('hosts-d3', ['d1', 'd2', 'd3']),
      ...clusterArgs(),
      '--rdzv-backend',
      'c10d',
      '--dry-run',
      'report.py',
    ])
    for (const [i, addr] of ['10.99.0.31', '10.99.0.32', '10.99.0.33'].entries())
      expect(dry.stdout).toMatch(
        new RegExp(
          `# node ${i} \\(d${i + 1}\\)\\n.* --rdzv-backend=c10d .*--local-addr=${addr.replace(/\./g, '\\.')} `,
        ),
      )
  })

  it('--launcher-args "--log-dir DIR" (a value that starts with --) reaches torchrun', async () => {
    writeWork('report.py', REPORT)
    const logs = join(cluster?.work ?? '', 'torchrun-logs')
    rmSync(logs, { recursive: true, force: true })
    const run = await runFanout([
      '-H',
      hostfile('hosts-d2', ['d1', 'd2']),
      ...clusterArgs(),
      '--nproc-per-node',
      '1',
      '--launcher-args',
      `--log-dir ${logs}`,
      'report.py',
    ])
    expect(run.code, run.stderr).toBe(0)
    expect(existsSync(logs)).toBe(true)
    expect(readdirSync(logs).length).toBeGreaterThan(0)
  })
})
