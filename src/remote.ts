import { FanoutError, usageError } from './errors.js'
import { shellJoin, shellQuote } from './quote.js'

/**
 * The shell programs fanout runs on a node. They are written for /bin/sh (POSIX, dash-safe) and
 * receive every variable part as a positional argument, so no user text is ever spliced into code.
 * Each is started as `exec /bin/sh -c PROGRAM NAME ARGS...` whatever the user's login shell is.
 */

/** Bytes the coordinator writes to a job's stdin: a heartbeat, or an order to signal the job. */
export const CONTROL = { heartbeat: '.', interrupt: 'I', terminate: 'T', kill: 'K' } as const

// The watchdog runs in its own session (setsid) beside the job, reading the coordinator's control
// bytes. It stops the job's process group when the channel closes (EOF: coordinator killed, laptop
// closed) or when no byte came for $2 seconds (link cut: no EOF ever arrives), and it exits as soon
// as the group is empty. `timeout ... dd` is how plain sh reads one byte with a time limit.
// Args: $1 process group id, $2 heartbeat timeout (s), $3 grace before SIGKILL (s).
const WATCHDOG = `
pg=$1 hb=$2 grace=$3
trap '' HUP INT
reap() {
  kill -TERM -"$pg" 2>/dev/null || exit 0
  n=$((grace * 5))
  while [ "$n" -gt 0 ]; do
    sleep 0.2
    kill -0 -"$pg" 2>/dev/null || exit 0
    n=$((n - 1))
  done
  kill -KILL -"$pg" 2>/dev/null
  exit 0
}
while kill -0 -"$pg" 2>/dev/null; do
  c=$(timeout "$hb" dd bs=1 count=1 2>/dev/null)
  rc=$?
  if [ "$rc" -ne 0 ] || [ -z "$c" ]; then reap; fi
  case $c in
    I) kill -INT -"$pg" 2>/dev/null ;;
    T) kill -TERM -"$pg" 2>/dev/null ;;
    K) kill -KILL -"$pg" 2>/dev/null ;;
  esac
done
`

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
const FUNCTIONS = `fanout_cd() {
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
const READ_WORDS = `IFS= read -r _fanout_n && case $_fanout_n in '' | *[!0-9]*) false ;; esac || exit 1
_fanout_i=$_fanout_n
while [ "$_fanout_i" -gt 0 ]; do
  IFS= read -r _fanout_w || exit 1
  case $_fanout_w in *\\\\*) _fanout_w=$(printf '%bx' "$_fanout_w"); _fanout_w=\${_fanout_w%x} ;; esac
  set -- "$_fanout_w" "$@"
  _fanout_i=$((_fanout_i - 1))
done`

/** The stdin block READ_WORDS reads: `words` in their order. */
const wordsBlock = (words: readonly string[]): string =>
  `${words.length}\n${[...words].reverse().map((w) => `${w.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n`).join('')}`

// The job wrapper. sshd (or the local transport) starts it as a session and process-group leader;
// it enters the working directory, starts the watchdog on the original stdin, exports the
// environment, runs the set-up steps, and then execs the launcher in the foreground, so that the
// launcher keeps this pid, and the group it leads, and keeps SIGINT at its default (a background job
// of sh would ignore it). The set-up runs after the watchdog starts, so that it is stopped like the
// job; the watchdog starts before the exports, so that a --env PATH cannot hide setsid or timeout.
// Args: $1 heartbeat timeout, $2 grace, $3 directory, then argv; on stdin (see jobInput) the set-up
// steps, then the NAME=VALUE words. They are read into "$@" as NAME=VALUE words up to a `--` (no such
// word is `--`: it contains a =), the count of set-up steps, those steps, then argv. The last line is
// parsed before the set-up runs, as sh parses one line at a time: an alias a step defines (alias
// exec=…) cannot change it.
const JOB = `
${FUNCTIONS}
fanout_cd "$3" || { echo "fanout: working directory $3 does not exist on this node" >&2; exit 1; }
_fanout_hb=$1 _fanout_grace=$2
shift 3
${READ_WORDS}
set -- -- "$_fanout_n" "$@"
${READ_WORDS}
exec 3<&0 </dev/null
setsid /bin/sh -c ${shellQuote(WATCHDOG)} fanout-watchdog "$$" "$_fanout_hb" "$_fanout_grace" <&3 >/dev/null 2>&1 &
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
}

const sh = (program: string, name: string, args: readonly string[]): string =>
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

const quotedBytes = (words: readonly string[]): number => words.reduce((n, w) => n + Buffer.byteLength(shellQuote(w)) + 1, 0)

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
const jobArgs = (job: JobSpec): string[] => [String(job.heartbeatTimeoutS), String(job.graceS), job.cwd, ...job.argv]
const jobText = (job: JobSpec): string => sh(JOB, 'fanout-job', jobArgs(job))

/**
 * A command's size by part: `command` as sent, and the words sent with it on stdin (env, setup),
 * which end up in the launcher's environment and the node's shell: they count, as quoted for the
 * shell, toward the same bound, which keeps every part within what exec takes.
 */
function sized(command: string, argv: readonly string[], env: readonly string[], setup: readonly string[]): CommandSize {
  const bytes = Buffer.byteLength(command)
  const [a, e, s] = [quotedBytes(argv), quotedBytes(env), quotedBytes(setup)]
  return { total: bytes + e + s, argv: a, env: e, setup: s, fixed: bytes - a }
}

/** The command as sent, after the limit check: a USAGE error when it exceeds MAX_COMMAND_BYTES, or a word holds a NUL byte. */
function checked(command: string, size: CommandSize): string {
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

// The interface that carries traffic to the master: what `ip route get` names, except on the master
// itself, where the route is `lo` and the interface is the one holding the address. Args: $1 address.
// Read word by word in the shell: every process it starts is paid by every node of a launch.
const IFACE = `fanout_iface() {
  _fanout_a=$1 dev=
  while :; do
    _fanout_w=
    for _fanout_x in $(ip route get "$_fanout_a" 2>/dev/null); do
      [ "$_fanout_w" = dev ] && { dev=$_fanout_x; break; }
      _fanout_w=$_fanout_x
    done
    # ip takes no host names (--master-addr gpu01): the node's resolver gives the address, once.
    [ -z "$dev" ] && [ "$_fanout_a" = "$1" ] && _fanout_a=$(getent hosts "$1" 2>/dev/null) && _fanout_a=\${_fanout_a%% *} && [ "$_fanout_a" != "$1" ] || break
  done
  if [ "$dev" = lo ]; then
    own=$(ip -o addr show 2>/dev/null | awk -v a="$_fanout_a" '{ split($4, p, "/"); if (p[1] == a) { print $2; exit } }')
    [ -n "$own" ] && dev=$own
  fi
  echo "fanout.iface=$dev"
}`

// What the probe asks Python, in one start (on a loaded node, Python's start-up is the slowest step of
// the probe): argv is "1" to look for torch, "1" to find a free port, and a port that must be free ("").
// torch is found, and its version.py read, without importing it (an import takes seconds). The port
// check sets SO_REUSEADDR as torch's TCPStore does: connections of the last run in TIME_WAIT do not count.
const PYTHON_PROBE = `
import sys
torch, want_port, port = sys.argv[1:4]
if want_port == "1" or port:
    import socket
    if want_port == "1":
        s = socket.socket()
        s.bind(("", 0))
        print("fanout.free_port=%d" % s.getsockname()[1])
        s.close()
    if port:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", int(port)))
            print("fanout.port_free=yes")
        except Exception:
            print("fanout.port_free=no")
        s.close()
    sys.stdout.flush()
if torch == "1":
    import importlib.util, os, re
    spec = importlib.util.find_spec("torch")
    print("fanout.torch=" + ("yes" if spec else "no"))
    print("fanout.python_version=%d.%d.%d" % sys.version_info[:3])
    for folder in (spec.submodule_search_locations or []) if spec else []:
        try:
            m = re.search(r"__version__\\s*=\\s*['\\"]([^'\\"]+)", open(os.path.join(folder, "version.py")).read())
            print("fanout.torch_version=" + (m.group(1) if m else ""))
            break
        except OSError:
            pass
`

// Facts about a node, printed as `fanout.KEY=VALUE` lines so that noise from the user's shell start-up
// files cannot be mistaken for them. It enters the working directory and runs the set-up steps first,
// as the job does (a venv changes which python is found, and may be given relative to the directory),
// with their output on stderr. Args: $1 working directory, then python, "1" to find a free port, the
// script to look for ("" for none), a port that must be free ("" for none), "1" to look for torch,
// the master's address to name the route to ("" for none); the set-up steps come on stdin (see
// probeInput) and are read in front of them. Variables are set only after the set-up, which cannot
// change them (that line is parsed before the set-up runs, out of reach of its aliases; so are the
// functions).
const PROBE = `
${FUNCTIONS}
${IFACE}
echo "fanout.ssh_connection=$SSH_CONNECTION"
if fanout_cd "$1"; then echo "fanout.cwd=ok"; else echo "fanout.cwd=missing"; fi
shift
# Before the set-up, which could change what ip or getent means (as the separate route command runs).
[ -n "$6" ] && fanout_iface "$6"
${READ_WORDS}
set -- "$_fanout_n" "$@"
exec 4>&1
fanout_setup_failed() { trap - EXIT; echo "fanout.setup_failed=$2 $1" >&4; exit 0; }
fanout_setup "$@" >&2; shift $(($1 + 1)); py=$1 want_port=$2 script=$3 port=$4 torch=$5
echo "fanout.cuda_visible_devices=\${CUDA_VISIBLE_DEVICES-<unset>}"
echo "fanout.gloo_socket_ifname=\${GLOO_SOCKET_IFNAME-}"
echo "fanout.nccl_socket_ifname=\${NCCL_SOCKET_IFNAME-}"
if command -v nvidia-smi >/dev/null 2>&1; then
  # The "GPU n: …" lines, counted by the shell: a grep is one more process on every node of every launch.
  _fanout_l=$(timeout 20 nvidia-smi -L 2>/dev/null) _fanout_g=0 _fanout_nl='\n'
  while [ -n "$_fanout_l" ]; do
    case $_fanout_l in "GPU "*) _fanout_g=$((_fanout_g + 1)) ;; esac
    case $_fanout_l in *"$_fanout_nl"*) _fanout_l=\${_fanout_l#*"$_fanout_nl"} ;; *) _fanout_l= ;; esac
  done
  echo "fanout.gpus=$_fanout_g"
fi
if [ -n "$script" ]; then
  if [ -e "$script" ]; then echo "fanout.script=ok"; else echo "fanout.script=missing"; fi
fi
if p=$(command -v "$py" 2>/dev/null); then
  echo "fanout.python=$p"
  # Without the torch lookup, -S: a port needs nothing of site-packages, whose start-up is a third of Python's.
  if [ "$torch" = 1 ]; then "$py" -c ${shellQuote(PYTHON_PROBE)} 1 "$want_port" "$port" 2>/dev/null
  elif [ "$want_port" = 1 ] || [ -n "$port" ]; then "$py" -S -c ${shellQuote(PYTHON_PROBE)} 0 "$want_port" "$port" 2>/dev/null
  fi
fi
`

export interface ProbeSpec {
  python: string
  /** Find a free port (node 0, no --master-port). */
  wantPort: boolean
  cwd: string
  /** A script to look for in cwd; undefined when there is no file to check. */
  script?: string
  /** A port that must be free (node 0 with --master-port). */
  port?: number
  setup?: readonly string[]
  /**
   * Look for torch and read the Python version (a Python start on every node): not for --launcher
   * none, which needs neither — on a 2-core box 32 Python starts were a second of the launch.
   */
  torch?: boolean
  /**
   * The address the master is expected at, when known before node 0's probe: the probe then also
   * names the interface that routes to it (`fanout.iface`), which saves a round trip per node.
   */
  routeTo?: string
}

const probeArgs = (p: ProbeSpec): string[] =>
  [p.cwd, p.python, p.wantPort ? '1' : '0', p.script ?? '', p.port === undefined ? '' : String(p.port), p.torch === false ? '0' : '1', p.routeTo ?? '']
const probeText = (p: ProbeSpec): string => sh(PROBE, 'fanout-probe', probeArgs(p))

const probeSize = (p: ProbeSpec, command: string): CommandSize => sized(command, [p.python, p.script ?? ''], [], p.setup ?? [])

/** The size of probeCommand(p), by part (argv: the interpreter and the script's name), without the limit check. */
export const probeCommandSize = (p: ProbeSpec): CommandSize => probeSize(p, probeText(p))

/** The probe of one node. Throws a USAGE error when it exceeds MAX_COMMAND_BYTES (the set-up lines count), or a word holds a NUL byte. */
export function probeCommand(p: ProbeSpec): string {
  const command = probeText(p)
  return checked(command, probeSize(p, command))
}

/** What the probe's stdin must hold: its set-up lines. */
export const probeInput = (p: ProbeSpec): string => wordsBlock(p.setup ?? [])

/** The line that ends a held probe's output, on stdout and on stderr: what follows is the job's. */
export const PROBE_END = 'fanout.probe_end'

// The probe and the job as one command: a launch then costs each node one session, not two (a channel,
// sshd's fork and a login shell fewer each). The probe runs in a subshell, so that what its set-up
// steps export or define stays there (the job runs them again, once); it reads its set-up words from
// the shared stdin and no more (sh reads a pipe a byte at a time). Its end is marked on both streams,
// and the shell then waits for the plan on stdin: the job wrapper's arguments (heartbeat timeout,
// grace, directory, argv) as one block, then the job's own input. It execs the wrapper with them,
// which keeps this pid (the session and group leader sshd made). Input that breaks off (fanout gone,
// or the launch called off after the probe) runs nothing. Args: the probe's.
const HELD = `(
${PROBE}
)
echo ${PROBE_END}
echo ${PROBE_END} >&2
set --
${READ_WORDS}
exec /bin/sh -c ${shellQuote(JOB)} fanout-job "$@"
`

/**
 * The probe of one node, held: after it, the node's shell waits for the job (heldJobInput). Checked
 * as probeCommand is; the job's own check (jobCommand) still applies to what it is sent later.
 */
export function heldProbeCommand(p: ProbeSpec): string {
  const command = sh(HELD, 'fanout-held', probeArgs(p))
  return checked(command, probeSize(p, command))
}

/** What a held probe's shell is sent to start the job: the wrapper's arguments, then jobInput. */
export const heldJobInput = (job: JobSpec): string => wordsBlock(jobArgs(job)) + jobInput(job)

const ROUTE = `${IFACE}
fanout_iface "$1"
`

export const routeCommand = (masterAddr: string): string => sh(ROUTE, 'fanout-route', [masterAddr])

// Hashes the files named on stdin (NUL-separated, relative to $1) on the node itself, for --sync:
// sha256sum -z neither escapes names nor splits on newlines, so any name comes back as it went.
const HASH = 'cd "$1" || exit 3; exec xargs -0 -r sha256sum -z --'

export const hashCommand = (root: string): string => sh(HASH, 'fanout-hash', [root])

/** Reads the `fanout.KEY=VALUE` lines of a probe's stdout, ignoring everything else. */
export function readProbeLines(stdout: string): Map<string, string> {
  const facts = new Map<string, string>()
  for (const line of stdout.split('\n')) {
    const m = /^fanout\.([a-z_]+)=(.*)$/.exec(line.replace(/\r$/, ''))
    if (m && m[1] !== undefined && m[2] !== undefined) facts.set(m[1], m[2])
  }
  return facts
}
