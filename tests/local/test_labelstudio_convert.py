"""GT <-> Label Studio mapping (smgt.local.labelstudio: labeling_config, tasks, convert, rle).

Real parts only: S3 is the test session's SeaweedFS store (tests/s3_store.py), images are the demo
generator's frames, Label Studio is a real 1.23.2 server (LabelStudioServer/LabelStudioClient from
`.venv-labelstudio`; those tests fail, never skip, when it is missing), and the brush RLE is checked
against Label Studio's own implementation run in that venv.

Fixtures in labelstudio_fixtures/ are results a real Label Studio 1.23.2 saved for a person working
in its labeling UI (headless Chromium; each file's "note" says how): they pin the exact shapes the
converter reads (`item_index`, percent geometry, `original_width`, VectorLabels `vertices`,
per-region controls sharing the region id, perItem results).
"""

from __future__ import annotations

import base64
import copy
import io
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from PIL import Image

from smgt.local.demo import LABEL_CONFIGS, upload_demo_data
from smgt.local.labels_common import Task, color_map, hex_rgb
from smgt.local.labels_video import label_video
from smgt.local.labelstudio import rle
from smgt.local.labelstudio.client import LabelStudioClient
from smgt.local.labelstudio.convert import (
    EXPIRED_REASON,
    ResultError,
    answer_content,
    failed_line,
    labeled_from_annotations,
)
from smgt.local.labelstudio.labeling_config import UnsupportedModality, controls_for, labeling_config
from smgt.local.labelstudio.server import DEFAULT_VENV, LabelStudioServer
from smgt.local.labelstudio.tasks import parent_labels, task_for_object
from smgt.local.s3io import S3
from smgt.manifests import sample_sequence
from smgt.registry import get_modality

FIXTURES = Path(__file__).parent / "labelstudio_fixtures"
BUCKET = "ls-convert"
FRAMES = f"s3://{BUCKET}/MOT17/train/MOT17-13-SDP/img1/"
VEHICLE = LABEL_CONFIGS["vehicle_label_category.json"]
# The exploration configs of the browser captures: labels Vehicle/Truck, Vehicle's Moving, two frame attributes.
TRACKING_CONFIG = {
    "labels": [{"label": "Vehicle", "attributes": [{"name": "Moving", "type": "string",
                                                      "enum": ["Stationary", "Dynamic"]}]}, {"label": "Truck"}],
    "frameAttributes": [{"name": "Number_Of_Vehicles", "type": "number", "description": "How many?"},
                        {"name": "Frame_Quality", "type": "string", "enum": ["Pass", "Fail"]}],
    "annotationType": "BoundingBox",
}


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(scope="module")
def s3(s3_store) -> S3:
    client = boto3.client("s3", endpoint_url=s3_store.endpoint_url, aws_access_key_id=s3_store.access_key,
                          aws_secret_access_key=s3_store.secret_key, region_name="us-east-1")
    store = S3(client)
    if not store.bucket_exists(BUCKET):
        client.create_bucket(Bucket=BUCKET)
    return store


@pytest.fixture(scope="module")
def demo_video(s3: S3) -> dict[str, Any]:
    """The demo video (30 frames of 320x180, every other frame in the sequence file) in our bucket."""
    return upload_demo_data(s3, BUCKET)


def sequence(s3: S3, name: str, frames: list[str]) -> str:
    uri = f"s3://{BUCKET}/sequences/{name}.json"
    s3.put_json(uri, {"seq-no": 0, "prefix": FRAMES, "number-of-frames": len(frames),
                      "frames": [{"frame-no": i + 1, "frame": f} for i, f in enumerate(frames)]})
    return uri


def make_task(modality: str, config: dict[str, Any], line: dict[str, Any], *, job: str = "job-1",
              index: int = 0) -> Task:
    m = get_modality(modality)
    return Task(job, index, line, m, config, m.default_label_attribute(job),
                f"s3://{BUCKET}/out/{job}/annotations/consolidated-annotation/output", 0)


def annotation(result: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"id": 1, "result": result, "was_cancelled": False, **extra}


def seq_label(labeled) -> dict[str, Any]:
    (body,) = labeled.files.values()
    return json.loads(body)


# ---------------------------------------------------------------------------------------------------------
# Brush RLE against Label Studio's own implementation

SDK_SCRIPT = """
import json, sys
import numpy as np
from label_studio_sdk.converter.brush import decode_rle, encode_rle, mask2rle
job = json.load(sys.stdin)
out = {"mask2rle": [], "decoded": [], "encode_rle": []}
for m in job["masks"]:
    mask = np.frombuffer(bytes.fromhex(m["hex"]), np.uint8).reshape(m["height"], m["width"])
    out["mask2rle"].append(mask2rle(mask))
for r in job["decode"]:
    out["decoded"].append(bytes(decode_rle(r)).hex())
for v in job["values"]:
    out["encode_rle"].append(encode_rle(np.frombuffer(bytes.fromhex(v), np.uint8)))
print(json.dumps(out))
"""


def label_studio_sdk(job: dict[str, Any]) -> dict[str, Any]:
    python = DEFAULT_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{DEFAULT_VENV} is missing: run `scripts/bootstrap.sh --labelstudio` (Label Studio's SDK "
                    "is the reference for the brush RLE)")
    done = subprocess.run([str(python), "-c", SDK_SCRIPT], input=json.dumps(job), capture_output=True, text=True,
                          timeout=120, check=True)
    return json.loads(done.stdout)


def masks() -> list[tuple[int, int, bytes]]:
    """Masks with runs of every length class (1, <=8, <=16, <=256, > 65536 values) and several values."""
    out = []
    empty = bytes(320 * 180)
    out.append((320, 180, empty))
    box = bytearray(empty)
    for y in range(40, 90):
        box[y * 320 + 60:y * 320 + 200] = b"\xff" * 140
    out.append((320, 180, bytes(box)))
    speckle = bytearray(37 * 11)
    for i in range(0, len(speckle), 3):
        speckle[i] = 255 if i % 2 else 7
    out.append((37, 11, bytes(speckle)))
    out.append((1, 1, b"\xff"))
    out.append((640, 200, bytes([255 if (x // 50 + y // 30) % 2 else 0 for y in range(200) for x in range(640)])))
    return out


def test_brush_rle_matches_label_studio_sdk_both_ways() -> None:
    cases = masks()
    browser = fixture("browser_image_brush.json")["result"][0]["value"]["rle"]
    ours_encoded = [rle.encode_mask(m, w, h) for w, h, m in cases]
    raw_values = [bytes([0, 0, 0, 5, 5, 255, 1, 2, 3] * 40 + [9] * 70000)]
    reference = label_studio_sdk({
        "masks": [{"width": w, "height": h, "hex": m.hex()} for w, h, m in cases],
        "decode": ours_encoded + [browser],
        "values": [v.hex() for v in raw_values],
    })
    # encode: byte for byte what Label Studio's mask2rle / encode_rle produce
    assert ours_encoded == reference["mask2rle"]
    assert [rle.encode(v) for v in raw_values] == reference["encode_rle"]
    # decode: Label Studio decodes our encoding back to the masks (4 equal values per pixel) ...
    for (_, _, m), decoded in zip(cases, reference["decoded"], strict=False):
        assert bytes.fromhex(decoded) == bytes(v for v in m for _ in range(4))
    # ... and we decode what Label Studio's browser saved exactly as its SDK does
    assert bytes(rle.decode(browser)) == bytes.fromhex(reference["decoded"][-1])
    for w, h, m in cases:
        assert bytes(rle.decode(rle.encode_mask(m, w, h))) == bytes(v for v in m for _ in range(4))


def test_brush_rle_rejects_bad_data() -> None:
    good = rle.encode_mask(bytes(100), 10, 10)
    with pytest.raises(rle.RleError, match="ends early"):
        rle.decode(good[:6])
    with pytest.raises(rle.RleError, match="expected 10x11x4"):
        rle.mask_from_rle(good, 10, 11)
    with pytest.raises(rle.RleError, match="byte values"):
        rle.decode([300, 1])
    with pytest.raises(ValueError, match="mask: expected 3x3"):
        rle.encode_mask(bytes(8), 3, 3)


# ---------------------------------------------------------------------------------------------------------
# Labeling config


def test_labeling_config_controls_follow_the_category_config() -> None:
    config = {
        "labels": [{"label": "Car", "categoryAttributes": [{"name": "Occluded", "type": "string", "enum": ["no", "yes"],
                                                            "isRequired": True}]},
                   {"label": "Bus", "attributes": [{"name": "Note", "type": "string"}]}],
        "categoryGlobalAttributes": [{"name": "Size", "type": "number", "minimum": 0, "maximum": 9,
                                      "isRequired": True}],
        "frameAttributes": [{"name": "Weather", "type": "string", "enum": ["sun", "rain"], "isRequired": True,
                             "description": "sky"}],
        "annotationType": "Polyline",
        "instructions": {"shortInstruction": "<b>Short</b>", "fullInstruction": "<p>Full</p>"},
    }
    spec = labeling_config(get_modality("VideoObjectTracking"), config, title="Lanes & cars <2>", description="d")
    c = spec.controls
    assert (c.annotation_type, c.tool_type, c.video, c.tracking, c.labels) == (
        "Polyline", "vectorlabels", True, True, ("Car", "Bus"))
    assert {n: (a.name, a.kind, a.labels, a.required) for n, a in c.region_attributes.items()} == {
        "attr_g0": ("Size", "number", None, True),
        "attr_0_c0": ("Occluded", "enum", ("Car",), True),
        "attr_1_a0": ("Note", "text", ("Bus",), False)}
    assert {n: (a.name, a.kind) for n, a in c.frame_attributes.items()} == {"frame_0": ("Weather", "enum")}
    xml = spec.label_config
    assert '<Header value="Lanes &amp; cars &lt;2&gt;" />' in xml
    assert '<Image name="frames" valueList="$frames"' in xml
    assert '<VectorLabels name="label" toName="frames" closable="false" curves="false">' in xml
    assert '<Number name="object" toName="frames" perRegion="true" min="1" step="1" required="true" />' in xml
    assert '<Number name="attr_g0" toName="frames" min="0" max="9" perRegion="true" required="true" />' in xml
    # a per-label required attribute is not `required` in Label Studio (it would block other labels' regions)
    assert 'whenLabelValue="Car"' in xml and 'name="attr_0_c0" toName="frames" choice="single-radio" perRegion="true">' in xml
    assert '<TextArea name="attr_1_a0"' in xml
    assert 'name="frame_0" toName="frames" choice="single-radio" perItem="true" required="true"' in xml
    assert spec.expert_instruction == "<b>Short</b><hr><p>Full</p>"
    assert spec.payload()["show_instruction"] is True

    image = labeling_config(get_modality("SemanticSegmentationAudit"), {"labels": [{"label": "Road"}, {"label": "Car"}]},
                            title="x" * 80, description="")
    assert '<BrushLabels name="label" toName="image">' in image.label_config
    assert f'background="{color_map({"labels": [{"label": "Road"}]})["1"]["hex-color"]}"' in image.label_config
    assert len(image.title) == 50 and image.controls.region_attributes == {}
    assert labeling_config(get_modality("BoundingBox"), {"labels": [{"label": "A"}]}, title="", description="").title \
        == "BoundingBox"


@pytest.mark.parametrize("modality", ["PointCloudObjectDetection", "PointCloudObjectTrackingAudit",
                                      "PointCloudSemanticSegmentation"])
def test_point_clouds_keep_the_simulated_workforce(modality: str) -> None:
    with pytest.raises(UnsupportedModality, match="keeps the simulated workforce"):
        labeling_config(get_modality(modality), VEHICLE, title="t", description="")


@pytest.mark.parametrize(("config", "field"), [
    ({"labels": []}, "labels"),
    ({"labels": [{"label": "A"}, {"label": "A"}]}, "labels: label names must be unique"),
    ({"labels": [{"label": "A", "attributes": [{"name": "x", "type": "bool"}]}]}, "labels[0].attributes[0].type"),
    ({"labels": [{"label": "A"}], "frameAttributes": [{"name": "f", "type": "string", "enum": "ab"}]},
     "frameAttributes[0].enum"),
    ({"labels": [{"label": "A"}], "annotationType": "Cuboid"}, "annotationType"),
])
def test_bad_category_config_names_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        controls_for(get_modality("VideoObjectDetection"), config)


# ---------------------------------------------------------------------------------------------------------
# Browser-saved results -> GT output


def test_browser_video_boxes_become_a_tracking_seq_label(s3: S3, demo_video) -> None:
    captured = fixture("browser_video_boxes.json")
    line = {"source-ref": sequence(s3, "three", ["000001.jpg", "000002.jpg", "000003.jpg"])}
    task = make_task("VideoObjectTracking", TRACKING_CONFIG, line)
    labeled = labeled_from_annotations(task, [annotation(captured["result"])], s3)
    assert labeled.value == f"{task.consolidated_prefix}/0/SeqLabel.json"
    assert labeled.metadata == {"class-map": {"0": "Vehicle", "1": "Truck"}}
    frames = seq_label(labeled)["tracking-annotations"]
    assert labeled.answer == {"tracking-annotations": frames}
    # GT numbers a sequence's frames from 0 (sms-data-output.html, video frame object tracking output)
    assert [(f["frame-no"], f["frame"]) for f in frames] == [(0, "000001.jpg"), (1, "000002.jpg"), (2, "000003.jpg")]
    (vehicle,), (truck,), () = (f["annotations"] for f in frames)
    # percent of a 320x180 frame -> whole pixels (edges rounded): 21.578% -> 69.05 px, ...
    assert {k: vehicle[k] for k in ("left", "top", "width", "height")} == {"left": 69, "top": 39, "width": 61, "height": 51}
    assert {k: truck[k] for k in ("left", "top", "width", "height")} == {"left": 152, "top": 86, "width": 60, "height": 51}
    assert (vehicle["class-id"], vehicle["object-name"], vehicle["label-category-attributes"]) == (
        "0", "Vehicle:1", {"Moving": "Dynamic"})
    assert (truck["class-id"], truck["object-name"], truck["label-category-attributes"]) == ("1", "Truck:2", {})
    assert vehicle["object-id"] != truck["object-id"]
    assert [f["frame-attributes"] for f in frames] == [
        {"Number_Of_Vehicles": 3, "Frame_Quality": "Pass"}, {"Number_Of_Vehicles": 5}, {}]
    # the same result converts to the same ids (a retry writes the same output)
    assert seq_label(labeled_from_annotations(task, [annotation(captured["result"])], s3)) == seq_label(labeled)


@pytest.mark.parametrize(("name", "modality", "kind", "list_key", "expected"), [
    ("browser_video_polygon.json", "VideoObjectTracking", "Polygon", "polygons",
     {"vertices": [{"x": 99.43, "y": 55.87}, {"x": 160.2, "y": 55.87}, {"x": 160.2, "y": 107.16},
                   {"x": 99.43, "y": 107.16}], "object-name": "Car:7"}),
    # the browser saved the first vertex twice: duplicates are dropped
    ("browser_video_polyline.json", "VideoObjectTracking", "Polyline", "polylines",
     {"vertices": [{"x": 38.67, "y": 158.46}, {"x": 99.43, "y": 107.16}, {"x": 144.81, "y": 64.55}],
      "object-name": "Lane:1"}),
    ("browser_video_keypoint.json", "VideoObjectDetection", "Keypoint", "keypoints", {"x": 190.18, "y": 98.48}),
])
def test_browser_video_shapes_in_pixels(s3: S3, demo_video, name: str, modality: str, kind: str, list_key: str,
                                        expected: dict[str, Any]) -> None:
    captured = fixture(name)
    if "Detection" in modality:  # the capture's project had an object # control, a detection project has none
        captured["result"] = [r for r in captured["result"] if r["from_name"] != "object"]
    config = {"labels": [{"label": "Lane"}, {"label": "Car"}], "annotationType": kind}
    task = make_task(modality, config, {"source-ref": sequence(s3, "two", ["000001.jpg", "000002.jpg"])})
    frames = seq_label(labeled_from_annotations(task, [annotation(captured["result"])], s3))["detection-annotations"
                                                                                            if "Detection" in modality
                                                                                            else "tracking-annotations"]
    first = frames[0][list_key][0]
    assert {k: first[k] for k in expected} == expected
    assert "object-id" in first if "Tracking" in modality else "object-id" not in first
    # GT's layout: one list per frame, named after the tool; shapes have no "points" (that was ours)
    assert all(set(f) == {"frame-no", "frame", list_key, "frame-attributes"} for f in frames)
    assert all("points" not in item for f in frames for item in f[list_key])
    if kind == "Keypoint":
        assert {k: frames[1]["keypoints"][0][k] for k in ("x", "y")} == {"x": 188.21, "y": 99.04}


def test_browser_frame_text_attributes(s3: S3, demo_video) -> None:
    captured = fixture("browser_video_frame_text.json")
    config = {"labels": [{"label": "Lane"}, {"label": "Car"}], "annotationType": "Polygon",
              "frameAttributes": [{"name": "Weather", "type": "string", "description": "free text"}]}
    task = make_task("VideoObjectDetection", config, {"source-ref": sequence(s3, "two", ["000001.jpg", "000002.jpg"])})
    frames = seq_label(labeled_from_annotations(task, [annotation(captured["result"])], s3))["detection-annotations"]
    assert [f["frame-attributes"] for f in frames] == [{"Weather": "foggy"}, {"Weather": "sunny"}]
    assert len(frames[0]["polygons"][0]["vertices"]) == 3


def png_classes(png: bytes, config: dict[str, Any]) -> list[int]:
    by_rgb = {hex_rgb(e["hex-color"]): int(k) for k, e in color_map(config).items()}
    with Image.open(io.BytesIO(png)) as img:
        return [by_rgb[p] for p in img.convert("RGB").getdata()]


def test_browser_brush_becomes_the_gt_mask_pixel_exact(s3: S3, demo_video) -> None:
    captured = fixture("browser_image_brush.json")
    config = {"labels": [{"label": "Road"}, {"label": "Car"}]}
    task = make_task("SemanticSegmentation", config, {"source-ref": f"{FRAMES}000001.jpg"})
    labeled = labeled_from_annotations(task, [annotation(captured["result"])], s3)
    assert labeled.value.endswith(".png") and labeled.metadata == {"internal-color-map": color_map(config)}
    # the reference: Label Studio's own decoder, alpha >= 128 (the stroke's anti-aliased edge is cut in half)
    decoded = bytes.fromhex(label_studio_sdk({"masks": [], "values": [],
                                              "decode": [captured["result"][0]["value"]["rle"]]})["decoded"][0])
    expected = [1 if alpha >= 128 else 0 for alpha in decoded[3::4]]  # Road = class 1
    assert png_classes(labeled.files[labeled.value], config) == expected
    assert sum(expected) == 836
    answer = labeled.answer["crowd-semantic-segmentation"]
    assert png_classes(base64.b64decode(answer["labeledImage"]["pngImageData"]), config) == expected


# ---------------------------------------------------------------------------------------------------------
# Validation


def box_result(rid: str, item: int | None, x: float, y: float, w: float, h: float, label: str = "Vehicle",
               number: int | None = 1, moving: str | None = "Dynamic") -> list[dict[str, Any]]:
    geo = {"x": x, "y": y, "width": w, "height": h, "rotation": 0}
    common: dict[str, Any] = {"id": rid, "to_name": "frames", "original_width": 320, "original_height": 180,
                              "image_rotation": 0}
    if item is not None:
        common["item_index"] = item
    out = [{**common, "from_name": "label", "type": "rectanglelabels", "value": {**geo, "rectanglelabels": [label]}}]
    if number is not None:
        out.append({**common, "from_name": "object", "type": "number", "value": {**geo, "number": number}})
    if moving is not None:
        out.append({**common, "from_name": "attr_0_a0", "type": "choices", "value": {**geo, "choices": [moving]}})
    return out


def _mutate(result: list[dict[str, Any]], change) -> list[dict[str, Any]]:
    result = copy.deepcopy(result)
    change(result)
    return result


VALID = box_result("a", 0, 10, 10, 20, 20) + box_result("b", 1, 50, 50, 10, 10, label="Truck", number=2, moving=None)
INVALID = [
    ("unknown label", lambda r: r[0]["value"].update(rectanglelabels=["Bicycle"]), "unknown label 'Bicycle'"),
    ("two labels", lambda r: r[0]["value"].update(rectanglelabels=["Vehicle", "Truck"]), "exactly one label"),
    ("unknown control", lambda r: r[1].update(from_name="speed"), "unknown control (from_name) 'speed'"),
    ("wrong to_name", lambda r: r[0].update(to_name="image"), "to_name 'image'"),
    ("value outside enum", lambda r: r[2]["value"].update(choices=["Flying"]),
     "attribute 'Moving': 'Flying' is not one of ['Stationary', 'Dynamic']"),
    ("object # not a number", lambda r: r[1]["value"].update(number="1"), "object # '1' is not a whole number"),
    ("frame attribute not a number", lambda r: r.append(
        {"id": "f", "from_name": "frame_0", "to_name": "frames", "type": "number", "value": {"number": "many"},
         "item_index": 0}), "attribute 'Number_Of_Vehicles': 'many' is not a number"),
    ("outside the image", lambda r: r[0]["value"].update(x=95), "outside the image (x = 115.000%"),
    ("negative coordinate", lambda r: r[0]["value"].update(y=-3), "outside the image (y = -3.000%"),
    ("zero width", lambda r: r[0]["value"].update(width=0), "degenerate box"),
    ("sub-pixel box", lambda r: r[0]["value"].update(width=0.1), "degenerate box (0.32 x 36.00 px)"),
    ("rotated box", lambda r: r[0]["value"].update(rotation=30), "rotated by 30"),
    ("missing frame index", lambda r: r[0].pop("item_index"), "missing frame index (item_index)"),
    ("frame index out of range", lambda r: r[3].update(item_index=7), "frame index 7 is not one of the task's 3 frames"),
    ("missing object #", lambda r: r.pop(1), "object # is missing"),
    ("object # twice on a frame", lambda r: (r[3].update(item_index=0), r[4].update(item_index=0),
                                             r[4]["value"].update(number=1)), "frame 0: object #1 appears twice"),
    ("one object, two labels", lambda r: r[4]["value"].update(number=1), "object #1 is 'Vehicle' on one frame and 'Truck'"),
    ("value without region", lambda r: r[1].update(id="ghost"), "for a region that does not exist"),
    ("image of another size", lambda r: r[0].update(original_width=640), "showed a 640x180 image"),
]


@pytest.mark.parametrize(("change", "reason"), [(c, r) for _, c, r in INVALID], ids=[n for n, _, _ in INVALID])
def test_invalid_results_raise_result_error_with_the_reason(s3: S3, demo_video, change, reason: str) -> None:
    task = make_task("VideoObjectTracking", TRACKING_CONFIG,
                     {"source-ref": sequence(s3, "three", ["000001.jpg", "000002.jpg", "000003.jpg"])})
    assert labeled_from_annotations(task, [annotation(VALID)], s3).value  # the unchanged result is valid
    with pytest.raises(ResultError) as raised:
        labeled_from_annotations(task, [annotation(_mutate(VALID, change))], s3)
    assert reason in str(raised.value)


def test_failed_line_keeps_the_input_and_names_the_reason() -> None:
    task = make_task("VideoObjectTracking", TRACKING_CONFIG, {"source-ref": "s3://b/seq.json", "extra": 1})
    line = failed_line(task, f"ClientError: {ResultError('frame 0: object # is missing')}")
    assert line == {"source-ref": "s3://b/seq.json", "extra": 1, "job-1-ref-metadata": {
        "retry-count": 1, "failure-reason": "ClientError: frame 0: object # is missing", "human-annotated": "true"}}
    assert failed_line(task, EXPIRED_REASON)["job-1-ref-metadata"]["failure-reason"].startswith(
        "ClientError: Annotation tasks expired.")


def test_required_attributes_and_unreadable_inputs(s3: S3, demo_video) -> None:
    config = copy.deepcopy(TRACKING_CONFIG)
    config["labels"][0]["attributes"][0]["isRequired"] = True
    config["frameAttributes"][1]["isRequired"] = True
    task = make_task("VideoObjectTracking", config, {"source-ref": sequence(s3, "one", ["000001.jpg"])})
    quality = {"id": "q", "from_name": "frame_1", "to_name": "frames", "type": "choices",
               "value": {"choices": ["Pass"]}, "item_index": 0}
    with pytest.raises(ResultError, match="required attribute 'Moving' is missing"):
        labeled_from_annotations(task, [annotation(box_result("a", 0, 1, 1, 5, 5, moving=None) + [quality])], s3)
    with pytest.raises(ResultError, match="frame 0: required frame attribute 'Frame_Quality' is missing"):
        labeled_from_annotations(task, [annotation(box_result("a", 0, 1, 1, 5, 5))], s3)
    # an attribute left on a region whose label it does not belong to is not part of the label
    truck = box_result("t", 0, 1, 1, 5, 5, label="Truck")
    frames = seq_label(labeled_from_annotations(task, [annotation(truck + [quality])], s3))["tracking-annotations"]
    assert frames[0]["annotations"][0]["label-category-attributes"] == {}
    missing = make_task("VideoObjectTracking", config, {"source-ref": f"s3://{BUCKET}/sequences/nope.json"})
    with pytest.raises(ResultError, match="nope.json: cannot be read"):
        labeled_from_annotations(missing, [annotation([])], s3)
    with pytest.raises(ValueError, match="no submitted annotation"):
        labeled_from_annotations(task, [annotation([], was_cancelled=True)], s3)


# ---------------------------------------------------------------------------------------------------------
# Consolidation of several image workers


def rect(rid: str, left: float, top: float, width: float, height: float, label: str = "Car") -> dict[str, Any]:
    """An image box result drawn at these pixels of a 320x180 image (as the browser stores it: percent)."""
    return {"id": rid, "from_name": "label", "to_name": "image", "type": "rectanglelabels", "original_width": 320,
            "original_height": 180, "image_rotation": 0,
            "value": {"x": left / 3.2, "y": top / 1.8, "width": width / 3.2, "height": height / 1.8, "rotation": 0,
                      "rectanglelabels": [label]}}


def test_three_image_workers_are_consolidated(s3: S3, demo_video) -> None:
    config = {"labels": [{"label": "Car"}, {"label": "Truck"}]}
    task = make_task("BoundingBox", config, {"source-ref": f"{FRAMES}000003.jpg"})
    workers = [
        annotation([rect("a", 100, 50, 40, 30), rect("b", 200, 100, 50, 40), rect("c", 10, 10, 20, 20)]),
        annotation([rect("a", 102, 52, 40, 30), rect("b", 204, 100, 50, 40, "Truck")]),
        annotation([rect("a", 98, 49, 42, 31, "Truck"), rect("b", 202, 102, 48, 40, "Truck")]),
        annotation([rect("x", 0, 0, 320, 180)], was_cancelled=True),  # a skip is not a worker's answer
    ]
    labeled = labeled_from_annotations(task, workers, s3)
    value = labeled.value
    assert value["image_size"] == [{"width": 320, "height": 180, "depth": 3}]
    # the car all three drew (majority Car, averaged); the box two of three called Truck; the lone box is dropped
    assert value["annotations"] == [
        {"class_id": 0, "left": 100, "top": 50, "width": 41, "height": 31},
        {"class_id": 1, "left": 202, "top": 101, "width": 49, "height": 40}]
    assert labeled.metadata == {"objects": [{"confidence": 1.0}, {"confidence": 1.0}],
                                "class-map": {"0": "Car", "1": "Truck"}}
    assert labeled.adjusted is False
    assert answer_content(task, workers[1], s3) == {"boundingBox": {"boundingBoxes": [
        {"label": "Car", "left": 102, "top": 52, "width": 40, "height": 30},
        {"label": "Truck", "left": 204, "top": 100, "width": 50, "height": 40}],
        "inputImageProperties": {"width": 320, "height": 180}}}
    two = labeled_from_annotations(task, workers[:1] + [annotation([rect("a", 101, 50, 40, 30)])] + workers[2:3], s3)
    assert [b["class_id"] for b in two.value["annotations"]] == [0, 0]  # 1 Car : 1 Truck -> the lower class id
    assert [o["confidence"] for o in two.metadata["objects"]] == [1.0, 0.67]


def brush(rid: str, label: str, mask: bytes, width: int = 320, height: int = 180) -> dict[str, Any]:
    return {"id": rid, "from_name": "label", "to_name": "image", "type": "brushlabels", "original_width": width,
            "original_height": height, "image_rotation": 0,
            "value": {"format": "rle", "rle": rle.encode_mask(mask, width, height), "brushlabels": [label]}}


def square(x0: int, y0: int, x1: int, y1: int, width: int = 320, height: int = 180) -> bytes:
    return bytes(255 if x0 <= x < x1 and y0 <= y < y1 else 0 for y in range(height) for x in range(width))


def test_three_segmentation_workers_vote_per_pixel(s3: S3, demo_video) -> None:
    config = {"labels": [{"label": "Road"}, {"label": "Car"}]}
    task = make_task("SemanticSegmentation", config, {"source-ref": f"{FRAMES}000005.jpg"})
    workers = [annotation([brush("r", "Road", square(0, 100, 320, 180)), brush("c", "Car", square(100, 50, 150, 90))]),
               annotation([brush("r", "Road", square(0, 110, 320, 180)), brush("c", "Car", square(100, 50, 150, 90))]),
               annotation([brush("c", "Car", square(120, 50, 170, 90))])]
    labeled = labeled_from_annotations(task, workers, s3)
    classes = png_classes(labeled.files[labeled.value], config)
    expected = [2 if 100 <= x < 150 and 50 <= y < 90 else 1 if y >= 110 else 0 for y in range(180) for x in range(320)]
    assert classes == expected  # rows 100..109 and x 150..169 were painted by one worker of three only
    confidence = labeled.metadata["internal-color-map"]["1"]["confidence"]
    assert 0.5 < confidence < 1.0 and confidence == labeled.metadata["internal-color-map"]["0"]["confidence"]


# ---------------------------------------------------------------------------------------------------------
# Adjustment jobs: parent labels as a prediction, a real comparison on the way back


@pytest.fixture(scope="module")
def parent_video(s3: S3, demo_video) -> dict[str, Any]:
    """A level-1 tracking output of the demo video, as the simulated workforce writes it (MOT reference boxes)."""
    line = {"source-ref": demo_video["sequence_uri"]}
    task = make_task("VideoObjectTracking", VEHICLE, line, job="vehicles")
    labeled = label_video(task, s3)
    for uri, body in labeled.files.items():
        s3.put_bytes(uri, body)
    out_line = {**line, task.label_attribute: labeled.value, f"{task.label_attribute}-metadata": labeled.metadata}
    # the level-2 input: down-sampled to 5 of the 15 frames, as the product's chaining does
    seq = s3.get_json(demo_video["sequence_uri"])
    sampled = sample_sequence(seq, 33, b"3")
    sampled_uri = f"s3://{BUCKET}/sequences/sampled.json"
    s3.put_json(sampled_uri, sampled)
    audit_config = {**LABEL_CONFIGS["vehicle_label_category_audit.json"], "auditLabelAttributeName": task.label_attribute}
    audit = make_task("VideoObjectTrackingAudit", audit_config, {**out_line, "source-ref": sampled_uri}, job="vehicles-audit")
    return {"parent": json.loads(labeled.files[labeled.value]), "audit": audit, "sampled": sampled}


def test_audit_prediction_draws_the_parent_on_the_sampled_frames(s3: S3, parent_video) -> None:
    audit, sampled = parent_video["audit"], parent_video["sampled"]
    ls_task = task_for_object(audit, s3, media_uri=lambda u: u.replace("s3://", "https://media.test/"))
    names = [f["frame"] for f in sampled["frames"]]
    assert ls_task["data"]["frame_names"] == names and len(names) == 5
    assert ls_task["data"]["frames"][0] == f"https://media.test/{BUCKET}/MOT17/train/MOT17-13-SDP/img1/{names[0]}"
    assert (ls_task["data"]["gt_job"], ls_task["data"]["gt_index"]) == ("vehicles-audit", 0)
    (prediction,) = ls_task["predictions"]
    regions = [r for r in prediction["result"] if r["from_name"] == "label"]
    parent_frames = {f["frame"]: f for f in parent_video["parent"]["tracking-annotations"]}
    assert len(regions) == sum(len(parent_frames[n]["annotations"]) for n in names) > 0
    first = parent_frames[names[0]]["annotations"][0]
    region = regions[0]
    assert region["item_index"] == 0 and region["value"]["rectanglelabels"] == ["Vehicle"]
    assert region["value"]["x"] == pytest.approx(first["left"] * 100 / 320)
    assert region["value"]["height"] == pytest.approx(first["height"] * 100 / 180)
    numbers = {r["id"]: r["value"]["number"] for r in prediction["result"] if r["from_name"] == "object"}
    assert numbers[region["id"]] == int(first["object-name"].split(":")[1])
    # the audit config has only "audit" per object and Frame_Quality per frame: nothing of the parent to pre-fill
    assert {r["from_name"] for r in prediction["result"]} == {"label", "object"}


def submitted_from_prediction(ls_task: dict[str, Any], move: str | None = None, dx: float = 0.0) -> list[dict[str, Any]]:
    """What a reviewer submits: the prediction's regions (Label Studio keeps their ids), one moved, Pass/Fail set."""
    result = copy.deepcopy(ls_task["predictions"][0]["result"])
    for r in result:
        if r["id"] == move:
            r["value"]["x"] += dx
    for r in [r for r in result if r["from_name"] == "label"]:
        result.append({**{k: r[k] for k in ("id", "to_name", "item_index", "original_width", "original_height")},
                       "from_name": "attr_0_a0", "type": "choices",
                       "value": {**r["value"], "choices": ["Fail" if r["id"] == move else "Pass"]}})
        result[-1]["value"].pop("rectanglelabels")
    return result


def test_audit_untouched_is_unadjusted_and_keeps_the_parent(s3: S3, parent_video) -> None:
    audit = parent_video["audit"]
    ls_task = task_for_object(audit, s3)
    labeled = labeled_from_annotations(audit, [annotation(submitted_from_prediction(ls_task))], s3)
    assert labeled.adjusted is False
    frames = seq_label(labeled)["tracking-annotations"]
    parent_frames = {f["frame"]: f for f in parent_video["parent"]["tracking-annotations"]}
    for frame in frames:
        before = parent_frames[frame["frame"]]
        # geometry, ids and the parent's attributes verbatim; the audit's own attribute added
        assert [{k: a[k] for k in ("left", "top", "width", "height", "object-id", "object-name", "class-id")}
                for a in frame["annotations"]] == [
            {k: a[k] for k in ("left", "top", "width", "height", "object-id", "object-name", "class-id")}
            for a in before["annotations"]]
        for after, old in zip(frame["annotations"], before["annotations"], strict=True):
            assert after["label-category-attributes"] == {**old["label-category-attributes"], "audit": "Pass"}
        assert frame["frame-attributes"] == before["frame-attributes"]


def test_audit_moved_box_is_adjusted_with_the_parent_object_id(s3: S3, parent_video) -> None:
    audit = parent_video["audit"]
    ls_task = task_for_object(audit, s3)
    moved = next(r for r in ls_task["predictions"][0]["result"] if r["from_name"] == "label" and r["item_index"] == 2)
    labeled = labeled_from_annotations(audit, [annotation(submitted_from_prediction(ls_task, moved["id"], 5.0))], s3)
    assert labeled.adjusted is True
    frames = seq_label(labeled)["tracking-annotations"]
    item, k = (int(p) for p in moved["id"][1:].split("_"))
    parent_frames = {f["frame"]: f for f in parent_video["parent"]["tracking-annotations"]}
    before = parent_frames[frames[item]["frame"]]["annotations"][k]
    after = frames[item]["annotations"][k]
    assert after["left"] == round((moved["value"]["x"] + 5.0) * 3.2) != before["left"]
    assert (after["object-id"], after["object-name"]) == (before["object-id"], before["object-name"])
    assert after["label-category-attributes"]["audit"] == "Fail"
    # a sub-pixel nudge is within the tolerance: not an adjustment, and the parent's geometry is kept
    nudged = labeled_from_annotations(audit, [annotation(submitted_from_prediction(ls_task, moved["id"], 0.2))], s3)
    assert nudged.adjusted is False
    assert seq_label(nudged)["tracking-annotations"][item]["annotations"][k]["left"] == before["left"]
    # a removed object and a changed parent attribute are adjustments too
    removed = [r for r in submitted_from_prediction(ls_task) if r["id"] != moved["id"]]
    assert labeled_from_annotations(audit, [annotation(removed)], s3).adjusted is True


def test_image_box_and_mask_audits_compare_with_the_parent(s3: S3, demo_video) -> None:
    config = {"labels": [{"label": "Car"}, {"label": "Truck"}], "auditLabelAttributeName": "boxes"}
    parent = {"image_size": [{"width": 320, "height": 180, "depth": 3}],
              "annotations": [{"class_id": 1, "left": 10, "top": 20, "width": 30, "height": 40},
                              {"class_id": 0, "left": 200, "top": 100, "width": 50, "height": 30}]}
    line = {"source-ref": f"{FRAMES}000007.jpg", "boxes": parent,
            "boxes-metadata": {"class-map": {"0": "Car", "1": "Truck"}}}
    task = make_task("BoundingBoxAudit", config, line)
    prediction = task_for_object(task, s3)["predictions"][0]["result"]
    assert [(r["id"], r["value"]["rectanglelabels"]) for r in prediction] == [("p0", ["Truck"]), ("p1", ["Car"])]
    same = labeled_from_annotations(task, [annotation(prediction)], s3)
    assert (same.adjusted, same.value) == (False, parent)
    relabeled = copy.deepcopy(prediction)
    relabeled[1]["value"]["rectanglelabels"] = ["Truck"]
    changed = labeled_from_annotations(task, [annotation(prediction), annotation(relabeled), annotation(prediction)], s3)
    assert changed.adjusted is True  # one of three workers adjusted it (GT: then the object is adjusted)
    added = labeled_from_annotations(task, [annotation(prediction + [rect("new", 100, 100, 20, 20)])], s3)
    assert added.adjusted is True and len(added.value["annotations"]) == 3

    colors = color_map({"labels": config["labels"]})
    mask = Image.new("RGB", (320, 180), hex_rgb(colors["0"]["hex-color"]))
    mask.paste(hex_rgb(colors["2"]["hex-color"]), (40, 30, 90, 80))
    buf = io.BytesIO()
    mask.save(buf, format="PNG")
    s3.put_bytes(f"s3://{BUCKET}/parent/mask.png", buf.getvalue(), "image/png")
    seg_line = {"source-ref": f"{FRAMES}000007.jpg", "seg-ref": f"s3://{BUCKET}/parent/mask.png",
                "seg-ref-metadata": {"internal-color-map": colors}}
    seg = make_task("SemanticSegmentationAudit", {**config, "auditLabelAttributeName": "seg-ref"}, seg_line)
    (painted,) = task_for_object(seg, s3)["predictions"][0]["result"]
    assert painted["value"]["brushlabels"] == ["Truck"]
    kept = labeled_from_annotations(seg, [annotation([painted])], s3)
    assert kept.adjusted is False and kept.files[kept.value] and png_classes(kept.files[kept.value], config) == \
        [2 if 40 <= x < 90 and 30 <= y < 80 else 0 for y in range(180) for x in range(320)]
    grown = labeled_from_annotations(seg, [annotation([brush("p2", "Truck", square(40, 30, 95, 80))])], s3)
    assert grown.adjusted is True


def test_parent_with_a_label_the_audit_config_lacks_fails_clearly(s3: S3, demo_video) -> None:
    line = {"source-ref": f"{FRAMES}000007.jpg",
            "boxes": {"image_size": [{"width": 320, "height": 180}], "annotations": [
                {"class_id": 0, "left": 1, "top": 1, "width": 5, "height": 5}]},
            "boxes-metadata": {"class-map": {"0": "Bicycle"}}}
    task = make_task("BoundingBoxAudit", {"labels": [{"label": "Car"}], "auditLabelAttributeName": "boxes"}, line)
    with pytest.raises(ValueError, match="label 'Bicycle' is not a label of this adjustment job"):
        parent_labels(task, s3)
    with pytest.raises(ResultError, match="Bicycle"):
        labeled_from_annotations(task, [annotation([])], s3)


SHAPES = {  # pixel geometry of one object on a 320x180 frame, per annotationType
    "Polyline": [{"x": 32, "y": 160}, {"x": 96, "y": 108}, {"x": 144, "y": 72}],
    "Polygon": [{"x": 96, "y": 54}, {"x": 160, "y": 54}, {"x": 160, "y": 108}, {"x": 96, "y": 108}],
    "Keypoint": {"x": 192, "y": 99},
}


def shape_parent(s3: S3, kind: str, layout: str) -> Task:
    """An adjustment task on a two-frame tracking parent with one object per frame, written in GT's layout
    (layout "vertices") or in the emulator's layout before it followed GT (layout "points")."""
    list_key = {"Polyline": "polylines", "Polygon": "polygons", "Keypoint": "keypoints"}[kind]
    frames = []
    for i, name in enumerate(["000001.jpg", "000003.jpg"]):
        shape = SHAPES[kind]
        geometry = dict(shape) if kind == "Keypoint" else {layout: [{"x": p["x"] + 4 * i, "y": p["y"]} for p in shape]}
        frames.append({"frame-no": i, "frame": name, list_key: [
            {**geometry, "class-id": "1", "label-category-attributes": {}, "object-id": "oid-car-1",
             "object-name": "Car:1"}], "frame-attributes": {}})
    uri = f"s3://{BUCKET}/parents/{kind}-{layout}/SeqLabel.json"
    s3.put_json(uri, {"tracking-annotations": frames})
    line = {"source-ref": sequence(s3, f"shapes-{kind}", ["000001.jpg", "000003.jpg"]), "shapes-ref": uri,
            "shapes-ref-metadata": {"class-map": {"1": "Car"}, "type": "groundtruth/video-object-tracking"}}
    config = {"labels": [{"label": "Lane"}, {"label": "Car"}], "annotationType": kind,
              "auditLabelAttributeName": "shapes-ref"}
    return make_task("VideoObjectTrackingAudit", config, line, job=f"shapes-{kind.lower()}-{layout}")


@pytest.mark.parametrize(("kind", "layout"), [("Polyline", "vertices"), ("Polygon", "vertices"), ("Keypoint", "x/y"),
                                              ("Polyline", "points"), ("Polygon", "points")])
def test_audit_of_polylines_polygons_and_keypoints_reads_gt_layout(s3: S3, demo_video, kind: str, layout: str) -> None:
    """The parent's shapes in GT's layout (and in the emulator's older "points") are drawn as the prediction,
    and come back in GT's layout: unchanged exactly when the reviewer left them, with the parent's identity."""
    task = shape_parent(s3, kind, layout)
    list_key = {"Polyline": "polylines", "Polygon": "polygons", "Keypoint": "keypoints"}[kind]
    prediction = task_for_object(task, s3)["predictions"][0]["result"]
    drawn = [r for r in prediction if r["from_name"] == "label"]
    assert [r["item_index"] for r in drawn] == [0, 1]
    if kind == "Polyline":
        assert [c for v in drawn[1]["value"]["vertices"] for c in (v["x"], v["y"])] == pytest.approx(
            [c for p in SHAPES[kind] for c in ((p["x"] + 4) * 100 / 320, p["y"] * 100 / 180)])
    elif kind == "Polygon":
        assert [c for v in drawn[1]["value"]["points"] for c in v] == pytest.approx(
            [c for p in SHAPES[kind] for c in ((p["x"] + 4) * 100 / 320, p["y"] * 100 / 180)])
    else:
        assert (drawn[0]["value"]["x"], drawn[0]["value"]["y"]) == pytest.approx((192 * 100 / 320, 99 * 100 / 180))

    kept = labeled_from_annotations(task, [annotation(prediction)], s3)
    assert kept.adjusted is False
    frames = seq_label(kept)["tracking-annotations"]
    assert [set(f) for f in frames] == [{"frame-no", "frame", list_key, "frame-attributes"}] * 2
    for i, frame in enumerate(frames):
        (item,) = frame[list_key]
        assert "points" not in item
        assert (item["object-id"], item["object-name"], item["class-id"]) == ("oid-car-1", "Car:1", "1")
        if kind == "Keypoint":
            assert {k: item[k] for k in ("x", "y")} == SHAPES[kind]
        else:
            assert item["vertices"] == [{"x": p["x"] + 4 * i, "y": p["y"]} for p in SHAPES[kind]]

    moved = copy.deepcopy(prediction)
    region = next(r for r in moved if r["from_name"] == "label" and r["item_index"] == 1)
    if kind == "Polyline":
        region["value"]["vertices"][0]["x"] += 5.0
    elif kind == "Polygon":
        region["value"]["points"][0][0] += 5.0
    else:
        region["value"]["x"] += 5.0
    adjusted = labeled_from_annotations(task, [annotation(moved)], s3)
    assert adjusted.adjusted is True
    (item,) = seq_label(adjusted)["tracking-annotations"][1][list_key]
    first = item if kind == "Keypoint" else item["vertices"][0]
    assert first["x"] == pytest.approx((SHAPES[kind]["x"] if kind == "Keypoint" else SHAPES[kind][0]["x"] + 4) + 16)


def test_parent_shape_without_vertices_fails_clearly(s3: S3, demo_video) -> None:
    task = shape_parent(s3, "Polyline", "vertices")
    body = s3.get_json(task.line["shapes-ref"])
    body["tracking-annotations"][0]["polylines"][0].pop("vertices")
    broken = f"s3://{BUCKET}/parents/broken/SeqLabel.json"
    s3.put_json(broken, body)
    task.line["shapes-ref"] = broken
    with pytest.raises(ValueError, match="frame 000001.jpg object 0: not a Polyline annotation"):
        parent_labels(task, s3)
    body["tracking-annotations"][0].pop("frame")
    s3.put_json(broken, body)
    with pytest.raises(ValueError, match="names no frame file"):
        parent_labels(task, s3)


def test_parent_of_another_tool_fails_clearly(s3: S3, demo_video) -> None:
    """GT adjusts with the parent's own tool: polylines under a BoundingBox adjustment would vanish silently."""
    lanes = shape_parent(s3, "Polyline", "vertices")
    boxes = make_task("VideoObjectTrackingAudit", {**lanes.config, "annotationType": "BoundingBox"}, lanes.line)
    with pytest.raises(ValueError, match=r"its frames hold \['polylines'\], but this adjustment job's annotationType "
                                         "BoundingBox adjusts 'annotations'"):
        parent_labels(boxes, s3)


# ---------------------------------------------------------------------------------------------------------
# A real Label Studio: configs accepted, results stored and read back, predictions shown

ADMIN = ("admin@example.com", "admin-pass-1", "tok_convert_0123456789")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioClient]:
    if not (DEFAULT_VENV / "bin" / "label-studio").exists():
        pytest.fail(f"{DEFAULT_VENV} is missing: run `scripts/bootstrap.sh --labelstudio` (these tests need a real "
                    "Label Studio)")
    server = LabelStudioServer(tmp_path_factory.mktemp("labelstudio"), port=_free_port(), admin_email=ADMIN[0],
                               admin_password=ADMIN[1], api_token=ADMIN[2])
    started = time.monotonic()
    server.start()
    print(f"Label Studio start: {time.monotonic() - started:.1f} s")
    try:
        with LabelStudioClient(server.url, ADMIN[2], retry_seconds=60) as client:
            yield client
    finally:
        server.stop()


ALL_CONFIGS = [
    ("BoundingBox", {"labels": [{"label": "Car"}, {"label": "Truck"}]}),
    ("BoundingBoxAudit", {"labels": [{"label": "Car"}], "auditLabelAttributeName": "x"}),
    ("SemanticSegmentation", {"labels": [{"label": "Road"}, {"label": "Car"}]}),
    ("SemanticSegmentationAudit", {"labels": [{"label": "Road"}], "auditLabelAttributeName": "x-ref"}),
    *[(m, c) for m in ("VideoObjectTracking", "VideoObjectDetection")
      for c in (VEHICLE, LABEL_CONFIGS["lane_label_category.json"])],
    *[(f"{m}Audit", {**c, "auditLabelAttributeName": "x-ref"}) for m in ("VideoObjectTracking", "VideoObjectDetection")
      for c in (LABEL_CONFIGS["vehicle_label_category_audit.json"], LABEL_CONFIGS["lane_label_category_audit.json"])],
    *[(m, {"labels": [{"label": "Car", "categoryAttributes": [
        {"name": "Occluded", "type": "string", "enum": ["no", "partly", "yes"], "isRequired": True},
        {"name": "Note", "type": "string"}]}, {"label": "Person, walking"}],
        "categoryGlobalAttributes": [{"name": "Size", "type": "number", "minimum": 0, "maximum": 10}],
        "frameAttributes": [{"name": "Weather", "type": "string", "enum": ["sun", "rain"], "isRequired": True},
                            {"name": "Count", "type": "number", "description": "objects"},
                            {"name": "Comment", "type": "string"}],
        "annotationType": kind, "instructions": {"shortInstruction": "Label it", "fullInstruction": "<p>All</p>"}})
      for m in ("VideoObjectTracking", "VideoObjectDetectionAudit") for kind in ("BoundingBox", "Polyline", "Polygon",
                                                                                 "Keypoint")],
]


def test_every_generated_config_is_accepted_by_label_studio(label_studio: LabelStudioClient) -> None:
    for modality, config in ALL_CONFIGS:
        spec = labeling_config(get_modality(modality), config, title=f"{modality} job", description="Label everything")
        assert label_studio.validate_label_config(spec.label_config) == [], modality
        project = label_studio.create_project(**spec.payload())
        assert project["label_config"] == spec.label_config
        assert project["expert_instruction"] == spec.expert_instruction
        label_studio.delete_project(project["id"])
    assert label_studio.validate_label_config(spec.label_config.replace('toName="frames"', 'toName="nothing"', 1))


def stored_annotations(ls: LabelStudioClient, spec, ls_task: dict[str, Any],
                       results: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Create the project and task in Label Studio, submit each worker's result, read them back as stored."""
    project = ls.create_project(**spec.payload(), maximum_annotations=len(results))
    (task_id,) = ls.import_tasks(project["id"], [ls_task])
    for result in results:
        ls.create_annotation(task_id, result, lead_time=3.5)
    stored = ls.task_annotations(task_id)
    assert len(stored) == len(results)
    return stored


def test_live_image_boxes_round_trip_within_a_pixel(label_studio: LabelStudioClient, s3: S3, demo_video) -> None:
    config = {"labels": [{"label": "Car"}, {"label": "Truck"}]}
    task = make_task("BoundingBox", config, {"source-ref": f"{FRAMES}000009.jpg"})
    spec = labeling_config(task.modality, config, title="boxes", description="")
    drawn = [(13.4, 27.7, 41.2, 30.9, "Car"), (250.6, 120.2, 69.4, 59.8, "Truck"), (0, 0, 320, 180, "Car")]
    stored = stored_annotations(label_studio, spec, task_for_object(task, s3),
                                [[rect(f"r{i}", *d) for i, d in enumerate(drawn)]])
    labeled = labeled_from_annotations(task, stored, s3)
    for (left, top, width, height, label), box in zip(drawn, labeled.value["annotations"], strict=True):
        assert box["class_id"] == ["Car", "Truck"].index(label)
        assert abs(box["left"] - left) <= 1 and abs(box["top"] - top) <= 1
        assert abs(box["left"] + box["width"] - (left + width)) <= 1
        assert abs(box["top"] + box["height"] - (top + height)) <= 1


def test_live_segmentation_mask_round_trips_pixel_exact(label_studio: LabelStudioClient, s3: S3, demo_video) -> None:
    config = {"labels": [{"label": "Road"}, {"label": "Car"}, {"label": "Sky"}]}
    task = make_task("SemanticSegmentation", config, {"source-ref": f"{FRAMES}000011.jpg"})
    spec = labeling_config(task.modality, config, title="masks", description="")
    sky = square(0, 0, 320, 60)
    road = bytes(255 if y >= 120 or (y >= 100 and (x // 7) % 2) else 0 for y in range(180) for x in range(320))
    car = square(130, 90, 190, 130)
    stored = stored_annotations(label_studio, spec, task_for_object(task, s3),
                                [[brush("s", "Sky", sky), brush("r", "Road", road), brush("c", "Car", car)]])
    labeled = labeled_from_annotations(task, stored, s3)
    expected = [2 if car[i] else 1 if road[i] else 3 if sky[i] else 0 for i in range(320 * 180)]
    assert png_classes(labeled.files[labeled.value], config) == expected


def test_live_video_boxes_and_polylines_with_tracking_ids(label_studio: LabelStudioClient, s3: S3, demo_video) -> None:
    seq = sequence(s3, "four", ["000002.jpg", "000004.jpg", "000006.jpg", "000008.jpg"])
    boxes = make_task("VideoObjectTracking", TRACKING_CONFIG, {"source-ref": seq}, job="live-boxes")
    spec = labeling_config(boxes.modality, boxes.config, title="boxes", description="")
    result = [r for i in range(4) for r in box_result(f"v{i}", i, 10 + 2 * i, 20, 15, 10, number=4)] + \
        box_result("t0", 0, 60, 60, 20, 20, label="Truck", number=9, moving=None) + \
        box_result("t3", 3, 64, 60, 20, 20, label="Truck", number=9, moving=None)
    stored = stored_annotations(label_studio, spec, task_for_object(boxes, s3), [result])
    frames = seq_label(labeled_from_annotations(boxes, stored, s3))["tracking-annotations"]
    assert [f["frame"] for f in frames] == ["000002.jpg", "000004.jpg", "000006.jpg", "000008.jpg"]
    vehicle_ids = {a["object-id"] for f in frames for a in f["annotations"] if a["class-id"] == "0"}
    truck_ids = {a["object-id"] for f in frames for a in f["annotations"] if a["class-id"] == "1"}
    assert len(vehicle_ids) == len(truck_ids) == 1 and vehicle_ids != truck_ids
    assert [len(f["annotations"]) for f in frames] == [2, 1, 1, 2]
    assert [a["left"] for f in frames for a in f["annotations"] if a["class-id"] == "0"] == [32, 38, 45, 51]

    lanes_config = {"labels": [{"label": "Lane"}], "annotationType": "Polyline"}
    lanes = make_task("VideoObjectTracking", lanes_config, {"source-ref": seq}, job="live-lanes")
    lane_spec = labeling_config(lanes.modality, lanes_config, title="lanes", description="")
    lines = []
    for i in range(4):
        for n, x in ((1, 10.0), (2, 60.0)):
            vertices = [{"x": x + i, "y": 95.0, "id": f"a{i}{n}", "isBezier": False},
                        {"x": 50.0, "y": 40.0, "id": f"b{i}{n}", "prevPointId": f"a{i}{n}", "isBezier": False}]
            geo = {"vertices": vertices, "closed": False}
            common = {"id": f"l{i}{n}", "to_name": "frames", "item_index": i, "original_width": 320,
                      "original_height": 180}
            lines += [{**common, "from_name": "label", "type": "vectorlabels", "value": {**geo, "vectorlabels": ["Lane"]}},
                      {**common, "from_name": "object", "type": "number", "value": {**geo, "number": n}}]
    stored = stored_annotations(label_studio, lane_spec, task_for_object(lanes, s3), [lines])
    frames = seq_label(labeled_from_annotations(lanes, stored, s3))["tracking-annotations"]
    assert all("annotations" not in f and len(f["polylines"]) == 2 for f in frames)
    by_name = {p["object-name"]: p for p in frames[2]["polylines"]}
    assert by_name["Lane:1"]["vertices"] == [{"x": 38.4, "y": 171.0}, {"x": 160.0, "y": 72.0}]
    assert len({p["object-id"] for f in frames for p in f["polylines"]}) == 2


def test_live_audit_prediction_shown_and_compared(label_studio: LabelStudioClient, s3: S3, parent_video) -> None:
    audit = parent_video["audit"]
    spec = labeling_config(audit.modality, audit.config, title="audit", description="check the boxes")
    ls_task = task_for_object(audit, s3)
    project = label_studio.create_project(**spec.payload())
    (task_id,) = label_studio.import_tasks(project["id"], [ls_task])
    shown = label_studio.get_task(task_id)
    # the reviewer opens the task with the parent's boxes drawn: the prediction is stored as given
    assert [p["result"] for p in shown["predictions"]] == [ls_task["predictions"][0]["result"]]
    moved = next(r for r in ls_task["predictions"][0]["result"] if r["from_name"] == "label")
    label_studio.create_annotation(task_id, submitted_from_prediction(ls_task, moved["id"], 3.0))
    label_studio.create_annotation(task_id, submitted_from_prediction(ls_task))
    first, second = label_studio.task_annotations(task_id)
    adjusted = labeled_from_annotations(audit, [first], s3)
    untouched = labeled_from_annotations(audit, [second], s3)
    assert (adjusted.adjusted, untouched.adjusted) == (True, False)
    before = parent_video["parent"]["tracking-annotations"]
    parent_ids = {a["object-id"] for f in before for a in f["annotations"]}
    after_ids = {a["object-id"] for f in seq_label(adjusted)["tracking-annotations"] for a in f["annotations"]}
    assert after_ids <= parent_ids and after_ids
