"""GT labeling-job state-change events: the emulator publishes them (EventBridge rule -> SQS, on moto)
and waiting triggers wake on them instead of polling (smgt.gt.events), with real aiobotocore
clients over HTTP against the emulator."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred
from gt_standin import FakeGroundTruth, make_request

from smgt.config import validate_batch_config
from smgt.gt import events
from smgt.gt.hooks import LabelingJobHook
from smgt.gt.requests import build_create_labeling_job_request
from smgt.gt.sensors import LabelingJobSensor
from smgt.gt.triggers import LabelingJobTrigger
from smgt.local import LocalGroundTruth
from smgt.local.emulator import EVENTS_QUEUE_NAME
from smgt.settings import LOCAL_ACCOUNT_ID, Settings

# The sample event of the AWS doc (https://docs.aws.amazon.com/sagemaker/latest/dg/sms-monitor-cloud-watch.html).
AWS_SAMPLE = {
    "version": "0", "id": "2b95e9c8-b2fe-ea54-46f4-5a034ca94a6d",
    "detail-type": "SageMaker Ground Truth Labeling Job State Change", "source": "aws.sagemaker",
    "account": "111122223333", "time": "2020-09-06T07:46:23Z", "region": "us-east-1",
    "resources": ["arn:aws:sagemaker:us-east-1:111122223333:labeling-job/My-Job-1"],
    "detail": {"LabelingJobStatus": "Completed"},
}
NO_FALLBACK = 600  # a fallback poll this slow cannot explain a hand-off within seconds


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGroundTruth]:
    from s3_store import seaweedfs_store

    with seaweedfs_store(tmp_path_factory.mktemp("gt-s3")) as store, LocalGroundTruth(
            port=0, task_seconds=0.05, seed=5, settings=Settings(), s3=store) as emulator:
        emulator.demo = emulator.upload_demo_data(n_frames=2)
        # moto's backends are per process: this queue still holds the unread events of every emulator
        # an earlier test module of this pytest run started (up to a hundred batches' jobs). A fresh
        # emulator process starts with an empty queue; so does this module.
        emulator.client("sqs").purge_queue(QueueUrl=emulator.events_queue_url)
        yield emulator


def create_job(emu: LocalGroundTruth, prefix: str, *, finish_after: float = 0.0) -> str:
    """A level-1 job on the demo video that completes `finish_after` seconds after its labels."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    if finish_after:
        faults = emu.fault_state.faults.to_dict()
        faults["delay_jobs"] = [*faults["delay_jobs"], {"pattern": name, "seconds": finish_after}]
        emu.set_faults(faults)
    config = validate_batch_config({"batchId": f"{name}-batch", "labelingJobs": [{
        "jobName": name, "jobType": "BATCH", "jobModality": "VideoObjectTracking", "labelAttributeName": "vehicle-ref",
        "labelCategoryConfigS3Uri": emu.demo["label_configs"]["vehicle_label_category"],
        "inputConfig": {"inputManifestS3Uri": emu.demo["manifest_uri"]}, "jobLevel": 1}]})
    request = build_create_labeling_job_request(
        config.labelingJobs[0], batch_id=config.batchId, settings=emu.settings,
        input_manifest_s3_uri=emu.demo["manifest_uri"],
        label_category_config_s3_uri=config.labelingJobs[0].labelCategoryConfigS3Uri)
    LabelingJobHook().create_labeling_job(request)
    return name


def wait(trigger: LabelingJobTrigger, timeout: float = 60) -> tuple[dict[str, Any], float]:
    """Run the trigger as the triggerer does (rebuilt from serialize()); its payload and end time."""
    _, kwargs = trigger.serialize()
    rebuilt = LabelingJobTrigger(**kwargs)

    async def first() -> dict[str, Any]:
        async for event in rebuilt.run():
            return event.payload
        raise AssertionError("trigger yielded nothing")

    payload = asyncio.run(asyncio.wait_for(first(), timeout=timeout))
    return payload, time.time()


def ended_at(emu: LocalGroundTruth, name: str) -> float:
    job = emu.jobs.get(name)
    assert job.status in ("Completed", "Failed", "Stopped"), job.status
    return job.modified


# -- the event ------------------------------------------------------------------------------------
def test_parse_event_reads_the_aws_sample_and_ignores_the_rest() -> None:
    assert events.parse_event(json.dumps(AWS_SAMPLE)) == ("my-job-1", "Completed")
    assert events.parse_event(json.dumps({**AWS_SAMPLE, "detail-type": "SageMaker Training Job State Change"})) is None
    assert events.parse_event(json.dumps({**AWS_SAMPLE, "resources": ["arn:aws:sagemaker:us-east-1:1:workteam/x"]})) is None
    assert events.parse_event("not json") is None
    built = events.state_change_event(AWS_SAMPLE["resources"][0], "Completed", region="us-east-1",
                                      account="111122223333", when=1599378383, event_id=AWS_SAMPLE["id"])
    assert built == AWS_SAMPLE


def test_emulator_publishes_what_gt_publishes(env: LocalGroundTruth) -> None:
    name = create_job(env, "published")
    # Until the job has ended (wait_idle joins for 30 s at most: not enough on a loaded CI machine).
    sagemaker = env.client("sagemaker")
    deadline = time.time() + 180
    while sagemaker.describe_labeling_job(LabelingJobName=name)["LabelingJobStatus"] != "Completed":
        assert time.time() < deadline, "the job did not complete"
        time.sleep(0.5)
    sqs = env.client("sqs")
    assert env.events_queue_url == f"{env.endpoint_url}/{LOCAL_ACCOUNT_ID}/{EVENTS_QUEUE_NAME}"
    assert env.env()["SMGT_EVENTS_QUEUE_URL"] == env.events_queue_url
    mine: list[dict[str, Any]] = []
    deadline = time.time() + 60  # the publisher thread puts it on the bus right after the change
    while not mine and time.time() < deadline:
        # Others' events (if any) are hidden for a while, so each receive reads further.
        for message in sqs.receive_message(QueueUrl=env.events_queue_url, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=1, VisibilityTimeout=120).get("Messages", []):
            body = json.loads(message["Body"])
            if body["resources"] == [env.jobs.get(name).arn]:
                mine.append(body)
                sqs.delete_message(QueueUrl=env.events_queue_url, ReceiptHandle=message["ReceiptHandle"])
    # One event, for Completed only (GT sends none for Initializing / InProgress), in AWS's shape.
    assert len(mine) == 1, mine
    event = mine[0]
    assert (event["source"], event["detail-type"], event["detail"]) == (
        "aws.sagemaker", "SageMaker Ground Truth Labeling Job State Change", {"LabelingJobStatus": "Completed"})
    assert event["region"] == "us-east-1" and event["version"] == "0" and event["id"]
    assert events.parse_event(json.dumps(event)) == (name.lower(), "Completed")


# -- the trigger ------------------------------------------------------------------------------------
def test_sensor_defers_with_the_events_queue_and_a_slow_fallback(
        gt: FakeGroundTruth, monkeypatch: pytest.MonkeyPatch) -> None:
    LabelingJobHook().create_labeling_job(make_request("ev-job"))
    gt.script("ev-job", ["InProgress"])
    queue = "http://127.0.0.1:1/123456789012/q"
    monkeypatch.setenv("SMGT_EVENTS_QUEUE_URL", queue)
    sensor = LabelingJobSensor(task_id="w", job_name="ev-job", deferrable=True, poke_interval=30,
                               timeout=timedelta(hours=2))
    with pytest.raises(TaskDeferred) as excinfo:
        sensor.execute({})
    classpath, kwargs = excinfo.value.trigger.serialize()
    assert kwargs["events_queue_url"] == queue and kwargs["fallback_delay"] == 300  # 10 polls, <= 300 s
    assert kwargs["waiter_delay"] == 30 and kwargs["waiter_max_attempts"] == 240  # gives up with the sensor
    assert LabelingJobTrigger(**kwargs).serialize() == (classpath, kwargs)
    # The triggerer's own environment does not change a serialized trigger.
    monkeypatch.delenv("SMGT_EVENTS_QUEUE_URL")
    assert LabelingJobTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert LabelingJobTrigger(job_name="j", waiter_delay=2, events_queue_url=queue).fallback_delay == 20
    # No queue configured: polls as before, serialized as before; polling asked for: stays polling.
    _, plain = LabelingJobTrigger(job_name="j", waiter_delay=30).serialize()
    assert "events_queue_url" not in plain and "fallback_delay" not in plain
    _, polling = LabelingJobTrigger(job_name="j", waiter_delay=30, events_queue_url="").serialize()
    monkeypatch.setenv("SMGT_EVENTS_QUEUE_URL", queue)
    assert polling["events_queue_url"] == "" and LabelingJobTrigger(**polling).events_queue_url == ""


def test_trigger_wakes_on_the_event_with_few_describes(env: LocalGroundTruth) -> None:
    name = create_job(env, "woken", finish_after=3)
    env.stats.reset()
    payload, done = wait(LabelingJobTrigger(job_name=name, waiter_delay=1, waiter_max_attempts=600,
                                            fallback_delay=NO_FALLBACK))
    assert payload["status"] == "success" and payload["job_name"] == name
    assert payload["LabelingJobStatus"] == "Completed" and payload["LabelCounters"]["TotalLabeled"] == 1
    assert payload["OutputManifestS3Uri"].endswith(f"/{name}/manifests/output/output.manifest")
    assert done - ended_at(env, name) < 2.5  # the hand-off, by the event (the fallback is 10 minutes)
    # One describe when the trigger starts, one when the event arrives (1 s polls would have made 3+).
    assert env.stats.calls["DescribeLabelingJob"] <= 2, env.stats.calls


def test_stop_event_gives_the_failure_payload(env: LocalGroundTruth) -> None:
    name = create_job(env, "stopped", finish_after=30)
    threading.Timer(1.5, lambda: LabelingJobHook().stop_labeling_job(name)).start()
    payload, done = wait(LabelingJobTrigger(job_name=name, waiter_delay=1, fallback_delay=NO_FALLBACK))
    assert payload["status"] == "error" and payload["LabelingJobStatus"] == "Stopped"
    assert payload["message"].startswith(f"Labeling job {name} ended Stopped")
    assert done - ended_at(env, name) < 2.5


def test_two_triggerers_each_get_their_job_event(env: LocalGroundTruth) -> None:
    """Two triggerer processes (two event loops, two dispatchers) on one queue: an event received by
    the wrong one is handed back, so both hand off within seconds, neither by its fallback poll."""
    names = [create_job(env, "pair", finish_after=1.5), create_job(env, "pair", finish_after=2.5)]
    results: dict[str, tuple[dict[str, Any], float]] = {}

    def triggerer(name: str) -> None:
        results[name] = wait(LabelingJobTrigger(job_name=name, waiter_delay=1, fallback_delay=NO_FALLBACK))

    threads = [threading.Thread(target=triggerer, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for name in names:
        payload, done = results[name]
        assert payload["LabelingJobStatus"] == "Completed"
        print(f"{name}: hand-off {done - ended_at(env, name):.2f} s")
        assert done - ended_at(env, name) < 10, name


def test_an_end_event_ahead_of_describe_makes_the_trigger_poll(env: LocalGroundTruth) -> None:
    """An event can reach the queue before DescribeLabelingJob shows the change (or be a duplicate
    of an old one): after an end event the trigger polls every waiter_delay until describe agrees."""
    name = create_job(env, "ahead", finish_after=3)
    sqs = env.client("sqs")
    own = sqs.create_queue(QueueName=f"ahead-{uuid.uuid4().hex[:6]}")["QueueUrl"]  # the real event goes elsewhere
    body = json.dumps(events.state_change_event(env.jobs.get(name).arn, "Completed", region="us-east-1",
                                                account=LOCAL_ACCOUNT_ID))
    threading.Timer(1.0, lambda: sqs.send_message(QueueUrl=own, MessageBody=body)).start()
    payload, done = wait(LabelingJobTrigger(job_name=name, waiter_delay=1, events_queue_url=own,
                                            fallback_delay=NO_FALLBACK))
    assert payload["LabelingJobStatus"] == "Completed"
    assert done - ended_at(env, name) < 2


def test_unreadable_queue_falls_back_to_polling(env: LocalGroundTruth) -> None:
    name = create_job(env, "outage", finish_after=2)
    missing = f"{env.endpoint_url}/{LOCAL_ACCOUNT_ID}/no-such-queue"
    payload, done = wait(LabelingJobTrigger(job_name=name, waiter_delay=1, events_queue_url=missing,
                                            fallback_delay=NO_FALLBACK))
    assert payload["LabelingJobStatus"] == "Completed"
    assert done - ended_at(env, name) < 3  # polled every waiter_delay while the queue was unreadable


# -- the dispatcher ---------------------------------------------------------------------------------
def test_dispatcher_deletes_what_it_used_and_hands_back_the_rest(env: LocalGroundTruth) -> None:
    sqs = env.client("sqs")
    url = sqs.create_queue(QueueName=f"dispatch-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    arn = f"arn:aws:sagemaker:us-east-1:{LOCAL_ACCOUNT_ID}:labeling-job/"
    for job in ("mine", "others"):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(events.state_change_event(
            arn + job, "Completed", region="us-east-1", account=LOCAL_ACCOUNT_ID)))
    sqs.send_message(QueueUrl=url, MessageBody="not an event")

    async def run(stale_after: float) -> events.EventDispatcher:
        dispatcher = events.dispatcher_for(url, aws_conn_id="aws_default", region_name="us-east-1",
                                           stale_after=stale_after)
        dispatcher.wait_seconds = 1
        with dispatcher.watch("Mine") as watch:
            assert await watch.wait(10) and watch.status == "Completed"
            await asyncio.sleep(0.5)  # let it delete / hand back
        return dispatcher

    first = asyncio.run(run(stale_after=900))
    assert (first.stats["woke"], first.stats["not_events"], first.stats["handed_back"]) == (1, 1, 1)
    # Only the other job's event is left, received once and visible again at once (for others).
    left = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                               MessageSystemAttributeNames=["ApproximateReceiveCount"]).get("Messages", [])
    assert [events.parse_event(m["Body"]) for m in left] == [("others", "Completed")]
    assert left[0]["Attributes"]["ApproximateReceiveCount"] == "2"
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=left[0]["ReceiptHandle"], VisibilityTimeout=0)

    # An event nobody waited on for longer than stale_after is dropped.
    async def drain() -> events.EventDispatcher:
        dispatcher = events.dispatcher_for(url, aws_conn_id="aws_default", region_name="us-east-1", stale_after=0)
        dispatcher.wait_seconds = 1
        with dispatcher.watch("nobody") as watch:
            await watch.wait(2)
        return dispatcher

    assert asyncio.run(drain()).stats["deleted_stale"] == 1
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1, VisibilityTimeout=0).get("Messages") is None
