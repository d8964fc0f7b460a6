"""Label error injection for the simulated workforce: known mistakes at known frames, so QA can be measured.

Configured with the other faults (`serve --faults FILE`, `POST /_smgt/faults`, `LocalGroundTruth(faults=)`):

    {"label_errors": [{"pattern": "*-vehicle", "frame_share": 0.1,
                       "kinds": ["jitter", "swap", "miss", "drift"], "seed": 7}]}

For each data object of a level-1 job whose name matches `pattern` (shell glob, case-insensitive),
`floor(frame_share * n)` of its n frames (never the first or last, so a mistake sits between correct
frames), or exactly the frame positions in `frames`, get one error each, of a kind drawn from `kinds`
among those the frame's labels allow:

    jitter  a box (or keypoint) moved by `jitter` x its size (x0.7..1.3, random direction)
    swap    two tracked objects exchange object-id and object-name from this frame to the end
            (a tracker's identity switch)
    miss    an object left out of this frame
    drift   every vertex of a polyline/polygon moved by `drift_px` pixels (x0.7..1.3) plus 2 px noise

Images (BoundingBox jobs): a share `frame_share` of the images get a jitter or a miss on one box.

Seeded: the choices come from `random.Random(f"{seed}:{job name}:{data object index}:inject")`
(`seed` defaults to the emulator's), so a re-run injects the same errors. Recorded: every injected
error is listed in `{S3OutputPath}/{job}/smgt-local/injected-errors/{index}.json` (outside GT's own
layout; `read_injected_errors` reads them back). Adjustment (audit) jobs are never injected.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ERROR_KINDS = ("jitter", "swap", "miss", "drift")
RECORD_FOLDER = "smgt-local/injected-errors"
_LISTS = ("annotations", "polylines", "polygons", "keypoints")


@dataclass(frozen=True)
class LabelErrors:
    """One injection rule (see the module docstring); validated on construction."""

    pattern: str
    frame_share: float = 0.1
    kinds: tuple[str, ...] = ERROR_KINDS
    frames: tuple[int, ...] = ()
    seed: int | None = None
    jitter: float = 0.5
    drift_px: float = 25.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.frame_share <= 1.0:
            raise ValueError(f"label_errors.frame_share must be within [0, 1], got {self.frame_share}")
        unknown = set(self.kinds) - set(ERROR_KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"label_errors.kinds must be a non-empty subset of {list(ERROR_KINDS)}, got {list(self.kinds)}")
        if any(not isinstance(f, int) or f < 0 for f in self.frames):
            raise ValueError(f"label_errors.frames must be frame positions (integers >= 0), got {list(self.frames)}")
        if self.jitter <= 0 or self.drift_px <= 0:
            raise ValueError("label_errors.jitter and drift_px must be > 0")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelErrors:
        data = dict(data)
        unknown = set(data) - {"pattern", "frame_share", "kinds", "frames", "seed", "jitter", "drift_px"}
        if unknown:
            raise ValueError(f"unknown label_errors keys: {sorted(unknown)}")
        if not isinstance(data.get("pattern"), str):
            raise ValueError("label_errors needs a 'pattern' (job name glob)")
        return cls(pattern=data["pattern"], frame_share=float(data.get("frame_share", 0.1)),
                   kinds=tuple(data.get("kinds", ERROR_KINDS)), frames=tuple(data.get("frames", ())),
                   seed=data.get("seed"), jitter=float(data.get("jitter", 0.5)),
                   drift_px=float(data.get("drift_px", 25.0)))

    def matches(self, job_name: str) -> bool:
        return fnmatch.fnmatchcase(job_name.lower(), self.pattern.lower())

    def rng(self, default_seed: int, job_name: str, index: int) -> random.Random:
        seed = self.seed if self.seed is not None else default_seed
        return random.Random(f"{seed}:{job_name.lower()}:{index}:inject")


@dataclass
class Injected:
    """What was injected into one data object (JSON via to_dict)."""

    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, **extra: Any) -> dict[str, Any]:
        return {**extra, "errors": self.errors}


def _tracked(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in items if i.get("object-id") is not None]


def _jitter_box(item: dict[str, Any], rng: random.Random, share: float, size: tuple[int, int] | None) -> dict[str, Any]:
    before = {k: item[k] for k in ("left", "top", "width", "height")}
    angle = rng.uniform(0, 2 * math.pi)
    scale = share * rng.uniform(0.7, 1.3)
    dx, dy = math.cos(angle) * scale * item["width"], math.sin(angle) * scale * item["height"]
    left, top = item["left"] + dx, item["top"] + dy
    if size is not None:  # stay inside the image: an out-of-image box would fail the data object instead
        left = min(max(left, 0), max(size[0] - item["width"], 0))
        top = min(max(top, 0), max(size[1] - item["height"], 0))
    item["left"], item["top"] = round(left, 1), round(top, 1)
    return {"from": before, "to": {k: item[k] for k in ("left", "top", "width", "height")}}


def inject_sequence(frames: list[dict[str, Any]], rule: LabelErrors, rng: random.Random, *,
                    image_size: tuple[int, int] | None = None) -> tuple[list[dict[str, Any]], Injected]:
    """A copy of SeqLabel frames with errors injected, and the record of what was injected where.

    frames: SeqLabel.json frames in sequence order (GT's layout, smgt.manifests). The record names
    each error's frame position (`index`), file (`frame`), kind and object(s).
    """
    out = copy.deepcopy(frames)
    n = len(out)
    if rule.frames:
        chosen = sorted({f for f in rule.frames if f < n})
    else:
        inner = list(range(1, n - 1))
        chosen = sorted(rng.sample(inner, min(len(inner), math.floor(rule.frame_share * n))))
    injected = Injected()
    for index in chosen:
        frame = out[index]
        boxes = [i for i in frame.get("annotations") or [] if isinstance(i, dict) and "left" in i]
        shapes = [i for k in ("polylines", "polygons") for i in frame.get(k) or [] if isinstance(i, dict)]
        points = [i for i in frame.get("keypoints") or [] if isinstance(i, dict)]
        allowed = []
        if "jitter" in rule.kinds and (boxes or points):
            allowed.append("jitter")
        if "swap" in rule.kinds and len(_tracked(boxes + shapes + points)) >= 2:
            allowed.append("swap")
        if "miss" in rule.kinds and (boxes or shapes or points):
            allowed.append("miss")
        if "drift" in rule.kinds and shapes:
            allowed.append("drift")
        if not allowed:
            continue
        kind = rng.choice(allowed)
        record: dict[str, Any] = {"index": index, "frame": frame.get("frame", frame.get("frame-name")), "kind": kind}
        if kind == "jitter":
            item = rng.choice(boxes + points)
            record["object-id"] = item.get("object-id")
            if "left" in item:
                record.update(_jitter_box(item, rng, rule.jitter, image_size))
            else:
                angle = rng.uniform(0, 2 * math.pi)
                d = rule.drift_px * rng.uniform(0.7, 1.3)
                record["from"] = {"x": item["x"], "y": item["y"]}
                item["x"], item["y"] = round(item["x"] + d * math.cos(angle), 1), round(item["y"] + d * math.sin(angle), 1)
                record["to"] = {"x": item["x"], "y": item["y"]}
        elif kind == "swap":
            a, b = rng.sample(_tracked(boxes + shapes + points), 2)
            ids = (a["object-id"], b["object-id"])
            names = (a.get("object-name"), b.get("object-name"))
            record["object-ids"] = list(ids)
            for later in out[index:]:  # a lasting switch: every later frame carries the swapped ids
                for key in _LISTS:
                    for item in later.get(key) or []:
                        if isinstance(item, dict) and item.get("object-id") in ids:
                            first = item["object-id"] == ids[0]
                            item["object-id"] = ids[1] if first else ids[0]
                            if item.get("object-name") in names:
                                item["object-name"] = names[1] if first else names[0]
        elif kind == "miss":
            victim = rng.choice(boxes + shapes + points)
            record["object-id"] = victim.get("object-id")
            for key in _LISTS:
                items = frame.get(key)
                if isinstance(items, list) and any(i is victim for i in items):
                    frame[key] = [i for i in items if i is not victim]
                    record["removed"] = {k: v for k, v in victim.items() if k not in ("label-category-attributes",)}
        else:  # drift
            shape = rng.choice(shapes)
            record["object-id"] = shape.get("object-id")
            angle = rng.uniform(0, 2 * math.pi)
            d = rule.drift_px * rng.uniform(0.7, 1.3)
            dx, dy = d * math.cos(angle), d * math.sin(angle)
            record["from"] = [dict(v) for v in shape["vertices"]]
            shape["vertices"] = [{"x": round(v["x"] + dx + rng.uniform(-2, 2), 1),
                                  "y": round(v["y"] + dy + rng.uniform(-2, 2), 1)} for v in shape["vertices"]]
            record["to"] = [dict(v) for v in shape["vertices"]]
        # Frame attributes that count objects stay as the worker gave them (a miss then contradicts them).
        injected.errors.append(record)
    return out, injected


def inject_image(annotations: list[dict[str, Any]], rule: LabelErrors, rng: random.Random, *,
                 image_size: tuple[int, int] | None = None) -> tuple[list[dict[str, Any]], Injected]:
    """Image boxes with (with probability frame_share) one box jittered or left out."""
    out = copy.deepcopy(annotations)
    injected = Injected()
    kinds = [k for k in ("jitter", "miss") if k in rule.kinds]
    if not out or not kinds or rng.random() >= rule.frame_share:
        return out, injected
    kind = rng.choice(kinds)
    pos = rng.randrange(len(out))
    record: dict[str, Any] = {"index": 0, "kind": kind, "annotation": pos}
    if kind == "jitter":
        record.update(_jitter_box(out[pos], rng, rule.jitter, image_size))
    else:
        record["removed"] = out.pop(pos)
    injected.errors.append(record)
    return out, injected


def record_uri(consolidated_prefix: str, index: int) -> str:
    """Where a data object's injection record goes, from the job's consolidated-annotation prefix."""
    root = consolidated_prefix.removesuffix("/annotations/consolidated-annotation/output")
    return f"{root}/{RECORD_FOLDER}/{index}.json"


def record_body(job_name: str, index: int, source_ref: str, rule: LabelErrors, seed: int,
                injected: Injected) -> bytes:
    return json.dumps(injected.to_dict(**{"job-name": job_name, "index": index, "source-ref": source_ref,
                                          "pattern": rule.pattern, "seed": rule.seed if rule.seed is not None else seed})
                      ).encode()


def read_injected_errors(storage: Any, output_manifest_uri: str) -> dict[int, dict[str, Any]]:
    """Every injection record of a job, by data object index, from its output manifest URI.

    storage: a `smgt.manifests.Storage` (or boto3 S3 client). {} when nothing was injected.
    """
    from smgt.manifests import as_storage
    from smgt.qa.job import job_root

    storage = as_storage(storage)
    prefix = f"{job_root(output_manifest_uri)}/{RECORD_FOLDER}/"
    out = {}
    for uri in storage.list_uris(prefix):
        name = uri.rsplit("/", 1)[-1]
        if name.endswith(".json") and name[:-5].isdigit():
            out[int(name[:-5])] = storage.read_json(uri)
    return out
