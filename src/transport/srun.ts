import { execFile, spawn as spawnProcess, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { Transform, type TransformCallback } from 'node:stream'
import { signalName, type ExitStatus, type RemoteProcess, type Transport } from './types.js'

/** A node of a SLURM allocation, reached through srun instead of SSH. */
export interface SrunTarget {
  /** The allocation (SLURM_JOB_ID) the steps run in. */
  jobId: string
  /** The node's SLURM name, as SLURM_JOB_NODELIST lists it. */
  node: string
}

/**
 * srun's arguments for one command on one node: a job step of one task on that node, which gets the
 * whole node's share of the allocation (srun's default without --exact), as sshd gives a login the
 * machine. One step per node, not one step of N tasks: each node needs its own stdin (the plan, the
 * heartbeats and stop orders its watchdog reads) and its own output streams, which a single step
 * would multiplex; fanout's supervisor, not --kill-on-bad-exit, stops the other nodes when one fails.
 * --overlap: the steps of a restart, or of `fanout check` beside a running job, need not wait for an
 * ending step to give its CPUs back. --unbuffered: output as the node writes it (progress bars
 * without a newline). --quiet: none of srun's notes about the step's start; its errors remain, and
 * SrunMessages takes them out of the node's stderr.
 */
export function srunArgs(target: SrunTarget, command: string, overlap = true): string[] {
  return [
    `--jobid=${target.jobId}`,
    '--nodes=1',
    '--ntasks=1',
    '--ntasks-per-node=1',
    `--nodelist=${target.node}`,
    '--kill-on-bad-exit=1',
    ...(overlap ? ['--overlap'] : []),
    '--unbuffered',
    '--quiet',
    '--job-name=fanout',
    '/bin/sh',
    '-c',
    command,
  ]
}

/** A line SLURM itself wrote into a step's stderr: srun's, or slurmstepd's (`*** STEP 5.0 ON h1 CANCELLED … ***`). */
const SLURM_LINE = /^(srun|slurmstepd(-[\w.-]+)?): /

/**
 * Takes srun's and slurmstepd's own lines out of a step's stderr (they are kept for the summary, not
 * printed as the node's output) and passes every other byte on as it comes. A line is recognised at
 * its start: bytes are held only while a line's first few could still begin such a prefix.
 */
export class SrunMessages extends Transform {
  readonly said: string[] = []
  private held = Buffer.alloc(0)
  /** Inside a line: 'pass' (the node's, passed on) or 'slurm' (SLURM's, being collected). */
  private mode: 'start' | 'pass' | 'slurm' = 'start'

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let data = this.held.length > 0 ? Buffer.concat([this.held, chunk]) : chunk
    this.held = Buffer.alloc(0)
    while (data.length > 0) {
      if (this.mode === 'pass') {
        const nl = data.indexOf(10)
        if (nl < 0) {
          this.push(data)
          return done()
        }
        this.push(data.subarray(0, nl + 1))
        data = data.subarray(nl + 1)
        this.mode = 'start'
        continue
      }
      const nl = data.indexOf(10)
      if (this.mode === 'slurm') {
        if (nl < 0) {
          this.held = Buffer.from(data)
          return done()
        }
        this.said.push(data.subarray(0, nl).toString('utf8').trimEnd())
        data = data.subarray(nl + 1)
        this.mode = 'start'
        continue
      }
      // At a line's start: decide once its prefix can tell (the longest prefix, slurmstepd-NAME:, ends by the first space).
      const head = data.subarray(0, nl < 0 ? Math.min(data.length, 64) : nl + 1).toString('latin1')
      if (SLURM_LINE.test(head)) this.mode = 'slurm'
      else if (nl < 0 && data.length < 64 && couldBeSlurm(head)) {
        this.held = Buffer.from(data)
        return done()
      } else this.mode = 'pass'
    }
    done()
  }

  override _flush(done: TransformCallback): void {
    if (this.held.length > 0) {
      if (this.mode === 'slurm') this.said.push(this.held.toString('utf8').trimEnd())
      else this.push(this.held)
    }
    done()
  }
}

/** Whether a line's first bytes (no newline yet, no space after the name) may still turn into SLURM's prefix. */
const couldBeSlurm = (head: string): boolean =>
  !head.includes(' ') &&
  ('srun: '.startsWith(head) || 'slurmstepd'.startsWith(head) || /^slurmstepd(-[\w.-]*)?:?$/.test(head))

/**
 * Variables kept from srun: the login's SSH session (the probe would take SSH_CONNECTION for how the
 * node was reached), and the allocation's task shape, which salloc and sbatch export and srun reads
 * as its own options: inside `salloc --ntasks-per-node=8 --gpus-per-task=1`, a step of one task would
 * otherwise ask for 8 tasks per node, or get one GPU instead of the node's eight. fanout's step is one
 * task with the node's whole share; torchrun makes the processes.
 */
const NOT_FOR_SRUN = new Set([
  'SSH_CONNECTION',
  'SSH_CLIENT',
  'SSH_TTY',
  'SLURM_NTASKS',
  'SLURM_NPROCS',
  'SLURM_NTASKS_PER_NODE',
  'SLURM_NTASKS_PER_CORE',
  'SLURM_NTASKS_PER_SOCKET',
  'SLURM_NTASKS_PER_GPU',
  'SLURM_CPUS_PER_TASK',
  'SLURM_GPUS_PER_TASK',
  'SLURM_TRES_PER_TASK',
  'SLURM_GPUS',
  'SLURM_CPU_BIND',
  'SLURM_GPU_BIND',
  'SLURM_DISTRIBUTION',
  'SLURM_EXACT',
])

type Spawn = (command: string, args: readonly string[], options: SpawnOptions) => ChildProcess

/** How long an srun given SIGTERM at close has to end its step before it is killed. */
const CLOSE_GRACE_MS = 5000

/**
 * Runs commands on a node of the allocation through srun: each exec is a job step there. srun runs
 * in a process group of its own, so that Ctrl-C at the terminal reaches fanout, which stops the job
 * through the watchdog as over SSH, and not every srun at once (whose first SIGINT only prints the
 * step's state). When fanout dies, each srun's stdin closes, which reaches the node's watchdog as
 * EOF. close() ends the steps still running: SIGTERM to srun (which signals its step, and after
 * SLURM's KillWait kills it), then SIGKILL.
 */
export function srunTransport(
  target: SrunTarget,
  options: {
    address?: string
    env?: Readonly<Record<string, string | undefined>>
    /** srun has --overlap (SLURM 20.11 and later). */
    overlap?: boolean
    spawn?: Spawn
    srun?: string
  } = {},
): Transport {
  const { spawn = spawnProcess, srun = 'srun' } = options
  // srun hands its whole environment to the step (--export=ALL), as SLURM users expect, but NOT_FOR_SRUN.
  const env = options.env && Object.fromEntries(Object.entries(options.env).filter(([k]) => !NOT_FOR_SRUN.has(k)))
  const running = new Set<ChildProcess>()
  return {
    kind: 'srun',
    ...(options.address ? { peerAddress: options.address } : {}),
    exec: async (command) => {
      const child = spawn(srun, srunArgs(target, command, options.overlap ?? true), {
        detached: true,
        stdio: ['pipe', 'pipe', 'pipe'],
        ...(env ? { env } : {}),
      })
      running.add(child)
      child.stdin?.on('error', () => {})
      const messages = new SrunMessages()
      child.stderr?.pipe(messages)
      const done = new Promise<ExitStatus>((resolve) => {
        child.on('error', (e) => {
          running.delete(child)
          const missing = (e as NodeJS.ErrnoException).code === 'ENOENT'
          if (!messages.writableEnded) messages.end()
          resolve({
            code: 127,
            signal: null,
            lost: missing ? `${srun} not found: --via srun needs SLURM's client commands here` : e.message,
          })
        })
        // SLURM's last lines are all in once stderr has passed through SrunMessages (its 'finish' follows its flush).
        const filtered = new Promise((r) => messages.on('finish', r))
        child.on('close', (code, signal) => {
          running.delete(child)
          void filtered.then(() => {
            const said = messages.said
            // srun reports a task killed by a signal as exit 128+N, and its own failure (no such node, the allocation gone) as exit 1 with a message.
            resolve({ code, signal: signalName(signal), ...(said.length > 0 ? { said: [...said] } : {}) })
          })
        })
      })
      const proc: RemoteProcess = {
        stdout: child.stdout as NonNullable<ChildProcess['stdout']>,
        stderr: messages,
        write: (data) => void (child.stdin?.writable && child.stdin.write(data)),
        end: () => void child.stdin?.end(),
        done,
      }
      return proc
    },
    // --sync with --via srun is refused as bad input (cli/commands/run.ts): nothing asks for files here.
    files: () => Promise.reject(new Error(`${target.node}: --via srun has no file transfer (--sync needs SSH)`)),
    onLost: () => {},
    close: () => {
      for (const child of running) {
        child.kill('SIGTERM')
        setTimeout(() => running.has(child) && child.kill('SIGKILL'), CLOSE_GRACE_MS).unref()
      }
    },
  }
}

/** Runs a SLURM client command (sinfo) and gives its stdout, or undefined when it failed. */
type Query = (command: string, args: readonly string[]) => Promise<string | undefined>

const query: Query = (command, args) =>
  new Promise((resolve) =>
    execFile(command, args, { timeout: 10_000, encoding: 'utf8' }, (err, stdout) => resolve(err ? undefined : stdout)),
  )

/**
 * The address SLURM reaches each node at (its NodeAddr, which is its name unless slurm.conf says
 * otherwise), resolved to an IP address here as slurmctld resolves it: what the master address is
 * over srun, as the address fanout's connection reached is over SSH. A node whose address cannot be
 * told is left out (the master address then needs --master-addr).
 */
export async function nodeAddresses(nodes: readonly string[], run: Query = query): Promise<Map<string, string>> {
  const out = await run('sinfo', ['--noheader', '--Node', '--nodes', nodes.join(','), '--format', '%N %o'])
  const addresses = new Map<string, string>()
  for (const line of out?.split('\n') ?? []) {
    const [node, addr] = line.trim().split(/\s+/)
    if (!node || !addr || addresses.has(node) || !nodes.includes(node)) continue
    const ip = isIP(addr)
      ? addr
      : await lookup(addr, { family: 4 }).then(
          (r) => r.address,
          () => undefined,
        )
    if (ip) addresses.set(node, ip)
  }
  return addresses
}

/**
 * Whether srun takes --overlap: SLURM 20.11 and later (`srun --version`: `slurm 22.05.8`). Before
 * 20.11 steps shared a node's CPUs without it, and the flag is refused; unknown: taken to be there.
 */
export async function srunHasOverlap(run: Query = query): Promise<boolean> {
  const m = /slurm(?:-wlm)?\s+(\d+)\.(\d+)/i.exec((await run('srun', ['--version'])) ?? '')
  if (!m) return true
  const [major, minor] = [Number(m[1]), Number(m[2])]
  return major > 20 || (major === 20 && minor >= 11)
}
