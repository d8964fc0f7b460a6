"""Between levels: parent vs adjusted objects, and CLEAR MOT / IDF1 / HOTA from trackeval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smgt.manifests import Storage
from smgt.qa import compare_frames, compare_job_outputs, mot_events_per_frame, mot_metrics, score_job_output
from smgt.qa.levels import summarize_changes


def box(oid: str, left: float, audit: str | None = None) -> dict:
    attrs = {"audit": audit} if audit else {}
    return {"object-id": oid, "object-name": f"Car:{oid}", "class-id": "0", "label-category-attributes": attrs,
            "left": left, "top": 100, "width": 50, "height": 50}


def test_identical_tracks_score_perfectly():
    gt = [[("a", (10.0 * t, 0.0, 50.0, 50.0)), ("b", (200.0, 0.0, 50.0, 50.0))] for t in range(5)]
    m = mot_metrics(gt, gt)
    assert (m["MOTA"], m["IDF1"], m["TP"], m["FN"], m["FP"], m["IDSW"]) == (1.0, 1.0, 10, 0, 0, 0)
    assert m["HOTA"] == pytest.approx(1.0)


def test_a_miss_a_false_positive_and_an_identity_switch_are_counted_on_their_frames():
    gt = [[("a", (0.0, 0.0, 50.0, 50.0)), ("b", (200.0, 0.0, 50.0, 50.0))] for _ in range(4)]
    tracker = [
        [("1", (0.0, 0.0, 50.0, 50.0)), ("2", (200.0, 0.0, 50.0, 50.0))],
        [("1", (0.0, 0.0, 50.0, 50.0))],  # b missed
        [("1", (0.0, 0.0, 50.0, 50.0)), ("2", (200.0, 0.0, 50.0, 50.0)), ("3", (400.0, 0.0, 50.0, 50.0))],  # FP
        [("9", (0.0, 0.0, 50.0, 50.0)), ("2", (200.0, 0.0, 50.0, 50.0))],  # a continues as 9: IDSW
    ]
    assert mot_events_per_frame(gt, tracker) == [
        {"FP": 0, "FN": 0, "IDSW": 0}, {"FP": 0, "FN": 1, "IDSW": 0},
        {"FP": 1, "FN": 0, "IDSW": 0}, {"FP": 0, "FN": 0, "IDSW": 1}]
    m = mot_metrics(gt, tracker)
    assert (m["FN"], m["FP"], m["IDSW"]) == (1, 1, 1)
    assert m["MOTA"] == pytest.approx(1 - 3 / 8)
    assert m["IDF1"] < 1 and m["HOTA"] < 1


def test_compare_frames_per_object():
    parent = [{"frame": "1.jpg", "annotations": [box("a", 10), box("b", 100), box("c", 300)]},
              {"frame": "2.jpg", "annotations": [box("a", 12)]}]
    adjusted = [{"frame": "1.jpg", "annotations": [box("a", 10, "Pass"), box("b", 125, "Fail"), box("d", 500, "Pass")]}]
    changes = {c.object_id: c for c in compare_frames(parent, adjusted, parent_class_map={"0": "Car"},
                                                      adjusted_class_map={"0": "Car"})}
    assert {k: c.status for k, c in changes.items()} == {"a": "unchanged", "b": "adjusted", "c": "removed", "d": "added"}
    assert changes["a"].iou == 1.0 and changes["b"].iou == pytest.approx(25 / 75)
    assert changes["b"].failed and not changes["a"].failed
    summary = summarize_changes(list(changes.values()), "label")
    assert summary["Car"] == {"objects": 4, "adjusted": 3, "shareAdjusted": 0.75, "auditFail": 1, "auditFailRate": 0.25,
                              "meanIoU": pytest.approx((1.0 + changes["b"].iou) / 2, abs=1e-4)}


def test_one_pixel_is_within_tolerance():
    parent = [{"frame": "1.jpg", "annotations": [box("a", 10)]}]
    adjusted = [{"frame": "1.jpg", "annotations": [box("a", 11)]}]
    assert [c.status for c in compare_frames(parent, adjusted)] == ["unchanged"]


def _write(path: Path, body) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return str(path)


def test_compare_job_outputs_per_level_one_worker(tmp_path):
    """Two sequences labeled by two level-1 workers; the audit changed one of worker-2's objects."""
    root = tmp_path / "out"
    parent_lines, child_lines = [], []
    for index in range(2):
        p_label = _write(root / "p" / "annotations" / "consolidated-annotation" / "output" / str(index) / "SeqLabel.json",
                         {"tracking-annotations": [{"frame": f"{t}.jpg", "annotations": [box("a", 10 + t)]}
                                                   for t in range(4)]})
        moved = 40 if index == 1 else 0
        c_label = _write(root / "c" / "annotations" / "consolidated-annotation" / "output" / str(index) / "SeqLabel.json",
                         {"tracking-annotations": [{"frame": "2.jpg", "annotations": [
                             box("a", 12 + moved, "Fail" if moved else "Pass")]}]})
        _write(root / "p" / "annotations" / "worker-response" / "iteration-1" / str(index) / "2026.json",
               {"answers": [{"workerId": f"private.us-east-1.worker{index + 1}", "timeSpentInSeconds": 60.0}]})
        meta = {"class-map": {"0": "Car"}, "type": "groundtruth/video-object-tracking"}
        parent_lines.append({"source-ref": f"s3://in/{index}.json", "v-ref": p_label, "v-ref-metadata": meta})
        child_lines.append({**parent_lines[-1], "va-ref": c_label, "va-ref-metadata": {**meta, "adjustment-status": "x"}})
    parent_manifest = _write(root / "p" / "manifests" / "output" / "output.manifest",
                             "\n".join(json.dumps(line) for line in parent_lines) + "\n")
    child_manifest = _write(root / "c" / "manifests" / "output" / "output.manifest",
                            "\n".join(json.dumps(line) for line in child_lines) + "\n")
    result = compare_job_outputs(Storage(), parent_manifest, "v-ref", child_manifest, "va-ref").to_dict()
    assert result["objects"] == 2 and result["adjusted"] == 1
    assert result["perWorker"]["private.us-east-1.worker1"]["shareAdjusted"] == 0.0
    assert result["perWorker"]["private.us-east-1.worker2"] == {
        "objects": 1, "adjusted": 1, "shareAdjusted": 1.0, "auditFail": 1, "auditFailRate": 1.0, "meanIoU": pytest.approx(10 / 90, abs=1e-4)}  # 10 of 50 px overlap: 500 / 4500
    assert result["mot"]["TP"] == 1 and result["mot"]["FN"] == 1 and result["mot"]["FP"] == 1
    # The parent's own score with its workers, as JSON.
    risk = score_job_output(Storage(), parent_manifest, "v-ref", job_name="p", with_workers=True)
    assert [o.worker_id for o in risk.objects] == ["private.us-east-1.worker1", "private.us-east-1.worker2"]
    json.dumps(risk.to_dict())


def test_score_job_output_reports_unscored_lines(tmp_path):
    manifest = _write(tmp_path / "j" / "manifests" / "output" / "output.manifest", "\n".join(json.dumps(line) for line in [
        {"source-ref": "s3://in/0.json", "v-ref-metadata": {"failure-reason": "ClientError: expired"}},
        {"source-ref": "s3://in/1.json", "v-ref": str(tmp_path / "missing.json"), "v-ref-metadata": {}},
    ]) + "\n")
    risk = score_job_output(Storage(), manifest, "v-ref")
    assert [o.error for o in risk.objects] == ["no label (failed data object: ClientError: expired)",
                                             f"{tmp_path / 'missing.json'}: no such file"]
    assert risk.to_dict()["framesScored"] == 0
