"""Helpers of the dag.test() tests (a uniquely named module: conftest names collide across folders)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def dag_test_emulator(tmp_path_factory: Any, name: str) -> Iterator[Any]:
    """A local Ground Truth (S3 on its own SeaweedFS, instant tasks, seed 7, the demo data uploaded
    as `emu.demo`) whose AWS endpoints are this process's environment while it runs, for dag.test();
    the environment is restored afterwards, so it does not leak into later tests."""
    from airflow.utils import db
    from s3_store import seaweedfs_store

    from smgt.local import LocalGroundTruth

    db.initdb()
    saved = dict(os.environ)
    try:
        with seaweedfs_store(tmp_path_factory.mktemp(f"{name}-s3")) as store, LocalGroundTruth(
                port=0, task_seconds=0.0, seed=7, s3=store, state_dir=tmp_path_factory.mktemp(f"{name}-gt")) as emu:
            os.environ.update(emu.env())
            # Fast polls and no retries: a test failure shows at once instead of after backoff.
            os.environ.update({"SMGT_POKE_INTERVAL": "1", "SMGT_TASK_RETRIES": "0"})
            emu.demo = emu.upload_demo_data()
            yield emu
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_batch_with_faults(emulator: Any, conf: dict, faults: dict) -> Any:
    """dag.test() of `smgt_batch` with `conf` while the emulator's `faults` are in force (cleared after)."""
    emulator.set_faults(faults)
    try:
        return load_dag_module("smgt_batch").dag.test(run_conf=conf)
    finally:
        emulator.set_faults({})


def load_dag_module(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"test_{name}", ROOT / "dags" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class RateAnswerer(threading.Thread):
    """Answers the batch's down-sampling prompt the way batch-metadata/post does, once it waits.

    Records the batch status seen while waiting, so tests can check WAIT_FOR_META_DATA_INPUT.
    """

    def __init__(self, batch_id: str, rate: float, timeout: float = 120) -> None:
        super().__init__(daemon=True)
        self.batch_id, self.rate, self.timeout = batch_id, rate, timeout
        self.status_while_waiting: str | None = None
        self.answered_task: str | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from airflow.utils.session import create_session

        from smgt import batch_status
        from smgt.metadata import answer_down_sampling_rate

        deadline = time.monotonic() + self.timeout
        try:
            while time.monotonic() < deadline:
                with create_session() as session:
                    snapshot = batch_status.load_batch(session, self.batch_id)
                    waiting = batch_status.waiting_rate_task(snapshot) if snapshot else None
                    if waiting:
                        self.status_while_waiting = batch_status.batch_status(snapshot)
                        task_id, map_index = waiting
                        # dag.test() runs tasks in this process: no worker exit to let settle.
                        answer_down_sampling_rate(
                            session, dag_id=snapshot.dag_id, run_id=snapshot.run_id, task_id=task_id,
                            map_index=map_index, rate=self.rate, settle_seconds=0,
                            user=SimpleAuthManagerUser(username="qa-manager", role="admin"),
                        )
                        self.answered_task = task_id
                        return
                time.sleep(0.5)
        except BaseException as exc:  # surfaced by the test
            self.error = exc


def snapshot_of(batch_id: str) -> Any:
    from airflow.utils.session import create_session

    from smgt import batch_status

    with create_session() as session:
        return batch_status.load_batch(session, batch_id)
