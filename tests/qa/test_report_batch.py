"""Quality reports of a batch, end to end with dag.test() on the emulator: every completed job's report
and thumbnails are written next to its output, the batch's report next to the batch's outputs, and
batch/show links them; a report that cannot be made is recorded and the batch still completes."""

from __future__ import annotations

import io
from typing import Any

import pytest
from dag_helpers import load_dag_module, run_batch_with_faults, snapshot_of
from PIL import Image
from sample_batches import targeted_demo_batch

from smgt import batch_status
from smgt.local.injection import read_injected_errors
from smgt.manifests import Storage

pytestmark = pytest.mark.timeout(900)


def _conf(emulator: Any, batch_id: str) -> dict[str, Any]:
    return targeted_demo_batch(batch_id, emulator.demo)


def _jobs(detail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {j["labelingJobName"]: j for key in ("firstLevel", "secondLevel") for j in detail[key]["jobLevels"]}


def test_a_batch_writes_its_reports_and_batch_show_links_them(emulator):
    # Fixed: the injected errors and the simulated labels are seeded with the job names.
    batch_id = "qa-report-1"
    run = run_batch_with_faults(emulator, _conf(emulator, batch_id), {"label_errors": [
        {"pattern": f"{batch_id}-vehicle", "frames": [4, 10], "kinds": ["jitter", "miss"], "seed": 3}]})
    assert run.state == "success"
    storage = Storage(emulator.client("s3"))
    detail = batch_status.describe_batch(snapshot_of(batch_id), lambda uri: f"https://presigned/{uri}")
    assert detail["status"] == "COMPLETE"
    jobs = _jobs(detail)
    assert len(jobs) == 4
    for name, job in jobs.items():
        root = job["jobOutputS3Uri"].removesuffix("/manifests/output/output.manifest")
        assert job["qualityReportS3Uri"] == f"{root}/quality/report.json", name
        assert job["qualityReportS3Url"] == f"https://presigned/{root}/quality/report.json"
        written = storage.read_json(job["qualityReportS3Uri"])
        assert written["jobName"] == name and written["risk"] == job["qualityReport"]["risk"]

    vehicle = jobs[f"{batch_id}-vehicle"]
    report = vehicle["qualityReport"]
    assert report["risk"]["framesFlagged"] > 0 and report["perLabel"] and report["perWorker"]
    injected = read_injected_errors(storage, vehicle["jobOutputS3Uri"])
    injected_frames = {e["frame"] for e in injected[0]["errors"]}
    flagged = {f["frame"] for f in report["flaggedFrames"]}
    assert injected_frames & flagged, (injected_frames, flagged)  # the report names injected frames
    for frame in report["flaggedFrames"]:
        assert frame["reasons"] and frame["thumbnailS3Url"] == f"https://presigned/{frame['thumbnailS3Uri']}"
        with Image.open(io.BytesIO(storage.read_head(frame["thumbnailS3Uri"], 10**7))) as thumb:
            assert thumb.format == "JPEG" and thumb.width == 320

    audit = jobs[f"{batch_id}-vehicle-audit"]["qualityReport"]
    assert audit["betweenLevels"]["parentJobName"] == f"{batch_id}-vehicle"
    assert audit["residualErrorRate"]["estimator"] == "exploration sample (targeted)"
    assert audit["residualErrorRate"]["framesUsed"] >= 1

    assert detail["qualityReportS3Uri"].endswith(f"/{batch_id}/output/quality-report.json")
    batch = storage.read_json(detail["qualityReportS3Uri"])
    assert sorted(j["jobName"] for j in batch["jobs"]) == sorted(jobs)
    assert {b["parentJobName"] for b in batch["betweenLevels"]} == {f"{batch_id}-vehicle", f"{batch_id}-lane"}
    assert set(next(iter(batch["level1Workers"][f"{batch_id}-vehicle"].values()))) >= {
        "objectsLabeled", "meanTimePerTaskSeconds", "shareAdjustedAtNextLevel"}


def test_a_report_that_fails_is_recorded_and_the_batch_completes(emulator, monkeypatch):
    import smgt.qa.report

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("thumbnail store unavailable")

    # The labeling_job task writes the job report through write_job_report_and_risk (the gate reuses its risk).
    monkeypatch.setattr(smgt.qa.report, "write_job_report_and_risk", broken)
    monkeypatch.setattr(smgt.qa.report, "write_batch_report", broken)
    batch_id = "qa-report-broken-1"
    run = load_dag_module("smgt_batch").dag.test(run_conf=_conf(emulator, batch_id))
    assert run.state == "success"
    detail = batch_status.describe_batch(snapshot_of(batch_id))
    assert detail["status"] == "COMPLETE"
    assert detail["qualityReportError"] == "RuntimeError: thumbnail store unavailable"
    for job in _jobs(detail).values():
        assert job["batchStatus"] == "COMPLETE"
        assert job["qualityReportError"] == "RuntimeError: thumbnail store unavailable"
        assert "qualityReportS3Uri" not in job
