"""3D point clouds: cuboids (inline for detection, SeqLabel.json for tracking) and per-point class
arrays (.zlib) for semantic segmentation.

Layout as GT documents it (https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-output.html,
"3D point cloud object detection output" and "... object tracking output"): a cuboid is
{"label-category-attributes", "object-name": "<label>:<n>", "class-id" (a number), "center-x/y/z",
"length", "width", "height", "roll", "pitch", "yaw"} (+ "object-id", the same on every frame, when
tracking); detection puts {"annotations": [cuboids]} on the manifest line with metadata "objects": []
and "class_map"; tracking writes SeqLabel.json {"tracking-annotations": [{"frame-number": position in
the sequence from 0, "frame-name": the sequence frame's file, "frame-attributes", "annotations"}]}
with metadata "objects": [{"frame-no", "confidence": []}] per frame and "class-map".
"""

from __future__ import annotations

import json
import math
import random
import zlib
from array import array
from typing import Any

from smgt.manifests import ManifestError, seq_label_frames

from .labels_common import (
    ADJUST_SHARE,
    Labeled,
    Task,
    class_map,
    color_map,
    frame_attributes,
    new_uuid,
    object_attributes,
)
from .s3io import S3


def _cuboid(rng: random.Random, class_id: int, name: str, label_cfg: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "label-category-attributes": object_attributes(label_cfg, rng),
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


def _nudge_cuboids(cuboids: list[dict[str, Any]], rng: random.Random,
                   task: Task | None = None) -> tuple[list[dict[str, Any]], bool]:
    """An auditor's pass over a parent's cuboids: ~ADJUST_SHARE of them moved; with `task`, each is also
    marked through the adjustment config's label attributes (first enum value = pass, last = fail)."""
    changed = False
    out = []
    for c in cuboids:
        c = dict(c)
        moved = rng.random() < ADJUST_SHARE
        if moved:
            c["center-x"] = round(c["center-x"] + rng.uniform(-0.3, 0.3), 3)
            c["yaw"] = round(c["yaw"] + rng.uniform(-0.1, 0.1), 3)
            changed = True
        if task is not None and isinstance(c.get("class-id"), int) and 0 <= c["class-id"] < len(task.labels):
            c["label-category-attributes"] = {**(c.get("label-category-attributes") or {}),
                                              **object_attributes(task.labels[c["class-id"]], rng, adjusted=moved)}
        out.append(c)
    return out, changed


def label_cloud_detection(task: Task, s3: S3) -> Labeled:
    rng = task.rng
    if task.audit_attribute:
        cuboids, adjusted = _nudge_cuboids(task.line[task.audit_attribute].get("annotations", []), rng)
    else:
        cuboids, adjusted = _cuboids(task, rng), False
    used = {c["class-id"] for c in cuboids}
    meta: dict[str, Any] = {"objects": [], "class_map": class_map(task.config, used)}
    if task.config.get("frameAttributes"):
        meta["dataset-object-attributes"] = frame_attributes(task.config, rng, len(cuboids))
    return Labeled(value={"annotations": cuboids}, metadata=meta,
                   answer={"boundingCuboids": cuboids}, adjusted=adjusted)


def label_cloud_tracking(task: Task, s3: S3) -> Labeled:
    """One SeqLabel.json frame per frame of the data object's sequence file, in its order (see the module doc).

    An adjustment finds the parent's frames by name (`frame-name` = the sequence frame's `frame`), so a
    down-sampled sequence gets exactly its own frames, renumbered from 0 as GT numbers a sequence.
    """
    rng = task.rng
    seq = s3.get_json(task.line["source-ref"])
    names = [f["frame"] for f in seq.get("frames", [])]
    key = "tracking-annotations"
    adjusted = False
    out = []
    if task.audit_attribute:
        try:
            parent = seq_label_frames(s3.get_json(task.line[task.audit_attribute]), key)
        except ManifestError as exc:
            raise ValueError(f"parent label {task.audit_attribute}: {exc}") from None
        for i, name in enumerate(names):
            src = parent.get(name, {})
            anns, changed = _nudge_cuboids(src.get("annotations") or [], rng, task)
            adjusted |= changed
            # The parent's frame attributes stay; the adjustment config's own ones are added.
            out.append({"frame-number": i, "frame-name": name,
                        "frame-attributes": {**(src.get("frame-attributes") or {}),
                                             **frame_attributes(task.config, rng, len(anns), adjusted=changed)},
                        "annotations": anns})
    else:
        base = _cuboids(task, rng)
        for c in base:
            c["object-id"] = new_uuid(rng)
        for i, name in enumerate(names):
            anns = [{**c, "center-x": round(c["center-x"] + 0.5 * i, 3)} for c in base]
            out.append({"frame-number": i, "frame-name": name,
                        "frame-attributes": frame_attributes(task.config, rng, len(anns)),
                        "annotations": anns})
    used = {a["class-id"] for f in out for a in f["annotations"]}
    uri = f"{task.consolidated_prefix}/{task.index}/SeqLabel.json"
    return Labeled(
        value=uri,
        metadata={"objects": [{"frame-no": f["frame-number"], "confidence": []} for f in out],
                  "class-map": class_map(task.config, used)},
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


def label_cloud_segmentation(task: Task, s3: S3) -> Labeled:
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
    meta: dict[str, Any] = {"color-map": color_map(task.config)}
    meta["color-map"]["0"]["class-name"] = "Background"
    if task.config.get("frameAttributes"):
        meta["dataset-object-attributes"] = frame_attributes(task.config, rng, len(classes))
    return Labeled(value=uri, metadata=meta, answer={"annotatedResult": {"labelMap": uri}},
                   files={uri: zlib.compress(classes.tobytes())}, adjusted=adjusted)
