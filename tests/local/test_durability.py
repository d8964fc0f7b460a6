"""The emulator's state file: after a restart on the same state directory jobs, names and work teams
are as before, a running job resumes without labeling anything twice, and a stop in progress ends.

Each test runs two emulators one after the other on one state dir (the first stopped while work is
in flight, as a crash would leave it) and the session's SeaweedFS store.
"""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from smgt.local import LocalGroundTruth

from .local_gt_helpers import OUTPUT_PATH, SETTINGS, job_request, unique, wait_terminal


def _emulator(state_dir, s3_store, **kwargs) -> LocalGroundTruth:
    return LocalGroundTruth(port=0, seed=5, s3=s3_store, state_dir=state_dir, **kwargs).start()


def _wait(sm, name: str, check, timeout: float = 30.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        desc = sm.describe_labeling_job(LabelingJobName=name)
        if check(desc):
            return desc
        time.sleep(0.05)
    raise AssertionError(f"{name}: condition not met within {timeout}s; last {desc['LabelingJobStatus']}")


def test_jobs_names_and_teams_survive_a_restart(tmp_path, s3_store, demo, emu):
    first = _emulator(tmp_path, s3_store)
    name = unique("durable")
    try:
        sm = first.client("sagemaker")
        sm.create_labeling_job(**job_request(name, "VideoObjectTracking", demo["manifest_uri"],
                                             demo["label_configs"]["vehicle_label_category"]))
        before = wait_terminal(sm, name)
        team = sm.describe_workteam(WorkteamName="smgt-workflows-first-level")["Workteam"]
    finally:
        first.stop()
    assert before["LabelingJobStatus"] == "Completed"

    second = _emulator(tmp_path, s3_store)
    try:
        sm = second.client("sagemaker")
        after = sm.describe_labeling_job(LabelingJobName=name)
        for key in ("LabelingJobStatus", "LabelCounters", "LabelingJobOutput", "CreationTime", "LabelingJobArn",
                    "InputConfig", "HumanTaskConfig", "JobReferenceCode"):
            assert after[key] == before[key], key
        assert name in [j["LabelingJobName"] for j in sm.list_labeling_jobs(MaxResults=100)["LabelingJobSummaryList"]]
        # GT never frees a name, whatever its case; nor does a restart.
        with pytest.raises(ClientError) as taken:
            sm.create_labeling_job(**job_request(name.upper(), "VideoObjectTracking", demo["manifest_uri"],
                                                 demo["label_configs"]["vehicle_label_category"]))
        assert taken.value.response["Error"]["Code"] == "ResourceInUse"
        # Work teams are the same (same ARN, same Cognito pool and app client, re-created by bootstrap).
        again = sm.describe_workteam(WorkteamName="smgt-workflows-first-level")["Workteam"]
        assert again["WorkteamArn"] == team["WorkteamArn"]
        assert again["MemberDefinitions"] == team["MemberDefinitions"]
        idp = second.client("cognito-idp")
        cognito = again["MemberDefinitions"][0]["CognitoMemberDefinition"]
        assert idp.describe_user_pool(UserPoolId=cognito["UserPool"])["UserPool"]["Id"] == cognito["UserPool"]
        assert len(idp.list_users_in_group(UserPoolId=cognito["UserPool"], GroupName=cognito["UserGroup"])["Users"]) == 3
    finally:
        second.stop()


def test_a_running_job_resumes_without_labeling_anything_twice(tmp_path, s3_store, inputs, emu):
    s3 = emu.client("s3")
    name = unique("resume")
    request = job_request(name, "BoundingBox", inputs["images"], inputs["car"], template=inputs["template"])
    request["HumanTaskConfig"]["MaxConcurrentTaskCount"] = 1  # one data object per wave of 1 s
    first = _emulator(tmp_path, s3_store, task_seconds=1.0)
    try:
        sm = first.client("sagemaker")
        sm.create_labeling_job(**request)
        _wait(sm, name, lambda d: d["LabelCounters"]["HumanLabeled"] >= 1)
    finally:
        first.stop()  # mid-job: the thread ends, the state file keeps what was recorded
    prefix = OUTPUT_PATH.split("/", 3)[3] + f"{name}/annotations/worker-response/iteration-1/"

    def responses() -> dict[str, object]:
        listed = s3.list_objects_v2(Bucket=SETTINGS.processing_bucket, Prefix=prefix).get("Contents", [])
        return {o["Key"]: o["LastModified"] for o in listed}

    labeled_before = responses()
    assert 1 <= len(labeled_before) < 3

    second = _emulator(tmp_path, s3_store, task_seconds=0.2)
    try:
        sm = second.client("sagemaker")
        assert sm.describe_labeling_job(LabelingJobName=name)["LabelingJobStatus"] == "InProgress"
        done = wait_terminal(sm, name)
    finally:
        second.stop()
    assert done["LabelingJobStatus"] == "Completed"
    assert done["LabelCounters"]["HumanLabeled"] == 3 and done["LabelCounters"]["Unlabeled"] == 0
    after = responses()
    assert len(after) == 3  # one worker response per data object
    for key, modified in labeled_before.items():
        assert after[key] == modified, f"{key} was written again after the restart"
    bucket, key = done["LabelingJobOutput"]["OutputDatasetS3Uri"][5:].split("/", 1)
    lines = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()
    assert [line.count('"source-ref"') for line in lines] == [1, 1, 1]


def test_a_stop_in_progress_finishes_after_a_restart(tmp_path, s3_store, demo, emu):
    name = unique("stopping")
    first = _emulator(tmp_path, s3_store, task_seconds=30.0, stop_seconds=30.0)
    try:
        sm = first.client("sagemaker")
        sm.create_labeling_job(**job_request(name, "VideoObjectTracking", demo["manifest_uri"],
                                             demo["label_configs"]["vehicle_label_category"]))
        sm.stop_labeling_job(LabelingJobName=name)
        assert sm.describe_labeling_job(LabelingJobName=name)["LabelingJobStatus"] == "Stopping"
    finally:
        first.stop()
    second = _emulator(tmp_path, s3_store, stop_seconds=0.1)
    try:
        desc = wait_terminal(second.client("sagemaker"), name)
    finally:
        second.stop()
    assert desc["LabelingJobStatus"] == "Stopped"
