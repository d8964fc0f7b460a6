"""What the batch DAG's tasks do, as plain functions (SPEC sections 3 and 6).

The DAG file only wires tasks; everything here takes its clients and settings as arguments, so it
is unit-testable without Airflow running. Where a batch's files go:

    s3://{processing_bucket}/{processing_prefix}/{batchId}/inputs/{jobName}/   chained inputs, configs
    s3://{processing_bucket}/{processing_prefix}/{batchId}/output/{jobName}/   Ground Truth's output
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from smgt.config import BatchConfig, BatchConfigError, LabelingJobConfig, validate_batch_config
from smgt.gt.requests import (
    build_create_labeling_job_request,
    label_category_config_for_job,
    ui_template,
)
from smgt.manifests import Storage, build_chained_manifest
from smgt.settings import Settings

# Batch statuses (SPEC section 3; names kept from the reference so callers keep working).
IN_PROGRESS = "IN_PROGRESS"
WAIT_FOR_META_DATA_INPUT = "WAIT_FOR_META_DATA_INPUT"
COMPLETE = "COMPLETE"
INTERNAL_ERROR = "INTERNAL_ERROR"
VALIDATION_FAIL = "VALIDATION_FAIL"
BATCH_STATUSES = (IN_PROGRESS, WAIT_FOR_META_DATA_INPUT, COMPLETE, INTERNAL_ERROR, VALIDATION_FAIL)

# Job statuses (SPEC section 3's four, plus PENDING). WAIT_FOR_SMGT_RESPONSE only once GT answered
# CreateLabelingJob (the job exists and runs); PENDING: no GT job yet, either because its level has
# not begun or because its input is being prepared / CreateLabelingJob is being called or retried
# (batch/show's `statusMessage` says which). A create GT refused makes the job FAILED with GT's words.
JOB_RUNNING = "WAIT_FOR_SMGT_RESPONSE"
JOB_COMPLETE = "COMPLETE"
JOB_FAILED = "FAILED"
JOB_STOPPED = "STOPPED"
JOB_PENDING = "PENDING"

GT_STATUS_TO_JOB_STATUS = {
    "Initializing": JOB_RUNNING,
    "InProgress": JOB_RUNNING,
    "Stopping": JOB_RUNNING,
    "Completed": JOB_COMPLETE,
    "Failed": JOB_FAILED,
    "Stopped": JOB_STOPPED,
}


def batch_prefix(settings: Settings, batch_id: str) -> str:
    prefix = settings.processing_prefix.strip("/")
    return f"s3://{settings.processing_bucket}/{prefix + '/' if prefix else ''}{batch_id}"


def job_inputs_prefix(settings: Settings, batch_id: str, job_name: str) -> str:
    return f"{batch_prefix(settings, batch_id)}/inputs/{job_name}"


# `load_batch(preflight=...)` default: the pre-flight through the settings' AWS connection.
USE_CONNECTION = "connection"
# XCom key under which a rejected run's resolve task leaves every problem (shown by batch/show).
REJECTION_XCOM_KEY = "problems"


def load_batch(
    conf: Mapping[str, Any],
    *,
    run_id: str,
    settings: Settings,
    foreign_job_names: Callable[[Iterable[str]], Iterable[str]] | None = None,
    preflight: Callable[[BatchConfig], Iterable[str]] | str | None = USE_CONNECTION,
) -> BatchConfig:
    """Validate a run's conf (every rule of SPEC section 2), then pre-flight it, before anything
    is created.

    `foreign_job_names` returns names that exist in GT but do not belong to this batch (a retry of
    this task must not reject the jobs this same batch already created). `preflight` checks what the
    config names on AWS (`smgt.preflight`; by default through `settings.aws_conn_id`, None skips
    it). A rejected config raises BatchConfigError with every problem, which a running task also
    leaves in XCom (`REJECTION_XCOM_KEY`) for batch/show.
    """
    if preflight == USE_CONNECTION:
        from smgt.preflight import connection_preflight

        preflight = connection_preflight(settings)
    try:
        config = validate_batch_config(
            dict(conf),
            region=settings.region,
            max_job_level=settings.max_job_level,
            max_jobs=settings.max_jobs_per_batch,
            existing_job_names=foreign_job_names,
            preflight=preflight if callable(preflight) else None,
        )
    except BatchConfigError as exc:
        record_rejection(exc.problems)
        raise
    # Runs triggered through the batch API use run id = batchId; runs from the UI form or
    # dag.test get a generated id (manual__...), and are found by their conf's batchId instead.
    if config.batchId != run_id and "__" not in run_id:
        raise ValueError(
            f"batchId: {config.batchId!r} differs from the run id {run_id!r}; use the batchId as run id "
            f"(e.g. `airflow dags trigger smgt_batch --run-id {config.batchId} --conf ...`) or leave it generated"
        )
    return config


def record_rejection(problems: list[str]) -> None:
    """Leave a rejected config's problems in the running task's XCom; a no-op outside a task."""
    try:
        from airflow.sdk import get_current_context

        ti = get_current_context()["ti"]
    except Exception:  # not inside a running task (unit tests, the API)
        return
    ti.xcom_push(key=REJECTION_XCOM_KEY, value=list(problems))


def jobs_owned_by_others(hook: Any, names: Iterable[str], batch_id: str) -> list[str]:
    """Job names taken in GT by anything but this batch (GT names are unique forever)."""
    from botocore.exceptions import ClientError

    from smgt.gt.requests import TAG_BATCH_ID

    taken = []
    for name in names:
        try:
            description = hook.describe_labeling_job(name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("ResourceNotFound", "ValidationException"):
                continue
            raise
        tags = {t["Key"]: t["Value"] for t in description.get("Tags") or []}
        if tags.get(TAG_BATCH_ID) != batch_id:
            taken.append(name)
    return taken


def level_needs_rate(config: BatchConfig, level: int) -> bool:
    """True when a chained job of `level` has no down-sampling rate of its own (SPEC section 3)."""
    return any(
        j.inputConfig.chainFromJobName and j.inputConfig.downSamplingRate is None
        for j in config.jobs_at_level(level)
    )


def plan_level(
    config: BatchConfig,
    level: int,
    *,
    finished: Iterable[Mapping[str, Any]],
    posted_rate: float | None,
) -> list[dict[str, Any]]:
    """Arguments of one mapped `job` task group per job of `level`.

    `finished` are the collected results of earlier levels (`collect_output` XComs). A chained job
    whose parent did not complete cannot start: that is an error here, because the level barrier
    only lets a level start when every earlier job completed.
    """
    outputs = {r["jobName"].lower(): r for r in finished if r}
    specs = []
    for job in config.jobs_at_level(level):
        parent = config.parent(job)
        parent_info = None
        if parent is not None:
            result = outputs.get(parent.jobName.lower())
            if result is None or result.get("status") != JOB_COMPLETE:
                raise RuntimeError(f"job {job.jobName!r}: parent {parent.jobName!r} has not completed")
            parent_info = {
                "jobName": parent.jobName,
                "labelAttributeName": parent.label_attribute,
                "outputManifestS3Uri": result["outputManifestS3Uri"],
            }
        rate = job.inputConfig.downSamplingRate
        if parent is not None and rate is None:
            if posted_rate is None:
                # Only reachable when a batch file lost its rate after its DAG was parsed.
                raise RuntimeError(f"job {job.jobName!r}: inputConfig.downSamplingRate: no rate given or posted")
            rate = posted_rate
        specs.append(
            {
                "batch_id": config.batchId,
                "job_name": job.jobName,
                "job": job.model_dump(mode="json", exclude_none=True),
                "parent": parent_info,
                "rate": rate,
            }
        )
    return specs


def prepare_job_input(spec: Mapping[str, Any], *, settings: Settings, storage: Storage) -> dict[str, Any]:
    """Upload what the job needs and return its CreateLabelingJob request plus where things are.

    Idempotent: every object is written to a fixed key, and the sample is seeded from batch and job
    name, so a retry writes the same files.
    """
    job = LabelingJobConfig.model_validate(spec["job"])
    batch_id = spec["batch_id"]
    parent = spec.get("parent")
    prefix = job_inputs_prefix(settings, batch_id, job.jobName)
    sampling = None
    if parent is not None:
        manifest_uri = f"{prefix}/input.manifest"
        summary = build_chained_manifest(
            storage,
            parent["outputManifestS3Uri"],
            manifest_uri,
            media=job.modality.media,
            rate=spec.get("rate"),
            batch_id=batch_id,
            job_name=job.jobName,
            parent_label_attribute=parent["labelAttributeName"],
        )
        sampling = summary.to_dict()
    else:
        manifest_uri = job.inputConfig.inputManifestS3Uri

    parent_attribute = parent["labelAttributeName"] if parent else None
    category_uri = job.labelCategoryConfigS3Uri
    if job.modality.is_audit:
        # GT finds the labels to adjust through auditLabelAttributeName in the category config.
        category = label_category_config_for_job(job, storage.read_json(category_uri), parent_attribute)
        category_uri = f"{prefix}/label_category.json"
        storage.write_json(category_uri, category)

    template_uri = None
    if job.modality.ui_template is not None:
        template_uri = f"{prefix}/{job.modality.ui_template}"
        with storage.open_write(template_uri) as out:
            out.write(ui_template(job.jobModality, parent_label_attribute=parent_attribute).encode())

    request = build_create_labeling_job_request(
        job,
        batch_id=batch_id,
        settings=settings,
        input_manifest_s3_uri=manifest_uri,
        label_category_config_s3_uri=category_uri,
        ui_template_s3_uri=template_uri,
    )
    return {
        "jobName": job.jobName,
        "jobLevel": job.jobLevel,
        "labelAttributeName": job.label_attribute,
        "inputManifestS3Uri": manifest_uri,
        "labelCategoryS3Uri": category_uri,
        "downSamplingRate": spec.get("rate"),
        "sampling": sampling,
        "request": request,
    }


def collected_result(description: Mapping[str, Any]) -> dict[str, Any]:
    """The per-job result a finished job leaves in XCom (read by later levels and batch show)."""
    from smgt.gt.hooks import labeling_job_summary

    summary = labeling_job_summary(dict(description))
    return {
        "jobName": summary["LabelingJobName"],
        "status": GT_STATUS_TO_JOB_STATUS.get(summary["LabelingJobStatus"], JOB_RUNNING),
        "gtStatus": summary["LabelingJobStatus"],
        "labelCounters": summary["LabelCounters"],
        "outputManifestS3Uri": summary["OutputManifestS3Uri"],
        "failureReason": summary.get("FailureReason"),
        "workforce": summary.get("Workforce"),
    }


def batch_outcome(
    config: BatchConfig,
    *,
    results: Iterable[Mapping[str, Any]],
    started: Iterable[str],
    describe: Callable[[str], Mapping[str, Any] | None],
    errors: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Final status of a batch once no task runs any more.

    `results` are the collected results of completed jobs, `started` the names of jobs whose GT job
    may exist (their level was planned). For a started job with no result, GT itself says what
    happened (`describe`, None when the job was never created); `errors` (lower-case job name ->
    message) carries GT's answer to a create that failed, so a job never created is named with it.
    """
    by_name = {r["jobName"].lower(): dict(r) for r in results if r}
    started_names = {n.lower() for n in started}
    jobs: list[dict[str, Any]] = []
    failures: list[str] = []
    for job in config.labelingJobs:
        key = job.jobName.lower()
        result = by_name.get(key)
        if result is None and key in started_names:
            description = describe(job.jobName)
            if description is None:
                reason = (errors or {}).get(key) or "the labeling job was never created (see the create task's log)"
                result = {"jobName": job.jobName, "status": JOB_FAILED, "failureReason": reason}
            else:
                result = collected_result(description)
        if result is None:
            result = {"jobName": job.jobName, "status": JOB_PENDING}
        result["jobLevel"] = job.jobLevel
        if result["status"] in (JOB_FAILED, JOB_STOPPED, JOB_RUNNING):
            reason = result.get("failureReason") or f"ended {result.get('gtStatus', result['status'])}"
            failures.append(f"job {job.jobName} (level {job.jobLevel}) {result['status']}: {reason}")
        jobs.append(result)
    if not failures and any(j["status"] == JOB_PENDING for j in jobs):
        failures.append("the batch ended before every level ran (an earlier task failed; see its log)")
    status = INTERNAL_ERROR if failures else COMPLETE
    return {
        "batchId": config.batchId,
        "status": status,
        "message": "; ".join(failures) if failures else f"all {len(jobs)} labeling jobs completed",
        "jobs": jobs,
    }


def sns_message(outcome: Mapping[str, Any], batch_info: Mapping[str, Any] | None = None) -> str:
    """The message published on COMPLETE / INTERNAL_ERROR (SPEC section 3)."""
    message: dict[str, Any] = {
        "batchId": outcome["batchId"],
        "status": "SUCCESS" if outcome["status"] == COMPLETE else "FAILED",
        "message": outcome["message"],
    }
    if outcome["status"] == COMPLETE:
        message["batchInfo"] = dict(batch_info or {"jobs": outcome["jobs"]})
    else:
        message["errorType"] = "LABELING_JOB_FAILED"
        message["errorString"] = outcome["message"]
    return json.dumps(message, default=str)

