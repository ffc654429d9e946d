import { describe, expect, it } from 'vitest'
import { FanoutError } from '../../src/errors.js'
import { checkCluster, dryRun, launchJob } from '../../src/launch/run.js'
import type { RunOptions } from '../../src/launch/options.js'
import { FakeNode, fakeIo, type FakeNodeOptions } from './fake-cluster.js'

// The launch's orchestration (launch/), run against fake nodes (fake-cluster.ts) and a recording Ui:
// which node programs run where, in what order, and what the command returns. The end-to-end suite
// runs the same pipeline against real sshd hosts and torchrun.

/** A launch of `train.py` on localhost and 127.0.0.1 (local specs, no ssh config read), whose transports are the fakes. */
function options(over: Partial<RunOptions> = {}): RunOptions {
  return {
    mode: 'run',
    hosts: { hosts: 'localhost,127.0.0.1' },
    ssh: { identity: [], acceptNew: false, askPassword: false, connectTimeoutS: 5, maxHandshakes: 8, keepaliveS: 5 },
    job: {
      script: 'train.py',
      scriptArgs: [],
      chdir: '/work',
      python: 'python3',
      setup: [],
      env: { defaultEnv: false },
    },
    preflight: { strict: false, allowVersionSkew: false, allowBusyGpus: false },
    launcher: {
      kind: 'torchrun',
      module: false,
      noPython: false,
      useEnv: false,
      launcherArgs: [],
      monitorIntervalS: 0.25,
    },
    teardown: { killOnFailure: true, graceS: 2, heartbeatTimeoutS: 15, rdzvTimeoutS: 120 },
    output: { color: 'never', plain: true, timestamps: false, quiet: false, json: false, rankTags: true },
    ...over,
  }
}

const cluster = (...perNode: FakeNodeOptions[]): FakeNode[] => perNode.map((o, rank) => new FakeNode(rank, o))

describe('launch/: the pipeline against fake nodes', () => {
  it('a launch costs each node one session: the probe is held, checked for reach, and its shell runs the first attempt', async () => {
    const nodes = cluster(
      { job: () => ({ exitCode: 0, lines: ['hello from 0'] }) },
      { job: () => ({ exitCode: 0, lines: ['hello from 1'] }) },
    )
    const io = fakeIo(nodes)
    expect(await launchJob(options(), io)).toBe(0)
    expect(nodes.map((n) => n.ran)).toEqual([['fanout-held'], ['fanout-held']])
    expect(nodes.map((n) => n.heldOrders)).toEqual([
      ['reach', 'job'],
      ['reach', 'job'],
    ])
    expect(io.stdout.text()).toContain('hello from 1')
    expect(io.ui.said).toEqual(expect.arrayContaining(['phase connect', 'phase probe', 'phase reach', 'phase launch']))
    expect(nodes.every((n) => n.closed)).toBe(true)
  })

  it('a pre-flight refusal launches nothing: the held shells get EOF, every connection is closed, exit 2', async () => {
    const nodes = cluster({}, { facts: { script: 'missing' } })
    const io = fakeIo(nodes)
    const refused = await launchJob(options(), io).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(FanoutError)
    expect((refused as FanoutError).exitCode).toBe(2)
    expect((refused as FanoutError).message).toContain('node 1 (127.0.0.1): script train.py not found in /work')
    // Nothing but the probe ran, and no shell was told to run a job (or even to check reach).
    expect(nodes.map((n) => [n.ran, n.heldOrders])).toEqual([
      [['fanout-held'], []],
      [['fanout-held'], []],
    ])
    expect(io.ui.said).not.toContain('phase launch')
    expect(nodes.every((n) => n.closed)).toBe(true)
  })

  it('--restarts: after a failed attempt, a fresh port from node 0 and a fresh job command on every node', async () => {
    const nodes = cluster({}, { job: (attempt) => ({ exitCode: attempt === 1 ? 5 : 0 }) })
    const io = fakeIo(nodes)
    expect(await launchJob(options({ job: { ...options().job, restarts: 1 } }), io)).toBe(0)
    // Attempt 1 in the held shells; then node 0 is probed for a port, and both run attempt 2 as a new command.
    expect(nodes.map((n) => n.ran)).toEqual([
      ['fanout-held', 'fanout-probe', 'fanout-job'],
      ['fanout-held', 'fanout-job'],
    ])
    expect(io.ui.said).toContain('attempt 1 of 2 failed (exit 5); relaunching every node in 1 s on a fresh port')
    expect(io.ui.said.find((m) => m.startsWith('attempt 2 of 2: master'))).toBe(
      'attempt 2 of 2: master 10.0.0.11:29501',
    )
    expect(io.stderr.text()).toContain('attempts:\n  attempt 1: failed, exit 5')
  })

  it('fanout check: the pre-flight table, then the held shells are let go without a job', async () => {
    const nodes = cluster({}, {})
    const io = fakeIo(nodes)
    expect(await checkCluster(options({ mode: 'check' }), io)).toBe(0)
    expect(io.stderr.text()).toMatch(
      /node +host +python +torch +gpus +pre-flight\nn0 +localhost +3\.13\.5 +2\.6\.0 +2 +ok\nn1 +127\.0\.0\.1 /,
    )
    expect(nodes.map((n) => n.heldOrders)).toEqual([['reach'], ['reach']])
    expect(io.ui.said).not.toContain('phase launch')
  })

  it("--dry-run: each node's command, as torch 2 spells it, and nothing launched", async () => {
    const nodes = cluster({}, {})
    const io = fakeIo(nodes)
    expect(await dryRun(options({ mode: 'dry-run' }), io)).toBe(0)
    expect(io.stdout.text()).toMatch(
      /^# node 0 \(localhost\)\ncd \/work && .* -m torch\.distributed\.run --nnodes=2 --node-rank=0 --nproc-per-node=2 --master-addr=10\.0\.0\.11 --master-port=29500 /m,
    )
    expect(io.stdout.text()).toMatch(/^# node 1 \(127\.0\.0\.1\)\n.* --node-rank=1 /m)
    expect(nodes.map((n) => n.heldOrders)).toEqual([['reach'], ['reach']])
  })
})
