"""Risk signals on one image's bounding boxes (an output manifest line of a BoundingBox job).

GT's image box label (https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-output.html, "Bounding
box job output"): `{"image_size": [{"width", "height", "depth"}], "annotations": [{"class_id", "left",
"top", "width", "height"}]}` in pixels, with `class-map` ("class_id" -> label) in `<attr>-metadata`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .geometry import box_iou, box_of, is_finite_box
from .model import DEGENERATE, DUPLICATE, OUT_OF_IMAGE, Finding, FrameRisk
from .video import BORDER_TOUCH_PX, DUPLICATE_IOU, MAX_ASPECT, MIN_BOX_PX


def image_size_of(label: Mapping[str, Any]) -> tuple[int, int] | None:
    sizes = label.get("image_size") if isinstance(label, Mapping) else None
    if isinstance(sizes, list) and sizes and isinstance(sizes[0], dict):
        w, h = sizes[0].get("width"), sizes[0].get("height")
        if isinstance(w, int | float) and isinstance(h, int | float):
            return int(w), int(h)
    return None


def image_findings(label: Mapping[str, Any], *, class_map: Mapping[str, str] | None = None) -> list[Finding]:
    """Findings on one image's boxes: degenerate, out of the image, duplicates (same class, IoU >= 0.9).

    Each finding has index 0 (the image) and `object_id` the annotation's position in `annotations`.
    """
    size = image_size_of(label)
    annotations = label.get("annotations") if isinstance(label, Mapping) else None
    if not isinstance(annotations, list):
        return [Finding(DEGENERATE, 1.0, "image label has no 'annotations' list", None, 0)]
    out: list[Finding] = []
    boxes: list[tuple[str, str | None, Any]] = []
    for pos, ann in enumerate(annotations):
        oid = str(pos)
        class_id = ann.get("class_id") if isinstance(ann, dict) else None
        label_name = (class_map or {}).get(str(class_id), None if class_id is None else str(class_id))
        box = box_of(ann)
        if box is None or not is_finite_box(box):
            out.append(Finding(DEGENERATE, 1.0, f"annotation {pos}: no finite left/top/width/height", None, 0, oid, label_name))
            continue
        left, top, width, height = box
        if width < MIN_BOX_PX or height < MIN_BOX_PX:
            out.append(Finding(DEGENERATE, 1.0, f"annotation {pos}: box {width:g}x{height:g} px has (almost) no area",
                               None, 0, oid, label_name))
            continue
        if max(width / height, height / width) > MAX_ASPECT:
            out.append(Finding(DEGENERATE, 0.5, f"annotation {pos}: box {width:g}x{height:g} px is a sliver",
                               None, 0, oid, label_name))
        if size is not None:
            over = max(-left, -top, left + width - size[0], top + height - size[1])
            if over > BORDER_TOUCH_PX:
                out.append(Finding(OUT_OF_IMAGE, 0.9, f"annotation {pos}: box leaves the {size[0]}x{size[1]} image "
                                                      f"by {over:.0f} px", None, 0, oid, label_name))
        boxes.append((oid, label_name, box))
    for i, (oid_a, label_a, box_a) in enumerate(boxes):
        for oid_b, label_b, box_b in boxes[i + 1:]:
            if label_a == label_b:
                iou = box_iou(box_a, box_b)
                if iou >= DUPLICATE_IOU:
                    out.append(Finding(DUPLICATE, 0.9, f"annotations {oid_a} and {oid_b} ({label_a}) overlap with "
                                                       f"IoU {iou:.2f}: the same object labeled twice?",
                                       None, 0, oid_b, label_b))
    return out


def score_image(label: Mapping[str, Any], *, class_map: Mapping[str, str] | None = None) -> FrameRisk:
    """The image's risk: one FrameRisk (index 0, no frame name) holding every finding."""
    return FrameRisk(None, 0, image_findings(label, class_map=class_map))
