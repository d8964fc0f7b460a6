"""A real Airflow (api-server, scheduler, dag-processor, triggerer) against the local GT emulator.

Started once for the whole tests/api run (session scope: startup is the expensive part) by
`smgt.embedded.EmbeddedAirflow` - the same embedded deployment the demo runs: its own AIRFLOW_HOME
and SQLite database in a temp dir, LocalExecutor, this repo's dags/ and plugins/, and
SimpleAuthManager users `admin` (role admin), `user` (role user) and `viewer` (role viewer).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from api_helpers import BATCH_DAG_ID

from smgt.embedded import EmbeddedAirflow, EmbeddedAirflowError


class AirflowStack(EmbeddedAirflow):
    """The embedded Airflow plus what the API tests ask of it."""

    emu: Any

    def api(self, path: str) -> str:
        return f"{self.url}/smgt/{path.lstrip('/')}"

    def dag_runs(self, dag_id: str = BATCH_DAG_ID) -> list[dict[str, Any]]:
        """Every run of `dag_id`, through Airflow's own REST API (not ours)."""
        runs: list[dict[str, Any]] = []
        while True:
            resp = self.session("admin").get(
                f"{self.url}/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100, "offset": len(runs)}, timeout=30
            )
            if resp.status_code == 404:
                return runs
            resp.raise_for_status()
            page = resp.json()["dag_runs"]
            runs.extend(page)
            if len(page) < 100:
                return runs

    def run_exists(self, run_id: str, dag_id: str = BATCH_DAG_ID) -> bool:
        resp = self.session("admin").get(f"{self.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}", timeout=30)
        assert resp.status_code in (200, 404), resp.text
        return resp.status_code == 200


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from s3_store import seaweedfs_store

    from smgt.local import LocalGroundTruth

    with seaweedfs_store(tmp_path_factory.mktemp("api-s3")) as store, LocalGroundTruth(
            port=0, task_seconds=0.0, s3=store, state_dir=tmp_path_factory.mktemp("api-gt")) as emu:
        emu.upload_demo_data()
        yield emu


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, emulator: Any) -> Iterator[AirflowStack]:
    airflow = AirflowStack(tmp_path_factory.mktemp("airflow_home"), aws_env=emulator.env(),
                           extra_env={"AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"})
    airflow.emu = emulator
    try:
        airflow.start()
    except (EmbeddedAirflowError, requests.RequestException) as exc:
        pytest.fail(f"the embedded Airflow did not start: {exc}")
    try:
        yield airflow
    finally:
        airflow.stop()
