"""Integrity: everything under dags/ imports, and Airflow loads plugins/ without import errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Run in a fresh interpreter, as a dag-processor or api-server would: Airflow caches plugins per
# process, and the package must import the way Airflow puts it on sys.path (plugins/ folder).
PROBE = r"""
import json
from airflow import plugins_manager
from airflow.dag_processing.dagbag import DagBag

plugins, errors = plugins_manager._get_plugins()
apps = [app["url_prefix"] for p in plugins for app in getattr(p, "fastapi_apps", [])]
bag = DagBag(__import__("airflow").settings.DAGS_FOLDER)
print(json.dumps({
    "plugins": sorted(p.name for p in plugins),
    "plugin_errors": errors,
    "fastapi_prefixes": apps,
    "dags": sorted(bag.dags),
    "dag_errors": bag.import_errors,
}))
"""


def probe() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    })
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=300, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_dags_and_plugins_load_without_import_errors():
    result = probe()
    assert result["dag_errors"] == {}
    assert result["plugin_errors"] == {}
    # One plugin from the one entry file; the smgt package itself is not scanned as plugins.
    assert result["plugins"] == ["smgt"]
    assert result["fastapi_prefixes"] == ["/smgt"]
    assert "smgt_batch" in result["dags"]
    assert any(d.startswith("smgt_recurring_") for d in result["dags"])
