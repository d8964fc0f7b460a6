"""batch/create's pre-flight against the real api-server: every rule's message in one 400 and nothing
created; then, in a batch that passed, a create GT refuses later fails at once and the batch shows
INTERNAL_ERROR naming the job and GT's message within a minute, with honest job statuses."""

from __future__ import annotations

import time
from typing import Any

import pytest
from api_helpers import BATCH_DAG_ID, new_batch_id, notebook_batch, wait_for
from preflight_cases import DEMO_CONFIG, DEMO_MANIFEST, defective_batch, missing_expectations, upload_fixtures

from smgt.settings import get_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def fixtures(stack) -> Any:
    return upload_fixtures(stack.emu.client("s3"))


def object_count(emu: Any) -> int:
    settings = get_settings()
    s3 = emu.client("s3")
    total = 0
    for bucket in (settings.input_bucket, settings.processing_bucket):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            total += page.get("KeyCount", 0)
    return total


def gt_jobs(emu: Any, batch_id: str) -> list[str]:
    found = emu.client("sagemaker").list_labeling_jobs(NameContains=batch_id, MaxResults=100)
    return [j["LabelingJobName"] for j in found["LabelingJobSummaryList"]]


def test_every_preflight_rule_is_a_400_with_its_message_and_nothing_is_created(stack, fixtures) -> None:
    batch_id = new_batch_id("pf")
    conf, expected = defective_batch(batch_id, fixtures)
    objects, runs = object_count(stack.emu), len(stack.dag_runs())

    resp = stack.session("admin").post(stack.api("batch/create"), json=conf, timeout=120)
    assert resp.status_code == 400, resp.text
    answer = resp.json()
    assert answer["message"] == f"invalid batch config: {len(answer['errors'])} problem(s)"
    assert missing_expectations(answer["errors"], expected) == []
    assert not [e for e in answer["errors"] if e.startswith("labelingJobs[0] ")]  # the valid job

    # Nothing was created: no DAG run, no GT job, no S3 object.
    assert not stack.run_exists(batch_id) and len(stack.dag_runs()) == runs
    assert gt_jobs(stack.emu, batch_id) == []
    assert object_count(stack.emu) == objects
    assert stack.session("admin").get(stack.api("batch/show"), params={"batchId": batch_id},
                                      timeout=30).status_code == 404


def test_a_valid_batch_is_created_with_the_preflights_summary(stack) -> None:
    batch_id = new_batch_id("pf-ok")
    conf = notebook_batch(batch_id)
    for job in conf["labelingJobs"][2:]:
        job["inputConfig"]["downSamplingRate"] = 100
    resp = stack.session("admin").post(stack.api("batch/create"), json=conf, timeout=120)
    assert resp.status_code == 200, resp.text
    summary = resp.json()["preflight"]
    assert summary["unchecked"] == [] and 0 < summary["calls"] <= 20 and summary["seconds"] < 30


def by_name(detail: dict[str, Any], batch_id: str) -> dict[str, dict[str, Any]]:
    return {j["labelingJobName"].removeprefix(f"{batch_id}-"): j
            for level in ("firstLevel", "secondLevel") for j in detail[level]["jobLevels"]}


def test_a_create_gt_refuses_fails_at_once_and_the_batch_says_why(stack, fixtures) -> None:
    """Level 1 runs 'first' (15 s); level 2 has 'gone' (its manifest is deleted after the pre-flight,
    so GT's CreateLabelingJob refuses it) and 'sibling' (runs long)."""
    emu, batch_id = stack.emu, new_batch_id("ff")
    s3 = emu.client("s3")
    bucket, key = fixtures.prefix[5:].split("/", 1)
    key = f"{key}/{batch_id}.manifest"
    s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": DEMO_MANIFEST[5:].split("/", 1)[1]})
    doomed = f"s3://{bucket}/{key}"

    def job(name: str, level: int, manifest: str) -> dict[str, Any]:
        return {"jobName": f"{batch_id}-{name}", "jobType": "BATCH", "jobModality": "VideoObjectTracking",
                "jobLevel": level, "labelCategoryConfigS3Uri": DEMO_CONFIG,
                "inputConfig": {"inputManifestS3Uri": manifest}}

    conf = {"batchId": batch_id, "labelingJobs": [
        job("first", 1, DEMO_MANIFEST), job("gone", 2, doomed), job("sibling", 2, DEMO_MANIFEST)]}
    emu.set_faults(delay_jobs=[{"pattern": f"{batch_id}-first", "seconds": 15},
                               {"pattern": f"{batch_id}-sibling", "seconds": 600}])
    admin = stack.session("admin")
    try:
        resp = admin.post(stack.api("batch/create"), json=conf, timeout=120)
        assert resp.status_code == 200, resp.text

        # While level 1 runs, level 2's jobs exist nowhere: PENDING, not WAIT_FOR_SMGT_RESPONSE.
        detail = wait_for(stack, batch_id, lambda d: by_name(d, batch_id)["first"]["batchStatus"] ==
                          "WAIT_FOR_SMGT_RESPONSE", 120, "level 1's job never ran")
        for name in ("gone", "sibling"):
            job_detail = by_name(detail, batch_id)[name]
            assert job_detail["batchStatus"] == "PENDING"
            assert job_detail["statusMessage"] == "not started: level 2 has not begun"
        assert gt_jobs(emu, f"{batch_id}-gone") == []
        s3.delete_object(Bucket=bucket, Key=key)  # after the pre-flight passed, before GT reads it

        detail = wait_for(stack, batch_id, lambda d: by_name(d, batch_id)["sibling"]["batchStatus"] ==
                          "WAIT_FOR_SMGT_RESPONSE", 180, "level 2 never started")
        level_two_started = time.monotonic()
        detail = wait_for(stack, batch_id, lambda d: d["status"] == "INTERNAL_ERROR", 60,
                          "the batch did not become INTERNAL_ERROR")
        print(f"\nINTERNAL_ERROR {time.monotonic() - level_two_started:.1f} s after level 2 started")
        jobs = by_name(detail, batch_id)
        gt_message = f"Cannot read the input manifest at {doomed}"
        assert jobs["gone"]["batchStatus"] == "FAILED"
        assert jobs["gone"]["failureReason"] == f"CreateLabelingJob failed: ValidationException: {gt_message}"
        assert f"job {batch_id}-gone (level 2) FAILED: CreateLabelingJob failed: ValidationException: " \
               f"{gt_message}" in detail["message"]
        assert jobs["sibling"]["batchStatus"] == "WAIT_FOR_SMGT_RESPONSE"  # still labeling
        assert gt_jobs(emu, f"{batch_id}-gone") == []

        # Tried once: GT's refusal is not retried although the task has retries.
        tis = admin.get(f"{stack.url}/api/v2/dags/{BATCH_DAG_ID}/dagRuns/{batch_id}/taskInstances",
                        params={"task_id_pattern": "level_2.labeling_job"}, timeout=30).json()["task_instances"]
        failed = [t for t in tis if t["state"] == "failed"]
        assert len(failed) == 1 and failed[0]["try_number"] == 1 and failed[0]["max_tries"] >= 1

        page = admin.get(stack.api("ui"), timeout=60).text
        # This batch's rows only: up to the next batch's header row (other tests' batches follow it).
        section = page.split(f'id="batch-{batch_id}"', 1)[1].split("</table>")[0].split('<tr><th colspan="7"')[0]
        assert gt_message in section and "not started" not in section
    finally:
        # Stop the batch (its sibling would label for 10 minutes) and clear the faults.
        admin.patch(f"{stack.url}/api/v2/dags/{BATCH_DAG_ID}/dagRuns/{batch_id}", json={"state": "failed"}, timeout=30)
        emu.set_faults()
