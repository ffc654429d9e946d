import type { StopReason } from '../supervise/types.js'
import type { Env } from './parser.js'

/**
 * A command as a value, as main.ts runs it: how it reads its words (parse: the only reader of its argv),
 * and what it does with what it read (run). `fanout`, `fanout check`, `fanout hosts` and
 * `fanout completion` are each one (cli/commands/).
 */
export interface Command<O> {
  /** The first word that selects it (`run`: none). */
  name: string
  parse(argv: string[], ctx: ParseContext): Promise<Parsed<O>>
  run(options: O, io: CliIo): Promise<number>
}

/** What parsing gave: options to run with, or a text to print and stop (--help, --version, a completion script). */
export type Parsed<O> = { kind: 'options'; options: O } | { kind: 'help' | 'version'; text: string }

export interface ParseContext {
  cwd: string
  /** The terminal's width, for --help. */
  width: number
  env: Env
}

/** What main.ts hands a command: the process's streams, environment and signals (only main touches `process`). */
export interface CliIo {
  stdout: NodeJS.WriteStream
  stderr: NodeJS.WriteStream
  env: NodeJS.ProcessEnv
  /** The terminal secrets are asked on, when stdin is one. */
  stdin: NodeJS.ReadStream
  /** All of stdin (`--hostfile -`), stopping once more than maxBytes came. */
  readStdin: (maxBytes: number) => Promise<Buffer>
  /** Subscribes to the signals that mean "stop the job": Ctrl-C, SIGTERM, SIGHUP; returns the unsubscribe. */
  onStop: (handler: (reason: StopReason) => void) => () => void
  /** How fanout itself was started (the interpreter, `--`, fanout's path): to run it again elsewhere (--via sbatch). */
  self: readonly string[]
  /** Subscribes to SIGQUIT (Ctrl-\); returns the unsubscribe. While subscribed, SIGQUIT does not end fanout. */
  onQuit: (handler: () => void) => () => void
}
