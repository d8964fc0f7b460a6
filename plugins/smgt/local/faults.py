"""Fault injection: make chosen jobs fail, throttle a share of calls, delay completion.

Faults are plain JSON so they can come from a file at start (`serve --faults FILE`) or be replaced at
run time (`POST /_smgt/faults`), e.g.

    {"fail_jobs": [{"pattern": "*-fail*", "reason": "ClientError: simulated"}],
     "throttle_rate": 0.2, "throttle_actions": ["DescribeLabelingJob"],
     "delay_jobs": [{"pattern": "slow-*", "seconds": 30}],
     "label_errors": [{"pattern": "*-vehicle", "frame_share": 0.1, "seed": 7}]}

Patterns are shell-style globs matched case-insensitively (GT job names are case-insensitive).
`label_errors` makes the simulated workforce label with known mistakes (injection.py); a job takes
the rules in force when it starts (or resumes after a restart).
"""

from __future__ import annotations

import fnmatch
import json
import random
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .injection import LabelErrors

DEFAULT_FAILURE_REASON = "ClientError: simulated failure injected by the local Ground Truth emulator"


@dataclass(frozen=True)
class JobFailure:
    pattern: str
    reason: str = DEFAULT_FAILURE_REASON


@dataclass(frozen=True)
class JobDelay:
    pattern: str
    seconds: float


@dataclass(frozen=True)
class Faults:
    fail_jobs: tuple[JobFailure, ...] = ()
    delay_jobs: tuple[JobDelay, ...] = ()
    throttle_rate: float = 0.0
    # Empty = every SageMaker action this emulator serves.
    throttle_actions: tuple[str, ...] = ()
    label_errors: tuple[LabelErrors, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Faults:
        data = dict(data or {})
        unknown = set(data) - {"fail_jobs", "delay_jobs", "throttle_rate", "throttle_actions", "label_errors"}
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        rate = float(data.get("throttle_rate", 0.0))
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"throttle_rate must be within [0, 1], got {rate}")
        return cls(
            fail_jobs=tuple(JobFailure(**f) for f in data.get("fail_jobs", ())),
            delay_jobs=tuple(JobDelay(pattern=d["pattern"], seconds=float(d["seconds"]))
                             for d in data.get("delay_jobs", ())),
            throttle_rate=rate,
            throttle_actions=tuple(data.get("throttle_actions", ())),
            label_errors=tuple(LabelErrors.from_dict(e) for e in data.get("label_errors", ())),
        )

    @classmethod
    def load(cls, path: str | Path) -> Faults:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def failure_for(self, job_name: str) -> str | None:
        for f in self.fail_jobs:
            if _matches(f.pattern, job_name):
                return f.reason
        return None

    def label_errors_for(self, job_name: str) -> LabelErrors | None:
        """The first label error injection rule matching the job, if any."""
        return next((e for e in self.label_errors if e.matches(job_name)), None)

    def delay_for(self, job_name: str) -> float:
        return sum(d.seconds for d in self.delay_jobs if _matches(d.pattern, job_name))


def _matches(pattern: str, name: str) -> bool:
    return fnmatch.fnmatchcase(name.lower(), pattern.lower())


@dataclass
class FaultState:
    """The live faults plus the seeded RNG deciding which calls are throttled (thread-safe)."""

    faults: Faults = field(default_factory=Faults)
    seed: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed)

    def set(self, faults: Faults | dict[str, Any] | None) -> Faults:
        new = faults if isinstance(faults, Faults) else Faults.from_dict(faults)
        with self._lock:
            self.faults = new
        return new

    def should_throttle(self, action: str) -> bool:
        with self._lock:
            f = self.faults
            if f.throttle_rate <= 0 or (f.throttle_actions and action not in f.throttle_actions):
                return False
            return self._rng.random() < f.throttle_rate
