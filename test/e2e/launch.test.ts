import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { execFileSync, spawn } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, expect, it } from 'vitest'
import {
  cluster,
  clusterArgs,
  connectionCount,
  describeCluster,
  host,
  runFanout,
  sessionCount,
  sshdLogCount,
  waitNoSurvivors,
  writeWork,
  ALLREDUCE,
} from './cluster.js'

const NODES = ['h1', 'h2', 'h3'].map(host)
// The examples, readable by the test user on every host (the checkout may be private: CI clones under /root).
const EXAMPLES = join(cluster?.work ?? '', 'examples')
const hostfile = (name: string, lines: string[]): string => writeWork(name, lines.join('\n') + '\n')

beforeAll(() => {
  mkdirSync(EXAMPLES, { recursive: true, mode: 0o755 })
  copyFileSync(fileURLToPath(new URL('../../examples/train.py', import.meta.url)), join(EXAMPLES, 'train.py'))
  chmodSync(join(EXAMPLES, 'train.py'), 0o644)
})

afterEach(async () => {
  // Whatever a test did, it must leave no process behind on any host.
  expect(await waitNoSurvivors(cluster?.hosts ?? [])).toEqual([])
})

// The scenarios every torch must pass: Debian 12's torch 1.13 (h1-h3) and Debian 13's torch 2.6 (d1-d3,
// whose host names resolve nowhere).
describeCluster.each([
  { torch: 'torch 1.13 (Debian 12)', names: ['h1', 'h2', 'h3'] },
  { torch: 'torch 2.6 (Debian 13)', names: ['d1', 'd2', 'd3'] },
])('3 hosts, $torch', ({ names }) => {
  it('runs a gloo all_reduce over 3 hosts × 2 processes: every rank gets the right sum', async () => {
    writeWork('allreduce.py', ALLREDUCE)
    const nodes = names.map(host)
    const sessions = (): number[] => nodes.map(sessionCount)
    const before = sessions()
    const run = await runFanout(['--hostfile', hostfile(`hosts3-${names[0]}`, names), ...clusterArgs(), 'allreduce.py'])
    expect(run.stderr).toContain('6 process(es): 3 × 2')
    expect(run.code, run.stderr).toBe(0)
    const ifaces = ['ens3', 'enp1s0', 'eno1']
    for (let rank = 0; rank < 6; rank++) {
      const node = Math.floor(rank / 2)
      // The line arrives whole, once, under its own node's prefix.
      const line = `[n${node} ${names[node]} r${rank}]  rank ${rank} of 6 node ${node} sum 21 iface ${ifaces[node]}`
      expect(
        run.stdout.split('\n').filter((l) => l === line),
        run.stdout,
      ).toHaveLength(1)
    }
    expect(run.stderr).toMatch(new RegExp(`n0\\s+${names[0]}\\s+0-1\\s+exit 0`))
    // Node 0's address was known from fanout's own connection: each probe found the route to it, and
    // no route phase (a round trip per node) followed.
    expect(run.stderr).not.toMatch(/^fanout: route:/m)
    // The probe and the job ran as one command: one session per node, where each used to cost two.
    expect(sessions().map((n, i) => n - (before[i] ?? 0))).toEqual([1, 1, 1])
  })

  it("names the failing node and exits non-zero when one node's script exits 3, stopping the others", async () => {
    writeWork(
      'fail_on_node1.py',
      `
import os, sys, torch.distributed as dist
if os.environ["GROUP_RANK"] == "1":
    sys.stderr.write("node 1 giving up\\n")
    sys.exit(3)
dist.init_process_group("gloo")  # the other nodes wait here for ranks that never come
`,
    )
    const run = await runFanout([
      '-H',
      hostfile(`hosts3-${names[0]}`, names),
      ...clusterArgs(),
      '--grace',
      '3',
      'fail_on_node1.py',
    ])
    // torchrun itself would sit in its exit barrier; fanout reads its report of the failed worker.
    expect(run.code, run.stderr).toBe(3)
    // Both of node 1's ranks exit 3; torchrun reports whichever it polled first.
    expect(run.stderr).toMatch(
      new RegExp(`first failure: node 1 \\(${names[1]}\\): local rank [01] exited with code 3`),
    )
    expect(run.stderr).toMatch(/last lines it printed:\n(.*\n)*  \[r[23]\] node 1 giving up/)
    // The others were stopped instead of waiting out torch's 30-minute rendezvous timeout.
    expect(run.ms).toBeLessThan(60_000)
  })

  it('trains a small DistributedDataParallel model: the loss falls and every rank ends with the same parameters', async () => {
    const run = await runFanout([
      '-H',
      hostfile(`hosts3-${names[0]}`, names),
      ...clusterArgs(),
      '-C',
      EXAMPLES,
      'train.py',
      '--epochs',
      '3',
    ])
    expect(run.code, run.stderr).toBe(0)
    const losses = [...run.stdout.matchAll(/epoch (\d)\/3 loss ([0-9.]+)/g)].map((m) => Number(m[2]))
    expect(losses).toHaveLength(3)
    expect(losses[2]).toBeLessThan(losses[0] as number)
    expect(run.stdout.match(/rank \d\/6: parameters identical across ranks: True/g)).toHaveLength(6)
  })
})

describeCluster('fanout against a 3-host sshd cluster', () => {
  it('passes script arguments byte for byte: quotes, $(…), backticks, ;, *, newline, non-ASCII', async () => {
    writeWork('echo args.py', 'import json, sys\nsys.stdout.write("ARGS " + json.dumps(sys.argv[1:]) + "\\n")\n')
    const marker = join(cluster?.work ?? '', 'injected')
    const args = [
      'a b',
      "it's",
      'say "hi"',
      `$(touch ${marker})`,
      `\`touch ${marker}\``,
      `x; touch ${marker}`,
      '*',
      'line1\nline2',
      'naïve – 日本語 🚀',
      '',
      '--flag=$HOME',
      '\\back\\slash',
      '\t tab ',
      "'",
      '"',
    ]
    const run = await runFanout([
      '-H',
      hostfile('hosts3', ['h1', 'h2', 'h3']),
      ...clusterArgs(),
      '--nproc-per-node',
      '1',
      'echo args.py',
      ...args,
    ])
    expect(run.code, run.stderr).toBe(0)
    const received = run.stdout
      .split('\n')
      .filter((l) => l.includes('ARGS '))
      .map((l) => JSON.parse(l.slice(l.indexOf('ARGS ') + 5)))
    expect(received).toHaveLength(3)
    for (const r of received) expect(r).toEqual(args)
    expect(existsSync(marker)).toBe(false)
  })

  it("prints each node's exact command with --dry-run and launches nothing", async () => {
    writeWork('train.py', 'raise SystemExit("a dry run must not run this")\n') // the pre-flight looks for it
    const run = await runFanout([
      '-H',
      hostfile('hosts3', ['h1', 'h2', 'h3']),
      ...clusterArgs(),
      '--dry-run',
      '--master-port',
      '29511',
      'train.py',
      '--epochs',
      '3',
    ])
    expect(run.code, run.stderr).toBe(0)
    for (const [i, iface] of ['ens3', 'enp1s0', 'eno1'].entries()) {
      expect(run.stdout).toContain(
        `cd ${cluster?.work} && PYTHONUNBUFFERED=1 GLOO_SOCKET_IFNAME=${iface} NCCL_SOCKET_IFNAME=${iface} /usr/bin/python3 -m torch.distributed.run ` +
          `--nnodes=3 --node_rank=${i} --nproc_per_node=2 --master_addr=10.99.0.11 --master_port=29511 --monitor_interval=0.25 ` +
          `--no_python /usr/bin/python3 -S -c"$FANOUT_RANK_TAGGER" train.py python -1 '' -- train.py --epochs 3`,
      )
    }
  })

  it('--master-addr as a host name: each node resolves it and pins the interface that routes there', async () => {
    const run = await runFanout([
      '-H',
      hostfile('hosts3', ['h1', 'h2', 'h3']),
      ...clusterArgs(),
      '--master-addr',
      'fo-h1',
      '--launcher',
      'none',
      '--',
      'sh',
      '-c',
      'echo "iface $GLOO_SOCKET_IFNAME $NCCL_SOCKET_IFNAME"',
    ])
    expect(run.code, run.stderr).toBe(0)
    for (const [i, iface] of ['ens3', 'enp1s0', 'eno1'].entries())
      expect(run.stdout).toContain(`[n${i} h${i + 1}]  iface ${iface} ${iface}`)
    expect(run.stderr).not.toContain('no interface routes')
  })

  it('refuses a host whose key is not in known_hosts, and launches nothing anywhere', async () => {
    const before = connectionCount(host('h1'))
    const sessions = sessionCount(host('h1'))
    const run = await runFanout(['-H', hostfile('hosts-h4', ['h1', 'h4']), ...clusterArgs(), 'allreduce.py'])
    expect(run.code).toBe(255)
    expect(run.stderr).toMatch(
      /h4 \(10\.99\.0\.14:22\): host key is not known \(ssh-ed25519 SHA256:[A-Za-z0-9+/]{43}\)/,
    )
    expect(run.stderr).toContain('ssh-keyscan -p 22 10.99.0.14 >>')
    expect(run.stderr).not.toContain('launch')
    expect(connectionCount(host('h1'))).toBe(before + 1) // connected (in parallel), then closed
    expect(sessionCount(host('h1'))).toBe(sessions) // and no command ran there, not even the probe
  })

  it('refuses a host whose key changed, showing both fingerprints', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fanout-kh-'))
    const wrongKey = readFileSync(join(host('h3').dir, 'ssh_host_ed25519_key.pub'), 'utf8')
      .split(' ')
      .slice(0, 2)
      .join(' ')
    writeFileSync(join(dir, 'known_hosts'), `10.99.0.11 ${wrongKey}\n`)
    writeFileSync(
      join(dir, 'config'),
      readFileSync(cluster?.sshConfig ?? '', 'utf8').replace(
        /UserKnownHostsFile .*/,
        `UserKnownHostsFile ${dir}/known_hosts`,
      ),
    )
    const run = await runFanout(['-H', hostfile('hosts-h1', ['h1']), '--ssh-config', join(dir, 'config'), 'x.py'])
    expect(run.code).toBe(255)
    expect(run.stderr).toMatch(/h1 \(10\.99\.0\.11:22\): HOST KEY CHANGED/)
    expect(run.stderr).toMatch(/presented ssh-ed25519 SHA256:\S+; .*known_hosts:1 records SHA256:\S+/)
  })

  it('reports an unreachable host by name within the connect timeout', async () => {
    const run = await runFanout([
      '-H',
      hostfile('hosts-h5', ['h1', 'h5']),
      ...clusterArgs(),
      '--connect-timeout',
      '3',
      'allreduce.py',
    ])
    expect(run.code).toBe(255)
    expect(run.stderr).toMatch(
      /node 1: h5 \(fanout-test@10\.99\.0\.15:22\): (no SSH handshake within 3 s \(timeout\)|connection timed out|host unreachable)/,
    )
    expect(run.ms).toBeLessThan(10_000)
  })

  it('rejects a bad hostfile with file:line and exit 2 before connecting to anything', async () => {
    const before = NODES.map(connectionCount)
    const file = hostfile('bad-hosts', ['h1', 'h2:99999', 'h3 slots=x', 'h1'])
    const run = await runFanout(['-H', file, ...clusterArgs(), 'allreduce.py'])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain(`${file}:2: invalid port "99999"`)
    expect(run.stderr).toContain(`${file}:3: invalid slots "x"`)
    expect(run.stderr).toContain(`${file}:4: duplicate host "h1" (first at ${file}:1)`)
    expect(NODES.map(connectionCount)).toEqual(before)
  })

  it('honours ~/.ssh/config and authenticates through ssh-agent', async () => {
    const home = mkdtempSync(join(tmpdir(), 'fanout-home-'))
    mkdirSync(join(home, '.ssh'), { mode: 0o700 })
    // No IdentityFile anywhere: the only way in is the agent's key.
    writeFileSync(
      join(home, '.ssh', 'config'),
      `Host node-a\n  HostName 10.99.0.12\n  User fanout-test\n  UserKnownHostsFile ${cluster?.knownHosts}\n`,
    )
    const sock = join(home, 'agent.sock')
    const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' })
    try {
      for (let i = 0; i < 50 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100))
      execFileSync('ssh-add', ['-q', cluster?.key ?? ''], { env: { ...process.env, SSH_AUTH_SOCK: sock } })
      writeWork('hello.py', 'import os, sys\nsys.stdout.write("hello from node " + os.environ["GROUP_RANK"] + "\\n")\n')
      const run = await runFanout(
        [
          '-H',
          hostfile('hosts-alias', ['node-a']),
          '--python',
          '/usr/bin/python3',
          '--nproc-per-node',
          '1',
          'hello.py',
        ],
        { env: { HOME: home, SSH_AUTH_SOCK: sock } },
      )
      expect(run.code, run.stderr).toBe(0)
      expect(run.stdout).toContain('[n0 node-a r0]  hello from node 0')
      // Without the agent the same launch is refused, naming host and user.
      const refused = await runFanout(
        ['-H', hostfile('hosts-alias', ['node-a']), '--python', '/usr/bin/python3', 'hello.py'],
        { env: { HOME: home, SSH_AUTH_SOCK: '' } },
      )
      expect(refused.code).toBe(255)
      expect(refused.stderr).toContain('node-a: authentication failed for user fanout-test')
    } finally {
      agent.kill()
    }
  })

  it('runs the built-in default (localhost, no sshd) through the local transport', async () => {
    writeWork('allreduce.py', ALLREDUCE)
    const fix = join(cluster?.dir ?? '', 'torch-fix')
    const run = await runFanout(
      ['-H', hostfile('hosts-local', ['localhost slots=2']), '--python', '/usr/bin/python3', 'allreduce.py'],
      { env: { PYTHONPATH: fix } },
    )
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toContain('[n0 localhost r0]  rank 0 of 2 node 0 sum 3')
    expect(run.stdout).toContain('[n0 localhost r1]  rank 1 of 2 node 0 sum 3')
  })
})
