"""Video frame tracking and detection: boxes (from MOT references when present), polylines (lane
references), polygons and keypoints, with stable object ids for tracking; adjustments of a parent's
SeqLabel.json on the frames of the (possibly down-sampled) input sequence.

SeqLabel.json in GT's layout (smgt.manifests, "A parent's labels"): per frame "frame-no" (position in
the sequence, from 0), "frame" (file name), the tool's list ("annotations" for boxes, "polylines",
"polygons" with {"vertices": [{"x", "y"}]}, "keypoints" with {"x", "y"}) and "frame-attributes".
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from smgt.manifests import SEQ_LABEL_LISTS, ManifestError, seq_label_frames, shape_vertices

from .injection import inject_sequence, record_body
from .injection import record_uri as injection_record_uri
from .labels_common import (
    ADJUST_SHARE,
    DEFAULT_IMAGE_SIZE,
    Labeled,
    Task,
    class_map,
    frame_attributes,
    image_size,
    new_uuid,
    nudge,
    object_attributes,
    synthetic_boxes,
)
from .references import RefBox, frame_number, load_references
from .s3io import S3


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
        tracks[tid] = _Track(tid, class_id, new_uuid(rng), f"{name}:{per_label[class_id]}",
                             object_attributes(task.labels[class_id], rng))
    return tracks


def _synthetic_lanes(rng: random.Random, size: tuple[int, int]) -> list[list[tuple[float, float]]]:
    width, height = size
    horizon = height * rng.uniform(0.35, 0.5)
    return [[(width * bottom, height - 1), (width * (0.5 + (bottom - 0.5) * 0.2), horizon)]
            for bottom in sorted(rng.uniform(0.05, 0.95) for _ in range(rng.randint(2, 3)))]


def label_video(task: Task, s3: S3) -> Labeled:
    if task.audit_attribute:
        return _video_adjust(task, s3)
    rng = task.rng
    seq = s3.get_json(task.line["source-ref"])
    prefix = seq["prefix"] if seq["prefix"].endswith("/") else seq["prefix"] + "/"
    frames = seq["frames"]
    kind = task.config.get("annotationType", "BoundingBox")
    tracking = task.modality.base == "VideoObjectTracking"
    size = image_size(s3, prefix + frames[0]["frame"]) if frames else DEFAULT_IMAGE_SIZE
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
                    "vertices": [{"x": round(x + rng.uniform(-1, 1), 1), "y": round(y, 1)} for x, y in lane],
                    "class-id": str(t.class_id), "label-category-attributes": dict(t.attributes),
                }, t, tracking))
            out_frames.append(_frame(i, frame["frame"], rng, task, len(polylines), polylines, kind=kind))
    else:
        boxes = refs.boxes if refs.has_boxes else synthetic_boxes(rng, numbers, size)
        tracks = _tracks(task, rng, sorted({b.track_id for n in numbers for b in boxes.get(n, [])}))
        for i, (frame, number) in enumerate(zip(frames, numbers, strict=True)):
            annotations = []
            for b in boxes.get(number, []):
                t = tracks[b.track_id]
                used.add(t.class_id)
                annotations.append(_with_identity(
                    {**_shape(kind, b), "class-id": str(t.class_id),
                     "label-category-attributes": dict(t.attributes)}, t, tracking))
            out_frames.append(_frame(i, frame["frame"], rng, task, len(annotations), annotations, kind=kind))
    if task.label_errors is None:
        return _video_result(task, out_frames, used, adjusted=False)
    # Known mistakes for QA to find (faults' label_errors), recorded next to the output.
    rule = task.label_errors
    out_frames, injected = inject_sequence(out_frames, rule, rule.rng(task.seed, task.job_name, task.index),
                                           image_size=size)
    labeled = _video_result(task, out_frames, used, adjusted=False)
    labeled.files[injection_record_uri(task.consolidated_prefix, task.index)] = record_body(
        task.job_name, task.index, task.line["source-ref"], rule, task.seed, injected)
    return labeled


def _shape(kind: str, b: RefBox) -> dict[str, Any]:
    if kind == "Polygon":
        corners = [(b.left, b.top), (b.left + b.width, b.top), (b.left + b.width, b.top + b.height),
                   (b.left, b.top + b.height)]
        return {"vertices": [{"x": x, "y": y} for x, y in corners]}
    if kind == "Keypoint":
        return {"x": b.left + b.width / 2, "y": b.top + b.height / 2}
    return {"height": b.height, "width": b.width, "top": b.top, "left": b.left}


def _with_identity(ann: dict[str, Any], t: _Track, tracking: bool) -> dict[str, Any]:
    # Tracking keeps one object id across frames; detection has no identity across frames.
    if tracking:
        ann["object-id"] = t.object_id
        ann["object-name"] = t.object_name
    return ann


def _frame(i: int, name: str, rng: random.Random, task: Task, count: int, items: list[dict[str, Any]], *,
           kind: str) -> dict[str, Any]:
    """One frame of a SeqLabel.json: GT names its object list after the tool (SEQ_LABEL_LISTS)."""
    return {"frame-no": i, "frame": name, SEQ_LABEL_LISTS.get(kind, "annotations"): items,
            "frame-attributes": frame_attributes(task.config, rng, count)}


def _video_result(task: Task, frames: list[dict[str, Any]], used: set[int], adjusted: bool) -> Labeled:
    key = task.modality.annotations_key or "tracking-annotations"
    seq_label_uri = f"{task.consolidated_prefix}/{task.index}/SeqLabel.json"
    body = {key: frames}
    return Labeled(
        value=seq_label_uri,
        metadata={"class-map": class_map(task.config, used)},
        answer={key: frames},
        files={seq_label_uri: json.dumps(body).encode()},
        adjusted=adjusted,
    )


def _video_adjust(task: Task, s3: S3) -> Labeled:
    rng = task.rng
    parent_attr = task.audit_attribute or ""
    key = task.modality.annotations_key or "tracking-annotations"
    try:
        by_name = seq_label_frames(s3.get_json(task.line[parent_attr]), key)
    except ManifestError as exc:
        raise ValueError(f"parent label {parent_attr}: {exc}") from None
    parent_classes = (task.line.get(f"{parent_attr}-metadata") or {}).get("class-map", {})
    seq = s3.get_json(task.line["source-ref"])
    kind = task.config.get("annotationType", "BoundingBox")
    list_key = SEQ_LABEL_LISTS.get(kind, "annotations")
    # GT adjusts with the parent's own tool ("select the same task type as the labeling job that you
    # chained", sms-verification-data.html): labels of another tool would silently vanish.
    other = sorted({k for f in by_name.values() for k in SEQ_LABEL_LISTS.values() if k != list_key and f.get(k)})
    if other:
        raise ValueError(f"parent label {parent_attr}: its frames hold {other}, but this adjustment job's "
                         f"annotationType {kind} adjusts {list_key!r}")
    names = {lab["label"]: i for i, lab in enumerate(task.labels)}
    frames, used, any_adjusted = [], set(), False
    for i, name in enumerate(f["frame"] for f in seq["frames"]):
        src = by_name.get(name, {})
        frame_adjusted = False
        items = []
        for ann in src.get(list_key) or []:
            ann = dict(ann)
            if list_key in ("polylines", "polygons"):
                # GT's "vertices"; a parent the emulator wrote before it followed GT has "points".
                try:
                    vertices = shape_vertices(ann)
                except ManifestError as exc:
                    raise ValueError(f"parent label {parent_attr}, frame {name}: {exc}") from None
                ann.pop("points", None)
                ann["vertices"] = vertices
            changed = rng.random() < ADJUST_SHARE
            if changed:
                nudge(ann, rng)
            frame_adjusted |= changed
            label_name = parent_classes.get(str(ann.get("class-id")))
            class_id = names.get(label_name, int(ann.get("class-id", 0)) % len(task.labels))
            used.add(class_id)
            ann["class-id"] = str(class_id)
            ann["label-category-attributes"] = {
                **(ann.get("label-category-attributes") or {}),
                **object_attributes(task.labels[class_id], rng, adjusted=changed),
            }
            items.append(ann)
        # The parent's frame attributes stay (as its label-category attributes do); the
        # adjustment config's own ones (e.g. a frame-quality verdict) are added.
        frames.append({"frame-no": i, "frame": name, list_key: items,
                       "frame-attributes": {**(src.get("frame-attributes") or {}),
                                            **frame_attributes(task.config, rng, len(items), adjusted=frame_adjusted)}})
        any_adjusted |= frame_adjusted
    return _video_result(task, frames, used, adjusted=any_adjusted)
