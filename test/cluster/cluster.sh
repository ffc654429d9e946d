#!/usr/bin/env bash
# A real cluster on one machine: one network namespace per host, joined by a bridge, each host with
# its own address, interface name and OpenSSH server. All hosts share the file system (like a
# cluster with a shared home). Used by the end-to-end tests and the benchmarks.
#
#   cluster.sh up     create the hosts (removing leftovers of an interrupted run first)
#   cluster.sh down   stop every process in the hosts' namespaces and remove them
#
# Hosts (reached as the plain user fanout-test — bash, key or the password in $STATE/password — or
# fanout-dash, whose login shell is dash; key and known_hosts generated here):
#   h1 h2 h3  normal hosts, 2 stand-in GPUs each (a fake nvidia-smi), interfaces ens3/enp1s0/eno1;
#             h2's known_hosts entry is hashed; h3's sshd also listens on port 2222
#   h4        a running sshd whose host key is NOT in known_hosts
#   h5        a host whose link is down: unreachable
#   d1 d2 d3  Debian 13 hosts (torch 2.6, Python 3.13, OpenSSH 10: sshd chrooted in the root that
#             debian13-root.sh builds once, in the host's network namespace and a private mount
#             namespace with /proc, /sys, /dev and /tmp bound in), 2 stand-in GPUs each, interfaces
#             ens3/enp1s0/eno1; their host names resolve nowhere (no /etc/hosts line, an empty
#             resolv.conf), as on lab machines whose names the others cannot look up
#   n1..nN    plain nodes (N = $FANOUT_CLUSTER_NODES, default 8, at most 240) on 10.99.1.0/24, 2 stand-in
#             GPUs each: for scale tests and the benchmarks
#   jump      a bastion on two bridges: reachable at 10.99.0.20, and the only way to j1 and j2
#   j1 j2     nodes on an inner bridge (10.99.2.0/24) this machine has no address on: reached only
#             through jump
#   storm-*   any name: one more way to reach h1 (ssh_config aliases), for handshake storms against one
#             sshd with its default MaxStartups
# Every host shares the file system, except $STATE/private: a directory of its own on each host.
# The stand-in nvidia-smi reports the processes listed in $STATE/gpu-apps/fo-NAME as holding GPUs.
# $FANOUT_CLUSTER_DEBIAN13 (host names, space-separated) makes any other host a Debian 13 one too.
set -euo pipefail

STATE=${FANOUT_CLUSTER_DIR:-/tmp/fanout-cluster}
BRIDGE=fo-br0
NET=10.99.0
NODES=${FANOUT_CLUSTER_NODES:-8}
[ "$NODES" -le 240 ] || { echo "FANOUT_CLUSTER_NODES: at most 240" >&2; exit 2; }
INNER_BRIDGE=fo-br1
USER_NAME=fanout-test
DASH_USER=fanout-dash
IFNAMES=(x ens3 enp1s0 eno1 enp2s0 ens5)
HOSTS_MARK='# fanout-test-cluster'
DEBIAN13_ROOT=${FANOUT_DEBIAN13_ROOT:-/var/cache/fanout-test/debian13}
DEBIAN13_HOSTS=" d1 d2 d3 ${FANOUT_CLUSTER_DEBIAN13:-} "

# Removes the cluster's lines from /etc/hosts, rewriting it in place (it may be a bind mount).
unhost() {
  local kept
  kept=$(grep -v -- "$HOSTS_MARK\$" /etc/hosts || true)
  printf '%s\n' "$kept" >/etc/hosts
}
HERE=$(cd "$(dirname "$0")" && pwd)
FIX=$(cd "$HERE/../fixtures" && pwd)

down() {
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^fo-(h[0-9]+|d[0-9]+|n[0-9]+|j[0-9]+|jump)$' || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  # A namespace's veth pair is destroyed asynchronously after `ip netns del`: remove the host ends
  # now, so that an immediate `up` does not race with the kernel ("File exists").
  local link
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^fo-v[a-z]*[0-9]+$' || true); do
    ip link del "$link" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  ip link del "$INNER_BRIDGE" 2>/dev/null || true
  unhost
  case "$STATE" in /tmp/*) rm -rf "$STATE" ;; esac
}

# Records a host's key in known_hosts (by address, as ssh does for a HostName).
known() {
  echo "$2 $(cut -d' ' -f1,2 "$STATE/$1/ssh_host_ed25519_key.pub")" >>"$STATE/known_hosts"
}

# Makes the Debian 13 root ready for test hosts: built once (debian13-root.sh), then given this
# cluster's users (same uids, so the shared files are theirs there too), their homes, sshd's
# privilege-separation directory and an empty resolv.conf: torch 2's TCPStore looks up the name of
# every peer, and a resolver with no route to its nameserver makes each lookup wait ~10 s.
prepare_debian13() {
  case $STATE in /tmp/*) ;; *) echo "cluster.sh: Debian 13 hosts see the machine's /tmp only: FANOUT_CLUSTER_DIR must be under /tmp" >&2; exit 2 ;; esac
  bash "$HERE/debian13-root.sh" "$DEBIAN13_ROOT"
  local root=$DEBIAN13_ROOT u f
  mkdir -p "$root/run/sshd"
  : >"$root/etc/resolv.conf"
  for f in passwd shadow group; do
    grep -v -E "^($USER_NAME|$DASH_USER):" "$root/etc/$f" >"$root/etc/$f.new" || true
    grep -E "^($USER_NAME|$DASH_USER):" "/etc/$f" >>"$root/etc/$f.new" || true
    cat "$root/etc/$f.new" >"$root/etc/$f"
    rm -f "$root/etc/$f.new"
  done
  for u in "$USER_NAME" "$DASH_USER"; do
    mkdir -p "$root/home/$u"
    chown "$(id -u "$u"):$(id -g "$u")" "$root/home/$u"
  done
  printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
}

# addhost NAME IFNAME ADDR BRIDGE VETH [PORT]: a namespace fo-NAME with its own address on BRIDGE,
# hostname, private tmpfs and OpenSSH server on port 22 (and PORT, if given; sshd's defaults otherwise:
# MaxStartups 10:30:100). A host named in DEBIAN13_HOSTS runs its sshd chrooted in the Debian 13 root;
# its name is not in /etc/hosts.
addhost() {
  local name=$1 ifname=$2 addr=$3 bridge=$4 veth=$5 extra_port=${6:-}
  local ns=fo-$name dir=$STATE/$name
  mkdir -p "$dir"
  ip netns add "$ns"
  ip link add "$veth" type veth peer name "$ifname" netns "$ns"
  ip link set "$veth" master "$bridge" up
  ip -n "$ns" addr add "$addr/24" dev "$ifname"
  ip -n "$ns" link set "$ifname" up
  ip -n "$ns" link set lo up
  ssh-keygen -q -t ed25519 -N '' -f "$dir/ssh_host_ed25519_key"
  cat >"$dir/sshd_config" <<CFG
ListenAddress $addr
Port 22
${extra_port:+Port $extra_port}
HostKey $dir/ssh_host_ed25519_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $STATE/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
LogLevel VERBOSE
Subsystem sftp internal-sftp
SetEnv FANOUT_TEST_GPUS=2 PYTHONPATH=$STATE/torch-fix PATH=$STATE/bin:/usr/local/bin:/usr/bin:/bin
CFG
  # Each host has its own hostname (UTS namespace), resolvable through /etc/hosts, as on a real
  # cluster: torch's c10d rendezvous tells its workers where the store is by hostname.
  # $STATE/private is each host's own: a tmpfs mounted in the host's mount namespace (ip netns exec
  # gives it one), so that files there are not shared — machines without a shared file system.
  case $DEBIAN13_HOSTS in
    *" $name "*)
      # The mounts live in the host's own mount namespace (private propagation): they go with its last
      # process, and the machine never sees them.
      local root=$DEBIAN13_ROOT
      ip netns exec "$ns" unshare --uts --mount --propagation private /bin/sh -c "hostname $ns && for d in proc sys dev tmp; do mount --rbind /\$d '$root'/\$d || exit 1; done && mount -t tmpfs -o mode=1777,size=256m fo-private-$name '$root$STATE/private' && exec chroot '$root' /usr/sbin/sshd -f '$dir/sshd_config' -E '$dir/sshd.log'"
      ;;
    *)
      ip netns exec "$ns" unshare --uts /bin/sh -c "hostname $ns && mount -t tmpfs -o mode=1777,size=256m fo-private-$name '$STATE/private' && exec /usr/sbin/sshd -f '$dir/sshd_config' -E '$dir/sshd.log'"
      echo "$addr $ns $HOSTS_MARK" >>/etc/hosts
      ;;
  esac
  printf 'Host %s\n  HostName %s\n' "$name" "$addr" >>"$STATE/ssh_config"
}

up() {
  down
  mkdir -p /run/sshd
  id "$USER_NAME" >/dev/null 2>&1 || useradd -m -s /bin/bash "$USER_NAME"
  # A second plain user whose login shell is dash: fanout's remote programs must not need bash.
  id "$DASH_USER" >/dev/null 2>&1 || useradd -m -s /bin/dash "$DASH_USER"
  usermod -s /bin/bash "$USER_NAME"
  usermod -p '*' "$DASH_USER" # a locked account ('!') is refused even with a key
  mkdir -p "$STATE/bin" "$STATE/work" "$STATE/private" "$STATE/gpu-apps"
  # fanout-test also has a password (for --ask-password); sshd tries it only after the keys.
  head -c 12 /dev/urandom | base64 | tr -d '/+=' >"$STATE/password"
  chmod 600 "$STATE/password"
  echo "$USER_NAME:$(cat "$STATE/password")" | chpasswd
  chmod 755 "$STATE" "$STATE/bin" "$STATE/gpu-apps"
  chmod 1777 "$STATE/work" "$STATE/private"
  ssh-keygen -q -t ed25519 -N '' -C fanout-test -f "$STATE/id_ed25519"
  cp "$STATE/id_ed25519.pub" "$STATE/authorized_keys"
  chmod 644 "$STATE/authorized_keys"
  install -m 755 "$FIX/fake-nvidia-smi" "$STATE/bin/nvidia-smi"
  install -m 755 "$FIX/fake-conda" "$STATE/bin/conda"
  mkdir -p "$STATE/conda/envs"
  chmod 755 "$STATE/conda" "$STATE/conda/envs"
  # The checkout may be private (CI clones under /root): give the test user its own copy.
  mkdir -p "$STATE/torch-fix"
  install -m 644 "$FIX/torch-fix/sitecustomize.py" "$STATE/torch-fix/"
  chmod 755 "$STATE/torch-fix"

  prepare_debian13
  ip link add "$BRIDGE" type bridge
  ip addr add "$NET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up

  ip link add "$INNER_BRIDGE" type bridge # no address here: this machine cannot reach j1, j2
  ip link set "$INNER_BRIDGE" up
  ip addr add "10.99.1.1/24" dev "$BRIDGE"

  : >"$STATE/known_hosts"
  : >"$STATE/ssh_config"
  local i
  for i in 1 2 3 4 5; do
    addhost "h$i" "${IFNAMES[$i]}" "$NET.$((10 + i))" "$BRIDGE" "fo-v$i" "$([ "$i" = 3 ] && echo 2222 || true)"
    if [ "$i" -le 3 ]; then
      echo "$NET.$((10 + i)) $(cut -d' ' -f1,2 "$STATE/h$i/ssh_host_ed25519_key.pub")" >"$STATE/h$i/known_host"
      # h2 is recorded hashed, as HashKnownHosts leaves it.
      [ "$i" = 2 ] && ssh-keygen -q -H -f "$STATE/h$i/known_host" >/dev/null 2>&1
      cat "$STATE/h$i/known_host" >>"$STATE/known_hosts"
    fi
  done
  # h3's second port: known as [addr]:2222, as ssh records a non-22 port.
  echo "[$NET.13]:2222 $(cut -d' ' -f1,2 "$STATE/h3/ssh_host_ed25519_key.pub")" >>"$STATE/known_hosts"
  for i in 1 2 3; do
    addhost "d$i" "${IFNAMES[$i]}" "$NET.$((30 + i))" "$BRIDGE" "fo-vd$i"
    known "d$i" "$NET.$((30 + i))"
  done
  for ((i = 1; i <= NODES; i++)); do
    addhost "n$i" eth0 "10.99.1.$((10 + i))" "$BRIDGE" "fo-vn$i"
    known "n$i" "10.99.1.$((10 + i))"
  done
  # The bastion: one leg on each bridge; its sshd listens on the outer one only.
  addhost jump eth0 "$NET.20" "$BRIDGE" fo-vjump0
  known jump "$NET.20"
  ip link add fo-vjump1 type veth peer name eth1 netns fo-jump
  ip link set fo-vjump1 master "$INNER_BRIDGE" up
  ip -n fo-jump addr add 10.99.2.1/24 dev eth1
  ip -n fo-jump link set eth1 up
  for i in 1 2; do
    addhost "j$i" eth0 "10.99.2.$((10 + i))" "$INNER_BRIDGE" "fo-vj$i"
    known "j$i" "10.99.2.$((10 + i))"
  done
  printf 'Host storm-*\n  HostName %s\n' "$NET.11" >>"$STATE/ssh_config"
  ip link set fo-v5 down
  cat >>"$STATE/ssh_config" <<CFG
Host *
  User $USER_NAME
  IdentityFile $STATE/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $STATE/known_hosts
  GlobalKnownHostsFile /dev/null
CFG
  chmod 644 "$STATE/known_hosts" "$STATE/ssh_config"
  # The Debian 13 hosts resolve the other hosts' names as the machine does (their own stay unknown).
  grep -- "$HOSTS_MARK\$" /etc/hosts >>"$DEBIAN13_ROOT/etc/hosts" || true
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
