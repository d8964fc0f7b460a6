#!/usr/bin/env bash
# The demo: the reference notebook's 4-job batch end to end on the embedded default (local Ground
# Truth emulator + Airflow on SQLite + LocalExecutor), answering the down-sampling prompt with 50 %.
# Sets up .venv from the lock when needed. Extra arguments go to `python -m smgt.demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PYTHONPATH="$PWD/plugins${PYTHONPATH:+:$PYTHONPATH}"
exec .venv/bin/python -m smgt.demo "$@"
