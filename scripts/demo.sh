#!/usr/bin/env bash
# Sets up .venv, then runs the main job: the emulated reference site, end to end, with an exceedance, a
# bypass opening, the treatment fan off and a platform outage healed (scenarios/demo.json). Arguments
# replace the defaults (e.g. scripts/demo.sh --scenario reference).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$#" -eq 0 ]; then
    set -- --scenario demo --outage backup=10m-15m
fi
exec .venv/bin/emlog simulate "$@"
