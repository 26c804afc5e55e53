#!/usr/bin/env bash
# Create the virtual environment at $1 unless it exists; install python3-venv if the
# machine's Python lacks the venv module (plain Debian images do).
set -euo pipefail
venv=${1:-.venv}
[ -x "$venv/bin/python" ] && exit 0
if ! python3 -m venv --help >/dev/null 2>&1; then
  apt-get update -q && apt-get install -y -q python3-venv
fi
python3 -m venv "$venv"
