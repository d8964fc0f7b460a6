"""The down-sampling rate a batch waits for before a level >= 2 starts (SPEC section 3).

The wait is Airflow's own human-in-the-loop entry: it shows under Required Actions in the UI, can
be answered over the REST API, and on Airflow 3.3 parks the task in AWAITING_INPUT, which holds
neither a worker slot nor a trigger. `answer_down_sampling_rate` answers it through the same code
path as the REST API, so the batch API, the UI and the tests resume a batch the same way.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLEntryOperator
from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowSkipException

RATE_PARAM = "downSamplingRate"
RATE_TASK_ID = "down_sampling_rate"  # inside the level_N task group


class DownSamplingRateOperator(HITLEntryOperator):
    """Ask a QA manager for `downSamplingRate` when a chained job of this level has none.

    Skips itself (no prompt) when every chained job of the level carries its own rate. An answer
    that is not a rate (0 < rate <= 100) is refused and the question asked again.
    """

    def __init__(self, *, level: int, config_task_id: str, **kwargs: Any) -> None:
        # The DAG's own params (the batch config form) are handed to every task; the form of
        # this task is only the rate.
        kwargs.pop("params", None)
        super().__init__(
            subject=f"Down-sampling rate for level {level}",
            body=(
                f"Level {level - 1} is done. Enter the percentage of frames (video) or lines "
                f"(images) of each parent's output to send to the level-{level} audit jobs that "
                "have no rate of their own (0 < rate <= 100)."
            ),
            params={
                # Empty in the Required Actions form: the QA manager types the rate. A pre-filled
                # 100 was sent by whoever just pressed OK, every frame to the audits, also right
                # after a refused answer. Submitted empty, it is refused and asked again.
                # No "maximum": Airflow's form turns a number above it into the maximum without a
                # word (150 became 100 %); out of range, it is refused and asked again, saying why.
                RATE_PARAM: Param(
                    None,
                    type=["null", "number"],
                    exclusiveMinimum=0,
                    title="Down-sampling rate (%)",
                    description="0 < rate <= 100; e.g. 50 sends one frame of two",
                )
            },
            **kwargs,
        )
        self.level = level
        self.config_task_id = config_task_id

    def execute(self, context: Any) -> Any:
        from smgt.batch import level_needs_rate
        from smgt.config import BatchConfig

        config = BatchConfig.model_validate(context["ti"].xcom_pull(task_ids=self.config_task_id))
        if not level_needs_rate(config, self.level):
            raise AirflowSkipException(f"every chained job of level {self.level} has its own rate")
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" not in event:
            rate = (event.get("params_input") or {}).get(RATE_PARAM)
            problem = rate_problem(rate)
            if problem:
                # Airflow's Required Actions form stores any answer (it does not check the Param's
                # schema). Failing here would end the batch over a typo: refuse the answer, say why
                # (task log, batch/show), and ask again in the same try.
                by = (event.get("responded_by_user") or {}).get("name")
                self.log.warning("refused %s's answer: %s; asking again", by or "the", problem)
                context["ti"].xcom_push(key=REFUSED_ANSWER_XCOM_KEY, value={"by": by, "problem": problem})
                # Airflow's upsert keeps the first ask's subject and body: the batch page and
                # batch/show say why it asks again.
                return self.execute(context)
        result = super().execute_complete(context, event)
        return {RATE_PARAM: result["params_input"][RATE_PARAM]}


# XCom key of the rate task: the last answer it refused ({"by", "problem"}), shown by batch/show.
REFUSED_ANSWER_XCOM_KEY = "refused_answer"


def rate_problem(rate: Any) -> str | None:
    """Why `rate` is not a down-sampling rate (a number with 0 < rate <= 100), or None."""
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 100:
        return f"{RATE_PARAM}: must be a number with 0 < rate <= 100, got {rate!r}"
    return None


# How old an AWAITING_INPUT park must be before it is answered, at most. Airflow 3.3 race: the
# worker that parked the task exits a little later (seconds, under load) and its exit reaches the
# scheduler as an executor "success" event for the same try. If the answer already resumed the task
# and the scheduler queued it again, that stale event fails the new attempt ("task state changed
# externally"). A person never answers that fast; an API client polling for
# WAIT_FOR_META_DATA_INPUT does. Upstream: https://github.com/apache/airflow/issues/72716 and #71580
# (3.3.2 guards only a resumed TI still SCHEDULED), fixes proposed in #72767 and #71579; once
# released, this wait can go. Where the parking process can be watched (`parked_worker_settled`),
# the answer goes in as soon as the scheduler has taken that event, usually within a few seconds.
PARK_SETTLE_SECONDS = 12.0
# After the parking task process is gone (reaped by its supervisor), how long its worker may take to
# hand the workload's result to the executor (LocalExecutor: a queue put; Celery: the result
# backend's row). An allowance, not a bound: in between, the supervisor only finishes reading the
# task's sockets (up to [workers] socket_cleanup_timeout if another process holds them), uploads
# remote logs and flushes traces where configured; none of which this deployment does, and all of
# which took milliseconds here.
EXIT_REPORT_SECONDS = 2.0
SETTLE_POLL_SECONDS = 0.25


class RateNotAwaitedError(LookupError):
    """The batch is not waiting for a rate: it never asked, has not asked yet, or was answered."""


def _rate_task(session: Any, dag_id: str, run_id: str, task_id: str, map_index: int) -> tuple[Any, Any]:
    """The waiting task instance and its HITL detail, unless it has not asked or was answered."""
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select
    from sqlalchemy.orm import joinedload

    ti = session.scalar(
        select(TaskInstance)
        .where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id,
            TaskInstance.map_index == map_index,
        )
        .options(joinedload(TaskInstance.hitl_detail))
    )
    detail = ti.hitl_detail if ti is not None else None
    if detail is None:
        raise RateNotAwaitedError(f"batch {run_id!r} is about to wait for batch metadata but has not asked yet; retry shortly")
    if detail.response_received:
        raise RateNotAwaitedError(f"batch {run_id!r}: batch metadata was already given")
    return ti, detail


def _settle_wait(ti: Any, detail: Any, settle_seconds: float) -> float:
    from airflow._shared.timezones import timezone

    moments = [t for t in (getattr(ti, "updated_at", None), getattr(detail, "created_at", None)) if t is not None]
    if not moments:
        return 0.0
    return max(0.0, settle_seconds - (timezone.utcnow() - max(moments)).total_seconds())


def parking_process_gone(pid: int | None, hostname: str | None) -> bool:
    """Whether the task process `pid` on `hostname` has exited and been reaped.

    `pid` and `hostname` are a parked task instance's (`TaskInstance.pid`, `.hostname`: what its
    supervisor reported when the try started). Only answerable on that host: False elsewhere, and
    while the process runs or is a zombie (its supervisor, which reports the exit, has not collected
    it yet). A pid taken by another process since also answers False: a caller waits longer. It
    assumes one pid namespace per hostname (containers with their own pids need their own
    hostnames, as docker compose gives them).
    """
    import psutil
    from airflow.utils.net import get_hostname

    if not pid or not hostname or hostname != get_hostname():
        return False
    try:
        return psutil.Process(pid).status() == psutil.STATUS_DEAD
    except psutil.NoSuchProcess:
        return True


def _last_scheduling_decision(session: Any, dag_id: str, run_id: str) -> Any:
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    return session.scalar(
        select(DagRun.last_scheduling_decision).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
    )


def sole_live_scheduler(session: Any, job_id: int | None) -> bool:
    """Whether scheduler job `job_id` is the only one alive (`[scheduler]
    scheduler_health_check_threshold`, as Airflow's own health check counts them)."""
    from airflow._shared.timezones import timezone
    from airflow.configuration import conf
    from airflow.jobs.job import Job, JobState
    from sqlalchemy import select

    if job_id is None:
        return False
    alive_since = timezone.utcnow() - timedelta(seconds=conf.getint("scheduler", "scheduler_health_check_threshold"))
    alive = session.scalars(
        select(Job.id).where(
            Job.job_type == "SchedulerJob", Job.state == JobState.RUNNING, Job.latest_heartbeat > alive_since
        )
    ).all()
    return list(alive) == [job_id]


def parked_worker_settled(session: Any, ti: Any, settle_seconds: float, *, dag_id: str, run_id: str) -> bool:
    """Wait until answering the parked `ti` cannot race its worker's exit; True if a signal said so.

    Without a signal it waits until the park is `settle_seconds` old (PARK_SETTLE_SECONDS) and
    returns False. The signal: the parking process is gone (`parking_process_gone`), then the
    scheduler began examining the batch's DAG run (`DagRun.last_scheduling_decision`, set in each
    scheduler loop before the executors' events are read) after the worker had EXIT_REPORT_SECONDS
    to report the exit, and then once more. The second examination belongs to a later loop: the
    first loop has read and handled the stale event by then, and a resumed task can be queued no
    earlier than in that later loop. That holds for the scheduler whose executor ran the task
    (`TaskInstance.queued_by_job_id`) only: with another scheduler alive, the examinations may be
    its, and the time decides. The exit time is this host's clock and the examinations the
    scheduler's: hosts apart by more than EXIT_REPORT_SECONDS would need the 12 s. Ends each poll's
    read transaction (SQLite: a reader would hold up the scheduler's writes).
    """
    import time

    from airflow._shared.timezones import timezone
    from sqlalchemy.exc import OperationalError

    deadline = time.monotonic() + _settle_wait(ti, getattr(ti, "hitl_detail", None), settle_seconds)
    pid, hostname, queued_by = ti.pid, ti.hostname, ti.queued_by_job_id  # read once: a rollback expires the row
    try:
        watchable = sole_live_scheduler(session, queued_by)
    except OperationalError:  # e.g. SQLite busy: no signal, the time decides (it cannot fail)
        watchable = False
    report_by = first_examined = None
    while True:
        if watchable and report_by is None and parking_process_gone(pid, hostname):
            report_by = timezone.utcnow() + timedelta(seconds=EXIT_REPORT_SECONDS)
        if report_by is not None:
            try:
                examined = _last_scheduling_decision(session, dag_id, run_id)
            except OperationalError:
                examined = None
            if examined is not None and examined > report_by:
                if first_examined is not None and examined > first_examined:
                    session.rollback()
                    return True
                first_examined = first_examined or examined
        session.rollback()
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(SETTLE_POLL_SECONDS, left))


def _lock_hitl_detail(session: Any, ti_id: Any) -> None:
    """Hold the task's HITL row until this transaction ends, and forget what the session read before.

    Two answers at once must not both be taken (SPEC: 409 once metadata was given). Airflow's handler
    locks the row with SELECT ... FOR UPDATE, which SQLite (the embedded default) ignores, and checks
    `response_received` on what it read before locking. An UPDATE that changes nothing locks on
    both: the row on Postgres, the database's write lock on SQLite (a transaction's first statement,
    so it waits for a concurrent answer's commit instead of failing on a stale snapshot); the
    second answer then reads the first one's response and is refused.
    """
    from airflow.models.hitl import HITLDetail
    from sqlalchemy import update

    session.execute(update(HITLDetail).where(HITLDetail.ti_id == ti_id).values(ti_id=HITLDetail.ti_id)
                    .execution_options(synchronize_session=False))
    session.expire_all()


def answer_down_sampling_rate(
    session: Any,
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    rate: float,
    user: Any,
    settle_seconds: float = PARK_SETTLE_SECONDS,
) -> None:
    """Record `rate` as the answer of the batch's waiting rate task and resume it.

    Calls Airflow's HITL REST handler itself (response row, assignee check, resume of the parked
    task), so nothing here can drift from what the UI does. `user` is an auth-manager user.
    `settle_seconds` (see PARK_SETTLE_SECONDS) may be 0 only where no separate worker parked the
    task (dag.test()).
    """
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from fastapi import HTTPException

    ti, detail = _rate_task(session, dag_id, run_id, task_id, map_index)
    if _settle_wait(ti, detail, settle_seconds) > 0:
        parked_worker_settled(session, ti, settle_seconds, dag_id=dag_id, run_id=run_id)
    _lock_hitl_detail(session, ti.id)
    try:
        ti, detail = _rate_task(session, dag_id, run_id, task_id, map_index)  # as the lock found it
    except RateNotAwaitedError:
        session.rollback()  # releases the lock
        raise
    # HITLEntryOperator takes a single "OK" (its default); use whatever the task declared.
    chosen = list(detail.defaults or [])[:1] or list(detail.options or [])[:1]
    try:
        update_hitl_detail(
            dag_id=dag_id,
            dag_run_id=run_id,
            task_id=task_id,
            update_hitl_detail_payload=UpdateHITLDetailPayload(
                chosen_options=chosen, params_input={RATE_PARAM: rate}
            ),
            user=user,
            session=session,
            map_index=map_index,
        )
    except HTTPException as exc:
        if exc.status_code in (404, 409):
            raise RateNotAwaitedError(f"batch {run_id!r} is not waiting for batch metadata: {exc.detail}") from None
        raise
    session.commit()
