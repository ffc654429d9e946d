import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  cluster,
  clusterArgs,
  describeCluster,
  FLAKY,
  host,
  runFanout,
  startFanout,
  survivors,
  waitNoSurvivors,
  writeWork,
  type FanoutRun,
  type RunningFanout,
} from './cluster.js'

// Detached runs (fanout --detach, attach, logs, ps, stop): the job goes on without its client, supervised
// on the nodes (node/run-supervisor.ts). Every scenario ends with nothing left on any host. The core set
// runs on Debian 12's torch 1.13 (h1-h3) and Debian 13's torch 2.6 (d1-d3).

// Steps every 0.5 s, all ranks in lockstep (an all_reduce per step); FAIL_RANK fails at step FAIL_STEP.
const STEPS = `
import os, sys, time, torch, torch.distributed as dist
dist.init_process_group("gloo")
rank = dist.get_rank()
steps = int(sys.argv[1])
for step in range(steps):
    t = torch.ones(1)
    dist.all_reduce(t)
    print(f"rank {rank} step {step} sum {t.item():.0f}", flush=True)
    if rank == int(os.environ.get("FAIL_RANK", "-1")) and step == int(os.environ.get("FAIL_STEP", "3")):
        print(f"rank {rank} fails here", file=sys.stderr, flush=True)
        sys.exit(7)
    time.sleep(0.5)
print(f"rank {rank} finished", flush=True)
`

const STATE = mkdtempSync('/tmp/fanout-detach-state-')
const env = { XDG_STATE_HOME: STATE }
const script = (): string => writeWork('detach_steps.py', STEPS)
const launchArgs = (names: string[], ...more: string[]): string[] => [
  '--hosts',
  names.join(','),
  ...clusterArgs(),
  '--nproc-per-node',
  '1',
  ...more,
]
const fanout = (args: string[], timeoutMs?: number): Promise<FanoutRun> =>
  runFanout(args, { env, ...(timeoutMs ? { timeoutMs } : {}) })

/** The clients a test started and did not wait for (attach, logs --follow): killed after it, whatever happened. */
const started = new Set<RunningFanout>()
function start(args: string[]): RunningFanout {
  const client = startFanout(args, { env })
  started.add(client)
  void client.done.then(() => started.delete(client))
  return client
}

/** Launches detached; returns the run id (fanout's only stdout line) and how long the launch took. */
async function detach(names: string[], args: string[]): Promise<{ id: string; ms: number; run: FanoutRun }> {
  const run = await fanout(launchArgs(names, '--detach', ...args))
  expect(run.code, run.stderr).toBe(0)
  const id = run.stdout.trim()
  expect(id).toMatch(/^\d{8}-\d{6}-[0-9a-f]{6}$/)
  homes.set(id, HOMES[(names[0] as string)[0] as string] as string)
  return { id, ms: run.ms, run }
}

interface PsRow {
  run: string
  state: string
  exit_code: number | null
  detail: string | null
  node_states?: Array<{ node: number; state: string }>
}

async function ps(id: string): Promise<PsRow> {
  const run = await fanout(['ps', '--json'])
  expect(run.code, run.stderr).toBe(0)
  const row = (JSON.parse(run.stdout) as PsRow[]).find((r) => r.run === id)
  if (!row) throw new Error(`fanout ps does not list ${id}:\n${run.stdout}`)
  return row
}

/** Polls ps until the run is in one of `states`; returns the row and when it was seen. */
async function waitState(id: string, states: string[], withinMs: number): Promise<PsRow> {
  const deadline = Date.now() + withinMs
  for (;;) {
    const row = await ps(id)
    if (states.includes(row.state)) return row
    if (Date.now() > deadline) throw new Error(`run ${id} is ${row.state} (${row.detail}), not ${states.join('/')}`)
    await new Promise((r) => setTimeout(r, 1000))
  }
}

/** The supervisor processes of a run on a host (in its namespace): `fanout-run RUN NODE`. */
const supervisors = (name: string, id: string): string[] =>
  survivors(host(name)).filter((p) => p.includes(`fanout-run ${id}`))

/** Waits until the run's nodes have printed step `n` or later (from the nodes' own files). */
async function waitStep(id: string, nodes: number, n: number, withinMs = 60_000): Promise<void> {
  const deadline = Date.now() + withinMs
  for (;;) {
    const done = Array.from({ length: nodes }, (_v, k) => nodeOutput(id, k)).filter((text) =>
      [...text.matchAll(/ step (\d+) /g)].some((m) => Number(m[1]) >= n),
    )
    if (done.length === nodes) return
    if (Date.now() > deadline) throw new Error(`run ${id}: not every node reached step ${n}`)
    await new Promise((r) => setTimeout(r, 300))
  }
}

// The test user's home, shared by the hosts: d1-d3 see the one in the Debian 13 root (cluster.sh).
const HOMES: Record<string, string> = {
  h: '/home/fanout-test',
  d: `${process.env.FANOUT_DEBIAN13_ROOT ?? '/var/cache/fanout-test/debian13'}/home/fanout-test`,
}
const homes = new Map<string, string>()

/** A node's output file(s) in the test user's home, as the node wrote them. */
function nodeOutput(id: string, node: number): string {
  const dir = `${homes.get(id) ?? HOMES.h}/.fanout/runs/${id}/n${node}`
  if (!existsSync(dir)) return ''
  return readdirSync(dir)
    .filter((f) => /^output\.\d+\.log$/.test(f))
    .sort()
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('')
}

const TORCHES = [
  { torch: 'torch 1.13 (Debian 12)', names: ['h1', 'h2', 'h3'] },
  { torch: 'torch 2.6 (Debian 13)', names: ['d1', 'd2', 'd3'] },
]

describeCluster('detached runs', () => {
  beforeAll(() => void script())
  // Whatever a failed test left running (its clients, its run) is stopped, so that the next test,
  // which checks that nothing is left on its hosts, starts clean and fails only for itself.
  afterEach(async () => {
    for (const client of started) {
      try {
        process.kill(client.pid, 'SIGKILL')
      } catch {
        // It ended meanwhile.
      }
    }
    await Promise.all([...started].map((c) => c.done))
    const all = JSON.parse((await fanout(['ps', '--json'])).stdout || '[]') as PsRow[]
    for (const r of all.filter((r) => !['succeeded', 'failed', 'stopped', 'timed-out'].includes(r.state)))
      await fanout(['stop', r.run])
  })

  describe.each(TORCHES)('on $torch', ({ names }) => {
    it('--detach returns within seconds; the run goes on without the client; attach, ps, logs, stop', async () => {
      const { id, ms, run } = await detach(names, ['detach_steps.py', '400'])
      expect(ms).toBeLessThan(30_000)
      expect(run.stderr).toContain(`fanout attach ${id}`)
      expect(run.stderr).toContain(`fanout stop ${id}`)
      // The client is gone; the job runs: every node's supervisor is there, the steps go on.
      for (const name of names) expect(supervisors(name, id)).toHaveLength(1)
      await waitStep(id, 3, 2)
      const listed = await ps(id)
      expect(listed.state).toBe('running')
      expect(listed.node_states?.map((n) => n.state)).toEqual(['running', 'running', 'running'])

      // attach: the last lines of every node first, then live ones; Ctrl-C detaches, the run goes on.
      const attach = start(['attach', id.slice(0, 17), '--lines', '2'])
      await attach.waitFor(/\[n0 \S+ r0\]\s+rank 0 step \d+/)
      // Every node's reader is opened at once: node 1's tail may come after node 0's, so the live lines
      // are counted from node 1's own first line (waiting for "step <first+2>" with no line of node 1
      // yet would wait for step 1, long gone).
      await attach.waitFor(/\[n1 \S+ r1\]\s+rank 1 step \d+/)
      const lastStep = (output: string): number =>
        Math.max(...[...output.matchAll(/rank 1 step (\d+)/g)].map((m) => Number(m[1])), -1)
      const first = lastStep(attach.output())
      await attach.waitFor((output) => lastStep(output) >= first + 2)
      process.kill(attach.pid, 'SIGINT')
      const attached = await attach.done
      expect(attached.code, attached.stderr).toBe(0)
      expect(attached.stderr).toMatch(new RegExp(`detached from run ${id}; it goes on`))
      for (const name of names) expect(supervisors(name, id)).toHaveLength(1)
      // Ctrl-C in logs --follow only stops following, too.
      const follow = start(['logs', id, '--follow'])
      await follow.waitFor(/r2\]\s+rank 2 step \d+/)
      process.kill(follow.pid, 'SIGINT')
      const followed = await follow.done
      expect(followed.code, followed.stderr).toBe(0)
      expect(followed.stderr).toMatch(new RegExp(`stopped following run ${id}; it goes on`))
      for (const name of names) expect(supervisors(name, id)).toHaveLength(1)

      // logs: every node's lines fetched here; a second call fetches only what is new.
      const logs = await fanout(['logs', id])
      expect(logs.code, logs.stderr).toBe(0)
      for (const r of [0, 1, 2]) expect(logs.stdout).toMatch(new RegExp(`r${r}\\]\\s+rank ${r} step 1 sum 3`))
      const local = join(STATE, 'fanout', 'runs', id, 'nodes')
      const sizes = (): number[] => [0, 1, 2].map((k) => statSync(join(local, `node${k}.log`)).size)
      const before = sizes()
      expect(before.every((s) => s > 0)).toBe(true)
      expect(statSync(join(STATE, 'fanout', 'runs', id)).mode & 0o777).toBe(0o700)
      const again = await fanout(['logs', id, '--node', '1'])
      expect(again.code, again.stderr).toBe(0)
      expect(again.stdout).not.toMatch(/r0\]/)
      const after = sizes()
      expect(after[1]).toBeGreaterThanOrEqual(before[1] as number)
      // Only node 1 was fetched, and it sent only what was new: its file did not grow by its whole log again.
      expect(after[0]).toBe(before[0])
      expect((after[1] as number) - (before[1] as number)).toBeLessThan(before[1] as number)

      // stop: as Ctrl-C does, then nothing of the run is left on any node.
      const stop = await fanout(['stop', id])
      expect(stop.code, stop.stderr).toBe(0)
      expect(stop.stderr).toContain('nothing of it is left')
      expect(stop.stderr).toMatch(/stopped, exit 130/)
      expect(await waitNoSurvivors(names.map(host))).toEqual([])
      expect((await ps(id)).state).toBe('stopped')
      // A run that ended cannot be stopped again, nor attached to: it is shown, and refused (exit 2).
      const twice = await fanout(['stop', id])
      expect(twice.code).toBe(2)
      expect(twice.stderr).toMatch(/has already ended \(stopped, exit 130\)/)
      const late = await fanout(['attach', id])
      expect(late.code).toBe(2)
      expect(late.stderr).toMatch(/had ended .*nothing to attach to/)
      expect(late.stderr).toMatch(/node\s+host\s+ranks\s+result/)
    })

    it('a failing node stops the others within 30 s with no client anywhere, its failure in the logs', async () => {
      const { id } = await detach(names, ['--env', 'FAIL_RANK=1', 'detach_steps.py', '400'])
      await waitStep(id, 1, 3)
      const failedAt = Date.now()
      const row = await waitState(id, ['failed'], 60_000)
      const ended = Date.now()
      expect(ended - failedAt).toBeLessThan(30_000)
      expect(row.exit_code).toBe(7)
      expect(row.detail).toMatch(/node 1 \(\S+\) local rank 0 exited with code 7/)
      expect(await waitNoSurvivors(names.map(host), 10_000)).toEqual([])
      const logs = await fanout(['logs', id])
      expect(logs.stderr).toContain('rank 1 fails here')
      const summary = await fanout(['logs', id, '--summary'])
      expect(summary.code, summary.stderr).toBe(0)
      expect(summary.stderr).toMatch(/first failure: node 1 .*exited with code 7/)
      expect(summary.stderr).toMatch(/rank 1 fails here/)
      expect(summary.stderr).toMatch(/\[root cause\]/)
    })
  })

  it('the client cut off from the cluster for 40 s changes nothing; attach and logs --follow see the run end', async () => {
    const names = ['h1', 'h2', 'h3']
    // 160 steps of 0.5 s: it outlasts the cut, the heartbeat timeout (15 s) more than twice over.
    const { id } = await detach(names, ['detach_steps.py', '160'])
    await waitStep(id, 3, 1)
    // This machine's address on the bridge is the client's: without it, no packet reaches a node.
    execFileSync('ip', ['addr', 'del', '10.99.0.1/24', 'dev', 'fo-br0'])
    try {
      const cut = await fanout(['ps'], 60_000)
      expect(cut.stdout).toMatch(new RegExp(`${id}\\s+unreachable`))
      await new Promise((r) => setTimeout(r, 40_000))
      for (const name of names) expect(supervisors(name, id)).toHaveLength(1)
    } finally {
      execFileSync('ip', ['addr', 'add', '10.99.0.1/24', 'dev', 'fo-br0'])
    }
    // Back on the network: two clients follow it to its end, which each reports with the run's code.
    const [attached, followed] = await Promise.all([
      fanout(['attach', id], 110_000),
      fanout(['logs', id, '--follow'], 110_000),
    ])
    expect(attached.code, attached.stderr).toBe(0)
    expect(attached.stdout).toMatch(/\[n2 h3 r2\]\s+rank 2 finished/)
    expect(attached.stderr).toMatch(new RegExp(`run ${id}: succeeded\n$`))
    expect(followed.code, followed.stderr).toBe(0)
    for (const r of [0, 1, 2]) expect(followed.stdout).toMatch(new RegExp(`r${r}\\]\\s+rank ${r} finished`))
    expect(followed.stderr).toMatch(new RegExp(`run ${id}: succeeded\n$`))
    const row = await ps(id)
    expect(row.state).toBe('succeeded')
    for (let k = 0; k < 3; k++) expect(nodeOutput(id, k)).toContain(`rank ${k} finished`)
    expect(await waitNoSurvivors(names.map(host), 10_000)).toEqual([])
  })

  it.each(TORCHES)(
    'a node cut off from the others stops by itself, and the others stop too ($torch)',
    async ({ names }) => {
      const { id } = await detach(names, ['--heartbeat-timeout', '6', 'detach_steps.py', '400'])
      await waitStep(id, 3, 1)
      const cut = host(names[2] as string)
      const link = cut.link
      execFileSync('ip', ['link', 'set', link, 'down'])
      try {
        // h3 hears nothing from node 0 for 6 s: it stops its job by itself, while still cut off.
        const deadline = Date.now() + 30_000
        while (survivors(cut).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500))
        expect(survivors(cut)).toEqual([])
        expect(nodeOutput(id, 2)).toMatch(/lost contact with node 0/)
        expect(await waitNoSurvivors(names.slice(0, 2).map(host), 20_000)).toEqual([])
      } finally {
        execFileSync('ip', ['link', 'set', link, 'up'])
      }
      const row = await waitState(id, ['failed'], 30_000)
      expect(row.detail).toMatch(new RegExp(`node 2 \\(${cut.name}\\) stopped answering node 0`))
    },
  )

  it.each(TORCHES)('--restarts and --timeout hold without a client ($torch)', async ({ names }) => {
    const flaky = writeWork('detach_flaky.py', FLAKY)
    const restarts = await detach(names, ['--restarts', '1', flaky])
    const timeout = await detach(names, ['--timeout', '8s', 'detach_steps.py', '400'])
    const restarted = await waitState(restarts.id, ['succeeded', 'failed'], 90_000)
    expect(restarted.state).toBe('succeeded')
    const logs = await fanout(['logs', restarts.id])
    expect(logs.stdout).toMatch(/attempt 2 node 0 sum 3/)
    expect(logs.stderr).toMatch(/attempt 1 of 2 failed \(exit 5\); relaunching every node/)
    const summary = await fanout(['logs', restarts.id, '--summary'])
    expect(summary.stderr).toMatch(
      /attempt 1: failed, exit 5 \(first failure: node 1 \(\w+\): local rank 0 exited with code 5\)/,
    )
    expect(summary.stderr).toMatch(/attempt 2: succeeded/)
    const timedOut = await waitState(timeout.id, ['timed-out'], 60_000)
    expect(timedOut.exit_code).toBe(124)
    expect(await waitNoSurvivors(names.map(host), 10_000)).toEqual([])
  })

  it('bad input: exit 2 before any connection', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['attach', 'nope'], /no run "nope" in .*fanout ps lists/],
      [['stop'], /which run\? give its id/],
      [['logs', 'x', 'y'], /takes one run id/],
      [['ps', 'x'], /takes no run id/],
      [launchArgs(['h1'], '--detach', '--json', 'x.py'), /--detach with --json: it shapes the output/],
      [launchArgs(['h1'], '--detach', '--dry-run', 'x.py'), /--detach with --dry-run/],
      [launchArgs(['h1'], '--detach-log-max', '5G', 'x.py'), /--detach-log-max is for a detached run/],
      [launchArgs(['h1'], '-d', '--detach-log-max', 'lots', 'x.py'), /--detach-log-max: "lots" is not a size/],
    ]
    for (const [args, message] of cases) {
      const run = await fanout(args)
      expect(run.code, `${args.join(' ')}\n${run.stderr}`).toBe(2)
      expect(run.stderr).toMatch(message)
    }
  })
})

// Keep the cluster handle referenced: the suite is skipped without it.
void cluster
