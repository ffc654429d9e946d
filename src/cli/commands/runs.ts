import yargs, { type Argv } from 'yargs'
import { usageError } from '../../errors.js'
import type { RunIo } from '../../launch/io.js'
import type { OutputOptions } from '../../output/options.js'
import type { Ui } from '../../output/ui.js'
import { colourFor } from '../colour.js'
import { runIoOf } from '../run-io.js'
import type { CliIo, Command, ParseContext, Parsed } from '../command.js'
import { int, PARSER, runParser } from '../parser.js'

// The commands for detached runs (fanout --detach): attach, logs, stop, ps. Each reads the run from
// this machine's registry (runs/registry.ts) and reaches its nodes as the launch did.

export interface RunsOptions {
  command: 'attach' | 'logs' | 'stop' | 'ps'
  /** The run's id, or a prefix of only one; not for ps. */
  run?: string
  lines: number
  node?: number
  follow: boolean
  summary: boolean
  json: boolean
  timestamps: boolean
  prefix?: string | false
  color: OutputOptions['color']
  plain: boolean
}

const USAGE: Record<RunsOptions['command'], string> = {
  attach:
    'Usage: $0 attach RUN [--lines N]\n\nShows the last lines of every node of a detached run, then its output live, as an attached run shows it, until it ends (its summary and exit code). Ctrl-C detaches: the run goes on.',
  logs: 'Usage: $0 logs RUN [--node K] [--follow] [--summary]\n\nFetches what every node of a detached run wrote since the last fetch into this machine (~/.local/state/fanout/runs/RUN/nodes/), then prints all of it in time order.',
  stop: 'Usage: $0 stop RUN\n\nStops a detached run as Ctrl-C stops an attached one (SIGINT, its --grace, SIGKILL of exactly its process groups), waits, and checks that nothing of it is left on any node.',
  ps: "Usage: $0 ps [--json]\n\nThe detached runs launched from this machine, newest first, with each one's state asked of its nodes (running, succeeded, failed with its root cause, stopped, timed-out, unreachable).",
}

const EXAMPLES: Record<RunsOptions['command'], Array<[string, string]>> = {
  attach: [
    ['$0 attach 20261207-101514-3f9a2c', 'follow a run; Ctrl-C detaches again'],
    ['$0 attach 20261207-1015 --lines 100', 'a unique prefix of the id is enough'],
  ],
  logs: [
    ['$0 logs RUN', 'every line so far (what is new is fetched)'],
    ['$0 logs RUN --node 1 --follow', "node 1's lines, live, until the run ends"],
    ['$0 logs RUN --summary', 'the summary table of a run that ended'],
  ],
  stop: [['$0 stop RUN', 'stop it; nothing of it is left after']],
  ps: [
    ['$0 ps', 'the runs launched from here'],
    ['$0 ps --json', 'the same as JSON, for scripts'],
  ],
}

function buildRuns(command: RunsOptions['command'], argv: string[], width: number): Argv<unknown> {
  let y: Argv<unknown> = yargs(argv)
    .scriptName('fanout')
    .usage(USAGE[command])
    // Options may follow the run id: these commands run no script whose words to leave alone.
    .parserConfiguration({ ...PARSER, 'halt-at-non-option': false })
  if (command === 'attach')
    y = y.option('lines', {
      type: 'string',
      default: '20',
      describe: 'how many of the last lines of each node to show first',
    })
  if (command === 'logs')
    y = y
      .option('node', { type: 'string', describe: 'only this node (its rank)' })
      .option('follow', { alias: 'f', type: 'boolean', describe: 'go on with the live lines until the run ends' })
      .option('summary', { type: 'boolean', describe: 'print the summary table of the run (once it ended)' })
  if (command === 'ps') y = y.option('json', { type: 'boolean', describe: 'a JSON array, one object per run' })
  if (command === 'attach' || command === 'logs')
    y = y
      .option('timestamps', {
        type: 'boolean',
        default: command === 'logs',
        describe: 'the time each line was written, before its prefix (--no-timestamps)',
      })
      .option('prefix', { type: 'string', describe: 'the line prefix, as for a launch (--no-prefix: none)' })
  return (
    y
      .option('color', {
        choices: ['auto', 'always', 'never'],
        default: 'auto',
        describe: 'colour the output (NO_COLOR, FORCE_COLOR also decide)',
      })
      .option('plain', { type: 'boolean', describe: 'no animation, plain lines (also when stderr is not a terminal)' })
      .example(EXAMPLES[command])
      .help('help')
      .alias('help', 'h')
      .version(false)
      // The run id is a word of its own (read below): only options are checked.
      .strictOptions()
      .wrap(Math.min(width, 110))
      .exitProcess(false)
  )
}

async function parseRuns(
  command: RunsOptions['command'],
  argv: string[],
  { width }: ParseContext,
): Promise<Parsed<RunsOptions>> {
  const { a, output } = await runParser((words) => buildRuns(command, words, width), argv)
  if (a.help) return { kind: 'help', text: output }
  const words = [...a._.map(String), ...((a['--'] as string[] | undefined) ?? [])]
  const [run, ...extra] = words
  if (command === 'ps') {
    if (run !== undefined) throw usageError(`fanout ps takes no run id (got ${JSON.stringify(run)}): it lists them all`)
  } else {
    if (run === undefined) throw usageError(`fanout ${command}: which run? give its id (fanout ps lists them)`)
    if (extra.length > 0) throw usageError(`fanout ${command} takes one run id, not ${JSON.stringify(extra[0])} too`)
  }
  const prefix = a.prefix === false ? false : typeof a.prefix === 'string' ? a.prefix : undefined
  const node = a.node === undefined ? undefined : int('node', a.node, 0, 1_000_000)
  const options: RunsOptions = {
    command,
    ...(run === undefined ? {} : { run }),
    lines: command === 'attach' ? (int('lines', a.lines, 0, 100_000) ?? 20) : 0,
    ...(node === undefined ? {} : { node }),
    follow: a.follow === true,
    summary: a.summary === true,
    json: a.json === true,
    timestamps: a.timestamps === true,
    ...(prefix === undefined ? {} : { prefix }),
    color: a.color as OutputOptions['color'],
    plain: a.plain === true,
  }
  if (options.summary && options.follow)
    throw usageError('fanout logs: --summary prints the table of a run that ended; --follow waits for its end')
  if (options.summary && options.node !== undefined)
    throw usageError('fanout logs: --summary is the whole run, every node: leave out --node')
  return { kind: 'options', options }
}

/** The streams, status and signals a runs command works with, as a launch's (cli/commands/run.ts). */
async function runsIo(options: RunsOptions, io: CliIo, quiet: boolean): Promise<{ runIo: RunIo; done: () => void }> {
  const { stdout, stderr, env } = io
  const chalk = colourFor(stdout, options.color, env)
  const errChalk = colourFor(stderr, options.color, env)
  const { plainUi } = await import('../../output/ui.js')
  const live =
    Boolean(stderr.isTTY) && !options.plain && (options.command === 'attach' || options.follow)
      ? new (await import('../../output/live.js')).LiveRegion(stderr)
      : undefined
  const print = (text: string): void => void (live ? live.print(stderr, text) : stderr.write(text))
  // ps says nothing of its connections: its table says what it found.
  const ui: Ui = quiet
    ? { phase: (_t, items) => plainUi(() => {}, errChalk).phase(_t, items), info: () => {}, warn: () => {} }
    : plainUi(print, errChalk)
  const runIo = runIoOf(io, { chalk, ui, canAsk: Boolean(io.stdin.isTTY), ...(live ? { live } : {}) })
  return { runIo, done: () => live?.stop() }
}

async function runRuns(options: RunsOptions, io: CliIo): Promise<number> {
  const { Registry } = await import('../../runs/registry.js')
  const registry = Registry.of(io.env)
  if (options.command === 'ps') return listRuns(registry, options, io)
  const record = registry.find(options.run ?? '')
  const { runIo, done } = await runsIo(options, io, false)
  try {
    if (options.command === 'attach')
      return await (await import('../../runs/attach.js')).attachRun(record, registry, options, runIo)
    if (options.command === 'logs')
      return await (await import('../../runs/logs.js')).runLogs(record, registry, options, runIo)
    return await (await import('../../runs/stop.js')).stopRun(record, registry, runIo)
  } finally {
    done()
  }
}

async function listRuns(registry: import('../../runs/registry.js').Registry, options: RunsOptions, io: CliIo) {
  const { runIo, done } = await runsIo(options, io, true)
  try {
    const { formatRuns, runState } = await import('../../runs/ps.js')
    // A few runs at a time: each that has not ended connects to every node of it.
    const runs = registry.list()
    const rows: Awaited<ReturnType<typeof runState>>[] = []
    for (let i = 0; i < runs.length; i += 4)
      rows.push(...(await Promise.all(runs.slice(i, i + 4).map((r) => runState(r, registry, runIo)))))
    io.stdout.write(options.json ? JSON.stringify(rows, null, 2) + '\n' : formatRuns(rows))
    return 0
  } finally {
    done()
  }
}

const runsCommand = (command: RunsOptions['command']): Command<RunsOptions> => ({
  name: command,
  parse: (argv, ctx) => parseRuns(command, argv, ctx),
  run: runRuns,
})

export const RUNS_COMMANDS: ReadonlyMap<string, Command<RunsOptions>> = new Map(
  (['attach', 'logs', 'stop', 'ps'] as const).map((c) => [c, runsCommand(c)]),
)
