#!/usr/bin/env node
// `npm run bench`: fanout against pdsh, clush, parallel-ssh, plain ssh and a bare ssh2 client (the
// floor), in one run on the same hosts of the namespaced test cluster; then the teardown benchmark.
// Needs root. Writes bench/results/latest.{json,md}. Environment:
//   BENCH_RUNS (5)          runs per measurement (3 at 128 hosts, BENCH_RUNS_128)
//   BENCH_MB (200)          MB streamed in the throughput runs (per host for 1 host; split over 8 hosts)
//   BENCH_ONLY              comma-separated parts to run: latency,throughput,startup,teardown
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { clusterDown, clusterMayBeUp, clusterUp } from './lib/cluster.mjs'
import { latency } from './lib/latency.mjs'
import { machine, markdown } from './lib/report.mjs'
import { startup } from './lib/startup.mjs'
import { throughput } from './lib/throughput.mjs'
import { ROOT } from './lib/tools.mjs'

if (process.getuid?.() !== 0) {
  console.error('bench: needs root (the test cluster is made of network namespaces)')
  process.exit(2)
}
const RUNS = Number(process.env.BENCH_RUNS ?? 5)
const RUNS_128 = Number(process.env.BENCH_RUNS_128 ?? 3)
const MB = Number(process.env.BENCH_MB ?? 200)
const ONLY = new Set((process.env.BENCH_ONLY ?? 'latency,throughput,startup,teardown').split(','))
const log = (line) => console.log(line)

/** The peers are Debian packages: installed when missing. */
function ensurePeers() {
  const missing = [
    ['pdsh', 'pdsh'],
    ['clush', 'clustershell'],
    ['parallel-ssh', 'pssh'],
    ['/usr/bin/time', 'time'],
  ]
    .filter(([bin]) => spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0)
    .map(([, pkg]) => pkg)
  if (missing.length === 0) return
  log(`installing ${missing.join(' ')}`)
  execFileSync('apt-get', ['install', '-y', ...missing], {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  })
}

ensurePeers()
const THROUGHPUT_RUNS = Math.max(3, RUNS - 2)
const STARTUP_RUNS = Math.max(RUNS, 15)
const results = {
  date: new Date().toISOString(),
  machine: machine(),
  runs: { launch: RUNS, launch128: RUNS_128, throughput: THROUGHPUT_RUNS, startup: STARTUP_RUNS },
}
const started = Date.now()
mkdirSync(join(ROOT, 'bench/results'), { recursive: true })
if (ONLY.has('startup')) results.startup = await startup(STARTUP_RUNS, log)
// The teardown benchmark brings up its own small cluster (h1-h3 with torch) and takes it down. Run
// without blocking this process, so that a Ctrl-C meanwhile still takes the cluster down here.
if (ONLY.has('teardown')) {
  log('teardown: bench/teardown.mjs')
  clusterMayBeUp()
  const child = spawn(process.execPath, [join(ROOT, 'bench/teardown.mjs')], { stdio: 'inherit' })
  const code = await new Promise((resolve) => child.on('close', (c, sig) => resolve(c ?? sig)))
  const file = join(ROOT, 'bench/results/teardown.json')
  // Exit 1: a target missed (the results say which); anything else: no results from this run.
  if (code !== 0 && code !== 1) log(`teardown: exit ${code}; its results are left out`)
  else if (existsSync(file)) results.teardown = JSON.parse(readFileSync(file, 'utf8'))
}
if (ONLY.has('latency') || ONLY.has('throughput')) {
  const sizes = ONLY.has('latency') ? [8, 32, 128] : [8]
  log(`cluster: up with ${Math.max(...sizes)} plain nodes`)
  clusterUp(Math.max(...sizes))
  try {
    if (ONLY.has('latency')) results.latency = await latency(sizes, (n) => (n >= 128 ? RUNS_128 : RUNS), log)
    if (ONLY.has('throughput'))
      results.throughput = await throughput(
        [
          { hosts: 1, mbPerHost: MB },
          { hosts: 8, mbPerHost: MB / 8 },
        ],
        THROUGHPUT_RUNS,
        log,
      )
  } finally {
    clusterDown()
  }
}
results.seconds = Math.round((Date.now() - started) / 1000)
const md = markdown(results)
writeFileSync(join(ROOT, 'bench/results/latest.json'), JSON.stringify(results, null, 2) + '\n')
writeFileSync(join(ROOT, 'bench/results/latest.md'), md)
log('\n' + md)
log(`bench: ${results.seconds} s; bench/results/latest.{json,md}`)
