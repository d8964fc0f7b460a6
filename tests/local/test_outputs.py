"""Outputs of every modality, read back the way a consumer (the batch DAG, a training job) reads them,
checked against the formats of SPEC section 5 and Ground Truth's output documentation."""

from __future__ import annotations

import io
import re
import zlib
from array import array
from typing import Any

import pytest

from smgt.local import simulated
from smgt.local.references import parse_mot
from smgt.registry import get_modality

from .local_gt_helpers import SETTINGS, audit_config, job_request, read_manifest, unique, wait_terminal

ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def run(sm, emu, modality: str, manifest: str, category: str, **kw: Any) -> tuple[str, list[dict[str, Any]]]:
    name = kw.pop("name", None) or unique(modality[:12].lower())
    sm.create_labeling_job(**job_request(name, modality, manifest, category, **kw))
    desc = wait_terminal(sm, name)
    assert desc["LabelingJobStatus"] == "Completed", desc.get("FailureReason")
    return name, read_manifest(emu, desc["LabelingJobOutput"]["OutputDatasetS3Uri"])


def check_metadata(meta: dict[str, Any], name: str, output_type: str) -> None:
    assert meta["job-name"] == f"labeling-job/{name}"
    assert meta["human-annotated"] == "yes"
    assert meta["type"] == output_type
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+", meta["creation-date"])


@pytest.fixture(scope="module")
def vehicle_job(sm, emu, demo):
    return run(sm, emu, "VideoObjectTracking", demo["manifest_uri"], demo["label_configs"]["vehicle_label_category"],
               label_attribute="vehicle-ref")


def test_video_tracking_boxes_follow_reference_with_stable_ids(emu, demo, vehicle_job):
    name, lines = vehicle_job
    assert len(lines) == 1
    line = lines[0]
    assert line["source-ref"] == demo["sequence_uri"]
    meta = line["vehicle-ref-metadata"]
    check_metadata(meta, name, "groundtruth/video-object-tracking")
    assert meta["class-map"] == {"0": "Vehicle"}
    assert line["vehicle-ref"] == (f"s3://{SETTINGS.processing_bucket}/gt-output/{name}/annotations/"
                                   "consolidated-annotation/output/0/SeqLabel.json")

    seq = emu.s3.get_json(demo["sequence_uri"])
    labels = emu.s3.get_json(line["vehicle-ref"])["tracking-annotations"]
    assert [f["frame"] for f in labels] == [f["frame"] for f in seq["frames"]]
    reference = parse_mot(emu.s3.get_text(demo["gt_uri"]))
    ids: dict[str, str] = {}
    for i, frame in enumerate(labels):
        assert set(frame) == frame_keys("BoundingBox") and frame["frame-no"] == i
        number = int(frame["frame"].split(".")[0])
        expected = sorted((b.left, b.top, b.width, b.height) for b in reference[number])
        got = sorted((a["left"], a["top"], a["width"], a["height"]) for a in frame["annotations"])
        assert got == expected  # workers copied the MOT reference boxes
        assert frame["frame-attributes"] == {"Number_Of_Vehicles": len(frame["annotations"])}
        for ann in frame["annotations"]:
            assert re.fullmatch(r"Vehicle:\d+", ann["object-name"])
            assert ann["class-id"] in meta["class-map"]
            assert ann["label-category-attributes"]["Moving"] in {"Stationary", "Dynamic"}
            assert ann["label-category-attributes"]["Vehicle_Type"] in {"Car", "Van", "Bus", "SUV"}
            assert ids.setdefault(ann["object-name"], ann["object-id"]) == ann["object-id"]
    assert len(set(ids.values())) == len(ids) == 4  # four cars, one id each across all frames


def test_worker_response_files(emu, vehicle_job):
    name, _ = vehicle_job
    keys = emu.s3.list_keys(SETTINGS.processing_bucket, f"gt-output/{name}/annotations/worker-response/iteration-1/0/")
    assert len(keys) == 1 and keys[0].endswith(".json")
    answer = emu.s3.get_json(f"s3://{SETTINGS.processing_bucket}/{keys[0]}")["answers"][0]
    assert ISO_MS.fullmatch(answer["acceptanceTime"]) and ISO_MS.fullmatch(answer["submissionTime"])
    assert answer["acceptanceTime"] < answer["submissionTime"]
    assert answer["timeSpentInSeconds"] > 0
    assert answer["workerId"].startswith("private.us-east-1.")
    identity = answer["workerMetadata"]["identityData"]
    assert identity["identityProviderType"] == "Cognito"
    assert identity["issuer"].startswith("https://cognito-idp.us-east-1.amazonaws.com/")
    # The worker is a member of the job's (first-level) team.
    idp = emu.client("cognito-idp")
    pool = identity["issuer"].rsplit("/", 1)[1]
    members = idp.list_users_in_group(UserPoolId=pool, GroupName="smgt-workflows-first-level")["Users"]
    subs = {a["Value"] for u in members for a in u["Attributes"] if a["Name"] == "sub"}
    assert identity["sub"] in subs
    assert "tracking-annotations" in answer["answerContent"]


# GT's SeqLabel.json frame keys (https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-output.html): the
# object list is named after the tool, the frame numbered from 0 in the labeled sequence.
LIST_FOR = {"BoundingBox": "annotations", "Polyline": "polylines", "Polygon": "polygons", "Keypoint": "keypoints"}


def frame_keys(kind: str) -> set[str]:
    return {"frame-no", "frame", LIST_FOR[kind], "frame-attributes"}


def test_video_polylines_follow_lane_reference(sm, emu, demo):
    name, lines = run(sm, emu, "VideoObjectTracking", demo["manifest_uri"], demo["label_configs"]["lane_label_category"],
                      label_attribute="lane-ref")
    frames = emu.s3.get_json(lines[0]["lane-ref"])["tracking-annotations"]
    seq = emu.s3.get_json(demo["sequence_uri"])
    assert [(f["frame-no"], f["frame"]) for f in frames] == [(i, f["frame"]) for i, f in enumerate(seq["frames"])]
    lanes = emu.s3.get_json(demo["frames_prefix"].replace("img1/", "gt/lanes.json"))["lanes"]
    for frame in frames:
        assert set(frame) == frame_keys("Polyline")
        assert len(frame["polylines"]) == len(lanes)
        for poly, lane in zip(frame["polylines"], lanes, strict=True):
            assert set(poly) == {"vertices", "class-id", "label-category-attributes", "object-id", "object-name"}
            assert re.fullmatch(r"Lane:\d+", poly["object-name"]) and poly["object-id"] and poly["class-id"] == "0"
            assert len(poly["vertices"]) == len(lane)
            for point, (x, y) in zip(poly["vertices"], lane, strict=True):
                assert set(point) == {"x", "y"} and abs(point["x"] - x) <= 1.5 and point["y"] == y


@pytest.fixture(scope="module")
def shape_configs(emu, demo) -> dict[str, str]:
    """The vehicle category config with annotationType Polygon / Keypoint (boxes come from the MOT reference)."""
    source = demo["label_configs"]["vehicle_label_category"]
    out = {}
    for kind in ("Polygon", "Keypoint"):
        out[kind] = source.replace(".json", f"-{kind.lower()}.json")
        emu.s3.put_json(out[kind], {**emu.s3.get_json(source), "annotationType": kind})
    return out


@pytest.mark.parametrize("modality", ["VideoObjectTracking", "VideoObjectDetection"])
@pytest.mark.parametrize("kind", ["Polygon", "Keypoint"])
def test_video_polygons_and_keypoints_in_gt_layout(sm, emu, demo, shape_configs, modality, kind):
    name, lines = run(sm, emu, modality, demo["manifest_uri"], shape_configs[kind])
    attr = f"{name}-ref"
    meta = lines[0][f"{attr}-metadata"]
    check_metadata(meta, name, get_modality(modality).output_type)
    assert meta["class-map"] == {"0": "Vehicle"}
    frames = emu.s3.get_json(lines[0][attr])[get_modality(modality).annotations_key]
    reference = parse_mot(emu.s3.get_text(demo["gt_uri"]))
    tracking = modality == "VideoObjectTracking"
    identity = {"object-id", "object-name"} if tracking else set()
    ids: dict[str, str] = {}
    for i, frame in enumerate(frames):
        assert set(frame) == frame_keys(kind) and frame["frame-no"] == i
        boxes = reference[int(frame["frame"].split(".")[0])]
        items = frame[LIST_FOR[kind]]
        assert len(items) == len(boxes) > 0
        for item in items:
            assert item["class-id"] == "0" and set(item["label-category-attributes"]) == {"Moving", "Vehicle_Type"}
            if tracking:
                assert ids.setdefault(item["object-name"], item["object-id"]) == item["object-id"]
        if kind == "Polygon":
            assert all(set(item) == {"vertices", "class-id", "label-category-attributes"} | identity for item in items)
            got = sorted(tuple((v["x"], v["y"]) for v in item["vertices"]) for item in items)
            assert got == sorted(((b.left, b.top), (b.left + b.width, b.top), (b.left + b.width, b.top + b.height),
                                  (b.left, b.top + b.height)) for b in boxes)
        else:
            assert all(set(item) == {"x", "y", "class-id", "label-category-attributes"} | identity for item in items)
            assert sorted((item["x"], item["y"]) for item in items) == sorted(
                (b.left + b.width / 2, b.top + b.height / 2) for b in boxes)
    assert len(ids) == (4 if tracking else 0)  # tracking: the four cars keep one id each across frames


def test_video_detection_has_no_identities(sm, emu, demo):
    name, lines = run(sm, emu, "VideoObjectDetection", demo["manifest_uri"],
                      demo["label_configs"]["vehicle_label_category"])
    attr = f"{name}-ref"
    check_metadata(lines[0][f"{attr}-metadata"], name, "groundtruth/video-object-detection")
    frames = emu.s3.get_json(lines[0][attr])["detection-annotations"]
    assert frames and all(frame["annotations"] for frame in frames)
    assert all("object-id" not in a and {"left", "top", "width", "height", "class-id"} <= set(a)
               for frame in frames for a in frame["annotations"])


def test_adjustment_job_starts_from_parent_labels(sm, emu, demo, vehicle_job):
    parent_name, parent_lines = vehicle_job
    parent_out = f"s3://{SETTINGS.processing_bucket}/gt-output/{parent_name}/manifests/output/output.manifest"
    config = audit_config(emu, demo["label_configs"]["vehicle_label_category_audit"], "vehicle-ref")
    name, lines = run(sm, emu, "VideoObjectTrackingAudit", parent_out, config, label_attribute="vehicle-audit-ref")
    line = lines[0]
    assert line["vehicle-ref"] == parent_lines[0]["vehicle-ref"]  # the parent's label is kept
    meta = line["vehicle-audit-ref-metadata"]
    check_metadata(meta, name, "groundtruth/video-object-tracking")
    assert meta["adjustment-status"] in {"adjusted", "unadjusted"}
    parent = emu.s3.get_json(parent_lines[0]["vehicle-ref"])["tracking-annotations"]
    audit = emu.s3.get_json(line["vehicle-audit-ref"])["tracking-annotations"]
    parent_ids = {a["object-id"] for f in parent for a in f["annotations"]}
    audit_ids = {a["object-id"] for f in audit for a in f["annotations"]}
    assert audit_ids == parent_ids  # same objects, possibly moved
    verdicts = [a["label-category-attributes"]["audit"] for f in audit for a in f["annotations"]]
    assert set(verdicts) <= {"Pass", "Fail"}
    moved = sum(
        (a["left"], a["top"]) != (b["left"], b["top"])
        for fa, fb in zip(parent, audit, strict=True)
        for a, b in zip(sorted(fa["annotations"], key=lambda x: x["object-id"]),
                        sorted(fb["annotations"], key=lambda x: x["object-id"]), strict=True))
    assert moved == verdicts.count("Fail")
    assert (meta["adjustment-status"] == "adjusted") == (moved > 0)
    assert all(f["frame-attributes"]["Frame_Quality"] in {"Pass", "Fail"} for f in audit)


def test_adjustment_on_down_sampled_frames_keeps_only_those(sm, emu, demo, vehicle_job):
    _, parent_lines = vehicle_job
    seq = emu.s3.get_json(demo["sequence_uri"])
    kept = seq["frames"][::3]
    base = f"s3://{SETTINGS.processing_bucket}/tests/downsampled"
    emu.s3.put_json(f"{base}/seq.json", {**seq, "number-of-frames": len(kept), "frames": kept})
    emu.s3.put_lines(f"{base}/input.manifest", [{**parent_lines[0], "source-ref": f"{base}/seq.json"}])
    config = audit_config(emu, demo["label_configs"]["vehicle_label_category_audit"], "vehicle-ref")
    _, lines = run(sm, emu, "VideoObjectTrackingAudit", f"{base}/input.manifest", config,
                   label_attribute="vehicle-audit-ref")
    frames = emu.s3.get_json(lines[0]["vehicle-audit-ref"])["tracking-annotations"]
    assert [f["frame"] for f in frames] == [f["frame"] for f in kept]


def test_lane_adjustment_keeps_polylines(sm, emu, demo):
    _, parent = run(sm, emu, "VideoObjectTracking", demo["manifest_uri"], demo["label_configs"]["lane_label_category"],
                    label_attribute="lane-ref")
    out_path = f"s3://{SETTINGS.processing_bucket}/tests/lane-parent.manifest"
    emu.s3.put_lines(out_path, parent)
    config = audit_config(emu, demo["label_configs"]["lane_label_category_audit"], "lane-ref")
    _, lines = run(sm, emu, "VideoObjectTrackingAudit", out_path, config, label_attribute="lane-audit-ref")
    before = emu.s3.get_json(parent[0]["lane-ref"])["tracking-annotations"]
    frames = emu.s3.get_json(lines[0]["lane-audit-ref"])["tracking-annotations"]
    assert all(set(f) == frame_keys("Polyline") for f in frames)
    assert all(p["label-category-attributes"]["audit"] in {"Pass", "Fail"} for f in frames for p in f["polylines"])
    for old, new in zip(before, frames, strict=True):
        for a, b in zip(old["polylines"], new["polylines"], strict=True):
            assert b["object-id"] == a["object-id"] and len(b["vertices"]) == len(a["vertices"])
            moved = b["vertices"] != a["vertices"]
            assert moved == (b["label-category-attributes"]["audit"] == "Fail")


def test_adjustment_reads_a_parent_written_before_gt_layout(sm, emu, demo):
    """SeqLabel.json files the emulator wrote with "points" instead of GT's "vertices" (and "frame-no" as a string)
    are still read; the adjustment writes GT's layout."""
    _, parent = run(sm, emu, "VideoObjectTracking", demo["manifest_uri"], demo["label_configs"]["lane_label_category"],
                    label_attribute="lane-ref")
    body = emu.s3.get_json(parent[0]["lane-ref"])
    for frame in body["tracking-annotations"]:
        frame["frame-no"] = str(frame["frame-no"])
        frame["annotations"] = []
        for poly in frame["polylines"]:
            poly["points"] = poly.pop("vertices")
    legacy = f"s3://{SETTINGS.processing_bucket}/tests/legacy-lanes/SeqLabel.json"
    emu.s3.put_json(legacy, body)
    out_path = f"s3://{SETTINGS.processing_bucket}/tests/legacy-lane-parent.manifest"
    emu.s3.put_lines(out_path, [{**parent[0], "lane-ref": legacy}])
    config = audit_config(emu, demo["label_configs"]["lane_label_category_audit"], "lane-ref")
    _, lines = run(sm, emu, "VideoObjectTrackingAudit", out_path, config, label_attribute="lane-audit-ref")
    frames = emu.s3.get_json(lines[0]["lane-audit-ref"])["tracking-annotations"]
    assert all(set(f) == frame_keys("Polyline") and isinstance(f["frame-no"], int) for f in frames)
    polylines = [p for f in frames for p in f["polylines"]]
    assert polylines and all("points" not in p and len(p["vertices"]) == 2 for p in polylines)
    unmoved = [p for p in polylines if p["label-category-attributes"]["audit"] == "Pass"]
    legacy_by_id = {(f["frame"], p["object-id"]): p["points"] for f in body["tracking-annotations"] for p in f["polylines"]}
    assert unmoved and all(p["vertices"] == legacy_by_id[(f["frame"], p["object-id"])]
                           for f in frames for p in f["polylines"] if p in unmoved)


def test_image_bounding_boxes(sm, emu, demo, inputs):
    name, lines = run(sm, emu, "BoundingBox", inputs["images"], inputs["car"], template=inputs["template"])
    reference = parse_mot(emu.s3.get_text(demo["gt_uri"]))
    assert len(lines) == 3
    for line in lines:
        value, meta = line[name], line[f"{name}-metadata"]
        check_metadata(meta, name, "groundtruth/object-detection")
        assert value["image_size"] == [{"width": 320, "height": 180, "depth": 3}]
        number = int(line["source-ref"].rsplit("/", 1)[1].split(".")[0])
        assert sorted((a["left"], a["top"], a["width"], a["height"]) for a in value["annotations"]) == sorted(
            (b.left, b.top, b.width, b.height) for b in reference[number])
        assert len(meta["objects"]) == len(value["annotations"])
        assert {str(a["class_id"]) for a in value["annotations"]} == set(meta["class-map"])

    # Adjustment: starts from these boxes.
    parent_out = f"s3://{SETTINGS.processing_bucket}/gt-output/{name}/manifests/output/output.manifest"
    config = audit_config(emu, inputs["car"], name)
    audit_name, audited = run(sm, emu, "BoundingBoxAudit", parent_out, config, template=inputs["template"])
    for before, after in zip(lines, audited, strict=True):
        assert len(after[audit_name]["annotations"]) == len(before[name]["annotations"])
        assert after[f"{audit_name}-metadata"]["adjustment-status"] in {"adjusted", "unadjusted"}


def test_image_semantic_segmentation_masks(sm, emu, inputs):
    from PIL import Image

    name, lines = run(sm, emu, "SemanticSegmentation", inputs["images"], inputs["road"], template=inputs["template"])
    attr = f"{name}-ref"
    for line in lines:
        meta = line[f"{attr}-metadata"]
        check_metadata(meta, name, "groundtruth/semantic-segmentation")
        colors = meta["internal-color-map"]
        assert colors["0"]["class-name"] == "BACKGROUND" and {c["class-name"] for c in colors.values()} >= {"Road", "Car"}
        assert line[attr].endswith(".png")
        mask = Image.open(io.BytesIO(emu.s3.get_bytes(line[attr]))).convert("RGB")
        assert mask.size == (320, 180)
        allowed = {tuple(int(c["hex-color"][i:i + 2], 16) for i in (1, 3, 5)) for c in colors.values()}
        used = {rgb for _, rgb in mask.getcolors(maxcolors=10_000)}
        assert used <= allowed and len(used) >= 2  # background plus at least one class


def test_point_cloud_object_detection(sm, emu, inputs):
    name, lines = run(sm, emu, "PointCloudObjectDetection", inputs["cloud"], inputs["cuboids"])
    for line in lines:
        assert line["source-ref-metadata"]["format"] == "text/xyzi"  # input keys kept
        meta = line[f"{name}-metadata"]
        check_metadata(meta, name, "groundtruth/point_cloud_object_detection")
        assert meta["dataset-object-attributes"]["Weather"] in {"Sun", "Rain"}
        for cuboid in line[name]["annotations"]:
            assert {"center-x", "center-y", "center-z", "length", "width", "height", "roll", "pitch", "yaw",
                    "class-id", "object-name", "label-category-attributes"} <= set(cuboid)
            assert str(cuboid["class-id"]) in meta["class_map"]


CUBOID_KEYS = {"label-category-attributes", "object-name", "class-id", "center-x", "center-y", "center-z",
               "length", "width", "height", "roll", "pitch", "yaw"}


def test_point_cloud_object_tracking(sm, emu, inputs):
    name, lines = run(sm, emu, "PointCloudObjectTracking", inputs["cloud_seq"], inputs["cuboids"])
    attr = f"{name}-ref"
    meta = lines[0][f"{attr}-metadata"]
    check_metadata(meta, name, "groundtruth/point_cloud_object_tracking")
    frames = emu.s3.get_json(lines[0][attr])["tracking-annotations"]
    # GT keys 3D frames by frame-number (position from 0) and frame-name (the sequence frame's file)
    assert [(f["frame-number"], f["frame-name"]) for f in frames] == [(0, "frame0.txt"), (1, "frame1.txt"),
                                                                       (2, "frame2.txt")]
    assert all(set(f) == {"frame-number", "frame-name", "frame-attributes", "annotations"} for f in frames)
    assert all(f["frame-attributes"]["Weather"] in {"Sun", "Rain"} for f in frames)
    assert meta["objects"] == [{"frame-no": i, "confidence": []} for i in range(3)]
    for cuboid in (a for f in frames for a in f["annotations"]):
        assert set(cuboid) == CUBOID_KEYS | {"object-id"}
        assert isinstance(cuboid["class-id"], int) and str(cuboid["class-id"]) in meta["class-map"]
        assert re.fullmatch(r"(Car|Pedestrian):\d+", cuboid["object-name"])
    ids = [{a["object-name"]: a["object-id"] for a in f["annotations"]} for f in frames]
    assert ids[0] and ids[0] == ids[1] == ids[2]


def test_point_cloud_tracking_adjustment_on_down_sampled_frames(sm, emu, inputs):
    parent, parent_lines = run(sm, emu, "PointCloudObjectTracking", inputs["cloud_seq"], inputs["cuboids"])
    parent_attr = f"{parent}-ref"
    before = {f["frame-name"]: f for f in emu.s3.get_json(parent_lines[0][parent_attr])["tracking-annotations"]}
    seq = emu.s3.get_json(parent_lines[0]["source-ref"])
    kept = [seq["frames"][0], seq["frames"][2]]
    base = f"s3://{SETTINGS.processing_bucket}/tests/pc-downsampled"
    emu.s3.put_json(f"{base}/seq.json", {**seq, "number-of-frames": 2, "frames": kept})
    emu.s3.put_lines(f"{base}/input.manifest", [{**parent_lines[0], "source-ref": f"{base}/seq.json"}])
    audit = f"{base}/cuboids-audit.json"
    emu.s3.put_json(audit, {**emu.s3.get_json(inputs["cuboids"]), "auditLabelAttributeName": parent_attr, "labels": [
        {"label": "Car", "attributes": [{"name": "audit", "type": "string", "enum": ["Pass", "Fail"]}]},
        {"label": "Pedestrian", "attributes": [{"name": "audit", "type": "string", "enum": ["Pass", "Fail"]}]}]})
    name, lines = run(sm, emu, "PointCloudObjectTrackingAudit", f"{base}/input.manifest", audit)
    attr = f"{name}-ref"
    meta = lines[0][f"{attr}-metadata"]
    assert meta["adjustment-status"] in {"adjusted", "unadjusted"}
    frames = emu.s3.get_json(lines[0][attr])["tracking-annotations"]
    # exactly the frames of this job's sequence, numbered from 0, found in the parent by name
    assert [(f["frame-number"], f["frame-name"]) for f in frames] == [(0, "frame0.txt"), (1, "frame2.txt")]
    assert meta["objects"] == [{"frame-no": 0, "confidence": []}, {"frame-no": 1, "confidence": []}]
    moved = 0
    for frame in frames:
        old = before[frame["frame-name"]]
        assert [a["object-id"] for a in frame["annotations"]] == [a["object-id"] for a in old["annotations"]]
        assert frame["frame-attributes"]["Weather"] in {"Sun", "Rain"}
        for a, b in zip(old["annotations"], frame["annotations"], strict=True):
            assert set(b) == CUBOID_KEYS | {"object-id"}
            changed = (a["center-x"], a["yaw"]) != (b["center-x"], b["yaw"])
            assert (b["label-category-attributes"]["audit"] == "Fail") == changed
            moved += changed
    assert (meta["adjustment-status"] == "adjusted") == (moved > 0)


def test_point_cloud_semantic_segmentation(sm, emu, inputs):
    name, lines = run(sm, emu, "PointCloudSemanticSegmentation", inputs["cloud"], inputs["cuboids"])
    attr = f"{name}-ref"
    meta = lines[0][f"{attr}-metadata"]
    check_metadata(meta, name, "groundtruth/point_cloud_single_frame_semantic_segmentation")
    classes = array("B", zlib.decompress(emu.s3.get_bytes(lines[0][attr])))
    assert len(classes) == 50  # one class per point of the input cloud
    assert set(classes) <= {int(k) for k in meta["color-map"]}


def test_workers_are_deterministic_for_a_seed(emu, demo):
    config = emu.s3.get_json(demo["label_configs"]["vehicle_label_category"])

    def task(seed: int) -> simulated.Task:
        return simulated.Task("det-job", 0, {"source-ref": demo["sequence_uri"]}, get_modality("VideoObjectTracking"),
                              config, "vehicle-ref", "s3://b/p", seed)

    first, again, other = (simulated.label(task(s), emu.s3) for s in (3, 3, 4))
    assert first.files == again.files
    assert first.files != other.files


def test_adjustment_of_another_tools_labels_fails_the_object(emu, demo):
    """GT adjusts with the parent's own tool; polylines under a BoundingBox adjustment would vanish silently."""
    uri = f"s3://{SETTINGS.processing_bucket}/tests/tool-mismatch/SeqLabel.json"
    seq = emu.s3.get_json(demo["sequence_uri"])
    emu.s3.put_json(uri, {"tracking-annotations": [
        {"frame-no": i, "frame": f["frame"], "polylines": [{"vertices": [{"x": 1, "y": 2}, {"x": 3, "y": 4}],
                                                            "class-id": "0", "label-category-attributes": {}}],
         "frame-attributes": {}} for i, f in enumerate(seq["frames"])]})
    config = {**emu.s3.get_json(demo["label_configs"]["vehicle_label_category_audit"]),
              "auditLabelAttributeName": "lane-ref"}
    task = simulated.Task("mismatch", 0, {"source-ref": demo["sequence_uri"], "lane-ref": uri},
                          get_modality("VideoObjectTrackingAudit"), config, "lane-audit-ref", "s3://b/p", 0)
    with pytest.raises(ValueError, match=r"frames hold \['polylines'\].*annotationType BoundingBox"):
        simulated.label(task, emu.s3)


@pytest.mark.parametrize(("modality", "manifest", "category"), [
    ("VideoObjectDetection", "demo", "vehicle"),
    ("SemanticSegmentation", "images", "road"),
    ("PointCloudObjectDetection", "cloud", "cuboids"),
    ("PointCloudObjectTracking", "cloud_seq", "cuboids"),
    ("PointCloudSemanticSegmentation", "cloud", "cuboids"),
])
def test_every_audit_modality_adjusts_its_parent(sm, emu, demo, inputs, modality, manifest, category):
    manifest_uri = demo["manifest_uri"] if manifest == "demo" else inputs[manifest]
    category_uri = demo["label_configs"]["vehicle_label_category"] if category == "vehicle" else inputs[category]
    parent, parent_lines = run(sm, emu, modality, manifest_uri, category_uri, template=inputs["template"])
    parent_attr = get_modality(modality).default_label_attribute(parent)
    parent_out = f"s3://{SETTINGS.processing_bucket}/gt-output/{parent}/manifests/output/output.manifest"
    name, lines = run(sm, emu, f"{modality}Audit", parent_out, audit_config(emu, category_uri, parent_attr),
                      template=inputs["template"])
    attr = get_modality(f"{modality}Audit").default_label_attribute(name)
    assert len(lines) == len(parent_lines)
    for before, after in zip(parent_lines, lines, strict=True):
        assert after[parent_attr] == before[parent_attr]  # the parent's label stays on the line
        meta = after[f"{attr}-metadata"]
        check_metadata(meta, name, get_modality(modality).output_type)
        assert meta["adjustment-status"] in {"adjusted", "unadjusted"}
        if isinstance(after[attr], str):  # a label file of its own
            assert after[attr] != before[parent_attr]
        else:  # an inline copy, changed exactly when the auditor adjusted it
            assert (after[attr] != before[parent_attr]) == (meta["adjustment-status"] == "adjusted")
