"""Video sequence files and manifests built from frame images, the way the reference notebook does.

A sequence file lists the frames of one video under an S3 prefix; the input manifest has one
`{"source-ref": <sequence file>}` line per video (SPEC section 5).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

SEQUENCE_VERSION = "2020-07-01"


def build_sequence(frame_names: Iterable[str], prefix: str, *, step: int = 1, seq_no: int = 0,
                   limit: int | None = None) -> dict:
    """Sequence file for sorted frame file names: every `step`-th frame of the first `limit`.

    The notebook does `files[:300:2]` and numbers the kept frames 1..n.
    """
    if step < 1:
        raise ValueError(f"step: must be >= 1, got {step}")
    names = sorted(frame_names)[:limit:step]
    if not prefix.endswith("/"):
        prefix += "/"
    frames = [{"frame-no": i + 1, "frame": name.rsplit("/", 1)[-1]} for i, name in enumerate(names)]
    return {
        "version": SEQUENCE_VERSION,
        "seq-no": seq_no,
        "prefix": prefix,
        "number-of-frames": len(frames),
        "frames": frames,
    }


def manifest_line(source_ref: str, **extra: object) -> str:
    return json.dumps({"source-ref": source_ref, **extra}, separators=(",", ":"))
