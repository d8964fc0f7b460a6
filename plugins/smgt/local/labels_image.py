"""Image bounding boxes (inline in the manifest) and semantic-segmentation PNG masks."""

from __future__ import annotations

import io

from .injection import inject_image, record_body
from .injection import record_uri as injection_record_uri
from .labels_common import (
    ADJUST_SHARE,
    Labeled,
    Task,
    class_map,
    color_map,
    hex_rgb,
    image_size,
    nudge,
    synthetic_boxes,
)
from .references import RefBox, frame_number, load_references
from .s3io import S3


def _reference_boxes(s3: S3, uri: str) -> list[RefBox]:
    prefix, _, name = uri.rpartition("/")
    number = frame_number(name)
    if number is None:
        return []
    return load_references(s3, prefix + "/").boxes.get(number, [])


def label_image_boxes(task: Task, s3: S3) -> Labeled:
    rng = task.rng
    uri = task.line["source-ref"]
    width, height = image_size(s3, uri)
    files: dict[str, bytes] = {}
    if task.audit_attribute:
        parent = task.line[task.audit_attribute]
        annotations, adjusted = [], False
        for ann in parent.get("annotations", []):
            ann = dict(ann)
            if rng.random() < ADJUST_SHARE:
                nudge(ann, rng)
                adjusted = True
            annotations.append(ann)
    else:
        boxes = _reference_boxes(s3, uri) or synthetic_boxes(rng, [0], (width, height))[0]
        annotations = [{"class_id": b.track_id % len(task.labels), "left": b.left, "top": b.top,
                        "width": b.width, "height": b.height} for b in boxes]
        adjusted = False
        if task.label_errors is not None:
            rule = task.label_errors
            annotations, injected = inject_image(annotations, rule, rule.rng(task.seed, task.job_name, task.index),
                                                 image_size=(width, height))
            files[injection_record_uri(task.consolidated_prefix, task.index)] = record_body(
                task.job_name, task.index, uri, rule, task.seed, injected)
    value = {"image_size": [{"width": width, "height": height, "depth": 3}], "annotations": annotations}
    used = {a["class_id"] for a in annotations}
    return Labeled(
        value=value,
        metadata={"objects": [{"confidence": 0.0} for _ in annotations],
                  "class-map": class_map(task.config, used)},
        answer={"boundingBox": {"boundingBoxes": [
            {"label": task.labels[a["class_id"]]["label"], **{k: a[k] for k in ("left", "top", "width", "height")}}
            for a in annotations], "inputImageProperties": {"width": width, "height": height}}},
        files=files,
        adjusted=adjusted,
    )


def label_image_segmentation(task: Task, s3: S3) -> Labeled:
    from PIL import Image, ImageDraw

    rng = task.rng
    uri = task.line["source-ref"]
    colors = color_map(task.config)
    adjusted = False
    if task.audit_attribute:
        mask = Image.open(io.BytesIO(s3.get_bytes(task.line[task.audit_attribute]))).convert("RGB")
        if rng.random() < 0.5:  # the auditor repaints one region
            adjusted = True
            w, h = mask.size
            x, y = rng.randrange(max(w - 10, 1)), rng.randrange(max(h - 10, 1))
            ImageDraw.Draw(mask).rectangle([x, y, x + w // 8, y + h // 8],
                                           fill=hex_rgb(colors[str(rng.randint(1, len(task.labels)))]["hex-color"]))
    else:
        width, height = image_size(s3, uri)
        mask = Image.new("RGB", (width, height), hex_rgb("#ffffff"))
        draw = ImageDraw.Draw(mask)
        boxes = _reference_boxes(s3, uri) or synthetic_boxes(rng, [0], (width, height))[0]
        for b in boxes:
            color = colors[str(b.track_id % len(task.labels) + 1)]["hex-color"]
            draw.rectangle([b.left, b.top, b.left + b.width, b.top + b.height], fill=hex_rgb(color))
    buf = io.BytesIO()
    mask.save(buf, format="PNG")
    mask_uri = f"{task.consolidated_prefix}/{task.index}_{_stamp(task)}.png"
    return Labeled(value=mask_uri, metadata={"internal-color-map": colors},
                   answer={"crowd-semantic-segmentation": {"labeledImage": {"pngImageData": "<png>"},
                                                           "labelMappings": colors}},
                   files={mask_uri: buf.getvalue()}, adjusted=adjusted)


def _stamp(task: Task) -> str:
    return f"{task.seed:04d}{task.index:06d}"
