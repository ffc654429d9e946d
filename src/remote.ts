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

// Enters $dir, expanding a leading ~ (quoted "$dir" would not). Used by the job and the probe.
const ENTER_DIR = `case $dir in "~") dir=$HOME ;; "~/"*) dir=$HOME/\${dir#"~/"} ;; esac
cd "$dir" 2>/dev/null`

// Runs the $m set-up steps that come first in "$@" (--setup, --venv, --conda) in this shell, so
// that what they export or activate reaches the launcher; calls setup_failed RC INDEX STEP on a
// failure (which clears the EXIT trap before it exits).
// `source` is a bash word: sh spells it `.`.
// A step that runs `exit` ends this shell: the EXIT trap still reports which step did it.
const RUN_SETUP = `command -v source >/dev/null 2>&1 || source() { . "$1"; }
i=1
trap 'setup_failed "$?" "$i" "$step"' EXIT
while [ "$i" -le "$m" ]; do
  step=$1
  shift
  eval "$step" || setup_failed "$?" "$i" "$step"
  i=$((i + 1))
done
trap - EXIT`

// The job wrapper. sshd (or the local transport) starts it as a session and process-group leader;
// it enters the working directory, exports the environment, starts the watchdog on the original
// stdin, runs the set-up steps, and then execs the launcher in the foreground, so that the launcher
// keeps this pid, and the group it leads, and keeps SIGINT at its default (a background job of sh
// would ignore it). The set-up runs after the watchdog starts, so that it is stopped like the job.
// Args: $1 heartbeat timeout, $2 grace, $3 directory, $4 count of NAME=VALUE words, those words,
// then the count of set-up steps, those steps, then argv.
const JOB = `
hb=$1 grace=$2 dir=$3 n=$4
shift 4
${ENTER_DIR} || { echo "fanout: working directory $dir does not exist on this node" >&2; exit 1; }
while [ "$n" -gt 0 ]; do export "$1"; shift; n=$((n - 1)); done
exec 3<&0 </dev/null
setsid /bin/sh -c ${shellQuote(WATCHDOG)} fanout-watchdog "$$" "$hb" "$grace" <&3 >/dev/null 2>&1 &
exec 3<&-
setup_failed() { trap - EXIT; echo "fanout: set-up step $2 failed with exit $1: $3" >&2; exit "$1"; }
m=$1
shift
${RUN_SETUP}
exec "$@"
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

export function jobCommand(job: JobSpec): string {
  const env = Object.entries(job.env).map(([k, v]) => `${k}=${v}`)
  const setup = job.setup ?? []
  const args = [String(job.heartbeatTimeoutS), String(job.graceS), job.cwd, String(env.length), ...env, String(setup.length), ...setup, ...job.argv]
  return sh(JOB, 'fanout-job', args)
}

// Finds torch and reads its version.py without importing torch (an import takes seconds).
const TORCH_PROBE = `
import importlib.util, os, re
spec = importlib.util.find_spec("torch")
print("fanout.torch=" + ("yes" if spec else "no"))
print("fanout.python_version=%d.%d.%d" % __import__("sys").version_info[:3])
for folder in (spec.submodule_search_locations or []) if spec else []:
    try:
        m = re.search(r"__version__\\s*=\\s*['\\"]([^'\\"]+)", open(os.path.join(folder, "version.py")).read())
        print("fanout.torch_version=" + (m.group(1) if m else ""))
        break
    except OSError:
        pass
`

// Facts about a node, printed as `fanout.KEY=VALUE` lines so that noise from the user's shell start-up
// files cannot be mistaken for them; the set-up steps run first (a venv changes which python is found),
// with their output on stderr. Args: $1 python, $2 "1" to find a free port, $3 working directory,
// $4 script to look for ("" for none), $5 port that must be free ("" for none), $6 count of set-up
// steps, those steps.
const PROBE = `
py=$1 want_port=$2 dir=$3 script=$4 port=$5 m=$6
shift 6
echo "fanout.ssh_connection=$SSH_CONNECTION"
exec 4>&1
setup_failed() { trap - EXIT; echo "fanout.setup_failed=$2 $1" >&4; exit 0; }
{
${RUN_SETUP}
} >&2
echo "fanout.cuda_visible_devices=\${CUDA_VISIBLE_DEVICES-<unset>}"
echo "fanout.gloo_socket_ifname=\${GLOO_SOCKET_IFNAME-}"
echo "fanout.nccl_socket_ifname=\${NCCL_SOCKET_IFNAME-}"
if command -v nvidia-smi >/dev/null 2>&1; then
  echo "fanout.gpus=$(timeout 20 nvidia-smi -L 2>/dev/null | grep -c '^GPU ')"
fi
if ${ENTER_DIR}; then echo "fanout.cwd=ok"; else echo "fanout.cwd=missing"; fi
if [ -n "$script" ]; then
  if [ -e "$script" ]; then echo "fanout.script=ok"; else echo "fanout.script=missing"; fi
fi
if p=$(command -v "$py" 2>/dev/null); then
  echo "fanout.python=$p"
  "$py" -c ${shellQuote(TORCH_PROBE)} 2>/dev/null
  if [ "$want_port" = 1 ]; then
    "$py" -c 'import socket; s = socket.socket(); s.bind(("", 0)); print("fanout.free_port=%d" % s.getsockname()[1])' 2>/dev/null
  fi
  if [ -n "$port" ]; then
    # SO_REUSEADDR as torch's TCPStore sets it: connections of the last run in TIME_WAIT do not count.
    if "$py" -c 'import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("", int(sys.argv[1])))' "$port" 2>/dev/null; then
      echo "fanout.port_free=yes"; else echo "fanout.port_free=no"; fi
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
}

export const probeCommand = (p: ProbeSpec): string => {
  const setup = p.setup ?? []
  return sh(PROBE, 'fanout-probe', [p.python, p.wantPort ? '1' : '0', p.cwd, p.script ?? '', p.port === undefined ? '' : String(p.port), String(setup.length), ...setup])
}

// The interface that carries traffic to the master: what `ip route get` names, except on the master
// itself, where the route is `lo` and the interface is the one holding the address. Args: $1 address.
const ROUTE = `
dev=$(ip route get "$1" 2>/dev/null | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p' | head -n 1)
if [ "$dev" = lo ]; then
  own=$(ip -o addr show 2>/dev/null | awk -v a="$1" '{ split($4, p, "/"); if (p[1] == a) { print $2; exit } }')
  [ -n "$own" ] && dev=$own
fi
echo "fanout.iface=$dev"
`

export const routeCommand = (masterAddr: string): string => sh(ROUTE, 'fanout-route', [masterAddr])

/** Reads the `fanout.KEY=VALUE` lines of a probe's stdout, ignoring everything else. */
export function readProbeLines(stdout: string): Map<string, string> {
  const facts = new Map<string, string>()
  for (const line of stdout.split('\n')) {
    const m = /^fanout\.([a-z_]+)=(.*)$/.exec(line.replace(/\r$/, ''))
    if (m && m[1] !== undefined && m[2] !== undefined) facts.set(m[1], m[2])
  }
  return facts
}
