"""Airflow listener: a batch run that fails stops the Ground Truth jobs it started (SPEC section 3);
a scheduler that forks LocalExecutor workers preloads what the tasks import.

Airflow calls `on_dag_run_failed` both when the scheduler fails a run and when a user marks it
failed (UI or REST API), in the scheduler / api-server process, which may read the metadata DB.
The deferred sensors' triggers also stop their job when killed, but only once the triggerer runs
them; this catches the rest (a job created a moment ago, a trigger not yet picked up).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import sys
import threading
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)

LOCAL_EXECUTOR = "airflow.executors.local_executor.LocalExecutor"


@hookimpl
def on_starting(component: Any) -> None:
    """In `airflow scheduler` with the LocalExecutor (the embedded default): preload the tasks'
    imports (smgt.warm) before the executor forks its workers, from which every task process is
    forked. Airflow calls this before the job's type is set, hence the command line."""
    if sys.argv[1:2] == ["scheduler"] and forks_local_executor_workers():
        from smgt.warm import warm_task_parent

        warm_task_parent("the scheduler (LocalExecutor)")


def forks_local_executor_workers() -> bool:
    """Whether this Airflow's executors include the LocalExecutor and it forks its workers."""
    from airflow.executors.executor_loader import ExecutorLoader

    names = ExecutorLoader.get_executor_names()
    return multiprocessing.get_start_method() == "fork" and any(n.module_path == LOCAL_EXECUTOR for n in names)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    from smgt.batch_status import is_batch_dag

    dag_id, run_id = dag_run.dag_id, dag_run.run_id  # read now: the caller owns this ORM object
    if not is_batch_dag(dag_id):
        return
    # The caller (scheduler loop, API request) holds its own session and must not wait on AWS:
    # stop the jobs from a thread with a session of its own.
    threading.Thread(target=stop_started_jobs, args=(dag_id, run_id), name=f"smgt-stop-{run_id}",
                     daemon=True).start()


def stop_started_jobs(dag_id: str, run_id: str) -> list[str]:
    """Stop the GT jobs of a batch run that may still run; never raises (logs instead)."""
    from airflow import settings as airflow_settings
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from smgt.batch_status import snapshot_of_run, started_job_names, stopped_by
    from smgt.gt.sensors import stop_labeling_job_quietly
    from smgt.settings import get_settings

    try:
        # A session of our own, not Airflow's scoped one: closing it must not detach the
        # caller's objects.
        with Session(airflow_settings.engine) as session:
            run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).one()
            snapshot = snapshot_of_run(session, run)
            # Committed before the request that marks the run failed ran, unlike the run's new state.
            snapshot.stopped = stopped_by(session, dag_id, run_id)
        names = started_job_names(snapshot)
        settings = get_settings()
        stopped = [n for n in names if stop_labeling_job_quietly(n, settings.aws_conn_id, settings.region)]
    except Exception:
        log.exception("Could not stop the labeling jobs of %s/%s", dag_id, run_id)
        return []
    log.info("Batch run %s failed: asked Ground Truth to stop %s", run_id, stopped or "nothing")
    publish_failure(snapshot, stopped)
    return stopped


# The audit-log event that records a failure message this listener published (at most one per run).
FAILURE_PUBLISHED_EVENT = "smgt_batch_failure_published"


def publish_failure(snapshot: Any, stopped_jobs: list[str]) -> bool:
    """Publish the batch's INTERNAL_ERROR message (SPEC section 3) for a run that failed without
    finalize_batch publishing: marked failed by a person (errorType BATCH_STOPPED), or failed before
    finalize ran. Not when finalize published (its outcome or return value is in XCom), not for a
    config that was never resolved (rejected, or stopped before: no topic, no batch), and once per
    run: a run marked failed again publishes nothing more (Airflow's audit log keeps the record).
    Returns whether it published; never raises (logs instead)."""
    from airflow import settings as airflow_settings
    from airflow.models.log import Log
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from smgt.batch import INTERNAL_ERROR, publish_outcome, stop_statement
    from smgt.dag_factory import FINALIZE_TASK_ID, RESOLVE_TASK_ID
    from smgt.settings import get_settings

    config = snapshot.xcom(RESOLVE_TASK_ID)
    if not isinstance(config, dict) or snapshot.xcom(FINALIZE_TASK_ID, key="outcome") is not None \
            or snapshot.xcom(FINALIZE_TASK_ID) is not None:
        return False
    if snapshot.stopped:
        message = (f"{stop_statement(snapshot.stopped)}; "
                   f"asked Ground Truth to stop: {', '.join(stopped_jobs) or 'nothing (no job was running)'}")
    else:
        message = "the run failed before finalize_batch could publish its outcome; see the run's task logs"
    outcome = {"batchId": config.get("batchId") or snapshot.batch_id, "status": INTERNAL_ERROR, "message": message}
    error_type = "BATCH_STOPPED" if snapshot.stopped else "LABELING_JOB_FAILED"
    try:
        with Session(airflow_settings.engine) as session:
            if session.scalar(select(Log.id).where(Log.event == FAILURE_PUBLISHED_EVENT, Log.dag_id == snapshot.dag_id,
                                                   Log.run_id == snapshot.run_id).limit(1)) is not None:
                return False
            topic = publish_outcome(get_settings(), config.get("destinationSnsArn"), outcome, error_type)
            session.add(Log(event=FAILURE_PUBLISHED_EVENT, owner="smgt", dag_id=snapshot.dag_id, run_id=snapshot.run_id,
                            extra=json.dumps({"topic": topic, "errorType": error_type})))
            session.commit()
    except Exception:
        log.exception("Could not publish the failure of batch %s", outcome["batchId"])
        return False
    return True
