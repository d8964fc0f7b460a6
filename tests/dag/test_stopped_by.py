"""batch_status.stopped_by: who marked a run failed, read from Airflow's audit log (SQLite metadata DB)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from smgt.batch_status import stopped_by


@pytest.fixture
def audit(airflow_db: None):
    """Add audit-log rows for one run, a minute apart, as the api-server's action_logging writes them."""
    from airflow.models.log import Log
    from airflow.sdk import timezone
    from airflow.utils.session import create_session

    run_id = f"run-{uuid.uuid4().hex[:8]}"
    start = timezone.utcnow()

    def add(*rows: tuple[str, str | None, str, dict, str]) -> str:
        with create_session() as session:
            for i, (event, row_run_id, dag_id, extra, owner) in enumerate(rows):
                log = Log(event=event, owner=owner, dag_id=dag_id, run_id=row_run_id, extra=json.dumps(extra))
                log.dttm = start + timedelta(minutes=i)
                session.add(log)
        return run_id

    return run_id, add


def state(run_id: str) -> dict | None:
    from airflow.utils.session import create_session

    with create_session() as session:
        return stopped_by(session, "smgt_batch", run_id)


def test_a_run_marked_failed_names_who_did(audit):
    run_id, add = audit
    add(("patch_dag_run", run_id, "smgt_batch", {"state": "failed", "method": "PATCH"}, "qa-lead"))
    assert state(run_id)["by"] == "qa-lead"


def test_a_bulk_update_counts_for_the_runs_it_names(audit):
    run_id, add = audit
    body = {"actions": [{"action": "update", "entities": [{"dag_run_id": "other", "state": "success"},
                                                           {"dag_run_id": run_id, "state": "failed"}]}]}
    add(("bulk_dag_runs", None, "~", body, "admin"))
    assert state(run_id)["by"] == "admin"


@pytest.mark.parametrize("later", [
    ("clear_dag_run", "RUN", "smgt_batch", {"dry_run": False}),
    ("post_clear_task_instances", None, "smgt_batch", {"dag_run_id": "RUN", "dry_run": False}),
    ("patch_dag_run", "RUN", "smgt_batch", {"state": "queued"}),
])
def test_a_clear_or_another_mark_since_means_it_was_not_stopped(audit, later):
    run_id, add = audit
    event, row_run, dag_id, extra = later
    extra = {k: (run_id if v == "RUN" else v) for k, v in extra.items()}
    add(("patch_dag_run", run_id, "smgt_batch", {"state": "failed"}, "admin"),
        (event, run_id if row_run == "RUN" else row_run, dag_id, extra, "admin"))
    assert state(run_id) is None


def test_nobody_marked_it(audit):
    run_id, add = audit
    add(("patch_dag_run", "another-run", "smgt_batch", {"state": "failed"}, "admin"),
        ("trigger_dag_run", run_id, "smgt_batch", {}, "admin"))
    assert state(run_id) is None
