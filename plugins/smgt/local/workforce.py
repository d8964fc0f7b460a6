"""The simulated workforce: what a worker answers for one data object, per modality.

Workers are deterministic for a seed: every random choice comes from a `random.Random` seeded with
(seed, job name, data object index), so a re-run of the same job writes the same labels. Reference
labels next to the input (see references.py) are used when present.

Each `label_*` function returns a `Labeled`: the value for the output manifest's label attribute
(inline JSON or an S3 URI of a file it asks to write), extra metadata keys, and the worker's raw
answer. outputs.py turns that into Ground Truth's file layout.

Adjustment tasks start from the parent's labels (named by `auditLabelAttributeName` in the category
config), change a share of them, mark changed objects through the audit config's attributes and set
`adjustment-status`.
"""

from __future__ import annotations

from .labels_cloud import label_cloud_detection, label_cloud_segmentation, label_cloud_tracking
from .labels_common import Labeled, Task
from .labels_image import label_image_boxes, label_image_segmentation
from .labels_video import label_video
from .s3io import S3

__all__ = ["Labeled", "Task", "label"]

_BY_BASE = {
    "VideoObjectTracking": label_video,
    "VideoObjectDetection": label_video,
    "BoundingBox": label_image_boxes,
    "SemanticSegmentation": label_image_segmentation,
    "PointCloudObjectDetection": label_cloud_detection,
    "PointCloudObjectTracking": label_cloud_tracking,
    "PointCloudSemanticSegmentation": label_cloud_segmentation,
}


def label(task: Task, s3: S3) -> Labeled:
    """One worker's answer to one task (audits included: they share their base modality's worker)."""
    try:
        worker = _BY_BASE[task.modality.base]
    except KeyError:
        raise ValueError(f"no simulated worker for {task.modality.name}") from None
    return worker(task, s3)
