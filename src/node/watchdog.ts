// The watchdog runs in its own session (setsid) beside the job (the job wrapper, JOB in remote.ts,
// starts it), reading the coordinator's control bytes (CONTROL in remote.ts). It stops the job's
// process group when the channel closes (EOF: coordinator killed, laptop closed) or when no byte came
// for $2 seconds (link cut: no EOF ever arrives), and it exits as soon as the group is empty.
// `timeout ... dd` is how plain sh reads one byte with a time limit.
// A group holding only zombies counts as empty: kill -0 finds a process that has exited until its
// parent collects it, and an orphan's parent is init, which on some machines collects late (the rank
// tagger's sidecar is such an orphan). So once the group's leader (the launcher) is gone, ps says
// which members are zombies; a ps that lists nothing (none, or one without these options) leaves
// kill's answer. The loop's cheap check (once per heartbeat) may count a zombie: the channel's EOF,
// at the job's end, still ends it through reap.
// A launcher that is an agent (torchrun, $4 = 1) has nothing to save once its workers are gone, and
// may not act on a stop at all: torch's agent defers its SIGTERM handler until a blocking store call
// returns, and its exit barrier (workers done, a peer failed) waits up to 300 s. So once stopping (an
// order, or reap), an agent left without a running worker for 2 s is killed, alone (a healthy one is
// gone by then: within 1.5 s of Ctrl-C in the teardown benchmark, three nodes on two cores), and the
// rest of the group keeps its grace. A running worker is a child of the agent that is not a zombie and
// not this watchdog (a child too, the wrapper's, in a session of its own), in any group: torch 2.x
// starts each worker in a session of its own (start_new_session), and such a worker saving a
// checkpoint on SIGINT must get the grace too, not 2 s. It is read from /proc by the shell itself (no
// process started); without /proc the agent waits like any launcher. Once stopping, the loop reads
// 1 s at a time, so as to look again between heartbeats, and counts silent seconds toward the
// heartbeat timeout.
// S (CONTROL.stacks): the agent's children, its workers, each started through the rank tagger's
// bootstrap (node/worker-boot.ts), get SIGURG, on which Python's faulthandler prints the stack of
// every thread and the worker goes on. SIGURG is ignored by default: a child that has not registered
// the handler yet is not harmed.
// runs PID: PID is not a zombie (its group is then in _group).
// children CMD: runs CMD with each child of the agent but this watchdog, until one fails; a children
// file that cannot be read fails too.
// Args: $1 process group id, $2 heartbeat timeout (s), $3 grace before SIGKILL (s), $4 1 for an agent.
export const WATCHDOG = `
pg=$1 hb=$2 grace=$3 agent=$4
trap '' HUP INT
running() {
  kill -0 -"$pg" 2>/dev/null || return 1
  kill -0 "$pg" 2>/dev/null && return 0
  ps -A -o pgid= -o stat= 2>/dev/null | awk -v g="$pg" '$1 == g && $2 !~ /^Z/ { f = 1 } END { exit !(f || !NR) }'
}
runs() {
  _st=
  read -r _st 2>/dev/null <"/proc/$1/stat" || [ -n "$_st" ] || return 1
  set -- \${_st##*) }
  _group=$3
  [ "$1" != Z ] && [ "$1" != X ]
}
children() {
  for _t in /proc/"$pg"/task/*/children; do
    _kids=
    read -r _kids 2>/dev/null <"$_t" || [ -n "$_kids" ] || [ -r "$_t" ] || return 1
    for _k in $_kids; do
      [ "$_k" = "$$" ] || "$@" "$_k" || return 1
    done
  done
}
gone() { ! runs "$1"; }
urg() { kill -URG "$1"; :; }
idle_agent() {
  [ "$agent" = 1 ] && runs "$pg" && [ "$_group" = "$pg" ] && children gone
}
# Kills an agent idle for 2 s or more, timed with /proc/uptime (centiseconds; no process started).
# reap does not restart the clock: an agent seen idle after an order goes 2 s after that, EOF or not.
idle_since=
stop_idle_agent() {
  if idle_agent && read -r _up _ 2>/dev/null </proc/uptime; then
    _up=\${_up%.*}\${_up#*.}
    idle_since=\${idle_since:-$_up}
    [ $((_up - idle_since)) -lt 200 ] || kill -KILL "$pg" 2>/dev/null
  else
    idle_since=
  fi
}
reap() {
  kill -TERM -"$pg" 2>/dev/null || exit 0
  n=$((grace * 10))
  while running; do
    [ "$n" -gt 0 ] || { kill -KILL -"$pg" 2>/dev/null; exit 0; }
    stop_idle_agent
    sleep 0.1
    n=$((n - 1))
  done
  exit 0
}
# watching: an agent's stop was ordered (I or T); the loop then reads 1 s at a time.
watching= limit=$hb quiet=0
while kill -0 -"$pg" 2>/dev/null; do
  c=$(timeout "$limit" dd bs=1 count=1 2>/dev/null)
  rc=$?
  if [ -n "$c" ]; then
    quiet=0
  elif [ "$rc" -eq 124 ] && [ -n "$watching" ]; then
    quiet=$((quiet + 1))
    [ "$quiet" -lt "$hb" ] || reap
  else
    reap
  fi
  case $c in
    I) kill -INT -"$pg" 2>/dev/null; [ "$agent" != 1 ] || watching=1 limit=1 ;;
    T) kill -TERM -"$pg" 2>/dev/null; [ "$agent" != 1 ] || watching=1 limit=1 ;;
    K) kill -KILL -"$pg" 2>/dev/null ;;
    S) [ "$agent" != 1 ] || children urg ;;
  esac
  [ -z "$watching" ] || stop_idle_agent
done
`
