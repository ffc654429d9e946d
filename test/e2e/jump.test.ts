import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, expect, it } from 'vitest'
import {
  cluster,
  clusterArgs,
  describeCluster,
  dropCount,
  host,
  runFanout,
  sshdLogCount,
  startFanout,
  waitNoSurvivors,
  writeWork,
} from './cluster.js'

// j1 and j2 sit on an inner bridge this machine has no address on: the bastion `jump` (on both
// bridges) is the only way in, as on a cluster behind a login node.
const JUMP = () => host('jump')
const INNER = () => [host('j1'), host('j2')]

/** TCP connections the bastion's sshd holds open right now. */
const bastionConnections = (): number =>
  execFileSync('ip', ['netns', 'exec', 'fo-jump', 'ss', '-Htn', 'state', 'established', '( sport = :22 )'], {
    encoding: 'utf8',
  })
    .split('\n')
    .filter(Boolean).length

/** Logins the bastion's sshd has accepted so far (its VERBOSE log). */
const bastionLogins = (): number => sshdLogCount(JUMP(), /Accepted publickey/g)

/** The cluster's ssh config with extra lines in front (first match wins). */
function configWith(lines: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'fanout-jump-')), 'ssh_config')
  writeFileSync(file, lines + readFileSync(cluster?.sshConfig ?? '', 'utf8'))
  return file
}

const ALLREDUCE = `
import os, sys, socket, torch, torch.distributed as dist
dist.init_process_group("gloo")
t = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
sys.stdout.write(f"rank {dist.get_rank()} of {dist.get_world_size()} on {socket.gethostname()} sum {t.item():.0f} iface {os.environ.get('GLOO_SOCKET_IFNAME')}\\n")
sys.stdout.flush()
dist.destroy_process_group()
`

afterEach(async () => {
  expect(await waitNoSurvivors(cluster?.hosts ?? [])).toEqual([])
})

describeCluster('nodes behind a bastion (ProxyJump / --jump)', () => {
  it('the inner nodes cannot be reached directly (the test network is really split)', async () => {
    const run = await runFanout([
      '--hosts',
      'j1',
      ...clusterArgs(),
      '--connect-timeout',
      '1',
      '--launcher',
      'none',
      '--',
      'true',
    ])
    expect(run.code, run.stderr).toBe(255)
    expect(run.stderr).toMatch(
      /j1 \(fanout-test@10\.99\.2\.11:22\): (connection timed out|network unreachable|host unreachable|no SSH handshake|Connection lost before handshake)/,
    )
  })

  it('--jump: both nodes run through ONE bastion connection (one login, one TCP connection, a channel per node)', async () => {
    const logins = bastionLogins()
    const job = startFanout([
      '--hosts',
      'j1,j2',
      ...clusterArgs(),
      '--jump',
      'jump',
      '--launcher',
      'none',
      '--',
      'sh',
      '-c',
      'echo "up on $(hostname)"; sleep 3',
    ])
    await job.waitFor(/up on fo-j1[\s\S]*up on fo-j2|up on fo-j2[\s\S]*up on fo-j1/, 30_000)
    // While both nodes run, the bastion holds exactly one connection: the shared one.
    expect(bastionConnections()).toBe(1)
    const run = await job.done
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toMatch(/^\[n0 j1\] +up on fo-j1$/m)
    expect(run.stdout).toMatch(/^\[n1 j2\] +up on fo-j2$/m)
    expect(bastionLogins() - logins).toBe(1)
    // Each inner node saw its connection come from the bastion's inner address.
    for (const h of INNER())
      expect(readFileSync(join(h.dir, 'sshd.log'), 'utf8')).toMatch(/Connection from 10\.99\.2\.1 port/)
  })

  it('ProxyJump from the ssh config: a real torchrun job across the two inner nodes (gloo all_reduce)', async () => {
    writeWork('jump_allreduce.py', ALLREDUCE)
    const config = configWith('Host j1 j2\n  ProxyJump jump\n')
    const logins = bastionLogins()
    const run = await runFanout([
      '--hosts',
      'j1,j2',
      '--ssh-config',
      config,
      '--python',
      '/usr/bin/python3',
      '--nproc-per-node',
      '1',
      'jump_allreduce.py',
    ])
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toMatch(/^\[n0 j1 r0\] +rank 0 of 2 on fo-j1 sum 3 iface eth0$/m)
    expect(run.stdout).toMatch(/^\[n1 j2 r1\] +rank 1 of 2 on fo-j2 sum 3 iface eth0$/m)
    // Through the bastion fanout cannot tell node 0's address before its probe: a route phase follows.
    expect(run.stderr).toMatch(/^fanout: route: 2\/2 nodes ok/m)
    expect(bastionLogins() - logins).toBe(1)
  })

  it('Ctrl-C through the bastion: every remote process on the inner nodes is gone', async () => {
    writeWork('jump_sleep.py', 'import time\nprint("sleeping", flush=True)\ntime.sleep(300)\n')
    const job = startFanout([
      '--hosts',
      'j1,j2',
      ...clusterArgs(),
      '--jump',
      'jump',
      '--nproc-per-node',
      '1',
      'jump_sleep.py',
    ])
    await job.waitFor(
      /\[n0 j1 r0\] +sleeping[\s\S]*\[n1 j2 r1\] +sleeping|\[n1 j2 r1\] +sleeping[\s\S]*\[n0 j1 r0\] +sleeping/,
      60_000,
    )
    process.kill(job.pid, 'SIGINT')
    const run = await job.done
    expect(run.code, run.stderr).toBe(130)
    expect(await waitNoSurvivors(INNER(), 5000)).toEqual([])
  })

  it("the bastion's host key is verified like a node's: an unknown one is refused, naming the bastion", async () => {
    const known = join(mkdtempSync(join(tmpdir(), 'fanout-jump-kh-')), 'known_hosts')
    writeFileSync(
      known,
      readFileSync(cluster?.knownHosts ?? '', 'utf8')
        .split('\n')
        .filter((l) => !l.startsWith(`${JUMP().addr} `))
        .join('\n'),
    )
    const config = configWith(`Host *\n  UserKnownHostsFile ${known}\n`)
    const run = await runFanout([
      '--hosts',
      'j1,j2',
      '--ssh-config',
      config,
      '--python',
      '/usr/bin/python3',
      '--jump',
      'jump',
      '--launcher',
      'none',
      '--',
      'true',
    ])
    expect(run.code, run.stderr).toBe(255)
    expect(run.stderr).toMatch(/jump \(10\.99\.0\.20:22\): host key is not known/)
    // and no node got a job (nothing ran behind an unverified bastion)
    expect(run.stdout).toBe('')
  })

  it('a node the bastion cannot reach is named, with the bastion', async () => {
    const config = configWith('Host j9\n  HostName 10.99.2.99\n')
    const run = await runFanout([
      '--hosts',
      'j1,j9',
      '--ssh-config',
      config,
      '--python',
      '/usr/bin/python3',
      '--jump',
      'jump',
      '--connect-timeout',
      '2',
      '--launcher',
      'none',
      '--',
      'true',
    ])
    expect(run.code, run.stderr).toBe(255)
    expect(run.stderr).toMatch(
      /node 1: j9.*(the jump host jump could not connect to it|did not connect to 10\.99\.2\.99:22 within 2 s)/,
    )
  })

  it('128 nodes behind the bastion, all landing on one sshd with its default MaxStartups: one bastion login, every node runs, none dropped', async () => {
    const logins = bastionLogins()
    const drops = dropCount(host('h1'))
    const run = await runFanout(
      ['--hosts', 'storm-[1-128]', ...clusterArgs(), '--jump', 'jump', '--launcher', 'none', '--', 'true'],
      { timeoutMs: 170_000 },
    )
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr).toMatch(/connect: 128\/128 nodes ok/)
    // Every node's row of the summary says it exited 0.
    expect(run.stderr.match(/^n\d+ +storm-\d+ +\S+ +exit 0 /gm)).toHaveLength(128)
    expect(bastionLogins() - logins).toBe(1)
    expect(dropCount(host('h1'))).toBe(drops)
  }, 180_000)
})
