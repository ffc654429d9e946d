#!/usr/bin/env bash
# Builds the root file system of the test cluster's Debian 13 hosts (torch 2.6, Python 3.13,
# OpenSSH 10), once: about 1.5 GB and a few minutes; a root already there is reused.
#
#   debian13-root.sh DIR
set -euo pipefail
DIR=${1:?usage: debian13-root.sh DIR}
[ -x "$DIR/usr/sbin/sshd" ] && [ -f "$DIR/usr/lib/python3/dist-packages/torch/version.py" ] && exit 0
exec bash "$(dirname "$0")/debian-root.sh" trixie "$DIR" \
  python3-torch,openssh-server,openssh-sftp-server,iproute2,procps,util-linux \
  usr/lib/python3/dist-packages/torch/version.py
