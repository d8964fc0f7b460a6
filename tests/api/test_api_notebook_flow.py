"""examples/notebook_flow.py end to end against the real stack, then the errors only a finished
batch can show: metadata given twice (409) and job names GT already has (400)."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from api_helpers import PASSWORDS, ROOT, notebook_batch

pytestmark = pytest.mark.integration

FLOW_SECONDS = 240


@pytest.fixture(scope="module")
def finished_flow(stack, tmp_path_factory):
    batch_id = f"nb-track-{uuid.uuid4().hex[:8]}"
    work = tmp_path_factory.mktemp("notebook_flow")
    env = dict(stack.env)
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "notebook_flow.py"),
            "--base-url",
            stack.url,
            "--username",
            "admin",
            "--password",
            PASSWORDS["admin"],
            "--batch-id",
            batch_id,
            "--timeout",
            str(FLOW_SECONDS - 30),
            "--poll",
            "1",
            "--work-dir",
            str(work),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=FLOW_SECONDS,
    )
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}\n{stack.logs(40)}"
    return batch_id, work, proc.stdout


def test_notebook_flow_reaches_complete_and_downloads_the_audit_output(stack, finished_flow):
    batch_id, work, out = finished_flow
    assert "batch-metadata/post" in out and f"batch {batch_id}: COMPLETE" in out
    downloaded = list(work.glob("*.output.manifest"))
    assert len(downloaded) == 1 and downloaded[0].stat().st_size > 0

    detail = (
        stack.session("viewer").get(stack.api("batch/show"), params={"batchId": batch_id}, timeout=60).json()
    )
    assert detail["status"] == "COMPLETE"
    first, second = detail["firstLevel"], detail["secondLevel"]
    # Numbers are numbers (the reference sent strings).
    assert first["numChildBatches"] == 2 and first["numChildBatchesComplete"] == 2
    assert second["numChildBatches"] == 2 and second["numChildBatchesComplete"] == 2
    for job in first["jobLevels"] + second["jobLevels"]:
        assert job["batchId"] == batch_id
        assert job["jobOutputS3Uri"].startswith("s3://")
        assert job["jobOutputS3Url"].startswith("http")
        assert job["jobInputS3Url"].startswith("http")
    listing = stack.session("viewer").get(stack.api("batch/show"), timeout=30).json()
    assert batch_id in listing["COMPLETE"]

    page = stack.session("viewer").get(stack.api("ui"), timeout=60)
    assert page.status_code == 200, page.text
    assert (
        batch_id in page.text and f"{batch_id}-vehicle-audit" in page.text and "output manifest" in page.text
    )


def test_metadata_given_again_is_409(stack, finished_flow):
    batch_id = finished_flow[0]
    resp = stack.session("admin").post(
        stack.api("batch-metadata/post"), json={"batchId": batch_id, "downSamplingRate": 50}, timeout=30
    )
    assert resp.status_code == 409, resp.text
    assert f"batch {batch_id!r} is not waiting for batch metadata (status COMPLETE)" in resp.json()["message"]


def test_job_names_ground_truth_already_has_are_400_and_create_nothing(stack, finished_flow):
    old = finished_flow[0]
    batch_id = f"nb-track-{uuid.uuid4().hex[:8]}"
    body = notebook_batch(batch_id)
    for job, name in zip(
        body["labelingJobs"], ("vehicle", "lane", "vehicle-audit", "lane-audit"), strict=True
    ):
        job["jobName"] = f"{old}-{name}"
    body["labelingJobs"][2]["inputConfig"]["chainFromJobName"] = f"{old}-vehicle"
    body["labelingJobs"][3]["inputConfig"]["chainFromJobName"] = f"{old}-lane"
    resp = stack.session("admin").post(stack.api("batch/create"), json=body, timeout=60)
    assert resp.status_code == 400, resp.text
    errors = resp.json()["errors"]
    assert len(errors) == 4
    assert all("a Ground Truth labeling job with this name already exists" in e for e in errors)
    assert not stack.run_exists(batch_id)
