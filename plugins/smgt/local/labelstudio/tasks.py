"""Manifest line -> Label Studio task: the media to show and, for adjustment jobs, the parent's labels as a prediction.

A task is `{"data": {...}, "predictions": [...]}` as POST /api/projects/{id}/import takes it:

    image     {"image": uri, "gt_job", "gt_index"}
    video     {"frames": [uri of each frame, in sequence order], "frame_names": [...], "gt_job", "gt_index"}
              one task is the whole (possibly down-sampled) sequence; a region's `item_index` is the
              frame's position in it, which is also the `frame-no` GT writes for the frame.

Adjustment jobs (`auditLabelAttributeName` in the category config) open with the parent's labels
drawn: the parent label (inline boxes for images, a SeqLabel.json URI for video, a PNG mask URI for
segmentation) becomes one prediction. Label Studio keeps a prediction's region ids in the annotation
the reviewer submits (measured: origin "prediction" or "prediction-changed"), so every parent object
gets a stable id here (`p<k>` for images, `p<frame>_<k>` for video) and convert.py finds it again;
tracking objects also get their object number, from which convert.py restores the parent's object-id.

Coordinates: GT writes pixels, Label Studio percentages of the image (x, y, width, height in 0..100).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from smgt.manifests import SEQ_LABEL_LISTS, ManifestError, seq_label_frames, shape_vertices

from ..labels_common import Task
from ..s3io import S3
from . import rle
from .labeling_config import Attribute, Controls, controls_for

# GT names the per-frame list of a video SeqLabel.json after the tool (sms-data-output.html, video output).
LIST_FOR_KIND = SEQ_LABEL_LISTS
KEYPOINT_WIDTH = 0.5  # Label Studio's key point marker size, % of the image width
_OBJECT_NUMBER = re.compile(r":(\d+)$")


class InputError(ValueError):
    """The data object's input (sequence file, image, parent labels) cannot be read or used; names the problem."""


@dataclass
class ParentObject:
    """One object of the parent job's labels, as the reviewer sees it and convert.py compares it."""

    region_id: str  # id of its region in the prediction
    item: int  # position in the task's frame list (0 for an image)
    label: str  # label name (in the adjustment job's config)
    shape: dict[str, Any]  # GT geometry in pixels, as the parent wrote it
    attributes: dict[str, Any] = field(default_factory=dict)  # label-category-attributes
    object_id: str | None = None  # tracking
    object_name: str | None = None
    number: int | None = None  # the object number shown to the reviewer (tracking)


@dataclass
class ParentLabels:
    """The parent job's labels of one data object, restricted to the frames of this task."""

    sizes: list[tuple[int, int]]  # (width, height) per item
    objects: list[ParentObject] = field(default_factory=list)
    frame_attributes: list[dict[str, Any]] = field(default_factory=list)  # per item
    mask: bytearray | None = None  # segmentation: class per pixel (0 background, i + 1 = labels[i])

    def by_region(self) -> dict[str, ParentObject]:
        return {o.region_id: o for o in self.objects}

    def by_number(self) -> dict[int, ParentObject]:
        return {o.number: o for o in self.objects if o.number is not None}


def task_for_object(task: Task, s3: S3, *, media_uri: Callable[[str], str] = lambda u: u) -> dict[str, Any]:
    """The Label Studio task for one data object: `{"data": ..., "predictions": [...]}` (predictions: audits only).

    media_uri maps an s3:// URI to what the browser loads. Raises InputError when the sequence file,
    an image or the parent labels cannot be read, UnsupportedModality for point clouds.
    """
    controls = controls_for(task.modality, task.config)
    data: dict[str, Any] = {"gt_job": task.job_name, "gt_index": task.index}
    if controls.video:
        frames = sequence_frames(task, s3)
        data["frames"] = [media_uri(uri) for _, uri in frames]
        data["frame_names"] = [name for name, _ in frames]
    else:
        data["image"] = media_uri(_source_ref(task))
    out: dict[str, Any] = {"data": data}
    if task.audit_attribute:
        parent = parent_labels(task, s3, controls)
        out["predictions"] = [{"model_version": f"parent:{task.audit_attribute}",
                               "result": prediction_result(parent, controls)}]
    return out


def sequence_frames(task: Task, s3: S3) -> list[tuple[str, str]]:
    """(frame file name, s3 URI) of each frame of a video data object's sequence file, in order."""
    uri = _source_ref(task)
    try:
        seq = s3.get_json(uri)
        prefix, frames = seq["prefix"], seq["frames"]
        names = [f["frame"] for f in frames]
    except Exception as exc:
        raise InputError(f"sequence file {uri}: cannot be read as a GT sequence file ({exc!r})") from None
    if not names:
        raise InputError(f"sequence file {uri}: has no frames")
    prefix = prefix if prefix.endswith("/") else prefix + "/"
    return [(name, prefix + name) for name in names]


def image_size(s3: S3, uri: str) -> tuple[int, int]:
    """(width, height) of an image in S3; InputError when it cannot be read (no silent default)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(s3.get_bytes(uri))) as img:
            return img.size
    except Exception as exc:
        raise InputError(f"image {uri}: cannot be read ({exc!r})") from None


def parent_labels(task: Task, s3: S3, controls: Controls | None = None) -> ParentLabels:
    """The parent's labels of an adjustment task (`task.line[auditLabelAttributeName]`), in pixels.

    Raises InputError when they cannot be read or name a label the adjustment job's config lacks.
    """
    controls = controls or controls_for(task.modality, task.config)
    attr = task.audit_attribute
    if not attr or attr not in task.line:
        raise InputError(f"the manifest line has no parent label {attr!r} to adjust")
    meta = task.line.get(f"{attr}-metadata") or {}
    if controls.video:
        return _video_parent(task, s3, controls, attr, meta)
    if controls.annotation_type == "SemanticSegmentation":
        return _mask_parent(task, s3, controls, attr, meta)
    return _boxes_parent(task, s3, controls, attr, meta)


def prediction_result(parent: ParentLabels, controls: Controls) -> list[dict[str, Any]]:
    """Label Studio result list that draws the parent's labels, with object numbers and attribute values."""
    results: list[dict[str, Any]] = []
    if parent.mask is not None:
        width, height = parent.sizes[0]
        for k, label in enumerate(controls.labels, 1):
            if k not in parent.mask:
                continue
            mask = bytes(parent.mask).translate(bytes(255 if v == k else 0 for v in range(256)))
            results.append({"id": f"p{k}", "from_name": controls.tool, "to_name": controls.object_name,
                            "type": "brushlabels", "original_width": width, "original_height": height,
                            "image_rotation": 0, "value": {"format": "rle", "rle": rle.encode_mask(mask, width, height),
                                                           "brushlabels": [label]}})
        return results
    for obj in parent.objects:
        size = parent.sizes[obj.item]
        geometry = to_percent(controls.annotation_type, obj.shape, size, obj.region_id)
        common = {"id": obj.region_id, "to_name": controls.object_name, "original_width": size[0],
                  "original_height": size[1], "image_rotation": 0}
        if controls.video:
            common["item_index"] = obj.item
        results.append({**common, "from_name": controls.tool, "type": controls.tool_type,
                        "value": {**geometry, controls.tool_type: [obj.label]}})
        if controls.tracking and obj.number is not None:
            results.append({**common, "from_name": controls.object_number, "type": "number",
                            "value": {**geometry, "number": obj.number}})
        for name, spec in controls.region_attributes.items():
            value = _prefill(spec, obj.attributes, obj.label)
            if value is not None:
                results.append({**common, "from_name": name, "type": spec.result_type, "value": {**geometry, **value}})
    for item, values in enumerate(parent.frame_attributes):
        for name, spec in controls.frame_attributes.items():
            value = _prefill(spec, values, None)
            if value is not None:
                results.append({"id": f"f{item}_{name}", "from_name": name, "to_name": controls.object_name,
                                "type": spec.result_type, "value": value, "item_index": item})
    return results


def to_percent(kind: str, shape: dict[str, Any], size: tuple[int, int], region_id: str = "r") -> dict[str, Any]:
    """GT pixel geometry -> Label Studio value geometry (percent of the image)."""
    width, height = size

    def px(p: dict[str, Any]) -> tuple[float, float]:
        return float(p["x"]) * 100 / width, float(p["y"]) * 100 / height

    if kind == "BoundingBox":
        return {"x": shape["left"] * 100 / width, "y": shape["top"] * 100 / height,
                "width": shape["width"] * 100 / width, "height": shape["height"] * 100 / height, "rotation": 0}
    if kind == "Polygon":
        return {"points": [list(px(p)) for p in shape["vertices"]], "closed": True}
    if kind == "Polyline":
        vertices = []
        for k, p in enumerate(shape["vertices"]):
            x, y = px(p)
            vertex = {"x": x, "y": y, "id": f"{region_id}_v{k}", "isBezier": False}
            if k:
                vertex["prevPointId"] = f"{region_id}_v{k - 1}"
            vertices.append(vertex)
        return {"vertices": vertices, "closed": False}
    x, y = px(shape)
    return {"x": x, "y": y, "width": KEYPOINT_WIDTH}


# ---------------------------------------------------------------------------------------------------------


def _source_ref(task: Task) -> str:
    uri = task.line.get("source-ref")
    if not isinstance(uri, str):
        raise InputError("the manifest line has no source-ref")
    return uri


def _prefill(spec: Attribute, values: dict[str, Any], label: str | None) -> dict[str, Any] | None:
    """The control value of a parent attribute the adjustment config also has (None: leave it to the reviewer)."""
    if spec.name not in values or (label is not None and not spec.applies_to(label)):
        return None
    try:
        value = spec.check(values[spec.name])
    except ValueError:
        return None  # not valid in the adjustment config: the reviewer chooses
    key = {"choices": "choices", "number": "number", "textarea": "text"}[spec.result_type]
    return {key: value if key == "number" else [value]}


def _label_namer(controls: Controls, meta: dict[str, Any], attr: str) -> Callable[[Any], str]:
    """Parent class id -> label name of the adjustment config, through the parent's class-map."""
    class_map = meta.get("class-map") or {}

    def name(class_id: Any) -> str:
        label = class_map.get(str(class_id))
        if label is None:
            try:
                label = controls.labels[int(class_id)]
            except (TypeError, ValueError, IndexError):
                raise InputError(f"parent label {attr}: class id {class_id!r} is not in its class-map") from None
        if label not in controls.labels:
            raise InputError(f"parent label {attr}: label {label!r} is not a label of this adjustment job "
                             f"({list(controls.labels)})")
        return label

    return name


def _boxes_parent(task: Task, s3: S3, controls: Controls, attr: str, meta: dict[str, Any]) -> ParentLabels:
    value = task.line[attr]
    if not isinstance(value, dict) or not isinstance(value.get("annotations"), list):
        raise InputError(f"parent label {attr}: expected inline boxes {{\"image_size\", \"annotations\"}}")
    sizes = value.get("image_size") or []
    try:
        size = (int(sizes[0]["width"]), int(sizes[0]["height"]))
    except (IndexError, KeyError, TypeError, ValueError):
        size = image_size(s3, _source_ref(task))
    name = _label_namer(controls, meta, attr)
    objects = []
    for k, ann in enumerate(value["annotations"]):
        try:
            shape = {key: ann[key] for key in ("left", "top", "width", "height")}
        except (KeyError, TypeError):
            raise InputError(f"parent label {attr}: box {k} lacks left/top/width/height") from None
        objects.append(ParentObject(f"p{k}", 0, name(ann.get("class_id")), shape))
    return ParentLabels([size], objects)


def _mask_parent(task: Task, s3: S3, controls: Controls, attr: str, meta: dict[str, Any]) -> ParentLabels:
    from PIL import Image

    uri = task.line[attr]
    try:
        with Image.open(io.BytesIO(s3.get_bytes(uri))) as img:
            rgb = img.convert("RGB")
    except Exception as exc:
        raise InputError(f"parent label {attr}: mask {uri!r} cannot be read ({exc!r})") from None
    colors = meta.get("internal-color-map") or {}
    palette: dict[tuple[int, int, int], int] = {}
    for entry in colors.values():
        label, hex_color = entry.get("class-name"), entry.get("hex-color", "")
        if label in controls.labels and re.fullmatch(r"#[0-9a-fA-F]{6}", hex_color):
            rgb_color = tuple(int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
            palette[rgb_color] = controls.labels.index(label) + 1  # type: ignore[index]
    size = image_size(s3, _source_ref(task))
    if rgb.size != size:
        raise InputError(f"parent label {attr}: mask {uri!r} is {rgb.size[0]}x{rgb.size[1]}, "
                         f"the image is {size[0]}x{size[1]}")
    # Colors the map does not name (BACKGROUND included) stay background.
    mask = bytearray(palette.get(p, 0) for p in rgb.getdata())
    return ParentLabels([size], mask=mask)


def _video_parent(task: Task, s3: S3, controls: Controls, attr: str, meta: dict[str, Any]) -> ParentLabels:
    frames = sequence_frames(task, s3)
    size = image_size(s3, frames[0][1])  # the frames of one video share a size
    uri = task.line[attr]
    try:
        seq_label = s3.get_json(uri)
    except Exception as exc:
        raise InputError(f"parent label {attr}: SeqLabel {uri!r} cannot be read ({exc!r})") from None
    key = task.modality.annotations_key or "tracking-annotations"
    try:
        by_name = seq_label_frames(seq_label, key)
    except ManifestError as exc:
        raise InputError(f"parent label {attr}: SeqLabel {uri!r}: {exc}") from None
    name = _label_namer(controls, meta, attr)
    list_key = LIST_FOR_KIND[controls.annotation_type]
    # GT adjusts with the parent's own tool (sms-verification-data.html): another tool's labels would vanish.
    other = sorted({k for f in by_name.values() for k in LIST_FOR_KIND.values() if k != list_key and f.get(k)})
    if other:
        raise InputError(f"parent label {attr}: its frames hold {other}, but this adjustment job's annotationType "
                         f"{controls.annotation_type} adjusts {list_key!r}")
    objects: list[ParentObject] = []
    frame_attributes: list[dict[str, Any]] = []
    for item, (frame_name, _) in enumerate(frames):  # only the frames of this (down-sampled) sequence
        src = by_name.get(frame_name) or {}
        frame_attributes.append(dict(src.get("frame-attributes") or {}))
        for k, ann in enumerate(src.get(list_key) or []):
            shape = _gt_shape(controls.annotation_type, ann, f"{uri} frame {frame_name} object {k}")
            objects.append(ParentObject(
                f"p{item}_{k}", item, name(ann.get("class-id")), shape,
                dict(ann.get("label-category-attributes") or {}), ann.get("object-id"), ann.get("object-name")))
    if controls.tracking:
        _number_objects(objects)
    return ParentLabels([size] * len(frames), objects, frame_attributes)


def _gt_shape(kind: str, ann: dict[str, Any], where: str) -> dict[str, Any]:
    try:
        if kind == "BoundingBox":
            return {key: ann[key] for key in ("height", "width", "top", "left")}
        if kind in ("Polygon", "Polyline"):
            # GT's "vertices"; a parent the emulator wrote before it followed GT has "points".
            return {"vertices": shape_vertices(ann)}
        return {"x": ann["x"], "y": ann["y"]}
    except (KeyError, TypeError, ManifestError):
        raise InputError(f"parent label {where}: not a {kind} annotation") from None


def _number_objects(objects: list[ParentObject]) -> None:
    """Object numbers for the reviewer: the N of GT's object-name "label:N" when unique, else 1, 2, ... ."""
    ids: list[str] = []
    for obj in objects:
        if obj.object_id and obj.object_id not in ids:
            ids.append(obj.object_id)
    names = {o.object_id: o.object_name for o in objects if o.object_id}
    parsed = {oid: _OBJECT_NUMBER.search(names[oid] or "") for oid in ids}
    numbers = {oid: int(m.group(1)) for oid, m in parsed.items() if m}
    if len(numbers) != len(ids) or len(set(numbers.values())) != len(ids) or 0 in numbers.values():
        numbers = {oid: n for n, oid in enumerate(ids, 1)}
    for obj in objects:
        obj.number = numbers.get(obj.object_id) if obj.object_id else None
