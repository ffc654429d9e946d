// Runs a command under GNU time: wall seconds, CPU seconds (user + system, children included: the
// ssh processes a peer forks count) and peak RSS. stdout goes to /dev/null for every tool alike.
// Also the CPU the whole machine used meanwhile (/proc/stat): the test hosts are namespaces of this
// machine, so what is not the tool's own is mostly the hosts' (sshd and what it runs).
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ENV } from './env.mjs'

const TMP = mkdtempSync(join(tmpdir(), 'fanout-bench-'))
let seq = 0

// CPU seconds the machine has been busy (user, nice, system, irq, softirq; steal is another guest's).
function busySeconds() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number)
  return (f[0] + f[1] + f[2] + f[5] + f[6]) / 100 // USER_HZ, 100 on Linux
}

/** One run: { wall, cpu, machine (CPU s of the whole machine meanwhile), rss (MB), code, stderr }. Throws when the command fails (a benchmark of a failure means nothing). */
export function timed(argv, { env = ENV, cwd, timeoutMs = 120_000, allowFail = false } = {}) {
  const out = join(TMP, `time-${++seq}`)
  return new Promise((resolve, reject) => {
    const busy = busySeconds()
    const started = process.hrtime.bigint()
    const child = spawn('/usr/bin/time', ['-o', out, '-f', '%e %U %S %M', '--', ...argv], {
      env,
      cwd,
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    child.stderr.on('data', (b) => {
      if (stderr.length < 200_000) stderr += b
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', reject)
    child.on('close', (code) => {
      // Wall from here, to the microsecond (GNU time's %e has 10 ms steps); CPU and RSS from GNU time.
      const wall = Number(process.hrtime.bigint() - started) / 1e9
      const machine = busySeconds() - busy
      clearTimeout(timer)
      let fields
      try {
        // GNU time writes "Command exited with non-zero status N" first when it failed.
        fields = readFileSync(out, 'utf8').trim().split('\n').pop().split(' ').map(Number)
        rmSync(out, { force: true })
      } catch (e) {
        return reject(new Error(`${argv[0]}: no timing (${e.message})`))
      }
      const [, user, sys, rssKb] = fields
      if (code !== 0 && !allowFail)
        return reject(new Error(`${argv.join(' ').slice(0, 200)}: exit ${code}\n${stderr.slice(-2000)}`))
      resolve({ wall, cpu: user + sys, machine, rss: rssKb / 1024, code, stderr })
    })
  })
}

export const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

/**
 * `runs` runs of each tool, interleaved (a, b, c, a, b, c, …) so that a slow spell of the machine hits
 * every tool alike; medians of wall, CPU and RSS per tool.
 */
export async function compare(tools, runs, log = () => {}) {
  const samples = Object.fromEntries(Object.keys(tools).map((k) => [k, []]))
  for (let r = 0; r < runs; r++) {
    for (const [name, run] of Object.entries(tools)) {
      const s = await run()
      samples[name].push(s)
      log(`  ${name} #${r + 1}: ${s.wall.toFixed(2)} s wall, ${s.cpu.toFixed(2)} s CPU, ${s.rss.toFixed(0)} MB`)
    }
  }
  return Object.fromEntries(
    Object.entries(samples).map(([k, ss]) => [
      k,
      {
        wall: median(ss.map((s) => s.wall)),
        cpu: median(ss.map((s) => s.cpu)),
        rss: median(ss.map((s) => s.rss)),
        // The hosts' share: the machine's CPU less the tool's own (a few ms of the benchmark's and the system's count too).
        hosts: median(ss.map((s) => s.machine - s.cpu)),
        runs: ss.map(({ wall, cpu, machine, rss }) => ({ wall, cpu, machine, rss })),
      },
    ]),
  )
}
