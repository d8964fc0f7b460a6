#!/usr/bin/env bash
# Run the test suite: sets up .venv from the lock when needed, then pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/test_config.py -x).
# The multi-process Celery/Postgres stack tests are marked `stack`; run them with
# `scripts/test.sh -m stack` (CI runs them as a separate step).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PYTHONPATH="$PWD/plugins${PYTHONPATH:+:$PYTHONPATH}"
if [ "$#" -eq 0 ]; then set -- -m "not stack"; fi
exec .venv/bin/python -m pytest "$@"
