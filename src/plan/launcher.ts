import type { Argv } from 'yargs'
import { usageError } from '../errors.js'
import { int, text } from '../cli/flags.js'
import { taggedWorkerArgv, type WorkerSpec } from '../node/rank-tag.js'
import type { JobEnv } from './env.js'
import { commandTooLong, jobCommandSize, MAX_COMMAND_BYTES, type CommandSize } from '../node/job.js'
import { probeCommandSize } from '../node/probe.js'
import { endpoint } from './endpoint.js'

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
}

export function withLauncherOptions<T>(y: Argv<T>) {
  return y
    .option('launcher', { type: 'string', choices: ['torchrun', 'launch', 'none'], default: 'torchrun', describe: 'torchrun; launch (legacy torch.distributed.launch); none (run the command itself)', group: 'Launcher:' })
    .option('module', { alias: 'm', type: 'boolean', default: false, describe: 'SCRIPT is a Python module (python -m SCRIPT)', group: 'Launcher:' })
    .option('no-python', { type: 'boolean', default: false, describe: 'SCRIPT is an executable, not a Python file', group: 'Launcher:' })
    .option('use-env', { type: 'boolean', default: false, describe: 'launch: pass LOCAL_RANK in the environment, not --local-rank', group: 'Launcher:' })
    .option('max-restarts', { type: 'string', describe: 'torchrun --max-restarts (counted per node)', group: 'Launcher:' })
    .option('restarts', { type: 'string', describe: 'relaunch the whole job up to N times after a failure (fresh port, backoff, FANOUT_ATTEMPT)', group: 'Launcher:' })
    .option('rdzv-backend', { type: 'string', choices: ['c10d', 'static'], describe: 'c10d: dynamic rendezvous at the master, with a generated run id', group: 'Launcher:' })
    .option('launcher-args', { type: 'string', describe: 'more launcher flags, passed as given: "--log-dir /tmp/logs"', group: 'Launcher:' })
}

/** Splits a flag string into words as a POSIX shell would (quotes and backslashes), nothing expanded. */
export function splitWords(input: string): string[] {
  const words: string[] = []
  let word: string | undefined
  let quote: '"' | "'" | undefined
  for (let i = 0; i < input.length; i++) {
    const c = input[i] as string
    if (quote === "'") c === "'" ? (quote = undefined) : (word = (word ?? '') + c)
    else if (quote === '"') {
      if (c === '"') quote = undefined
      else if (c === '\\' && /["\\$`]/.test(input[i + 1] ?? '')) word = (word ?? '') + input[++i]
      else word = (word ?? '') + c
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word)
      word = undefined
    } else {
      word ??= ''
      if (c === "'" || c === '"') quote = c
      else if (c === '\\') word += input[++i] ?? ''
      else word += c
    }
  }
  if (quote) throw usageError(`--launcher-args: unterminated ${quote} quote in ${JSON.stringify(input)}`)
  if (word !== undefined) words.push(word)
  return words
}

/** Validates the launcher flags: combinations the launchers themselves would reject fail here, before any connection. */
export function readLauncherOptions(a: Record<string, unknown>): LauncherOptions {
  const kind = (text('launcher', a.launcher) ?? 'torchrun') as LauncherKind
  const options: LauncherOptions = {
    kind,
    module: a.module === true,
    noPython: a['no-python'] === true,
    useEnv: a['use-env'] === true,
    launcherArgs: splitWords(text('launcher-args', a['launcher-args']) ?? ''),
  }
  const maxRestarts = int('max-restarts', text('max-restarts', a['max-restarts']), 0, 1000)
  if (maxRestarts !== undefined) options.maxRestarts = maxRestarts
  const rdzv = text('rdzv-backend', a['rdzv-backend'])
  if (rdzv) options.rdzvBackend = rdzv as 'c10d' | 'static'
  const used = Object.entries({ '-m/--module': options.module, '--no-python': options.noPython, '--use-env': options.useEnv, '--max-restarts': maxRestarts !== undefined, '--rdzv-backend': rdzv !== undefined, '--launcher-args': options.launcherArgs.length > 0 })
    .filter(([, on]) => on).map(([flag]) => flag)
  if (kind === 'none' && used.length > 0) throw usageError(`${used.join(', ')}: only for --launcher torchrun or launch, not none`)
  if (options.module && options.noPython) throw usageError('-m/--module and --no-python exclude each other (a module is run by Python)')
  if (options.useEnv && kind !== 'launch') throw usageError('--use-env is for --launcher launch (torchrun always sets LOCAL_RANK)')
  if (kind === 'launch' && options.noPython && !options.useEnv) throw usageError('--launcher launch with --no-python needs --use-env, as torch.distributed.launch itself insists')
  return options
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
  monitorIntervalS?: number
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
export function launcherCommand(options: LauncherOptions, ctx: LauncherContext): { argv: string[]; env: Record<string, string> } {
  if (options.kind === 'none') {
    return {
      argv: [ctx.script, ...ctx.scriptArgs],
      env: { NODE_RANK: String(ctx.nodeRank), NNODES: String(ctx.nnodes), MASTER_ADDR: ctx.masterAddr, MASTER_PORT: String(ctx.masterPort), NPROC_PER_NODE: String(ctx.nproc) },
    }
  }
  const dashed = Number((ctx.torchVersion ?? '').split('.')[0]) >= 2
  const flag = (name: string, value?: string | number): string => `--${dashed ? name.replace(/_/g, '-') : name}${value === undefined ? '' : `=${value}`}`
  // With c10d, torchrun assigns node ranks itself and ignores --master_addr/--master_port. Which node
  // hosts the store is said outright: torch's guess (the endpoint matches this machine's hostname or
  // its addresses) fails on multi-homed and NATed nodes. --launcher-args come later and may override.
  const c10d = options.rdzvBackend === 'c10d'

  const argv = [
    ctx.python, '-m', options.kind === 'launch' ? 'torch.distributed.launch' : 'torch.distributed.run',
    flag('nnodes', ctx.nnodes), ...(c10d ? [] : [flag('node_rank', ctx.nodeRank)]), flag('nproc_per_node', ctx.nproc),
    ...(c10d
      ? [flag('rdzv_backend', 'c10d'), flag('rdzv_endpoint', endpoint(ctx.masterAddr, ctx.masterPort)), flag('rdzv_id', ctx.runId), flag('rdzv_conf', `is_host=${ctx.nodeRank === 0}`),
          ...(ctx.localAddr === undefined ? [] : [flag('local_addr', ctx.localAddr)])]
      : [flag('master_addr', ctx.masterAddr), flag('master_port', ctx.masterPort)]),
    ...(ctx.monitorIntervalS === undefined ? [] : [flag('monitor_interval', ctx.monitorIntervalS)]),
    ...(options.maxRestarts === undefined ? [] : [flag('max_restarts', options.maxRestarts)]),
  ]
  if (!ctx.rankTags) {
    // With --no-python the script is the program torchrun runs, which it does not substitute.
    const script = options.noPython ? ctx.script : escapeMacros(ctx.script)
    argv.push(...(options.module ? ['--module'] : []), ...(options.noPython ? [flag('no_python')] : []), ...(options.useEnv ? [flag('use_env')] : []), ...options.launcherArgs, script, ...ctx.scriptArgs.map(escapeMacros))
    return { argv, env: {} }
  }
  // The launcher runs the tagger as a program (--no_python), and the tagger execs the worker exactly as
  // the launcher would have: the same interpreter with -u, -m, and launch's --local-rank argument.
  const worker: WorkerSpec = options.noPython
    ? { mode: 'exec', argv: [ctx.script, ...ctx.scriptArgs] }
    : { mode: 'python', argv: [...(options.module ? ['-m'] : []), ctx.script, ...ctx.scriptArgs] }
  const passLocalRank = options.kind === 'launch' && !options.useEnv
  if (passLocalRank) worker.localRankFlag = { flag: dashed ? '--local-rank' : '--local_rank', insertAt: options.module ? 2 : 1 }
  // The program torchrun runs is the interpreter (--no_python); everything after it is substituted.
  const [program = ctx.python, ...rest] = taggedWorkerArgv(ctx.python, worker)
  argv.push(...(options.kind === 'launch' && (options.useEnv || passLocalRank) ? [flag('use_env')] : []), flag('no_python'), ...options.launcherArgs, program, ...rest.map(escapeMacros))
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

/** What the size check before connecting needs of the options (args.ts). */
export interface CommandFitInput {
  launcher: LauncherOptions
  python: string
  script: string
  scriptArgs: readonly string[]
  chdir: string
  setup: readonly string[]
  rankTags: boolean
  monitorIntervalS?: number
  heartbeatTimeoutS: number
  graceS: number
}

// Variables fanout sets itself on a node (plan.ts), which replace a forwarded value of the same name.
const OWN_VARIABLES = new Set(['PYTHONUNBUFFERED', 'GLOO_SOCKET_IFNAME', 'NCCL_SOCKET_IFNAME', 'CUDA_VISIBLE_DEVICES', 'FANOUT_ATTEMPT'])

/**
 * Refuses, before any connection, a job whose command cannot fit in MAX_COMMAND_BYTES on any node
 * (remote.ts): the job's command is built from what is known now (the launcher, the script and its
 * arguments, the environment, the set-up lines, the directory) with the shortest values the probe
 * could add (address, port, ranks, counts), so that it is never longer than a node's real one; the
 * probe, which carries the set-up lines too, is built as it will be sent. jobCommand checks each
 * node's exact command again before anything is launched. The longer of the two, by part.
 */
export function commandFloor(o: CommandFitInput, jobEnv: JobEnv): CommandSize {
  const shortest = launcherCommand(o.launcher, {
    python: o.python, nnodes: 1, nodeRank: 0, nproc: 1, masterAddr: '', masterPort: 0, runId: '',
    script: o.script, scriptArgs: o.scriptArgs, rankTags: o.rankTags && o.launcher.kind !== 'none',
    ...(o.monitorIntervalS === undefined ? {} : { monitorIntervalS: o.monitorIntervalS }),
  })
  const forwarded = Object.entries(jobEnv.forwarded).filter(([k]) => !OWN_VARIABLES.has(k))
  const env = { PYTHONUNBUFFERED: '1', ...Object.fromEntries(forwarded), ...shortest.env, ...jobEnv.explicit }
  const job = jobCommandSize({ cwd: o.chdir, env, setup: o.setup, argv: shortest.argv, heartbeatTimeoutS: o.heartbeatTimeoutS, graceS: Math.ceil(o.graceS) })
  const scriptIsFile = o.launcher.kind !== 'none' && !o.launcher.module && !o.launcher.noPython
  const probe = probeCommandSize({ python: o.python, wantPort: false, cwd: o.chdir, setup: o.setup, ...(scriptIsFile ? { script: o.script } : {}) })
  return probe.total > job.total ? probe : job
}

/** Throws a USAGE error, before any connection, when commandFloor is over MAX_COMMAND_BYTES. */
export function checkCommandFits(o: CommandFitInput, jobEnv: JobEnv): void {
  const floor = commandFloor(o, jobEnv)
  if (floor.total > MAX_COMMAND_BYTES) throw commandTooLong(floor, true)
}
