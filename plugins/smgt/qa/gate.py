"""QA gate: which data objects of a job's output go back for re-work, and which of their frames.

    sent_back = gate_failures(score_job_output(storage, manifest_uri, attribute), min_risk=0.5, max_flagged_percent=0)

A data object (a video sequence, or an image) fails the gate when more than `max_flagged_percent`
percent of its scored frames have a risk of at least `min_risk` (`FrameRisk.risk`, the sum of the
frame's findings' scores). Its high-risk frames are what the re-work adjustment job shows again.
Objects that could not be scored (a failed data object, point clouds) never fail it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from .model import JobRisk

MAX_REASONS = 3  # per frame, in what batch/show and the re-work record keep


@dataclass(frozen=True)
class SentBack:
    """One data object that failed the gate: its manifest line, frames to re-work and why."""

    line: int  # position in the output manifest the gate scored, from 0
    source_ref: str
    frames: tuple[str | None, ...]  # frame file names (video) or (None,) for an image
    frames_scored: int
    risks: tuple[float, ...] = ()
    reasons: tuple[tuple[str, ...], ...] = field(default=())  # per frame, the top MAX_REASONS

    @property
    def flagged_percent(self) -> float:
        return 100.0 * len(self.frames) / self.frames_scored if self.frames_scored else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "sourceRef": self.source_ref,
            "framesScored": self.frames_scored,
            "framesSentBack": len(self.frames),
            "flaggedPercent": round(self.flagged_percent, 2),
            "frames": [
                {**({"frame": name} if name is not None else {}), "risk": round(risk, 4), "reasons": list(why)}
                for name, risk, why in zip(self.frames, self.risks, self.reasons, strict=True)
            ],
        }


def gate_failures(risk: JobRisk, *, min_risk: float, max_flagged_percent: float) -> list[SentBack]:
    """The data objects of `risk` that fail the gate, in manifest order (see the module docstring).

    `max_flagged_percent` in [0, 100): 0 sends back any object with one high-risk frame. The share is
    compared exactly (fractions), so 1 of 10 frames is 10 %, not above a 10 % limit.
    """
    out = []
    limit = Fraction(str(max_flagged_percent))
    for obj in risk.objects:
        if obj.error or not obj.frames:
            continue
        high = [f for f in obj.frames if f.findings and f.risk >= min_risk]
        if not high or Fraction(100 * len(high), len(obj.frames)) <= limit:
            continue
        out.append(SentBack(
            line=obj.line,
            source_ref=obj.source_ref,
            frames=tuple(f.frame for f in high),
            frames_scored=len(obj.frames),
            risks=tuple(f.risk for f in high),
            reasons=tuple(tuple(f.reasons[:MAX_REASONS]) for f in high),
        ))
    return out
