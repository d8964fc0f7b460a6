"""The pre-flight through a DAG trigger: a run whose conf breaks every pre-flight rule fails at
resolve_batch with the same messages as batch/create, shows VALIDATION_FAIL with them, and creates
nothing (no GT job, no S3 object)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from dag_helpers import snapshot_of
from preflight_cases import defective_batch, missing_expectations, upload_fixtures

from smgt import batch_status
from smgt.batch import REJECTION_XCOM_KEY
from smgt.dag_factory import RESOLVE_TASK_ID
from smgt.settings import get_settings

pytestmark = pytest.mark.timeout(600)


def object_keys(emulator: Any) -> set[tuple[str, str]]:
    settings = get_settings()
    s3 = emulator.client("s3")
    return {(bucket, item["Key"]) for bucket in (settings.input_bucket, settings.processing_bucket)
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for item in page.get("Contents", [])}


def test_every_preflight_rule_fails_resolve_batch_with_its_message_and_nothing_is_created(emulator, batch_dag):
    fixtures = upload_fixtures(emulator.client("s3"))
    batch_id = f"pf-dag-{time.time_ns() % 10**10}"
    conf, expected = defective_batch(batch_id, fixtures)
    before = object_keys(emulator)

    run = batch_dag.test(run_conf=conf)

    assert run.state == "failed"
    snapshot = snapshot_of(batch_id)
    assert snapshot.ti_states[(RESOLVE_TASK_ID, -1)] == "failed"
    problems = snapshot.xcom(RESOLVE_TASK_ID, key=REJECTION_XCOM_KEY)
    assert missing_expectations(problems, expected) == []
    assert not [p for p in problems if p.startswith("labelingJobs[0] ")]  # the valid job is not named
    # batch/show's view of the run: VALIDATION_FAIL, with every problem in its message.
    assert batch_status.batch_status(snapshot) == "VALIDATION_FAIL"
    detail = batch_status.describe_batch(snapshot)
    assert all(p in detail["message"] for p in problems)
    # Nothing was created: no GT job of the batch, no object written, no task past resolve_batch ran.
    found = emulator.client("sagemaker").list_labeling_jobs(NameContains=batch_id, MaxResults=100)
    assert found["LabelingJobSummaryList"] == []
    assert object_keys(emulator) == before
    assert {task for (task, _), state in snapshot.ti_states.items() if state == "success"} == set()
