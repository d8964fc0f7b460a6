"""Each risk signal of smgt.qa on a small hand-made sequence, with the right answer written down."""

from __future__ import annotations

import pytest

from smgt.qa import score_image, score_sequence, sequence_findings
from smgt.qa.model import (
    BORDER,
    BOX_JUMP,
    DEGENERATE,
    DUPLICATE,
    FRAME_ATTRIBUTE,
    GAP,
    IDENTITY_SWITCH,
    OUT_OF_IMAGE,
    SCALE,
    SELF_INTERSECTION,
    SHORT_TRACK,
    SIZE_JUMP,
    TOO_FEW_VERTICES,
    TRACK_END,
    VERTEX_JUMP,
)

SIZE = (640, 480)


def frame(i: int, boxes: dict[str, tuple[float, float, float, float]], **extra) -> dict:
    """A SeqLabel.json tracking frame (GT's layout) with boxes {object-id: (left, top, width, height)}."""
    return {"frame-no": i, "frame": f"{i + 1:06d}.jpg", "annotations": [
        {"object-id": oid, "object-name": f"Car:{oid}", "class-id": "0", "label-category-attributes": {},
         "left": b[0], "top": b[1], "width": b[2], "height": b[3]} for oid, b in boxes.items()], **extra}


def walking(n: int, oid: str = "a", x0: float = 100, y: float = 200, dx: float = 4, w: float = 60,
            h: float = 40) -> list[dict]:
    """One object moving dx px per frame."""
    return [frame(i, {oid: (x0 + dx * i, y, w, h)}) for i in range(n)]


def signals(frames: list[dict], **kw) -> list[tuple[int, str, str | None]]:
    """(frame index, signal, object id) of every finding, sorted."""
    return sorted((f.index, f.signal, f.object_id) for f in sequence_findings(frames, **kw))


def merge(*sequences: list[dict]) -> list[dict]:
    out = [dict(f, annotations=list(f["annotations"])) for f in sequences[0]]
    for seq in sequences[1:]:
        for f, g in zip(out, seq, strict=True):
            f["annotations"] += g["annotations"]
    return out


def test_clean_tracks_have_no_finding():
    # Two objects moving smoothly, well inside the image, for the whole sequence: nothing to say.
    frames = merge(walking(12), walking(12, "b", x0=400, y=300, dx=-3))
    assert signals(frames, image_size=SIZE) == []
    assert [r.risk for r in score_sequence(frames, image_size=SIZE)] == [0.0] * 12


def test_box_jump_blames_the_one_frame_that_jumps_away_and_back():
    frames = walking(10)
    frames[4]["annotations"][0]["left"] += 40  # frame 4 is off by 40 px (2/3 of the width)
    assert signals(frames) == [(4, BOX_JUMP, "a")]


def test_lasting_jump_blames_the_frame_where_it_starts():
    frames = walking(10)
    for f in frames[6:]:
        f["annotations"][0]["left"] += 200  # from frame 6 on the id labels something else
    assert signals(frames) == [(6, BOX_JUMP, "a")]


def test_size_jump():
    frames = walking(10)
    frames[4]["annotations"][0].update(width=120, height=80)  # 4x the area on one frame
    found = signals(frames)
    assert (4, SIZE_JUMP, "a") in found
    assert {i for i, _, _ in found} == {4}


def test_gap_names_the_missing_frame():
    frames = merge(walking(10), walking(10, "b", x0=400, y=300))
    frames[6]["annotations"] = [a for a in frames[6]["annotations"] if a["object-id"] != "b"]
    findings = sequence_findings(frames)
    assert [(f.index, f.signal, f.object_id, f.frame) for f in findings] == [(6, GAP, "b", "000007.jpg")]
    assert findings[0].score == pytest.approx(0.8)


def test_identity_switch_box_continues_the_other_track():
    # a and b walk side by side 30 px apart; on frame 5 they exchange ids (and stay exchanged).
    a = [(100 + 2 * i, 200, 60, 40) for i in range(10)]
    b = [(130 + 2 * i, 200, 60, 40) for i in range(10)]
    frames = [frame(i, {"a": a[i], "b": b[i]} if i < 5 else {"a": b[i], "b": a[i]}) for i in range(10)]
    found = signals(frames)
    assert (5, IDENTITY_SWITCH, "a") in found and (5, IDENTITY_SWITCH, "b") in found
    assert {i for i, _, _ in found} == {5}


def test_new_id_where_a_track_ended_is_an_identity_switch_not_a_lost_object():
    # a ends on frame 4, c starts on frame 5 exactly where a would be: one object, two ids.
    frames = walking(10, x0=250)
    for f in frames[5:]:
        f["annotations"][0]["object-id"] = "c"
    found = sequence_findings(frames, image_size=SIZE)
    assert [(f.index, f.signal, f.object_id) for f in found] == [(5, IDENTITY_SWITCH, "c")]
    assert "starts where Car a ended on 000005.jpg" in found[0].reason


def test_track_ending_inside_the_image_flags_the_next_frames_with_falling_scores():
    frames = merge(walking(12, x0=250), walking(12, "b", x0=100, y=350))
    for f in frames[6:]:
        f["annotations"] = [a for a in f["annotations"] if a["object-id"] != "a"]  # a vanishes mid-image
    found = [f for f in sequence_findings(frames, image_size=SIZE) if f.signal == TRACK_END]
    assert [(f.index, f.object_id, round(f.score, 2)) for f in found] == [(6, "a", 0.5), (7, "a", 0.33), (8, "a", 0.17)]
    # Without the image size the border is unknown: no lost-object guess.
    assert not [f for f in sequence_findings(frames) if f.signal == TRACK_END]


def test_out_of_image_alone_is_strong_along_a_track_weak():
    frames = walking(10, x0=200)
    frames[3]["annotations"][0]["left"] = -30  # one frame leaves the image by 30 px
    lone = [f for f in sequence_findings(frames, image_size=SIZE) if f.signal == OUT_OF_IMAGE]
    assert [(f.index, f.score) for f in lone] == [(3, 0.9)]
    entering = walking(10, x0=-40, dx=5)  # out on frames 0..7 (left < -1), entering the view
    found = [(f.index, f.score) for f in sequence_findings(entering, image_size=SIZE) if f.signal == OUT_OF_IMAGE]
    assert [i for i, _ in found] == list(range(8)) and {s for _, s in found} == {0.15}


def test_border_snap():
    frames = walking(10, x0=20, dx=0)  # 20 px from the left border all along...
    frames[4]["annotations"][0]["left"] = 0  # ...but snapped to it on frame 4
    assert (4, BORDER, "a") in signals(frames, image_size=SIZE)


def test_degenerate_box():
    frames = walking(5)
    frames[2]["annotations"][0]["width"] = 0.5
    findings = [f for f in sequence_findings(frames) if f.signal == DEGENERATE]
    assert [(f.index, f.score) for f in findings] == [(2, 1.0)]


def test_duplicate_boxes_on_a_frame():
    frames = merge(walking(6), walking(6, "b", x0=101))  # b is a over again, 1 px right (IoU 0.97)
    found = signals(frames)
    assert [(i, s) for i, s, _ in found] == [(i, DUPLICATE) for i in range(6)]


def test_short_track_in_a_long_sequence():
    frames = merge(walking(12), [frame(i, {"z": (400, 300, 50, 50)} if i in (5, 6) else {}) for i in range(12)])
    found = signals(frames)
    assert (5, SHORT_TRACK, "z") in found and (6, SHORT_TRACK, "z") in found


def test_scale_box_height_against_its_row():
    # 8 objects on a ground plane: height = 0.5 * bottom - 50 px; on frame 7 one box is half as tall.
    frames = []
    for i in range(10):
        boxes = {}
        for k in range(8):
            bottom = 200 + 30 * k + i
            height = 0.5 * bottom - 50
            boxes[f"o{k}"] = (20 + 70 * k, bottom - height, 0.4 * height, height)
        frames.append(frame(i, boxes))
    box = frames[7]["annotations"][3]
    box["top"] += box["height"] / 2
    box["height"] /= 2
    scale = [(f.index, f.object_id) for f in sequence_findings(frames) if f.signal == SCALE]
    assert scale == [(7, "o3")]


def lane_frames(n: int, drift: dict[int, float] | None = None, key: str = "polylines", points=None) -> list[dict]:
    points = points or [(100, 470), (200, 300), (300, 200)]
    out = []
    for i in range(n):
        dx = (drift or {}).get(i, 0.0)
        out.append({"frame-no": i, "frame": f"{i + 1:06d}.jpg", key: [
            {"object-id": "lane1", "object-name": "Lane:1", "class-id": "0", "label-category-attributes": {},
             "vertices": [{"x": x + dx + (i % 2) * 0.5, "y": y} for x, y in points]}]})
    return out


def test_polyline_vertex_jump():
    assert signals(lane_frames(10)) == []
    assert signals(lane_frames(10, {4: 25.0})) == [(4, VERTEX_JUMP, "lane1")]


def test_keypoint_jump():
    frames = [{"frame-no": i, "frame": f"{i:06d}.jpg", "keypoints": [
        {"object-id": "k", "object-name": "Head:1", "class-id": "0", "x": 100 + i, "y": 50 + (40 if i == 3 else 0)}]}
        for i in range(8)]
    assert signals(frames) == [(3, VERTEX_JUMP, "k")]


def test_too_few_vertices_and_self_intersections():
    frames = lane_frames(3)
    frames[0]["polylines"][0]["vertices"] = [{"x": 1, "y": 1}]
    frames[1]["polylines"][0]["vertices"] = [{"x": 0, "y": 0}, {"x": 100, "y": 100}, {"x": 100, "y": 0}, {"x": 0, "y": 100}]
    bow_tie = [{"x": 0, "y": 0}, {"x": 100, "y": 100}, {"x": 100, "y": 0}, {"x": 0, "y": 100}]
    polygons = [{"frame-no": 0, "frame": "a.jpg", "polygons": [
        {"object-id": "p", "class-id": "0", "vertices": bow_tie},
        {"object-id": "q", "class-id": "0", "vertices": [{"x": 0, "y": 0}, {"x": 5, "y": 5}]}]}]
    found = signals(frames)
    assert (0, TOO_FEW_VERTICES, "lane1") in found and (1, SELF_INTERSECTION, "lane1") in found
    assert signals(polygons) == [(0, SELF_INTERSECTION, "p"), (0, TOO_FEW_VERTICES, "q")]
    reason = next(f.reason for f in sequence_findings(polygons) if f.signal == SELF_INTERSECTION)
    assert "Self-intersection" in reason  # shapely's explanation


def test_frame_attribute_declared_as_a_count():
    frames = merge(walking(4), walking(4, "b", x0=400))
    for f in frames:
        f["frame-attributes"] = {"Number_Of_Vehicles": 2}
    frames[2]["frame-attributes"] = {"Number_Of_Vehicles": 3}
    rules = {"Number_Of_Vehicles": ["Vehicle"]}
    class_map = {"0": "Vehicle"}
    found = [(f.index, f.signal) for f in sequence_findings(frames, class_map=class_map, count_rules=rules)]
    assert found == [(2, FRAME_ATTRIBUTE)]
    # No rule, no opinion; a rule on a label the frame does not have counts 0.
    assert sequence_findings(frames, class_map=class_map) == []
    assert len(sequence_findings(frames, class_map=class_map, count_rules={"Number_Of_Vehicles": ["Truck"]})) == 4


def test_image_boxes():
    label = {"image_size": [{"width": 100, "height": 80, "depth": 3}], "annotations": [
        {"class_id": 0, "left": 10, "top": 10, "width": 30, "height": 30},
        {"class_id": 0, "left": 11, "top": 10, "width": 30, "height": 30},   # duplicate of 0 (IoU 0.94)
        {"class_id": 1, "left": 10, "top": 10, "width": 30, "height": 30},   # same place, other class: fine
        {"class_id": 0, "left": 80, "top": 60, "width": 40, "height": 10},   # leaves the image by 20 px
        {"class_id": 0, "left": 50, "top": 5, "width": 1, "height": 20},     # degenerate
    ]}
    risk = score_image(label, class_map={"0": "Car", "1": "Truck"})
    assert sorted((f.signal, f.object_id) for f in risk.findings) == [
        (DEGENERATE, "4"), (DUPLICATE, "1"), (OUT_OF_IMAGE, "3")]
    assert risk.risk == pytest.approx(1.0 + 0.9 + 0.9)
    assert risk.to_dict()["findings"][0]["signal"] == DEGENERATE  # highest score first


def test_frame_risk_sums_findings_and_serialises():
    frames = walking(10)
    frames[4]["annotations"][0]["left"] += 40
    frames[4]["annotations"][0]["width"] = 0.5  # degenerate as well
    risks = score_sequence(frames)
    assert risks[4].risk == pytest.approx(sum(f.score for f in risks[4].findings))
    as_dict = risks[4].to_dict()
    assert as_dict["frame"] == "000005.jpg" and as_dict["findings"][0]["signal"] == DEGENERATE


def test_theil_sen_is_scipys_theilslopes():
    import random

    from scipy.stats import theilslopes

    from smgt.qa.geometry import theil_sen

    assert theil_sen([1, 3, 5, 7, 100], [0, 1, 2, 3, 4]) == pytest.approx((2.0, 1.0))  # the outlier moves nothing
    rng = random.Random(7)
    for n in (3, 20, 401):
        x = [rng.randint(0, 50) for _ in range(n)]  # repeated x, as box rows repeat
        y = [0.5 * v + rng.gauss(0, 3) for v in x]
        slope, intercept, _, _ = theilslopes(y, x)
        assert theil_sen(y, x) == pytest.approx((slope, intercept), rel=1e-12, abs=1e-12)
    with pytest.raises(ValueError, match="every x is the same"):
        theil_sen([1, 2, 3], [4, 4, 4])
