"""Who labels a job's data objects: the seam between a labeling job's lifecycle and its workforce.

The lifecycle (`lifecycle.py`) owns everything GT owns: status, counters, faults, expiry, stop, the
output files and their durability. A workforce only turns pending data objects into finished
`ObjectResult`s. Two peers implement it, each in its own module:

    simulated.SimulatedWorkforce              deterministic simulated workers (the default)
    labelstudio.workforce.LabelStudioWorkforce  people labeling in Label Studio

Nothing else in the emulator knows which one runs: the choice is made per job at CreateLabelingJob
(`Workforces.for_modality`), recorded with the job, and kept across restarts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from smgt.registry import Modality

from .labels_common import Labeled, Task
from .outputs import Worker

if TYPE_CHECKING:
    from .jobs import LabelingJob

WORKFORCE_NAMES = ("simulated", "labelstudio")


@dataclass(frozen=True)
class Answer:
    """One worker's submission for one data object (a record of GT's worker-response file)."""

    worker: Worker
    content: dict[str, Any]  # answerContent
    submitted: datetime  # UTC
    seconds: float  # time the worker spent on the task


@dataclass
class ObjectResult:
    """A finished data object: labeled (with every worker's answer) or failed with a reason."""

    index: int
    labeled: Labeled | None = None
    answers: list[Answer] = field(default_factory=list)
    failure: str | None = None


@dataclass
class JobRun:
    """What a workforce is handed for one job (a new job, or one resumed after a restart)."""

    job: LabelingJob
    tasks: list[Task]  # the data objects still to label, in input-manifest order
    workers: list[Worker]  # members of the job's work team
    origin: datetime  # the job's clock origin: its creation time (or a fixed one, see Timing)
    wait: Callable[[float], bool]  # sleep up to N s; True once the job must stop (StopLabelingJob or expiry)

    @property
    def stopping(self) -> bool:
        return self.wait(0)


class Workforce(Protocol):
    name: str

    def supports(self, modality: Modality) -> bool:
        """Whether this workforce can label the modality (Label Studio has no point-cloud tool)."""

    def label(self, run: JobRun) -> Iterator[ObjectResult]:
        """Yield each data object of `run.tasks` as it is finished, in any order.

        Return when every task is finished, or once `run.wait` says stop, after yielding what was
        finished by then (GT keeps work submitted before a stop). Must be safe to call again for the
        same job after a restart with the remaining tasks: nothing already yielded is relabeled.
        """

    def portal_url(self) -> str | None:
        """Where workers log in to label (DescribeWorkteam's SubDomain), or None."""


class Workforces:
    """The workforce chosen for the deployment, with the simulated one for what it cannot label."""

    def __init__(self, chosen: Workforce, fallback: Workforce) -> None:
        self.chosen = chosen
        self.fallback = fallback
        self.by_name = {chosen.name: chosen, fallback.name: fallback}

    def for_modality(self, modality: Modality) -> Workforce:
        return self.chosen if self.chosen.supports(modality) else self.fallback

    def get(self, name: str) -> Workforce:
        try:
            return self.by_name[name]
        except KeyError:
            raise WorkforceUnavailable(
                f"workforce {name!r} is not running in this emulator (have: {sorted(self.by_name)});"
                " start it with the workforce the job was created with") from None


class WorkforceUnavailable(LookupError):
    """A job's workforce is not part of this emulator run (it was started with another one)."""
