import type { Argv } from 'yargs'
import { usageError } from '../../errors.js'
import type { LauncherKind, LauncherOptions } from '../../plan/launcher.js'
import { int, parseDuration, text } from '../parser.js'

// The Launcher flags: what runs on each node (plan/launcher.ts builds its command line).

export function withLauncherOptions<T>(y: Argv<T>) {
  return y
    .option('launcher', {
      type: 'string',
      choices: ['torchrun', 'launch', 'none'],
      default: 'torchrun',
      describe: 'torchrun; launch (legacy torch.distributed.launch); none (run the command itself)',
      group: 'Launcher:',
    })
    .option('module', {
      alias: 'm',
      type: 'boolean',
      default: false,
      describe: 'SCRIPT is a Python module (python -m SCRIPT)',
      group: 'Launcher:',
    })
    .option('no-python', {
      type: 'boolean',
      default: false,
      describe: 'SCRIPT is an executable, not a Python file',
      group: 'Launcher:',
    })
    .option('use-env', {
      type: 'boolean',
      default: false,
      describe: 'launch: pass LOCAL_RANK in the environment, not --local-rank',
      group: 'Launcher:',
    })
    .option('max-restarts', {
      type: 'string',
      describe: 'torchrun --max-restarts (counted per node)',
      group: 'Launcher:',
    })
    .option('restarts', {
      type: 'string',
      describe: 'relaunch the whole job up to N times after a failure (fresh port, backoff, FANOUT_ATTEMPT)',
      group: 'Launcher:',
    })
    .option('rdzv-backend', {
      type: 'string',
      choices: ['c10d', 'static'],
      describe: 'c10d: dynamic rendezvous at the master, with a generated run id',
      group: 'Launcher:',
    })
    .option('launcher-args', {
      type: 'string',
      describe: 'more launcher flags, passed as given: "--log-dir /tmp/logs"',
      group: 'Launcher:',
    })
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
    monitorIntervalS: parseDuration('monitor-interval', a['monitor-interval']),
    module: a.module === true,
    noPython: a['no-python'] === true,
    useEnv: a['use-env'] === true,
    launcherArgs: splitWords(text('launcher-args', a['launcher-args']) ?? ''),
  }
  const maxRestarts = int('max-restarts', text('max-restarts', a['max-restarts']), 0, 1000)
  if (maxRestarts !== undefined) options.maxRestarts = maxRestarts
  const rdzv = text('rdzv-backend', a['rdzv-backend'])
  if (rdzv) options.rdzvBackend = rdzv as 'c10d' | 'static'
  const used = Object.entries({
    '-m/--module': options.module,
    '--no-python': options.noPython,
    '--use-env': options.useEnv,
    '--max-restarts': maxRestarts !== undefined,
    '--rdzv-backend': rdzv !== undefined,
    '--launcher-args': options.launcherArgs.length > 0,
  })
    .filter(([, on]) => on)
    .map(([flag]) => flag)
  if (kind === 'none' && used.length > 0)
    throw usageError(`${used.join(', ')}: only for --launcher torchrun or launch, not none`)
  if (options.module && options.noPython)
    throw usageError('-m/--module and --no-python exclude each other (a module is run by Python)')
  if (options.useEnv && kind !== 'launch')
    throw usageError('--use-env is for --launcher launch (torchrun always sets LOCAL_RANK)')
  if (kind === 'launch' && options.noPython && !options.useEnv)
    throw usageError('--launcher launch with --no-python needs --use-env, as torch.distributed.launch itself insists')
  return options
}
