import { FanoutError, usageError } from '../errors.js'
import { shellJoin, shellQuote } from './quote.js'
import { WATCHDOG } from './watchdog.js'

/**
 * The shell programs fanout runs on a node: the job's wrapper here, its watchdog in watchdog.ts, the
 * probe in remote-probe.ts (which shares the exported helpers and program parts). They are written for
 * /bin/sh (POSIX, dash-safe) and receive every variable part as a positional argument, so no user text is
 * ever spliced into code. Each is started as `exec /bin/sh -c PROGRAM NAME ARGS...` whatever the
 * user's login shell is.
 */

/** Bytes the coordinator writes to a job's stdin: a heartbeat, an order to signal the job, or to have its workers print their stacks. */
export const CONTROL = { heartbeat: '.', interrupt: 'I', terminate: 'T', kill: 'K', stacks: 'S' } as const

// Shell functions shared by the job and the probe. The user's text runs among them (--env values are
// exported, --setup lines are eval'd), so they keep no state in a variable the user could also mean:
// `--env n=1`, or a set-up line `for i in 1 2; do …; done`, `shift` or `set --`, must neither break the
// wrapper nor reach the job changed. Positional parameters carry the state; the set-up loop runs in a
// function (its own "$@", which `shift`/`set --` in a step cannot take from the launcher's argv), over
// a `for` list fixed before the first step, and its two counters are named _fanout_*.
//
// fanout_cd DIR: enters DIR, expanding a leading ~ (a quoted "$1" would not).
// fanout_setup M STEP... [MORE...]: runs the first M steps in this shell, so that what they export or
// activate reaches the launcher; calls fanout_setup_failed RC INDEX STEP on a failure (which clears
// the EXIT trap before it exits); a step that runs `exit` ends the shell, and the EXIT trap still
// reports which step did it. `source` is a bash word: sh spells it `.` (which takes no arguments;
// the shim passes them as the positional parameters, as bash's source does).
export const FUNCTIONS = `fanout_cd() {
  case $1 in
    "~") cd "$HOME" ;;
    "~/"*) cd "$HOME/\${1#"~/"}" ;;
    *) cd "$1" ;;
  esac 2>/dev/null
}
command -v source >/dev/null 2>&1 || source() { _fanout_source=$1; shift; . "$_fanout_source"; }
fanout_setup() {
  _fanout_m=$1 _fanout_i=0
  shift
  trap 'fanout_setup_failed "$?" "$_fanout_i" "$_fanout_step"' EXIT
  for _fanout_step do
    [ "$_fanout_i" -lt "$_fanout_m" ] || break
    _fanout_i=$((_fanout_i + 1))
    eval "$_fanout_step" || fanout_setup_failed "$?" "$_fanout_i" "$_fanout_step"
  done
  trap - EXIT
}`

// The environment (--env values) and the set-up lines reach a node on stdin, ahead of anything else
// there, never on a command line, which every user of the node can read with ps while the set-up runs.
// A block is a count, then that many words, one per line, each with \\ for a backslash and \\n for a
// newline, last word first: this puts them, in their order, before "$@" (a function has an "$@" of its
// own, so this is text for the script itself). printf %b decodes; the x keeps a trailing newline
// from $(…). Input that breaks off (fanout gone) ends the script before anything ran.
export const READ_WORDS = `IFS= read -r _fanout_n && case $_fanout_n in '' | *[!0-9]*) false ;; esac || exit 1
_fanout_i=$_fanout_n
while [ "$_fanout_i" -gt 0 ]; do
  IFS= read -r _fanout_w || exit 1
  case $_fanout_w in *\\\\*) _fanout_w=$(printf '%bx' "$_fanout_w"); _fanout_w=\${_fanout_w%x} ;; esac
  set -- "$_fanout_w" "$@"
  _fanout_i=$((_fanout_i - 1))
done`

/** The stdin block READ_WORDS reads: `words` in their order. */
export const wordsBlock = (words: readonly string[]): string =>
  `${words.length}\n${[...words]
    .reverse()
    .map((w) => `${w.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n`)
    .join('')}`

// The job wrapper. sshd (or the local transport) starts it as a session and process-group leader;
// it enters the working directory, starts the watchdog on the original stdin, exports the
// environment, runs the set-up steps, and then execs the launcher in the foreground, so that the
// launcher keeps this pid, and the group it leads, and keeps SIGINT at its default (a background job
// of sh would ignore it). The set-up runs after the watchdog starts, so that it is stopped like the
// job; the watchdog starts before the exports, so that a --env PATH cannot hide setsid or timeout.
// Args: $1 heartbeat timeout, $2 grace, $3 1 when the launcher is an agent (see WATCHDOG), $4
// directory, then argv; on stdin (see jobInput) the set-up steps, then the NAME=VALUE words. They are
// read into "$@" as NAME=VALUE words up to a `--` (no such word is `--`: it contains a =), the count of
// set-up steps, those steps, then argv. The last line is parsed before the set-up runs, as sh parses
// one line at a time: an alias a step defines (alias exec=…) cannot change it.
export const JOB = `
${FUNCTIONS}
fanout_cd "$4" || { echo "fanout: working directory $4 does not exist on this node" >&2; exit 1; }
_fanout_hb=$1 _fanout_grace=$2 _fanout_agent=$3
shift 4
${READ_WORDS}
set -- -- "$_fanout_n" "$@"
${READ_WORDS}
exec 3<&0 </dev/null
setsid /bin/sh -c ${shellQuote(WATCHDOG)} fanout-watchdog "$$" "$_fanout_hb" "$_fanout_grace" "$_fanout_agent" <&3 >/dev/null 2>&1 &
exec 3<&-
while [ "$1" != -- ]; do export "$1"; shift; done
shift
fanout_setup_failed() { trap - EXIT; echo "fanout: set-up step $2 failed with exit $1: $3" >&2; exit "$1"; }
fanout_setup "$@"; shift $(($1 + 1)); exec "$@"
`

export interface JobSpec {
  cwd: string
  env: Record<string, string>
  /** Shell lines run before the launcher, in the same shell (--setup, --venv, --conda). */
  setup?: readonly string[]
  argv: string[]
  heartbeatTimeoutS: number
  graceS: number
  /** The launcher is an agent with workers as its children (torchrun), killed once stopping and idle (WATCHDOG). */
  agent?: boolean
}

export const sh = (program: string, name: string, args: readonly string[]): string =>
  `exec /bin/sh -c ${shellQuote(program)} ${shellJoin([name, ...args])}`

/**
 * The longest command a node can be given, in bytes. sshd runs it as one argument of the login shell
 * (`$SHELL -c COMMAND`), the local transport as one of /bin/sh, and Linux refuses to exec a program
 * with an argument longer than MAX_ARG_STRLEN: 32 pages, 128 KiB with 4 KiB pages, the terminating NUL
 * included. Past it the node's shell reports only "Argument list too long".
 */
export const MAX_COMMAND_BYTES = 128 * 1024 - 1

/** The size of each part of a job command as it travels (quoted for the shell), in bytes. */
export interface CommandSize {
  total: number
  /** The launcher and what it runs: the script and its arguments. */
  argv: number
  env: number
  setup: number
  /** The working directory and fanout's own wrapper program. */
  fixed: number
}

const quotedBytes = (words: readonly string[]): number =>
  words.reduce((n, w) => n + Buffer.byteLength(shellQuote(w)) + 1, 0)

/** A usage error naming the limit, the total and what takes the room; `atLeast` when the total is a lower bound. */
export function commandTooLong(size: CommandSize, atLeast = false): FanoutError {
  return usageError(
    `the command for each node would be ${atLeast ? 'at least ' : ''}${size.total} bytes, over the limit of ${MAX_COMMAND_BYTES} bytes ` +
      `(Linux's MAX_ARG_STRLEN, 128 KiB: sshd hands the command to the node's login shell as one argument, and the environment ` +
      `and set-up lines, sent on its stdin, are held to the same bound). ` +
      `As quoted for the shell, the program and its arguments take ${size.argv} bytes, the environment ${size.env}, ` +
      `the set-up lines ${size.setup}, and fanout's own wrapper ${size.fixed}. Pass large inputs in a file instead.`,
  )
}

const envWords = (job: JobSpec): string[] => Object.entries(job.env).map(([k, v]) => `${k}=${v}`)
export const jobArgs = (job: JobSpec): string[] => [
  String(job.heartbeatTimeoutS),
  String(job.graceS),
  job.agent ? '1' : '0',
  job.cwd,
  ...job.argv,
]
const jobText = (job: JobSpec): string => sh(JOB, 'fanout-job', jobArgs(job))

/**
 * A command's size by part: `command` as sent, and the words sent with it on stdin (env, setup),
 * which end up in the launcher's environment and the node's shell: they count, as quoted for the
 * shell, toward the same bound, which keeps every part within what exec takes.
 */
export function sized(
  command: string,
  argv: readonly string[],
  env: readonly string[],
  setup: readonly string[],
): CommandSize {
  const bytes = Buffer.byteLength(command)
  const [a, e, s] = [quotedBytes(argv), quotedBytes(env), quotedBytes(setup)]
  return { total: bytes + e + s, argv: a, env: e, setup: s, fixed: bytes - a }
}

/** The command as sent, after the limit check: a USAGE error when it exceeds MAX_COMMAND_BYTES, or a word holds a NUL byte. */
export function checked(command: string, size: CommandSize): string {
  if (size.total > MAX_COMMAND_BYTES) throw commandTooLong(size)
  return command
}

const jobSize = (job: JobSpec, command: string): CommandSize => sized(command, job.argv, envWords(job), job.setup ?? [])

/** The size of the job's command, by part (see sized), without the limit check. */
export const jobCommandSize = (job: JobSpec): CommandSize => jobSize(job, jobText(job))

/** The command that runs the job on a node. Throws a USAGE error when it exceeds MAX_COMMAND_BYTES, or a word holds a NUL byte. */
export function jobCommand(job: JobSpec): string {
  const command = jobText(job)
  return checked(command, jobSize(job, command))
}

/** What the job's stdin must start with, before the first control byte: its set-up lines and environment. */
export const jobInput = (job: JobSpec): string => wordsBlock(job.setup ?? []) + wordsBlock(envWords(job))

// Hashes the files named on stdin (NUL-separated, relative to $1) on the node itself, for --sync:
// sha256sum -z neither escapes names nor splits on newlines, so any name comes back as it went.
const HASH = 'cd "$1" || exit 3; exec xargs -0 -r sha256sum -z --'

export const hashCommand = (root: string): string => sh(HASH, 'fanout-hash', [root])
