"""A batch with a QA gate, end to end with dag.test() on the emulator: the level-1 vehicle job gets
injected errors, the gate sends its sequence back to the job's work team as an adjustment job on the
flagged frames, level 2 chains from the corrected output, the batch is COMPLETE and the quality
report names the injected frames."""

from __future__ import annotations

import pytest
from dag_helpers import run_batch_with_faults, snapshot_of
from sample_batches import targeted_demo_batch

from smgt import batch_status
from smgt.local.injection import read_injected_errors
from smgt.manifests import Storage, seq_label_frames
from smgt.qa.job import iter_output_lines

pytestmark = pytest.mark.timeout(600)


def _line(storage: Storage, manifest_uri: str) -> dict:
    lines = [obj for _, obj in iter_output_lines(storage, manifest_uri)]
    assert len(lines) == 1  # the demo manifest holds one video
    return lines[0]


def _frames(storage: Storage, seq_label_uri: str) -> dict:
    return seq_label_frames(storage.read_json(seq_label_uri), "tracking-annotations")


def test_qa_gate_sends_flagged_frames_to_rework_and_level_two_chains_from_the_corrected_output(emulator):
    batch_id = "qa-gate-1"  # fixed: injected errors and simulated labels are seeded with the job names
    vehicle, rework = f"{batch_id}-vehicle", f"{batch_id}-vehicle-rework1"
    conf = targeted_demo_batch(batch_id, emulator.demo, exploration=0)
    conf["qaGates"] = {"1": {"minRisk": 0.5}}  # the lane job, without injected errors, is gated too
    run = run_batch_with_faults(emulator, conf, {"label_errors": [
        {"pattern": vehicle, "frames": [4, 10], "kinds": ["jitter", "miss"], "jitter": 1.0, "seed": 3}]})
    assert run.state == "success"
    detail = batch_status.describe_batch(snapshot_of(batch_id))
    assert detail["status"] == "COMPLETE", detail.get("message")
    storage = Storage(emulator.client("s3"))
    level_one = {j["labelingJobName"]: j for j in detail["firstLevel"]["jobLevels"]}
    job = level_one[vehicle]
    injected = read_injected_errors(storage, job["jobOutputS3Uri"])
    injected_frames = {e["frame"] for e in injected[0]["errors"]}
    assert len(injected_frames) == 2

    # The job's quality report names the injected frames among those it sent back, with the reasons.
    report = storage.read_json(job["qualityReportS3Uri"])
    [reported] = report["rework"]["rounds"][0]["sentBack"]
    reported_frames = {f["frame"]: f for f in reported["frames"]}
    assert injected_frames <= set(reported_frames)
    assert all(reported_frames[frame]["reasons"] for frame in injected_frames)

    # One re-work round on the job's own work team, on the flagged frames, and why.
    gate = job["rework"]
    assert gate["gate"] == {"minRisk": 0.5, "maxFlaggedPercent": 0.0, "maxRounds": 1}
    [round_one] = gate["rounds"]
    assert round_one["jobName"] == rework and round_one["status"] == "COMPLETE"
    assert round_one["objectsSentBack"] == 1 and round_one["linesReworked"] == 1
    [sent] = round_one["sentBack"]
    sent_frames = {f["frame"]: f for f in sent["frames"]}
    assert injected_frames <= set(sent_frames)
    for frame in injected_frames:
        assert sent_frames[frame]["risk"] >= 0.5 and sent_frames[frame]["reasons"]
    assert round_one["framesReplaced"] == len(sent_frames) == sent["framesSentBack"]

    sagemaker = emulator.client("sagemaker")
    described = sagemaker.describe_labeling_job(LabelingJobName=rework)
    original = sagemaker.describe_labeling_job(LabelingJobName=vehicle)
    assert described["LabelingJobStatus"] == "Completed"
    assert described["HumanTaskConfig"]["WorkteamArn"] == original["HumanTaskConfig"]["WorkteamArn"]
    assert described["HumanTaskConfig"]["PreHumanTaskLambdaArn"].endswith("PRE-AdjustmentVideoObjectTracking")
    assert described["LabelAttributeName"] == "vehicle-rework1-ref"
    rework_input = _line(storage, described["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"])
    assert {f["frame"] for f in storage.read_json(rework_input["source-ref"])["frames"]} == set(sent_frames)

    # The effective output: the re-worked frames carry the re-work job's labels, the others the job's own.
    effective = _line(storage, job["effectiveOutputS3Uri"])
    merged = _frames(storage, effective["vehicle-ref"])
    original_frames = _frames(storage, _line(storage, job["jobOutputS3Uri"])["vehicle-ref"])
    reworked = _frames(storage, _line(storage, round_one["outputManifestS3Uri"])["vehicle-rework1-ref"])
    assert set(merged) == set(original_frames)
    for name, frame in merged.items():
        source = reworked[name] if name in sent_frames else original_frames[name]
        assert frame["annotations"] == source["annotations"], name

    # Level 2 chained from the effective output: its input line carries the merged labels.
    audit = {j["labelingJobName"]: j for j in detail["secondLevel"]["jobLevels"]}[f"{batch_id}-vehicle-audit"]
    assert _line(storage, audit["jobInputS3Uri"])["vehicle-ref"] == effective["vehicle-ref"]
    assert audit["batchStatus"] == "COMPLETE"

    # The lane job passed its gate (no rounds) and its audit chained from its own output.
    lane = level_one[f"{batch_id}-lane"]
    assert lane["rework"]["rounds"] == [] and "effectiveOutputS3Uri" not in lane

    # A retried labeling_job task rebuilds the same round and adopts its job instead of making another.
    from smgt.config import validate_batch_config
    from smgt.labeling_job import gt_hook
    from smgt.qa import score_job_output
    from smgt.qa.gate import gate_failures
    from smgt.rework import prepare_rework
    from smgt.settings import get_settings

    config = validate_batch_config(conf).job(vehicle)
    again = gate_failures(score_job_output(storage, job["jobOutputS3Uri"], "vehicle-ref"), min_risk=0.5,
                          max_flagged_percent=0)
    prepared = prepare_rework(storage, settings=get_settings(), batch_id=batch_id, job=config, round_number=1,
                              manifest_uri=job["jobOutputS3Uri"], sent_back=again)
    assert gt_hook(get_settings()).create_labeling_job(prepared["request"])["adopted"] is True
    assert [j["LabelingJobName"] for j in sagemaker.list_labeling_jobs(NameContains=rework)["LabelingJobSummaryList"]] == [rework]


def test_a_failed_rework_job_fails_the_batch_naming_it(emulator):
    batch_id = "qa-gate-fail-1"
    conf = targeted_demo_batch(batch_id, emulator.demo)
    conf["labelingJobs"] = [j for j in conf["labelingJobs"] if j["jobName"] == f"{batch_id}-vehicle"]
    conf["labelingJobs"][0]["qa"] = {"gate": {}}
    run = run_batch_with_faults(emulator, conf, {
        "label_errors": [{"pattern": f"{batch_id}-vehicle", "frames": [4], "jitter": 1.0}],
        "fail_jobs": [{"pattern": "*-rework1", "reason": "ClientError: the team gave up"}]})
    assert run.state == "failed"
    detail = batch_status.describe_batch(snapshot_of(batch_id))
    assert detail["status"] == "INTERNAL_ERROR"
    assert (f"job {batch_id}-vehicle (level 1) FAILED: QA gate re-work job {batch_id}-vehicle-rework1 (round 1) "
            "Failed: ClientError: the team gave up") in detail["message"]
    [job] = detail["firstLevel"]["jobLevels"]
    assert job["rework"]["rounds"][0]["status"] == "FAILED" and "effectiveOutputS3Uri" not in job
