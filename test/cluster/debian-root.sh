#!/usr/bin/env bash
# Builds a Debian root file system with debootstrap, once; a root already there is reused.
#
#   debian-root.sh SUITE DIR PACKAGES READY
#
# SUITE: the release (trixie, bullseye); PACKAGES: what --include installs, comma-separated; READY: a
# file (relative to DIR) that only a finished root has. Built in DIR.tmp and moved into place when
# complete, so an interrupted build is never mistaken for a finished one. Needs debootstrap and
# Debian's package repository (FANOUT_DEBIAN_MIRROR).
set -euo pipefail
SUITE=${1:?usage: debian-root.sh SUITE DIR PACKAGES READY}
DIR=${2:?usage: debian-root.sh SUITE DIR PACKAGES READY}
PACKAGES=${3:?usage: debian-root.sh SUITE DIR PACKAGES READY}
READY=${4:?usage: debian-root.sh SUITE DIR PACKAGES READY}
[ -e "$DIR/$READY" ] && exit 0
command -v debootstrap >/dev/null || { echo "debian-root.sh: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
MIRROR=${FANOUT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
LOG=$DIR.debootstrap.log
rm -rf "$DIR.tmp"
mkdir -p "$(dirname "$DIR")"
echo "[fanout tests] building the Debian $SUITE root in $DIR (once)" >&2
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$DIR.tmp" "$MIRROR" >"$LOG" 2>&1 || {
  echo "debian-root.sh: debootstrap failed; the end of $LOG:" >&2
  tail -n 20 "$LOG" >&2
  exit 1
}
[ -e "$DIR.tmp/$READY" ] || { echo "debian-root.sh: $SUITE root built, but without $READY" >&2; exit 1; }
rm -rf "$DIR"
mv "$DIR.tmp" "$DIR"
