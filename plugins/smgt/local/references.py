"""Reference labels next to the input data, which simulated workers copy so demo labels mean something.

MOT layout: frames under `<video>/img1/`, boxes in `<video>/gt/gt.txt` with lines
`frame,id,left,top,width,height,conf,class,visibility` (frame = the number in the frame file name).
Lanes (our demo's addition): `<video>/gt/lanes.json` = `{"lanes": [[[x, y], ...], ...]}`.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field

from .s3io import S3


@dataclass(frozen=True)
class RefBox:
    track_id: int
    left: float
    top: float
    width: float
    height: float


@dataclass
class References:
    boxes: dict[int, list[RefBox]] = field(default_factory=dict)  # frame number -> boxes
    lanes: list[list[tuple[float, float]]] = field(default_factory=list)

    @property
    def has_boxes(self) -> bool:
        return bool(self.boxes)


def video_root(prefix: str) -> str | None:
    """`s3://b/v/img1/` -> `s3://b/v/` (only for the MOT layout, else None)."""
    trimmed = prefix.rstrip("/")
    if not trimmed.endswith("/img1"):
        return None
    return trimmed[: -len("img1")]


def frame_number(frame_name: str) -> int | None:
    stem = frame_name.rsplit("/", 1)[-1].split(".", 1)[0]
    return int(stem) if stem.isdigit() else None


def parse_mot(text: str) -> dict[int, list[RefBox]]:
    boxes: dict[int, list[RefBox]] = {}
    for raw in text.splitlines():
        parts = [p.strip() for p in raw.split(",")]
        if len(parts) < 6:
            continue
        # Column 7 is "consider" (0 = ignore) in MOT ground truth.
        if len(parts) > 6 and parts[6] in ("0", "0.0"):
            continue
        frame, tid = int(float(parts[0])), int(float(parts[1]))
        # GT writes whole pixels when the reference has them; keep ints ints.
        left, top, width, height = (_num(p) for p in parts[2:6])
        boxes.setdefault(frame, []).append(RefBox(tid, left, top, width, height))
    return boxes


def _num(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() else value


def load_references(s3: S3, prefix: str) -> References:
    root = video_root(prefix)
    if root is None:
        return References()
    refs = References()
    # Reference labels are optional: without them the workers invent plausible labels.
    with contextlib.suppress(Exception):
        refs.boxes = parse_mot(s3.get_text(root + "gt/gt.txt"))
    try:
        lanes = json.loads(s3.get_text(root + "gt/lanes.json"))["lanes"]
        refs.lanes = [[(float(x), float(y)) for x, y in lane] for lane in lanes]
    except Exception:
        pass
    return refs
