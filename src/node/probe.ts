import { GPU_QUERY } from './gpu-query.js'
import { REACH_END } from './reach.js'
import { PYTHON_PROBE } from './probe-python.js'
import { shellQuote } from './quote.js'
import {
  checked,
  FUNCTIONS,
  JOB,
  jobArgs,
  jobInput,
  READ_WORDS,
  sh,
  sized,
  wordsBlock,
  type CommandSize,
  type JobSpec,
} from './job.js'

// The probe fanout runs on every node before the launch (the facts the plan needs), the command that
// names a node's route to the master when the probe could not, and the held probe that then runs the
// node's job (one session per node). Written for /bin/sh like every program in remote.ts.

// The interface that carries traffic to the master, and the node's own address on it: what `ip route
// get` names (dev, src), except on the master itself, where the route is `lo` and the interface is the
// one holding the address (src is then the address itself). Args: $1 address.
// Read word by word in the shell: every process it starts is paid by every node of a launch.
const IFACE = `fanout_iface() {
  _fanout_a=$1 dev= src=
  while :; do
    _fanout_w=
    for _fanout_x in $(ip route get "$_fanout_a" 2>/dev/null); do
      case $_fanout_w in
        dev) dev=\${dev:-$_fanout_x} ;;
        src) src=\${src:-$_fanout_x} ;;
      esac
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
  echo "fanout.src=$src"
}`

// Facts about a node, printed as `fanout.KEY=VALUE` lines so that noise from the user's shell start-up
// files cannot be mistaken for them. It enters the working directory and runs the set-up steps first,
// as the job does (a venv changes which python is found, and may be given relative to the directory),
// with their output on stderr. Args: $1 working directory, then python, "1" to find a free port, the
// script to look for ("" for none), a port that must be free ("" for none), "1" to look for torch,
// the master's address to name the route to ("" for none), "1" for what a c10d rendezvous needs
// (torchrun's --local-addr, else the node's host name); the set-up steps come on stdin (see
// probeInput) and are read in front of them. Variables are set only after the set-up, which cannot
// change them (that line is parsed before the set-up runs, out of reach of its aliases; so are the
// functions).
const PROBE = `
${FUNCTIONS}
${IFACE}
${GPU_QUERY}
echo "fanout.ssh_connection=$SSH_CONNECTION"
if fanout_cd "$1"; then echo "fanout.cwd=ok"; else echo "fanout.cwd=missing"; fi
shift
# Before the set-up, which could change what ip or getent means (as the separate route command runs).
[ -n "$6" ] && fanout_iface "$6"
${READ_WORDS}
set -- "$_fanout_n" "$@"
exec 4>&1
fanout_setup_failed() { trap - EXIT; echo "fanout.setup_failed=$2 $1" >&4; exit 0; }
fanout_setup "$@" >&2; shift $(($1 + 1)); py=$1 want_port=$2 script=$3 port=$4 torch=$5 c10d=$7
echo "fanout.cuda_visible_devices=\${CUDA_VISIBLE_DEVICES-<unset>}"
echo "fanout.gloo_socket_ifname=\${GLOO_SOCKET_IFNAME-}"
echo "fanout.nccl_socket_ifname=\${NCCL_SOCKET_IFNAME-}"
fanout_gpus
if [ -n "$script" ]; then
  if [ -e "$script" ]; then echo "fanout.script=ok"; else echo "fanout.script=missing"; fi
fi
if p=$(command -v "$py" 2>/dev/null); then
  echo "fanout.python=$p"
  # Without the torch lookup, -S: a port needs nothing of site-packages, whose start-up is a third of Python's.
  if [ "$torch" = 1 ]; then site=; else site=-S; fi
  if [ "$torch" = 1 ] || [ "$want_port" = 1 ] || [ -n "$port" ]; then
    "$py" $site -c ${shellQuote(PYTHON_PROBE)} "$torch" "$want_port" "$port" "$c10d" 2>/dev/null
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
  /** The job uses a c10d rendezvous: ask whether torchrun has --local-addr, else the node's host name. */
  c10d?: boolean
}

const probeArgs = (p: ProbeSpec): string[] => [
  p.cwd,
  p.python,
  p.wantPort ? '1' : '0',
  p.script ?? '',
  p.port === undefined ? '' : String(p.port),
  p.torch === false ? '0' : '1',
  p.routeTo ?? '',
  p.c10d ? '1' : '0',
]
const probeText = (p: ProbeSpec): string => sh(PROBE, 'fanout-probe', probeArgs(p))

const probeSize = (p: ProbeSpec, command: string): CommandSize =>
  sized(command, [p.python, p.script ?? ''], [], p.setup ?? [])

/** The size of the probe as a launch sends it (heldProbeCommand: the larger form, holding the job's wrapper too), by part, without the limit check. */
export const probeCommandSize = (p: ProbeSpec): CommandSize => probeSize(p, heldText(p))

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
// and the shell then waits for the plan on stdin, one block at a time: `reach PYTHON SOURCE ARGS…`
// runs the reachability check (node/reach.ts: every node's probe is needed to know where the master
// is) and marks its end the same way; `job` and the job wrapper's arguments (heartbeat timeout,
// grace, directory, argv), then the job's own input, exec the wrapper with them, which keeps this pid
// (the session and group leader sshd made). Input that breaks off (fanout gone, or the launch called
// off after the probe) runs nothing. Args: the probe's.
const HELD = `(
${PROBE}
)
echo ${PROBE_END}
echo ${PROBE_END} >&2
while :; do
  set --
  ${READ_WORDS.replace(/\n/g, '\n  ')}
  [ "$1" = reach ] || break
  _fanout_py=$2 _fanout_src=$3
  shift 3
  "$_fanout_py" -S -c "$_fanout_src" "$@" </dev/null
  echo ${REACH_END}
  echo ${REACH_END} >&2
done
shift
exec /bin/sh -c ${shellQuote(JOB)} fanout-job "$@"
`

const heldText = (p: ProbeSpec): string => sh(HELD, 'fanout-held', probeArgs(p))

/**
 * The probe of one node, held: after it, the node's shell waits for the job (heldJobInput). Checked
 * as probeCommand is; the job's own check (jobCommand) still applies to what it is sent later.
 */
export function heldProbeCommand(p: ProbeSpec): string {
  const command = heldText(p)
  return checked(command, probeSize(p, command))
}

/** What a held probe's shell is sent to start the job: the wrapper's arguments, then jobInput. */
export const heldJobInput = (job: JobSpec): string => wordsBlock(['job', ...jobArgs(job)]) + jobInput(job)

const ROUTE = `${IFACE}
fanout_iface "$1"
`

export const routeCommand = (masterAddr: string): string => sh(ROUTE, 'fanout-route', [masterAddr])

/** Reads the `fanout.KEY=VALUE` lines of a probe's stdout, ignoring everything else (the last of a key wins). */
export function readProbeLines(stdout: string): Map<string, string> {
  const facts = new Map<string, string>()
  for (const [key, value] of probeLines(stdout)) facts.set(key, value)
  return facts
}

/** Every value of a key that may come many times (fanout.gpu=, one per GPU), in order. */
export const readProbeList = (stdout: string, key: string): string[] =>
  probeLines(stdout).flatMap(([k, v]) => (k === key ? [v] : []))

function probeLines(stdout: string): Array<[string, string]> {
  return stdout.split('\n').flatMap((line): Array<[string, string]> => {
    const m = /^fanout\.([a-z_]+)=(.*)$/.exec(line.replace(/\r$/, ''))
    return m && m[1] !== undefined && m[2] !== undefined ? [[m[1], m[2]]] : []
  })
}
