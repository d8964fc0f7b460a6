"""Fault injection: failed jobs, throttling (which boto3's retries ride out), delays; admin endpoint."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from smgt.local import Faults

from .local_gt_helpers import job_request, unique, wait_terminal


@pytest.fixture
def faults(emu):
    yield emu
    emu.set_faults({})


def _create(sm, demo, name: str) -> None:
    sm.create_labeling_job(**job_request(name, "VideoObjectTracking", demo["manifest_uri"],
                                         demo["label_configs"]["vehicle_label_category"]))


def test_matching_jobs_fail_with_the_configured_reason(faults, sm, demo):
    faults.set_faults(fail_jobs=[{"pattern": "doomed-*", "reason": "ClientError: the workforce went home"}])
    doomed, fine = unique("Doomed"), unique("fine")
    _create(sm, demo, doomed)
    _create(sm, demo, fine)
    desc = wait_terminal(sm, doomed)
    assert desc["LabelingJobStatus"] == "Failed"
    assert desc["FailureReason"] == "ClientError: the workforce went home"
    assert "LabelingJobOutput" not in desc
    assert wait_terminal(sm, fine)["LabelingJobStatus"] == "Completed"
    failed = sm.list_labeling_jobs(NameContains=doomed, StatusEquals="Failed")["LabelingJobSummaryList"]
    assert failed[0]["FailureReason"] == "ClientError: the workforce went home"


def test_throttling_raises_without_retries_and_is_survived_with_them(faults, sm, demo):
    name = unique("throttle")
    _create(sm, demo, name)
    wait_terminal(sm, name)
    no_retry = faults.client("sagemaker", config=Config(retries={"mode": "standard", "max_attempts": 1}))
    faults.set_faults(throttle_rate=1.0, throttle_actions=["DescribeLabelingJob"])
    with pytest.raises(ClientError) as err:
        no_retry.describe_labeling_job(LabelingJobName=name)
    assert err.value.response["Error"]["Code"] == "ThrottlingException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # Other actions are not throttled by this fault.
    assert no_retry.list_labeling_jobs(NameContains=name)["LabelingJobSummaryList"]

    # A share of calls throttled (kept small: standard retries back off for up to seconds).
    faults.set_faults(throttle_rate=0.25)
    before = faults.stats.snapshot()["throttled"].get("DescribeLabelingJob", 0)
    retrying = faults.client("sagemaker", config=Config(retries={"mode": "standard", "max_attempts": 10}))
    for _ in range(8):
        assert retrying.describe_labeling_job(LabelingJobName=name)["LabelingJobStatus"] == "Completed"
    assert faults.stats.snapshot()["throttled"]["DescribeLabelingJob"] > before


def test_delayed_completion(faults, sm, demo):
    faults.set_faults(delay_jobs=[{"pattern": "slow-*", "seconds": 0.6}])
    name = unique("slow")
    started = time.time()
    _create(sm, demo, name)
    time.sleep(0.2)
    assert sm.describe_labeling_job(LabelingJobName=name)["LabelingJobStatus"] == "InProgress"
    assert wait_terminal(sm, name)["LabelingJobStatus"] == "Completed"
    assert time.time() - started >= 0.6


def _http(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_admin_endpoint_sets_faults_and_reports_stats(faults, sm, demo):
    url = faults.endpoint_url
    status, body = _http(f"{url}/_smgt/faults", {"fail_jobs": [{"pattern": "admin-fail-*"}]})
    assert status == 200 and body["fail_jobs"][0]["pattern"] == "admin-fail-*"
    assert _http(f"{url}/_smgt/faults")[1] == body
    name = unique("admin-fail")
    _create(sm, demo, name)
    assert wait_terminal(sm, name)["LabelingJobStatus"] == "Failed"

    assert _http(f"{url}/_smgt/faults", {"throttle_rate": 2})[0] == 400
    assert _http(f"{url}/_smgt/faults", {"no_such_fault": 1})[0] == 400

    before = _http(f"{url}/_smgt/stats")[1]["calls"].get("DescribeLabelingJob", 0)
    for _ in range(5):
        sm.describe_labeling_job(LabelingJobName=name)
    stats = _http(f"{url}/_smgt/stats")[1]
    assert stats["calls"]["DescribeLabelingJob"] == before + 5
    assert stats["last_minute"]["DescribeLabelingJob"] >= 5
    # Passed-through calls are counted too (the job's workers come from the embedded Cognito); S3 goes
    # to the S3 store, never through the emulator.
    assert stats["calls"]["CreateLabelingJob"] >= 1 and stats["calls"].get("cognito-idp:ListUsersInGroup", 0) > 0
    assert not [call for call in stats["calls"] if call.startswith("s3:")]
    assert _http(f"{url}/_smgt/nothing")[0] == 404


def test_faults_file_round_trip(tmp_path):
    path = tmp_path / "faults.json"
    path.write_text(json.dumps({"fail_jobs": [{"pattern": "x-*", "reason": "r"}], "throttle_rate": 0.1,
                                "delay_jobs": [{"pattern": "y-*", "seconds": 2}]}))
    loaded = Faults.load(path)
    assert loaded.failure_for("X-1") == "r" and loaded.failure_for("z") is None
    assert loaded.delay_for("y-9") == 2.0 and loaded.throttle_rate == 0.1
    assert Faults.from_dict(loaded.to_dict()) == loaded
