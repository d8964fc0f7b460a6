"""The production topology, natively: api-server, scheduler, dag-processor, triggerer and a Celery
worker as separate processes on Postgres + Redis, the emulator as AWS with S3 on SeaweedFS
(scripts/stack.sh; simulated workforce, so no Label Studio).

1. A notebook batch (4 jobs, rates given) created through the plugin API completes.
2. Fault test: SIGKILL the Celery worker while a batch's labeling_job task runs and the triggerer
   while its sensors are deferred, restart both; the batch still completes with exactly its four
   GT jobs (no duplicate from the retried create) and every output manifest present.
3. SeaweedFS restarted cleanly, then SIGKILLed and restarted (`stack.sh restart|kill seaweedfs`):
   every object the stack wrote (inputs, outputs of the batches above, test objects) is still there
   byte for byte, and `stack.sh status` reports every component alive again.

Timings are printed at the end of the module and written to .smgt/stack-tests/test_stack/timings.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

import psutil
import pytest
import requests
from sample_batches import notebook_batch

from smgt.settings import Settings

pytestmark = pytest.mark.stack

BATCH_TIMEOUT = 240  # seconds; a clean 4-job batch takes about a minute on 2 cores


def wait_until(what: str, check: Callable[[], Any], timeout: float, poll: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def new_batch(prefix: str, *, rate: float | None) -> dict[str, Any]:
    config = notebook_batch(f"{prefix}-{uuid.uuid4().hex[:8]}")
    if rate is not None:
        for job in config["labelingJobs"]:
            if job["jobLevel"] > 1:
                job["inputConfig"]["downSamplingRate"] = rate
    return config


def all_jobs(shown: dict[str, Any]) -> list[dict[str, Any]]:
    return [job for level in ("firstLevel", "secondLevel", "thirdLevel")
            for job in (shown.get(level) or {}).get("jobLevels", [])]


def assert_complete_without_duplicates(stack: Any, config: dict[str, Any], shown: dict[str, Any]) -> None:
    batch_id = config["batchId"]
    assert shown["status"] == "COMPLETE", shown
    expected = {job["jobName"].lower() for job in config["labelingJobs"]}
    gt_jobs = stack.labeling_jobs(batch_id)
    names = [job["LabelingJobName"].lower() for job in gt_jobs]
    assert sorted(names) == sorted(expected), f"GT jobs for {batch_id}: {names}"
    assert {job["LabelingJobStatus"] for job in gt_jobs} == {"Completed"}
    sm = stack.client("sagemaker")
    shown_outputs = {job["labelingJobName"].lower(): job.get("jobOutputS3Uri") for job in all_jobs(shown)}
    assert set(shown_outputs) == expected, shown
    for name in expected:
        output = sm.describe_labeling_job(LabelingJobName=name)["LabelingJobOutput"]["OutputDatasetS3Uri"]
        assert output.lower().endswith(f"/{name}/manifests/output/output.manifest"), output
        assert stack.s3_exists(output), f"output manifest of {name} missing: {output}"
        assert shown_outputs[name] == output, (name, shown_outputs[name], output)


def test_stack_is_up(stack: Any) -> None:
    status = stack.sh("status")  # exits non-zero if a component died
    assert "DEAD" not in status
    code, states = stack.status()
    assert code == 0 and states["seaweedfs"] == "alive" and states["labelstudio"] == "not started", states
    # S3 is SeaweedFS (signed requests only, on loopback), everything else the emulator: the env the
    # emulator printed (smgt.local.emulator.aws_env) reached Airflow through stack.env.
    assert stack.env["AWS_ENDPOINT_URL_S3"] == stack.s3_url and stack.s3_url.startswith("http://127.0.0.1:")
    conn = json.loads(stack.env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert conn["extra"]["service_config"]["s3"]["endpoint_url"] == stack.s3_url
    assert conn["extra"]["endpoint_url"] == stack.emulator_url
    assert requests.get(stack.s3_url, timeout=10).status_code == 403  # anonymous
    weed = psutil.Process(stack.server_pid("seaweedfs"))
    assert weed.name() == "weed" and os.getpgid(weed.pid) == weed.pid
    assert {c.laddr.ip for c in weed.net_connections("tcp") if c.status == psutil.CONN_LISTEN} == {"127.0.0.1"}
    assert str(stack.state / "s3") in " ".join(weed.cmdline())
    # The demo data went to SeaweedFS, once.
    demo = stack.client("s3").list_objects_v2(Bucket=Settings.from_env(stack.env).input_bucket, MaxKeys=1000)
    assert demo["KeyCount"] > 0
    assert (stack.state / "gt" / "demo-uploaded").exists() and (stack.state / "gt" / "gt.sqlite3").exists()
    assert stack.call("GET", "/smgt/batch/show").status_code == 200
    assert stack.http.post(f"{stack.api}/smgt/batch/create", json={}, timeout=30).status_code == 401
    executor = stack.sql("select count(*) from job where job_type = 'SchedulerJob' and state = 'running'")
    assert executor[0][0] >= 1


def test_batch_through_the_api_completes(stack: Any) -> None:
    config = new_batch("stk", rate=50)
    t0 = time.monotonic()
    created = stack.create_batch(config)
    assert created["batchId"] == config["batchId"]
    shown = stack.wait_status(config["batchId"], {"COMPLETE", "INTERNAL_ERROR"}, timeout=BATCH_TIMEOUT)
    stack.timings["clean_batch_s"] = round(time.monotonic() - t0, 1)
    assert_complete_without_duplicates(stack, config, shown)
    # Every task ran on the Celery worker (hostname set), none was retried.
    states = stack.task_states(config["batchId"])
    assert all(state in ("success", "skipped") for _, _, state, _ in states), states
    assert max(try_number for *_, try_number in states) == 1, states


def kill_worker_during_create(stack: Any, batch_id: str) -> dict[str, Any]:
    """SIGKILL the worker's process group while a level-1 labeling_job task of the batch runs
    (preparing, creating or describing its job, before it defers): preferably just after GT created
    the job (so the retry has to adopt it), else ~2 s into the task (before its CreateLabelingJob
    call). Returns what was running and what existed in GT at that moment."""
    running_sql = ("select task_id, map_index from task_instance where run_id = %s and task_id like %s"
                   " and state = 'running'")
    wait_until("a level-1 labeling_job task running",
               lambda: stack.sql(running_sql, batch_id, "level_1.labeling_job"), timeout=120, poll=0.02)
    first_seen = time.monotonic()
    while True:
        gt_jobs = [name for name in stack.emulator_jobs() if name.lower().startswith(batch_id.lower())]
        running = stack.sql(running_sql, batch_id, "level_1.labeling_job")
        if (gt_jobs and running) or time.monotonic() - first_seen > 2.0:
            break
        time.sleep(0.01)
    os.killpg(stack.pid("worker"), signal.SIGKILL)
    killed = stack.sql(running_sql, batch_id, "level_1.labeling_job")
    return {"killed": killed, "gt_jobs_at_kill": gt_jobs}


def test_worker_and_triggerer_killed_mid_batch(stack: Any) -> None:
    config = new_batch("stk-fault", rate=None)  # level 2 waits for the rate: posted below
    batch_id = config["batchId"]
    level2 = [job["jobName"] for job in config["labelingJobs"] if job["jobLevel"] == 2]
    # Level-2 jobs take 20 s longer in GT, so their sensors sit deferred long enough to kill the triggerer.
    stack.set_faults({"delay_jobs": [{"pattern": name, "seconds": 20} for name in level2]})
    t: dict[str, float] = {"t0": time.monotonic()}
    try:
        stack.create_batch(config)

        # --- 1. SIGKILL the worker while a labeling_job task runs, restart it.
        kill = kill_worker_during_create(stack, batch_id)
        t["worker_killed"] = time.monotonic()
        assert kill["killed"], "no labeling_job task was running when the worker was killed"
        stack.sh("restart", "worker")
        t["worker_back"] = time.monotonic()
        # The scheduler notices the dead tasks (heartbeat timeout) and retries them; a retry adopts
        # the GT job when the killed try had created it.
        def killed_tasks_retried_ok() -> bool:
            return all(stack.sql("select 1 from task_instance where run_id = %s and task_id = %s and map_index = %s"
                                 " and state = 'success' and try_number >= 2", batch_id, task_id, map_index)
                       for task_id, map_index in kill["killed"])

        wait_until("the killed labeling_job tasks to be retried and succeed", killed_tasks_retried_ok, timeout=180)
        t["create_retried_ok"] = time.monotonic()

        # --- 2. The QA manager's rate.
        waiting = stack.wait_status(batch_id, {"WAIT_FOR_META_DATA_INPUT"}, timeout=150)
        assert waiting["status"] == "WAIT_FOR_META_DATA_INPUT", waiting
        t["level1_done"] = time.monotonic()
        posted = stack.post_metadata(batch_id, 50)
        assert posted.status_code == 200, posted.text

        # --- 3. SIGKILL the triggerer while level-2 sensors are deferred, restart it.
        deferred_sql = ("select count(*) from task_instance where run_id = %s and task_id like %s"
                        " and state = 'deferred' having count(*) = %s")
        deferred = wait_until("both level-2 sensors deferred", lambda: stack.sql(
            deferred_sql, batch_id, "level_2.labeling_job", len(level2)), timeout=120, poll=0.2)
        stack.sh("kill", "triggerer", "KILL")
        t["triggerer_killed"] = time.monotonic()
        stack.sh("restart", "triggerer")
        t["triggerer_back"] = time.monotonic()
        # The new triggerer takes over the dead one's triggers once its heartbeat is stale (30 s).
        wait_until("the triggers to move to the new triggerer (or the sensors to finish)", lambda: stack.sql(
            "select count(*) from task_instance ti left join trigger t on t.id = ti.trigger_id"
            " where ti.run_id = %s and ti.task_id like %s and (ti.state != 'deferred' or t.triggerer_id ="
            " (select max(id) from job where job_type = 'TriggererJob')) having count(*) = %s",
            batch_id, "level_2.labeling_job", len(level2)), timeout=120)
        t["triggers_taken_over"] = time.monotonic()
        shown = stack.wait_status(batch_id, {"COMPLETE", "INTERNAL_ERROR"}, timeout=BATCH_TIMEOUT)
        t["complete"] = time.monotonic()
    finally:
        stack.set_faults({})

    assert_complete_without_duplicates(stack, config, shown)
    stack.sh("status")  # fails if a component is dead
    killed_jobs = [stack.sql("select rendered_map_index from task_instance where run_id = %s and task_id = %s"
                             " and map_index = %s", batch_id, task_id, map_index)[0][0]
                   for task_id, map_index in kill["killed"]]
    adopted = sorted(set(killed_jobs) & set(kill["gt_jobs_at_kill"]))
    stack.timings.update({
        "fault_killed_create_tasks": killed_jobs,
        "fault_killed_after_gt_created_job (retry adopted)": adopted,
        "fault_worker_killed_after_s": round(t["worker_killed"] - t["t0"], 1),
        "fault_worker_restart_s": round(t["worker_back"] - t["worker_killed"], 1),
        "fault_create_retry_succeeded_after_kill_s": round(t["create_retried_ok"] - t["worker_killed"], 1),
        "fault_level1_done_s": round(t["level1_done"] - t["t0"], 1),
        "fault_deferred_sensors_at_triggerer_kill": deferred[0][0],
        "fault_triggerer_restart_s": round(t["triggerer_back"] - t["triggerer_killed"], 1),
        "fault_triggers_taken_over_after_kill_s": round(t["triggers_taken_over"] - t["triggerer_killed"], 1),
        "fault_complete_after_triggerer_kill_s": round(t["complete"] - t["triggerer_killed"], 1),
        "fault_batch_total_s": round(t["complete"] - t["t0"], 1),
    })


def s3_snapshot(stack: Any) -> dict[str, tuple[str, int]]:
    """{s3://bucket/key: (ETag, size)} of every object in the stack's buckets."""
    s3 = stack.client("s3")
    objects: dict[str, tuple[str, int]] = {}
    for bucket in (Settings.from_env(stack.env).input_bucket, Settings.from_env(stack.env).processing_bucket):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                objects[f"s3://{bucket}/{item['Key']}"] = (item["ETag"], item["Size"])
    return objects


def test_seaweedfs_restarted_and_killed_keeps_every_object(stack: Any) -> None:
    bucket = Settings.from_env(stack.env).processing_bucket
    prefix = f"stack-durability/{uuid.uuid4().hex[:8]}/"
    bodies = {f"{prefix}small-{i:03d}": os.urandom(10_000) for i in range(50)}
    bodies[f"{prefix}large"] = os.urandom(8 * 1024 * 1024)  # multipart with boto3's default 8 MiB threshold
    s3 = stack.client("s3")
    for key, body in bodies.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    before = s3_snapshot(stack)
    outputs = [uri for uri in before if uri.endswith("/manifests/output/output.manifest")]
    assert len(outputs) >= 8, "the two batches above wrote their output manifests to SeaweedFS"

    def all_alive() -> dict[str, str]:
        code, states = stack.status()
        assert code == 0, states
        assert {name for name, state in states.items() if state != "alive"} == {"labelstudio"}, states
        return states

    def same_objects() -> None:
        fresh = stack.client("s3")
        assert s3_snapshot(stack) == before
        for key, body in bodies.items():
            got = fresh.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest(), key

    # 1. A clean restart: SIGTERM (weed flushes), start, healthy.
    first = stack.server_pid("seaweedfs")
    t0 = time.monotonic()
    stack.sh("restart", "seaweedfs")
    clean_restart_s = time.monotonic() - t0
    assert not psutil.pid_exists(first) or psutil.Process(first).status() == psutil.STATUS_ZOMBIE
    all_alive()
    same_objects()

    # 2. A crash: SIGKILL to the supervisor's and weed's process groups.
    killed, supervisor = stack.server_pid("seaweedfs"), stack.pid("seaweedfs")
    assert killed != first
    stack.sh("kill", "seaweedfs")
    wait_until("weed and its supervisor to be gone", lambda: not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in (killed, supervisor)),
        timeout=30)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{stack.s3_url}/healthz", timeout=5)
    code, states = stack.status()
    assert code == 1 and states["seaweedfs"] == "DEAD", states
    assert all(state == "alive" for name, state in states.items() if name not in ("seaweedfs", "labelstudio"))
    t0 = time.monotonic()
    stack.sh("restart", "seaweedfs")
    crash_restart_s = time.monotonic() - t0
    assert stack.server_pid("seaweedfs") not in (first, killed)
    states = all_alive()
    assert states["seaweedfs"] == "alive"
    same_objects()
    # It takes new writes, and the emulator (its S3 client) still answers.
    s3.put_object(Bucket=bucket, Key=f"{prefix}after-crash", Body=b"ok")
    assert stack.client("s3").get_object(Bucket=bucket, Key=f"{prefix}after-crash")["Body"].read() == b"ok"
    assert stack.client("sagemaker").list_labeling_jobs(MaxResults=5)["LabelingJobSummaryList"]
    stack.timings.update({"seaweedfs_objects_checked": len(before),
                          "seaweedfs_clean_restart_s": round(clean_restart_s, 1),
                          "seaweedfs_restart_after_sigkill_s": round(crash_restart_s, 1)})
