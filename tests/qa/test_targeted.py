"""Targeted down-sampling: deterministic for a seed, respects the budget and the exploration share,
records scores and reasons; the config fields are validated like every other."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from sample_batches import notebook_batch

from smgt.config import BatchConfigError, validate_batch_config
from smgt.manifests import Storage, build_chained_manifest, exploration_count, record_uri_for, targeted_choice
from smgt.registry import MediaKind

ATTR = "vehicle-ref"
N_FRAMES = 20
BAD_FRAMES = (3, 11)  # frames whose box jumps away and back


def seq_label(n: int = N_FRAMES, bad: tuple[int, ...] = BAD_FRAMES) -> dict:
    frames = []
    for i in range(n):
        left = 100 + 3 * i + (60 if i in bad else 0)
        frames.append({"frame-no": i, "frame": f"{i + 1:06d}.jpg", "annotations": [
            {"object-id": "a", "object-name": "Vehicle:1", "class-id": "0", "label-category-attributes": {},
             "left": left, "top": 200, "width": 60, "height": 40}]})
    return {"tracking-annotations": frames}


def write_parent(tmp_path: Path, sequences: int = 1, **kw) -> str:
    lines = []
    for k in range(sequences):
        seq = {"seq-no": k, "prefix": str(tmp_path / "frames") + "/", "number-of-frames": N_FRAMES,
               "frames": [{"frame-no": i + 1, "frame": f"{i + 1:06d}.jpg"} for i in range(N_FRAMES)]}
        seq_path = tmp_path / "in" / f"v{k}_seq.json"
        label_path = tmp_path / "out" / str(k) / "SeqLabel.json"
        for path, body in ((seq_path, seq), (label_path, seq_label(**kw))):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(body))
        lines.append(json.dumps({"source-ref": str(seq_path), ATTR: str(label_path), f"{ATTR}-metadata": {
            "class-map": {"0": "Vehicle"}, "type": "groundtruth/video-object-tracking", "human-annotated": "yes"}}))
    manifest = tmp_path / "out" / "output.manifest"
    manifest.write_text("\n".join(lines) + "\n")
    return str(manifest)


def chain(src: str, dest: Path, *, rate: float = 20, batch: str = "b1", **kw):
    return build_chained_manifest(Storage(), src, str(dest), media=MediaKind.VIDEO, rate=rate, batch_id=batch,
                                  job_name="vehicle-audit", parent_label_attribute=ATTR, strategy="targeted", **kw)


def records(dest: Path) -> list[dict]:
    return [json.loads(line) for line in Path(record_uri_for(str(dest))).read_text().splitlines()]


# --------------------------------------------------------------------------------------------------
# The selection itself
# --------------------------------------------------------------------------------------------------


def test_highest_risks_first_then_exploration_from_the_rest():
    risks = [float(i) for i in range(20)]  # frame i has risk i
    picks = targeted_choice(risks, 10, 30, random.Random(1))
    assert len(picks) == 10
    by_risk = [i for i, pick in picks if pick == "risk"]
    explored = [i for i, pick in picks if pick == "explore"]
    assert sorted(by_risk) == list(range(13, 20))  # the 7 highest risks: 10 - 30 % of 10
    assert len(explored) == 3 and not set(explored) & set(by_risk)
    assert picks == sorted(picks)  # in frame order


def test_selection_is_deterministic_for_a_seed():
    risks = [random.Random(7).random() for _ in range(50)]
    assert targeted_choice(risks, 12, 25, random.Random(42)) == targeted_choice(risks, 12, 25, random.Random(42))
    assert any(targeted_choice(risks, 12, 25, random.Random(s)) != targeted_choice(risks, 12, 25, random.Random(42))
               for s in range(5))


@pytest.mark.parametrize(("budget", "share", "low", "high"), [(10, 0, 0, 0), (10, 100, 10, 10), (10, 20, 2, 2),
                                                               (4, 10, 0, 1), (15, 10, 1, 2)])
def test_exploration_count_is_the_share_rounded_either_way(budget, share, low, high):
    counts = {exploration_count(budget, share, random.Random(s)) for s in range(200)}
    assert counts <= set(range(low, high + 1)) and min(counts) == low and max(counts) == high


def test_exploration_share_holds_on_average_for_small_budgets():
    # 10 % of a 4-frame budget is 0.4 frames: 0 or 1, drawn so that the mean is 0.4.
    counts = [exploration_count(4, 10, random.Random(s)) for s in range(4000)]
    assert sum(counts) / len(counts) == pytest.approx(0.4, abs=0.03)


def test_zero_risk_frames_fill_the_budget_at_random():
    picks = targeted_choice([0.0] * 30, 6, 0, random.Random(3))
    assert len(picks) == 6 and {p for _, p in picks} == {"fill"}
    assert [i for i, _ in picks] != list(range(6))  # not simply the first frames


# --------------------------------------------------------------------------------------------------
# In the chained manifest
# --------------------------------------------------------------------------------------------------


def test_targeted_manifest_picks_the_flagged_frames_and_records_why(tmp_path):
    src = write_parent(tmp_path)
    dest = tmp_path / "child" / "input.manifest"
    summary = chain(src, dest, exploration=0)
    entry = records(dest)[0]
    assert entry["framesOut"] == 4  # ceil(20 * 20 %)
    chosen = {s["frame"]: s for s in entry["scores"]}
    assert {"000004.jpg", "000012.jpg"} <= set(chosen)  # BAD_FRAMES 3 and 11, named by file
    assert chosen["000004.jpg"]["pick"] == "risk" and chosen["000004.jpg"]["risk"] > 0
    assert any("box-jump" in r for r in chosen["000004.jpg"]["reasons"])
    assert entry["framesFlagged"] == 2 and entry["strategy"] == "targeted"
    # The sampled sequence file holds exactly the recorded frames.
    sampled = json.loads(Path(entry["sampled-ref"]).read_text())
    assert [f["frame"] for f in sampled["frames"]] == entry["frames"] == sorted(chosen)
    as_dict = summary.to_dict()
    assert as_dict["strategy"] == "targeted" and as_dict["explorationPercent"] == 0
    assert as_dict["samples"][0]["scores"] == entry["scores"]
    json.dumps(as_dict)


def test_targeted_manifest_is_deterministic_and_seeded_by_batch_and_job(tmp_path):
    src = write_parent(tmp_path, sequences=3, bad=())  # no risk anywhere: every pick is random
    runs = {}
    for name, batch in (("a", "b1"), ("b", "b1"), ("c", "b2")):
        dest = tmp_path / name / "input.manifest"
        chain(src, dest, rate=30, batch=batch, exploration=50)
        runs[name] = [r["frames"] for r in records(dest)]
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]
    assert all(len(frames) == 6 for frames in runs["a"])


def test_exploration_picks_are_recorded_with_their_pool(tmp_path):
    src = write_parent(tmp_path)
    dest = tmp_path / "child" / "input.manifest"
    chain(src, dest, rate=50, exploration=20)  # budget 10, 2 of them exploration
    entry = records(dest)[0]
    picks = [s["pick"] for s in entry["scores"]]
    assert picks.count("explore") == entry["explored"] == 2
    assert entry["explorationPool"] == N_FRAMES - (10 - 2)


def test_targeted_needs_the_parent_label_and_a_valid_share(tmp_path):
    src = write_parent(tmp_path)
    with pytest.raises(ValueError, match="parent's label attribute"):
        build_chained_manifest(Storage(), src, str(tmp_path / "x" / "m"), media=MediaKind.VIDEO, rate=20,
                               batch_id="b", job_name="j", strategy="targeted")
    with pytest.raises(ValueError, match="explorationPercent"):
        chain(src, tmp_path / "y" / "m", exploration=150)
    with pytest.raises(ValueError, match="samplingStrategy"):
        build_chained_manifest(Storage(), src, str(tmp_path / "z" / "m"), media=MediaKind.VIDEO, rate=20,
                               batch_id="b", job_name="j", strategy="smart")


def test_targeted_image_lines(tmp_path):
    lines = []
    for i in range(10):
        boxes = [{"class_id": 0, "left": 10, "top": 10, "width": 30, "height": 30}]
        if i in (2, 7):  # the same box twice: a duplicate
            boxes.append({"class_id": 0, "left": 11, "top": 10, "width": 30, "height": 30})
        lines.append(json.dumps({"source-ref": f"s3://in/{i}.jpg", "box": {
            "image_size": [{"width": 100, "height": 100, "depth": 3}], "annotations": boxes},
            "box-metadata": {"class-map": {"0": "Car"}, "type": "groundtruth/object-detection"}}))
    src = tmp_path / "out.manifest"
    src.write_text("\n".join(lines) + "\n")
    dest = tmp_path / "child" / "input.manifest"
    summary = build_chained_manifest(Storage(), str(src), str(dest), media=MediaKind.IMAGE, rate=20, batch_id="b",
                                     job_name="j", parent_label_attribute="box", strategy="targeted", exploration=0)
    kept = [json.loads(line)["source-ref"] for line in dest.read_text().splitlines()]
    assert kept == ["s3://in/2.jpg", "s3://in/7.jpg"]
    assert [r["pick"] for r in records(dest)] == ["risk", "risk"]
    assert "duplicate" in records(dest)[0]["reasons"][0]
    assert summary.lines_out == 2 and summary.to_dict()["strategy"] == "targeted"


# --------------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------------


def _nb(**audit_input) -> dict:
    data = notebook_batch("b-1")
    data["labelingJobs"][2]["inputConfig"].update(audit_input)
    return data


def test_config_accepts_targeted_and_fills_batch_defaults():
    config = validate_batch_config(_nb(samplingStrategy="targeted", explorationPercent=15))
    audit = config.job("b-1-vehicle-audit").inputConfig
    assert (audit.samplingStrategy, audit.explorationPercent) == ("targeted", 15)
    data = notebook_batch("b-1")
    data["samplingStrategy"], data["explorationPercent"] = "targeted", 5
    config = validate_batch_config(data)
    for name in ("b-1-vehicle-audit", "b-1-lane-audit"):
        assert config.job(name).inputConfig.samplingStrategy == "targeted"
        assert config.job(name).inputConfig.explorationPercent == 5
    assert config.job("b-1-vehicle").inputConfig.samplingStrategy is None  # not chained: nothing to sample
    assert validate_batch_config(config.to_conf()) == config  # the stored conf validates to the same


@pytest.mark.parametrize(("data", "fragment"), [
    (_nb(samplingStrategy="smart"), "labelingJobs[2] 'b-1-vehicle-audit': inputConfig.samplingStrategy"),
    (_nb(samplingStrategy="targeted", explorationPercent=150), "inputConfig.explorationPercent: must be a percentage"),
    (_nb(samplingStrategy="targeted", explorationPercent="10"), "inputConfig.explorationPercent: must be a number"),
    (_nb(explorationPercent=10), "inputConfig.explorationPercent: only applies with samplingStrategy 'targeted'"),
    (_nb(samplingStrategy="random", explorationPercent=10), "explorationPercent only applies with samplingStrategy"),
    ({**notebook_batch("b-1"), "samplingStrategy": "best"}, "samplingStrategy: 'best' must be 'random' or 'targeted'"),
    ({**notebook_batch("b-1"), "explorationPercent": -1}, "explorationPercent: must be a percentage"),
])
def test_config_rejects_bad_sampling_fields_naming_them(data, fragment):
    with pytest.raises(BatchConfigError) as info:
        validate_batch_config(data)
    assert any(fragment in p for p in info.value.problems), info.value.problems


def test_targeted_only_where_labels_are_scored():
    data = notebook_batch("b-1")
    for j in data["labelingJobs"]:
        j["jobModality"] = j["jobModality"].replace("VideoObjectTracking", "PointCloudObjectTracking")
    data["labelingJobs"][2]["inputConfig"]["samplingStrategy"] = "targeted"
    with pytest.raises(BatchConfigError) as info:
        validate_batch_config(data)
    assert any("inputConfig: samplingStrategy 'targeted'" in p and "PointCloudObjectTrackingAudit labels are not scored" in p
               for p in info.value.problems), info.value.problems
    # As a batch default it applies where it can and leaves point clouds random.
    del data["labelingJobs"][2]["inputConfig"]["samplingStrategy"]
    data["samplingStrategy"] = "targeted"
    assert validate_batch_config(data).job("b-1-vehicle-audit").inputConfig.samplingStrategy is None


def test_qa_frame_attribute_counts_validated():
    data = notebook_batch("b-1")
    data["labelingJobs"][0]["qa"] = {"frameAttributeCounts": {"Number_Of_Vehicles": ["Vehicle"]}}
    assert validate_batch_config(data).job("b-1-vehicle").qa.frameAttributeCounts == {"Number_Of_Vehicles": ["Vehicle"]}
    data["labelingJobs"][0]["qa"] = {"frameAttributeCount": {}}
    with pytest.raises(BatchConfigError, match=r"qa.frameAttributeCount: unknown field"):
        validate_batch_config(data)
