"""Honest job and batch statuses (smgt.batch_status) from Airflow's state, as pure functions of a snapshot.

A job is WAIT_FOR_SMGT_RESPONSE only once GT answered its CreateLabelingJob; before that it is
PENDING with a statusMessage saying why; a create GT refused makes it FAILED with GT's words and
the batch INTERNAL_ERROR at once, while its siblings still run.
"""

from __future__ import annotations

from typing import Any

from sample_batches import notebook_batch

from smgt.batch_status import BatchSnapshot, batch_status, describe_batch
from smgt.config import validate_batch_config

BATCH = "st-1"
JOB = "level_1.labeling_job"


def snapshot(ti_states: dict[tuple[str, int], str], xcoms: dict[tuple[str, int, str], Any] | None = None,
             run_state: str = "running") -> BatchSnapshot:
    config = validate_batch_config(notebook_batch(BATCH)).to_conf()
    plans = [{"job_name": f"{BATCH}-vehicle"}, {"job_name": f"{BATCH}-lane"}]
    base = {("resolve_batch", -1, "return_value"): config, ("level_1.plan_jobs", -1, "return_value"): plans}
    states = {("resolve_batch", -1): "success", ("level_1.plan_jobs", -1): "success", **ti_states}
    return BatchSnapshot(batch_id=BATCH, dag_id="smgt_batch", run_id=BATCH, run_state=run_state, conf=config,
                         ti_states=states, xcoms={**base, **(xcoms or {})})


def jobs(detail: dict[str, Any], level: str = "firstLevel") -> dict[str, dict[str, Any]]:
    return {j["labelingJobName"].removeprefix(f"{BATCH}-"): j for j in detail[level]["jobLevels"]}


def test_a_job_is_pending_until_gt_answered_its_create() -> None:
    created = {"LabelingJobName": f"{BATCH}-vehicle", "LabelingJobArn": "arn", "OutputManifestS3Uri": "s3://b/o"}
    snap = snapshot({(JOB, 0): "deferred", (JOB, 1): "running"}, {(JOB, 0, "created"): created})
    detail = describe_batch(snap)
    level1 = jobs(detail)
    assert level1["vehicle"]["batchStatus"] == "WAIT_FOR_SMGT_RESPONSE" and "statusMessage" not in level1["vehicle"]
    assert level1["lane"]["batchStatus"] == "PENDING"
    assert level1["lane"]["statusMessage"] == "not created yet: preparing its input and calling CreateLabelingJob"
    assert detail["firstLevel"]["status"] == "IN_PROGRESS"
    second = jobs(detail, "secondLevel")
    assert {j["batchStatus"] for j in second.values()} == {"PENDING"}
    assert second["vehicle-audit"]["statusMessage"] == "not started: level 2 has not begun"
    assert detail["secondLevel"]["status"] == "PENDING"
    assert detail["status"] == "IN_PROGRESS"


def test_a_create_being_retried_says_so_with_gts_words() -> None:
    error = {"operation": "CreateLabelingJob", "code": "ThrottlingException",
             "message": "ThrottlingException: Rate exceeded", "retryable": True}
    snap = snapshot({(JOB, 0): "up_for_retry", (JOB, 1): "running"}, {(JOB, 0, "error"): error})
    level1 = jobs(describe_batch(snap))
    assert level1["vehicle"]["batchStatus"] == "PENDING"
    assert level1["vehicle"]["statusMessage"] == (
        "not created yet: CreateLabelingJob failed (ThrottlingException: Rate exceeded); it will be retried")
    assert level1["lane"]["statusMessage"] == "not created yet: preparing its input and calling CreateLabelingJob"
    assert batch_status(snap) == "IN_PROGRESS"


def test_an_input_being_prepared_again_says_why() -> None:
    """The job's task prepares the input first: its error says which step failed."""
    error = {"operation": "prepare_input", "code": "ConnectTimeoutError",
             "message": "ConnectTimeoutError: Connect timeout on endpoint URL", "retryable": True}
    snap = snapshot({(JOB, 0): "up_for_retry"}, {(JOB, 0, "error"): error})
    assert jobs(describe_batch(snap))["vehicle"]["statusMessage"] == (
        "not created yet: preparing its input failed (ConnectTimeoutError: Connect timeout on endpoint URL); retrying")


def test_a_refused_create_fails_the_job_and_the_batch_at_once_naming_job_and_message() -> None:
    error = {"operation": "CreateLabelingJob", "code": "ValidationException",
             "message": "ValidationException: Cannot read the input manifest", "retryable": False}
    created = {"LabelingJobName": f"{BATCH}-lane", "LabelingJobArn": "arn", "OutputManifestS3Uri": "s3://b/o"}
    snap = snapshot({(JOB, 0): "failed", (JOB, 1): "deferred"},
                    {(JOB, 0, "error"): error, (JOB, 1, "created"): created})
    detail = describe_batch(snap)
    assert detail["status"] == "INTERNAL_ERROR"  # the run still runs: its sibling finishes first
    assert detail["message"] == (
        f"job {BATCH}-vehicle (level 1) FAILED: CreateLabelingJob failed: ValidationException: Cannot read the "
        "input manifest; jobs already running finish before the batch ends")
    level1 = jobs(detail)
    assert level1["vehicle"]["batchStatus"] == "FAILED"
    assert level1["vehicle"]["failureReason"] == "CreateLabelingJob failed: ValidationException: Cannot read the input manifest"
    assert level1["lane"]["batchStatus"] == "WAIT_FOR_SMGT_RESPONSE"
    assert detail["firstLevel"]["status"] == "INTERNAL_ERROR"


def test_a_rejected_config_shows_every_problem() -> None:
    problems = ["labelingJobs[0] 'x': inputConfig.inputManifestS3Uri: s3://b/m does not exist", "destinationSnsArn: y"]
    snap = snapshot({("resolve_batch", -1): "failed"}, {("resolve_batch", -1, "problems"): problems},
                    run_state="failed")
    snap.xcoms.pop(("resolve_batch", -1, "return_value"))
    snap.xcoms.pop(("level_1.plan_jobs", -1, "return_value"))
    detail = describe_batch(snap)
    assert detail["status"] == "VALIDATION_FAIL"
    assert detail["message"] == "the batch config was rejected before anything was created: " + "; ".join(problems)
    assert {j["batchStatus"] for j in jobs(detail).values()} == {"PENDING"}
    assert jobs(detail)["vehicle"]["statusMessage"] == "not started: the batch ended before level 1 began"


def test_a_job_that_ended_failed_in_gt_keeps_gts_reason() -> None:
    error = {"operation": "wait_for_job", "code": "LabelingJobFailedError",
             "message": f"Labeling job {BATCH}-vehicle ended Failed: ClientError: bad manifest", "retryable": True}
    created = {"LabelingJobName": f"{BATCH}-vehicle", "LabelingJobArn": "arn", "OutputManifestS3Uri": "s3://b/o"}
    snap = snapshot({(JOB, 0): "failed"}, {(JOB, 0, "created"): created, (JOB, 0, "error"): error})
    level1 = jobs(describe_batch(snap))
    assert level1["vehicle"]["batchStatus"] == "FAILED"
    assert level1["vehicle"]["failureReason"] == f"Labeling job {BATCH}-vehicle ended Failed: ClientError: bad manifest"


def test_a_level_without_jobs_has_nothing_to_do() -> None:
    running = describe_batch(snapshot({(JOB, 0): "running"}))
    ended = describe_batch(snapshot({}, run_state="success"))
    for detail in (running, ended):
        assert detail["thirdLevel"] == {"status": "COMPLETE", "numChildBatches": 0, "numChildBatchesComplete": 0,
                                        "jobLevels": []}
    assert running["secondLevel"]["status"] == "PENDING" and running["firstLevel"]["status"] == "IN_PROGRESS"
    assert ended["status"] == "COMPLETE"


def test_a_resolve_that_failed_without_rejecting_the_config_is_an_internal_error() -> None:
    # E.g. its retries spent while Airflow's API or AWS did not answer: not the config's fault.
    failed = snapshot({("resolve_batch", -1): "failed"}, run_state="failed")
    assert batch_status(failed) == "INTERNAL_ERROR"
    retrying = snapshot({("resolve_batch", -1): "up_for_retry"})
    assert batch_status(retrying) == "IN_PROGRESS"


def test_why_a_batch_not_waiting_takes_no_rate_names_the_reason() -> None:
    from smgt.batch_status import rate_not_awaited_reason

    rate = "level_2.down_sampling_rate"

    def reason(states: dict[tuple[str, int], Any], **kwargs: Any) -> str:
        return rate_not_awaited_reason(snapshot(states, **kwargs))

    assert reason({(JOB, 0): "deferred", (rate, -1): None}) == (
        "status IN_PROGRESS; it asks for the rate once level 1 is done")
    assert reason({(JOB, 0): "success", (rate, -1): "running"}) == (
        "status IN_PROGRESS; it is about to ask for the rate: retry in a few seconds")
    assert reason({(rate, -1): "success"}) == "status IN_PROGRESS; its rate was already given"
    assert reason({(rate, -1): "success"}, run_state="success") == "status COMPLETE"
    # The notebook batch gives its level-2 jobs no rate; with one of their own there is nothing to ask.
    config = validate_batch_config(notebook_batch(BATCH)).to_conf()
    for job in config["labelingJobs"]:
        if job["jobLevel"] == 2:
            job["inputConfig"]["downSamplingRate"] = 50
    snap = snapshot({(rate, -1): None})
    snap.xcoms[("resolve_batch", -1, "return_value")] = config
    assert rate_not_awaited_reason(snap) == (
        "status IN_PROGRESS; it needs no rate: every chained job has its own, or there is none")
