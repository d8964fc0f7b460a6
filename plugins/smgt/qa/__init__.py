"""Automated QA of Ground Truth labels (issue 14): risk scores with reasons, per frame and per object.

Plain functions, no Airflow: they read a job's output through `smgt.manifests.Storage` (S3 or local
paths) and return dataclasses whose `to_dict()` is JSON.

    score_job_output(storage, output_manifest_uri, label_attribute)   -> JobRisk (every data object)
    score_output_line(storage, line_obj, label_attribute)            -> ObjectRisk (one data object)
    score_sequence(seq_label_frames)                                   -> [FrameRisk] (one video sequence)
    score_image(inline_box_label)                                      -> FrameRisk (one image)
    compare_job_outputs(storage, parent..., child...)                  -> LevelComparison (audit vs parent)
    mot_metrics(gt, tracker) / mot_events_per_frame(gt, tracker)       -> CLEAR MOT, IDF1, HOTA (trackeval)

Signals and their names: model.py. Targeted down-sampling (smgt.manifests) ranks frames by
`FrameRisk.risk`.
"""

from .images import image_findings, score_image
from .job import frame_size, score_job_output, score_output_line, worker_responses
from .levels import (
    LevelComparison,
    ObjectChange,
    compare_frames,
    compare_job_outputs,
    mot_events_per_frame,
    mot_metrics,
)
from .model import SIGNALS, Finding, FrameRisk, JobRisk, ObjectRisk
from .video import score_sequence, sequence_findings

__all__ = [
    "SIGNALS", "Finding", "FrameRisk", "JobRisk", "LevelComparison", "ObjectChange", "ObjectRisk",
    "compare_frames", "compare_job_outputs", "frame_size", "image_findings", "mot_events_per_frame",
    "mot_metrics", "score_image", "score_job_output", "score_output_line", "score_sequence",
    "sequence_findings", "worker_responses",
]
