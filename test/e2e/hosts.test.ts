import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterEach, expect, it } from 'vitest'
import {
  cluster,
  clusterArgs,
  connectionCount,
  describeCluster,
  host,
  runFanout,
  waitNoSurvivors,
  writeWork,
} from './cluster.js'

const NODES = ['h1', 'h2', 'h3'].map(host)
const BIN = fileURLToPath(new URL('../../bin/fanout.js', import.meta.url))

// One line per rank, written in one write: ranks of a node share its pipe.
const SHOW_GPUS = `
import os, sys
e = os.environ
sys.stdout.write(f"node {e['GROUP_RANK']} local {e['LOCAL_RANK']} of {e['LOCAL_WORLD_SIZE']} world {e['WORLD_SIZE']} cvd {e.get('CUDA_VISIBLE_DEVICES', '-')}\\n")
`

/** Runs `fanout ARGS` with `input` on its stdin (runFanout gives the child none). */
function fanoutWithInput(
  args: string[],
  input: string,
  env: NodeJS.ProcessEnv = {},
): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--', BIN, ...args], {
    cwd: cluster?.work,
    input,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', SSH_AUTH_SOCK: '', ...env },
    timeout: 30_000,
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** The lines the script printed, without node prefixes, sorted (ranks print in any order). */
const scriptLines = (stdout: string): string[] =>
  stdout
    .split('\n')
    .filter((l) => / node \d+ local /.test(l))
    .sort()

afterEach(async () => {
  expect(await waitNoSurvivors(cluster?.hosts ?? [])).toEqual([])
})

describeCluster('host ranges and selection against the 3-host cluster', () => {
  it('a hostfile range with --include "h1:1@h3" runs 1 process on h1 (GPU 1) and all of h3, nothing on h2', async () => {
    writeWork('show_gpus.py', SHOW_GPUS)
    const file = writeWork('hosts-range', '# 2 stand-in GPUs each\nh[1-3] slots=2\n')
    const before = NODES.map(connectionCount)
    const run = await runFanout(['-H', file, '--include', 'h1:1@h3', ...clusterArgs(), 'show_gpus.py'])
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr).toContain('2 node(s), 3 process(es): 1 + 2')
    expect(scriptLines(run.stdout)).toEqual([
      '[n0 h1 r0]  node 0 local 0 of 1 world 3 cvd 1',
      // A bare host keeps all of it (DeepSpeed#6671 dropped it): slots=2, no CUDA_VISIBLE_DEVICES from fanout.
      '[n1 h3 r1]  node 1 local 0 of 2 world 3 cvd -',
      '[n1 h3 r2]  node 1 local 1 of 2 world 3 cvd -',
    ])
    const [h1, h2, h3] = NODES.map(connectionCount).map((n, i) => n - (before[i] ?? 0))
    expect({ h1, h2, h3 }).toEqual({ h1: 1, h2: 0, h3: 1 })
  })

  it('--hosts with a range, --exclude and --num-gpus: one process on GPU 0 of h2 and of h3', async () => {
    writeWork('show_gpus.py', SHOW_GPUS)
    const before = NODES.map(connectionCount)
    const run = await runFanout([
      '--hosts',
      'h[1-3]',
      '--exclude',
      'h1',
      '--num-gpus',
      '1',
      ...clusterArgs(),
      'show_gpus.py',
    ])
    expect(run.code, run.stderr).toBe(0)
    expect(scriptLines(run.stdout)).toEqual([
      '[n0 h2 r0]  node 0 local 0 of 1 world 2 cvd 0',
      '[n1 h3 r1]  node 1 local 0 of 1 world 2 cvd 0',
    ])
    expect(connectionCount(host('h1'))).toBe(before[0])
  })

  it('fanout hosts --json shows the same selection and connects to nothing', async () => {
    const file = writeWork('hosts-range', 'h[1-3] slots=2\n')
    const before = NODES.map(connectionCount)
    const run = await runFanout(['hosts', '-H', file, '--include', 'h1:1@h3', '--json'])
    expect(run.code, run.stderr).toBe(0)
    expect(JSON.parse(run.stdout)).toEqual([
      { rank: 0, host: 'h1', user: null, port: null, slots: 1, gpus: [1] },
      { rank: 1, host: 'h3', user: null, port: null, slots: 2, gpus: null },
    ])
    // From stdin, as a table; and from a SLURM allocation's node list.
    const piped = fanoutWithInput(['hosts', '--hostfile', '-', '--exclude', 'h2:0'], 'h[1-3] slots=2\n')
    expect(piped.code, piped.stderr).toBe(0)
    expect(piped.stdout.split('\n')[2]).toBe('1     h2    -     -     1      1')
    const slurm = await runFanout(['hosts', '--json', '--num-nodes', '2'], {
      env: { SLURM_JOB_NODELIST: 'h[1-3]', SLURM_GPUS_ON_NODE: '2' },
    })
    expect(slurm.code, slurm.stderr).toBe(0)
    expect(JSON.parse(slurm.stdout).map((r: { host: string; slots: number }) => `${r.host}=${r.slots}`)).toEqual([
      'h1=2',
      'h2=2',
    ])
    expect(NODES.map(connectionCount)).toEqual(before)
  })

  it('every mistake of a piped hostfile and of a filter is reported at once, exit 2, before connecting', async () => {
    const before = NODES.map(connectionCount)
    const bad = fanoutWithInput(['-H', '-', ...clusterArgs(), 'show_gpus.py'], 'h[1-3]\nh[5-1]\nh4 slots=x\nh[2-3]\n')
    expect(bad.code).toBe(2)
    expect(bad.stderr).toBe(
      [
        'fanout: <stdin>:2: invalid host range "h[5-1]": "5-1" runs backwards',
        'fanout: <stdin>:3: invalid slots "x" (expected a whole number from 1 to 4096)',
        'fanout: <stdin>:4: duplicate host "h2" (first at <stdin>:1) and 1 more',
        '',
      ].join('\n'),
    )
    const filter = await runFanout([
      '--hosts',
      'h[1-3]',
      '--include',
      'h9@h1@h2',
      '--exclude',
      'h2:0',
      ...clusterArgs(),
      'show_gpus.py',
    ])
    expect(filter.code).toBe(2)
    expect(filter.stderr).toContain('fanout: --include: unknown host h9 (not in the host list)')
    expect(filter.stderr).toContain(
      'fanout: --exclude: cannot exclude GPU 0 of h2: its GPU count is unknown (give it slots=N in the host list)',
    )
    expect(NODES.map(connectionCount)).toEqual(before)
  })
})
