#!/usr/bin/env bash
# Create .venv and install the locked dependencies into it. Needs only python3 (>= 3.11).
# Idempotent: re-running after a lock change syncs the venv to the lock exactly.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
stamp="$VENV/.installed-$(cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then exit 0; fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "uv==0.13.9"
# uv pip sync removes anything not in the lock, so the venv is exactly what CI tests.
"$VENV/bin/uv" pip sync --python "$VENV/bin/python" -q requirements.txt requirements-dev.txt
"$VENV/bin/uv" pip install --python "$VENV/bin/python" -q --no-deps -e .
rm -f "$VENV"/.installed-*
touch "$stamp"
