// The command line of each tool for one measurement: the same hosts, the same remote command, the same
// sink (stdout to /dev/null, see measure.mjs). Hosts are the cluster's plain nodes n1..nN.
import { join } from 'node:path'
import { ENV } from './env.mjs'
import { timed } from './measure.mjs'

export const ROOT = join(import.meta.dirname, '../..')
const DIR = process.env.FANOUT_CLUSTER_DIR ?? '/tmp/fanout-cluster'
const SSH_CONFIG = join(DIR, 'ssh_config')
export const nodes = (n) => Array.from({ length: n }, (_v, i) => `n${i + 1}`)

const env = { ...ENV, NO_COLOR: '1' }
// What a user of each peer would type, pointed at the cluster's ssh_config: pdsh with -f 64 (as in the
// issue's reference numbers), clush and parallel-ssh with a fan-out width of at least the host count.
const width = (hosts) => String(Math.max(64, hosts.length))

/** `shell` is a command for a POSIX shell on the node. Each entry runs it once on `hosts`, timed. */
export function tools(hosts, shell, opts = {}) {
  const list = hosts.join(',')
  const all = {
    fanout: () =>
      timed(
        [
          process.execPath,
          '--',
          join(ROOT, 'bin/fanout.js'),
          '--ssh-config',
          SSH_CONFIG,
          '--hosts',
          list,
          '--launcher',
          'none',
          '--plain',
          '--',
          'sh',
          '-c',
          shell,
        ],
        { env, timeoutMs: opts.timeoutMs },
      ),
    'ssh2 floor': () =>
      timed([process.execPath, join(ROOT, 'bench/floor.mjs'), SSH_CONFIG, list, shell], {
        env,
        timeoutMs: opts.timeoutMs,
      }),
    pdsh: () =>
      timed(['pdsh', '-R', 'ssh', '-f', '64', '-w', list, shell], {
        env: { ...env, PDSH_SSH_ARGS_APPEND: `-F ${SSH_CONFIG}` },
        timeoutMs: opts.timeoutMs,
      }),
    clush: () =>
      timed(['clush', '-f', width(hosts), '-o', `-F ${SSH_CONFIG}`, '-w', list, shell], {
        env,
        timeoutMs: opts.timeoutMs,
      }),
    pssh: () =>
      timed(['parallel-ssh', '-p', width(hosts), '-x', `-F ${SSH_CONFIG}`, '-H', hosts.join(' '), shell], {
        env,
        timeoutMs: opts.timeoutMs,
      }),
    // Plain OpenSSH, one client per host, all at once (the throughput reference).
    ssh: () =>
      timed(['sh', '-c', 'for h in "$@"; do ssh -F "$0" "$h" "$CMD" & done; wait', SSH_CONFIG, ...hosts], {
        env: { ...env, CMD: shell },
        timeoutMs: opts.timeoutMs,
      }),
  }
  return Object.fromEntries((opts.only ?? Object.keys(all)).map((k) => [k, all[k]]))
}
