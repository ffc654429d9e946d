import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const DEBIAN11_SH = fileURLToPath(new URL('../cluster/debian11-root.sh', import.meta.url))

/**
 * Builds, once, the Debian 11 root whose Python 3.9 run-supervisor.test.ts runs the node programs
 * with (debootstrap: root only). Without it that test runs them with this machine's python3 only,
 * which CI does not accept.
 */
export default function setup(): void {
  const dir = process.env.FANOUT_DEBIAN11_ROOT ?? '/var/cache/fanout-test/debian11'
  if (existsSync(`${dir}/usr/bin/python3.9`)) return
  if (process.getuid?.() !== 0 || !existsSync('/usr/sbin/debootstrap')) {
    console.warn(
      `[fanout unit] no Debian 11 root in ${dir}, and it takes root and debootstrap to build: the run supervisor tests run on this machine's python3 only`,
    )
    return
  }
  execFileSync('bash', [DEBIAN11_SH, dir], { stdio: 'inherit' })
}
