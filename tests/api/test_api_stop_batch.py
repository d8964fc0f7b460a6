"""Stopping a batch (marking its run failed) stops its running Ground Truth jobs (SPEC section 3)."""

from __future__ import annotations

import time

from api_helpers import BATCH_DAG_ID, new_batch_id, notebook_batch
from status_queue import batch_messages


def gt_status(emu, name: str) -> str:
    return emu.client("sagemaker").describe_labeling_job(LabelingJobName=name)["LabelingJobStatus"]


def test_marking_the_run_failed_stops_its_running_gt_jobs(stack):
    batch_id = new_batch_id("stop")
    emu = stack.emu
    # The level-1 jobs of this batch take long enough to be stopped while running.
    emu.set_faults(delay_jobs=[{"pattern": f"{batch_id}-*", "seconds": 600}])
    admin = stack.session("admin")
    try:
        conf = notebook_batch(batch_id)
        for job in conf["labelingJobs"][2:]:
            job["inputConfig"]["downSamplingRate"] = 50
        resp = admin.post(stack.api("batch/create"), json=conf, timeout=60)
        assert resp.status_code == 200, resp.text
        jobs = [f"{batch_id}-vehicle", f"{batch_id}-lane"]

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            detail = admin.get(stack.api("batch/show"), params={"batchId": batch_id}, timeout=30).json()
            running = [e for e in detail["firstLevel"]["jobLevels"] if e["batchStatus"] == "WAIT_FOR_SMGT_RESPONSE"]
            states = admin.get(f"{stack.url}/api/v2/dags/{BATCH_DAG_ID}/dagRuns/{batch_id}/taskInstances",
                               params={"task_id_pattern": "labeling_job"}, timeout=30).json()
            deferred = [t for t in states.get("task_instances", []) if t["state"] == "deferred"]
            if len(running) == 2 and len(deferred) == 2:
                break
            time.sleep(1)
        else:
            raise AssertionError(f"the level-1 jobs never reached a deferred wait: {detail}\n{states}")
        assert {gt_status(emu, name) for name in jobs} == {"InProgress"}

        resp = admin.patch(f"{stack.url}/api/v2/dags/{BATCH_DAG_ID}/dagRuns/{batch_id}",
                           json={"state": "failed"}, timeout=30)
        assert resp.status_code == 200, resp.text

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and {gt_status(emu, n) for n in jobs} - {"Stopping", "Stopped"}:
            time.sleep(1)
        assert {gt_status(emu, n) for n in jobs} <= {"Stopping", "Stopped"}, stack.logs()
        detail = admin.get(stack.api("batch/show"), params={"batchId": batch_id}, timeout=30).json()
        assert detail["status"] == "INTERNAL_ERROR"
        # Says who stopped it, not that a task crashed; and publishes INTERNAL_ERROR as SPEC section 3 asks.
        assert detail["message"].startswith("stopped by admin at "), detail["message"]
        (message,) = batch_messages(emu, batch_id, wait=60, then=3)
        assert (message["status"], message["errorType"]) == ("FAILED", "BATCH_STOPPED"), message
        assert message["message"].startswith("stopped by admin at ") and all(n in message["message"] for n in jobs)
        # Marked failed again (a second click): nothing more is published.
        resp = admin.patch(f"{stack.url}/api/v2/dags/{BATCH_DAG_ID}/dagRuns/{batch_id}",
                           json={"state": "failed"}, timeout=30)
        assert resp.status_code == 200, resp.text
        assert batch_messages(emu, batch_id, wait=10) == []
    finally:
        emu.set_faults()
