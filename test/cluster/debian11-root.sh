#!/usr/bin/env bash
# Builds a Debian 11 root with its Python 3.9 (about 250 MB, a minute), once; a root already there is
# reused. test/unit/run-supervisor.test.ts runs the detached run's node programs with that interpreter
# and its standard library: the oldest Python a Debian release still serves, and torch 2.6's oldest.
#
#   debian11-root.sh DIR
set -euo pipefail
DIR=${1:?usage: debian11-root.sh DIR}
exec bash "$(dirname "$0")/debian-root.sh" bullseye "$DIR" python3 usr/bin/python3.9
