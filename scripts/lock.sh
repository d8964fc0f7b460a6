#!/usr/bin/env bash
# Re-lock requirements.txt / requirements-dev.txt from the *.in files (Airflow's constraint
# files are not used: the lock is ours, compiled by uv for Python 3.11).
# requirements-labelstudio.txt is a separate lock for its own venv (scripts/bootstrap.sh --labelstudio).
set -euo pipefail
cd "$(dirname "$0")/.."
uv pip compile requirements.in -o requirements.txt --python-version 3.11 --no-header --excludes requirements-excludes.txt
uv pip compile requirements-dev.in -o requirements-dev.txt --python-version 3.11 --no-header
uv pip compile requirements-labelstudio.in -o requirements-labelstudio.txt --python-version 3.11 --no-header
