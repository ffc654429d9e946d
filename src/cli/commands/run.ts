import yargs, { type Argv } from 'yargs'
import { usageError } from '../../errors.js'
import type { RunOptions } from '../../launch/options.js'
import { colourFor } from '../colour.js'
import { runIoOf } from '../run-io.js'
import type { CliIo, Command, ParseContext, Parsed } from '../command.js'
import { EPILOGUE, EXAMPLES } from '../help.js'
import { readHostOptions, withHostOptions } from '../options/hosts.js'
import {
  readJobOptions,
  readPreflightOptions,
  withEnvOptions,
  withNodeOptions,
  withRendezvousOptions,
  withSetupOptions,
  withWorkOptions,
} from '../options/job.js'
import { readLauncherOptions, withLauncherOptions } from '../options/launcher.js'
import { readOutputOptions, withOutputOptions } from '../options/output.js'
import { readSshOptions, withSshOptions } from '../options/ssh.js'
import { expandSyncFlag, readSyncOptions, withSyncOptions } from '../options/sync.js'
import { readTeardownOptions, withTeardownOptions } from '../options/teardown.js'
import { readSbatchOptions, SBATCH_FLAGS, withSbatchOptions } from '../options/sbatch.js'
import { checkDetach, readDetachOptions, withDetachOptions } from '../options/detach.js'
import { joinValues, PARSER, runParser, withoutOptions } from '../parser.js'
import { scriptIsFile } from '../../plan/launcher.js'
import { packageVersion } from '../version.js'

/**
 * `fanout [options] SCRIPT [ARGS...]` (run, or print each node's command with --dry-run) and `fanout
 * check [options] [SCRIPT]` (connect, probe, the pre-flight table): the same flags, one parser. The
 * options are declared by group (cli/options/), in the order --help lists them.
 */
export function buildRunParser(argv: string[], width: number): Argv<unknown> {
  const base = yargs(argv)
    .scriptName('fanout')
    .usage(
      'Usage: $0 --hostfile FILE [options] SCRIPT [ARGS...]\n\nRuns a PyTorch training script on every node of a hostfile through torchrun, over SSH (or srun, in a SLURM allocation).',
    )
    .parserConfiguration(PARSER)
  const groups = [
    withHostOptions,
    withLauncherOptions,
    withSetupOptions,
    withOutputOptions,
    withSyncOptions,
    withNodeOptions,
    withRendezvousOptions,
    withSshOptions,
    withWorkOptions,
    withTeardownOptions,
    withEnvOptions,
    withDetachOptions,
    withSbatchOptions,
  ]
  return (
    groups
      .reduce<Argv<unknown>>((y, add) => add(y), base)
      // Listed for --help only: main.ts picks these by the first word before any parser runs.
      .command(
        'hosts',
        'print the nodes a launch would use, connecting to none (fanout hosts --help)',
        () => {},
        () => {},
      )
      .command(
        'check',
        'connect, probe and print the pre-flight table, launching nothing',
        () => {},
        () => {},
      )
      .command(
        'attach',
        "follow a detached run's output until it ends (Ctrl-C detaches)",
        () => {},
        () => {},
      )
      .command(
        'logs',
        "fetch a detached run's output here, and print it",
        () => {},
        () => {},
      )
      .command(
        'stop',
        'stop a detached run, as Ctrl-C would',
        () => {},
        () => {},
      )
      .command(
        'ps',
        'the detached runs launched from here, with their state',
        () => {},
        () => {},
      )
      .completion('completion', 'print a bash or zsh completion script (fanout completion >> ~/.bashrc)')
      .example(EXAMPLES)
      .epilogue(EPILOGUE)
      .help('help')
      .alias('help', 'h')
      .version(packageVersion())
      .strict()
      .wrap(Math.min(width, 110))
      .exitProcess(false)
  )
}

/** Reads a launch's command line (without `check`) into RunOptions, every flag validated. */
async function parseRun(argv: string[], ctx: ParseContext, check: boolean): Promise<Parsed<RunOptions>> {
  const { cwd, width, env } = ctx
  argv = joinValues(argv, buildRunParser([], width))
  let { a, output } = await runParser((words) => buildRunParser(words, width), argv)
  // `--sync=DIR` is read as `--sync --sync-dir=DIR` (options/sync.ts), in fanout's own words only.
  const expanded = expandSyncFlag(argv, a._.length + ((a['--'] as unknown[] | undefined) ?? []).length)
  if (expanded) ({ a, output } = await runParser((words) => buildRunParser(words, width), expanded))
  if (a.help) return { kind: 'help', text: output }
  if (a.version) return { kind: 'version', text: output }
  // The completion script asks `fanout --get-yargs-completions WORDS…` for the words it may complete.
  if (argv.includes('--get-yargs-completions')) return { kind: 'help', text: output }
  const words = [...a._.map(String), ...((a['--'] as string[] | undefined) ?? []).map(String)]
  const [script = check ? '' : undefined, ...scriptArgs] = words
  const hosts = readHostOptions(a, cwd, env)
  if (script === undefined)
    throw usageError('missing SCRIPT: the training script to run on every node; see fanout --help')
  if (script === '' && words.length > 0)
    throw usageError('SCRIPT is empty (""): name the training script to run on every node')
  const ssh = readSshOptions(a, cwd)
  const sync = readSyncOptions(a, cwd)
  const options: RunOptions = {
    mode: check ? 'check' : a['dry-run'] === true ? 'dry-run' : 'run',
    hosts,
    ssh,
    job: readJobOptions(a, { script, scriptArgs }, cwd, env, sync?.dir),
    preflight: readPreflightOptions(a),
    launcher: readLauncherOptions(a),
    teardown: readTeardownOptions(a),
    output: readOutputOptions(a),
    ...(sync ? { sync } : {}),
  }
  const submit = a.via === 'sbatch'
  const sbatch = readSbatchOptions(a, submit)
  if (submit && check)
    throw usageError('fanout check --via sbatch: check runs here, and submits nothing; run it inside salloc')
  if (submit && a['dry-run'] === true)
    throw usageError('--dry-run with --via sbatch: the nodes are not known before SLURM allocates them')
  if (sync && (hosts.slurmJobId !== undefined || submit))
    throw usageError(
      `--sync copies files over SSH (SFTP), and --via ${submit ? 'sbatch' : 'srun'} makes no SSH connection: put the code on the cluster's shared file system, or use --via ssh`,
    )
  if (options.output.onlyRanks && (options.launcher.kind === 'none' || !options.output.rankTags))
    throw usageError(
      '--only needs the ranks of the lines: not with --launcher none or --no-rank-tags (use --only-node)',
    )
  const detach = readDetachOptions(a)
  if (detach) {
    checkDetach(a, { check, srun: hosts.slurmJobId !== undefined, submit })
    options.detach = detach
  }
  if (sbatch) {
    const { wait, ...request } = sbatch
    options.submit = {
      request,
      wait,
      dir: cwd,
      words: withoutOptions(argv, buildRunParser([], width), SBATCH_FLAGS),
      script,
      scriptIsFile: scriptIsFile(options.launcher, script),
    }
  }
  return { kind: 'options', options }
}

/** Runs a launch (or its check, or its dry run) with fanout's status on stderr: animated on a terminal, plain lines elsewhere. */
async function runLaunch(options: RunOptions, io: CliIo): Promise<number> {
  const { stdout, stderr, env } = io
  const chalk = colourFor(stdout, options.output.color, env)
  const errChalk = colourFor(stderr, options.output.color, env)
  const { plainUi, listrUi } = await import('../../output/ui.js')
  const animated = Boolean(stderr.isTTY) && !options.output.plain && !options.output.json
  // On a TTY the job's lines scroll above a few live rows (progress bars, status); fanout's own
  // messages go through the same region so that neither garbles the other.
  const live = animated ? new (await import('../../output/live.js')).LiveRegion(stderr) : undefined
  const print = (text: string): void => void (live ? live.print(stderr, text) : stderr.write(text))
  const ui = animated ? await listrUi(stderr, errChalk, print) : plainUi(print, errChalk)
  // SIGQUIT (Ctrl-\): the running job shows where every rank is, without stopping anything (onStacks
  // subscribes it); before or between jobs there is nothing to show, and it must not end fanout
  // (SIGQUIT's default) while the nodes' shells wait.
  let stacks: (() => void) | undefined
  const stopQuit = io.onQuit(() =>
    stacks ? stacks() : ui.info('SIGQUIT (Ctrl-\\): no job is running now, so there are no stacks to show'),
  )
  const onStacks = (handler: () => void): (() => void) => {
    stacks = handler
    return () => void (stacks === handler && (stacks = undefined))
  }
  try {
    const launch = await import('../../launch/run.js')
    // A prompt needs a terminal on stdin (not one that `--hostfile -` reads).
    const canAsk = Boolean(io.stdin.isTTY) && options.hosts.hostfile !== '-'
    const runIo = runIoOf(io, { chalk, ui, canAsk, onStacks, ...(live ? { live } : {}) })
    const { detach } = options
    if (detach) return await (await import('../../launch/detach.js')).detachJob(options, detach, runIo)
    const mode = { run: launch.launchJob, 'dry-run': launch.dryRun, check: launch.checkCluster }[options.mode]
    return await mode(options, runIo)
  } finally {
    stopQuit()
    live?.stop()
  }
}

export const runCommand: Command<RunOptions> = {
  name: 'run',
  parse: (argv, ctx) => parseRun(argv, ctx, false),
  run: async (options, io) => {
    if (!options.submit) return runLaunch(options, io)
    return (await import('../../launch/submit.js')).submitBatch(options.submit, io)
  },
}

/** `fanout check [launch flags] [SCRIPT]`: the launch's own flags, then only connect, probe and pre-flight. */
export const checkCommand: Command<RunOptions> = {
  name: 'check',
  parse: (argv, ctx) => parseRun(argv, ctx, true),
  run: runLaunch,
}
