#!/usr/bin/env bash
# Sets up .venv, then runs the main job: the emulated reference site end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/emlog simulate "$@"
