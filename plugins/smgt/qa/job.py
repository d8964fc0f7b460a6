"""Score a job's Ground Truth output from storage (S3 or local paths, through `smgt.manifests.Storage`).

    risk = score_job_output(storage, "s3://.../my-job/manifests/output/output.manifest", "vehicle-ref")
    json.dumps(risk.to_dict())

The output manifest is streamed line by line (SPEC section 5); per line:
- video (`<attr>` is a SeqLabel.json URI): the file is read with `smgt.manifests.seq_label_frames`,
  and the frame size from the first frame image's header (sequence file `prefix` + first `frame`;
  one ranged read) for the border checks;
- image boxes (`<attr>` is the inline label): scored as it is;
- a line without `<attr>` (a failed data object) or point-cloud / mask labels: an ObjectRisk with
  `error` saying why it was not scored.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from smgt.manifests import ManifestError, Storage, as_storage, is_s3_uri, seq_label_frames

from .images import score_image
from .model import JobRisk, ObjectRisk
from .video import score_sequence

IMAGE_HEAD_BYTES = 256 * 1024  # enough for a JPEG/PNG header with EXIF in front of the frame size
OUTPUT_MANIFEST_TAIL = "/manifests/output/output.manifest"


def frame_size(storage: Storage, image_uri: str) -> tuple[int, int] | None:
    """(width, height) in pixels from an image's header (Pillow), None when it cannot be read."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(storage.read_head(image_uri, IMAGE_HEAD_BYTES))) as img:
            return img.size
    except Exception:  # not an image, truncated before its size, missing: skip the border checks
        return None


def _sequence_frame_size(storage: Storage, source_ref: str) -> tuple[int, int] | None:
    try:
        sequence = storage.read_json(source_ref)
        prefix = sequence["prefix"]
        first = sequence["frames"][0]["frame"]
    except Exception:  # unreadable sequence file (missing, access denied, odd URI): skip the border checks
        return None
    return frame_size(storage, prefix.rstrip("/") + "/" + first)


def seq_label_list(seq_label: Any) -> tuple[str, list[dict[str, Any]]]:
    """(key, frames in file order) of a video SeqLabel.json body; ManifestError when it has neither list."""
    for key in ("tracking-annotations", "detection-annotations"):
        if isinstance(seq_label, dict) and key in seq_label:
            return key, list(seq_label_frames(seq_label, key).values())
    raise ManifestError("SeqLabel has neither 'tracking-annotations' nor 'detection-annotations'")


def score_output_line(storage: Storage | Any, obj: Mapping[str, Any], label_attribute: str, *, line: int = 0,
                      count_rules: Mapping[str, Sequence[str]] | None = None,
                      read_frame_size: bool = True) -> ObjectRisk:
    """Score one output manifest line (a data object) of a job labeling `label_attribute`."""
    storage = as_storage(storage)
    source_ref = str(obj.get("source-ref", ""))
    metadata = obj.get(f"{label_attribute}-metadata") or {}
    class_map = metadata.get("class-map") if isinstance(metadata, dict) else None
    value = obj.get(label_attribute)
    if value is None:
        reason = metadata.get("failure-reason") if isinstance(metadata, dict) else None
        return ObjectRisk(line, source_ref, None, error=f"no label (failed data object: {reason or 'no reason given'})")
    if isinstance(value, dict):
        if "annotations" not in value:
            return ObjectRisk(line, source_ref, None, error="inline label is not an image bounding-box label")
        return ObjectRisk(line, source_ref, None, [score_image(value, class_map=class_map)])
    if not isinstance(value, str) or not (is_s3_uri(value) or value.endswith(".json")):
        return ObjectRisk(line, source_ref, None, error=f"label {str(value)[:80]!r} is not a SeqLabel.json reference")
    kind = str(metadata.get("type", "")) if isinstance(metadata, dict) else ""
    if "point-cloud" in kind or "3d" in kind.lower():
        return ObjectRisk(line, source_ref, value, error="point-cloud labels are not scored")
    if not value.endswith(".json"):
        return ObjectRisk(line, source_ref, value, error="mask labels (semantic segmentation) are not scored")
    try:
        _, frames = seq_label_list(storage.read_json(value))
    except ManifestError as exc:
        return ObjectRisk(line, source_ref, value, error=str(exc))
    size = _sequence_frame_size(storage, source_ref) if read_frame_size and source_ref else None
    risks = score_sequence(frames, image_size=size, class_map=class_map, count_rules=count_rules)
    return ObjectRisk(line, source_ref, value, risks)


def iter_output_lines(storage: Storage | Any, output_manifest_uri: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(position, parsed line) of every non-blank line of a manifest, streamed."""
    storage = as_storage(storage)
    number = 0
    for raw in storage.iter_lines(output_manifest_uri):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{output_manifest_uri}: line {number + 1} is not valid JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise ManifestError(f"{output_manifest_uri}: line {number + 1} is not a JSON object")
        yield number, obj
        number += 1


def score_job_output(storage: Storage | Any, output_manifest_uri: str, label_attribute: str, *,
                     job_name: str | None = None, count_rules: Mapping[str, Sequence[str]] | None = None,
                     read_frame_size: bool = True, with_workers: bool = False) -> JobRisk:
    """Score every data object of a job's output manifest (one ObjectRisk per line, in order).

    `with_workers` also lists the job's worker responses (`worker_responses`) and fills each object's
    `worker_id` (the first worker who answered it). Raises ManifestError for an unreadable manifest.
    """
    storage = as_storage(storage)
    result = JobRisk(job_name, output_manifest_uri, label_attribute)
    for number, obj in iter_output_lines(storage, output_manifest_uri):
        result.objects.append(score_output_line(storage, obj, label_attribute, line=number,
                                                count_rules=count_rules, read_frame_size=read_frame_size))
    if with_workers:
        responses = worker_responses(storage, output_manifest_uri)
        for obj_risk in result.objects:
            answers = responses.get(obj_risk.line) or []
            obj_risk.worker_id = answers[0]["workerId"] if answers else None
    return result


def job_root(output_manifest_uri: str) -> str:
    """`{S3OutputPath}/{job}` from the job's output manifest URI (GT's layout, SPEC section 5)."""
    if not output_manifest_uri.endswith(OUTPUT_MANIFEST_TAIL):
        raise ManifestError(f"{output_manifest_uri}: not a Ground Truth output manifest (…{OUTPUT_MANIFEST_TAIL})")
    return output_manifest_uri[: -len(OUTPUT_MANIFEST_TAIL)]


def worker_responses(storage: Storage | Any, output_manifest_uri: str) -> dict[int, list[dict[str, Any]]]:
    """Who answered each data object: {object index: [{"workerId", "timeSpentInSeconds",
    "submissionTime", "acceptanceTime"}]}, from `{job}/annotations/worker-response/iteration-N/{index}/*.json`
    (GT's layout, https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-output.html). The object
    index is the data object's position in the job's input manifest. Missing folder: {}.
    """
    storage = as_storage(storage)
    prefix = job_root(output_manifest_uri) + "/annotations/worker-response/"
    out: dict[int, list[dict[str, Any]]] = {}
    for uri in storage.list_uris(prefix):
        parts = uri[len(prefix):].split("/")
        if len(parts) != 3 or not parts[1].isdigit() or not uri.endswith(".json"):
            continue
        try:
            body = storage.read_json(uri)
        except ManifestError:
            continue
        for answer in (body or {}).get("answers") or []:
            out.setdefault(int(parts[1]), []).append({
                k: answer.get(k) for k in ("workerId", "timeSpentInSeconds", "submissionTime", "acceptanceTime")})
    return out
