#!/usr/bin/env bash
# Keep the local deployment running for people to label: SeaweedFS (S3), Label Studio, the local
# Ground Truth and Airflow on SQLite + LocalExecutor, all state under .smgt/local/ (kept across runs).
# Prints the URLs and logins, stays up until Ctrl-C. Options: --simulated, --reset [--yes],
# --state-dir DIR, --task-seconds S (see `python -m smgt.up --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PYTHONPATH="$PWD/plugins${PYTHONPATH:+:$PYTHONPATH}"
case " $* " in
    *" --simulated "*) ;;
    *) # A state dir set up with simulated workers refuses Label Studio: say so before installing it (~1 GB).
       .venv/bin/python -m smgt.up --check-workforce "$@"
       scripts/bootstrap.sh --labelstudio ;;
esac
exec .venv/bin/python -m smgt.up "$@"
