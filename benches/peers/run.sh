#!/usr/bin/env bash
# Runs the HELICS peers of fedtwin-bench's scenarios (helics_bench.py) with HELICS 3.6.1 from
# PyPI, installed once into a virtual environment under target/.
#
#   benches/peers/run.sh [FILTER] [--steps N] [--quick] [--cores inproc,zmq,tcp]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/target/helics-venv"
version="3.6.1"

if ! "$venv/bin/python" -c "import helics, sys; sys.exit(helics.helicsGetVersion().split()[0] != '$version')" \
    >/dev/null 2>&1; then
    echo "setting up HELICS $version in $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "helics==$version"
fi
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" "$root/benches/peers/helics_bench.py" "$@"
