"""The simulated workforce: what a worker answers for one data object, per modality.

Workers are deterministic for a seed: every random choice comes from a `random.Random` seeded with
(seed, job name, data object index), so a re-run of the same job writes the same labels. Reference
labels next to the input (see references.py) are used when present.

Each `label_*` function returns a `Labeled`: the value for the output manifest's label attribute
(inline JSON or an S3 URI of a file it asks to write), extra metadata keys, and the worker's raw
answer. outputs.py turns that into Ground Truth's file layout.

Adjustment tasks start from the parent's labels (named by `auditLabelAttributeName` in the category
config), change a share of them, mark changed objects through the audit config's attributes and set
`adjustment-status`.
"""

from __future__ import annotations

import io
import json
import math
import random
import uuid
import zlib
from array import array
from dataclasses import dataclass, field
from typing import Any

from smgt.registry import Modality

from .references import RefBox, frame_number, load_references
from .s3io import S3

ADJUST_SHARE = 0.25  # share of the parent's objects an auditor corrects
PALETTE = ["#2ca02c", "#1f77b4", "#ff7f0e", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
DEFAULT_IMAGE_SIZE = (1280, 720)


@dataclass
class Task:
    """One data object as handed to a worker."""

    job_name: str
    index: int  # dataset object id
    line: dict[str, Any]
    modality: Modality
    config: dict[str, Any]  # label category config
    label_attribute: str
    consolidated_prefix: str  # s3://.../{job}/annotations/consolidated-annotation/output
    seed: int

    @property
    def rng(self) -> random.Random:
        return random.Random(f"{self.seed}:{self.job_name.lower()}:{self.index}")

    @property
    def labels(self) -> list[dict[str, Any]]:
        return self.config["labels"]

    @property
    def audit_attribute(self) -> str | None:
        return self.config.get("auditLabelAttributeName") if self.modality.is_audit else None


@dataclass
class Labeled:
    value: Any  # label attribute value in the output manifest
    metadata: dict[str, Any]  # task-specific -metadata keys (class-map, color-map, ...)
    answer: dict[str, Any]  # the worker's answerContent
    files: dict[str, bytes] = field(default_factory=dict)  # S3 URI -> body to write
    adjusted: bool = False


def label(task: Task, s3: S3) -> Labeled:
    base = task.modality.base
    if base in ("VideoObjectTracking", "VideoObjectDetection"):
        return _video(task, s3)
    if base == "BoundingBox":
        return _image_boxes(task, s3)
    if base == "SemanticSegmentation":
        return _image_segmentation(task, s3)
    if base == "PointCloudObjectDetection":
        return _cloud_detection(task, s3)
    if base == "PointCloudObjectTracking":
        return _cloud_tracking(task, s3)
    if base == "PointCloudSemanticSegmentation":
        return _cloud_segmentation(task, s3)
    raise ValueError(f"no simulated worker for {task.modality.name}")


# ---------------------------------------------------------------- attributes


def _attribute_value(attr: dict[str, Any], rng: random.Random, *, adjusted: bool | None = None,
                     count: int | None = None) -> Any:
    enum = attr.get("enum")
    if enum:
        if adjusted is not None:  # audit attributes: first value = pass, last = fail
            return enum[-1] if adjusted else enum[0]
        return rng.choice(enum)
    if attr.get("type") == "number":
        return count if count is not None else rng.randint(0, 10)
    return ""


def _object_attributes(label_cfg: dict[str, Any] | None, rng: random.Random,
                       adjusted: bool | None = None) -> dict[str, Any]:
    attrs = (label_cfg or {}).get("attributes") or []
    return {a["name"]: _attribute_value(a, rng, adjusted=adjusted) for a in attrs if "name" in a}


def _frame_attributes(config: dict[str, Any], rng: random.Random, count: int,
                      adjusted: bool | None = None) -> dict[str, Any]:
    return {a["name"]: _attribute_value(a, rng, adjusted=adjusted, count=count)
            for a in config.get("frameAttributes") or [] if "name" in a}


def _label_cfg(config: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((lab for lab in config["labels"] if lab["label"] == name), None)


def _class_map(config: dict[str, Any], used: set[int]) -> dict[str, str]:
    return {str(i): lab["label"] for i, lab in enumerate(config["labels"]) if i in used}


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# ---------------------------------------------------------------- video frames


def _image_size(s3: S3, uri: str) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(s3.get_bytes(uri))) as img:
            return img.size
    except Exception:
        return DEFAULT_IMAGE_SIZE


@dataclass
class _Track:
    track_id: int
    class_id: int
    object_id: str
    object_name: str
    attributes: dict[str, Any]


def _tracks(task: Task, rng: random.Random, track_ids: list[int]) -> dict[int, _Track]:
    """Stable identity per reference track: class, object id/name and label-category attributes."""
    tracks: dict[int, _Track] = {}
    per_label: dict[int, int] = {}
    for tid in sorted(track_ids):
        class_id = tid % len(task.labels)
        per_label[class_id] = per_label.get(class_id, 0) + 1
        name = task.labels[class_id]["label"]
        tracks[tid] = _Track(tid, class_id, _uuid(rng), f"{name}:{per_label[class_id]}",
                             _object_attributes(task.labels[class_id], rng))
    return tracks


def _synthetic_boxes(rng: random.Random, frames: list[int], size: tuple[int, int]) -> dict[int, list[RefBox]]:
    """Objects moving linearly across the frames, for inputs without reference labels."""
    width, height = size
    boxes: dict[int, list[RefBox]] = {f: [] for f in frames}
    for tid in range(1, rng.randint(2, 4) + 1):
        w, h = rng.uniform(0.08, 0.2) * width, rng.uniform(0.08, 0.2) * height
        x, y = rng.uniform(0, width - w), rng.uniform(height * 0.3, height - h)
        dx, dy = rng.uniform(-4, 4), rng.uniform(-1, 1)
        for step, f in enumerate(frames):
            left = min(max(x + dx * step, 0), width - w)
            top = min(max(y + dy * step, 0), height - h)
            boxes[f].append(RefBox(tid, round(left), round(top), round(w), round(h)))
    return boxes


def _synthetic_lanes(rng: random.Random, size: tuple[int, int]) -> list[list[tuple[float, float]]]:
    width, height = size
    horizon = height * rng.uniform(0.35, 0.5)
    return [[(width * bottom, height - 1), (width * (0.5 + (bottom - 0.5) * 0.2), horizon)]
            for bottom in sorted(rng.uniform(0.05, 0.95) for _ in range(rng.randint(2, 3)))]


def _video(task: Task, s3: S3) -> Labeled:
    if task.audit_attribute:
        return _video_adjust(task, s3)
    rng = task.rng
    seq = s3.get_json(task.line["source-ref"])
    prefix = seq["prefix"] if seq["prefix"].endswith("/") else seq["prefix"] + "/"
    frames = seq["frames"]
    kind = task.config.get("annotationType", "BoundingBox")
    tracking = task.modality.base == "VideoObjectTracking"
    size = _image_size(s3, prefix + frames[0]["frame"]) if frames else DEFAULT_IMAGE_SIZE
    refs = load_references(s3, prefix)
    numbers = [frame_number(f["frame"]) or i + 1 for i, f in enumerate(frames)]

    out_frames = []
    used: set[int] = set()
    if kind == "Polyline":
        lanes = refs.lanes or _synthetic_lanes(rng, size)
        tracks = _tracks(task, rng, list(range(1, len(lanes) + 1)))
        for i, frame in enumerate(frames):
            polylines = []
            for tid, lane in enumerate(lanes, 1):
                t = tracks[tid]
                used.add(t.class_id)
                polylines.append(_with_identity({
                    "points": [{"x": round(x + rng.uniform(-1, 1), 1), "y": round(y, 1)} for x, y in lane],
                    "class-id": str(t.class_id), "label-category-attributes": dict(t.attributes),
                }, t, tracking))
            out_frames.append(_frame(i, frame, rng, task, len(polylines), polylines=polylines))
    else:
        boxes = refs.boxes if refs.has_boxes else _synthetic_boxes(rng, numbers, size)
        tracks = _tracks(task, rng, sorted({b.track_id for n in numbers for b in boxes.get(n, [])}))
        for i, (frame, number) in enumerate(zip(frames, numbers, strict=True)):
            annotations = []
            for b in boxes.get(number, []):
                t = tracks[b.track_id]
                used.add(t.class_id)
                annotations.append(_with_identity(
                    {**_shape(kind, b), "class-id": str(t.class_id),
                     "label-category-attributes": dict(t.attributes)}, t, tracking))
            out_frames.append(_frame(i, frame, rng, task, len(annotations), annotations=annotations,
                                     kind=kind))
    return _video_result(task, out_frames, used, adjusted=False)


def _shape(kind: str, b: RefBox) -> dict[str, Any]:
    if kind == "Polygon":
        corners = [(b.left, b.top), (b.left + b.width, b.top), (b.left + b.width, b.top + b.height),
                   (b.left, b.top + b.height)]
        return {"points": [{"x": x, "y": y} for x, y in corners]}
    if kind == "Keypoint":
        return {"x": b.left + b.width / 2, "y": b.top + b.height / 2}
    return {"height": b.height, "width": b.width, "top": b.top, "left": b.left}


def _with_identity(ann: dict[str, Any], t: _Track, tracking: bool) -> dict[str, Any]:
    # Tracking keeps one object id across frames; detection has no identity across frames.
    if tracking:
        ann["object-id"] = t.object_id
        ann["object-name"] = t.object_name
    return ann


# GT names the per-frame list after the tool: boxes in "annotations", others in their own list.
_LIST_FOR_KIND = {"BoundingBox": "annotations", "Polyline": "polylines", "Polygon": "polygons",
                  "Keypoint": "keypoints"}


def _frame(i: int, frame: dict[str, Any], rng: random.Random, task: Task, count: int, *,
           annotations: list | None = None, polylines: list | None = None, kind: str = "BoundingBox",
           adjusted: bool | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"frame-no": str(i), "frame": frame["frame"], "annotations": []}
    if polylines is not None:
        out["polylines"] = polylines
    elif annotations is not None:
        out[_LIST_FOR_KIND.get(kind, "annotations")] = annotations
    out["frame-attributes"] = _frame_attributes(task.config, rng, count, adjusted=adjusted)
    return out


def _video_result(task: Task, frames: list[dict[str, Any]], used: set[int], adjusted: bool) -> Labeled:
    key = task.modality.annotations_key or "tracking-annotations"
    seq_label_uri = f"{task.consolidated_prefix}/{task.index}/SeqLabel.json"
    body = {key: frames}
    return Labeled(
        value=seq_label_uri,
        metadata={"class-map": _class_map(task.config, used)},
        answer={key: frames},
        files={seq_label_uri: json.dumps(body).encode()},
        adjusted=adjusted,
    )


def _video_adjust(task: Task, s3: S3) -> Labeled:
    rng = task.rng
    parent_attr = task.audit_attribute or ""
    parent = s3.get_json(task.line[parent_attr])
    key = task.modality.annotations_key or "tracking-annotations"
    parent_classes = (task.line.get(f"{parent_attr}-metadata") or {}).get("class-map", {})
    seq = s3.get_json(task.line["source-ref"])
    wanted = [f["frame"] for f in seq["frames"]]
    by_name = {f["frame"]: f for f in parent.get(key, [])}
    names = {lab["label"]: i for i, lab in enumerate(task.labels)}
    frames, used, any_adjusted = [], set(), False
    for i, name in enumerate(wanted):
        src = by_name.get(name, {"frame": name})
        frame_adjusted = False
        out = {"frame-no": str(i), "frame": name}
        for list_key in ("annotations", "polylines", "polygons", "keypoints"):
            items = []
            for ann in src.get(list_key, []):
                ann = dict(ann)
                changed = rng.random() < ADJUST_SHARE
                if changed:
                    _nudge(ann, rng)
                frame_adjusted |= changed
                label_name = parent_classes.get(str(ann.get("class-id")))
                class_id = names.get(label_name, int(ann.get("class-id", 0)) % len(task.labels))
                used.add(class_id)
                ann["class-id"] = str(class_id)
                ann["label-category-attributes"] = {
                    **(ann.get("label-category-attributes") or {}),
                    **_object_attributes(task.labels[class_id], rng, adjusted=changed),
                }
                items.append(ann)
            if items or list_key == "annotations":
                out[list_key] = items
        count = sum(len(out.get(k, [])) for k in ("annotations", "polylines", "polygons", "keypoints"))
        out["frame-attributes"] = _frame_attributes(task.config, rng, count, adjusted=frame_adjusted)
        any_adjusted |= frame_adjusted
        frames.append(out)
    return _video_result(task, frames, used, adjusted=any_adjusted)


def _nudge(ann: dict[str, Any], rng: random.Random) -> None:
    """An auditor's correction: move a shape by a few pixels."""
    dx, dy = rng.choice([-4, -3, -2, 2, 3, 4]), rng.choice([-3, -2, 2, 3])
    if "left" in ann:
        ann["left"] = max(0, ann["left"] + dx)
        ann["top"] = max(0, ann["top"] + dy)
    if "points" in ann:
        ann["points"] = [{"x": p["x"] + dx, "y": p["y"] + dy} for p in ann["points"]]
    if "x" in ann and "y" in ann:
        ann["x"], ann["y"] = ann["x"] + dx, ann["y"] + dy


# ---------------------------------------------------------------- images


def _reference_boxes(s3: S3, uri: str) -> list[RefBox]:
    prefix, _, name = uri.rpartition("/")
    number = frame_number(name)
    if number is None:
        return []
    return load_references(s3, prefix + "/").boxes.get(number, [])


def _image_boxes(task: Task, s3: S3) -> Labeled:
    rng = task.rng
    uri = task.line["source-ref"]
    width, height = _image_size(s3, uri)
    if task.audit_attribute:
        parent = task.line[task.audit_attribute]
        annotations, adjusted = [], False
        for ann in parent.get("annotations", []):
            ann = dict(ann)
            if rng.random() < ADJUST_SHARE:
                _nudge(ann, rng)
                adjusted = True
            annotations.append(ann)
    else:
        boxes = _reference_boxes(s3, uri) or _synthetic_boxes(rng, [0], (width, height))[0]
        annotations = [{"class_id": b.track_id % len(task.labels), "left": b.left, "top": b.top,
                        "width": b.width, "height": b.height} for b in boxes]
        adjusted = False
    value = {"image_size": [{"width": width, "height": height, "depth": 3}], "annotations": annotations}
    used = {a["class_id"] for a in annotations}
    return Labeled(
        value=value,
        metadata={"objects": [{"confidence": 0.0} for _ in annotations],
                  "class-map": _class_map(task.config, used)},
        answer={"boundingBox": {"boundingBoxes": [
            {"label": task.labels[a["class_id"]]["label"], **{k: a[k] for k in ("left", "top", "width", "height")}}
            for a in annotations], "inputImageProperties": {"width": width, "height": height}}},
        adjusted=adjusted,
    )


def _color_map(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    colors = {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff", "confidence": 0.0}}
    for i, lab in enumerate(config["labels"], 1):
        colors[str(i)] = {"class-name": lab["label"], "hex-color": PALETTE[(i - 1) % len(PALETTE)],
                          "confidence": 0.0}
    return colors


def _hex(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def _image_segmentation(task: Task, s3: S3) -> Labeled:
    from PIL import Image, ImageDraw

    rng = task.rng
    uri = task.line["source-ref"]
    colors = _color_map(task.config)
    adjusted = False
    if task.audit_attribute:
        mask = Image.open(io.BytesIO(s3.get_bytes(task.line[task.audit_attribute]))).convert("RGB")
        if rng.random() < 0.5:  # the auditor repaints one region
            adjusted = True
            w, h = mask.size
            x, y = rng.randrange(max(w - 10, 1)), rng.randrange(max(h - 10, 1))
            ImageDraw.Draw(mask).rectangle([x, y, x + w // 8, y + h // 8],
                                           fill=_hex(colors[str(rng.randint(1, len(task.labels)))]["hex-color"]))
    else:
        width, height = _image_size(s3, uri)
        mask = Image.new("RGB", (width, height), _hex("#ffffff"))
        draw = ImageDraw.Draw(mask)
        boxes = _reference_boxes(s3, uri) or _synthetic_boxes(rng, [0], (width, height))[0]
        for b in boxes:
            color = colors[str(b.track_id % len(task.labels) + 1)]["hex-color"]
            draw.rectangle([b.left, b.top, b.left + b.width, b.top + b.height], fill=_hex(color))
    buf = io.BytesIO()
    mask.save(buf, format="PNG")
    mask_uri = f"{task.consolidated_prefix}/{task.index}_{_stamp(task)}.png"
    return Labeled(value=mask_uri, metadata={"internal-color-map": colors},
                   answer={"crowd-semantic-segmentation": {"labeledImage": {"pngImageData": "<png>"},
                                                           "labelMappings": colors}},
                   files={mask_uri: buf.getvalue()}, adjusted=adjusted)


def _stamp(task: Task) -> str:
    return f"{task.seed:04d}{task.index:06d}"


# ---------------------------------------------------------------- point clouds


def _cuboid(rng: random.Random, class_id: int, name: str, label_cfg: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "label-category-attributes": _object_attributes(label_cfg, rng),
        "object-name": name, "class-id": class_id,
        "center-x": round(rng.uniform(-20, 20), 3), "center-y": round(rng.uniform(-20, 20), 3),
        "center-z": round(rng.uniform(-1, 1), 3),
        "length": round(rng.uniform(3.5, 5), 3), "width": round(rng.uniform(1.6, 2.1), 3),
        "height": round(rng.uniform(1.4, 2.0), 3), "roll": 0, "pitch": 0,
        "yaw": round(rng.uniform(-math.pi, math.pi), 3),
    }


def _cuboids(task: Task, rng: random.Random) -> list[dict[str, Any]]:
    out, counts = [], {}
    for n in range(rng.randint(1, 4)):
        class_id = n % len(task.labels)
        counts[class_id] = counts.get(class_id, 0) + 1
        name = task.labels[class_id]["label"]
        out.append(_cuboid(rng, class_id, f"{name}:{counts[class_id]}", task.labels[class_id]))
    return out


def _nudge_cuboids(cuboids: list[dict[str, Any]], rng: random.Random) -> tuple[list[dict[str, Any]], bool]:
    changed = False
    out = []
    for c in cuboids:
        c = dict(c)
        if rng.random() < ADJUST_SHARE:
            c["center-x"] = round(c["center-x"] + rng.uniform(-0.3, 0.3), 3)
            c["yaw"] = round(c["yaw"] + rng.uniform(-0.1, 0.1), 3)
            changed = True
        out.append(c)
    return out, changed


def _cloud_detection(task: Task, s3: S3) -> Labeled:
    rng = task.rng
    if task.audit_attribute:
        cuboids, adjusted = _nudge_cuboids(task.line[task.audit_attribute].get("annotations", []), rng)
    else:
        cuboids, adjusted = _cuboids(task, rng), False
    used = {c["class-id"] for c in cuboids}
    meta: dict[str, Any] = {"objects": [], "class_map": _class_map(task.config, used)}
    if task.config.get("frameAttributes"):
        meta["dataset-object-attributes"] = _frame_attributes(task.config, rng, len(cuboids))
    return Labeled(value={"annotations": cuboids}, metadata=meta,
                   answer={"boundingCuboids": cuboids}, adjusted=adjusted)


def _cloud_tracking(task: Task, s3: S3) -> Labeled:
    rng = task.rng
    seq = s3.get_json(task.line["source-ref"])
    frames = seq.get("frames", [])
    key = "tracking-annotations"
    adjusted = False
    if task.audit_attribute:
        parent = s3.get_json(task.line[task.audit_attribute])
        wanted = {f["frame"] for f in frames}
        out = []
        for f in parent.get(key, []):
            if wanted and f.get("frame-name") not in wanted:
                continue
            anns, changed = _nudge_cuboids(f.get("annotations", []), rng)
            adjusted |= changed
            out.append({**f, "annotations": anns})
    else:
        base = _cuboids(task, rng)
        for c in base:
            c["object-id"] = _uuid(rng)
        out = []
        for i, f in enumerate(frames):
            anns = [{**c, "center-x": round(c["center-x"] + 0.5 * i, 3)} for c in base]
            out.append({"frame-number": i, "frame-name": f["frame"],
                        "frame-attributes": _frame_attributes(task.config, rng, len(anns)),
                        "annotations": anns})
    used = {a["class-id"] for f in out for a in f["annotations"]}
    uri = f"{task.consolidated_prefix}/{task.index}/SeqLabel.json"
    return Labeled(
        value=uri,
        metadata={"objects": [{"frame-no": f["frame-number"], "confidence": []} for f in out],
                  "class-map": _class_map(task.config, used)},
        answer={key: out}, files={uri: json.dumps({key: out}).encode()}, adjusted=adjusted)


def _point_count(task: Task, s3: S3) -> int:
    fmt = (task.line.get("source-ref-metadata") or {}).get("format", "")
    try:
        body = s3.get_bytes(task.line["source-ref"])
    except Exception:
        return 0
    if fmt.startswith("binary/"):
        fields = len(fmt.split("/", 1)[1]) or 4
        return len(body) // (4 * fields)
    return sum(1 for raw in body.decode(errors="replace").splitlines() if raw.strip())


def _cloud_segmentation(task: Task, s3: S3) -> Labeled:
    rng = task.rng
    adjusted = False
    if task.audit_attribute:
        classes = array("B", zlib.decompress(s3.get_bytes(task.line[task.audit_attribute])))
        for i in range(len(classes)):
            if rng.random() < 0.05:
                classes[i] = rng.randint(0, len(task.labels))
                adjusted = True
    else:
        classes = array("B", (rng.randint(0, len(task.labels)) for _ in range(_point_count(task, s3))))
    uri = f"{task.consolidated_prefix}/{task.index}/{task.index}.zlib"
    meta: dict[str, Any] = {"color-map": _color_map(task.config)}
    meta["color-map"]["0"]["class-name"] = "Background"
    if task.config.get("frameAttributes"):
        meta["dataset-object-attributes"] = _frame_attributes(task.config, rng, len(classes))
    return Labeled(value=uri, metadata=meta, answer={"annotatedResult": {"labelMap": uri}},
                   files={uri: zlib.compress(classes.tobytes())}, adjusted=adjusted)
