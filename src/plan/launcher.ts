import { taggedWorkerArgv, type WorkerSpec } from '../node/rank-tag.js'
import type { JobEnv } from './env.js'
import { commandTooLong, jobCommandSize, MAX_COMMAND_BYTES, type CommandSize } from '../node/job.js'
import { probeCommandSize } from '../node/probe.js'
import { endpoint } from './endpoint.js'
import type { JobOptions } from './options.js'
import type { TeardownOptions } from '../supervise/options.js'

/**
 * The per-node launcher: torchrun (`python -m torch.distributed.run`), the legacy
 * `python -m torch.distributed.launch` this tool grew from, or none (the command itself, for any
 * program: DeepSpeed's launcher, accelerate, a shell command).
 */
export type LauncherKind = 'torchrun' | 'launch' | 'none'

export interface LauncherOptions {
  kind: LauncherKind
  /** `-m`: SCRIPT is a Python module (torchrun's --module). */
  module: boolean
  /** `--no-python`: SCRIPT is an executable, not run through Python. */
  noPython: boolean
  /** `--use-env` (launch only): LOCAL_RANK in the environment instead of `--local-rank=N`. */
  useEnv: boolean
  maxRestarts?: number
  /** `c10d`: dynamic rendezvous at the master address; node ranks are then assigned by torchrun. */
  rdzvBackend?: 'c10d' | 'static'
  /** `--launcher-args`: more launcher flags, split like a shell would (quotes respected). */
  launcherArgs: string[]
  /** torchrun's worker poll interval (--monitor_interval): how soon it notices a dead worker (its default is 5 s). */
  monitorIntervalS?: number
}

export interface LauncherContext {
  python: string
  /** The node's torch version ("1.13.1"), when probed: torch 2 spells flags with dashes, 1.x with underscores. */
  torchVersion?: string
  nnodes: number
  nodeRank: number
  nproc: number
  masterAddr: string
  masterPort: number
  /** Shared by every node of a c10d rendezvous. */
  runId: string
  script: string
  scriptArgs: readonly string[]
  /** Run each worker under the rank tagger (output/rank-tag.ts), so fanout knows which rank printed what. */
  rankTags?: boolean
  /**
   * c10d: the node's own address, given to torchrun (--local-addr, torch 2.x) so that its rendezvous
   * never depends on host names resolving (without it, the agent publishes its host name).
   */
  localAddr?: string
}

/** The exact argv, and the launcher's own environment, for one node. */
export function launcherCommand(
  options: LauncherOptions,
  ctx: LauncherContext,
): { argv: string[]; env: Record<string, string> } {
  if (options.kind === 'none') {
    return {
      argv: [ctx.script, ...ctx.scriptArgs],
      env: {
        NODE_RANK: String(ctx.nodeRank),
        NNODES: String(ctx.nnodes),
        MASTER_ADDR: ctx.masterAddr,
        MASTER_PORT: String(ctx.masterPort),
        NPROC_PER_NODE: String(ctx.nproc),
      },
    }
  }
  const dashed = Number((ctx.torchVersion ?? '').split('.')[0]) >= 2
  const flag = (name: string, value?: string | number): string =>
    `--${dashed ? name.replace(/_/g, '-') : name}${value === undefined ? '' : `=${value}`}`
  // With c10d, torchrun assigns node ranks itself and ignores --master_addr/--master_port. Which node
  // hosts the store is said outright: torch's guess (the endpoint matches this machine's hostname or
  // its addresses) fails on multi-homed and NATed nodes. --launcher-args come later and may override.
  const c10d = options.rdzvBackend === 'c10d'

  const argv = [
    ctx.python,
    '-m',
    options.kind === 'launch' ? 'torch.distributed.launch' : 'torch.distributed.run',
    flag('nnodes', ctx.nnodes),
    ...(c10d ? [] : [flag('node_rank', ctx.nodeRank)]),
    flag('nproc_per_node', ctx.nproc),
    ...(c10d
      ? [
          flag('rdzv_backend', 'c10d'),
          flag('rdzv_endpoint', endpoint(ctx.masterAddr, ctx.masterPort)),
          flag('rdzv_id', ctx.runId),
          flag('rdzv_conf', `is_host=${ctx.nodeRank === 0}`),
          ...(ctx.localAddr === undefined ? [] : [flag('local_addr', ctx.localAddr)]),
        ]
      : [flag('master_addr', ctx.masterAddr), flag('master_port', ctx.masterPort)]),
    ...(options.monitorIntervalS === undefined ? [] : [flag('monitor_interval', options.monitorIntervalS)]),
    ...(options.maxRestarts === undefined ? [] : [flag('max_restarts', options.maxRestarts)]),
  ]
  if (!ctx.rankTags) {
    // With --no-python the script is the program torchrun runs, which it does not substitute.
    const script = options.noPython ? ctx.script : escapeMacros(ctx.script)
    argv.push(
      ...(options.module ? ['--module'] : []),
      ...(options.noPython ? [flag('no_python')] : []),
      ...(options.useEnv ? [flag('use_env')] : []),
      ...options.launcherArgs,
      script,
      ...ctx.scriptArgs.map(escapeMacros),
    )
    return { argv, env: {} }
  }
  // The launcher runs the tagger as a program (--no_python), and the tagger execs the worker exactly as
  // the launcher would have: the same interpreter with -u, -m, and launch's --local-rank argument.
  const worker: WorkerSpec = options.noPython
    ? { mode: 'exec', argv: [ctx.script, ...ctx.scriptArgs] }
    : { mode: 'python', argv: [...(options.module ? ['-m'] : []), ctx.script, ...ctx.scriptArgs] }
  const passLocalRank = options.kind === 'launch' && !options.useEnv
  if (passLocalRank)
    worker.localRankFlag = { flag: dashed ? '--local-rank' : '--local_rank', insertAt: options.module ? 2 : 1 }
  // The program torchrun runs is the interpreter (--no_python); everything after it is substituted.
  const [program = ctx.python, ...rest] = taggedWorkerArgv(ctx.python, worker)
  argv.push(
    ...(options.kind === 'launch' && (options.useEnv || passLocalRank) ? [flag('use_env')] : []),
    flag('no_python'),
    ...options.launcherArgs,
    program,
    ...rest.map(escapeMacros),
  )
  return { argv, env: {} }
}

/**
 * torchrun (and torch.distributed.launch, which runs it) passes each worker argument after the program
 * through string.Template.safe_substitute(local_rank=N) (torch.distributed.elastic.utils.macros): `$$`
 * would arrive as `$`, and `$local_rank` or `${local_rank}` as the local rank. Every `$` is doubled so
 * that the substitution gives back the argument exactly as it was given (LOCAL_RANK is in the
 * environment of every worker instead).
 */
export const escapeMacros = (word: string): string => word.replace(/\$/g, '$$$$')

/** What the size check before connecting needs of the options. */
export interface CommandFitInput {
  launcher: LauncherOptions
  job: Pick<JobOptions, 'python' | 'script' | 'scriptArgs' | 'chdir' | 'setup'>
  rankTags: boolean
  /** The wrapper's own arguments. */
  teardown: Pick<TeardownOptions, 'heartbeatTimeoutS' | 'graceS'>
}

// Variables fanout sets itself on a node (plan.ts), which replace a forwarded value of the same name.
const OWN_VARIABLES = new Set([
  'PYTHONUNBUFFERED',
  'GLOO_SOCKET_IFNAME',
  'NCCL_SOCKET_IFNAME',
  'CUDA_VISIBLE_DEVICES',
  'FANOUT_ATTEMPT',
])

/**
 * Refuses, before any connection, a job whose command cannot fit in MAX_COMMAND_BYTES on any node
 * (remote.ts): the job's command is built from what is known now (the launcher, the script and its
 * arguments, the environment, the set-up lines, the directory) with the shortest values the probe
 * could add (address, port, ranks, counts), so that it is never longer than a node's real one; the
 * probe, which carries the set-up lines too, is built as it will be sent. jobCommand checks each
 * node's exact command again before anything is launched. The longer of the two, by part.
 */
export function commandFloor(o: CommandFitInput, jobEnv: JobEnv): CommandSize {
  const { job: j, launcher } = o
  const shortest = launcherCommand(launcher, {
    python: j.python,
    nnodes: 1,
    nodeRank: 0,
    nproc: 1,
    masterAddr: '',
    masterPort: 0,
    runId: '',
    script: j.script,
    scriptArgs: j.scriptArgs,
    rankTags: o.rankTags && launcher.kind !== 'none',
  })
  const forwarded = Object.entries(jobEnv.forwarded).filter(([k]) => !OWN_VARIABLES.has(k))
  const env = { PYTHONUNBUFFERED: '1', ...Object.fromEntries(forwarded), ...shortest.env, ...jobEnv.explicit }
  const job = jobCommandSize({
    cwd: j.chdir,
    env,
    setup: j.setup,
    argv: shortest.argv,
    heartbeatTimeoutS: o.teardown.heartbeatTimeoutS,
    graceS: Math.ceil(o.teardown.graceS),
  })
  const probe = probeCommandSize({
    python: j.python,
    wantPort: false,
    cwd: j.chdir,
    setup: j.setup,
    ...(scriptIsFile(launcher, j.script) ? { script: j.script } : {}),
  })
  return probe.total > job.total ? probe : job
}

/** The script is a file in the working directory (the pre-flight looks for it): not -m, --no-python or --launcher none. */
export const scriptIsFile = (launcher: LauncherOptions, script: string): boolean =>
  script !== '' && launcher.kind !== 'none' && !launcher.module && !launcher.noPython

/** Throws a USAGE error, before any connection, when commandFloor is over MAX_COMMAND_BYTES. */
export function checkCommandFits(o: CommandFitInput, jobEnv: JobEnv): void {
  const floor = commandFloor(o, jobEnv)
  if (floor.total > MAX_COMMAND_BYTES) throw commandTooLong(floor, true)
}
