"""Ground Truth's output layout for one job (SPEC section 5):

    {S3OutputPath}/{job}/manifests/output/output.manifest
    {S3OutputPath}/{job}/annotations/worker-response/iteration-1/{object}/{timestamp}.json
    {S3OutputPath}/{job}/annotations/consolidated-annotation/output/{object}/SeqLabel.json  (video, 3D tracking)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .labels_common import Labeled, Task
from .s3io import S3

if TYPE_CHECKING:
    from .workforce import Answer


@dataclass(frozen=True)
class Worker:
    username: str
    worker_id: str
    sub: str


def output_manifest_uri(output_path: str, job_name: str) -> str:
    return f"{output_path.rstrip('/')}/{job_name}/manifests/output/output.manifest"


def consolidated_prefix(output_path: str, job_name: str) -> str:
    return f"{output_path.rstrip('/')}/{job_name}/annotations/consolidated-annotation/output"


def _iso_ms(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def write_object(s3: S3, task: Task, labeled: Labeled, answers: list[Answer], *, output_path: str,
                 issuer: str) -> dict[str, Any]:
    """Write the worker responses and consolidated files of one data object; return its manifest line.

    Files are written before the line is returned, and the line only reaches the output manifest
    (published last) after that, so a reader never finds a label whose files are missing.
    """
    for uri, body in labeled.files.items():
        s3.put_bytes(uri, body, "image/png" if uri.endswith(".png") else "application/octet-stream")
    response = {"answers": [{
        "acceptanceTime": _iso_ms(a.submitted - timedelta(seconds=a.seconds)),
        "answerContent": a.content,
        "submissionTime": _iso_ms(a.submitted),
        "timeSpentInSeconds": round(a.seconds, 3),
        "workerId": a.worker.worker_id,
        "workerMetadata": {"identityData": {"identityProviderType": "Cognito", "issuer": issuer,
                                            "sub": a.worker.sub}},
    } for a in answers]}
    submitted = max(a.submitted for a in answers)
    stamp = submitted.strftime("%Y-%m-%d_%H:%M:%S.%f")
    s3.put_json(f"{output_path}/{task.job_name}/annotations/worker-response/iteration-1/"
                f"{task.index}/{stamp}.json", response)

    metadata: dict[str, Any] = {
        **labeled.metadata,
        "job-name": f"labeling-job/{task.job_name}",
        "human-annotated": "yes",
        "creation-date": submitted.strftime("%Y-%m-%dT%H:%M:%S.%f"),
        "type": task.modality.output_type,
    }
    if task.modality.is_audit:
        metadata["adjustment-status"] = "adjusted" if labeled.adjusted else "unadjusted"
    return {**task.line, task.label_attribute: labeled.value, f"{task.label_attribute}-metadata": metadata}


# How GT writes a data object that could not be labeled (FailedNonRetryableError in LabelCounters): the
# input line is kept, without the label attribute, and `<label attribute>-metadata` holds only the
# failure. Not in GT's developer guide; seen in an AWS sample's test data, an output manifest whose
# tasks expired (aws-samples/amazon-comprehend-semi-structured-documents-annotation-tools,
# test/unit/resources/output_with_expired_tasks_manifest.jsonl, and its src/utils/output_manifest_utils.py
# which detects expiry by this reason). When TaskAvailabilityLifetimeInSeconds runs out before a worker
# submits, GT ends the task and the object fails with EXPIRED_REASON; "Output data appears in this
# location when the workers have submitted one or more tasks, or when tasks expire"
# (https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-output.html).
EXPIRED_REASON = ("ClientError: Annotation tasks expired.  Probable Reasons are 1) TaskAvailabilityLifetimeInSeconds "
                  "parameter is too small.  2) Reward is too low for workers to work on the task.  3) If you use a "
                  "custom html template, your template may be broken.  4) Data (image/video/text) sent for annotation "
                  "is broken or too big, preventing completion.  5) All workers declined the tasks.")


def failed_line(task: Task, reason: str) -> dict[str, Any]:
    """The output manifest line GT writes for a data object that failed: input line + metadata with the reason.

    reason: GT-style, e.g. EXPIRED_REASON or f"ClientError: {problem}".
    """
    return {**task.line, f"{task.label_attribute}-metadata": {"retry-count": 1, "failure-reason": reason,
                                                                "human-annotated": "true"}}


def write_manifest(s3: S3, output_path: str, job_name: str, lines: list[dict[str, Any]]) -> str:
    uri = output_manifest_uri(output_path, job_name)
    s3.put_lines(uri, lines)
    return uri


def now() -> datetime:
    return datetime.now(UTC)
