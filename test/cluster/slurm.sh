#!/usr/bin/env bash
# A real SLURM on the test cluster (cluster.sh must be up): Debian's slurmctld on this machine, bound to
# the bridge address, and one slurmd per host namespace of h1, h2, h3 (partition `test`, the default)
# and d1, d2, d3 (partition `debian13`), SLURM node names as the hosts', each with the host's UTS
# hostname fo-NAME, all trusting one munged. Jobs run as the user who submits them; the hosts' sshd
# logs show that no SSH login was made.
# The Debian 13 hosts' slurmd is Debian 12's (a node's slurmd may not be newer than slurmctld), so their
# steps run on this machine's root; $STATE/bin/python3-debian13 runs Debian 13's python3 (torch 2.6) in
# the Debian 13 root, which the slurmd's own mount namespace binds /proc, /sys, /dev and /tmp into, as
# for the host's sshd: `--python $STATE/bin/python3-debian13` makes a step's launcher torch 2.6's.
#
#   slurm.sh up     start munged, slurmctld and the slurmds (stopping leftovers first); waits until idle
#   slurm.sh down   stop them
#
# Clients (srun, salloc, sbatch, squeue) need SLURM_CONF=$STATE/slurm/slurm.conf.
# Set-up notes (see also the field notes): slurmd in a network namespace sees a /sys without cgroups,
# so cgroup.conf names cgroup/v1 and nothing uses it (TaskPlugin=task/none); proctrack/pgid, because
# proctrack/linuxproc races with --kill-on-bad-exit; KillWait=2 so that a cancelled step is killed soon.
set -euo pipefail

STATE=${FANOUT_CLUSTER_DIR:-/tmp/fanout-cluster}
DIR=$STATE/slurm
NET=10.99.0
NODES=(h1 h2 h3 d1 d2 d3)
DEBIAN13_ROOT=${FANOUT_DEBIAN13_ROOT:-/var/cache/fanout-test/debian13}

stop() {
  local f
  for f in "$DIR"/run/*.pid; do
    [ -e "$f" ] || continue
    kill -9 "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
  pkill -9 -x slurmctld 2>/dev/null || true
  pkill -9 -f "^/usr/sbin/slurmd -N " 2>/dev/null || true
  pkill -9 -x slurmstepd 2>/dev/null || true
  [ -f /run/munge/fanout-munged.pid ] && kill "$(cat /run/munge/fanout-munged.pid)" 2>/dev/null || true
  rm -f /run/munge/fanout-munged.pid
}

up() {
  stop
  [ -d "$STATE" ] || { echo "slurm.sh: $STATE is missing: run cluster.sh up first" >&2; exit 1; }
  rm -rf "$DIR"
  mkdir -p "$DIR/run" "$DIR/log" "$DIR/state"
  local n
  for n in "${NODES[@]}"; do mkdir -p "$DIR/spool/$n"; done

  # munge: one daemon for every namespace (its socket is a file under /run/munge).
  [ -s /etc/munge/munge.key ] || { /usr/sbin/mungekey --create --keyfile=/etc/munge/munge.key && chown munge:munge /etc/munge/munge.key; }
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  chmod 755 /run/munge
  # A munged already running (the machine's own service) serves as well: only one can hold the socket.
  pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/fanout-munged.pid
  cat >"$DIR/slurm.conf" <<CONF
ClusterName=fanout-test
SlurmctldHost=$(hostname)($NET.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
SlurmctldPort=6817
SlurmdPort=6818
KillWait=2
MinJobAge=10
InactiveLimit=0
MpiDefault=none
NodeName=h[1-3] NodeAddr=$NET.[11-13] CPUs=2 State=UNKNOWN
NodeName=d[1-3] NodeAddr=$NET.[31-33] CPUs=2 State=UNKNOWN
PartitionName=test Nodes=h[1-3] Default=YES MaxTime=INFINITE State=UP
PartitionName=debian13 Nodes=d[1-3] MaxTime=INFINITE State=UP
CONF
  echo 'CgroupPlugin=cgroup/v1' >"$DIR/cgroup.conf"
  chmod 755 "$DIR"
  chmod 644 "$DIR/slurm.conf" "$DIR/cgroup.conf"

  SLURM_CONF=$DIR/slurm.conf /usr/sbin/slurmctld -f "$DIR/slurm.conf" -i
  cat >"$STATE/bin/python3-debian13" <<PY
#!/bin/sh
# Debian 13's python3 (torch 2.6) in the Debian 13 root, in this directory (slurm.sh). Once inside the
# root (torchrun starts its workers with this same path), it is that python3 itself.
[ -d '$DEBIAN13_ROOT' ] || exec /usr/bin/python3 "\$@"
exec chroot '$DEBIAN13_ROOT' /bin/sh -c 'cd "\$1" 2>/dev/null || cd /; shift; exec /usr/bin/python3 "\$@"' sh "\$PWD" "\$@"
PY
  chmod 755 "$STATE/bin/python3-debian13"
  for n in "${NODES[@]}"; do
    # The host's own UTS hostname (fo-NAME, as its sshd has), so that its tasks see the host they run on.
    case $n in
      d*)
        ip netns exec "fo-$n" unshare --uts --mount --propagation private /bin/sh -c "hostname fo-$n && for d in proc sys dev tmp; do mount --rbind /\$d '$DEBIAN13_ROOT'/\$d || exit 1; done && exec /usr/sbin/slurmd -N $n -f '$DIR/slurm.conf'"
        ;;
      *) ip netns exec "fo-$n" unshare --uts /bin/sh -c "hostname fo-$n && exec /usr/sbin/slurmd -N $n -f '$DIR/slurm.conf'" ;;
    esac
  done
  local i
  for i in $(seq 1 100); do
    if [ "$(SLURM_CONF=$DIR/slurm.conf sinfo -h -N -t idle -o %N 2>/dev/null | sort -u | wc -l)" = "${#NODES[@]}" ]; then
      return 0
    fi
    sleep 0.2
  done
  echo "slurm.sh: the nodes did not become idle in 20 s:" >&2
  SLURM_CONF=$DIR/slurm.conf sinfo -N >&2 || true
  tail -n 20 "$DIR"/log/*.log >&2 || true
  exit 1
}

case "${1:-}" in
  up) up ;;
  down) stop ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
