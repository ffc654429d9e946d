import { spawn, execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, inject } from 'vitest'
import { forwardedByDefault } from '../../src/plan/env.js'

export interface ClusterHost {
  name: string
  namespace: string
  addr: string
  /** Where its sshd keeps config, host key, pid file and log. */
  dir: string
  /** Its end of the veth pair on this machine: `ip link set LINK down` cuts the host off. */
  link: string
}

export interface ClusterInfo {
  dir: string
  sshConfig: string
  knownHosts: string
  key: string
  /** SLURM's configuration (slurm.sh): SLURM_CONF for srun, salloc and sbatch. Nodes h1-h3. */
  slurmConf: string
  /** A directory every test host can read and write: the jobs' working directory. */
  work: string
  /** A directory that is each host's own (a tmpfs per host): for tests of machines that share no files. */
  private: string
  hosts: ClusterHost[]
}

declare module 'vitest' {
  export interface ProvidedContext {
    cluster: ClusterInfo | null
  }
}

export const cluster = inject('cluster')
/** `describe` for tests that need the cluster: skipped (see global-setup's message) when not root. */
export const describeCluster = cluster ? describe : describe.skip

export function host(name: string): ClusterHost {
  const h = cluster?.hosts.find((x) => x.name === name)
  if (!h) throw new Error(`no test host ${name}`)
  return h
}

const BIN = fileURLToPath(new URL('../../bin/fanout.js', import.meta.url))

export interface FanoutRun {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  ms: number
}

// fanout forwards the runner's NCCL_*, PYTHON*, … to the nodes, where a PYTHONPATH would replace the
// hosts' torch fix (sshd SetEnv): a test gets only the variables it passes.
const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !forwardedByDefault(name)))

/** The environment fanout runs with in these tests: no colour, no agent, none of the runner's forwarded variables. */
export const fanoutEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  ...inherited,
  NO_COLOR: '1',
  SSH_AUTH_SOCK: '',
  ...extra,
})

/** Runs the built fanout binary (as a user would) and collects everything it printed. */
export function runFanout(
  args: string[],
  options: {
    cwd?: string
    env?: NodeJS.ProcessEnv
    timeoutMs?: number
    onSpawn?: (pid: number, output: () => string) => void
    /** A command fanout runs under (`salloc -N3`): it is that command's child. */
    under?: string[]
    /** In a process group of its own (as a terminal's foreground job is), led by the first process. */
    group?: boolean
  } = {},
): Promise<FanoutRun> {
  const started = Date.now()
  const [command = '', ...argv] = [...(options.under ?? []), process.execPath, '--', BIN, ...args]
  const child = spawn(command, argv, {
    cwd: options.cwd ?? cluster?.work,
    env: fanoutEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.group ?? false,
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()))
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()))
  options.onSpawn?.(child.pid ?? 0, () => stdout + stderr)
  const timer = setTimeout(
    () => (options.group && child.pid ? process.kill(-child.pid, 'SIGKILL') : child.kill('SIGKILL')),
    options.timeoutMs ?? 110_000,
  )
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started })
    })
  })
}

/** The standard flags for the cluster: its ssh config and Debian's interpreter (which has torch). */
export const clusterArgs = (): string[] => ['--ssh-config', cluster?.sshConfig ?? '', '--python', '/usr/bin/python3']

/** Writes a file into the shared work directory, readable by the test user. */
export function writeWork(name: string, content: string): string {
  const path = join(cluster?.work ?? '', name)
  writeFileSync(path, content, { mode: 0o644 })
  return path
}

/** Every process in a host's namespace, with its command line. */
function namespaceProcesses(h: ClusterHost): Array<{ pid: number; cmd: string }> {
  const pids = execFileSync('ip', ['netns', 'pids', h.namespace], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map(Number)
  return pids.flatMap((pid) => {
    try {
      return [{ pid, cmd: readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim() }]
    } catch {
      return [] // exited meanwhile
    }
  })
}

// OpenSSH 10 (the Debian 13 hosts) runs each connection as sshd-session (and sshd-auth while it authenticates).
// h1-h3 also run SLURM's node daemon (slurm.sh); a step's slurmstepd is not a daemon: it counts.
const isDaemon = (cmd: string): boolean => /^\/usr\/sbin\/slurmd -N /.test(cmd) || isSshd(cmd)
const isSshd = (cmd: string): boolean =>
  /^(sshd(-session|-auth)?:|\/usr\/sbin\/sshd|\/usr\/lib\/openssh\/sshd-(session|auth))/.test(cmd)

/** The processes in a host's namespace other than its daemons (sshd, its sessions, slurmd): what a job left behind. */
export const survivors = (h: ClusterHost): string[] =>
  namespaceProcesses(h)
    .filter((p) => !isDaemon(p.cmd))
    .map((p) => `${p.pid} ${p.cmd}`)

/** The pids of a host's sshd session processes (not the listener): killing them drops the node's connections. */
export function sshdSessions(h: ClusterHost): number[] {
  const listener = Number(readFileSync(join(h.dir, 'sshd.pid'), 'utf8').trim())
  return namespaceProcesses(h)
    .filter((p) => p.pid !== listener && /^sshd(-session)?: /.test(p.cmd))
    .map((p) => p.pid)
}

/** A fanout run in progress: its pid, what it printed so far, and its end. */
export interface RunningFanout {
  pid: number
  output: () => string
  done: Promise<FanoutRun>
  /** Resolves when the output matches (or the predicate holds for it), rejects after `timeoutMs`. */
  waitFor: (pattern: RegExp | ((output: string) => boolean), timeoutMs?: number) => Promise<void>
}

export function startFanout(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; under?: string[]; group?: boolean } = {},
): RunningFanout {
  let pid = 0
  let output = (): string => ''
  const done = runFanout(args, { ...options, onSpawn: (p, o) => ((pid = p), (output = o)) })
  const waitFor = async (pattern: RegExp | ((output: string) => boolean), timeoutMs = 60_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs
    const matched = (): boolean => (pattern instanceof RegExp ? pattern.test(output()) : pattern(output()))
    while (!matched()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}; output so far:\n${output()}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  // runFanout reports the child synchronously, so pid and output are set by now.
  return { pid, output: () => output(), done, waitFor }
}

/** Waits until no host has a leftover process (sshd's per-session processes need a moment to go). */
export async function waitNoSurvivors(hosts: ClusterHost[], withinMs = 5000): Promise<string[]> {
  const deadline = Date.now() + withinMs
  for (;;) {
    const left = hosts.flatMap((h) => survivors(h).map((s) => `${h.name}: ${s}`))
    if (left.length === 0 || Date.now() > deadline) return left
    await new Promise((r) => setTimeout(r, 200))
  }
}

/** How many times a host's sshd has logged `pattern` (a global RegExp) so far (its log is VERBOSE). */
export const sshdLogCount = (h: ClusterHost, pattern: RegExp): number =>
  (readFileSync(join(h.dir, 'sshd.log'), 'utf8').match(pattern) ?? []).length

/** How many commands a host's sshd has started so far (a launch's node costs one: its probe, then its job). */
export const sessionCount = (h: ClusterHost): number => sshdLogCount(h, /Starting session: command /g)

/** How many TCP connections a host's sshd has accepted so far. */
export const connectionCount = (h: ClusterHost): number => sshdLogCount(h, /Connection from /g)

/** How many handshakes a host's sshd dropped for MaxStartups so far. */
export const dropCount = (h: ClusterHost): number => sshdLogCount(h, /drop connection #/g)

// Every rank contributes rank+1; the sum over 6 ranks is 21. Each rank also reports the socket
// interface fanout chose for it, and writes its line in one write so that ranks cannot interleave.
export const ALLREDUCE = `
import os, sys, torch, torch.distributed as dist
dist.init_process_group("gloo")
t = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
sys.stdout.write(f"rank {dist.get_rank()} of {dist.get_world_size()} node {os.environ['GROUP_RANK']} sum {t.item():.0f} iface {os.environ.get('GLOO_SOCKET_IFNAME')}\\n")
sys.stdout.flush()
dist.destroy_process_group()
`

// Node 1 fails in the first attempt; every later attempt all-reduces and says which attempt it is.
export const FLAKY = `
import os, sys, torch, torch.distributed as dist
attempt, node = os.environ["FANOUT_ATTEMPT"], os.environ["GROUP_RANK"]
if attempt == "1" and node == "1":
    sys.exit(5)
dist.init_process_group("gloo")
t = torch.ones(1)
dist.all_reduce(t)
sys.stdout.write(f"attempt {attempt} node {node} sum {t.item():.0f} port {os.environ['MASTER_PORT']}\\n")
`
