import { refuseNul } from '../node/quote.js'
import type { RunOptions } from '../launch/options.js'
import type { Command, ParseContext } from './command.js'
import { checkCommand, runCommand } from './commands/run.js'
import { completionCommand } from './commands/completion.js'
import { hostsCommand, type HostsOptions } from './commands/hosts.js'
import { RUNS_COMMANDS, type RunsOptions } from './commands/runs.js'
import type { Env } from './parser.js'

export type { HostsOptions }

/**
 * The command a command line is for, and its words after the command's name. The name is recognised
 * only as the first word, so that `fanout -H f hosts` still runs a script called hosts; `completion`
 * only alone.
 */
export function commandOf(argv: readonly string[]): {
  command: Command<RunOptions> | Command<HostsOptions> | Command<RunsOptions> | Command<never>
  words: string[]
} {
  const runs = RUNS_COMMANDS.get(argv[0] ?? '')
  if (runs) return { command: runs, words: argv.slice(1) }
  if (argv[0] === 'hosts') return { command: hostsCommand, words: argv.slice(1) }
  if (argv[0] === 'check') return { command: checkCommand, words: argv.slice(1) }
  if (argv[0] === 'completion' && argv.length === 1) return { command: completionCommand, words: [] }
  return { command: runCommand, words: [...argv] }
}

export type ParsedArgs =
  | { kind: 'run'; options: RunOptions }
  | { kind: 'hosts'; options: HostsOptions }
  | { kind: 'runs'; options: RunsOptions }
  | { kind: 'help' | 'version'; text: string }

/** Parses fanout's command line (without `node` and the script path). Throws a USAGE FanoutError. */
export async function parseArgs(argv: string[], cwd: string, terminalWidth = 100, env: Env = {}): Promise<ParsedArgs> {
  refuseNul(argv) // quote.ts: no word with a NUL can reach a node intact
  const { command, words } = commandOf(argv)
  const ctx: ParseContext = { cwd, width: terminalWidth, env }
  const parsed = await (command as Command<unknown>).parse(words, ctx)
  if (parsed.kind !== 'options') return parsed
  if (command === hostsCommand) return { kind: 'hosts', options: parsed.options as HostsOptions }
  if (RUNS_COMMANDS.has(command.name)) return { kind: 'runs', options: parsed.options as RunsOptions }
  return { kind: 'run', options: parsed.options as RunOptions }
}
