"""LabelingJobHook against the HTTP stand-in: idempotent create, retries, stop, list, waiter."""

from __future__ import annotations

import asyncio
import copy

import pytest
from botocore.exceptions import ClientError, WaiterError
from gt_standin import INPUT, FakeGroundTruth, Fault, make_request

from smgt.gt.hooks import WAITER_NAME, LabelingJobConflictError, LabelingJobHook, task_type_from_lambda_arn


@pytest.fixture
def hook(gt: FakeGroundTruth) -> LabelingJobHook:
    return LabelingJobHook(aws_conn_id="aws_default", region_name="us-east-1")


def test_clients_use_the_connection_endpoint(gt: FakeGroundTruth, hook: LabelingJobHook) -> None:
    assert hook.conn.meta.endpoint_url == gt.endpoint_url
    assert hook.conn.meta.config.retries["mode"] == "standard"

    async def async_endpoint() -> str:
        async with await hook.get_async_conn() as client:
            return client.meta.endpoint_url

    assert asyncio.run(async_endpoint()) == gt.endpoint_url


def test_connection_retry_config_wins(gt: FakeGroundTruth) -> None:
    hook = LabelingJobHook(aws_conn_id="aws_default", config={"retries": {"mode": "legacy", "max_attempts": 2}})
    assert hook.conn.meta.config.retries["mode"] == "legacy"


def test_create_describe_list(gt: FakeGroundTruth, hook: LabelingJobHook) -> None:
    created = hook.create_labeling_job(make_request())
    assert created == {
        "LabelingJobName": "nb-track-vehicle",
        "LabelingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:labeling-job/nb-track-vehicle",
        "adopted": False,
    }
    description = hook.describe_labeling_job("nb-track-vehicle")
    assert description["LabelingJobStatus"] == "Initializing"
    assert "ResponseMetadata" not in description
    hook.create_labeling_job(make_request("nb-track-lane"))
    jobs = hook.list_labeling_jobs()
    assert sorted(j["LabelingJobName"] for j in jobs) == ["nb-track-lane", "nb-track-vehicle"]
    assert gt.count("ListLabelingJobs") == 2  # one job per page: the paginator followed NextToken
    assert hook.labeling_job_exists("NB-TRACK-LANE") and not hook.labeling_job_exists("nope")


def test_adopts_existing_identical_job(gt: FakeGroundTruth, hook: LabelingJobHook) -> None:
    first = hook.create_labeling_job(make_request())
    again = hook.create_labeling_job(make_request())
    assert again == {**first, "adopted": True}
    assert len(gt.jobs) == 1
    assert gt.count("CreateLabelingJob") == 2


def test_adopts_job_whose_name_differs_only_in_case(gt: FakeGroundTruth, hook: LabelingJobHook) -> None:
    first, retry = make_request("Vehicle-Job"), make_request("vehicle-job")
    # Label attributes are JSON keys in the output, so their case matters: keep it the same.
    first["LabelAttributeName"] = retry["LabelAttributeName"] = "vehicle-ref"
    hook.create_labeling_job(first)
    adopted = hook.create_labeling_job(retry)
    assert adopted["adopted"] is True
    assert adopted["LabelingJobName"] == "Vehicle-Job"  # the job GT actually has
    assert len(gt.jobs) == 1


def test_rejects_same_name_with_different_config(gt: FakeGroundTruth, hook: LabelingJobHook) -> None:
    hook.create_labeling_job(make_request())
    other = copy.deepcopy(make_request(modality="VideoObjectDetection"))
    other["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"] = f"{INPUT}/other.manifest"
    with pytest.raises(LabelingJobConflictError) as excinfo:
        hook.create_labeling_job(other)
    message = str(excinfo.value)
    assert "'nb-track-vehicle' already exists" in message
    assert f"input manifest: existing '{INPUT}/MOT17-13-SDP.manifest', requested '{INPUT}/other.manifest'" in message
    assert "task type: existing 'VideoObjectTracking', requested 'VideoObjectDetection'" in message
    assert "label attribute" not in message  # both default to nb-track-vehicle-ref
    assert len(gt.jobs) == 1

    renamed = make_request()
    renamed["LabelAttributeName"] = "car-ref"
    with pytest.raises(LabelingJobConflictError, match="label attribute: existing 'nb-track-vehicle-ref', requested 'car-ref'"):
        hook.create_labeling_job(renamed)


def test_throttled_create_is_retried_once_created(gt: FakeGroundTruth, hook: LabelingJobHook) -> None:
    gt.inject(Fault("CreateLabelingJob", "ThrottlingException", times=2))
    created = hook.create_labeling_job(make_request())
    assert created["adopted"] is False
    assert gt.count("CreateLabelingJob") == 3  # two throttled attempts, then success
    assert len(gt.jobs) == 1


def test_lost_create_response_adopts_instead_of_duplicating(gt: FakeGroundTruth, hook: LabelingJobHook) -> None:
    # GT created the job but the answer was a 500: botocore retries, GT says ResourceInUse.
    gt.inject(Fault("CreateLabelingJob", "InternalFailure", status=500, after_applying=True))
    created = hook.create_labeling_job(make_request())
    assert created["adopted"] is True
    assert created["LabelingJobName"] == "nb-track-vehicle"
    assert gt.count("CreateLabelingJob") == 2
    assert len(gt.jobs) == 1


def test_other_create_errors_propagate(gt: FakeGroundTruth, hook: LabelingJobHook) -> None:
    gt.inject(Fault("CreateLabelingJob", "ResourceLimitExceeded"))
    with pytest.raises(ClientError, match="ResourceLimitExceeded"):
        hook.create_labeling_job(make_request())
    assert gt.count("CreateLabelingJob") == 1 and not gt.jobs


def test_throttled_describe_is_retried(gt: FakeGroundTruth, hook: LabelingJobHook) -> None:
    hook.create_labeling_job(make_request())
    gt.inject(Fault("DescribeLabelingJob", "ThrottlingException"))
    assert hook.describe_labeling_job("nb-track-vehicle")["LabelingJobName"] == "nb-track-vehicle"
    assert gt.count("DescribeLabelingJob") == 2


def test_stop_running_finished_and_missing_jobs(gt: FakeGroundTruth, hook: LabelingJobHook) -> None:
    hook.create_labeling_job(make_request())
    assert hook.stop_labeling_job("nb-track-vehicle") is True
    assert hook.describe_labeling_job("nb-track-vehicle")["LabelingJobStatus"] == "Stopping"
    assert hook.stop_labeling_job("nb-track-vehicle") is False  # already stopping
    hook.describe_labeling_job("nb-track-vehicle")  # -> Stopped
    assert hook.stop_labeling_job("nb-track-vehicle") is False
    assert hook.stop_labeling_job("never-created") is False

    hook.create_labeling_job(make_request("done"))
    gt.script("done", ["Completed"])
    assert hook.stop_labeling_job("done") is False


def test_sync_waiter_from_custom_json(gt: FakeGroundTruth, hook: LabelingJobHook) -> None:
    assert WAITER_NAME in hook.list_waiters()
    hook.create_labeling_job(make_request())
    gt.script("nb-track-vehicle", ["Initializing", "InProgress", "Stopping", "Completed"])
    hook.get_waiter(WAITER_NAME).wait(LabelingJobName="nb-track-vehicle", WaiterConfig={"Delay": 0, "MaxAttempts": 10})
    assert gt.count("DescribeLabelingJob") == 4

    hook.create_labeling_job(make_request("broken"))
    gt.script("broken", ["InProgress", "Failed"], failure_reason="ClientError: manifest not found")
    with pytest.raises(WaiterError, match="terminal failure"):
        hook.get_waiter(WAITER_NAME).wait(LabelingJobName="broken", WaiterConfig={"Delay": 0, "MaxAttempts": 10})


def test_task_type_from_lambda_arn() -> None:
    arn = "arn:aws:lambda:us-east-1:432418664414:function:PRE-Adjustment3DPointCloudObjectTracking"
    assert task_type_from_lambda_arn(arn) == "Adjustment3DPointCloudObjectTracking"
    assert task_type_from_lambda_arn(None) is None
