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


# Run in a process of its own: moto's backends live in the process, so an emulator started again in
# the same process would find what the first made even without the state file.
_FIRST_LIFE = """
import json, sys
from smgt.local import LocalGroundTruth
from smgt.local.emulator import S3Store
state_dir, store, topic_name, queue_name, gone_name = json.loads(sys.argv[1])
with LocalGroundTruth(port=0, seed=5, s3=S3Store(**store), state_dir=state_dir) as first:
    sns, sqs = first.client("sns"), first.client("sqs")
    topic = sns.create_topic(Name=topic_name)["TopicArn"]
    url = sqs.create_queue(QueueName=queue_name, Attributes={"VisibilityTimeout": "7"})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    # Attributes set after subscribing, and a subscription undone: calls naming a subscription ARN.
    kept = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)["SubscriptionArn"]
    sns.set_subscription_attributes(SubscriptionArn=kept, AttributeName="RawMessageDelivery", AttributeValue="true")
    other = sqs.create_queue(QueueName=queue_name + "-2")["QueueUrl"]
    other_arn = sqs.get_queue_attributes(QueueUrl=other, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.unsubscribe(SubscriptionArn=sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=other_arn)["SubscriptionArn"])
    sns.delete_topic(TopicArn=sns.create_topic(Name=gone_name)["TopicArn"])
    print(json.dumps([topic]))
"""


def test_topics_subscriptions_and_queues_survive_a_restart(tmp_path, s3_store, emu):
    """A batch's own SNS topic (destinationSnsArn) and the queue its owner subscribed are still there
    after a restart of the emulator, and deliver; a topic deleted before the restart stays deleted.
    Messages that were not received are not kept (moto keeps them in memory only)."""
    import json
    import subprocess
    import sys

    topic_name, queue_name, gone_name = unique("team-topic"), unique("team-queue"), unique("gone-topic")
    store = {"endpoint_url": s3_store.endpoint_url, "access_key": s3_store.access_key,
             "secret_key": s3_store.secret_key}
    done = subprocess.run([sys.executable, "-c", _FIRST_LIFE,
                           json.dumps([str(tmp_path), store, topic_name, queue_name, gone_name])],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    topic = json.loads(done.stdout.strip().splitlines()[-1])[0]

    second = _emulator(tmp_path, s3_store)
    try:
        sns, sqs = second.client("sns"), second.client("sqs")
        topics = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
        assert topic in topics and not any(t.endswith(f":{gone_name}") for t in topics)
        url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
        assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"] == {
            "VisibilityTimeout": "7"}
        subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
        assert [s["Endpoint"].rsplit(":", 1)[-1] for s in subscriptions] == [queue_name]  # the other was undone
        sns.publish(TopicArn=topic, Message="after the restart")
        got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5).get("Messages", [])
        assert [m["Body"] for m in got] == ["after the restart"]  # raw delivery, as set after subscribing
        # The default topic's subscription of bootstrap is not doubled by the replay.
        default = [s for s in sns.list_subscriptions()["Subscriptions"]
                   if s["TopicArn"] == SETTINGS.default_sns_topic_arn]
        assert len(default) == 1, default
    finally:
        second.stop()
