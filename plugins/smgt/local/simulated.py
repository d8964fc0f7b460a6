"""The simulated workforce: what a worker answers for one data object, per modality.

Workers are deterministic for a seed: every random choice comes from a `random.Random` seeded with
(seed, job name, data object index), so a re-run of the same job writes the same labels. Reference
labels next to the input (see references.py) are used when present. Time is simulated too: the
team works in waves of as many data objects as it has workers (capped by MaxConcurrentTaskCount),
`task_seconds` of real time per wave, and every timestamp it writes is computed from the job's
clock origin and the object's wave, so a job resumed after a restart writes exactly what an
uninterrupted one would.

Each `label_*` function returns a `Labeled`: the value for the output manifest's label attribute
(inline JSON or an S3 URI of a file it asks to write), extra metadata keys, and the worker's raw
answer. outputs.py turns that into Ground Truth's file layout.

Adjustment tasks start from the parent's labels (named by `auditLabelAttributeName` in the category
config), change a share of them, mark changed objects through the audit config's attributes and set
`adjustment-status`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from datetime import timedelta

from smgt.registry import Modality

from .labels_cloud import label_cloud_detection, label_cloud_segmentation, label_cloud_tracking
from .labels_common import Labeled, Task
from .labels_image import label_image_boxes, label_image_segmentation
from .labels_video import label_video
from .s3io import S3
from .workforce import Answer, JobRun, ObjectResult

__all__ = ["SimulatedWorkforce", "label"]

log = logging.getLogger(__name__)

_BY_BASE = {
    "VideoObjectTracking": label_video,
    "VideoObjectDetection": label_video,
    "BoundingBox": label_image_boxes,
    "SemanticSegmentation": label_image_segmentation,
    "PointCloudObjectDetection": label_cloud_detection,
    "PointCloudObjectTracking": label_cloud_tracking,
    "PointCloudSemanticSegmentation": label_cloud_segmentation,
}
# Simulated seconds a wave takes when the real wait is zero (a worker spends 20-180 s per task).
SIMULATED_WAVE_SECONDS = 180.0


def label(task: Task, s3: S3) -> Labeled:
    """One worker's answer to one task (audits included: they share their base modality's worker)."""
    try:
        worker = _BY_BASE[task.modality.base]
    except KeyError:
        raise ValueError(f"no simulated worker for {task.modality.name}") from None
    return worker(task, s3)


class SimulatedWorkforce:
    name = "simulated"

    def __init__(self, s3: S3, *, task_seconds: float = 0.0, init_seconds: float = 0.0) -> None:
        self.s3 = s3
        self.task_seconds = task_seconds
        self.init_seconds = init_seconds

    def supports(self, modality: Modality) -> bool:
        return modality.base in _BY_BASE

    def portal_url(self) -> str | None:
        return None

    def label(self, run: JobRun) -> Iterator[ObjectResult]:
        workers = run.workers
        max_tasks = run.job.request["HumanTaskConfig"].get("MaxConcurrentTaskCount", 1000)
        parallel = max(1, min(len(workers), max_tasks))
        wave_seconds = self.task_seconds or SIMULATED_WAVE_SECONDS
        current_wave = None
        for task in run.tasks:
            wave = task.index // parallel
            if wave != current_wave:
                current_wave = wave
                if run.wait(self.task_seconds):
                    return
            worker = workers[task.index % len(workers)]
            try:
                labeled = label(task, self.s3)
            except Exception as exc:  # bad sequence file, unreadable image, ...: GT fails the object
                log.info("job %s object %d failed: %s", task.job_name, task.index, exc)
                yield ObjectResult(task.index, failure=str(exc))
                continue
            spent = self.task_seconds or random.Random(f"{task.seed}:{task.job_name}:{task.index}:t").uniform(20, 180)
            submitted = run.origin + timedelta(seconds=self.init_seconds + (wave + 1) * wave_seconds)
            yield ObjectResult(task.index, labeled, [Answer(worker, labeled.answer, submitted, spent)])
