"""What the simulated workers share: the task handed to a worker, its answer, and helpers to fill
label-category attributes, frame attributes, class maps and plausible shapes deterministically."""

from __future__ import annotations

import io
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from smgt.registry import Modality

from .references import RefBox
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
    label_errors: Any = None  # injection.LabelErrors: label with known mistakes (level-1 jobs only)

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


def attribute_value(attr: dict[str, Any], rng: random.Random, *, adjusted: bool | None = None,
                     count: int | None = None) -> Any:
    enum = attr.get("enum")
    if enum:
        if adjusted is not None:  # audit attributes: first value = pass, last = fail
            return enum[-1] if adjusted else enum[0]
        return rng.choice(enum)
    if attr.get("type") == "number":
        return count if count is not None else rng.randint(0, 10)
    return ""


def object_attributes(label_cfg: dict[str, Any] | None, rng: random.Random,
                      adjusted: bool | None = None) -> dict[str, Any]:
    attrs = (label_cfg or {}).get("attributes") or []
    return {a["name"]: attribute_value(a, rng, adjusted=adjusted) for a in attrs if "name" in a}


def frame_attributes(config: dict[str, Any], rng: random.Random, count: int,
                     adjusted: bool | None = None) -> dict[str, Any]:
    return {a["name"]: attribute_value(a, rng, adjusted=adjusted, count=count)
            for a in config.get("frameAttributes") or [] if "name" in a}


def class_map(config: dict[str, Any], used: set[int]) -> dict[str, str]:
    return {str(i): lab["label"] for i, lab in enumerate(config["labels"]) if i in used}


def new_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def image_size(s3: S3, uri: str) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(s3.get_bytes(uri))) as img:
            return img.size
    except Exception:
        return DEFAULT_IMAGE_SIZE


def synthetic_boxes(rng: random.Random, frames: list[int], size: tuple[int, int]) -> dict[int, list[RefBox]]:
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


def nudge(ann: dict[str, Any], rng: random.Random) -> None:
    """An auditor's correction: move a shape by a few pixels."""
    dx, dy = rng.choice([-4, -3, -2, 2, 3, 4]), rng.choice([-3, -2, 2, 3])
    if "left" in ann:
        ann["left"] = max(0, ann["left"] + dx)
        ann["top"] = max(0, ann["top"] + dy)
    if "vertices" in ann:  # video polylines and polygons (GT's layout, smgt.manifests)
        ann["vertices"] = [{"x": p["x"] + dx, "y": p["y"] + dy} for p in ann["vertices"]]
    if "x" in ann and "y" in ann:
        ann["x"], ann["y"] = ann["x"] + dx, ann["y"] + dy


def color_map(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    colors = {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff", "confidence": 0.0}}
    for i, lab in enumerate(config["labels"], 1):
        colors[str(i)] = {"class-name": lab["label"], "hex-color": PALETTE[(i - 1) % len(PALETTE)],
                          "confidence": 0.0}
    return colors


def hex_rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)
