#!/usr/bin/env bash
# Create .venv and install the locked dependencies into it. Needs only python3 (>= 3.11).
# Idempotent: re-running after a lock change syncs the venv to the lock exactly.
# `--labelstudio` (or SMGT_WITH_LABELSTUDIO=1) also installs Label Studio from
# requirements-labelstudio.txt into its own venv, ${LABELSTUDIO_VENV:-.venv-labelstudio}
# (~1 GB; its pins conflict with ours, see requirements-labelstudio.in); the same stamp rule applies.
set -euo pipefail
cd "$(dirname "$0")/.."
with_labelstudio=${SMGT_WITH_LABELSTUDIO:-0}
for arg in "$@"; do
  case "$arg" in
    --labelstudio) with_labelstudio=1 ;;
    *) echo "usage: scripts/bootstrap.sh [--labelstudio]" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
stamp="$VENV/.installed-$(cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "uv==0.13.9"
  # uv pip sync removes anything not in the lock, so the venv is exactly what CI tests. Bytecode is
  # compiled now, once, not by the first processes that import each module (Airflow's components,
  # Label Studio's first start) all at the same time on a fresh machine.
  "$VENV/bin/uv" pip sync --python "$VENV/bin/python" -q --compile-bytecode requirements.txt requirements-dev.txt
  "$VENV/bin/uv" pip install --python "$VENV/bin/python" -q --no-deps -e .
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
if [ "$with_labelstudio" = 1 ]; then
  LS_VENV=${LABELSTUDIO_VENV:-.venv-labelstudio}
  ls_stamp="$LS_VENV/.installed-$(sha256sum < requirements-labelstudio.txt | cut -c1-16)"
  if [ ! -f "$ls_stamp" ]; then
    # No pip in it: uv (from .venv) installs, and sync would remove pip anyway.
    [ -x "$LS_VENV/bin/python" ] || "$PY" -m venv --without-pip "$LS_VENV"
    "$VENV/bin/uv" pip sync --python "$LS_VENV/bin/python" -q --compile-bytecode requirements-labelstudio.txt
    rm -f "$LS_VENV"/.installed-*
    touch "$ls_stamp"
  fi
fi
