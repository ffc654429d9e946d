import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { beforeAll, expect, it } from 'vitest'
import { mulberry32 } from '../unit/prng.js'
import {
  cluster,
  clusterArgs,
  connectionCount,
  describeCluster,
  fanoutEnv,
  host,
  runFanout,
  type FanoutRun,
} from './cluster.js'

/**
 * Issue 8, "bad input everywhere": every malformed hostfile and flag combination here must end with
 * exit code 2 and one clear message (naming the file:line, host or flag) before any connection is
 * made; the hosts' sshd logs prove that none was. Every case names h1–h3 of the cluster (or a
 * hostfile that does), so that without the mistake it would reach them: the first test shows it does.
 */

const NODES = ['h1', 'h2', 'h3'].map(host)
const BIN = fileURLToPath(new URL('../../bin/fanout.js', import.meta.url))
/** Relative to the work directory, fanout's working directory in these tests. */
const DIR = 'bad-input'
const GOOD = `${DIR}/good`
const TEST_USER = 'fanout-test'

interface Case {
  name: string
  /** fanout's arguments after clusterArgs(); files are named relative to the work directory. */
  args: string[]
  /** Written into DIR before the run (a Buffer as bytes; `null`: a directory). */
  files?: Record<string, string | Buffer | null>
  /** Given on fanout's stdin (`--hostfile -`); without it stdin is empty. */
  stdin?: string | Buffer
  /** Run as the cluster's unprivileged user: root reads any file, whatever its mode. */
  asTestUser?: boolean
  env?: NodeJS.ProcessEnv
  /** What the one line on stderr must say. */
  message: RegExp
  /** Longest acceptable run (the 100 000-line hostfile must be refused quickly too). */
  withinMs?: number
}

/** A launch of train.py on h1–h3 with these flags. */
const launch = (...flags: string[]): string[] => ['-H', GOOD, ...flags, 'train.py']
/** A hostfile of h1–h3 with `line` in the middle: the mistake is on line 2. */
const around = (line: string): string => `h1\n${line}\nh3\n`

// Random bytes with NULs: a binary file given as the hostfile by mistake (seeded: the same each run).
const rand = mulberry32(8)
const BINARY = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i % 7 === 0 ? 0 : Math.floor(rand() * 256))))
const HUGE = ['h1', 'h2', 'h3', ...Array.from({ length: 100_000 - 3 }, (_, i) => `node${i + 4}`)].join('\n') + '\n'

const CASES: Case[] = [
  // The hostfile itself.
  {
    name: 'an empty hostfile',
    args: ['-H', `${DIR}/empty`, 'train.py'],
    files: { empty: '' },
    message: /\/bad-input\/empty: no hosts/,
  },
  {
    name: 'a hostfile of comments and blank lines',
    args: ['-H', `${DIR}/comments`, 'train.py'],
    files: { comments: '# h1\n\n   # h2\n\t\n' },
    message: /\/bad-input\/comments: no hosts/,
  },
  {
    name: 'a directory given as the hostfile',
    args: ['-H', `${DIR}/a-dir`, 'train.py'],
    files: { 'a-dir': null },
    message: /\/bad-input\/a-dir: is a directory, not a hostfile/,
  },
  {
    name: 'a binary file (random bytes with NULs)',
    args: ['-H', `${DIR}/binary`, 'train.py'],
    files: { binary: BINARY },
    message: /\/bad-input\/binary: not a text file/,
  },
  {
    name: 'a file that does not exist',
    args: ['-H', `${DIR}/missing`, 'train.py'],
    message: /\/bad-input\/missing: cannot read hostfile: no such file/,
  },
  {
    name: 'a file its user cannot read (mode 000, as a non-root user)',
    args: ['-H', `${DIR}/unreadable`, 'train.py'],
    files: { unreadable: 'h1\nh2\nh3\n' },
    asTestUser: true,
    message: /\/bad-input\/unreadable: cannot read hostfile: permission denied/,
  },
  {
    name: 'a file even root cannot read (a write-only /proc/sys file)',
    args: ['-H', '/proc/sys/vm/compact_memory', 'train.py'],
    message: /^fanout: \/proc\/sys\/vm\/compact_memory: cannot read hostfile: permission denied$/m,
  },
  {
    name: 'a 100 000-line hostfile: refused by the host limit, naming it',
    args: ['-H', `${DIR}/huge`, 'train.py'],
    files: { huge: HUGE },
    message: /\/bad-input\/huge:65537: more than 65536 hosts/,
    withinMs: 15_000,
  },
  {
    name: 'a NUL byte in a line',
    args: ['-H', `${DIR}/nul`, 'train.py'],
    files: { nul: 'h1\nh\u00002\nh3\n' },
    message: /\/bad-input\/nul:2: not a text file \(contains NUL bytes\)/,
  },
  {
    name: 'empty stdin (--hostfile -)',
    args: ['--hostfile', '-', 'train.py'],
    stdin: '',
    message: /^fanout: <stdin>: no hosts/,
  },
  {
    name: 'a bad line on stdin (-H -)',
    args: ['-H', '-', 'train.py'],
    stdin: 'h1\nh2\nh3:99999\n',
    message: /^fanout: <stdin>:3: invalid port "99999"/,
  },
  { name: 'binary stdin', args: ['-H', '-', 'train.py'], stdin: BINARY, message: /^fanout: <stdin>: not a text file/ },
  // Host names.
  {
    name: 'a host with a shell command',
    args: ['-H', `${DIR}/shell`, 'train.py'],
    files: { shell: around('host;rm -rf ~') },
    message: /\/shell:2: invalid host name "host;rm"/,
  },
  {
    name: 'a host name with a space',
    args: ['-H', `${DIR}/space`, 'train.py'],
    files: { space: around('a b') },
    message: /\/space:2: unexpected "b" \(expected key=value after the host\)/,
  },
  {
    name: 'a host $(id)',
    args: ['-H', `${DIR}/subst`, 'train.py'],
    files: { subst: around('$(id)') },
    message: /\/subst:2: invalid host name "\$\(id\)"/,
  },
  {
    name: 'a host in backticks',
    args: ['-H', `${DIR}/backtick`, 'train.py'],
    files: { backtick: around('`id`') },
    message: /\/backtick:2: invalid host name "`id`"/,
  },
  {
    name: 'a Cyrillic lookalike of h2',
    args: ['-H', `${DIR}/lookalike`, 'train.py'],
    files: { lookalike: around('һ2') },
    message: /\/lookalike:2: invalid host name "һ2"/,
  },
  {
    name: 'a host name longer than DNS allows',
    args: ['-H', `${DIR}/long-name`, 'train.py'],
    files: { 'long-name': around('a'.repeat(300)) },
    message: /\/long-name:2: invalid host name "a{80}"… \(300 characters\) \(longer than DNS allows/,
  },
  {
    name: 'an IPv4 address out of range',
    args: ['-H', `${DIR}/ipv4`, 'train.py'],
    files: { ipv4: around('999.999.999.999') },
    message: /\/ipv4:2: invalid IPv4 address "999.999.999.999"/,
  },
  {
    name: 'colons that are no IPv6 address',
    args: ['-H', `${DIR}/ipv6`, 'train.py'],
    files: { ipv6: around('[:::]:22') },
    message: /\/ipv6:2: invalid IPv6 address ":::"/,
  },
  // Ports and users.
  {
    name: 'port 0',
    args: ['-H', `${DIR}/port0`, 'train.py'],
    files: { port0: around('h2:0') },
    message: /\/port0:2: invalid port "0" \(expected 1-65535\)/,
  },
  {
    name: 'port 65536',
    args: ['-H', `${DIR}/port65536`, 'train.py'],
    files: { port65536: around('h2:65536') },
    message: /\/port65536:2: invalid port "65536"/,
  },
  {
    name: 'port 22x',
    args: ['-H', `${DIR}/port22x`, 'train.py'],
    files: { port22x: around('h2:22x') },
    message: /\/port22x:2: invalid port "22x"/,
  },
  {
    name: 'a user starting with -',
    args: ['-H', `${DIR}/user-dash`, 'train.py'],
    files: { 'user-dash': around('-oProxyCommand=x@h2') },
    message: /\/user-dash:2: invalid user name "-oProxyCommand=x"/,
  },
  {
    name: 'an empty user@',
    args: ['-H', `${DIR}/user-empty`, 'train.py'],
    files: { 'user-empty': around('@h2') },
    message: /\/user-empty:2: invalid user name ""/,
  },
  // slots= and duplicates.
  {
    name: 'contradictory slots= on one line',
    args: ['-H', `${DIR}/slots-twice`, 'train.py'],
    files: { 'slots-twice': around('h2 slots=2 slots=3') },
    message: /\/slots-twice:2: slots= given twice \(slots=2 and slots=3\)/,
  },
  {
    name: 'slots=0',
    args: ['-H', `${DIR}/slots0`, 'train.py'],
    files: { slots0: around('h2 slots=0') },
    message: /\/slots0:2: invalid slots "0" \(expected a whole number from 1 to 4096\)/,
  },
  {
    name: 'a huge slots=',
    args: ['-H', `${DIR}/slots-huge`, 'train.py'],
    files: { 'slots-huge': around('h2 slots=99999999999999999999') },
    message: /\/slots-huge:2: invalid slots "99999999999999999999"/,
  },
  {
    name: 'a host listed twice, with other slots',
    args: ['-H', `${DIR}/dup`, 'train.py'],
    files: { dup: 'h1 slots=1\nh2\nh3\nh1 slots=2\n' },
    message: /\/dup:4: duplicate host "h1" \(first at \S+\/dup:1\)/,
  },
  // Ranges.
  {
    name: 'a reversed range gpu[5-1]',
    args: ['-H', `${DIR}/range-reversed`, 'train.py'],
    files: { 'range-reversed': 'h[1-3]\ngpu[5-1]\n' },
    message: /\/range-reversed:2: invalid host range "gpu\[5-1\]": "5-1" runs backwards/,
  },
  {
    name: 'a range over the host limit',
    args: ['-H', `${DIR}/range-huge`, 'train.py'],
    files: { 'range-huge': 'h[1-3]\nn[1-100000]\n' },
    message: /\/range-huge:2: invalid host range "n\[1-100000\]": more than 65536 numbers/,
  },
  {
    name: 'two ranges whose product is over the host limit',
    args: ['-H', `${DIR}/range-product`, 'train.py'],
    files: { 'range-product': 'h[1-3]\nr[1-300]n[1-300]\n' },
    message: /\/range-product:2: invalid host range "r\[1-300\]n\[1-300\]": more than 65536 hosts/,
  },
  {
    name: 'an unclosed range',
    args: ['-H', `${DIR}/range-open`, 'train.py'],
    files: { 'range-open': 'h[1-3\n' },
    message: /\/range-open:1: invalid host range "h\[1-3": "\[" without "\]"/,
  },
  {
    name: 'overlapping ranges',
    args: ['-H', `${DIR}/range-overlap`, 'train.py'],
    files: { 'range-overlap': 'h[1-3]\nh[3-4]\n' },
    message: /\/range-overlap:2: duplicate host "h3"/,
  },
  // Host sources.
  {
    name: '--hosts with --hostfile',
    args: ['--hosts', 'h[1-3]', '-H', GOOD, 'train.py'],
    message: /^fanout: --hostfile and --hosts cannot be used together$/,
  },
  {
    name: '--hosts with an empty item',
    args: ['--hosts', 'h1,,h3', 'train.py'],
    message: /^fanout: --hosts:2: empty host name$/,
  },
  {
    name: 'SLURM_JOB_NODELIST with an unclosed range',
    args: ['train.py'],
    env: { SLURM_JOB_NODELIST: 'h[1-3' },
    message: /^fanout: SLURM_JOB_NODELIST:1: invalid host range "h\[1-3": "\[" without "\]"$/,
  },
  // Selection.
  {
    name: '--include naming an unknown host',
    args: launch('--include', 'h1@h9'),
    message: /^fanout: --include: unknown host h9 \(not in the host list\)$/,
  },
  {
    name: '--exclude naming an unknown host',
    args: launch('--exclude', 'h[7-9]'),
    message: /^fanout: --exclude: unknown hosts h\[7-9\]/,
  },
  {
    name: '--include with a bad GPU list',
    args: launch('--include', 'h1:0-x'),
    message: /^fanout: --include: invalid GPU list in "h1:0-x"/,
  },
  {
    name: '--include with a GPU the host lacks',
    args: ['-H', `${DIR}/slots2`, '--include', 'h1:5', 'train.py'],
    files: { slots2: 'h[1-3] slots=2\n' },
    message: /^fanout: --include: h1 has no GPU 5 \(its GPUs: 0,1\)$/,
  },
  {
    name: '--exclude of a GPU of a host without slots=',
    args: launch('--exclude', 'h1:0'),
    message: /^fanout: --exclude: cannot exclude GPU 0 of h1: its GPU count is unknown/,
  },
  { name: '--include @ only', args: launch('--include', '@'), message: /^fanout: --include: empty host name in "@"$/ },
  {
    name: '--num-nodes above the host count',
    args: launch('--num-nodes', '4'),
    message: /^fanout: --num-nodes 4: only 3 node\(s\) to choose from$/,
  },
  {
    name: 'CUDA_VISIBLE_DEVICES and --num-gpus',
    args: launch('--env', 'CUDA_VISIBLE_DEVICES=0', '--num-gpus', '1'),
    message:
      /^fanout: CUDA_VISIBLE_DEVICES is given with --env\/--env-file, but the selection flags already chose GPUs/,
  },
  // Numbers.
  {
    name: '--nproc-per-node 0',
    args: launch('--nproc-per-node', '0'),
    message: /^fanout: --nproc-per-node must be a whole number from 1 to 1024 \(got "0"\)$/,
  },
  {
    name: '--nproc-per-node -1',
    args: launch('--nproc-per-node', '-1'),
    message: /^fanout: --nproc-per-node must be a whole number from 1 to 1024 \(got "-1"\)$/,
  },
  {
    name: '--nproc-per-node 99999',
    args: launch('--nproc-per-node', '99999'),
    message: /^fanout: --nproc-per-node must be a whole number from 1 to 1024 \(got "99999"\)$/,
  },
  {
    name: '--nproc-per-node 1e3',
    args: launch('--nproc-per-node', '1e3'),
    message: /^fanout: --nproc-per-node must be a whole number from 1 to 1024 \(got "1e3"\)$/,
  },
  {
    name: '--restarts -1',
    args: launch('--restarts', '-1'),
    message: /^fanout: --restarts must be a whole number from 0 to 100 \(got "-1"\)$/,
  },
  {
    name: '--max-handshakes 0x10',
    args: launch('--max-handshakes', '0x10'),
    message: /^fanout: --max-handshakes must be a whole number/,
  },
  {
    name: '--jump with a bad port',
    args: launch('--jump', 'bastion:99999'),
    message: /^fanout: --jump: jump host "bastion:99999": invalid port "99999"/,
  },
  {
    name: '--jump with an empty hop',
    args: launch('--jump', 'bastion,,inner'),
    message: /^fanout: --jump: jump host "": empty jump host/,
  },
  {
    name: '--jump with a bad host name',
    args: launch('--jump', 'bad host'),
    message: /^fanout: --jump: jump host "bad host": invalid host name/,
  },
  {
    name: '--master-port 70000',
    args: launch('--master-port', '70000'),
    message: /^fanout: --master-port must be a port from 1 to 65535 \(got "70000"\)$/,
  },
  {
    name: '--ssh-port 0',
    args: launch('--ssh-port', '0'),
    message: /^fanout: --ssh-port must be a port from 1 to 65535/,
  },
  // Durations.
  {
    name: '--timeout 0',
    args: launch('--timeout', '0'),
    message: /^fanout: --timeout must be a duration such as 10, 10s, 500ms or 2m \(got "0"\)$/,
  },
  { name: '--grace -1', args: launch('--grace', '-1'), message: /^fanout: --grace must be a duration .*\(got "-1"\)$/ },
  {
    name: '--connect-timeout 1y',
    args: launch('--connect-timeout', '1y'),
    message: /^fanout: --connect-timeout must be a duration .*\(got "1y"\)$/,
  },
  {
    name: '--heartbeat-timeout 1',
    args: launch('--heartbeat-timeout', '1'),
    message: /^fanout: --heartbeat-timeout must be at least 2 s/,
  },
  // Other flags.
  {
    name: '--master-addr a;b',
    args: launch('--master-addr', 'a;b'),
    message: /^fanout: --master-addr "a;b" is not a host name or address$/,
  },
  {
    name: '--master-addr=-x',
    args: launch('--master-addr=-x'),
    message: /^fanout: --master-addr "-x" is not a host name or address$/,
  },
  {
    name: '--chdir relative',
    args: launch('--chdir', 'relative'),
    message: /^fanout: --chdir must be an absolute path on the nodes \(got "relative"\)$/,
  },
  {
    name: "--env 'BAD NAME=1'",
    args: launch('--env', 'BAD NAME=1'),
    message: /^fanout: --env: "BAD NAME" is not a valid variable name/,
  },
  {
    name: '--env-file that does not exist',
    args: launch('--env-file', `${DIR}/missing.env`),
    message: /^fanout: --env-file \S+\/missing\.env: cannot read it: no such file$/,
  },
  {
    name: '--env-file with a malformed line',
    args: launch('--env-file', `${DIR}/bad.env`),
    files: { 'bad.env': 'A=1\nnot an assignment\n' },
    message: /^fanout: \S+\/bad\.env:2: expected NAME=VALUE$/,
  },
  {
    name: '--only x',
    args: launch('--only', 'x'),
    message: /^fanout: --only: "x" is not a number or range such as 0 or 4-7/,
  },
  { name: '--prefix {nope}', args: launch('--prefix', '{nope}'), message: /^fanout: --prefix: unknown field \{nope\}/ },
  {
    name: '--quiet --only 0',
    args: launch('--quiet', '--only', '0'),
    message: /^fanout: --quiet shows no job output: it cannot be combined with --only or --only-node$/,
  },
  {
    name: '--only-node naming an unknown host',
    args: launch('--only-node', 'h9'),
    message: /^fanout: --only-node: no node is host "h9"/,
  },
  {
    name: '--launcher nope',
    args: launch('--launcher', 'nope'),
    message: /^fanout: --launcher must be one of "torchrun", "launch", "none" \(got "nope"\)$/,
  },
  {
    name: '--rdzv-backend etcd',
    args: launch('--rdzv-backend', 'etcd'),
    message: /^fanout: --rdzv-backend must be one of "c10d", "static" \(got "etcd"\)$/,
  },
  {
    name: '-m --no-python',
    args: launch('-m', '--no-python'),
    message: /^fanout: -m\/--module and --no-python exclude each other/,
  },
  {
    name: '--launcher none with -m',
    args: launch('--launcher', 'none', '-m'),
    message: /^fanout: -m\/--module: only for --launcher torchrun or launch, not none$/,
  },
  {
    name: '--use-env without --launcher launch',
    args: launch('--use-env'),
    message: /^fanout: --use-env is for --launcher launch/,
  },
  { name: "--venv ''", args: launch('--venv', ''), message: /^fanout: --venv needs a value$/ },
  {
    name: 'an unknown option',
    args: launch('--nproc', '2'),
    message: /^fanout: unknown option --nproc; see fanout --help$/,
  },
  {
    name: '--identity that does not exist',
    args: launch('-i', `${DIR}/no-key`),
    message: /^fanout: --identity \S+\/no-key: no such file$/,
  },
  {
    name: '--log-dir that cannot be created',
    args: launch('--log-dir', '/dev/null/logs'),
    message: /^fanout: --log-dir: cannot create \/dev\/null\/logs\//,
  },
  { name: 'missing SCRIPT', args: ['-H', GOOD], message: /^fanout: missing SCRIPT/ },
  { name: 'an empty SCRIPT', args: ['-H', GOOD, '--', ''], message: /^fanout: SCRIPT is empty/ },
  {
    name: 'fanout check with a bad flag',
    args: ['check', '-H', GOOD, '--nproc-per-node', '0'],
    message: /^fanout: --nproc-per-node must be a whole number/,
  },
]

/** The test user's uid and gid, and whether it can run this checkout (a CI checkout under /root cannot). */
function testUser(): { uid: number; gid: number; canRun: boolean } {
  const uid = Number(execFileSync('id', ['-u', TEST_USER], { encoding: 'utf8' }).trim())
  const gid = Number(execFileSync('id', ['-g', TEST_USER], { encoding: 'utf8' }).trim())
  const probe = spawnSync(process.execPath, ['--', BIN, '--version'], { uid, gid, cwd: cluster?.work, stdio: 'ignore' })
  return { uid, gid, canRun: probe.status === 0 }
}

/** Like runFanout, with something on stdin and, optionally, as another user. */
function runFanoutWith(
  args: string[],
  options: { stdin?: string | Buffer; user?: { uid: number; gid: number }; env?: NodeJS.ProcessEnv },
): Promise<FanoutRun> {
  const started = Date.now()
  // Node drops the supplementary groups when it changes the user: the child has none of root's rights.
  const child = spawn(process.execPath, ['--', BIN, ...args], {
    cwd: cluster?.work,
    env: fanoutEnv({ ...options.env, ...(options.user ? { HOME: cluster?.work } : {}) }),
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(options.user ?? {}),
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()))
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()))
  child.stdin.on('error', () => {}) // fanout may exit before reading it all
  child.stdin.end(options.stdin ?? '')
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started })
    })
  })
}

/** Writes a case's files into DIR (a directory for `null`), readable by the test user. */
function writeFiles(files: Case['files']): void {
  for (const [name, content] of Object.entries(files ?? {})) {
    const path = join(cluster?.work ?? '', DIR, name)
    rmSync(path, { recursive: true, force: true })
    if (content === null) mkdirSync(path, { mode: 0o755 })
    else writeFileSync(path, content, { mode: 0o644 })
  }
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 100))

describeCluster('bad input: exit 2, one clear message, no connection (issue 8)', () => {
  let user: ReturnType<typeof testUser>

  beforeAll(() => {
    const dir = join(cluster?.work ?? '', DIR)
    rmSync(dir, { recursive: true, force: true })
    // The test user must reach the files: the work directory is 1777, this one 0755.
    mkdirSync(dir, { mode: 0o755 })
    writeFileSync(join(dir, 'good'), 'h1\nh2\nh3\n', { mode: 0o644 })
    writeFileSync(join(dir, 'train.py'), 'print("trained")\n', { mode: 0o644 })
    user = testUser()
  })

  it('the corpus is large enough, and its hosts are reached when nothing is wrong (CRLF line endings too)', async () => {
    expect(CASES.length).toBeGreaterThanOrEqual(45)
    expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length)
    writeFiles({ crlf: 'h1\r\nh2 slots=1\r\n# comment\r\nh3\r\n' })
    const before = NODES.map(connectionCount)
    const run = await runFanout([...clusterArgs(), '-H', `${DIR}/crlf`, '--dry-run', `${DIR}/train.py`], {
      timeoutMs: 60_000,
    })
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toMatch(/# node 2 \(h3\)/)
    await settle()
    expect(NODES.map(connectionCount).map((n, i) => n - (before[i] ?? 0))).toEqual([1, 1, 1])
  })

  // it.for, not it.each: the context's skip() is needed where the test user cannot run this checkout.
  it.for(CASES.map((c) => [c.name, c] as const))('%s', async ([, c], ctx) => {
    writeFiles(c.files)
    if (c.asTestUser) {
      if (!user.canRun)
        ctx.skip(`${TEST_USER} cannot run ${BIN} (a private checkout); the /proc/sys case covers an unreadable file`)
      // Owned by root, mode 000: only root's privilege could read it, and the test user has none.
      chmodSync(join(cluster?.work ?? '', DIR, 'unreadable'), 0o000)
    }
    const before = NODES.map(connectionCount)
    // `check` is a command only as the first word.
    const args = c.args[0] === 'check' ? ['check', ...clusterArgs(), ...c.args.slice(1)] : [...clusterArgs(), ...c.args]
    const run =
      c.stdin !== undefined || c.asTestUser
        ? await runFanoutWith(args, {
            ...(c.stdin !== undefined ? { stdin: c.stdin } : {}),
            ...(c.asTestUser ? { user } : {}),
            ...(c.env ? { env: c.env } : {}),
          })
        : await runFanout(args, { timeoutMs: 30_000, ...(c.env ? { env: c.env } : {}) })
    const output = `exit ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`
    expect(run.code, output).toBe(2)
    expect(run.stdout, output).toBe('')
    // One clear message: one line, fanout's own, saying what and where; never a crash.
    expect(run.stderr, output).not.toMatch(/internal error|\n {4}at /)
    expect(run.stderr.trimEnd().split('\n'), output).toHaveLength(1)
    expect(run.stderr, output).toMatch(/^fanout: \S/)
    expect(run.stderr.trimEnd(), output).toMatch(c.message)
    if (c.withinMs) expect(run.ms, output).toBeLessThan(c.withinMs)
    await settle()
    expect(NODES.map(connectionCount), output).toEqual(before)
  })
})
