#!/usr/bin/env bash
# Creates .venv and installs emlog with its pinned dependencies; re-installs only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
stamp=.venv/.emlog-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing emlog and its pinned dependencies into .venv"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
    echo "$want" > "$stamp"
fi
# bench/bench_heap32.py's 32-bit figure: the MicroPython webassembly port under node (pinned in its lock file).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "setup: node/npm not found: bench/bench_heap32.py will have no 32-bit figure (install Node.js >= 18, rerun)"
elif [ ! bench/heap32/node_modules/.package-lock.json -nt bench/heap32/package-lock.json ]; then
    echo "setup: installing the MicroPython webassembly port for bench/bench_heap32.py (npm ci in bench/heap32)"
    (cd bench/heap32 && npm ci --no-audit --no-fund --loglevel=error) \
        || echo "setup: npm ci in bench/heap32 failed: bench/bench_heap32.py will have no 32-bit figure"
fi
