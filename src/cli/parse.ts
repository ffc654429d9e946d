import { isAbsolute, resolve } from 'node:path'
import yargs, { type Argv } from 'yargs'
import { usageError } from '../errors.js'
import { EPILOGUE, EXAMPLES } from './help.js'
import type { EnvOptions } from '../plan/env.js'
import { int, joinDashValues, PARSER, readEnvOptions, readHostOptions, runParser, text, type Env } from './flags.js'
import { parseHostsCommand, withHostOptions, type HostsOptions } from './hosts-args.js'
import { isHostOrAddress, parseJumpHost, parsePort } from '../hosts/hostfile.js'
import { refuseNul } from '../node/quote.js'
import { expandSyncFlag, readSyncOptions, withSyncOptions, type SyncOptions } from '../sync/options.js'
import { readLauncherOptions, withLauncherOptions, type LauncherOptions } from '../plan/launcher.js'
import { setupSteps, withSetupOptions } from '../plan/preflight.js'
import { readOutputOptions, withOutputOptions, type OutputOptions } from '../output/options.js'
import type { HostSource } from '../hosts/hostsource.js'
import type { Selection } from '../hosts/select.js'

/** Where the nodes come from and which of them to use: both commands take these. */
export interface HostListOptions extends HostSource, Selection {}

/** Everything the user asked for, validated. Produced by parseArgs, the only reader of argv. */
export interface Options extends HostListOptions, EnvOptions, OutputOptions {
  script: string
  scriptArgs: string[]
  nprocPerNode?: number
  masterAddr?: string
  masterPort?: number
  sshPort?: number
  user?: string
  identity: string[]
  sshConfig?: string
  /** `--jump`: every node's ProxyJump (checked here; resolved against the ssh config in ssh/config.ts). */
  jump?: string
  /** `--accept-new`: record keys of hosts never seen before. */
  acceptNew: boolean
  /** `--ask-password`: ask once for a password. */
  askPassword: boolean
  chdir: string
  python: string
  dryRun: boolean
  connectTimeoutS: number
  maxHandshakes: number
  graceS: number
  heartbeatTimeoutS: number
  keepaliveS: number
  killOnFailure: boolean
  timeoutS?: number
  /** `--rdzv-timeout`: a node whose workers have not started this long after the launch fails the job. */
  rdzvTimeoutS: number
  /** Whole-job relaunches after a failure (`--restarts`). */
  restarts?: number
  monitorIntervalS: number
  launcher: LauncherOptions
  /** Shell lines run on each node before the launcher (--venv, --conda, --setup). */
  setup: string[]
  strict: boolean
  /** `--allow-version-skew`: nodes whose torch major.minor differ may launch (a warning). */
  allowVersionSkew: boolean
  /** `--allow-busy-gpus`: GPUs held by other processes are a warning. */
  allowBusyGpus: boolean
  /** `--wait-for-gpus`: how long to wait for busy GPUs to be freed. */
  waitForGpusS?: number
  /** `--sync`: the local tree to copy to every node's working directory first. */
  sync?: SyncOptions
  /** `fanout check`: connect, probe and pre-flight only. */
  checkOnly?: boolean
}

export type { HostsOptions }

export type ParsedArgs = { kind: 'run'; options: Options } | { kind: 'hosts'; options: HostsOptions } | { kind: 'help' | 'version'; text: string }

/** `10`, `10s`, `500ms`, `2m`, `1h` → seconds. */
export function parseDuration(flag: string, value: unknown): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?$/.exec(String(value).trim())
  const scale: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 }
  const seconds = m ? Number(m[1]) * (scale[m[2] ?? 's'] ?? 1) : NaN
  if (!(seconds > 0) || seconds > 7 * 24 * 3600) throw usageError(`--${flag} must be a duration such as 10, 10s, 500ms or 2m (got ${JSON.stringify(value)})`)
  return seconds
}

function build(argv: string[], width: number) {
  return withSyncOptions(withOutputOptions(withSetupOptions(withLauncherOptions(withHostOptions(yargs(argv)
    .scriptName('fanout')
    .usage('Usage: $0 --hostfile FILE [options] SCRIPT [ARGS...]\n\nRuns a PyTorch training script on every node of a hostfile through torchrun, over SSH.')
    .parserConfiguration(PARSER))))))
    .option('nproc-per-node', { type: 'string', describe: 'processes per node (default: the GPUs selected, else slots=, else its GPU count, else 1)', group: 'Nodes:' })
    .option('master-addr', { type: 'string', describe: 'rendezvous address (default: the address node 0 was reached at)', group: 'Rendezvous:' })
    .option('master-port', { type: 'string', describe: 'rendezvous port (default: a port found free on node 0)', group: 'Rendezvous:' })
    .option('rdzv-timeout', { type: 'string', default: '120', describe: 'a node whose workers have not started this long after the launch is named, and the job stopped (exit 124)', group: 'Rendezvous:' })
    .option('ssh-port', { type: 'string', describe: 'SSH port for nodes without host:port (overrides ssh config)', group: 'SSH:' })
    .option('user', { alias: 'l', type: 'string', describe: 'remote user for nodes without user@ (overrides ssh config)', group: 'SSH:' })
    .option('identity', { alias: 'i', type: 'string', describe: 'private key file, tried before ssh config\'s (repeatable)', group: 'SSH:' })
    .option('ssh-config', { alias: 'F', type: 'string', describe: 'ssh config file to use instead of ~/.ssh/config', group: 'SSH:' })
    .option('jump', { alias: 'J', type: 'string', describe: 'reach the nodes through this jump host ([user@]host[:port], a,b for a chain; "none": ignore ProxyJump), over one shared connection, like ssh -J', group: 'SSH:' })
    .option('accept-new', { type: 'boolean', default: false, describe: 'record the host key of a node never seen before (never a changed one), like StrictHostKeyChecking=accept-new', group: 'SSH:' })
    .option('ask-password', { type: 'boolean', default: false, describe: 'ask once for a password, tried after the keys', group: 'SSH:' })
    .option('connect-timeout', { type: 'string', default: '10', describe: 'give up on a node not connected after this long', group: 'SSH:' })
    .option('max-handshakes', { type: 'string', default: '8', describe: 'SSH handshakes in flight at once to one sshd (it drops some above 10)', group: 'SSH:' })
    .option('keepalive', { type: 'string', default: '5', describe: 'SSH keepalive interval; a node is lost after 3 unanswered', group: 'SSH:' })
    .option('chdir', { alias: 'C', type: 'string', describe: 'remote working directory (default: the current directory\'s path)', group: 'Job:' })
    .option('python', { type: 'string', default: 'python3', describe: 'remote Python interpreter that has torch', group: 'Job:' })
    .option('monitor-interval', { type: 'string', default: '0.25', describe: 'how often torchrun checks its workers (it notices a failure this fast; torchrun\'s own default is 5)', group: 'Job:' })
    .option('dry-run', { alias: 'n', type: 'boolean', default: false, describe: 'connect and probe, print the command for each node, launch nothing', group: 'Job:' })
    .option('kill-on-failure', { type: 'boolean', default: true, describe: 'stop every node when one fails (--no-kill-on-failure: let the others run)', group: 'Teardown:' })
    .option('grace', { type: 'string', default: '10', describe: 'time between SIGINT/SIGTERM and SIGKILL when stopping nodes (a torchrun agent whose workers are gone: 2 s)', group: 'Teardown:' })
    .option('timeout', { type: 'string', describe: 'end the whole job after this long (exit code 124), e.g. 2h', group: 'Teardown:' })
    .option('heartbeat-timeout', { type: 'string', default: '15', describe: 'a node stops its job after this long without hearing from fanout', group: 'Teardown:' })
    .option('env', { type: 'string', describe: 'set NAME=VALUE on every node, or NAME: forward its value here (repeatable)', group: 'Environment:' })
    .option('env-file', { type: 'string', describe: 'set the NAME=VALUE lines of a dotenv file on every node (repeatable)', group: 'Environment:' })
    .option('default-env', { type: 'boolean', default: true, describe: 'forward NCCL_* GLOO_* TORCH_* CUDA_* PYTHON* OMP_NUM_THREADS HF_* WANDB_* from here (--no-default-env: do not)', group: 'Environment:' })
    .completion('completion', 'print a bash or zsh completion script (fanout completion >> ~/.bashrc)')
    .example(EXAMPLES)
    .epilogue(EPILOGUE)
    .help('help')
    .alias('help', 'h')
    .version()
    .strict()
    .wrap(Math.min(width, 110))
    .exitProcess(false)
}

/**
 * yargs' bash/zsh completion script (zsh when $SHELL is zsh). yargs only prints it through
 * console.log, and parse() does not capture it, so console.log is borrowed for that one call.
 */
function completionScript(parser: Argv<unknown>): string {
  const lines: string[] = []
  const log = console.log
  console.log = (...words: unknown[]) => void lines.push(words.map(String).join(' '))
  try {
    parser.showCompletionScript()
  } finally {
    console.log = log
  }
  return lines.join('\n').trimEnd()
}

/** joinDashValues for this parser's options that take a value (its string options and their aliases). */
function joinValues(argv: string[], parser: Argv<unknown>): string[] {
  // yargs has it; @types/yargs does not say so.
  const { string, alias } = (parser as unknown as { getOptions(): { string: string[]; alias: Record<string, string[]> } }).getOptions()
  const longOf = new Map(Object.entries(alias).flatMap(([long, shorts]) => shorts.map((short) => [short, long] as const)))
  return joinDashValues(argv, new Set(string), (name) => longOf.get(name) ?? name)
}

/** `--jump`: each hop must be a `[user@]host[:port]`, or the whole is `none`. */
function jumpSpec(spec: string | undefined): string | undefined {
  if (spec === undefined || spec.toLowerCase() === 'none') return spec
  for (const hop of spec.split(',')) parseJumpHost(hop.trim(), '--jump')
  return spec
}

/** Parses fanout's command line (without `node` and the script path). Throws a USAGE FanoutError. */
export async function parseArgs(argv: string[], cwd: string, terminalWidth = 100, env: Env = {}): Promise<ParsedArgs> {
  refuseNul(argv) // quote.ts: no word with a NUL can reach a node intact
  if (argv[0] === 'hosts') return parseHostsCommand(argv.slice(1), cwd, terminalWidth, env)
  if (argv[0] === 'completion' && argv.length === 1) return { kind: 'help', text: completionScript(build([], terminalWidth)) }
  // `fanout check [options] [SCRIPT]`: the launch's own flags, then only connect, probe and pre-flight.
  const checkOnly = argv[0] === 'check'
  if (checkOnly) argv = argv.slice(1)
  argv = joinValues(argv, build([], terminalWidth))
  let { a, output } = await runParser((words) => build(words, terminalWidth), argv)
  // `--sync=DIR` is read as `--sync --sync-dir=DIR` (sync/options.ts), in fanout's own words only.
  const expanded = expandSyncFlag(argv, a._.length + ((a['--'] as unknown[] | undefined) ?? []).length)
  if (expanded) ({ a, output } = await runParser((words) => build(words, terminalWidth), expanded))
  if (a.help) return { kind: 'help', text: output }
  if (a.version) return { kind: 'version', text: output }
  // The completion script asks `fanout --get-yargs-completions WORDS…` for the words it may complete.
  if (argv.includes('--get-yargs-completions')) return { kind: 'help', text: output }
  const words = [...a._.map(String), ...((a['--'] as string[] | undefined) ?? []).map(String)]
  const [script = checkOnly ? '' : undefined, ...scriptArgs] = words
  const hostOptions = readHostOptions(a, cwd, env)
  if (script === undefined) throw usageError('missing SCRIPT: the training script to run on every node; see fanout --help')
  if (script === '' && words.length > 0) throw usageError('SCRIPT is empty (""): name the training script to run on every node')
  const port = (flag: string, v: unknown): number | undefined => {
    if (v === undefined) return undefined
    const p = parsePort(String(v))
    if (p === undefined) throw usageError(`--${flag} must be a port from 1 to 65535 (got ${JSON.stringify(v)})`)
    return p
  }
  const user = text('user', a.user)
  if (user !== undefined && !/^[A-Za-z0-9._][A-Za-z0-9._-]*$/.test(user)) throw usageError(`--user ${JSON.stringify(user)} is not a valid user name`)
  const masterAddr = text('master-addr', a['master-addr'])
  if (masterAddr !== undefined && !isHostOrAddress(masterAddr)) throw usageError(`--master-addr ${JSON.stringify(masterAddr)} is not a host name or address`)
  const sync = readSyncOptions(a, cwd)
  // A synced tree lands at the same path on the nodes, unless --chdir says where.
  const chdir = text('chdir', a.chdir) ?? sync?.dir ?? cwd
  if (!isAbsolute(chdir) && !chdir.startsWith('~')) throw usageError(`--chdir must be an absolute path on the nodes (got ${JSON.stringify(chdir)})`)
  const options: Options = {
    ...hostOptions,
    script,
    scriptArgs,
    // Repeats are collected by duplicate-arguments-array; `array: true` would swallow SCRIPT too.
    identity: [a.identity ?? []].flat().map((f) => resolve(cwd, String(f))),
    chdir,
    acceptNew: a['accept-new'] === true,
    askPassword: a['ask-password'] === true,
    python: text('python', a.python) ?? 'python3',
    dryRun: Boolean(a['dry-run']),
    connectTimeoutS: parseDuration('connect-timeout', a['connect-timeout']),
    maxHandshakes: int('max-handshakes', a['max-handshakes'], 1, 1000) ?? 8,
    graceS: parseDuration('grace', a.grace),
    heartbeatTimeoutS: Math.ceil(parseDuration('heartbeat-timeout', a['heartbeat-timeout'])),
    keepaliveS: parseDuration('keepalive', a.keepalive),
    killOnFailure: a['kill-on-failure'] !== false,
    monitorIntervalS: parseDuration('monitor-interval', a['monitor-interval']),
    rdzvTimeoutS: parseDuration('rdzv-timeout', a['rdzv-timeout']),
    launcher: readLauncherOptions(a),
    setup: setupSteps(a),
    strict: a.strict === true,
    allowVersionSkew: a['allow-version-skew'] === true,
    allowBusyGpus: a['allow-busy-gpus'] === true,
    ...readOutputOptions(a),
  }
  const optional = {
    nprocPerNode: int('nproc-per-node', text('nproc-per-node', a['nproc-per-node']), 1, 1024),
    restarts: int('restarts', text('restarts', a.restarts), 0, 100),
    masterAddr,
    masterPort: port('master-port', text('master-port', a['master-port'])),
    sshPort: port('ssh-port', text('ssh-port', a['ssh-port'])),
    user,
    timeoutS: a.timeout === undefined ? undefined : parseDuration('timeout', text('timeout', a.timeout)),
    waitForGpusS: a['wait-for-gpus'] === undefined ? undefined : parseDuration('wait-for-gpus', text('wait-for-gpus', a['wait-for-gpus'])),
    sshConfig: a['ssh-config'] === undefined ? undefined : resolve(cwd, text('ssh-config', a['ssh-config']) ?? ''),
    jump: jumpSpec(text('jump', a.jump)),
  }
  for (const [k, v] of Object.entries(optional)) if (v !== undefined) Object.assign(options, { [k]: v })
  Object.assign(options, readEnvOptions(a, cwd, env))
  if (options.heartbeatTimeoutS < 2) throw usageError('--heartbeat-timeout must be at least 2 s (heartbeats are sent every second)')
  if (checkOnly) options.checkOnly = true
  if (sync) options.sync = sync
  if (options.onlyRanks && (options.launcher.kind === 'none' || !options.rankTags))
    throw usageError('--only needs the ranks of the lines: not with --launcher none or --no-rank-tags (use --only-node)')
  return { kind: 'run', options }
}
