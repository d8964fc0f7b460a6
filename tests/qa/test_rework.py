"""QA gate decisions (smgt.qa.gate), re-work inputs and merges (smgt.rework) and the gate's config
rules, on hand-made data with the right answers written down; no Airflow, local files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sample_batches import notebook_batch

from smgt.config import BatchConfigError, LabelingJobConfig, validate_batch_config
from smgt.manifests import Storage
from smgt.qa.gate import SentBack, gate_failures
from smgt.qa.model import Finding, FrameRisk, JobRisk, ObjectRisk
from smgt.rework import build_rework_manifest, merge_rework, rework_job_config


def _object(line: int, risks: list[float], *, error: str | None = None) -> ObjectRisk:
    frames = [FrameRisk(f"{i:06d}.jpg", i, [Finding("box-jump", r, f"jump {r}", f"{i:06d}.jpg", i)] if r else [])
              for i, r in enumerate(risks)]
    return ObjectRisk(line, f"s3://b/seq{line}.json", None, [] if error else frames, error=error)


def test_gate_sends_back_objects_over_the_share_with_their_high_risk_frames():
    risk = JobRisk("job", "s3://b/out.manifest", "vehicle-ref", [
        _object(0, [0, 0.6, 0.2, 0, 0, 0, 0, 0, 0, 0]),  # 1 of 10 frames >= 0.5: exactly 10 %
        _object(1, [0.9, 0, 0, 0, 0, 0, 0, 0, 0, 1.4]),  # 2 of 10: 20 %
        _object(2, [0.4, 0.3]),  # findings, all below min_risk
        _object(3, [], error="no label (failed data object)"),
    ])
    assert [s.line for s in gate_failures(risk, min_risk=0.5, max_flagged_percent=0)] == [0, 1]
    [sent] = gate_failures(risk, min_risk=0.5, max_flagged_percent=10)  # 10 % is not above 10 %
    assert sent.line == 1 and sent.frames == ("000000.jpg", "000009.jpg") and sent.frames_scored == 10
    assert sent.to_dict()["flaggedPercent"] == 20.0
    assert sent.to_dict()["frames"][1] == {"frame": "000009.jpg", "risk": 1.4, "reasons": ["box-jump: jump 1.4"]}
    assert [s.line for s in gate_failures(risk, min_risk=0.3, max_flagged_percent=0)] == [0, 1, 2]


def _seq_label(frames: dict[str, list[dict]]) -> dict:
    return {"tracking-annotations": [{"frame-no": i, "frame": name, "annotations": items, "frame-attributes": {}}
                                     for i, (name, items) in enumerate(frames.items())]}


def _box(object_id: str, left: float, class_id: str = "0") -> dict:
    return {"object-id": object_id, "class-id": class_id, "left": left, "top": 10, "width": 20, "height": 10}


def _write(path: Path, obj) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return str(path)


def _manifest(path: Path, lines: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(path)


def test_video_rework_input_holds_the_sent_back_frames_and_the_merge_replaces_only_them(tmp_path):
    storage = Storage()
    names = [f"{i:06d}.jpg" for i in range(4)]
    sequences = [_write(tmp_path / f"in/seq{n}.json", {"prefix": "s3://b/frames/", "number-of-frames": 4,
                                                       "frames": [{"frame-no": i, "frame": f} for i, f in enumerate(names)]})
                 for n in range(2)]
    labels = [_write(tmp_path / f"out/{n}/SeqLabel.json", _seq_label({f: [_box("a", 10.0 * i)] for i, f in enumerate(names)}))
              for n in range(2)]
    meta = {"class-map": {"0": "Vehicle"}, "type": "groundtruth/video-object-tracking"}
    job_output = _manifest(tmp_path / "out/output.manifest", [
        {"source-ref": sequences[n], "vehicle-ref": labels[n], "vehicle-ref-metadata": meta} for n in range(2)])
    sent_back = [SentBack(1, sequences[1], (names[1], names[2]), 4, (0.9, 0.7), (("box-jump: x",), ("gap: y",)))]

    rework_input = str(tmp_path / "rework/input.manifest")
    assert build_rework_manifest(storage, job_output, rework_input, sent_back, media="video") == {"lines": 1, "frames": 2}
    [line] = [json.loads(x) for x in Path(rework_input).read_text().splitlines()]
    assert line["vehicle-ref"] == labels[1]  # the adjustment starts from the job's labels
    assert [f["frame"] for f in json.loads(Path(line["source-ref"]).read_text())["frames"]] == names[1:3]

    # The adjustment job's output: its own class-map order (Vehicle is 1 there), one frame fixed.
    fixed = _write(tmp_path / "rework-out/SeqLabel.json", _seq_label({names[1]: [_box("a", 11.0, "1")],
                                                                      names[2]: [_box("a", 20.0, "1")]}))
    rework_output = _manifest(tmp_path / "rework-out/output.manifest", [
        {**line, "vehicle-rework1-ref": fixed,
         "vehicle-rework1-ref-metadata": {"class-map": {"0": "Pedestrian", "1": "Vehicle"}}}])
    effective = str(tmp_path / "effective/round1/output.manifest")
    summary = merge_rework(storage, manifest_uri=job_output, label_attribute="vehicle-ref",
                           rework_input_uri=rework_input, rework_output_uri=rework_output,
                           rework_attribute="vehicle-rework1-ref", out_manifest_uri=effective, sent_back_lines=[1])
    assert summary == {"linesReworked": 1, "framesReplaced": 2, "notReworked": []}
    out = [json.loads(x) for x in Path(effective).read_text().splitlines()]
    assert out[0] == {"source-ref": sequences[0], "vehicle-ref": labels[0], "vehicle-ref-metadata": meta}
    merged = json.loads(Path(out[1]["vehicle-ref"]).read_text())["tracking-annotations"]
    assert [f["annotations"][0]["left"] for f in merged] == [0.0, 11.0, 20.0, 30.0]
    assert [f["annotations"][0]["class-id"] for f in merged] == ["0", "0", "0", "0"]  # mapped to the job's ids
    assert [f["frame-no"] for f in merged] == [0, 1, 2, 3]
    assert out[1]["vehicle-ref-metadata"] == meta
    assert json.loads(Path(labels[1]).read_text())["tracking-annotations"][1]["annotations"][0]["left"] == 10.0


def test_image_merge_keeps_an_object_the_adjustment_job_failed(tmp_path):
    storage = Storage()
    meta = {"class-map": {"0": "Car"}}
    lines = [{"source-ref": f"s3://b/img{n}.jpg", "boxes": {"annotations": [{"class_id": 0, "left": n}]},
              "boxes-metadata": meta} for n in range(3)]
    job_output = _manifest(tmp_path / "out.manifest", lines)
    sent_back = [SentBack(0, "s3://b/img0.jpg", (None,), 1, (1.0,), (("duplicate: d",),)),
                 SentBack(2, "s3://b/img2.jpg", (None,), 1, (0.8,), (("degenerate: e",),))]
    rework_input = str(tmp_path / "rework/input.manifest")
    assert build_rework_manifest(storage, job_output, rework_input, sent_back, media="image") == {"lines": 2, "frames": 2}
    rework_output = _manifest(tmp_path / "rework/output.manifest", [
        {**lines[0], "boxes-rework1": {"annotations": [{"class_id": 1, "left": 99}]},
         "boxes-rework1-metadata": {"class-map": {"1": "Truck"}}},
        {**lines[2], "boxes-rework1-metadata": {"failure-reason": "ClientError: worker did not answer"}},
    ])
    effective = str(tmp_path / "effective.manifest")
    summary = merge_rework(storage, manifest_uri=job_output, label_attribute="boxes", rework_input_uri=rework_input,
                           rework_output_uri=rework_output, rework_attribute="boxes-rework1",
                           out_manifest_uri=effective, sent_back_lines=[0, 2])
    assert summary == {"linesReworked": 1, "framesReplaced": 1, "notReworked": [2]}
    out = [json.loads(x) for x in Path(effective).read_text().splitlines()]
    assert out[0]["boxes"] == {"annotations": [{"class_id": 1, "left": 99}]}
    assert out[0]["boxes-metadata"]["class-map"] == {"0": "Car", "1": "Truck"}  # a new label gets the next id
    assert out[1] == lines[1] and out[2] == lines[2]


def test_rework_job_is_the_audit_task_type_on_the_jobs_work_team():
    config = validate_batch_config({**notebook_batch("gate-1"), "qaGates": {"1": {"maxRounds": 2}}})
    vehicle = config.job("gate-1-vehicle")
    rework = rework_job_config(vehicle, 2)
    assert (rework.jobName, rework.jobModality, rework.labelAttributeName) == (
        "gate-1-vehicle-rework2", "VideoObjectTrackingAudit", "vehicle-rework2-ref")
    assert rework.workteamArn == vehicle.workteamArn and rework.inputConfig.chainFromJobName == "gate-1-vehicle"
    audit = config.job("gate-1-vehicle-audit")
    assert audit.qa is None  # the level-1 gate does not apply to level 2
    assert rework_job_config(audit, 1).jobModality == "VideoObjectTrackingAudit"
    assert isinstance(rework, LabelingJobConfig)


@pytest.mark.parametrize("change, fragment", [
    (lambda b: b.update(qaGates={"4": {}}), "qaGates: '4': must be a job level from 1 to 3"),
    (lambda b: b.update(qaGates={"1": {"maxRounds": 9}}), "qaGates.1.maxRounds: Input should be less than or equal to 3"),
    (lambda b: b.update(qaGates={"1": {"maxFlaggedPercent": 100}}), "qaGates.1.maxFlaggedPercent"),
    (lambda b: b.update(qaGates={"1": {"minrisk": 1}}), "qaGates.1.minrisk: unknown field"),
    (lambda b: b["labelingJobs"][0].update(qa={"gate": {"minRisk": -1}}), "qa.gate.minRisk"),
    (lambda b: b["labelingJobs"][0].update(jobName="v" * 56, qa={"gate": {}}) or b["labelingJobs"][2][
        "inputConfig"].update(chainFromJobName="v" * 56),
     "jobName: at most 55 characters with a QA gate of 1 round(s)"),
    (lambda b: b["labelingJobs"][1].update(jobName="gate-1-vehicle-rework1") or b["labelingJobs"][3]["inputConfig"].update(
        chainFromJobName="gate-1-vehicle-rework1") or b["labelingJobs"][0].update(qa={"gate": {}}),
     "qa.gate: its re-work job 'gate-1-vehicle-rework1' has the name of another job of the batch"),
])
def test_bad_gates_are_refused_with_the_field_named(change, fragment):
    data = notebook_batch("gate-1")
    change(data)
    with pytest.raises(BatchConfigError) as info:
        validate_batch_config(data)
    assert any(fragment in problem for problem in info.value.problems), info.value.problems


def test_gate_on_unscored_labels_is_refused_and_a_level_default_skips_them():
    data = notebook_batch("gate-1")
    data["labelingJobs"][0].update(jobModality="SemanticSegmentation", qa={"gate": {}})
    data["labelingJobs"][2].update(jobModality="SemanticSegmentationAudit")
    with pytest.raises(BatchConfigError, match="qa: gate: a QA gate needs labels smgt.qa scores"):
        validate_batch_config(data)
    del data["labelingJobs"][0]["qa"]
    config = validate_batch_config({**data, "qaGates": {"1": {}}})
    assert config.job("gate-1-vehicle").qa is None and config.job("gate-1-lane").qa.gate.minRisk == 0.5


def test_a_rework_job_name_taken_in_ground_truth_is_refused_before_anything_starts():
    data = {**notebook_batch("gate-1"), "qaGates": {"1": {}}}
    asked: list[str] = []

    def existing(names):
        asked.extend(names)
        return ["gate-1-lane-rework1"]

    with pytest.raises(BatchConfigError) as info:
        validate_batch_config(data, existing_job_names=existing)
    assert {"gate-1-vehicle-rework1", "gate-1-lane-rework1", "gate-1-vehicle"} <= set(asked)
    assert info.value.problems == [
        "labelingJobs[1] 'gate-1-lane': qa.gate: its re-work job 'gate-1-lane-rework1': a Ground Truth labeling "
        "job with this name already exists (GT keeps names unique per account and region forever)"]


def test_batch_page_lists_each_round_and_why_objects_went_back():
    from smgt.api.ui import _job_detail

    html = _job_detail({"rework": {"gate": {}, "rounds": [{
        "round": 1, "jobName": "b-vehicle-rework1", "status": "COMPLETE", "objectsSentBack": 1,
        "sentBack": [{"sourceRef": "s3://b/seq.json", "framesSentBack": 2, "framesScored": 15,
                      "frames": [{"frame": "000009.jpg", "reasons": ["box-jump: jumps", "scale: tall"]},
                                 {"frame": "000021.jpg", "reasons": ["box-jump: jumps"]}]}]}],
        "stillFlagged": {"objectsSentBack": 1}}, "effectiveOutputS3Url": "https://s3/effective"})
    assert "round 1: b-vehicle-rework1" in html and "1 sent back" in html
    assert "seq.json: 2 of 15 frames (box-jump, scale)" in html
    assert "1 data object(s) still fail the gate" in html and 'href="https://s3/effective"' in html
    assert _job_detail({"rework": {"gate": {}, "rounds": []}}).count("every data object passed") == 1
