import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { cluster, describeCluster, host, runFanout, writeWork } from './cluster.js'

// 24 nodes behind one sshd (aliases of h1), as behind a bastion or NAT: above sshd's default
// MaxStartups 10:30:100 it drops handshakes at random; fanout must still connect every node.
const ALIASES = Array.from({ length: 24 }, (_, i) => `alias${i + 1}`)

function aliasConfig(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fanout-aliases-'))
  const base = readFileSync(cluster?.sshConfig ?? '', 'utf8')
  const file = join(dir, 'ssh_config')
  writeFileSync(file, ALIASES.map((a) => `Host ${a}\n  HostName 10.99.0.11\n`).join('') + base)
  return file
}

const drops = (): number => (readFileSync(join(host('h1').dir, 'sshd.log'), 'utf8').match(/drop connection #/g) ?? []).length

describeCluster('connecting many nodes behind one sshd', () => {
  it('connects and probes 24 nodes through one sshd, retrying the handshakes sshd drops', async () => {
    const config = aliasConfig()
    const hosts = writeWork('hosts-aliases', ALIASES.join('\n') + '\n')
    writeWork('x.py', '') // the pre-flight looks for the script
    const dropsBefore = drops()
    // 24 handshakes at once: well above MaxStartups' start of 10, so sshd drops some (each of the
    // 14 beyond 10 with ~30 % chance); up to three storms make "none dropped" vanishingly unlikely.
    for (let storm = 0; storm < 3 && drops() === dropsBefore; storm++) {
      const run = await runFanout(['-H', hosts, '--ssh-config', config, '--python', '/usr/bin/python3', '--max-handshakes', '24', '--dry-run', 'x.py'])
      expect(run.code, run.stderr).toBe(0)
      expect(run.stdout.match(/^# node \d+ /gm)).toHaveLength(24)
    }
    expect(drops()).toBeGreaterThan(dropsBefore) // the retry path really ran
    // With the default cap (8 in flight) sshd has no reason to drop anything.
    const before = drops()
    const capped = await runFanout(['-H', hosts, '--ssh-config', config, '--python', '/usr/bin/python3', '--dry-run', 'x.py'])
    expect(capped.code, capped.stderr).toBe(0)
    expect(drops()).toBe(before)
  })
})
