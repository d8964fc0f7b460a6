"""Re-work rounds of a QA gate (`qa.gate`, `qaGates`), as plain functions; no Airflow import.

When a job with a QA gate completes, smgt.qa scores its output and `smgt.qa.gate.gate_failures`
names the data objects that fail the gate and their high-risk frames. A re-work round sends them back
to the job's own work team as an ordinary Ground Truth adjustment job (the job's modality's audit
task type, on the job's work team, with the job's label category config), so real GT and the local
Ground Truth run it the same way. Its labels then replace those frames' labels in the job's
*effective output*, which later levels chain from; the next round (if any) scores that output.

Where a round's files go (`round` from 1):

    {batch}/inputs/{job}-rework{round}/input.manifest    the sent-back lines; a video line's source-ref
                                                        points at its sequence cut to the sent-back frames
    {batch}/inputs/{job}-rework{round}/sent-back.json    every sent-back object, its frames, risks, reasons
    {batch}/output/{job}-rework{round}/...               Ground Truth's output of the adjustment job
    {batch}/effective/{job}/round{round}/output.manifest the job's output manifest with the re-worked labels
    {batch}/effective/{job}/round{round}/labels/{line}-SeqLabel.json   merged video labels

Every file is written to a fixed key and everything is derived from the job's output and the
gate, so a retried task writes the same files and adopts the same adjustment job.
"""

from __future__ import annotations

import copy
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from smgt.batch import batch_prefix, job_files_and_request, job_inputs_prefix
from smgt.config import InputConfig, LabelingJobConfig, rework_job_name, rework_label_attribute
from smgt.manifests import ManifestError, Storage, join_uri, json_line, parent_uri, seq_label_frames
from smgt.qa.gate import SentBack
from smgt.qa.job import iter_output_lines, seq_label_list
from smgt.registry import MediaKind
from smgt.settings import Settings

# Per-frame label lists of a SeqLabel.json frame whose items carry a class-id.
_ITEM_LISTS = ("annotations", "polylines", "polygons", "keypoints")


def rework_job_config(job: LabelingJobConfig, round_number: int) -> LabelingJobConfig:
    """The adjustment job of `job`'s re-work round: the audit task type of the job's modality (an
    audit job is adjusted by its own type), on the job's work team, chained from the job."""
    modality = job.jobModality if job.modality.is_audit else f"{job.jobModality}Audit"
    return job.model_copy(update={
        "jobName": rework_job_name(job.jobName, round_number),
        "jobModality": modality,
        "labelAttributeName": rework_label_attribute(job.label_attribute, round_number),
        "inputConfig": InputConfig(chainFromJobName=job.jobName),
        "qa": None,
    })


def effective_manifest_uri(settings: Settings, batch_id: str, job_name: str, round_number: int) -> str:
    return f"{batch_prefix(settings, batch_id)}/effective/{job_name}/round{round_number}/output.manifest"


def build_rework_manifest(storage: Storage, manifest_uri: str, out_manifest_uri: str, sent_back: Sequence[SentBack], *,
                          media: MediaKind | str) -> dict[str, int]:
    """Write the input manifest of a re-work job: the sent-back lines of `manifest_uri` (in order),
    each video sequence cut to its sent-back frames (a new sequence file under `sequences/` next to
    the manifest). Lines keep the labels they carry (the adjustment job's starting point).

    Returns {"lines", "frames"} written. ManifestError when a sent-back line or frame is missing.
    """
    media = MediaKind(media)
    wanted = {s.line: s for s in sent_back}
    sequences = join_uri(parent_uri(out_manifest_uri), "sequences")
    lines = frames_out = 0
    with storage.open_write(out_manifest_uri) as out:
        for number, obj in iter_output_lines(storage, manifest_uri):
            sent = wanted.get(number)
            if sent is None:
                continue
            if media is MediaKind.IMAGE:
                frames_out += 1
            else:
                source_ref = obj["source-ref"]
                sequence = storage.read_json(source_ref)
                names = set(sent.frames)
                frames = [f for f in sequence.get("frames") or [] if isinstance(f, dict) and f.get("frame") in names]
                if len(frames) != len(names):
                    raise ManifestError(f"{source_ref}: frames {sorted(names - {f.get('frame') for f in frames})} "
                                        "sent back for re-work are not in the sequence")
                cut = {**sequence, "frames": frames, "number-of-frames": len(frames)}
                obj["source-ref"] = join_uri(sequences, f"{number:06d}-{source_ref.rsplit('/', 1)[-1]}")
                storage.write_json(obj["source-ref"], cut)
                frames_out += len(frames)
            out.write(json_line(obj))
            lines += 1
    if lines != len(wanted):
        raise ManifestError(f"{manifest_uri}: has {lines} of the {len(wanted)} lines sent back for re-work")
    return {"lines": lines, "frames": frames_out}


def prepare_rework(storage: Storage, *, settings: Settings, batch_id: str, job: LabelingJobConfig, round_number: int,
                   manifest_uri: str, sent_back: Sequence[SentBack]) -> dict[str, Any]:
    """Upload a re-work round's input (manifest, sent-back record, label config, UI template) and
    return its CreateLabelingJob request with where things are (`smgt.batch.job_files_and_request`)."""
    rework = rework_job_config(job, round_number)
    prefix = job_inputs_prefix(settings, batch_id, rework.jobName)
    input_uri = f"{prefix}/input.manifest"
    written = build_rework_manifest(storage, manifest_uri, input_uri, sent_back, media=job.modality.media)
    record_uri = f"{prefix}/sent-back.json"
    storage.write_json(record_uri, {"jobName": job.jobName, "reworkJobName": rework.jobName, "round": round_number,
                                    "manifestS3Uri": manifest_uri, "sentBack": [s.to_dict() for s in sent_back]})
    prepared = job_files_and_request(rework, batch_id=batch_id, settings=settings, storage=storage,
                                     manifest_uri=input_uri, parent_attribute=job.label_attribute)
    return {**prepared, "sentBackS3Uri": record_uri, "framesSentBack": written["frames"]}


def merge_rework(storage: Storage, *, manifest_uri: str, label_attribute: str, rework_input_uri: str,
                 rework_output_uri: str, rework_attribute: str, out_manifest_uri: str,
                 sent_back_lines: Sequence[int]) -> dict[str, Any]:
    """Write the effective output: `manifest_uri` with the re-worked labels in place.

    `sent_back_lines[i]` is the line of `manifest_uri` that line i of the re-work input came from;
    re-work output lines are matched to them by `source-ref`. Video: the re-worked frames replace the
    same-named frames of the line's SeqLabel.json (merged copy under `labels/`); images: the
    re-worked label replaces the line's. Class ids are mapped through the two class-maps. A sent-back
    object the re-work job did not label (a failed data object) keeps its labels and is listed in
    `notReworked`. Returns {"linesReworked", "framesReplaced", "notReworked"}.
    """
    origin: dict[str, deque[int]] = defaultdict(deque)
    for i, (_, obj) in enumerate(iter_output_lines(storage, rework_input_uri)):
        origin[obj["source-ref"]].append(sent_back_lines[i])
    reworked: dict[int, dict[str, Any]] = {}
    for _, obj in iter_output_lines(storage, rework_output_uri):
        lines = origin.get(obj.get("source-ref"))
        if lines:
            reworked[lines.popleft()] = obj
    labels = join_uri(parent_uri(out_manifest_uri), "labels")
    sent = set(sent_back_lines)
    replaced, not_reworked = 0, []
    with storage.open_write(out_manifest_uri) as out:
        for number, obj in iter_output_lines(storage, manifest_uri):
            new = reworked.get(number, {})
            if number in sent and new.get(rework_attribute) is None:
                not_reworked.append(number)
            elif new:
                replaced += _merge_line(storage, obj, new, label_attribute, rework_attribute,
                                        join_uri(labels, f"{number:06d}-SeqLabel.json"))
            out.write(json_line(obj))
    return {"linesReworked": len(sent) - len(not_reworked), "framesReplaced": replaced, "notReworked": not_reworked}


def _merge_line(storage: Storage, obj: dict[str, Any], new: Mapping[str, Any], attribute: str, rework_attribute: str,
                merged_label_uri: str) -> int:
    """Put a re-work output line's labels into `obj` (in place); returns the frames replaced."""
    meta_key = f"{attribute}-metadata"
    base_meta = obj.get(meta_key) if isinstance(obj.get(meta_key), dict) else {}
    new_meta = new.get(f"{rework_attribute}-metadata") or {}
    value = new[rework_attribute]
    class_map, to_base = _class_ids(base_meta.get("class-map") or {}, new_meta.get("class-map") or {},
                                    _used_class_ids(storage, value))
    if isinstance(value, dict):  # an image's inline label
        label = copy.deepcopy(value)
        for box in label.get("annotations") or []:
            if isinstance(box, dict) and "class_id" in box:
                box["class_id"] = int(to_base.get(str(box["class_id"]), box["class_id"]))
        obj[attribute] = label
        replaced = 1
    else:  # a SeqLabel.json reference
        body = storage.read_json(obj[attribute])
        key, _ = seq_label_list(body)
        _, new_frames = seq_label_list(storage.read_json(value))
        by_name = {f.get("frame", f.get("frame-name")): f for f in new_frames}
        replaced = 0
        frames = body[key]
        for i, frame in enumerate(frames):
            name = frame.get("frame", frame.get("frame-name"))
            if name in by_name:
                merged = _with_class_ids(by_name[name], to_base)
                merged["frame-no"] = frame.get("frame-no", i)
                frames[i] = merged
                replaced += 1
        seq_label_frames(body, key)  # the merged file is still a SeqLabel GT's readers accept
        storage.write_json(merged_label_uri, body)
        obj[attribute] = merged_label_uri
    if class_map != (base_meta.get("class-map") or {}):
        obj[meta_key] = {**base_meta, "class-map": class_map}
    return replaced


def _used_class_ids(storage: Storage, value: Any) -> set[str]:
    """The class ids a re-work label uses (inline image boxes, or a SeqLabel.json's items)."""
    if isinstance(value, dict):
        return {str(b.get("class_id")) for b in value.get("annotations") or [] if isinstance(b, dict)}
    _, frames = seq_label_list(storage.read_json(value))
    return {str(i.get("class-id")) for f in frames for k in _ITEM_LISTS for i in f.get(k) or [] if isinstance(i, dict)}


def _class_ids(base: Mapping[str, str], new: Mapping[str, str],
               used: set[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(merged class-map, re-work class id -> base class id) for the `used` re-work ids: a label the
    base map lacks gets the next free id."""
    merged = {str(k): v for k, v in base.items()}
    by_label = {v: k for k, v in merged.items()}
    to_base = {}
    for new_id, label in new.items():
        if str(new_id) not in used:
            continue
        if label not in by_label:
            by_label[label] = str(max((int(k) for k in merged if k.isdigit()), default=-1) + 1)
            merged[by_label[label]] = label
        to_base[str(new_id)] = by_label[label]
    return merged, to_base


def _with_class_ids(frame: Mapping[str, Any], to_base: Mapping[str, str]) -> dict[str, Any]:
    out = copy.deepcopy(dict(frame))
    for key in _ITEM_LISTS:
        for item in out.get(key) or []:
            if isinstance(item, dict) and "class-id" in item:
                item["class-id"] = to_base.get(str(item["class-id"]), str(item["class-id"]))
    return out


def sent_back_summary(sent_back: Iterable[SentBack], limit: int) -> dict[str, Any]:
    """What batch/show keeps of a round's sent-back objects: counts and the first `limit` with reasons."""
    items = list(sent_back)
    return {"objectsSentBack": len(items), "framesSentBack": sum(len(s.frames) for s in items),
            "sentBack": [s.to_dict() for s in items[:limit]], "sentBackTruncated": len(items) > limit}
