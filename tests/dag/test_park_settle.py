"""When batch-metadata/post may answer a parked rate task (smgt.metadata.parked_worker_settled):
once the parking process is gone and the scheduler has examined the run twice after it, and never
later than PARK_SETTLE_SECONDS. Real processes and a real metadata database; the scheduler's two
loops are this test writing DagRun.last_scheduling_decision, the column its loop writes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from smgt.metadata import EXIT_REPORT_SECONDS, parked_worker_settled, parking_process_gone


def _hostname() -> str:
    from airflow.utils.net import get_hostname

    return get_hostname()


def test_a_process_counts_as_gone_only_once_reaped_on_this_host() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        assert not parking_process_gone(proc.pid, "some-other-host")
        deadline = time.monotonic() + 30
        while not _is_zombie(proc.pid):  # exited, not collected by its parent (this test) yet
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert not parking_process_gone(proc.pid, _hostname())
    finally:
        proc.wait()
    assert parking_process_gone(proc.pid, _hostname())
    assert not parking_process_gone(None, _hostname())
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not parking_process_gone(running.pid, _hostname())
    finally:
        running.kill()
        running.wait()


def _is_zombie(pid: int) -> bool:
    import psutil

    return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def _scheduler_job(session: Any) -> int:
    """A live scheduler job row (running, heartbeat now), as `airflow scheduler` keeps one."""
    from airflow.jobs.job import Job, JobState

    job = Job()
    job.job_type, job.state = "SchedulerJob", JobState.RUNNING
    session.add(job)
    session.flush()
    return job.id


@pytest.fixture
def dag_run(airflow_db: None) -> Iterator[Any]:
    """A running DAG run and the only live scheduler (`scheduler_job_id`); other scheduler rows
    left by earlier tests are marked failed for the test's duration."""
    from airflow._shared.timezones import timezone
    from airflow.jobs.job import Job, JobState
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import update

    run = SimpleNamespace(dag_id="settle_test", run_id=f"settle-{uuid.uuid4().hex[:8]}")
    with create_session() as session:
        session.execute(update(Job).where(Job.job_type == "SchedulerJob").values(state=JobState.FAILED))
        session.add(DagRun(dag_id=run.dag_id, run_id=run.run_id, run_type="manual", state="running",
                           run_after=timezone.utcnow()))
        run.scheduler_job_id = _scheduler_job(session)
    yield run
    with create_session() as session:
        session.execute(update(Job).where(Job.job_type == "SchedulerJob").values(state=JobState.FAILED))


def _scheduler_loops(run: Any, delays: list[float]) -> threading.Thread:
    """Set the run's last_scheduling_decision after each delay, as the scheduler's loop does."""
    from airflow._shared.timezones import timezone
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import update

    def loops() -> None:
        for delay in delays:
            time.sleep(delay)
            with create_session() as session:
                session.execute(update(DagRun).where(DagRun.dag_id == run.dag_id, DagRun.run_id == run.run_id)
                                .values(last_scheduling_decision=timezone.utcnow()))

    thread = threading.Thread(target=loops, daemon=True)
    thread.start()
    return thread


def _parked(run: Any, pid: int | None, seconds_ago: float = 0.0) -> Any:
    """The parked task instance's columns parked_worker_settled reads."""
    from airflow._shared.timezones import timezone

    return SimpleNamespace(pid=pid, hostname=_hostname(), hitl_detail=None, queued_by_job_id=run.scheduler_job_id,
                           updated_at=timezone.utcnow() - timedelta(seconds=seconds_ago))


def _settle(run: Any, ti: Any, settle_seconds: float) -> tuple[bool, float]:
    from airflow.utils.session import create_session

    start = time.monotonic()
    with create_session() as session:
        settled = parked_worker_settled(session, ti, settle_seconds, dag_id=run.dag_id, run_id=run.run_id)
    return settled, time.monotonic() - start


def _gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_answers_after_the_second_examination_past_the_exit_report_time(dag_run: Any) -> None:
    # One loop before the worker could have reported, one after it, one more: settled at the third.
    loops = [0.5, EXIT_REPORT_SECONDS + 0.5, 1.0]
    parked = _parked(dag_run, _gone_pid())
    _scheduler_loops(dag_run, loops)
    settled, took = _settle(dag_run, parked, settle_seconds=30)
    assert settled
    assert sum(loops) - 0.1 <= took < sum(loops) + 3  # the loops' thread started a moment before the clock


def test_one_examination_after_the_exit_is_not_enough(dag_run: Any) -> None:
    _scheduler_loops(dag_run, [EXIT_REPORT_SECONDS + 0.5])  # the scheduler then stops examining the run
    settled, took = _settle(dag_run, _parked(dag_run, _gone_pid()), settle_seconds=EXIT_REPORT_SECONDS + 3)
    assert not settled and took >= EXIT_REPORT_SECONDS + 2.9


def test_a_parking_process_still_running_waits_the_whole_settle(dag_run: Any) -> None:
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _scheduler_loops(dag_run, [0.3] * 12)
        settled, took = _settle(dag_run, _parked(dag_run, running.pid, seconds_ago=1.0), settle_seconds=4.0)
    finally:
        running.kill()
        running.wait()
    assert not settled and 2.9 <= took < 4.5  # 4 s from the park, which was 1 s old


def test_with_another_scheduler_alive_the_time_decides(dag_run: Any) -> None:
    # Its loops may be the ones examining the run while the parking worker's scheduler has not
    # read the exit yet.
    from airflow.utils.session import create_session

    with create_session() as session:
        _scheduler_job(session)
    _scheduler_loops(dag_run, [0.3] * 15)
    settled, took = _settle(dag_run, _parked(dag_run, _gone_pid()), settle_seconds=4.0)
    assert not settled and took >= 3.9


def test_a_park_older_than_the_settle_is_answered_at_once(dag_run: Any) -> None:
    settled, took = _settle(dag_run, _parked(dag_run, None, seconds_ago=20.0), settle_seconds=12.0)
    assert not settled and took < 1.0
