// The namespaced test cluster (test/cluster/cluster.sh): up with N plain nodes, and always down at the
// end, also after a failure, Ctrl-C or SIGTERM.
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { ROOT } from './tools.mjs'

const script = join(ROOT, 'test/cluster/cluster.sh')
let isUp = false

export function clusterUp(nodes) {
  isUp = true
  execFileSync('bash', [script, 'up'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, FANOUT_CLUSTER_NODES: String(nodes) },
  })
}

/** Something else (bench/teardown.mjs) is bringing a cluster up: take it down too if we are interrupted. */
export function clusterMayBeUp() {
  isUp = true
}

export function clusterDown() {
  if (!isUp) return
  isUp = false
  execFileSync('bash', [script, 'down'], { stdio: ['ignore', 'ignore', 'inherit'] })
}

// A signal ends the benchmark, but the cluster goes first (exit handlers run synchronously).
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`\nbench: ${sig}, bringing the cluster down`)
    try {
      clusterDown()
    } finally {
      process.exit(130)
    }
  })
}
process.on('exit', () => {
  try {
    clusterDown()
  } catch {
    /* reported by cluster.sh */
  }
})
