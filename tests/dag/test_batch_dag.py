"""The batch DAG end to end with dag.test() against the local Ground Truth emulator."""

from __future__ import annotations

import json
import math
import threading
import time

import pytest
from dag_helpers import RateAnswerer, snapshot_of
from sample_batches import notebook_batch
from status_queue import batch_messages

from smgt import batch_status
from smgt.batch import CLAIM_NAME, batch_prefix
from smgt.config import parse_s3_uri
from smgt.settings import get_settings

pytestmark = pytest.mark.timeout(600)


def unique(prefix: str) -> str:
    return f"{prefix}-{time.time_ns() % 10**10}"


def nb_conf(emulator, batch_id: str, rate: float | None = None) -> dict:
    conf = notebook_batch(batch_id)
    for job in conf["labelingJobs"]:
        if "inputManifestS3Uri" in job["inputConfig"]:
            job["inputConfig"]["inputManifestS3Uri"] = emulator.demo["manifest_uri"]
        if rate is not None and "chainFromJobName" in job["inputConfig"]:
            job["inputConfig"]["downSamplingRate"] = rate
        if job["labelCategoryConfigS3Uri"]:
            name = job["labelCategoryConfigS3Uri"].rsplit("/", 1)[-1]
            job["labelCategoryConfigS3Uri"] = emulator.demo["label_configs"][name.removesuffix(".json")]
    return conf


def s3_json(emulator, uri: str):
    bucket, key = parse_s3_uri(uri)
    return json.loads(emulator.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def s3_lines(emulator, uri: str) -> list[dict]:
    bucket, key = parse_s3_uri(uri)
    body = emulator.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def gt_job_names(emulator, prefix: str) -> list[str]:
    jobs = emulator.client("sagemaker").list_labeling_jobs(NameContains=prefix, MaxResults=100)
    return sorted(j["LabelingJobName"] for j in jobs["LabelingJobSummaryList"])


def test_notebook_batch_waits_for_rate_then_completes(emulator, batch_dag):
    batch_id = unique("nb-wait")
    answerer = RateAnswerer(batch_id, rate=50)
    answerer.start()
    run = batch_dag.test(run_conf=nb_conf(emulator, batch_id))
    answerer.join(5)
    assert answerer.error is None, answerer.error
    assert answerer.status_while_waiting == "WAIT_FOR_META_DATA_INPUT"
    assert answerer.answered_task == "level_2.down_sampling_rate"
    assert run.state == "success"

    snapshot = snapshot_of(batch_id)
    detail = batch_status.describe_batch(snapshot)
    assert detail["status"] == "COMPLETE"
    assert detail["firstLevel"]["numChildBatchesComplete"] == 2
    second = detail["secondLevel"]
    assert second["status"] == "COMPLETE" and second["numChildBatches"] == 2
    assert detail["thirdLevel"]["numChildBatches"] == 0

    parent_frames = s3_json(emulator, emulator.demo["sequence_uri"])["frames"]
    for entry in second["jobLevels"]:
        assert entry["downSamplingRate"] == 50
        # Level-2 input: one line per sequence, each keeping ceil(n * 50 %) of its n frames.
        lines = s3_lines(emulator, entry["jobInputS3Uri"])
        assert len(lines) == 1
        sequence = s3_json(emulator, lines[0]["source-ref"])
        kept = sequence["frames"]
        assert len(kept) == math.ceil(len(parent_frames) / 2) == sequence["number-of-frames"]
        assert all(frame in parent_frames for frame in kept)
        # The audit's category config carries its parent's label attribute.
        parent_attr = "vehicle-ref" if "vehicle" in entry["labelingJobName"] else "lane-ref"
        assert parent_attr in lines[0]  # the parent's label reference is kept on the line
        assert s3_json(emulator, entry["labelCategoryS3Uri"])["auditLabelAttributeName"] == parent_attr
        assert entry["sampling"]["framesOut"] == len(kept)
        output = s3_lines(emulator, entry["jobOutputS3Uri"])
        assert output[0][f"{entry['labelAttributeName']}-metadata"]["job-name"] == f"labeling-job/{entry['labelingJobName']}"

    # The same frames on a re-run: the sample is seeded from batch and job name.
    messages = batch_messages(emulator, batch_id)
    assert [m["status"] for m in messages] == ["SUCCESS"]
    assert {j["jobName"] for j in messages[0]["batchInfo"]["jobs"]} == {
        f"{batch_id}-vehicle", f"{batch_id}-lane", f"{batch_id}-vehicle-audit", f"{batch_id}-lane-audit"}


def test_batch_with_every_rate_given_never_waits(emulator, batch_dag):
    batch_id = unique("nb-rates")
    run = batch_dag.test(run_conf=nb_conf(emulator, batch_id, rate=100))
    assert run.state == "success"
    snapshot = snapshot_of(batch_id)
    # resolve_batch skipped what this two-level batch with its rates never needs: those tasks never ran.
    for task_id in ("level_2.down_sampling_rate", "level_3.down_sampling_rate", "level_3.plan_jobs"):
        assert snapshot.ti_states[(task_id, -1)] == "skipped", task_id
        assert _ti(snapshot, task_id).try_number == 0, task_id  # never queued
    detail = batch_status.describe_batch(snapshot)
    for entry in detail["secondLevel"]["jobLevels"]:
        lines = s3_lines(emulator, entry["jobInputS3Uri"])
        assert s3_json(emulator, lines[0]["source-ref"])["number-of-frames"] == len(
            s3_json(emulator, emulator.demo["sequence_uri"])["frames"])


def test_three_levels_own_manifest_at_level_two_and_an_empty_level(emulator, batch_dag):
    batch_id = unique("three")
    cfg = emulator.demo["label_configs"]
    manifest = emulator.demo["manifest_uri"]
    conf = {
        "batchId": batch_id,
        "labelingJobs": [
            {"jobName": f"{batch_id}-cars", "jobType": "BATCH", "jobModality": "VideoObjectDetection",
             "labelCategoryConfigS3Uri": cfg["vehicle_label_category"],
             "inputConfig": {"inputManifestS3Uri": manifest}, "jobLevel": 1},
            # Level 2: an audit chained to level 1, and a job with its own manifest.
            {"jobName": f"{batch_id}-cars-audit", "jobType": "BATCH", "jobModality": "VideoObjectDetectionAudit",
             "labelCategoryConfigS3Uri": cfg["vehicle_label_category_audit"],
             "inputConfig": {"chainFromJobName": f"{batch_id}-cars", "downSamplingRate": 40}, "jobLevel": 2},
            {"jobName": f"{batch_id}-lanes", "jobType": "BATCH", "jobModality": "VideoObjectTracking",
             "labelCategoryConfigS3Uri": cfg["lane_label_category"],
             "inputConfig": {"inputManifestS3Uri": manifest}, "jobLevel": 2},
            # Level 3: an audit of the audit (inherits its category config).
            {"jobName": f"{batch_id}-cars-audit2", "jobType": "BATCH", "jobModality": "VideoObjectDetectionAudit",
             "inputConfig": {"chainFromJobName": f"{batch_id}-cars-audit", "downSamplingRate": 50}, "jobLevel": 3},
        ],
    }
    assert batch_dag.test(run_conf=conf).state == "success"
    detail = batch_status.describe_batch(snapshot_of(batch_id))
    assert [detail[k]["numChildBatchesComplete"] for k in ("firstLevel", "secondLevel", "thirdLevel")] == [1, 2, 1]
    level3 = detail["thirdLevel"]["jobLevels"][0]
    assert s3_json(emulator, level3["labelCategoryS3Uri"])["auditLabelAttributeName"] == f"{batch_id}-cars-audit-ref"
    own = next(e for e in detail["secondLevel"]["jobLevels"] if e["labelingJobName"].endswith("-lanes"))
    assert own["jobInputS3Uri"] == manifest

    # Levels 1 and 3 only: the empty level 2 passes through.
    batch_id = unique("gap")
    conf = {
        "batchId": batch_id,
        "labelingJobs": [
            {"jobName": f"{batch_id}-v", "jobType": "BATCH", "jobModality": "VideoObjectTracking",
             "labelCategoryConfigS3Uri": cfg["vehicle_label_category"],
             "inputConfig": {"inputManifestS3Uri": manifest}, "jobLevel": 1},
            {"jobName": f"{batch_id}-v-audit", "jobType": "BATCH", "jobModality": "VideoObjectTrackingAudit",
             "labelCategoryConfigS3Uri": cfg["vehicle_label_category_audit"],
             "inputConfig": {"chainFromJobName": f"{batch_id}-v", "downSamplingRate": 50}, "jobLevel": 3},
        ],
    }
    assert batch_dag.test(run_conf=conf).state == "success"
    snapshot = snapshot_of(batch_id)
    detail = batch_status.describe_batch(snapshot)
    assert detail["secondLevel"]["numChildBatches"] == 0
    assert detail["thirdLevel"]["numChildBatchesComplete"] == 1
    # Level 2's plan was skipped at once, yet level 3 waited for level 1 (it chains from its output).
    assert snapshot.ti_states[("level_2.plan_jobs", -1)] == "skipped"
    assert _started(snapshot, "level_3.plan_jobs") >= _ended(snapshot, "level_1.labeling_job", 0)


def test_failed_job_stops_its_chain_sibling_completes_batch_internal_error(emulator, batch_dag):
    batch_id = unique("nb-fail")
    emulator.set_faults(fail_jobs=[{"pattern": f"{batch_id}-vehicle", "reason": "ClientError: worker portal outage"}])
    try:
        run = batch_dag.test(run_conf=nb_conf(emulator, batch_id, rate=50))
    finally:
        emulator.set_faults()
    assert run.state == "failed"
    # The audit of the failed job was never created; the sibling completed.
    assert gt_job_names(emulator, batch_id) == [f"{batch_id}-lane", f"{batch_id}-vehicle"]
    sm = emulator.client("sagemaker")
    assert sm.describe_labeling_job(LabelingJobName=f"{batch_id}-lane")["LabelingJobStatus"] == "Completed"
    detail = batch_status.describe_batch(snapshot_of(batch_id))
    assert detail["status"] == "INTERNAL_ERROR"
    assert f"job {batch_id}-vehicle (level 1) FAILED: ClientError: worker portal outage" in detail["message"]
    statuses = {e["labelingJobName"]: e["batchStatus"] for e in detail["firstLevel"]["jobLevels"]}
    assert statuses == {f"{batch_id}-vehicle": "FAILED", f"{batch_id}-lane": "COMPLETE"}
    assert {e["batchStatus"] for e in detail["secondLevel"]["jobLevels"]} == {"PENDING"}
    messages = batch_messages(emulator, batch_id)
    assert len(messages) == 1 and messages[0]["status"] == "FAILED"
    assert "worker portal outage" in messages[0]["errorString"]


def test_rerun_adopts_existing_jobs_without_duplicates(emulator, batch_dag):
    batch_id = unique("nb-rerun")
    conf = nb_conf(emulator, batch_id, rate=50)
    conf["labelingJobs"] = conf["labelingJobs"][:2]  # level 1 only
    original = batch_dag.test(run_conf=conf)
    assert original.state == "success"
    first = gt_job_names(emulator, batch_id)
    # Running the batch again re-executes every job task: it adopts, not duplicates. dag.test can only
    # make a run with a new id, which a live run's claim on the batchId refuses (next test); the first
    # run is deleted from Airflow, as an admin would to run a batch again, and gives its claim up.
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        session.delete(session.scalar(select(DagRun).where(DagRun.dag_id == "smgt_batch",
                                                           DagRun.run_id == original.run_id)))
    rerun = batch_dag.test(run_conf=conf)
    assert rerun.state == "success"
    assert gt_job_names(emulator, batch_id) == first == [f"{batch_id}-lane", f"{batch_id}-vehicle"]
    snapshot = snapshot_of(batch_id)
    assert {snapshot.xcom("level_1.labeling_job", i, "created")["adopted"] for i in (0, 1)} == {True}
    s3 = emulator.client("s3")
    bucket, prefix = parse_s3_uri(batch_prefix(get_settings(), batch_id))
    claim = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/{CLAIM_NAME}")["Body"].read())
    assert claim["run"] == f"smgt_batch/{rerun.run_id}"  # taken over from the deleted run


def test_a_second_run_with_the_same_batch_id_is_refused_before_it_writes_anything(emulator, batch_dag):
    """Two runs given one batchId with run ids of their own (the CLI, the REST API): the API server's
    trigger check never sees the CLI's, so the run's own claim in S3 refuses the second."""
    batch_id = unique("nb-twice")
    conf = nb_conf(emulator, batch_id, rate=50)
    conf["labelingJobs"] = conf["labelingJobs"][:2]  # level 1 only
    first = batch_dag.test(run_conf=conf)
    assert first.state == "success"
    s3 = emulator.client("s3")
    bucket, prefix = parse_s3_uri(batch_prefix(get_settings(), batch_id) + "/")
    written = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]}
    assert f"{prefix}{CLAIM_NAME}" in written

    second = batch_dag.test(run_conf=conf)
    assert second.state == "failed" and second.run_id != first.run_id
    rejected = snapshot_of(second.run_id)  # listed under its run id: the batchId is the first run's
    assert batch_status.batch_status(rejected) == "VALIDATION_FAIL"
    assert rejected.xcom("resolve_batch", key="problems") == [
        f"batchId: {batch_id!r} is already used by an existing batch (run smgt_batch/{first.run_id})"]
    # Nothing of the first batch was touched: its jobs, its files, its status.
    assert gt_job_names(emulator, batch_id) == [f"{batch_id}-lane", f"{batch_id}-vehicle"]
    assert {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]} == written
    assert batch_status.describe_batch(snapshot_of(batch_id))["status"] == "COMPLETE"


def test_a_batch_message_that_cannot_be_published_is_named_in_its_status(emulator, batch_dag):
    """Its jobs completed, its topic went away (a local GT restarted without it): INTERNAL_ERROR
    that says what failed, not "see the run's task logs"."""
    batch_id = unique("nb-topic")
    sns = emulator.client("sns")
    topic = sns.create_topic(Name=unique("gone-topic"))["TopicArn"]
    conf = nb_conf(emulator, batch_id, rate=50)
    conf["labelingJobs"] = conf["labelingJobs"][:2]  # level 1 only
    conf["destinationSnsArn"] = topic

    def delete_topic_once_labeling() -> None:  # after the pre-flight, which checks that it exists
        deadline = time.monotonic() + 120
        while not gt_job_names(emulator, batch_id) and time.monotonic() < deadline:
            time.sleep(0.2)
        sns.delete_topic(TopicArn=topic)

    deleter = threading.Thread(target=delete_topic_once_labeling)
    deleter.start()
    run = batch_dag.test(run_conf=conf)
    deleter.join(5)
    assert run.state == "failed"
    detail = batch_status.describe_batch(snapshot_of(batch_id))
    assert detail["status"] == "INTERNAL_ERROR"
    assert detail["message"].startswith(f"publishing the batch's COMPLETE message to {topic} failed: NotFound"), detail


def test_job_name_taken_by_another_batch_rejected_before_anything_is_created(emulator, batch_dag):
    from smgt.config import validate_batch_config
    from smgt.gt.requests import build_create_labeling_job_request

    batch_id = unique("nb-taken")
    conf = nb_conf(emulator, batch_id, rate=50)
    # Somebody else's GT job already has the name of this batch's lane job.
    lane = validate_batch_config(conf).job(f"{batch_id}-lane")
    emulator.client("sagemaker").create_labeling_job(**build_create_labeling_job_request(
        lane, batch_id="someone-else", settings=get_settings(),
        input_manifest_s3_uri=lane.inputConfig.inputManifestS3Uri,
        label_category_config_s3_uri=lane.labelCategoryConfigS3Uri,
    ))
    run = batch_dag.test(run_conf=conf)
    assert run.state == "failed"
    snapshot = snapshot_of(batch_id)
    assert batch_status.batch_status(snapshot) == "VALIDATION_FAIL"
    assert gt_job_names(emulator, batch_id) == [f"{batch_id}-lane"]  # nothing of this batch was created


def _started(snapshot, task_id: str, map_index: int = -1):
    return _ti(snapshot, task_id, map_index).start_date


def _ended(snapshot, task_id: str, map_index: int = -1):
    return _ti(snapshot, task_id, map_index).end_date


def _ti(snapshot, task_id: str, map_index: int = -1):
    """A task instance of the snapshot's run, from the metadata DB."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=snapshot.dag_id, run_id=snapshot.run_id,
                                                   task_id=task_id, map_index=map_index).one()
        session.expunge(ti)
        return ti
