import { execFileSync, spawn } from 'node:child_process'
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, expect, it } from 'vitest'
import {
  cluster,
  clusterArgs,
  connectionCount,
  describeCluster,
  fanoutEnv,
  host,
  runFanout,
  startFanout,
  survivors,
  waitNoSurvivors,
  writeWork,
} from './cluster.js'

const BIN = fileURLToPath(new URL('../../bin/fanout.js', import.meta.url))
const work = (name: string): string => join(cluster?.work ?? '', name)
const addrOf = (name: string): string => host(name).addr

/** An ssh config for h1–h4 with the given per-host lines (identity, known_hosts file, …). */
function sshConfig(name: string, lines: string[]): string {
  const hosts = ['h1', 'h2', 'h3', 'h4'].map((h) => `Host ${h}\n  HostName ${addrOf(h)}\n`).join('')
  return writeWork(
    name,
    `${hosts}Host *\n  User fanout-test\n  GlobalKnownHostsFile /dev/null\n${lines.map((l) => `  ${l}\n`).join('')}`,
  )
}

const ECHO = ['--launcher', 'none', '--', '/bin/echo', 'hello from the node']

/**
 * Runs fanout on a pseudo-terminal (script(1)), answering each prompt that matches with the given
 * text, as a person would type it. Returns the exit code and everything the terminal showed.
 */
async function onTerminal(
  args: string[],
  answers: Array<[RegExp, string]>,
): Promise<{ code: number | null; screen: string }> {
  const command = ['exec', process.execPath, '--', BIN, ...args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`)].join(' ')
  const child = spawn('script', ['-qefc', command, '/dev/null'], {
    cwd: cluster?.work,
    env: fanoutEnv(),
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let screen = ''
  let answered = 0
  child.stdout.on('data', (b: Buffer) => {
    screen += b.toString('utf8')
    const next = answers[answered]
    if (next && next[0].test(screen)) {
      answered++
      child.stdin.write(next[1] + '\r')
    }
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  clearTimeout(timer)
  return { code, screen }
}

afterEach(async () => {
  expect(await waitNoSurvivors(cluster?.hosts ?? [])).toEqual([])
})

describeCluster('host keys, credentials and remote shells', () => {
  it('--accept-new records a host never seen before, and still refuses a changed key, showing both fingerprints', async () => {
    const known = writeWork('known_hosts-accept', readFileSync(cluster?.knownHosts ?? '', 'utf8'))
    const config = sshConfig('ssh_config-accept', [
      `IdentityFile ${cluster?.key}`,
      'IdentitiesOnly yes',
      `UserKnownHostsFile ${known}`,
    ])
    const hostsFile = writeWork('hosts-accept', 'h1\nh4\n')
    // Without the flag, h4 is refused, and nothing runs on h1 either.
    const refused = await runFanout(['-H', hostsFile, '-F', config, ...ECHO])
    expect(refused.code).toBe(255)
    expect(refused.stderr).toMatch(/h4 \(10\.99\.0\.14:22\): host key is not known .*--accept-new/s)
    const accepted = await runFanout(['-H', hostsFile, '-F', config, '--accept-new', ...ECHO])
    expect(accepted.code, accepted.stderr).toBe(0)
    const fp = /h4: recorded the new host key ssh-ed25519 (SHA256:[A-Za-z0-9+/]{43}) in (\S+)/.exec(accepted.stderr)
    expect(fp?.[2]).toBe(known)
    expect(readFileSync(known, 'utf8')).toContain(
      `${addrOf('h4')} ssh-ed25519 ${readFileSync(join(host('h4').dir, 'ssh_host_ed25519_key.pub'), 'utf8').split(' ')[1]}`,
    )
    // Known now: the same run works without the flag.
    expect((await runFanout(['-H', hostsFile, '-F', config, ...ECHO])).code).toBe(0)
    // A changed key is never accepted: h1's entry now holds another key.
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', work('impostor_key')], {
      stdio: 'ignore',
      input: 'y\n',
    })
    const impostor = readFileSync(work('impostor_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ')
    writeFileSync(
      known,
      readFileSync(known, 'utf8')
        .split('\n')
        .map((l) => (l.startsWith(`${addrOf('h1')} `) ? `${addrOf('h1')} ${impostor}` : l))
        .join('\n'),
    )
    const before = readFileSync(known, 'utf8')
    const changed = await runFanout(['-H', hostsFile, '-F', config, '--accept-new', ...ECHO])
    expect(changed.code).toBe(255)
    expect(changed.stderr).toMatch(
      /h1 \(10\.99\.0\.11:22\): HOST KEY CHANGED.*\n.*presented ssh-ed25519 SHA256:\S+; \S+:\d+ records SHA256:\S+/,
    )
    expect(readFileSync(known, 'utf8')).toBe(before)
  })

  it('an encrypted key: its passphrase is asked once on a terminal for all nodes, never echoed; without a terminal, a clear refusal', async () => {
    execFileSync(
      'ssh-keygen',
      ['-q', '-t', 'ed25519', '-N', 'correct horse', '-C', 'fanout-enc', '-f', work('enc_key')],
      { stdio: 'ignore', input: 'y\n' },
    )
    appendFileSync(join(cluster?.dir ?? '', 'authorized_keys'), readFileSync(work('enc_key.pub')))
    const config = sshConfig('ssh_config-enc', [
      `IdentityFile ${work('enc_key')}`,
      'IdentitiesOnly yes',
      `UserKnownHostsFile ${cluster?.knownHosts}`,
    ])
    const hostsFile = writeWork('hosts-enc', 'h1\nh2\nh3\n')
    const tty = await onTerminal(
      ['-H', hostsFile, '-F', config, '--plain', ...ECHO],
      [[/Enter passphrase for key \S+enc_key: $/, 'correct horse']],
    )
    expect(tty.code, tty.screen).toBe(0)
    expect(tty.screen.match(/Enter passphrase/g)).toHaveLength(1)
    expect(tty.screen.match(/hello from the node/g)).toHaveLength(3)
    expect(tty.screen).not.toContain('correct horse')
    const nodes = ['h1', 'h2', 'h3'].map(host)
    const before = nodes.map(connectionCount)
    const batch = await runFanout(['-H', hostsFile, '-F', config, ...ECHO])
    expect(batch.code).toBe(255)
    expect(batch.stderr).toContain(
      `h1: authentication failed for user fanout-test (tried: nothing — no agent and no identity file; not usable: ${work('enc_key')} (encrypted, and no terminal to ask for its passphrase: load it into ssh-agent (ssh-add)))`,
    )
    // One attempt per node, not a retry storm (sshd's penalties and lockouts count failures).
    expect(nodes.map((h, i) => connectionCount(h) - (before[i] ?? 0))).toEqual([1, 1, 1])
  })

  it('passwords only with --ask-password: asked once on a terminal, refused up front without one', async () => {
    const config = sshConfig('ssh_config-pw', [
      `IdentityFile ${work('no-such-key')}`,
      'IdentitiesOnly yes',
      `UserKnownHostsFile ${cluster?.knownHosts}`,
    ])
    const hostsFile = writeWork('hosts-pw', 'h1\nh2\n')
    const noFlag = await runFanout(['-H', hostsFile, '-F', config, ...ECHO])
    expect(noFlag.code).toBe(255)
    expect(noFlag.stderr).toContain('authentication failed for user fanout-test (tried: nothing')
    const password = readFileSync(join(cluster?.dir ?? '', 'password'), 'utf8').trim()
    const tty = await onTerminal(
      ['-H', hostsFile, '-F', config, '--plain', '--ask-password', ...ECHO],
      [[/Password for fanout-test on 2 node\(s\): $/, password]],
    )
    expect(tty.code, tty.screen).toBe(0)
    expect(tty.screen.match(/Password for/g)).toHaveLength(1)
    expect(tty.screen.match(/hello from the node/g)).toHaveLength(2)
    expect(tty.screen).not.toContain(password)
    const wrong = await onTerminal(
      ['-H', hostsFile, '-F', config, '--plain', '--ask-password', ...ECHO],
      [[/Password for/, 'not the password']],
    )
    expect(wrong.code).toBe(255)
    expect(wrong.screen).toMatch(/authentication failed for user fanout-test \(tried: password, keyboard-interactive\)/)
    const before = connectionCount(host('h1'))
    const batch = await runFanout(['-H', hostsFile, '-F', config, '--ask-password', ...ECHO])
    expect(batch.code).toBe(2)
    expect(batch.stderr).toContain('--ask-password needs a terminal')
    expect(connectionCount(host('h1'))).toBe(before)
  })

  it("--env values and --setup lines never appear in a process's command line on the nodes (ps shows those to every user)", async () => {
    const hostsFile = writeWork('hosts-ps', 'h1\nh2\n')
    // The probe and the set-up step run while the secrets would be in the wrapper's arguments; the
    // launcher (after exec) has them only in its environment, which only its user can read.
    const job = startFanout([
      '-H',
      hostsFile,
      ...clusterArgs(),
      '--env',
      'FO_TOKEN=hunter2-in-env',
      '--setup',
      'echo "setting up with setup-secret-42" >&2; sleep 3',
      '--launcher',
      'none',
      '--',
      'sh',
      '-c',
      'echo "token ok: ${#FO_TOKEN}"; sleep 2',
    ])
    await job.waitFor(/setting up with setup-secret-42\n[\s\S]*setting up with setup-secret-42\n/)
    // What `ps` shows of the nodes' processes: their command lines (fanout's own, here, holds the flags).
    const seen = (): string => ['h1', 'h2'].flatMap((h) => survivors(host(h))).join('\n')
    const during = seen()
    expect(during).toContain('sleep 3') // the set-up step is running now
    await job.waitFor(/token ok: 14\n[\s\S]*token ok: 14\n/)
    const after = seen()
    for (const snapshot of [during, after]) {
      expect(snapshot).not.toContain('hunter2-in-env')
      expect(snapshot).not.toContain('setup-secret-42')
    }
    const run = await job.done
    expect(run.code, run.stderr).toBe(0)
  })

  it('a user whose login shell is dash runs a torchrun job, and Ctrl-C leaves nothing behind', async () => {
    writeWork(
      'steps.py',
      'import os, sys, time\nfor i in range(600):\n    sys.stdout.write(f"rank {os.environ[\'RANK\']} step {i}\\n"); sys.stdout.flush(); time.sleep(0.1)\n',
    )
    const hostsFile = writeWork('hosts-dash', 'fanout-dash@h1\nfanout-dash@h2\n')
    const job = startFanout([
      '-H',
      hostsFile,
      '--ssh-config',
      cluster?.sshConfig ?? '',
      '--python',
      '/usr/bin/python3',
      '--nproc-per-node',
      '1',
      'steps.py',
    ])
    await job.waitFor(/\[n0 h1 r0\]  rank 0 step 3\n/)
    await job.waitFor(/\[n1 h2 r1\]  rank 1 step 3\n/)
    expect(
      execFileSync('ip', ['netns', 'exec', host('h1').namespace, 'ps', '-o', 'user=,args=', '-u', 'fanout-dash'], {
        encoding: 'utf8',
      }),
    ).toMatch(/steps\.py/)
    process.kill(job.pid, 'SIGINT')
    const run = await job.done
    expect(run.code, run.stderr).toBe(130)
    expect(await waitNoSurvivors([host('h1'), host('h2')], 5000)).toEqual([])
  })
})
