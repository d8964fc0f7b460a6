"""dag.test() against the local GT emulator, in this process (SQLite metadata DB)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def airflow_db() -> None:
    from airflow.utils import db

    db.initdb()


# Module scope: the environment it sets (the emulator's AWS endpoints) is restored after each
# module instead of leaking into every test that runs later in the session.
@pytest.fixture(scope="module")
def emulator(airflow_db: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from s3_store import seaweedfs_store

    from smgt.local import LocalGroundTruth

    saved = dict(os.environ)
    with seaweedfs_store(tmp_path_factory.mktemp("dag-s3")) as store, LocalGroundTruth(
            port=0, task_seconds=0.0, seed=7, s3=store, state_dir=tmp_path_factory.mktemp("dag-gt")) as emu:
        os.environ.update(emu.env())
        # Fast polls and no retries: a test failure shows at once instead of after backoff.
        os.environ.update({"SMGT_POKE_INTERVAL": "1", "SMGT_TASK_RETRIES": "0"})
        emu.demo = emu.upload_demo_data()
        yield emu
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def batch_dag(emulator: Any) -> Any:
    from dag_helpers import load_dag_module

    return load_dag_module("smgt_batch").dag


