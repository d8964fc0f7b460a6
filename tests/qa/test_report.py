"""smgt.qa.report on a hand-made two-level output (local paths), with the numbers written down."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from smgt.manifests import Storage
from smgt.qa.report import (
    batch_report_uri,
    draw_thumbnail,
    job_report_uri,
    report_summary,
    residual_error_rate,
    write_batch_report,
    write_job_report,
)

META = {"class-map": {"0": "Car"}, "type": "groundtruth/video-object-tracking"}


def car(oid: str, left: float, width: float = 30, audit: str | None = None) -> dict:
    attrs = {"audit": audit} if audit else {}
    return {"object-id": oid, "object-name": f"Car:{oid}", "class-id": "0", "label-category-attributes": attrs,
            "left": left, "top": 40, "width": width, "height": 20}


def _write(path: Path, body) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return str(path)


def _lines(path: Path, lines: list[dict]) -> str:
    return _write(path, "\n".join(json.dumps(line) for line in lines) + "\n")


@pytest.fixture()
def two_levels(tmp_path):
    """Level 1 "p": seq0 (worker1, 5 frames, cars a and b; b has zero width on 3.jpg) and seq1 (worker2,
    3 frames, car a). Level 2 "c" audited seq0 frames 1 and 3 (random) and seq1 frame 0; it fixed b on 3.jpg."""
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    for t in range(5):
        Image.new("RGB", (200, 100), (90, 90, 90)).save(frames_dir / f"{t}.jpg")
    seqs = [_write(tmp_path / "in" / f"seq{i}.json",
                   {"prefix": str(frames_dir) + "/", "frames": [{"frame": f"{t}.jpg", "frame-no": t} for t in range(n)]})
            for i, n in ((0, 5), (1, 3))]
    out = tmp_path / "out"
    p_frames = [[{"frame": f"{t}.jpg", "annotations": [car("a", 20 + 2 * t), car("b", 120, 0 if t == 3 else 30)]}
                 for t in range(5)],
                [{"frame": f"{t}.jpg", "annotations": [car("a", 40 + 2 * t)]} for t in range(3)]]
    parent_lines = []
    for i in range(2):
        label = _write(out / "p" / "annotations" / "consolidated-annotation" / "output" / str(i) / "SeqLabel.json",
                       {"tracking-annotations": p_frames[i]})
        _write(out / "p" / "annotations" / "worker-response" / "iteration-1" / str(i) / "1.json",
               {"answers": [{"workerId": f"worker{i + 1}", "timeSpentInSeconds": 60.0 if i == 0 else 30.0}]})
        parent_lines.append({"source-ref": seqs[i], "v-ref": label, "v-ref-metadata": META})
    parent_manifest = _lines(out / "p" / "manifests" / "output" / "output.manifest", parent_lines)

    sampled = [_write(tmp_path / "inputs" / "c" / f"s{i}.json", {"prefix": str(frames_dir) + "/", "frames": []})
               for i in range(2)]
    c_frames = [[{"frame": "1.jpg", "annotations": [car("a", 22, audit="Pass"), car("b", 120, audit="Pass")]},
                 {"frame": "3.jpg", "annotations": [car("a", 26, audit="Pass"), car("b", 120, audit="Fail")]}],
                [{"frame": "0.jpg", "annotations": [car("a", 40, audit="Pass")]}]]
    child_lines = []
    for i in range(2):
        label = _write(out / "c" / "annotations" / "consolidated-annotation" / "output" / str(i) / "SeqLabel.json",
                       {"tracking-annotations": c_frames[i]})
        child_lines.append({**parent_lines[i], "source-ref": sampled[i], "va-ref": label, "va-ref-metadata": META})
    child_manifest = _lines(out / "c" / "manifests" / "output" / "output.manifest", child_lines)
    record = _lines(tmp_path / "inputs" / "c" / "input.manifest.sampling.jsonl", [
        {"line": 0, "source-ref": seqs[0], "sampled-ref": sampled[0], "framesIn": 5, "framesOut": 2,
         "frames": ["1.jpg", "3.jpg"]},
        {"line": 1, "source-ref": seqs[1], "sampled-ref": sampled[1], "framesIn": 3, "framesOut": 1, "frames": ["0.jpg"]},
    ])
    sampling = {"recordUri": record, "level": "frames", "rate": 34, "framesIn": 8, "framesOut": 3}
    return {"tmp": tmp_path, "parent": parent_manifest, "child": child_manifest, "sampling": sampling}


def test_job_report_of_level_one(two_levels):
    storage = Storage()
    report = write_job_report(storage, job_name="p", job_level=1, output_manifest_uri=two_levels["parent"],
                              label_attribute="v-ref")
    assert report["reportS3Uri"] == str(two_levels["tmp"] / "out" / "p" / "quality" / "report.json")
    assert json.loads(Path(report["reportS3Uri"]).read_text()) == report
    assert report["risk"]["framesScored"] == 8
    assert sum(report["risk"]["riskHistogram"].values()) == 8
    assert report["risk"]["signals"].get("degenerate") == 1
    # Objects: seq0 5 frames x 2 cars + seq1 3 frames x 1 car; tracks: a, b of seq0 and a of seq1.
    assert report["perLabel"]["Car"]["objects"] == 13 and report["perLabel"]["Car"]["tracks"] == 3
    assert report["perWorker"] == {
        "worker1": {"dataObjects": 1, "objectsLabeled": 10, "tasks": 1, "meanTimePerTaskSeconds": 60.0},
        "worker2": {"dataObjects": 1, "objectsLabeled": 3, "tasks": 1, "meanTimePerTaskSeconds": 30.0}}
    top = report["flaggedFrames"][0]
    assert (top["line"], top["frame"]) == (0, "3.jpg")
    assert any(r.startswith("degenerate:") for r in top["reasons"])
    with Image.open(top["thumbnailS3Uri"]) as thumb:
        assert thumb.format == "JPEG" and thumb.size == (320, 160)
        # The flagged car b (object-id b, left 120 -> 192 px in the thumbnail) is drawn in red.
        r, g, b = thumb.convert("RGB").getpixel((193, 72))
        assert r > 150 and g < 100
    assert "residualErrorRate" not in report and "betweenLevels" not in report


def test_job_report_of_level_two_and_the_batch_report(two_levels):
    storage = Storage()
    parent = write_job_report(storage, job_name="p", job_level=1, output_manifest_uri=two_levels["parent"],
                              label_attribute="v-ref")
    child = write_job_report(storage, job_name="c", job_level=2, output_manifest_uri=two_levels["child"],
                             label_attribute="va-ref", sampling=two_levels["sampling"],
                             parent={"jobName": "p", "labelAttributeName": "v-ref",
                                     "outputManifestS3Uri": two_levels["parent"]})
    between = child["betweenLevels"]
    assert (between["objects"], between["adjusted"], between["parentJobName"]) == (5, 1, "p")
    assert between["perWorker"]["worker1"]["shareAdjusted"] == 0.25
    assert child["perLabel"]["Car"]["shareAdjusted"] == 0.2 and child["perLabel"]["Car"]["auditFailRate"] == 0.2
    # Random sample: 1 of 3 audited frames wrong; 5 of 8 frames unaudited -> 1/3 * 5/8.
    assert child["residualErrorRate"] == {
        "estimator": "random sample", "framesUsed": 3, "framesWrong": 1, "errorRateInPool": 0.3333,
        "standardError": 0.2722, "unauditedPoolFrames": 5, "framesIn": 8, "residualErrorRate": 0.2083}

    uri = batch_report_uri(str(two_levels["tmp"] / "batch"))
    batch = write_batch_report(storage, "b", uri, [report_summary(parent), report_summary(child)])
    assert json.loads(Path(uri).read_text()) == batch
    assert [j["jobName"] for j in batch["jobs"]] == ["p", "c"]
    assert batch["betweenLevels"][0] | {"mot": None} == {
        "parentJobName": "p", "jobName": "c", "objects": 5, "adjusted": 1, "shareAdjusted": 0.2,
        "auditFailRate": 0.2, "mot": None}
    assert batch["level1Workers"]["p"]["worker1"] == {
        "dataObjects": 1, "objectsLabeled": 10, "tasks": 1, "meanTimePerTaskSeconds": 60.0,
        "auditedObjects": 4, "shareAdjustedAtNextLevel": 0.25, "auditFailRate": 0.25}
    assert job_report_uri(two_levels["child"]).endswith("/c/quality/report.json")


def test_residual_error_rate_from_the_exploration_frames_only():
    records = [{"sampled-ref": "s0", "framesIn": 10, "explorationPool": 8, "explored": 2,
                "scores": [{"frame": "a", "pick": "risk"}, {"frame": "b", "pick": "explore"},
                           {"frame": "c", "pick": "explore"}]}]
    changed = {("s0", "a"): True, ("s0", "b"): True, ("s0", "c"): False}
    got = residual_error_rate({"level": "frames", "strategy": "targeted"}, records, changed)
    # The risk pick "a" is not used: p = 1/2 over the exploration frames; 6 pool frames unaudited of 10.
    assert got == {"estimator": "exploration sample (targeted)", "framesUsed": 2, "framesWrong": 1,
                   "errorRateInPool": 0.5, "standardError": 0.3536, "unauditedPoolFrames": 6, "framesIn": 10,
                   "residualErrorRate": 0.3}
    no_exploration = [{**records[0], "explored": 0, "scores": records[0]["scores"][:1]}]
    assert residual_error_rate({"level": "frames", "strategy": "targeted"}, no_exploration, changed) is None
    assert residual_error_rate(None, records, changed) is None


def test_thumbnail_draws_boxes_and_polylines():
    buf = io.BytesIO()
    Image.new("RGB", (640, 320), (0, 0, 0)).save(buf, format="PNG")
    frame = {"annotations": [car("x", 100)],
             "polylines": [{"object-id": "l", "vertices": [{"x": 0, "y": 300}, {"x": 639, "y": 300}]}]}
    jpeg = draw_thumbnail(buf.getvalue(), frame, flagged_ids=["l"], width=160)
    with Image.open(io.BytesIO(jpeg)) as img:
        assert img.size == (160, 80)
        rgb = img.convert("RGB")
        assert rgb.getpixel((80, 75))[0] > 120  # the flagged lane line, red, at y 300 -> 75
        assert rgb.getpixel((25, 10))[1] > 100  # car x's left edge (100 -> 25), green
        assert max(rgb.getpixel((120, 40))) < 40  # nothing drawn elsewhere


def test_image_job_report_draws_the_flagged_image(tmp_path):
    image = tmp_path / "img" / "a.png"
    image.parent.mkdir()
    Image.new("RGB", (400, 200), (0, 0, 0)).save(image)
    boxes = [{"class_id": 0, "left": 10, "top": 10, "width": 200, "height": 150},
             {"class_id": 0, "left": 20, "top": 10, "width": 200, "height": 150}]  # a duplicate (IoU 0.905)
    manifest = _lines(tmp_path / "j" / "manifests" / "output" / "output.manifest", [
        {"source-ref": str(image), "b": {"annotations": boxes, "image_size": [{"width": 400, "height": 200}]},
         "b-metadata": {"class-map": {"0": "Car"}, "type": "groundtruth/object-detection"}}])
    report = write_job_report(Storage(), job_name="j", job_level=1, output_manifest_uri=manifest, label_attribute="b")
    assert report["perLabel"]["Car"]["objects"] == 2 and report["perLabel"]["Car"]["tracks"] == 0
    assert report["risk"]["signals"].get("duplicate") == 1
    [flagged] = report["flaggedFrames"]
    assert flagged["imageS3Uri"] == str(image) and "frame" in flagged and flagged["frame"] is None
    with Image.open(flagged["thumbnailS3Uri"]) as thumb:
        assert thumb.size == (320, 160)
        rgb = thumb.convert("RGB")
        # Left edges at x 10 and 20 -> 8 and 16: box 0 green, box 1 (the duplicate finding's object) red.
        assert any(g > 120 and r < 100 for r, g, _ in (rgb.getpixel((x, 40)) for x in range(7, 10)))
        assert any(r > 150 and g < 100 for r, g, _ in (rgb.getpixel((x, 40)) for x in range(15, 18)))
