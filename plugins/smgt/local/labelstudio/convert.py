"""Label Studio annotations -> the Ground Truth output of one data object, as the simulated workforce writes it.

`labeled_from_annotations(task, annotations, s3)` returns the same `Labeled` as labels_image /
labels_video (value, -metadata keys, files to write, adjusted), in pixels:

    image boxes     {"image_size": [{"width", "height", "depth": 3}], "annotations": [{"class_id", "left",
                    "top", "width", "height"}]}; metadata "objects" (one confidence per box), "class-map"
    segmentation    s3 URI of a PNG mask in GT's colors; metadata "internal-color-map" (labels_common.color_map)
    video           s3 URI of {consolidated}/{index}/SeqLabel.json = {"tracking-annotations" | "detection-annotations":
                    [{"frame-no": position from 0, "frame": file name, <list>: [...], "frame-attributes"}]}, the
                    list named after the tool: "annotations" (boxes: height, width, top, left), "polylines" and
                    "polygons" ({"vertices": [{"x", "y"}, ...]}), "keypoints" ({"x", "y"}); each object also has
                    "class-id", "label-category-attributes" and, for tracking, "object-id" and "object-name";
                    metadata "class-map"
    (GT's output formats: https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-output.html; the layout
    and its sources in smgt.manifests, "A parent's labels")

Every result is validated on the way out, since Label Studio itself accepts any result (unknown
labels, unknown from_name, a rectangle without width): a problem raises ResultError naming it, and
the data object counts as failed with that reason; nothing of it is written as a label.

Several image workers (NumberOfHumanWorkersPerDataObject up to 9) are consolidated as GT describes
its built-in consolidation (https://docs.aws.amazon.com/sagemaker/latest/dg/sms-annotation-consolidation.html):
boxes "finds the most similar boxes from different workers based on the Jaccard index [IoU] of the
boxes and averages them" -> here: greedy clusters of IoU >= 0.5, one box per worker, kept when a
majority of workers drew it, averaged, class by majority vote, confidence = share of workers;
segmentation "treats each pixel ... as a multi-class classification ... pixel annotations from
workers as votes" -> here: per-pixel plurality (ties to the lower class id), without GT's smoothing.
One worker: every confidence is 0.00, as GT writes (sms-data-output.html, "Confidence score").

Adjustment jobs: `adjusted` comes from comparing the result with the parent's labels on this task's
frames: an object added or removed, a label changed, geometry moved by more than TOLERANCE_PX, or a
value of one of the parent's own attributes changed (attributes only the adjustment config has,
like an audit Pass/Fail, are not a change of the label). Objects left within the tolerance keep the
parent's geometry verbatim; tracking objects keep the parent's object-id. With several image
workers the object is adjusted when at least one worker adjusted it (GT: sms-data-output.html,
bounding box adjustment output).
"""

from __future__ import annotations

import base64
import io
import json
import math
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..labels_common import Labeled, Task, class_map, color_map, hex_rgb
from ..outputs import EXPIRED_REASON, failed_line  # noqa: F401 - part of this module's API
from ..s3io import S3
from . import rle
from .labeling_config import Attribute, Controls, controls_for
from .tasks import (
    LIST_FOR_KIND,
    InputError,
    ParentLabels,
    ParentObject,
    image_size,
    parent_labels,
    sequence_frames,
)

TOLERANCE_PX = 1.0  # a parent object moved by at most this much is unchanged
EDGE_EPSILON = 0.01  # percent: coordinates this far outside the image are float noise and clamped
IOU_CLUSTER = 0.5  # boxes of different workers with at least this IoU are the same object
_OBJECT_ID_NAMESPACE = uuid.UUID("6f1c9a52-4c1e-4d3b-9a57-1b0c3e2f7d10")


class ResultError(ValueError):
    """A Label Studio result cannot become a GT label; the message is the human reason (names the problem)."""


@dataclass
class _Region:
    id: str
    item: int  # frame position (0 for an image)
    label: str
    shape: dict[str, Any]  # GT pixel geometry; brush: {}
    mask: bytearray | None = None  # brush: 1 inside
    number: int | None = None  # tracking object number
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Work:
    """One worker's validated result."""

    regions: list[_Region]
    frame_attributes: list[dict[str, Any]]  # per item


class _Sizes:
    """Image size per item: from S3 (not from Label Studio), checked against what Label Studio displayed."""

    def __init__(self, s3: S3, uris: list[str]) -> None:
        self.s3, self.uris = s3, uris
        self.known: dict[int, tuple[int, int]] = {}

    def get(self, item: int, shown: tuple[Any, Any] | None = None) -> tuple[int, int]:
        if item not in self.known:
            # Frames of one video share a size: read the first one, others only when Label Studio differs.
            self.known[item] = self.known[0] if item and 0 in self.known else _size(self.s3, self.uris[item])
        size = self.known[item]
        if shown and shown[0] is not None and tuple(shown) != size:
            if item and self.known.get(0) == size:
                self.known[item] = size = _size(self.s3, self.uris[item])
            if tuple(shown) != size:
                raise ResultError(f"frame {item}: Label Studio showed a {shown[0]}x{shown[1]} image, "
                                  f"the data object's image is {size[0]}x{size[1]}")
        return size


def labeled_from_annotations(task: Task, annotations: list[dict[str, Any]], s3: S3) -> Labeled:
    """The GT output of one data object from its submitted Label Studio annotations (`was_cancelled` ones are skipped).

    Video takes exactly one annotation, images one per worker (1..9). Raises ResultError with the reason
    when a result is invalid or the inputs cannot be read, ValueError when no annotation was submitted.
    """
    controls = controls_for(task.modality, task.config)
    submitted = [a for a in annotations if not a.get("was_cancelled")]
    if not submitted:
        raise ValueError(f"data object {task.index}: no submitted annotation")
    if controls.video and len(submitted) != 1:
        raise ValueError(f"data object {task.index}: a video data object has one worker, got {len(submitted)}")
    try:
        parent = parent_labels(task, s3, controls) if task.audit_attribute else None
        if controls.video:
            return _video(task, controls, submitted[0], s3, parent)
    except InputError as exc:
        raise ResultError(str(exc)) from None
    sizes = _Sizes(s3, [_source(task)])
    size = sizes.get(0)
    works = [_parse(controls, a, sizes, 1) for a in submitted]
    if controls.annotation_type == "SemanticSegmentation":
        return _segmentation(task, controls, works, size, parent)
    return _boxes(task, controls, works, size, parent)


def answer_content(task: Task, annotation: dict[str, Any], s3: S3) -> dict[str, Any]:
    """One worker's `answerContent` for GT's worker-response file (the simulated workforce's shape).

    Raises ResultError like labeled_from_annotations.
    """
    controls = controls_for(task.modality, task.config)
    if controls.video:
        return labeled_from_annotations(task, [annotation], s3).answer
    try:
        parent = parent_labels(task, s3, controls) if task.audit_attribute else None
    except InputError as exc:
        raise ResultError(str(exc)) from None
    sizes = _Sizes(s3, [_source(task)])
    size = sizes.get(0)
    work = _parse(controls, annotation, sizes, 1)
    if controls.annotation_type == "SemanticSegmentation":
        return _segmentation_answer(task, _class_mask(work, size, controls), size)
    return _boxes_answer(task, _worker_boxes(controls, work, parent)[0], size)


# --------------------------------------------------------------------------------------------------------
# Parsing and validation of one annotation


def _parse(controls: Controls, annotation: dict[str, Any], sizes: _Sizes, items: int) -> _Work:
    results = annotation.get("result")
    if not isinstance(results, list):
        raise ResultError("the annotation has no result list")
    regions: dict[str, _Region] = {}
    per_region: list[dict[str, Any]] = []
    frame_attributes: list[dict[str, Any]] = [{} for _ in range(items)]
    for r in results:
        if not isinstance(r, dict) or not isinstance(r.get("value"), dict):
            raise ResultError(f"result {r!r:.80}: not a Label Studio result with a value")
        name, rid = r.get("from_name"), r.get("id")
        if r.get("to_name") != controls.object_name:
            raise ResultError(f"result {rid}: to_name {r.get('to_name')!r} is not {controls.object_name!r}")
        if name == controls.tool:
            region = _region(controls, r, sizes, items)
            if region.id in regions:
                raise ResultError(f"region {region.id}: appears twice")
            regions[region.id] = region
        elif name in controls.frame_attributes:
            item = _item(r, items, controls.video)
            attr = controls.frame_attributes[name]
            frame_attributes[item][attr.name] = _attribute_value(attr, r, f"frame {item}")
        elif name in controls.region_attributes or (name is not None and name == controls.object_number):
            per_region.append(r)
        else:
            raise ResultError(f"result {rid}: unknown control (from_name) {name!r}")
    for r in per_region:
        region = regions.get(r.get("id"))  # type: ignore[arg-type]
        if region is None:
            raise ResultError(f"result {r.get('id')}: a {r.get('from_name')} value for a region that does not exist")
        where = f"frame {region.item} region {region.id} ({region.label})"
        if r["from_name"] == controls.object_number:
            region.number = _object_number(r, where)
            continue
        attr = controls.region_attributes[r["from_name"]]
        # A value left behind when the label was changed to one the attribute does not belong to: the
        # control is hidden for that label in Label Studio, as in GT's UI, so it is not part of the label.
        if attr.applies_to(region.label):
            region.attributes[attr.name] = _attribute_value(attr, r, where)
    work = _Work(list(regions.values()), frame_attributes)
    _check_required(controls, work)
    return work


def _region(controls: Controls, r: dict[str, Any], sizes: _Sizes, items: int) -> _Region:
    rid, value = str(r.get("id")), r["value"]
    if r.get("type") != controls.tool_type:
        raise ResultError(f"region {rid}: type {r.get('type')!r}, this project draws {controls.tool_type}")
    item = _item(r, items, controls.video)
    where = f"frame {item} region {rid}" if controls.video else f"region {rid}"
    labels = value.get(controls.tool_type)
    if not isinstance(labels, list) or len(labels) != 1:
        raise ResultError(f"{where}: needs exactly one label, got {labels!r}")
    if labels[0] not in controls.labels:
        raise ResultError(f"{where}: unknown label {labels[0]!r} (labels: {list(controls.labels)})")
    where = f"{where} ({labels[0]})"
    size = sizes.get(item, (r.get("original_width"), r.get("original_height")))
    kind = controls.annotation_type
    if kind == "SemanticSegmentation":
        if value.get("format") != "rle" or not isinstance(value.get("rle"), list):
            raise ResultError(f"{where}: brush value must have format \"rle\" and an rle list")
        try:
            mask = rle.mask_from_rle(value["rle"], *size)
        except rle.RleError as exc:
            raise ResultError(f"{where}: {exc}") from None
        if 1 not in mask:
            raise ResultError(f"{where}: the brush region paints no pixel")
        return _Region(rid, item, labels[0], {}, mask=mask)
    shape = {"BoundingBox": _box, "Polygon": _polygon, "Polyline": _polyline, "Keypoint": _keypoint}[kind](
        value, size, where)
    return _Region(rid, item, labels[0], shape)


def _item(r: dict[str, Any], items: int, video: bool) -> int:
    item = r.get("item_index")
    if not video:
        if item not in (None, 0):
            raise ResultError(f"result {r.get('id')}: item_index {item!r} on a single image")
        return 0
    if item is None:
        raise ResultError(f"result {r.get('id')} ({r.get('from_name')}): missing frame index (item_index)")
    if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item < items:
        raise ResultError(f"result {r.get('id')}: frame index {item!r} is not one of the task's {items} frames")
    return item


def _attribute_value(attr: Attribute, r: dict[str, Any], where: str) -> Any:
    if r.get("type") != attr.result_type:
        raise ResultError(f"{where}: attribute {attr.name!r} expects a {attr.result_type} result, got {r.get('type')!r}")
    value = r["value"]
    try:
        if attr.kind == "enum":
            chosen = value.get("choices")
            if not isinstance(chosen, list) or len(chosen) != 1:
                raise ValueError(f"needs exactly one choice, got {chosen!r}")
            return attr.check(chosen[0])
        if attr.kind == "number":
            return attr.check(value.get("number"))
        text = value.get("text")
        if not isinstance(text, list) or not all(isinstance(t, str) for t in text):
            raise ValueError(f"text must be a list of strings, got {text!r}")
        return attr.check("\n".join(text))
    except ValueError as exc:
        raise ResultError(f"{where}: attribute {attr.name!r}: {exc}") from None


def _object_number(r: dict[str, Any], where: str) -> int:
    if r.get("type") != "number":
        raise ResultError(f"{where}: object # must be a number result, got {r.get('type')!r}")
    n = r["value"].get("number")
    if isinstance(n, bool) or not isinstance(n, int | float) or not math.isfinite(n) or n < 1 or n != int(n):
        raise ResultError(f"{where}: object # {n!r} is not a whole number >= 1")
    return int(n)


def _check_required(controls: Controls, work: _Work) -> None:
    for region in work.regions:
        where = f"frame {region.item} region {region.id} ({region.label})" if controls.video else f"region {region.id}"
        if controls.tracking and region.number is None:
            raise ResultError(f"{where}: object # is missing")
        for attr in controls.region_attributes.values():
            if attr.required and attr.applies_to(region.label) and attr.name not in region.attributes:
                raise ResultError(f"{where}: required attribute {attr.name!r} is missing")
    for item, values in enumerate(work.frame_attributes):
        for attr in controls.frame_attributes.values():
            if attr.required and attr.name not in values:
                raise ResultError(f"frame {item}: required frame attribute {attr.name!r} is missing")


def _coord(value: dict[str, Any], key: str, where: str) -> float:
    v = value.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ResultError(f"{where}: {key} {v!r} is not a number")
    return float(v)


def _inside(v: float, axis: str, where: str) -> float:
    if not -EDGE_EPSILON <= v <= 100 + EDGE_EPSILON:
        raise ResultError(f"{where}: outside the image ({axis} = {v:.3f}% of the image)")
    return min(max(v, 0.0), 100.0)


def _box(value: dict[str, Any], size: tuple[int, int], where: str) -> dict[str, Any]:
    x, y, w, h = (_coord(value, k, where) for k in ("x", "y", "width", "height"))
    rotation = float(value.get("rotation") or 0)
    if abs(math.remainder(rotation, 360)) > 1e-6:
        raise ResultError(f"{where}: box rotated by {rotation} degrees; GT boxes are upright")
    if w <= 0 or h <= 0:
        raise ResultError(f"{where}: degenerate box (width {w}%, height {h}%)")
    width, height = size
    left, right = (round(_inside(v, "x", where) * width / 100) for v in (x, x + w))
    top, bottom = (round(_inside(v, "y", where) * height / 100) for v in (y, y + h))
    if right - left < 1 or bottom - top < 1:
        raise ResultError(f"{where}: degenerate box ({w * width / 100:.2f} x {h * height / 100:.2f} px)")
    return {"height": bottom - top, "width": right - left, "top": top, "left": left}


def _point(x: float, y: float, size: tuple[int, int], where: str) -> dict[str, float]:
    return {"x": round(_inside(x, "x", where) * size[0] / 100, 2), "y": round(_inside(y, "y", where) * size[1] / 100, 2)}


def _distinct(points: list[dict[str, float]]) -> list[dict[str, float]]:
    out = [p for i, p in enumerate(points) if i == 0 or p != points[i - 1]]
    return out[:-1] if len(out) > 1 and out[0] == out[-1] else out


def _polygon(value: dict[str, Any], size: tuple[int, int], where: str) -> dict[str, Any]:
    raw = value.get("points")
    if not isinstance(raw, list) or not all(isinstance(p, list | tuple) and len(p) == 2 for p in raw):
        raise ResultError(f"{where}: polygon points must be a list of [x, y]")
    points = _distinct([_point(_coord({"x": p[0]}, "x", where), _coord({"y": p[1]}, "y", where), size, where)
                        for p in raw])
    area = sum(a["x"] * b["y"] - b["x"] * a["y"] for a, b in zip(points, points[1:] + points[:1], strict=True)) / 2
    if len(points) < 3 or abs(area) < 1e-9:
        raise ResultError(f"{where}: degenerate polygon ({len(points)} distinct points, area {abs(area):.2f} px²)")
    return {"vertices": points}


def _polyline(value: dict[str, Any], size: tuple[int, int], where: str) -> dict[str, Any]:
    raw = value.get("vertices")
    if not isinstance(raw, list) or not all(isinstance(v, dict) for v in raw):
        raise ResultError(f"{where}: polyline vertices must be a list of {{x, y}}")
    if any(v.get("isBezier") for v in raw):
        raise ResultError(f"{where}: curved polyline; GT polylines are straight segments")
    points = [_point(_coord(v, "x", where), _coord(v, "y", where), size, where) for v in raw]
    points = [p for i, p in enumerate(points) if i == 0 or p != points[i - 1]]
    if len(points) < 2:
        raise ResultError(f"{where}: degenerate polyline ({len(points)} distinct point)")
    return {"vertices": points}


def _keypoint(value: dict[str, Any], size: tuple[int, int], where: str) -> dict[str, Any]:
    return _point(_coord(value, "x", where), _coord(value, "y", where), size, where)


# --------------------------------------------------------------------------------------------------------
# Comparison with the parent's labels


def _moved(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when two GT shapes of the same kind differ by more than TOLERANCE_PX anywhere."""
    if "left" in a:
        edges = lambda s: (s["left"], s["top"], s["left"] + s["width"], s["top"] + s["height"])  # noqa: E731
        return any(abs(p - q) > TOLERANCE_PX for p, q in zip(edges(a), edges(b), strict=True))
    if "vertices" in a:  # polylines and polygons (tasks.parent_labels reads older "points" as "vertices")
        if len(a["vertices"]) != len(b["vertices"]):
            return True
        return any(abs(p["x"] - q["x"]) > TOLERANCE_PX or abs(p["y"] - q["y"]) > TOLERANCE_PX
                   for p, q in zip(a["vertices"], b["vertices"], strict=True))
    return math.dist((a["x"], a["y"]), (b["x"], b["y"])) > TOLERANCE_PX


def _changed(parent: ParentObject, region: _Region) -> bool:
    if parent.label != region.label or _moved(parent.shape, region.shape):
        return True
    return any(k in region.attributes and region.attributes[k] != v for k, v in parent.attributes.items())


# --------------------------------------------------------------------------------------------------------
# Video


def _video(task: Task, controls: Controls, annotation: dict[str, Any], s3: S3, parent: ParentLabels | None) -> Labeled:
    frames = sequence_frames(task, s3)
    work = _parse(controls, annotation, _Sizes(s3, [uri for _, uri in frames]), len(frames))
    if controls.tracking:
        _check_tracks(work)
    by_number = parent.by_number() if parent else {}
    instances = {(o.item, o.number if controls.tracking and o.number is not None else o.region_id): o
                 for o in (parent.objects if parent else [])}
    list_key = LIST_FOR_KIND[controls.annotation_type]
    out_frames: list[dict[str, Any]] = []
    used: set[int] = set()
    matched: set[tuple[int, Any]] = set()
    adjusted = False
    items: list[list[dict[str, Any]]] = [[] for _ in frames]
    for region in work.regions:
        key: tuple[int, Any] = (region.item, region.number if controls.tracking else region.id)
        instance = instances.get(key)
        shape, attributes = region.shape, dict(region.attributes)
        if instance is not None:
            matched.add(key)
            if _changed(instance, region):
                adjusted = True
            if not _moved(instance.shape, region.shape):
                shape = instance.shape  # unchanged geometry stays exactly the parent's
            attributes = {**instance.attributes, **region.attributes}
        elif parent is not None:
            adjusted = True  # an object the parent did not have on this frame
            if controls.tracking and region.number in by_number:
                attributes = {**by_number[region.number].attributes, **region.attributes}
        class_id = controls.labels.index(region.label)
        used.add(class_id)
        ann = {**shape, "class-id": str(class_id), "label-category-attributes": attributes}
        if controls.tracking:
            ann.update(_identity(task, region, by_number.get(region.number)))  # type: ignore[arg-type]
        items[region.item].append(ann)
    if parent is not None and len(matched) != len(instances):
        adjusted = True  # a parent object was removed
    for item, (name, _) in enumerate(frames):
        frame_attributes = dict(work.frame_attributes[item])
        if parent is not None:
            before = parent.frame_attributes[item]
            adjusted |= any(k in frame_attributes and frame_attributes[k] != v for k, v in before.items())
            frame_attributes = {**before, **frame_attributes}
        out_frames.append({"frame-no": item, "frame": name, list_key: items[item], "frame-attributes": frame_attributes})
    key = task.modality.annotations_key or "tracking-annotations"
    uri = f"{task.consolidated_prefix}/{task.index}/SeqLabel.json"
    return Labeled(value=uri, metadata={"class-map": class_map(task.config, used)}, answer={key: out_frames},
                   files={uri: json.dumps({key: out_frames}).encode()}, adjusted=adjusted)


def _check_tracks(work: _Work) -> None:
    labels: dict[int, str] = {}
    seen: set[tuple[int, int]] = set()
    for region in work.regions:
        n = region.number
        assert n is not None  # _check_required
        if (region.item, n) in seen:
            raise ResultError(f"frame {region.item}: object #{n} appears twice")
        seen.add((region.item, n))
        if labels.setdefault(n, region.label) != region.label:
            raise ResultError(f"object #{n} is {labels[n]!r} on one frame and {region.label!r} on another")


def _identity(task: Task, region: _Region, parent: ParentObject | None) -> dict[str, str]:
    """GT's object-id (same on every frame) and object-name ("label:N"); a parent object keeps its id."""
    if parent is not None and parent.object_id:
        name = parent.object_name if parent.label == region.label and parent.object_name else f"{region.label}:{region.number}"
        return {"object-id": parent.object_id, "object-name": name}
    oid = uuid.uuid5(_OBJECT_ID_NAMESPACE, f"{task.job_name.lower()}/{task.index}/{region.number}")
    return {"object-id": str(oid), "object-name": f"{region.label}:{region.number}"}


# --------------------------------------------------------------------------------------------------------
# Image boxes


def _box_entry(controls: Controls, region: _Region) -> dict[str, Any]:
    s = region.shape
    return {"class_id": controls.labels.index(region.label), "left": s["left"], "top": s["top"],
            "width": s["width"], "height": s["height"]}


def _worker_boxes(controls: Controls, work: _Work, parent: ParentLabels | None) -> tuple[list[dict[str, Any]], bool]:
    """One worker's GT boxes and whether they differ from the parent's."""
    by_region = parent.by_region() if parent else {}
    boxes, adjusted, kept = [], False, 0
    for region in work.regions:
        entry = _box_entry(controls, region)
        before = by_region.get(region.id)
        if before is None:
            adjusted |= parent is not None
        else:
            kept += 1
            adjusted |= _changed(before, region)
            if not _moved(before.shape, region.shape):
                entry.update({k: before.shape[k] for k in ("left", "top", "width", "height")})
        boxes.append(entry)
    if parent is not None and kept != len(parent.objects):
        adjusted = True
    return boxes, adjusted


def _boxes(task: Task, controls: Controls, works: list[_Work], size: tuple[int, int],
           parent: ParentLabels | None) -> Labeled:
    per_worker = [_worker_boxes(controls, w, parent) for w in works]
    adjusted = any(a for _, a in per_worker)
    if len(works) == 1:
        boxes = per_worker[0][0]
        confidences = [0.0] * len(boxes)
    else:
        boxes, confidences = _consolidate_boxes([b for b, _ in per_worker])
    value = {"image_size": [{"width": size[0], "height": size[1], "depth": 3}], "annotations": boxes}
    used = {b["class_id"] for b in boxes}
    return Labeled(value=value,
                   metadata={"objects": [{"confidence": c} for c in confidences], "class-map": class_map(task.config, used)},
                   answer=_boxes_answer(task, per_worker[0][0], size), adjusted=adjusted)


def _boxes_answer(task: Task, boxes: list[dict[str, Any]], size: tuple[int, int]) -> dict[str, Any]:
    return {"boundingBox": {"boundingBoxes": [
        {"label": task.labels[b["class_id"]]["label"], **{k: b[k] for k in ("left", "top", "width", "height")}}
        for b in boxes], "inputImageProperties": {"width": size[0], "height": size[1]}}}


def _iou(a: dict[str, Any], b: dict[str, Any]) -> float:
    w = min(a["left"] + a["width"], b["left"] + b["width"]) - max(a["left"], b["left"])
    h = min(a["top"] + a["height"], b["top"] + b["height"]) - max(a["top"], b["top"])
    inter = max(w, 0) * max(h, 0)
    union = a["width"] * a["height"] + b["width"] * b["height"] - inter
    return inter / union if union > 0 else 0.0


def _consolidate_boxes(workers: list[list[dict[str, Any]]]) -> tuple[list[dict[str, Any]], list[float]]:
    """Greedy IoU clusters (one box per worker), kept by a majority of workers, averaged; see the module doc."""
    clusters: list[list[tuple[int, dict[str, Any]]]] = []
    for w, boxes in enumerate(workers):
        for box in boxes:
            best, best_iou = None, IOU_CLUSTER
            for cluster in clusters:
                if any(member_w == w for member_w, _ in cluster):
                    continue
                iou = sum(_iou(box, b) for _, b in cluster) / len(cluster)
                if iou >= best_iou:
                    best, best_iou = cluster, iou
            if best is None:
                clusters.append([(w, box)])
            else:
                best.append((w, box))
    out, confidences = [], []
    for cluster in clusters:
        if len(cluster) * 2 <= len(workers):
            continue
        members = [b for _, b in cluster]
        votes = Counter(b["class_id"] for b in members)
        class_id = min(votes, key=lambda c: (-votes[c], c))
        mean = {k: sum(b[k] for b in members) / len(members) for k in ("left", "top", "width", "height")}
        left, top = round(mean["left"]), round(mean["top"])
        out.append({"class_id": class_id, "left": left, "top": top,
                    "width": round(mean["left"] + mean["width"]) - left,
                    "height": round(mean["top"] + mean["height"]) - top})
        confidences.append(round(len(cluster) / len(workers), 2))
    return out, confidences


# --------------------------------------------------------------------------------------------------------
# Semantic segmentation


def _class_mask(work: _Work, size: tuple[int, int], controls: Controls) -> bytearray:
    """Class per pixel (0 background, i + 1 = labels[i]); overlapping regions: the later one wins."""
    mask = bytearray(size[0] * size[1])
    for region in work.regions:
        assert region.mask is not None
        k = controls.labels.index(region.label) + 1
        for i in _ones(region.mask):
            mask[i] = k
    return mask


def _ones(mask: bytearray) -> list[int]:
    out, i = [], mask.find(1)
    while i != -1:
        out.append(i)
        i = mask.find(1, i + 1)
    return out


def _segmentation(task: Task, controls: Controls, works: list[_Work], size: tuple[int, int],
                  parent: ParentLabels | None) -> Labeled:
    masks = [_class_mask(w, size, controls) for w in works]
    adjusted = parent is not None and any(m != parent.mask for m in masks)
    colors = color_map(task.config)
    if len(masks) == 1:
        mask, confidence = masks[0], 0.0
    else:
        mask, confidence = _consolidate_masks(masks)
    for entry in colors.values():
        entry["confidence"] = confidence
    png = _png(mask, size, colors)
    uri = f"{task.consolidated_prefix}/{task.index}_{task.seed:04d}{task.index:06d}.png"
    return Labeled(value=uri, metadata={"internal-color-map": colors}, answer=_segmentation_answer(task, masks[0], size),
                   files={uri: png}, adjusted=adjusted)


def _segmentation_answer(task: Task, mask: bytearray, size: tuple[int, int]) -> dict[str, Any]:
    # GT's worker response carries the worker's mask as a base64 PNG (the simulated workforce writes "<png>").
    colors = color_map(task.config)
    return {"crowd-semantic-segmentation": {"labeledImage": {"pngImageData": base64.b64encode(
        _png(mask, size, colors)).decode()}, "labelMappings": colors}}


def _consolidate_masks(masks: list[bytearray]) -> tuple[bytearray, float]:
    """Per-pixel plurality vote (ties to the lower class); confidence = mean share of workers agreeing."""
    out = bytearray(len(masks[0]))
    agree = 0
    for i, votes in enumerate(zip(*masks, strict=True)):
        if votes.count(votes[0]) == len(votes):
            out[i], n = votes[0], len(votes)
        else:
            counts = Counter(votes)
            out[i] = min(counts, key=lambda c: (-counts[c], c))
            n = counts[out[i]]
        agree += n
    return out, round(agree / (len(masks) * len(out)), 2)


def _png(mask: bytearray, size: tuple[int, int], colors: dict[str, dict[str, Any]]) -> bytes:
    from PIL import Image

    channels = []
    for c in range(3):
        table = bytearray(256)
        for k, entry in colors.items():
            table[int(k)] = hex_rgb(entry["hex-color"])[c]
        channels.append(Image.frombytes("L", size, bytes(mask).translate(bytes(table))))
    buf = io.BytesIO()
    Image.merge("RGB", channels).save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------------


def _source(task: Task) -> str:
    uri = task.line.get("source-ref")
    if not isinstance(uri, str):
        raise ResultError("the manifest line has no source-ref")
    return uri


def _size(s3: S3, uri: str) -> tuple[int, int]:
    try:
        return image_size(s3, uri)
    except InputError as exc:
        raise ResultError(str(exc)) from None
