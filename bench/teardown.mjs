#!/usr/bin/env node
// Teardown benchmark: how long after Ctrl-C, a node failure, a coordinator SIGKILL or a cut link
// until the last remote process of the job is gone. Brings up the namespaced test cluster (root),
// runs each scenario several times against real torchrun, prints medians against the targets and
// writes bench/results/teardown.{json,md}.
import { execFileSync, spawn } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ENV } from './lib/env.mjs'
import { readProbeLines, routeCommand } from '../dist/node/probe.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const DIR = process.env.FANOUT_CLUSTER_DIR ?? '/tmp/fanout-cluster'
const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const HOSTS = ['h1', 'h2', 'h3']
const HEARTBEAT_S = 3
// One worker per node: the three "nodes" share this machine's cores, and nine torch processes
// exiting at once measure the CPU, not the teardown.
const PROCS = Number(process.env.BENCH_PROCS ?? 1)

if (process.getuid?.() !== 0) {
  console.error('bench/teardown: needs root (it creates network namespaces for the test cluster)')
  process.exit(2)
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const cluster = (cmd) =>
  execFileSync('bash', [join(ROOT, 'test/cluster/cluster.sh'), cmd], { stdio: ['ignore', 'ignore', 'inherit'] })

// The network namespace of each host, by inode: /proc/PID/ns/net names it as net:[INODE].
const nsOf = new Map()
const netns = (h) => {
  if (!nsOf.has(h)) nsOf.set(h, `net:[${statSync(`/run/netns/fo-${h}`).ino}]`)
  return nsOf.get(h)
}

/**
 * Processes in a host's namespace other than sshd: the job's leftovers. Read from /proc in this
 * process: spawning `ip netns pids` for every host every 20 ms was a quarter of a core, taken from the
 * teardown it measured (the baseline's check, kill(-pgid, 0), costs nothing).
 */
function leftovers(h) {
  const ns = netns(h)
  return readdirSync('/proc').filter((pid) => {
    if (!/^[0-9]+$/.test(pid)) return false
    try {
      if (readlinkSync(`/proc/${pid}/ns/net`) !== ns) return false
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      return !cmd.startsWith('sshd:') && !cmd.startsWith('/usr/sbin/sshd')
    } catch {
      return false
    }
  })
}

/** Milliseconds from `since` until no job process is left on `hosts` (polled every 20 ms). */
async function goneAfter(since, hosts = HOSTS, limitMs = 60_000) {
  while (hosts.some((h) => leftovers(h).length > 0)) {
    if (Date.now() - since > limitMs) return Infinity
    await sleep(20)
  }
  return Date.now() - since
}

let port = 29700
function start(extra, scriptArgs = []) {
  const child = spawn(
    process.execPath,
    [
      '--',
      join(ROOT, 'bin/fanout.js'),
      '-H',
      join(DIR, 'work/hosts'),
      '--ssh-config',
      join(DIR, 'ssh_config'),
      '--python',
      '/usr/bin/python3',
      '--master-port',
      String(++port),
      '--heartbeat-timeout',
      String(HEARTBEAT_S),
      '--keepalive',
      '1',
      '--nproc-per-node',
      String(PROCS),
      ...extra,
      'forever.py',
      ...scriptArgs,
    ],
    { cwd: join(DIR, 'work'), stdio: ['ignore', 'pipe', 'pipe'], env: { ...ENV, NO_COLOR: '1' } },
  )
  let out = ''
  const seen = new Map()
  const onData = (b) => {
    out += b.toString()
    for (const key of ['step 3', 'blew up', 'stopping all', 'sending SIGINT'])
      if (!seen.has(key) && out.includes(key)) seen.set(key, Date.now())
  }
  child.stdout.on('data', onData)
  child.stderr.on('data', onData)
  const done = new Promise((r) => child.on('close', r))
  const waitFor = async (key) => {
    while (!seen.has(key)) await sleep(20)
    return seen.get(key)
  }
  const seenAt = (key) => seen.get(key)
  return { child, done, waitFor, seenAt }
}

/** Starts a job, waits until it trains, sends fanout `signal`: ms until the last remote process is gone. */
async function goneAfterSignal(signal) {
  const job = start([])
  await job.waitFor('step 3')
  const t = Date.now()
  job.child.kill(signal)
  const ms = await goneAfter(t)
  await job.done
  return { ms, reactMs: signal === 'SIGKILL' ? undefined : (job.seenAt('sending SIGINT') ?? Infinity) - t }
}

/**
 * Where h1 is (the master), and the interface each host routes to it by, found by fanout's own route
 * command (remote-probe.ts) run in each host's namespace: the interface fanout sets.
 */
function masterAndIfaces() {
  const config = readFileSync(join(DIR, 'ssh_config'), 'utf8')
  const master = /^Host h1\n\s+HostName (\S+)/m.exec(config)?.[1]
  if (!master) throw new Error('bench/teardown: no HostName for h1 in the cluster ssh_config')
  const ifaces = HOSTS.map(
    (h) =>
      readProbeLines(
        execFileSync('ip', ['netns', 'exec', `fo-${h}`, '/bin/sh', '-c', routeCommand(master)], { encoding: 'utf8' }),
      ).get('iface') || undefined,
  )
  return { master, ifaces }
}

/**
 * The floor: the same job without fanout. One torchrun per host, in the host's namespace, as the
 * cluster's user, in one three-node rendezvous on h1 with the interface fanout would set, its output
 * read; each leads its own process group, which gets SIGINT at once, as each node's watchdog sends it.
 */
async function torchrunAloneAfterSigint() {
  const { master, ifaces } = masterAndIfaces()
  const masterPort = ++port
  const jobs = HOSTS.map((h, i) =>
    spawn(
      'ip',
      [
        'netns',
        'exec',
        `fo-${h}`,
        'setpriv',
        '--reuid',
        'fanout-test',
        '--regid',
        'fanout-test',
        '--init-groups',
        '/usr/bin/python3',
        '-m',
        'torch.distributed.run',
        '--nnodes=3',
        `--node_rank=${i}`,
        '--nproc_per_node',
        String(PROCS),
        `--master_addr=${master}`,
        `--master_port=${masterPort}`,
        '--monitor_interval=0.25',
        'forever.py',
      ],
      {
        cwd: join(DIR, 'work'),
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          PYTHONPATH: join(DIR, 'torch-fix'),
          PYTHONUNBUFFERED: '1',
          GLOO_SOCKET_IFNAME: ifaces[i] ?? '',
          NCCL_SOCKET_IFNAME: ifaces[i] ?? '',
        },
      },
    ),
  )
  for (const j of jobs) j.stderr.resume()
  const training = new Promise((r) => {
    let out = ''
    jobs[0].stdout.on('data', (b) => {
      out += b
      if (out.includes('step 3')) r()
    })
  })
  for (const j of jobs.slice(1)) j.stdout.resume()
  const signal = (j, sig) => {
    try {
      process.kill(-j.pid, sig)
      return true
    } catch {
      return false
    }
  }
  try {
    await Promise.race([
      training,
      sleep(60_000).then(() => {
        throw new Error('bench/teardown: the torchruns without fanout did not start training in 60 s')
      }),
    ])
    const t = Date.now()
    for (const j of jobs) signal(j, 'SIGINT')
    // Until the last process of their groups is gone (kill -0 finds a zombie until it is collected).
    while (jobs.some((j) => signal(j, 0))) await sleep(20)
    return { ms: Date.now() - t }
  } finally {
    for (const j of jobs) signal(j, 'SIGKILL')
  }
}

const SCENARIOS = {
  'baseline: torchrun alone on the 3 nodes, SIGINT': { target: Infinity, run: torchrunAloneAfterSigint },
  'Ctrl-C (workers obey SIGINT)': { target: 1000, run: () => goneAfterSignal('SIGINT') },
  'node failure (a rank raises)': {
    target: 2000,
    async run() {
      const job = start([], ['--fail'])
      const t = await job.waitFor('blew up')
      const ms = await goneAfter(t)
      await job.done
      return { ms, reactMs: (job.seenAt('stopping all') ?? Infinity) - t }
    },
  },
  'coordinator SIGKILL': { target: HEARTBEAT_S * 1000 + 1000, run: () => goneAfterSignal('SIGKILL') },
  'link cut (heartbeat timeout 3 s)': {
    target: HEARTBEAT_S * 1000 + 1000,
    async run() {
      const job = start([])
      await job.waitFor('step 3')
      const t = Date.now()
      execFileSync('ip', ['link', 'set', 'fo-v2', 'down'])
      const ms = await goneAfter(t, ['h2'])
      execFileSync('ip', ['link', 'set', 'fo-v2', 'up'])
      await job.done
      await goneAfter(Date.now())
      return { ms }
    },
  },
}

const FOREVER = `
import os, signal, sys, time, torch, torch.distributed as dist
rank = int(os.environ["RANK"])
# A worker that obeys SIGINT at once: the time measured is the teardown's, not Python's finalisation.
signal.signal(signal.SIGINT, lambda *_: os._exit(130))
dist.init_process_group("gloo")
step = 0
while True:
    step += 1
    dist.all_reduce(torch.ones(1))
    if rank == 0:
        sys.stdout.write(f"step {step}\\n"); sys.stdout.flush()
    if "--fail" in sys.argv and rank == 1 and step == 3:
        sys.stderr.write("rank 1 blew up\\n"); sys.stderr.flush()
        sys.exit(1)
    time.sleep(0.2)
`

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

cluster('up')
try {
  writeFileSync(join(DIR, 'work/forever.py'), FOREVER)
  writeFileSync(join(DIR, 'work/hosts'), HOSTS.join('\n') + '\n')
  const results = []
  for (const [name, s] of Object.entries(SCENARIOS)) {
    const runs = []
    for (let i = 0; i < RUNS; i++) runs.push(await s.run())
    const samples = runs.map((r) => r.ms)
    const m = median(samples)
    const react = runs.every((r) => r.reactMs !== undefined) ? median(runs.map((r) => r.reactMs)) : undefined
    results.push({
      scenario: name,
      samplesMs: samples,
      medianMs: m,
      fanoutReactionMs: react,
      targetMs: s.target,
      ok: m <= s.target,
    })
    console.log(
      `${name.padEnd(36)} median ${String(m).padStart(6)} ms  (target ≤ ${s.target === Infinity ? '–' : s.target} ms)  ${m <= s.target ? 'ok' : 'MISSED'}  samples ${samples.join(', ')}${react === undefined ? '' : `  fanout reacted in ${react} ms`}`,
    )
  }
  const meta = {
    date: new Date().toISOString(),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`,
    runs: RUNS,
    hosts: HOSTS.length,
    processesPerHost: PROCS,
  }
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true })
  writeFileSync(join(ROOT, 'bench/results/teardown.json'), JSON.stringify({ ...meta, results }, null, 2) + '\n')
  const md = [
    `Teardown, ${meta.date.slice(0, 10)}, ${meta.machine}, ${meta.hosts} hosts × ${PROCS} torchrun worker(s), median of ${RUNS}:`,
    '',
    '| until the last remote process is gone, after | median | target | fanout reacted in |',
    '| --- | --- | --- | --- |',
    ...results.map(
      (r) =>
        `| ${r.scenario} | ${(r.medianMs / 1000).toFixed(2)} s | ${r.targetMs === Infinity ? '(floor)' : `≤ ${(r.targetMs / 1000).toFixed(1)} s`} | ${r.fanoutReactionMs === undefined ? '–' : `${r.fanoutReactionMs} ms`} |`,
    ),
  ].join('\n')
  writeFileSync(join(ROOT, 'bench/results/teardown.md'), md + '\n')
  console.log('\n' + md)
  process.exitCode = results.every((r) => r.ok) ? 0 : 1
} finally {
  cluster('down')
}
