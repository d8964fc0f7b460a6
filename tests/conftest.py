"""Root test configuration: import the package the way Airflow does (plugins/ on sys.path)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT / "plugins", Path(__file__).parent):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

# In-process Airflow (dag.test, hooks) reads its config at first import: give the test session its
# own AIRFLOW_HOME and SQLite DB before anything imports airflow. Tests that start Airflow
# processes pass their own environment.
_home = tempfile.mkdtemp(prefix="smgt-airflow-home-")
os.environ.update(
    {
        "AIRFLOW_HOME": _home,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_home}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # As every deployment does (smgt.gt.session): in-process hooks share one botocore loader.
        "AIRFLOW__AWS__SESSION_FACTORY": "smgt.gt.session.SharedLoaderSessionFactory",
    }
)

from sample_batches import notebook_batch  # noqa: E402


@pytest.fixture
def nb_batch() -> dict:
    return notebook_batch()
