"""Batch status derived from Airflow's own state: DAG runs, task instances and their XComs.

There is no second store that could drift: `batch/show`, the UI page and the demo all read a
`BatchSnapshot` loaded here. `describe_batch` and `batch_status` are pure functions of a snapshot,
so they are unit-testable without a database.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from smgt.batch import (
    BATCH_STATUSES,
    COMPLETE,
    IN_PROGRESS,
    INTERNAL_ERROR,
    JOB_COMPLETE,
    JOB_FAILED,
    JOB_PENDING,
    JOB_RUNNING,
    REJECTION_XCOM_KEY,
    VALIDATION_FAIL,
    WAIT_FOR_META_DATA_INPUT,
    level_needs_rate,
    stop_statement,
)
from smgt.config import BatchConfig
from smgt.dag_factory import (
    FINALIZE_TASK_ID,
    JOB_TASK_ID,
    QUALITY_XCOM_KEY,
    RESOLVE_TASK_ID,
    job_task_id,
    level_group_id,
)
from smgt.gt.operators import ERROR_XCOM_KEY
from smgt.labeling_job import CREATED_XCOM_KEY, REWORK_XCOM_KEY
from smgt.metadata import RATE_TASK_ID, REFUSED_ANSWER_XCOM_KEY

BATCH_DAG_ID = "smgt_batch"
RECURRING_DAG_PREFIX = "smgt_recurring_"
LEVEL_KEYS = {1: "firstLevel", 2: "secondLevel", 3: "thirdLevel"}
WAITING_STATES = {"awaiting_input", "deferred"}
ACTIVE_STATES = {"queued", "scheduled", "running", "deferred", "up_for_retry", "up_for_reschedule",
                 "awaiting_input", "restarting"}
FAILED_STATES = {"failed", "upstream_failed"}


def level_key(level: int) -> str:
    return LEVEL_KEYS.get(level, f"level{level}")


@dataclass
class BatchSnapshot:
    """One batch as Airflow stores it."""

    batch_id: str
    dag_id: str
    run_id: str
    run_state: str  # queued | running | success | failed
    conf: dict[str, Any]
    # (task_id, map_index) -> state; and the XComs of the run: (task_id, map_index, key) -> value
    ti_states: dict[tuple[str, int], str] = field(default_factory=dict)
    xcoms: dict[tuple[str, int, str], Any] = field(default_factory=dict)
    # A run a person marked failed (stopped_by): {"by": user, "at": ISO time}, from Airflow's audit log.
    stopped: dict[str, str] | None = None

    def xcom(self, task_id: str, map_index: int = -1, key: str = "return_value") -> Any:
        return self.xcoms.get((task_id, map_index, key))

    @property
    def config(self) -> dict[str, Any]:
        """The validated config (resolve_batch's result), else the raw conf."""
        return self.xcom(RESOLVE_TASK_ID) or self.conf



def _rate_tasks_waiting(snapshot: BatchSnapshot) -> list[tuple[str, int]]:
    return sorted(
        key for key, state in snapshot.ti_states.items()
        if key[0].endswith(f".{RATE_TASK_ID}") and state in WAITING_STATES
    )


def waiting_rate_task(snapshot: BatchSnapshot) -> tuple[str, int] | None:
    """The down-sampling-rate task the batch waits on, if any."""
    if snapshot.run_state not in ("queued", "running"):
        return None
    waiting = _rate_tasks_waiting(snapshot)
    return waiting[0] if waiting else None


def rate_not_awaited_reason(snapshot: BatchSnapshot) -> str:
    """Why a batch that is not waiting for its rate does not take one now (batch-metadata/post's 409):
    it has ended, is about to ask, will ask once a level is done, was answered, or never asks."""
    status = batch_status(snapshot)
    if status != IN_PROGRESS:
        return f"status {status}"
    try:
        config = BatchConfig.model_validate(snapshot.config)
    except ValueError:  # not resolved yet
        return "status IN_PROGRESS; its config is being checked"
    answered = False
    for level in (level for level in config.levels if level > 1):
        state = snapshot.ti_states.get((f"{level_group_id(level)}.{RATE_TASK_ID}", -1))
        if state in ("running", "queued", "scheduled"):
            return "status IN_PROGRESS; it is about to ask for the rate: retry in a few seconds"
        answered |= state == "success"
        if state not in ("success", "skipped", *FAILED_STATES) and level_needs_rate(config, level):
            return f"status IN_PROGRESS; it asks for the rate once level {level - 1} is done"
    if answered:
        return "status IN_PROGRESS; its rate was already given"
    return "status IN_PROGRESS; it needs no rate: every chained job has its own, or there is none"


def batch_status(snapshot: BatchSnapshot) -> str:
    """SPEC section 3's batch status. A running batch in which a task has failed for good (no retry
    left, e.g. a CreateLabelingJob that GT refused) is INTERNAL_ERROR at once: its run can only end
    failed, even while sibling jobs still finish."""
    if snapshot.run_state == "success":
        return COMPLETE
    resolve_state = snapshot.ti_states.get((RESOLVE_TASK_ID, -1))
    if resolve_state in FAILED_STATES:
        # A rejected config leaves its problems; a resolve that failed otherwise (retries spent on
        # an unreachable AWS or Airflow API) is not the config's fault.
        rejected = snapshot.xcom(RESOLVE_TASK_ID, key=REJECTION_XCOM_KEY) is not None
        return VALIDATION_FAIL if rejected else INTERNAL_ERROR
    if snapshot.run_state == "failed":
        return INTERNAL_ERROR
    if any(state == "failed" for state in snapshot.ti_states.values()):
        return INTERNAL_ERROR
    return WAIT_FOR_META_DATA_INPUT if waiting_rate_task(snapshot) else IN_PROGRESS


def _job_rows(snapshot: BatchSnapshot) -> list[dict[str, Any]]:
    """Per job of the config: where it stands and where its files are."""
    config = snapshot.config if isinstance(snapshot.config, dict) else {}
    jobs = [j for j in config.get("labelingJobs") or [] if isinstance(j, dict)]
    outcome = snapshot.xcom(FINALIZE_TASK_ID) or snapshot.xcom(FINALIZE_TASK_ID, key="outcome") or {}
    outcome_jobs = {str(j.get("jobName", "")).lower(): j for j in outcome.get("jobs") or []}
    rows = []
    for job in jobs:
        name = str(job.get("jobName", ""))
        level = job.get("jobLevel") if isinstance(job.get("jobLevel"), int) else 1
        plans = snapshot.xcom(f"{level_group_id(level)}.plan_jobs") or []
        index = next((i for i, spec in enumerate(plans) if spec.get("job_name", "").lower() == name.lower()), None)
        inputs = job.get("inputConfig") if isinstance(job.get("inputConfig"), dict) else {}
        row: dict[str, Any] = {
            "jobName": name,
            "jobLevel": level,
            "status": JOB_PENDING,
            "labelAttributeName": job.get("labelAttributeName"),
            "labelCategoryS3Uri": job.get("labelCategoryConfigS3Uri"),
            "inputS3Uri": inputs.get("inputManifestS3Uri"),
            "outputS3Uri": None,
            "downSamplingRate": inputs.get("downSamplingRate"),
        }
        if index is None:
            finished = snapshot.run_state not in ("queued", "running")
            row["statusMessage"] = (f"not started: the batch ended before level {level} began" if finished
                                    else f"not started: level {level} has not begun")
        else:
            task_id = job_task_id(level)
            state = snapshot.ti_states.get((task_id, index))
            prepared = {k: snapshot.xcom(task_id, index, k)
                        for k in ("inputManifestS3Uri", "labelCategoryS3Uri", "downSamplingRate", "sampling")}
            created = snapshot.xcom(task_id, index, CREATED_XCOM_KEY) or {}
            collected = snapshot.xcom(task_id, index) or {}
            row["levelStarted"] = True
            row["inputS3Uri"] = prepared["inputManifestS3Uri"] or row["inputS3Uri"]
            row["labelCategoryS3Uri"] = prepared["labelCategoryS3Uri"] or row["labelCategoryS3Uri"]
            if prepared["downSamplingRate"] is not None:
                row["downSamplingRate"] = prepared["downSamplingRate"]
            if prepared["sampling"]:
                row["sampling"] = prepared["sampling"]
            row["outputS3Uri"] = collected.get("outputManifestS3Uri") or created.get("OutputManifestS3Uri")
            row["workforce"] = collected.get("workforce") or created.get("Workforce")
            error = snapshot.xcom(task_id, index, ERROR_XCOM_KEY) or {}
            rework = collected.get("rework") or snapshot.xcom(task_id, index, REWORK_XCOM_KEY)
            if isinstance(rework, dict):  # without the resume state (sent-back line numbers)
                row["rework"] = {**rework, "rounds": [{k: v for k, v in r.items() if k != "sentBackLines"}
                                                      for r in rework.get("rounds") or []]}
                if collected.get("effectiveOutputManifestS3Uri"):
                    row["effectiveOutputS3Uri"] = collected["effectiveOutputManifestS3Uri"]
            if collected:
                row["status"] = collected.get("status", JOB_COMPLETE)
                row["labelCounters"] = collected.get("labelCounters")
                quality = snapshot.xcom(task_id, index, QUALITY_XCOM_KEY)
                if isinstance(quality, dict):
                    row["qualityReport"] = quality
            elif state in FAILED_STATES:
                row["status"] = JOB_FAILED
                if not error.get("message"):
                    row["failureReason"] = "its task failed; see the task's log"
                elif error.get("operation") == "wait_for_job":  # says how the job ended
                    row["failureReason"] = error["message"]
                else:
                    row["failureReason"] = f"{error.get('operation', 'the task')} failed: {error['message']}"
            elif created:
                # Only a job CreateLabelingJob answered for (created or adopted) runs in GT.
                row["status"] = JOB_RUNNING
            else:
                row["statusMessage"] = _not_created_yet(state, error)
        final = outcome_jobs.get(name.lower())
        if final and final.get("status") not in (None, JOB_PENDING):
            row["status"] = final["status"]
            if final.get("failureReason"):
                row["failureReason"] = final["failureReason"]
        if row["status"] != JOB_PENDING:
            row.pop("statusMessage", None)
        rows.append(row)
    return rows


def _not_created_yet(state: str | None, error: dict[str, Any]) -> str:
    """Why a job of a level that has begun has no GT job yet (PENDING's statusMessage), from its
    task's state and the error its last try left."""
    if state == "up_for_retry" and error.get("operation") == "prepare_input":
        return f"not created yet: preparing its input failed ({error.get('message')}); retrying"
    if state == "up_for_retry" and error:
        return f"not created yet: CreateLabelingJob failed ({error.get('message')}); it will be retried"
    if state in ACTIVE_STATES:
        return "not created yet: preparing its input and calling CreateLabelingJob"
    return "not created yet: its level has begun"


def _level_status(rows: list[dict[str, Any]], waiting: bool) -> str:
    """A level's status from its jobs'. A level without jobs (the third of a two-level batch) has
    nothing to do: COMPLETE with 0 of 0 jobs, never PENDING on a batch that has ended."""
    statuses = {r["status"] for r in rows}
    if statuses <= {JOB_COMPLETE}:
        return COMPLETE
    if statuses & {JOB_FAILED, "STOPPED"}:
        return INTERNAL_ERROR
    if waiting:
        return WAIT_FOR_META_DATA_INPUT
    if JOB_RUNNING in statuses or any(r.get("levelStarted") for r in rows):
        return IN_PROGRESS
    return JOB_PENDING


def describe_batch(snapshot: BatchSnapshot, presign: Callable[[str], str | None] | None = None) -> dict[str, Any]:
    """The batch/show detail (SPEC section 7). `presign(s3_uri)` makes the *Url fields."""
    status = batch_status(snapshot)
    rows = _job_rows(snapshot)
    waiting = waiting_rate_task(snapshot)
    detail: dict[str, Any] = {
        "batchId": snapshot.batch_id,
        "status": status,
        "dagId": snapshot.dag_id,
        "runId": snapshot.run_id,
        "inputLabelingJobs": _input_jobs(snapshot),
    }
    message = _message(snapshot, status, rows)
    if message:
        detail["message"] = message
    quality = snapshot.xcom(FINALIZE_TASK_ID, key=QUALITY_XCOM_KEY)
    if isinstance(quality, dict):
        if quality.get("reportS3Uri"):
            detail["qualityReportS3Uri"] = quality["reportS3Uri"]
            detail["qualityReportS3Url"] = presign(quality["reportS3Uri"]) if presign else None
        if quality.get("error"):
            detail["qualityReportError"] = quality["error"]
    # First to third level always show (as in the reference); deeper levels when they have jobs.
    for level in range(1, max([r["jobLevel"] for r in rows] + [3]) + 1):
        level_rows = [r for r in rows if r["jobLevel"] == level]
        level_waiting = bool(waiting) and waiting[0] == f"{level_group_id(level)}.{RATE_TASK_ID}"
        detail[level_key(level)] = {
            "status": _level_status(level_rows, level_waiting),
            "numChildBatches": len(level_rows),
            "numChildBatchesComplete": sum(r["status"] == JOB_COMPLETE for r in level_rows),
            "jobLevels": [_job_level_entry(snapshot.batch_id, r, presign) for r in level_rows],
        }
    return detail


def _input_jobs(snapshot: BatchSnapshot) -> list[dict[str, Any]]:
    """The jobs the batch was given: the conf's, else (a template from the trigger form, a recurring
    batch file) the ones resolve_batch expanded, else none (not resolved yet, or rejected)."""
    given = (snapshot.conf or {}).get("labelingJobs")
    if isinstance(given, list) and given:
        return given
    resolved = snapshot.xcom(RESOLVE_TASK_ID)
    jobs = resolved.get("labelingJobs") if isinstance(resolved, dict) else None
    return jobs if isinstance(jobs, list) else []


def _job_level_entry(batch_id: str, row: Mapping[str, Any], presign: Callable[[str], str | None] | None) -> dict:
    def url(uri: str | None) -> str | None:
        return presign(uri) if (presign and uri) else None

    entry = {
        "batchId": batch_id,
        "batchStatus": row["status"],
        "labelingJobName": row["jobName"],
        "labelAttributeName": row["labelAttributeName"],
        "labelCategoryS3Uri": row["labelCategoryS3Uri"],
        "jobInputS3Uri": row["inputS3Uri"],
        "jobInputS3Url": url(row["inputS3Uri"]),
        "jobOutputS3Uri": row["outputS3Uri"],
        "jobOutputS3Url": url(row["outputS3Uri"]) if row["status"] == JOB_COMPLETE else None,
        "jobLevel": row["jobLevel"],
        "downSamplingRate": row.get("downSamplingRate"),
    }
    for extra in ("labelCounters", "sampling", "failureReason", "statusMessage", "workforce", "rework"):
        if row.get(extra) is not None:
            entry[extra] = row[extra]
    if row.get("effectiveOutputS3Uri"):  # the QA gate's re-work corrected it: later levels chain from this
        entry["effectiveOutputS3Uri"] = row["effectiveOutputS3Uri"]
        entry["effectiveOutputS3Url"] = url(row["effectiveOutputS3Uri"])
    quality = row.get("qualityReport")
    if quality:
        entry.update(_quality_entry(quality, url))
    return entry


def _quality_entry(quality: Mapping[str, Any], url: Callable[[str | None], str | None]) -> dict[str, Any]:
    """batch/show's fields of a job's quality report: where it is (S3 URI, presigned URL), or why there
    is none (`qualityReportError`), and its summary (`qualityReport`) with each flagged frame's
    thumbnail as a presigned URL (`thumbnailS3Url`)."""
    if quality.get("error"):
        return {"qualityReportError": quality["error"]}
    summary = dict(quality)
    summary["flaggedFrames"] = [
        {**frame, "thumbnailS3Url": url(frame.get("thumbnailS3Uri"))} for frame in quality.get("flaggedFrames") or []
    ]
    uri = quality.get("reportS3Uri")
    return {"qualityReportS3Uri": uri, "qualityReportS3Url": url(uri), "qualityReport": summary}


def _message(snapshot: BatchSnapshot, status: str, rows: list[dict[str, Any]]) -> str | None:
    if status == WAIT_FOR_META_DATA_INPUT:
        message = "waiting for downSamplingRate (batch-metadata/post or the Required Actions page)"
        task_id, map_index = waiting_rate_task(snapshot) or (None, -1)
        refused = snapshot.xcom(task_id, map_index, REFUSED_ANSWER_XCOM_KEY) if task_id else None
        if isinstance(refused, dict) and refused.get("problem"):
            message += f"; the last answer was refused: {refused['problem']}"
        return message
    if status == INTERNAL_ERROR:
        outcome = snapshot.xcom(FINALIZE_TASK_ID, key="outcome") or {}
        if outcome.get("message"):
            return outcome["message"]
        stopped = snapshot.stopped
        if stopped:
            # Its tasks were failed or skipped by the stop, not by what they did.
            return f"{stop_statement(stopped)}; its running labeling jobs were asked to stop"
        failed = [f"job {r['jobName']} (level {r['jobLevel']}) FAILED: {r.get('failureReason') or 'see its log'}"
                  for r in rows if r["status"] == JOB_FAILED]
        if failed and snapshot.run_state in ("queued", "running"):
            failed.append("jobs already running finish before the batch ends")
        # A task that is not a labeling job (a level's planning, finalize's publish) says what failed.
        failed += [f"{record['operation']} failed: {record['message']}"
                   for (task_id, index), state in snapshot.ti_states.items()
                   if state == "failed" and not task_id.endswith(f".{JOB_TASK_ID}")
                   and isinstance(record := snapshot.xcom(task_id, index, ERROR_XCOM_KEY), dict) and record.get("message")]
        return "; ".join(failed) if failed else "a batch task failed; see the run's task logs"
    if status == VALIDATION_FAIL:
        problems = snapshot.xcom(RESOLVE_TASK_ID, key=REJECTION_XCOM_KEY)
        if problems:
            return "the batch config was rejected before anything was created: " + "; ".join(problems)
        return "the batch config was rejected before anything was created; see resolve_batch's log"
    return None


# ---------------------------------------------------------------------------------------- loading


def is_batch_dag(dag_id: str) -> bool:
    return dag_id == BATCH_DAG_ID or dag_id.startswith(RECURRING_DAG_PREFIX)


def started_job_names(snapshot: BatchSnapshot) -> list[str]:
    """Jobs whose level was planned and that did not finish: their GT job may be running."""
    names = []
    for (task_id, _, key), plans in snapshot.xcoms.items():
        if key != "return_value" or not task_id.endswith(".plan_jobs"):
            continue
        job_task = task_id.removesuffix("plan_jobs") + JOB_TASK_ID
        for index, spec in enumerate(plans or []):
            if snapshot.xcom(job_task, index) is None:
                names.append(spec["job_name"])
                rework = snapshot.xcom(job_task, index, REWORK_XCOM_KEY) or {}
                names.extend(r["jobName"] for r in rework.get("rounds") or [] if r.get("status") == JOB_RUNNING)
    return names


# Airflow's audit-log events that change a run's state: marking it (one run, or in bulk; the UI's
# "Mark as failed" is the first) and clearing it or its tasks (a new attempt).
_MARK_RUN, _MARK_RUNS = "patch_dag_run", "bulk_dag_runs"
_CLEAR_EVENTS = ("clear_dag_run", "post_clear_task_instances")


def stopped_by(session: Any, dag_id: str, run_id: str) -> dict[str, str] | None:
    """Who marked the run failed and when ({"by", "at"}), from Airflow's audit log, where the UI and
    the REST API record `PATCH .../dagRuns/<run_id>` and the bulk `PATCH .../dagRuns` with their
    bodies. None when nobody did (the run failed on its own), or when the run was cleared or marked
    otherwise since (the last of these is what counts)."""
    import json

    from airflow.models.log import Log
    from sqlalchemy import select

    rows = session.scalars(select(Log).where(Log.event.in_((_MARK_RUN, _MARK_RUNS, *_CLEAR_EVENTS)),
                                             Log.dag_id.in_((dag_id, "~"))).order_by(Log.dttm.desc(), Log.id.desc()))
    for row in rows:
        try:
            extra = json.loads(row.extra or "{}")
        except ValueError:
            continue
        if not isinstance(extra, dict):
            continue
        if row.event in _CLEAR_EVENTS:
            if run_id in (row.run_id, extra.get("dag_run_id")):
                return None
            continue
        if row.event == _MARK_RUN:
            states = [extra.get("state")] if row.run_id == run_id else []
        else:
            states = [entity.get("state") for action in extra.get("actions") or [] if isinstance(action, dict)
                      and action.get("action") == "update" for entity in action.get("entities") or []
                      if isinstance(entity, dict) and entity.get("dag_run_id") == run_id
                      and entity.get("dag_id", dag_id) in (dag_id, None)]
        if states:
            return {"by": row.owner or "someone", "at": row.dttm.isoformat(timespec="seconds")} \
                if states[-1] == "failed" else None
    return None


def snapshot_of_run(session: Any, run: Any) -> BatchSnapshot:
    return _snapshot(session, run)


def _batch_dag_ids(session: Any) -> list[str]:
    from airflow.models.dag import DagModel
    from sqlalchemy import or_, select

    return list(session.scalars(select(DagModel.dag_id).where(
        or_(DagModel.dag_id == BATCH_DAG_ID, DagModel.dag_id.like(f"{RECURRING_DAG_PREFIX}%"))
    )))


def _batch_id_of(run: Any, resolved: Any) -> str:
    """What resolve_batch returned as batchId, else the conf's batchId, else the run id."""
    if isinstance(resolved, dict) and resolved.get("batchId"):
        return resolved["batchId"]
    conf = run.conf or {}
    return conf.get("batchId") if isinstance(conf.get("batchId"), str) else run.run_id


def _snapshot(session: Any, run: Any, batch_id: str | None = None) -> BatchSnapshot:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    states = {
        (ti.task_id, ti.map_index): (ti.state or "none")
        for ti in session.scalars(select(TaskInstance).where(
            TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id))
    }
    xcoms = {
        (x.task_id, x.map_index, x.key): XComModel.deserialize_value(x)
        for x in session.scalars(select(XComModel).where(
            XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id))
    }
    resolved = xcoms.get((RESOLVE_TASK_ID, -1, "return_value"))
    return BatchSnapshot(
        stopped=stopped_by(session, run.dag_id, run.run_id) if str(run.state) == "failed" else None,
        batch_id=batch_id or _batch_id_of(run, resolved),
        dag_id=run.dag_id,
        run_id=run.run_id,
        run_state=str(run.state),
        conf=dict(run.conf or {}),
        ti_states={k: str(v) for k, v in states.items()},
        xcoms=xcoms,
    )


def load_batch(session: Any, batch_id: str) -> BatchSnapshot | None:
    """The batch with this id: the smgt_batch run with run id = batchId, else a run whose config
    carries the batchId (runs triggered from the UI form, recurring batches)."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    run = session.scalars(select(DagRun).where(DagRun.dag_id == BATCH_DAG_ID, DagRun.run_id == batch_id)).first()
    if run is not None:
        return _snapshot(session, run, batch_id)
    for candidate in reversed(_all_runs(session)):  # the latest run of a re-run batch
        if _may_be(candidate, batch_id) and _listed_batch_id(session, candidate) == batch_id:
            return _snapshot(session, candidate, batch_id)
    return None


def batch_id_in_use(session: Any, batch_id: str, *, exclude: tuple[str, str] | None = None) -> bool:
    """Whether a run of the batch DAG or of a recurring batch DAG already holds `batch_id`: as its run
    id, or as the batchId of its conf or that its resolve_batch returned, unless its config was
    rejected before anything was created (the id stays free for a corrected run). `exclude` =
    (dag_id, run_id) leaves one run out (the run asking). Used by batch/create (409) and the
    trigger guard."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import or_, select

    query = select(DagRun.dag_id, DagRun.run_id).where(
        DagRun.run_id == batch_id,
        or_(DagRun.dag_id == BATCH_DAG_ID, DagRun.dag_id.startswith(RECURRING_DAG_PREFIX)),
    )
    if any(tuple(row) != exclude for row in session.execute(query)):
        return True
    return any(
        (run.dag_id, run.run_id) != exclude and _may_be(run, batch_id) and _held_batch_id(session, run) == batch_id
        for run in _all_runs(session)
    )


def _all_runs(session: Any) -> list[Any]:
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    return list(session.scalars(
        select(DagRun).where(DagRun.dag_id.in_(_batch_dag_ids(session))).order_by(DagRun.id)
    ))


def _may_be(run: Any, batch_id: str) -> bool:
    """False when `run` can neither hold nor be listed under `batch_id`, read from the run alone: its
    conf names another batchId (resolve_batch returns the conf's), and its run id is not this one."""
    conf_id = (run.conf or {}).get("batchId")
    return not (isinstance(conf_id, str) and conf_id and conf_id != batch_id and run.run_id != batch_id)


def _held_batch_id(session: Any, run: Any) -> str | None:
    """The batchId `run` holds (batch_id_in_use); None when its config was rejected before anything
    was created and its run id is not that batchId."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    conf = run.conf or {}
    if run.dag_id == BATCH_DAG_ID and conf.get("batchId") == run.run_id:
        return run.run_id  # batch/create, --run-id: the run id holds the batchId whatever became of it
    # A recurring batch, a form run whose batchId resolve_batch generated from its template, or a
    # run with a run id of its own (REST API, CLI).
    rows = {row.key: row for row in session.scalars(select(XComModel).where(
        XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id, XComModel.task_id == RESOLVE_TASK_ID,
        XComModel.key.in_(("return_value", REJECTION_XCOM_KEY))))}
    if REJECTION_XCOM_KEY in rows:
        return None
    return _batch_id_of(run, XComModel.deserialize_value(rows["return_value"]) if "return_value" in rows else None)


def _listed_batch_id(session: Any, run: Any) -> str:
    """The id `run` is listed and found under: the batchId it holds; for a rejected run, its conf's
    batchId (so the person who typed it finds why), unless another run holds that id, then its run
    id (the batchId is the other batch's, often the very reason it was rejected)."""
    held = _held_batch_id(session, run)
    if held is not None:
        return held
    wanted = _batch_id_of(run, None)
    if wanted == run.run_id:  # no batchId in its conf (a recurring or form run): nothing to look up
        return wanted
    return run.run_id if batch_id_in_use(session, wanted, exclude=(run.dag_id, run.run_id)) else wanted


def run_status(session: Any, run: Any) -> str:
    """Status of a run without loading its XComs (for lists)."""
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    state = str(run.state)
    if state == "success":
        return COMPLETE
    rows = session.execute(select(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state).where(
        TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id,
        (TaskInstance.task_id == RESOLVE_TASK_ID) | TaskInstance.task_id.like(f"%.{RATE_TASK_ID}")
        | (TaskInstance.state == "failed"))).all()
    ti_states = {(task_id, index): str(s) for task_id, index, s in rows}
    xcoms: dict[tuple[str, int, str], Any] = {}
    if ti_states.get((RESOLVE_TASK_ID, -1)) in FAILED_STATES:
        from airflow.models.xcom import XComModel

        rejected = session.scalar(select(XComModel.key).where(
            XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id,
            XComModel.task_id == RESOLVE_TASK_ID, XComModel.key == REJECTION_XCOM_KEY))
        if rejected is not None:
            xcoms[(RESOLVE_TASK_ID, -1, REJECTION_XCOM_KEY)] = True
    snapshot = BatchSnapshot(batch_id="", dag_id=run.dag_id, run_id=run.run_id, run_state=state, conf={},
                             ti_states=ti_states, xcoms=xcoms)
    return batch_status(snapshot)


def list_batches(session: Any, *, limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """Batch ids by status (SPEC section 7), oldest first, `limit` runs from `offset`."""
    runs = _all_runs(session)
    page = runs[offset: offset + limit]
    result: dict[str, Any] = {status: [] for status in BATCH_STATUSES}
    for run in page:
        result[run_status(session, run)].append(_listed_batch_id(session, run))
    result["total"] = len(runs)
    result["limit"] = limit
    result["offset"] = offset
    if offset + limit < len(runs):
        result["nextOffset"] = offset + limit
    return result
