"""What the QA module returns: findings (one risk signal on one frame or object, with its reason) and
their roll-up per frame, per data object and per job. Every type has `to_dict()` giving plain JSON
(camelCase keys, as batch/show uses), so a report, XCom or a sampling record can carry it as is.

Scores are unit-less in [0, 1]: how strongly one signal suggests the label is wrong (1 = certainly
wrong, e.g. a zero-width box). A frame's `risk` is the *sum* of its findings' scores, an estimate of
how many mistakes it holds, so frames with several problems rank above frames with one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

# Signal names (the `signal` of a Finding); reports and tests refer to them by these names.
BOX_JUMP = "box-jump"  # the same object-id moves more between consecutive frames than its track does
SIZE_JUMP = "size-jump"  # its area changes more than its track's usual change
SCALE = "scale"  # a box's height disagrees with the height its label has at that image row (ground plane)
GAP = "gap"  # the object is missing on a frame between frames where it is present
IDENTITY_SWITCH = "identity-switch"  # the object's box continues another id's track, or a new id starts where one ended
SHORT_TRACK = "short-track"  # an object-id present on very few frames of a long sequence
TRACK_END = "track-end"  # a track ends inside the image before the sequence ends: the object lost (missed) after?
TRACK_START = "track-start"  # a track starts inside the image after the first frame: the object missed before?
OUT_OF_IMAGE = "out-of-image"  # a box or vertex outside the image
BORDER = "border"  # a box touches the image border while the same object is well inside on adjacent frames
DEGENERATE = "degenerate"  # a box without area (width or height under 2 px), or not finite
VERTEX_JUMP = "vertex-jump"  # a polyline/polygon/keypoint moves more between frames than its track does
TOO_FEW_VERTICES = "too-few-vertices"  # polyline < 2, polygon < 3 vertices
SELF_INTERSECTION = "self-intersection"  # polygon not valid / polyline crossing itself (shapely)
DUPLICATE = "duplicate"  # two boxes of the same class with IoU >= 0.9 (images, frames)
FRAME_ATTRIBUTE = "frame-attribute"  # a frame attribute contradicts the labels (a declared count)

SIGNALS = (BOX_JUMP, SIZE_JUMP, SCALE, GAP, IDENTITY_SWITCH, SHORT_TRACK, TRACK_END, TRACK_START, OUT_OF_IMAGE, BORDER, DEGENERATE,
           VERTEX_JUMP, TOO_FEW_VERTICES, SELF_INTERSECTION, DUPLICATE, FRAME_ATTRIBUTE)


@dataclass(frozen=True)
class Finding:
    """One risk signal on one frame. Video: `frame` is the frame file name and `index` its position in
    the labeled sequence (from 0). Images: `frame` is None, `index` 0 (the image) and `object_id` the
    annotation's position in the line's `annotations` list, as a string."""

    signal: str
    score: float  # [0, 1]
    reason: str  # for people: what was seen, with the numbers
    frame: str | None = None
    index: int | None = None
    object_id: str | None = None  # video tracking: object-id; images: None
    label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"signal": self.signal, "score": round(self.score, 4), "reason": self.reason}
        for key, value in (("frame", self.frame), ("index", self.index), ("objectId", self.object_id),
                           ("label", self.label)):
            if value is not None:
                out[key] = value
        return out


@dataclass
class FrameRisk:
    """All findings of one frame (video) or one image; `risk` is the sum of their scores."""

    frame: str | None
    index: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def risk(self) -> float:
        return sum(f.score for f in self.findings)

    @property
    def reasons(self) -> list[str]:
        return [f"{f.signal}: {f.reason}" for f in sorted(self.findings, key=lambda f: -f.score)]

    def to_dict(self, *, max_reasons: int | None = None) -> dict[str, Any]:
        findings = sorted(self.findings, key=lambda f: (-f.score, f.signal))
        if max_reasons is not None:
            findings = findings[:max_reasons]
        out: dict[str, Any] = {"index": self.index, "risk": round(self.risk, 4),
                               "findings": [f.to_dict() for f in findings]}
        if self.frame is not None:
            out["frame"] = self.frame
        return out


def group_by_frame(findings: list[Finding], frames: list[str | None]) -> list[FrameRisk]:
    """One FrameRisk per frame name in `frames` (in that order; frames without findings have risk 0)."""
    by_index: dict[int, list[Finding]] = defaultdict(list)
    for f in findings:
        if f.index is not None:
            by_index[f.index].append(f)
    return [FrameRisk(name, i, by_index.get(i, [])) for i, name in enumerate(frames)]


@dataclass
class ObjectRisk:
    """The scored labels of one data object (a manifest line: a video sequence or an image).

    `frames` holds one FrameRisk per frame of the labeled sequence (video), or a single one for the
    image (the line is what image down-sampling picks, so its objects' findings roll up into it).
    `error` says why the line could not be scored (no label: a failed data object; an unreadable
    SeqLabel.json), in which case `frames` is empty.
    """

    line: int  # position in the output manifest, from 0
    source_ref: str
    label_ref: str | None  # SeqLabel.json URI (video) or None (inline image labels)
    frames: list[FrameRisk] = field(default_factory=list)
    error: str | None = None
    worker_id: str | None = None  # filled by callers that read worker responses

    @property
    def risk(self) -> float:
        return sum(f.risk for f in self.frames)

    def signal_counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for frame in self.frames:
            for f in frame.findings:
                counts[f.signal] += 1
        return dict(sorted(counts.items()))

    def to_dict(self, *, only_flagged: bool = False, max_reasons: int | None = None) -> dict[str, Any]:
        frames = [f for f in self.frames if f.findings] if only_flagged else self.frames
        out: dict[str, Any] = {"line": self.line, "sourceRef": self.source_ref, "risk": round(self.risk, 4),
                               "framesScored": len(self.frames), "framesFlagged": sum(1 for f in self.frames if f.findings),
                               "signals": self.signal_counts(),
                               "frames": [f.to_dict(max_reasons=max_reasons) for f in frames]}
        if self.label_ref is not None:
            out["labelRef"] = self.label_ref
        if self.error is not None:
            out["error"] = self.error
        if self.worker_id is not None:
            out["workerId"] = self.worker_id
        return out


@dataclass
class JobRisk:
    """Every scored data object of one job's output manifest."""

    job_name: str | None
    output_manifest_uri: str
    label_attribute: str
    objects: list[ObjectRisk] = field(default_factory=list)

    def risk_histogram(self, edges: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0)) -> dict[str, int]:
        """Frames by risk: "0" (no finding), then "(a, b]" buckets, the last open ("> 2.0")."""
        hist = {"0": 0, **{f"({a}, {b}]": 0 for a, b in zip(edges, edges[1:], strict=False)}, f"> {edges[-1]}": 0}
        for obj in self.objects:
            for frame in obj.frames:
                risk = frame.risk
                if risk <= edges[0]:
                    hist["0"] += 1
                    continue
                for a, b in zip(edges, edges[1:], strict=False):
                    if a < risk <= b:
                        hist[f"({a}, {b}]"] += 1
                        break
                else:
                    hist[f"> {edges[-1]}"] += 1
        return hist

    def to_dict(self, *, only_flagged: bool = True, max_reasons: int | None = 5) -> dict[str, Any]:
        signals: dict[str, int] = defaultdict(int)
        for obj in self.objects:
            for name, count in obj.signal_counts().items():
                signals[name] += count
        return {
            "jobName": self.job_name,
            "outputManifestS3Uri": self.output_manifest_uri,
            "labelAttributeName": self.label_attribute,
            "objects": len(self.objects),
            "framesScored": sum(len(o.frames) for o in self.objects),
            "framesFlagged": sum(1 for o in self.objects for f in o.frames if f.findings),
            "signals": dict(sorted(signals.items())),
            "riskHistogram": self.risk_histogram(),
            "dataObjects": [o.to_dict(only_flagged=only_flagged, max_reasons=max_reasons) for o in self.objects],
        }
