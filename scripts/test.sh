#!/usr/bin/env bash
# Run the test suite: sets up .venv and Label Studio's .venv-labelstudio from their locks when
# needed, then pytest. Extra arguments go to pytest (e.g. scripts/test.sh tests/test_config.py -x).
# The multi-process Celery/Postgres stack tests are marked `stack`; run them with
# `scripts/test.sh -m stack` (CI runs them as a separate step). Browser tests drive Debian's
# chromium (/usr/bin/chromium: `apt-get install chromium`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --labelstudio
export PYTHONPATH="$PWD/plugins${PYTHONPATH:+:$PYTHONPATH}"
if [ "$#" -eq 0 ]; then set -- -m "not stack"; fi
exec .venv/bin/python -m pytest "$@"
