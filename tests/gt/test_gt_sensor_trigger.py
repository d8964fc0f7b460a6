"""Operator, sensor (poke and deferrable) and trigger against the HTTP stand-in."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, PokeReturnValue
from airflow.sdk.exceptions import TaskDeferred
from airflow.triggers.base import TriggerEvent
from gt_standin import FakeGroundTruth, Fault, make_request

from smgt.gt.hooks import LabelingJobHook
from smgt.gt.operators import CreateLabelingJobOperator
from smgt.gt.sensors import (
    LabelingJobFailedError,
    LabelingJobSensor,
    default_deferrable,
    stop_labeling_job_quietly,
)
from smgt.gt.triggers import LabelingJobTrigger

JOB = "nb-track-vehicle"
OUTPUT = (
    "s3://smgt-workflows-123456789012-us-east-1-batch-processing/batches/nb-track/output/"
    f"{JOB}/manifests/output/output.manifest"
)


@pytest.fixture
def job(gt: FakeGroundTruth) -> str:
    LabelingJobHook().create_labeling_job(make_request(JOB))
    return JOB


def sensor(**kwargs: Any) -> LabelingJobSensor:
    return LabelingJobSensor(task_id="wait", job_name=JOB, **{"deferrable": False, "poke_interval": 0.01, **kwargs})


def first_event(trigger: LabelingJobTrigger) -> TriggerEvent:
    async def run() -> TriggerEvent:
        async for event in trigger.run():
            return event
        raise AssertionError("trigger yielded nothing")

    return asyncio.run(asyncio.wait_for(run(), timeout=60))


# -- operator -------------------------------------------------------------------------------
def test_operator_creates_then_adopts(gt: FakeGroundTruth) -> None:
    operator = CreateLabelingJobOperator(task_id="create", request=make_request(JOB))
    assert "request" in operator.template_fields
    assert (operator.aws_conn_id, operator.region_name) == ("aws_default", "us-east-1")  # from settings
    result = operator.execute({})
    assert result == {
        "LabelingJobName": JOB,
        "LabelingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:labeling-job/{JOB}",
        "OutputManifestS3Uri": OUTPUT,
        "adopted": False,
        # Who labels it, from the work team in the request (GT has private, vendor and public crowds).
        "Workforce": "private-crowd/smgt-workflows-first-level",
    }
    assert json.loads(json.dumps(result)) == result  # XCom-ready
    assert operator.execute({}) == {**result, "adopted": True}
    assert len(gt.jobs) == 1


def test_operator_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMGT_AWS_CONN_ID", "gt_conn")
    monkeypatch.setenv("SMGT_REGION", "eu-west-1")
    operator = CreateLabelingJobOperator(task_id="create", request={})
    assert (operator.aws_conn_id, operator.region_name) == ("gt_conn", "eu-west-1")
    explicit = CreateLabelingJobOperator(task_id="c2", request={}, aws_conn_id=None, region_name="us-west-2")
    assert (explicit.aws_conn_id, explicit.region_name) == (None, "us-west-2")


# -- sensor, poke mode ----------------------------------------------------------------------
@pytest.mark.parametrize("status", ["Initializing", "InProgress", "Stopping"])
def test_non_terminal_states_keep_poking(gt: FakeGroundTruth, job: str, status: str) -> None:
    gt.script(job, [status])
    assert sensor().poke({}) is False


def test_completed_returns_summary(gt: FakeGroundTruth, job: str) -> None:
    gt.script(job, ["Completed"])
    result = sensor().poke({})
    assert isinstance(result, PokeReturnValue) and result.is_done
    assert result.xcom_value == {
        "LabelingJobName": JOB,
        "LabelingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:labeling-job/{JOB}",
        "LabelingJobStatus": "Completed",
        "LabelCounters": {
            "TotalLabeled": 2,
            "HumanLabeled": 2,
            "MachineLabeled": 0,
            "FailedNonRetryableError": 0,
            "Unlabeled": 0,
        },
        "OutputManifestS3Uri": OUTPUT,
        "Workforce": "private-crowd/smgt-workflows-first-level",
    }


@pytest.mark.parametrize(
    ("status", "reason"),
    [("Failed", "ClientError: Input manifest s3://x/y.manifest not found"), ("Stopped", "Stopped by the requester")],
)
def test_failed_and_stopped_raise_with_reason(gt: FakeGroundTruth, job: str, status: str, reason: str) -> None:
    gt.script(job, [status], failure_reason=reason)
    with pytest.raises(LabelingJobFailedError, match=f"Labeling job {JOB} ended {status}: {reason}"):
        sensor().poke({})


def test_poke_mode_execute_waits_through_initializing_and_stopping(gt: FakeGroundTruth, job: str) -> None:
    gt.script(job, ["Initializing", "InProgress", "Completed"])
    assert sensor().execute({})["LabelingJobStatus"] == "Completed"
    gt.script(job, ["InProgress", "Stopping", "Stopped"], failure_reason="Stopped by the requester")
    with pytest.raises(LabelingJobFailedError, match="ended Stopped: Stopped by the requester"):
        sensor().execute({})


def test_throttled_describe_does_not_fail_the_sensor(gt: FakeGroundTruth, job: str) -> None:
    gt.script(job, ["Completed"])
    gt.inject(Fault("DescribeLabelingJob", "ThrottlingException", times=2))
    assert sensor().poke({}).is_done


def test_on_kill_stops_the_job(gt: FakeGroundTruth, job: str) -> None:
    gt.script(job, ["InProgress"])
    sensor().on_kill()
    assert gt.count("StopLabelingJob") == 1
    assert gt.jobs[job].statuses[0] == "Stopping"
    sensor(stop_job_on_kill=False).on_kill()
    assert gt.count("StopLabelingJob") == 1


def test_stop_quietly_never_raises(gt: FakeGroundTruth, job: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert stop_labeling_job_quietly(job, "aws_default", "us-east-1") is True
    assert stop_labeling_job_quietly("never-created", "aws_default", "us-east-1") is False
    gt.inject(Fault("StopLabelingJob", "AccessDeniedException", times=20))
    gt.script(job, ["InProgress"])
    assert stop_labeling_job_quietly(job, "aws_default", "us-east-1") is False


# -- sensor, deferrable ---------------------------------------------------------------------
def test_deferrable_follows_operators_default_deferrable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "true")
    assert default_deferrable() is True
    assert LabelingJobSensor(task_id="w", job_name=JOB).deferrable is True
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "false")
    assert LabelingJobSensor(task_id="w", job_name=JOB).deferrable is False
    assert LabelingJobSensor(task_id="w", job_name=JOB, deferrable=True).deferrable is True


def test_deferrable_defers_with_serializable_trigger(gt: FakeGroundTruth, job: str) -> None:
    gt.script(job, ["Initializing"])
    waiting = sensor(deferrable=True, poke_interval=45, timeout=timedelta(hours=1), botocore_config={"read_timeout": 30})
    with pytest.raises(TaskDeferred) as excinfo:
        waiting.execute({})
    deferred = excinfo.value
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout == timedelta(hours=1)
    trigger = deferred.trigger
    assert isinstance(trigger, LabelingJobTrigger)

    classpath, kwargs = trigger.serialize()
    assert classpath == "smgt.gt.triggers.LabelingJobTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert kwargs == {
        "job_name": JOB,
        "stop_job_on_kill": True,
        "waiter_delay": 45,
        "waiter_max_attempts": 80,  # 1 h / 45 s: gives up with the sensor's timeout
        "aws_conn_id": "aws_default",
        "region_name": "us-east-1",
        "botocore_config": {"read_timeout": 30},
    }
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert rebuilt.hook().conn_config.endpoint_url == gt.endpoint_url


def test_deferrable_does_not_defer_for_an_ended_job(gt: FakeGroundTruth, job: str) -> None:
    gt.script(job, ["Completed"])
    assert sensor(deferrable=True).execute({})["OutputManifestS3Uri"] == OUTPUT
    gt.script(job, ["Failed"], failure_reason="Lambda error")
    with pytest.raises(LabelingJobFailedError, match="Failed: Lambda error"):
        sensor(deferrable=True).execute({})


def test_execute_complete_validates_the_event(gt: FakeGroundTruth, job: str) -> None:
    waiting = sensor(deferrable=True)
    summary = {
        "LabelingJobName": JOB,
        "LabelingJobStatus": "Completed",
        "LabelCounters": {"TotalLabeled": 3},
        "OutputManifestS3Uri": OUTPUT,
    }
    assert waiting.execute_complete({}, {"status": "success", "job_name": JOB, **summary}) == summary

    failed = {**summary, "LabelingJobStatus": "Failed", "FailureReason": "bad manifest"}
    with pytest.raises(LabelingJobFailedError, match="ended Failed: bad manifest"):
        waiting.execute_complete({}, {"status": "error", "message": "x", **failed})
    with pytest.raises(AirflowException, match="event is None"):
        waiting.execute_complete({}, None)
    with pytest.raises(AirflowException, match="max attempts reached"):
        waiting.execute_complete(
            {}, {"status": "error", "message": "max attempts reached", **summary, "LabelingJobStatus": "InProgress"}
        )
    # The trigger could not describe at the end: the sensor looks itself.
    gt.script(job, ["Completed"])
    assert waiting.execute_complete({}, {"status": "success", "job_name": JOB})["LabelingJobStatus"] == "Completed"


# -- trigger against a real aiobotocore client ------------------------------------------------
def test_trigger_success_event_carries_counters(
    gt: FakeGroundTruth, job: str, caplog: pytest.LogCaptureFixture
) -> None:
    gt.script(job, ["Initializing", "InProgress", "Stopping", "InProgress", "Completed"])
    gt.inject(Fault("DescribeLabelingJob", "ThrottlingException"))
    caplog.set_level(logging.INFO)
    event = first_event(LabelingJobTrigger(job_name=job, waiter_delay=0, waiter_max_attempts=10))
    assert event.payload["status"] == "success"
    assert event.payload["job_name"] == job
    assert event.payload["LabelingJobStatus"] == "Completed"
    assert event.payload["LabelCounters"]["HumanLabeled"] == 2
    assert event.payload["OutputManifestS3Uri"] == OUTPUT
    assert json.loads(json.dumps(event.payload)) == event.payload
    # Every non-terminal poll was logged with status and counters; the throttled call was retried.
    progress = [r.getMessage() for r in caplog.records if "status:" in r.getMessage()]
    assert any("InProgress - {" in m and "TotalLabeled" in m for m in progress), progress
    assert gt.count("DescribeLabelingJob") >= 7  # create-time none; 5 scripted + 1 throttled + final


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_trigger_failure_event_carries_reason(gt: FakeGroundTruth, job: str, status: str) -> None:
    gt.script(job, ["InProgress", status], failure_reason="ClientError: could not read the manifest")
    event = first_event(LabelingJobTrigger(job_name=job, waiter_delay=0, waiter_max_attempts=10))
    assert event.payload["status"] == "error"
    assert event.payload["LabelingJobStatus"] == status
    assert event.payload["FailureReason"] == "ClientError: could not read the manifest"
    assert event.payload["message"] == f"Labeling job {job} ended {status}: ClientError: could not read the manifest"
    with pytest.raises(LabelingJobFailedError, match="could not read the manifest"):
        sensor(deferrable=True).execute_complete({}, event.payload)


def test_trigger_gives_up_after_max_attempts(gt: FakeGroundTruth, job: str) -> None:
    gt.script(job, ["InProgress"])
    event = first_event(LabelingJobTrigger(job_name=job, waiter_delay=0, waiter_max_attempts=2))
    assert event.payload["status"] == "error"
    assert "max attempts" in event.payload["message"] and "(the job is InProgress)" in event.payload["message"]


def test_trigger_reports_a_missing_job(gt: FakeGroundTruth) -> None:
    event = first_event(LabelingJobTrigger(job_name="never-created", waiter_delay=0, waiter_max_attempts=3))
    assert event.payload["status"] == "error"
    assert "ResourceNotFound" in event.payload["message"] and "LabelingJobStatus" not in event.payload
    with pytest.raises(AirflowException, match="ResourceNotFound"):
        sensor(deferrable=True).execute_complete({}, event.payload)


def test_trigger_on_kill_stops_the_job(gt: FakeGroundTruth, job: str) -> None:
    gt.script(job, ["InProgress"])
    asyncio.run(LabelingJobTrigger(job_name=job, stop_job_on_kill=False).on_kill())
    assert gt.count("StopLabelingJob") == 0
    asyncio.run(LabelingJobTrigger(job_name=job).on_kill())
    assert gt.jobs[job].statuses[0] == "Stopping"
    asyncio.run(LabelingJobTrigger(job_name="never-created").on_kill())  # logged, not raised
