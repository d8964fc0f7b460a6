"""The GT client layer against the local Ground Truth emulator (smgt.local), end to end.

Same code path as production: requests from the builder, aws_default from `emu.env()` (endpoint
in the connection extra), the sensor's deferral, and the trigger's `run()` on aiobotocore.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred
from airflow.triggers.base import TriggerEvent

from smgt.config import validate_batch_config
from smgt.gt.hooks import LabelingJobConflictError, LabelingJobHook
from smgt.gt.operators import CreateLabelingJobOperator
from smgt.gt.requests import audit_label_category_config, build_create_labeling_job_request
from smgt.gt.sensors import LabelingJobFailedError, LabelingJobSensor
from smgt.gt.triggers import LabelingJobTrigger
from smgt.local import LocalGroundTruth
from smgt.settings import Settings


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGroundTruth]:
    from s3_store import seaweedfs_store

    # Short but non-zero phases so Initializing and InProgress are observed.
    with seaweedfs_store(tmp_path_factory.mktemp("gt-s3")) as store, LocalGroundTruth(
            port=0, task_seconds=0.3, init_seconds=0.2, seed=3, settings=Settings(), s3=store) as emulator:
        emulator.demo = emulator.upload_demo_data(n_frames=6)
        yield emulator


def jobs_for(emu: LocalGroundTruth, name: str) -> Any:
    configs = emu.demo["label_configs"]
    return validate_batch_config(
        {
            "batchId": f"{name}-batch",
            "labelingJobs": [
                {
                    "jobName": name,
                    "jobType": "BATCH",
                    "jobModality": "VideoObjectTracking",
                    "labelAttributeName": "vehicle-ref",
                    "labelCategoryConfigS3Uri": configs["vehicle_label_category"],
                    "inputConfig": {"inputManifestS3Uri": emu.demo["manifest_uri"]},
                    "jobLevel": 1,
                },
                {
                    "jobName": f"{name}-audit",
                    "jobType": "BATCH",
                    "jobModality": "VideoObjectTrackingAudit",
                    "labelAttributeName": "vehicle-audit-ref",
                    "labelCategoryConfigS3Uri": configs["vehicle_label_category_audit"],
                    "inputConfig": {"chainFromJobName": name},
                    "jobLevel": 2,
                },
            ],
        }
    )


def request_for(emu: LocalGroundTruth, job: Any, batch_id: str, manifest: str, category: str) -> dict[str, Any]:
    return build_create_labeling_job_request(
        job,
        batch_id=batch_id,
        settings=emu.settings,
        input_manifest_s3_uri=manifest,
        label_category_config_s3_uri=category,
    )


def run_deferred(sensor: LabelingJobSensor) -> dict[str, Any]:
    """execute() -> TaskDeferred -> trigger.run() -> execute_complete(event), as Airflow does."""
    with pytest.raises(TaskDeferred) as excinfo:
        sensor.execute({})
    trigger = excinfo.value.trigger
    assert isinstance(trigger, LabelingJobTrigger)
    classpath, kwargs = trigger.serialize()
    rebuilt = LabelingJobTrigger(**kwargs)  # what the triggerer runs: the deserialized trigger

    async def first() -> TriggerEvent:
        async for event in rebuilt.run():
            return event
        raise AssertionError("no event")

    event = asyncio.run(asyncio.wait_for(first(), timeout=60))
    return getattr(sensor, excinfo.value.method_name)({}, event.payload)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_level_one_then_audit_end_to_end(env: LocalGroundTruth) -> None:
    name = unique("veh")
    config = jobs_for(env, name)
    parent, audit = config.labelingJobs
    # Still running when the sensor first looks, however loaded the machine: the sensor must defer.
    env.set_faults({"delay_jobs": [{"pattern": name, "seconds": 10}]})

    request = request_for(env, parent, config.batchId, env.demo["manifest_uri"], parent.labelCategoryConfigS3Uri)
    created = CreateLabelingJobOperator(task_id="create", request=request).execute({})
    assert created["adopted"] is False
    # A retried task adopts its own job instead of failing on the taken name.
    assert CreateLabelingJobOperator(task_id="create", request=request).execute({})["adopted"] is True

    sensor = LabelingJobSensor(task_id="wait", job_name=name, deferrable=True, poke_interval=0.1)
    done = run_deferred(sensor)
    assert done["LabelingJobStatus"] == "Completed"
    assert done["OutputManifestS3Uri"] == created["OutputManifestS3Uri"]
    assert done["LabelCounters"]["TotalLabeled"] >= 1
    lines = env.s3.get_text(done["OutputManifestS3Uri"]).splitlines()
    assert lines and "vehicle-ref" in lines[0]

    # Level 2: the audit adjusts the parent's output, its category config names the parent's attribute.
    category = audit_label_category_config(env.s3.get_json(audit.labelCategoryConfigS3Uri), parent.label_attribute)
    category_uri = f"s3://{env.settings.processing_bucket}/tests/{audit.jobName}/category.json"
    env.s3.put_json(category_uri, category)
    audit_request = request_for(env, audit, config.batchId, done["OutputManifestS3Uri"], category_uri)
    assert audit_request["HumanTaskConfig"]["WorkteamArn"] == env.settings.second_level_workteam_arn
    CreateLabelingJobOperator(task_id="create_audit", request=audit_request).execute({})
    audited = LabelingJobSensor(task_id="wait_audit", job_name=audit.jobName, deferrable=False, poke_interval=0.1)
    result = audited.execute({})
    assert result["LabelingJobStatus"] == "Completed"
    assert "vehicle-audit-ref" in env.s3.get_text(result["OutputManifestS3Uri"])


def test_conflicting_job_of_same_name_is_rejected(env: LocalGroundTruth) -> None:
    name = unique("conflict")
    config = jobs_for(env, name)
    job = config.labelingJobs[0]
    request = request_for(env, job, config.batchId, env.demo["manifest_uri"], job.labelCategoryConfigS3Uri)
    LabelingJobHook().create_labeling_job(request)
    other = {**request, "LabelAttributeName": "car-ref"}
    with pytest.raises(LabelingJobConflictError, match="label attribute: existing 'vehicle-ref', requested 'car-ref'"):
        LabelingJobHook().create_labeling_job(other)


def test_failed_job_reason_reaches_the_task(env: LocalGroundTruth) -> None:
    name = unique("broken")
    env.set_faults({"fail_jobs": [{"pattern": f"{name}*", "reason": "ClientError: simulated bad manifest"}]})
    config = jobs_for(env, name)
    job = config.labelingJobs[0]
    request = request_for(env, job, config.batchId, env.demo["manifest_uri"], job.labelCategoryConfigS3Uri)
    CreateLabelingJobOperator(task_id="create", request=request).execute({})
    sensor = LabelingJobSensor(task_id="wait", job_name=name, deferrable=True, poke_interval=0.1)
    with pytest.raises(LabelingJobFailedError, match="ended Failed: ClientError: simulated bad manifest"):
        run_deferred(sensor)


def test_throttling_creates_one_job_and_still_completes(env: LocalGroundTruth) -> None:
    name = unique("throttled")
    # A third of the calls throttled; the job runs a few seconds so the sensor defers and the
    # trigger polls through throttling too.
    env.stats.reset()
    env.set_faults({"throttle_rate": 0.3, "delay_jobs": [{"pattern": f"{name}*", "seconds": 4}]})
    config = jobs_for(env, name)
    job = config.labelingJobs[0]
    request = request_for(env, job, config.batchId, env.demo["manifest_uri"], job.labelCategoryConfigS3Uri)
    CreateLabelingJobOperator(task_id="create", request=request).execute({})
    sensor = LabelingJobSensor(task_id="wait", job_name=name, deferrable=True, poke_interval=0.1)
    assert run_deferred(sensor)["LabelingJobStatus"] == "Completed"
    env.set_faults({})
    assert sum(env.stats.throttled.values()) > 0
    assert [j["LabelingJobName"] for j in LabelingJobHook().list_labeling_jobs(NameContains=name)] == [name]


def test_killing_the_wait_stops_the_job(env: LocalGroundTruth) -> None:
    name = unique("killed")
    env.set_faults({"delay_jobs": [{"pattern": f"{name}*", "seconds": 30}]})
    config = jobs_for(env, name)
    job = config.labelingJobs[0]
    request = request_for(env, job, config.batchId, env.demo["manifest_uri"], job.labelCategoryConfigS3Uri)
    CreateLabelingJobOperator(task_id="create", request=request).execute({})
    LabelingJobSensor(task_id="wait", job_name=name, deferrable=False).on_kill()
    sensor = LabelingJobSensor(task_id="wait", job_name=name, deferrable=False, poke_interval=0.1, timeout=20)
    with pytest.raises(LabelingJobFailedError, match="ended Stopped"):
        sensor.execute({})
