"""dag.test() against the local GT emulator, in this process (SQLite metadata DB)."""

from __future__ import annotations

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
    from dag_helpers import dag_test_emulator

    with dag_test_emulator(tmp_path_factory, "dag") as emu:
        yield emu


@pytest.fixture
def batch_dag(emulator: Any) -> Any:
    from dag_helpers import load_dag_module

    return load_dag_module("smgt_batch").dag


