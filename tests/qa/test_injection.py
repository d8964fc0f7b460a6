"""Error injection in the simulated workforce: configurable, seeded, recorded; and QA finds it."""

from __future__ import annotations

import copy
import json
import random

import pytest
from local.local_gt_helpers import job_request, wait_terminal
from s3_store import seaweedfs_store

from smgt.local import Faults, LocalGroundTruth
from smgt.local.injection import LabelErrors, inject_image, inject_sequence, read_injected_errors
from smgt.manifests import Storage
from smgt.qa import score_job_output, score_sequence

from .test_signals import merge, walking


def three_cars(n: int = 20) -> list[dict]:
    return merge(walking(n, "a", x0=50), walking(n, "b", x0=300, y=300, dx=-2), walking(n, "c", x0=150, y=100, dx=1))


def lanes(n: int = 20) -> list[dict]:
    return [{"frame-no": i, "frame": f"{i + 1:06d}.jpg", "polylines": [
        {"object-id": "l1", "object-name": "Lane:1", "class-id": "0", "vertices": [{"x": 100, "y": 470}, {"x": 300, "y": 200}]}]}
        for i in range(n)]


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


def test_rules_come_with_the_faults_and_are_validated():
    faults = Faults.from_dict({"label_errors": [{"pattern": "*-Vehicle", "frame_share": 0.2, "seed": 3,
                                                 "kinds": ["jitter", "miss"]}]})
    rule = faults.label_errors_for("b1-vehicle")
    assert rule == LabelErrors("*-Vehicle", 0.2, ("jitter", "miss"), (), 3)
    assert faults.label_errors_for("b1-lane") is None
    assert Faults.from_dict(json.loads(json.dumps(faults.to_dict()))) == faults  # GET/POST /_smgt/faults round trip
    for bad, message in [({"pattern": "*", "frame_share": 2}, "frame_share"), ({"pattern": "*", "kinds": ["blur"]}, "kinds"),
                         ({"pattern": "*", "colour": 1}, "unknown label_errors keys"), ({"frame_share": 0.1}, "pattern"),
                         ({"pattern": "*", "frames": [-1]}, "frames")]:
        with pytest.raises(ValueError, match=message):
            Faults.from_dict({"label_errors": [bad]})


# --------------------------------------------------------------------------------------------------
# The injection itself
# --------------------------------------------------------------------------------------------------


def test_seeded_share_never_first_or_last_frame():
    rule = LabelErrors("*", frame_share=0.1)
    frames = three_cars(40)
    a, rec_a = inject_sequence(frames, rule, random.Random("s1"))
    b, rec_b = inject_sequence(frames, rule, random.Random("s1"))
    c, rec_c = inject_sequence(frames, rule, random.Random("s2"))
    assert a == b and rec_a.errors == rec_b.errors  # same seed, same errors
    assert rec_a.errors != rec_c.errors
    assert len(rec_a.errors) == 4  # floor(10 % of 40)
    assert all(0 < e["index"] < 39 for e in rec_a.errors)
    assert frames == three_cars(40)  # the input is not modified


def test_each_kind_does_what_its_record_says():
    frames = three_cars()
    for kind in ("jitter", "swap", "miss"):
        out, injected = inject_sequence(frames, LabelErrors("*", kinds=(kind,), frames=(6,)), random.Random(kind))
        [error] = injected.errors
        assert (error["index"], error["frame"], error["kind"]) == (6, "000007.jpg", kind)
        changed = [i for i in range(20) if out[i] != frames[i]]
        if kind == "jitter":
            assert changed == [6]
            moved = next(x for x in out[6]["annotations"] if x["object-id"] == error["object-id"])
            assert error["to"] == {k: moved[k] for k in ("left", "top", "width", "height")} != error["from"]
        elif kind == "miss":
            assert changed == [6] and error["object-id"] not in {x["object-id"] for x in out[6]["annotations"]}
        else:  # a lasting identity switch: from frame 6 to the end the two ids are exchanged
            assert changed == list(range(6, 20))
            first, second = error["object-ids"]
            before = {x["object-id"]: x["left"] for x in frames[10]["annotations"]}
            after = {x["object-id"]: x["left"] for x in out[10]["annotations"]}
            assert (after[first], after[second]) == (before[second], before[first])
    out, injected = inject_sequence(lanes(), LabelErrors("*", kinds=("drift",), frames=(5,), drift_px=30),
                                    random.Random(0))
    [error] = injected.errors
    shift = abs(out[5]["polylines"][0]["vertices"][0]["x"] - 100) + abs(out[5]["polylines"][0]["vertices"][0]["y"] - 470)
    assert error["kind"] == "drift" and shift > 15 and error["to"] == out[5]["polylines"][0]["vertices"]


def test_qa_ranks_the_injected_frames_first():
    rule = LabelErrors("*", kinds=("jitter", "swap", "miss"), frames=(4, 9, 15))
    out, injected = inject_sequence(three_cars(), rule, random.Random(11), image_size=(640, 480))
    risks = score_sequence(out, image_size=(640, 480))
    top = sorted(range(len(risks)), key=lambda i: -risks[i].risk)[:3]
    assert sorted(top) == [4, 9, 15], [(e["index"], e["kind"]) for e in injected.errors]


def test_image_injection_is_seeded_and_recorded():
    boxes = [{"class_id": 0, "left": 10, "top": 10, "width": 30, "height": 30},
             {"class_id": 0, "left": 50, "top": 10, "width": 30, "height": 30}]
    rule = LabelErrors("*", frame_share=1.0, kinds=("miss",))
    out, injected = inject_image(boxes, rule, random.Random(1))
    assert len(out) == 1 and injected.errors[0]["kind"] == "miss" and injected.errors[0]["removed"] in boxes
    assert inject_image(boxes, LabelErrors("*", frame_share=0.0), random.Random(1))[1].errors == []
    assert inject_image(copy.deepcopy(boxes), rule, random.Random(1))[0] == out


# --------------------------------------------------------------------------------------------------
# In the emulator: faults -> simulated workforce -> GT output + record -> QA
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    with seaweedfs_store(tmp_path_factory.mktemp("qa-s3")) as store, LocalGroundTruth(
            port=0, task_seconds=0.0, seed=7, s3=store, state_dir=tmp_path_factory.mktemp("qa-gt")) as emulator:
        yield emulator


def test_emulator_injects_records_and_qa_finds_the_frames(emu):
    demo = emu.upload_demo_data(n_frames=40)
    emu.set_faults({"label_errors": [{"pattern": "qa-inject-*", "frames": [4, 12], "kinds": ["jitter", "miss"],
                                      "seed": 5}]})
    sm = emu.client("sagemaker")
    try:
        for name in ("qa-inject-vehicle", "qa-clean-vehicle"):
            sm.create_labeling_job(**job_request(name, "VideoObjectTracking", demo["manifest_uri"],
                                                 demo["label_configs"]["vehicle_label_category"]))
        outputs = {}
        for name in ("qa-inject-vehicle", "qa-clean-vehicle"):
            desc = wait_terminal(sm, name)
            assert desc["LabelingJobStatus"] == "Completed", desc.get("FailureReason")
            outputs[name] = desc["LabelingJobOutput"]["OutputDatasetS3Uri"]
    finally:
        emu.set_faults({})
    storage = Storage(emu.client("s3"))
    records = read_injected_errors(storage, outputs["qa-inject-vehicle"])
    assert list(records) == [0] and records[0]["seed"] == 5 and records[0]["job-name"] == "qa-inject-vehicle"
    assert [e["index"] for e in records[0]["errors"]] == [4, 12]
    assert read_injected_errors(storage, outputs["qa-clean-vehicle"]) == {}
    risk = score_job_output(storage, outputs["qa-inject-vehicle"], "qa-inject-vehicle-ref")
    frames = risk.objects[0].frames
    assert frames[4].risk > 0 and frames[12].risk > 0
    injected = {e["frame"] for e in records[0]["errors"]}
    assert injected == {frames[4].frame, frames[12].frame}
