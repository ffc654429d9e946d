#!/usr/bin/env bash
# Builds the root file system of the test cluster's Debian 13 hosts (torch 2.6, Python 3.13,
# OpenSSH 10), once: about 1.5 GB and a few minutes; a root already there is reused.
#
#   debian13-root.sh DIR
#
# Built in DIR.tmp and moved into place when complete, so an interrupted build is never mistaken
# for a finished one. Needs debootstrap and Debian's package repository.
set -euo pipefail
DIR=${1:?usage: debian13-root.sh DIR}
ready() { [ -x "$DIR/usr/sbin/sshd" ] && [ -f "$DIR/usr/lib/python3/dist-packages/torch/version.py" ]; }
ready && exit 0
command -v debootstrap >/dev/null || { echo "debian13-root.sh: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
MIRROR=${FANOUT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
rm -rf "$DIR.tmp"
mkdir -p "$(dirname "$DIR")"
echo "[fanout cluster] building the Debian 13 root in $DIR (once: a few minutes)" >&2
debootstrap --variant=minbase \
  --include=python3-torch,openssh-server,openssh-sftp-server,iproute2,procps,util-linux \
  trixie "$DIR.tmp" "$MIRROR" >"$(dirname "$DIR")/debootstrap.log" 2>&1 || {
  echo "debian13-root.sh: debootstrap failed; the end of $(dirname "$DIR")/debootstrap.log:" >&2
  tail -n 20 "$(dirname "$DIR")/debootstrap.log" >&2
  exit 1
}
rm -rf "$DIR"
mv "$DIR.tmp" "$DIR"
ready
