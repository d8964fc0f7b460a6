"""Quality report of a job and of a batch (issue 14, part 4): JSON plus thumbnails, next to the outputs.

Plain functions, no Airflow. Everything is computed by smgt.qa's own functions (`score_job_output`,
`compare_job_outputs`, `compare_frames`, `worker_responses`); this module only rolls them up, draws
the flagged frames and writes the files:

    {job root}/quality/report.json                   job report     (job root = {S3OutputPath}/{job},
    {job root}/quality/thumbnails/{line}-{index}.jpg  flagged frames  where GT writes the job's output)
    {batch prefix}/output/quality-report.json         batch report   (smgt.batch.batch_prefix)

    report = write_job_report(storage, job_name="b-vehicle", job_level=1,
                              output_manifest_uri="s3://.../b-vehicle/manifests/output/output.manifest",
                              label_attribute="vehicle-ref")
    summary = report_summary(report)            # small enough for XCom / batch/show / the batch page
    batch = write_batch_report(storage, "b", batch_report_uri, [summary, ...])

A job report holds: the risk distribution (frames per risk bucket, signal counts), the top flagged
frames (risk, reasons, a JPEG thumbnail with the labels drawn: flagged objects red, others green),
per-label numbers (objects = labeled instances over all frames, tracks, findings; level 2: share
adjusted and audit Fail rate), per-worker numbers (data objects, objects labeled, tasks answered,
mean time per task in seconds from GT's worker responses; level 2: the level-1 workers' share
adjusted), the between-level comparison with the parent and the estimated residual error rate.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from smgt.manifests import SEQ_LABEL_LISTS, ManifestError, Storage, as_storage, shape_vertices

from .geometry import box_of
from .job import iter_output_lines, job_root, seq_label_list, worker_responses
from .levels import compare_frames, compare_job_outputs
from .model import JobRisk
from .video import label_of

REPORT_NAME = "quality/report.json"
THUMBNAIL_FOLDER = "quality/thumbnails"
BATCH_REPORT_NAME = "output/quality-report.json"
MAX_THUMBNAILS = 8  # per job: the highest-risk frames
THUMBNAIL_WIDTH = 320  # pixels
IMAGE_MAX_BYTES = 32 * 1024 * 1024
MAX_REASONS = 4


def job_report_uri(output_manifest_uri: str) -> str:
    """Where a job's report goes: `{job root}/quality/report.json` (ManifestError for a non-GT URI)."""
    return f"{job_root(output_manifest_uri)}/{REPORT_NAME}"


def batch_report_uri(batch_prefix_uri: str) -> str:
    """`{batch prefix}/output/quality-report.json`."""
    return f"{batch_prefix_uri.rstrip('/')}/{BATCH_REPORT_NAME}"


# --------------------------------------------------------------------------------------------------
# Labels of a data object
# --------------------------------------------------------------------------------------------------


def _frames_of_line(storage: Storage, obj: Mapping[str, Any], label_attribute: str) -> list[dict[str, Any]]:
    """The labeled frames of one output line: SeqLabel frames (video) or one pseudo-frame (image)."""
    value = obj.get(label_attribute)
    if isinstance(value, dict):  # inline image boxes: GT's class_id -> SeqLabel's class-id
        items = [{**a, "class-id": a.get("class_id")} for a in value.get("annotations") or [] if isinstance(a, dict)]
        return [{"frame": None, "annotations": items}]
    if isinstance(value, str) and value.endswith(".json"):
        try:
            return seq_label_list(storage.read_json(value))[1]
        except ManifestError:
            return []
    return []


def _items(frame: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key in SEQ_LABEL_LISTS.values():
        out.extend(i for i in frame.get(key) or [] if isinstance(i, dict))
    return out


def _frame_image_uri(storage: Storage, source_ref: str, frame: str | None) -> str | None:
    if frame is None:  # an image: the source itself
        return source_ref
    try:
        sequence = storage.read_json(source_ref)
        return str(sequence["prefix"]).rstrip("/") + "/" + frame
    except Exception:  # unreadable sequence file: no thumbnail
        return None


# --------------------------------------------------------------------------------------------------
# Thumbnails
# --------------------------------------------------------------------------------------------------


def draw_thumbnail(image_bytes: bytes, frame: Mapping[str, Any], *, flagged_ids: Iterable[str] = (),
                   width: int = THUMBNAIL_WIDTH) -> bytes:
    """A JPEG of the frame at `width` pixels wide with its labels drawn (boxes, polylines, polygons,
    key points): objects whose object-id (images: position in `annotations`, as a string) is in
    `flagged_ids` in red, the others green.

    `frame` is a SeqLabel frame (or an image's pseudo-frame with `annotations`), coordinates in pixels
    of the full image. Raises PIL's errors for bytes that are not an image.
    """
    from PIL import Image, ImageDraw

    flagged = {str(i) for i in flagged_ids}
    with Image.open(io.BytesIO(image_bytes)) as img:
        img = img.convert("RGB")
        draw = ImageDraw.Draw(img)
        line_width = max(2, round(2 * img.width / width))  # about 2 px once resized
        for position, item in enumerate(_items(frame)):
            # Video findings name the object-id; image findings the box's position in `annotations`.
            key = item.get("object-id", position)
            colour = (230, 30, 30) if str(key) in flagged else (40, 210, 60)
            box = box_of(item)
            if box is not None:
                left, top, w, h = box
                draw.rectangle([left, top, left + max(w, 1), top + max(h, 1)], outline=colour, width=line_width)
                continue
            if "x" in item and "y" in item:
                x, y = float(item["x"]), float(item["y"])
                draw.ellipse([x - 3 * line_width, y - 3 * line_width, x + 3 * line_width, y + 3 * line_width],
                             outline=colour, width=line_width)
                continue
            try:
                points = [(float(v["x"]), float(v["y"])) for v in shape_vertices(item)]
            except (ManifestError, KeyError, TypeError, ValueError):
                continue
            if len(points) > 1:
                draw.line(points, fill=colour, width=line_width)
        height = max(1, round(img.height * width / img.width))
        small = img.resize((width, height))
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=80)
    return out.getvalue()


# --------------------------------------------------------------------------------------------------
# Residual error rate
# --------------------------------------------------------------------------------------------------


def _changed_frames(storage: Storage, child_manifest_uri: str, parent_attribute: str, child_attribute: str,
                    audit_attribute: str | None) -> dict[tuple[str, str | None], bool]:
    """{(source-ref of the child line, frame name or None for an image): adjusted or audit Fail} for
    every frame the audit labeled (compare_frames per line)."""
    out: dict[tuple[str, str | None], bool] = {}
    for _, obj in iter_output_lines(storage, child_manifest_uri):
        if obj.get(parent_attribute) is None or obj.get(child_attribute) is None:
            continue
        parent = _frames_of_line(storage, obj, parent_attribute)
        child = _frames_of_line(storage, obj, child_attribute)
        p_meta = obj.get(f"{parent_attribute}-metadata") or {}
        c_meta = obj.get(f"{child_attribute}-metadata") or {}
        if isinstance(obj.get(child_attribute), dict):  # an image: name both pseudo-frames alike
            parent = [{**f, "frame": "image"} for f in parent]
            child = [{**f, "frame": "image"} for f in child]
        for frame in child:
            changes = compare_frames(parent, [frame], parent_class_map=p_meta.get("class-map"),
                                     adjusted_class_map=c_meta.get("class-map"), audit_attribute=audit_attribute)
            name = None if frame.get("frame") == "image" else str(frame.get("frame"))
            out[(str(obj.get("source-ref")), name)] = any(c.status != "unchanged" or c.failed for c in changes)
    return out


def residual_error_rate(sampling: Mapping[str, Any] | None, records: Sequence[Mapping[str, Any]],
                        changed: Mapping[tuple[str, str | None], bool]) -> dict[str, Any] | None:
    """Estimated share of the parent's frames (images) still wrong after this audit.

    Estimator. A frame is *wrong* when the audit adjusted an object on it (moved > 1 px, removed,
    added) or marked one Fail. Targeted sampling: the exploration frames are a uniform draw of
    `explored` frames from the `explorationPool` frames not picked for risk, so p = wrong explored /
    explored estimates, without bias, the error rate of that pool; the pool's frames left unaudited
    stay as they are, so residual = p * (pool - explored) / framesIn summed over sequences (images:
    one pool of lines). Random sampling: every frame had the same chance, p = wrong sampled / sampled
    and residual = p * (framesIn - framesOut) / framesIn. `standardError` is the binomial one of p,
    sqrt(p (1 - p) / n); `framesUsed` is n. Returns None without a sampling record or when no frame
    could be used (n = 0: e.g. exploration 0 %), so the report says "not estimated".

    `records` are the sampling record's lines (smgt.manifests: per sequence or per kept line);
    `changed` maps (source-ref in the audit's input, frame name or None) to wrong-or-not.
    """
    if not sampling or not records:
        return None
    level = sampling.get("level")
    targeted = sampling.get("strategy") == "targeted"
    used = wrong = 0
    unaudited_pool = 0.0  # frames the estimate applies to that the audit did not see
    total = 0
    if level == "frames":
        for rec in records:
            ref = str(rec.get("sampled-ref") or rec.get("source-ref"))
            total += int(rec.get("framesIn") or 0)
            if targeted:
                picks = [s for s in rec.get("scores") or [] if s.get("pick") == "explore"]
                names = [str(s.get("frame")) for s in picks]
                unaudited_pool += int(rec.get("explorationPool") or 0) - int(rec.get("explored") or 0)
            else:
                names = [str(n) for n in rec.get("frames") or []]
                unaudited_pool += int(rec.get("framesIn") or 0) - int(rec.get("framesOut") or 0)
            for name in names:
                if (ref, name) in changed:
                    used += 1
                    wrong += bool(changed[(ref, name)])
    elif level == "lines":
        total = int(sampling.get("linesIn") or 0)
        picks = [r for r in records if not targeted or r.get("pick") == "explore"]
        for rec in picks:
            key = (str(rec.get("source-ref")), None)
            if key in changed:
                used += 1
                wrong += bool(changed[key])
        by_risk = sum(1 for r in records if r.get("pick") not in (None, "explore")) if targeted else 0
        unaudited_pool = (total - by_risk - len(picks)) if targeted else total - len(records)
    else:
        return None
    if used == 0 or total == 0:
        return None
    p = wrong / used
    return {
        "estimator": "exploration sample (targeted)" if targeted else "random sample",
        "framesUsed": used, "framesWrong": wrong, "errorRateInPool": round(p, 4),
        "standardError": round(math.sqrt(p * (1 - p) / used), 4),
        "unauditedPoolFrames": int(unaudited_pool), "framesIn": total,
        "residualErrorRate": round(p * unaudited_pool / total, 4),
    }


def _sampling_records(storage: Storage, sampling: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    import json

    uri = (sampling or {}).get("recordUri")
    if not uri:
        return []
    return [json.loads(line) for line in storage.iter_lines(uri) if line.strip()]


# --------------------------------------------------------------------------------------------------
# Job report
# --------------------------------------------------------------------------------------------------


def build_job_report(storage: Storage | Any, *, job_name: str, job_level: int, output_manifest_uri: str,
                     label_attribute: str, parent: Mapping[str, Any] | None = None,
                     sampling: Mapping[str, Any] | None = None,
                     count_rules: Mapping[str, Sequence[str]] | None = None,
                     audit_attribute: str | None = "audit") -> tuple[dict[str, Any], JobRisk]:
    """A job's report as JSON-ready dict (no thumbnails yet) and the JobRisk it was built from.

    `parent` (level 2+): {"jobName", "labelAttributeName", "outputManifestS3Uri", "jobOutputManifestS3Uri"} of
    the job it audited (the output it chained from, and GT's own when a QA gate's re-work corrected that);
    `sampling`: the audit input's sampling summary (the labeling_job task's XCom `sampling`, with recordUri).
    Raises ManifestError when the output manifest cannot be read.
    """
    from . import score_job_output

    storage = as_storage(storage)
    risk = score_job_output(storage, output_manifest_uri, label_attribute, job_name=job_name,
                            count_rules=count_rules, with_workers=True)
    risk_dict = risk.to_dict(max_reasons=MAX_REASONS)
    responses = worker_responses(storage, output_manifest_uri)

    per_label: dict[str, dict[str, Any]] = defaultdict(lambda: {"objects": 0, "tracks": set(), "findings": 0})
    per_worker: dict[str, dict[str, Any]] = defaultdict(lambda: {"dataObjects": 0, "objectsLabeled": 0})
    for number, obj in iter_output_lines(storage, output_manifest_uri):
        meta = obj.get(f"{label_attribute}-metadata") or {}
        class_map = meta.get("class-map") if isinstance(meta, dict) else None
        answers = responses.get(number) or []
        worker = str(answers[0].get("workerId")) if answers and answers[0].get("workerId") else "unknown"
        per_worker[worker]["dataObjects"] += 1
        for frame in _frames_of_line(storage, obj, label_attribute):
            for item in _items(frame):
                label = label_of(item, class_map) or "unknown"
                per_label[label]["objects"] += 1
                if item.get("object-id") is not None:
                    per_label[label]["tracks"].add(f"{number}:{item['object-id']}")
                per_worker[worker]["objectsLabeled"] += 1
    for obj_risk in risk.objects:
        for frame in obj_risk.frames:
            for finding in frame.findings:
                per_label[finding.label or "unknown"]["findings"] += 1
    times: dict[str, list[float]] = defaultdict(list)
    for answers in responses.values():
        for answer in answers:
            seconds = answer.get("timeSpentInSeconds")
            if isinstance(seconds, int | float):
                times[str(answer.get("workerId") or "unknown")].append(float(seconds))
    for worker, values in times.items():
        per_worker[worker]["tasks"] = len(values)
        per_worker[worker]["meanTimePerTaskSeconds"] = round(sum(values) / len(values), 2)

    report: dict[str, Any] = {
        "kind": "smgt.qualityReport.job", "jobName": job_name, "jobLevel": job_level,
        "labelAttributeName": label_attribute, "outputManifestS3Uri": output_manifest_uri,
        "reportS3Uri": job_report_uri(output_manifest_uri),
        "risk": {k: risk_dict[k] for k in ("objects", "framesScored", "framesFlagged", "signals", "riskHistogram")},
        "flaggedFrames": [],
        "perLabel": {k: {**v, "tracks": len(v["tracks"])} for k, v in sorted(per_label.items())},
        "perWorker": dict(sorted(per_worker.items())),
        "unscored": [{"line": o.line, "sourceRef": o.source_ref, "error": o.error} for o in risk.objects if o.error],
        "errors": [],
    }
    if parent:
        comparison = compare_job_outputs(storage, parent["outputManifestS3Uri"], parent["labelAttributeName"],
                                         output_manifest_uri, label_attribute, audit_attribute=audit_attribute,
                                         parent_job_manifest_uri=parent.get("jobOutputManifestS3Uri"))
        between = comparison.to_dict(max_changes=50)
        between["parentJobName"] = parent.get("jobName")
        report["betweenLevels"] = between
        for label, numbers in between["perLabel"].items():
            entry = report["perLabel"].setdefault(label, {"objects": 0, "tracks": 0, "findings": 0})
            entry.update({"audited": numbers["objects"], "shareAdjusted": numbers["shareAdjusted"],
                          "auditFailRate": numbers["auditFailRate"]})
        try:
            changed = _changed_frames(storage, output_manifest_uri, parent["labelAttributeName"], label_attribute,
                                      audit_attribute)
            report["residualErrorRate"] = residual_error_rate(sampling, _sampling_records(storage, sampling), changed)
        except ManifestError as exc:
            report["residualErrorRate"] = None
            report["errors"].append(f"residual error rate: {exc}")
    return report, risk


def _top_flagged(risk: JobRisk, limit: int) -> list[tuple[Any, Any]]:
    frames = [(obj, frame) for obj in risk.objects for frame in obj.frames if frame.findings]
    frames.sort(key=lambda of: (-of[1].risk, of[0].line, of[1].index))
    return frames[:limit]


def add_thumbnails(storage: Storage | Any, report: dict[str, Any], risk: JobRisk, *,
                   limit: int = MAX_THUMBNAILS) -> None:
    """Fill `report["flaggedFrames"]` with the `limit` highest-risk frames, writing each one's JPEG
    thumbnail (`{job root}/quality/thumbnails/{line:06d}-{index:06d}.jpg`). A frame whose image
    cannot be read or drawn keeps its entry without `thumbnailS3Uri` and with `thumbnailError`."""
    storage = as_storage(storage)
    root = job_root(report["outputManifestS3Uri"])
    lines = {number: obj for number, obj in iter_output_lines(storage, report["outputManifestS3Uri"])
             if number in {o.line for o, _ in _top_flagged(risk, limit)}}
    for obj_risk, frame_risk in _top_flagged(risk, limit):
        entry: dict[str, Any] = {"line": obj_risk.line, "sourceRef": obj_risk.source_ref, "frame": frame_risk.frame,
                                 "index": frame_risk.index, "risk": round(frame_risk.risk, 4),
                                 "reasons": frame_risk.reasons[:MAX_REASONS]}
        try:
            frames = _frames_of_line(storage, lines.get(obj_risk.line, {}), report["labelAttributeName"])
            frame = frames[frame_risk.index] if frame_risk.index < len(frames) else {}
            image_uri = _frame_image_uri(storage, obj_risk.source_ref, frame_risk.frame)
            if image_uri is None:
                raise ManifestError("the frame's image is unknown (sequence file unreadable)")
            jpeg = draw_thumbnail(storage.read_head(image_uri, IMAGE_MAX_BYTES), frame,
                                  flagged_ids=[f.object_id for f in frame_risk.findings if f.object_id is not None])
            uri = f"{root}/{THUMBNAIL_FOLDER}/{obj_risk.line:06d}-{frame_risk.index:06d}.jpg"
            with storage.open_write(uri) as out:
                out.write(jpeg)
            entry["imageS3Uri"] = image_uri
            entry["thumbnailS3Uri"] = uri
        except Exception as exc:  # one unreadable frame must not lose the report
            entry["thumbnailError"] = f"{type(exc).__name__}: {exc}"[:300]
        report["flaggedFrames"].append(entry)


def write_job_report(storage: Storage | Any, **kwargs: Any) -> dict[str, Any]:
    """Build (`build_job_report` arguments), draw the thumbnails, write the JSON; return the report."""
    return write_job_report_and_risk(storage, **kwargs)[0]


def write_job_report_and_risk(storage: Storage | Any, **kwargs: Any) -> tuple[dict[str, Any], JobRisk]:
    """`write_job_report`, also returning the JobRisk the report was built from (a QA gate reuses it)."""
    storage = as_storage(storage)
    report, risk = build_job_report(storage, **kwargs)
    add_thumbnails(storage, report, risk)
    storage.write_json(report["reportS3Uri"], report)
    return report, risk


def report_summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """What batch/show and the batch page show of a job report (bounded: MAX_THUMBNAILS frames)."""
    keys = ("jobName", "jobLevel", "reportS3Uri", "risk", "flaggedFrames", "perLabel", "perWorker",
            "residualErrorRate", "errors")
    out = {k: report[k] for k in keys if k in report}
    if "betweenLevels" in report:
        between = report["betweenLevels"]
        out["betweenLevels"] = {k: between.get(k) for k in
                                ("parentJobName", "objects", "adjusted", "shareAdjusted", "perWorker", "mot")}
    return out


# --------------------------------------------------------------------------------------------------
# Batch report
# --------------------------------------------------------------------------------------------------


def build_batch_report(batch_id: str, report_uri: str, jobs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The batch's report from its jobs' report summaries (`report_summary`).

    Per job: frames scored/flagged, its risk histogram and residual error estimate; between levels:
    each audit's share adjusted and audit Fail rate vs its parent; per level-1 worker (per parent job):
    objects labeled, mean time per task and the share of their audited objects the next level adjusted.
    """
    by_name = {str(j.get("jobName")): j for j in jobs}
    job_rows = []
    for job in jobs:
        risk = job.get("risk") or {}
        job_rows.append({"jobName": job.get("jobName"), "jobLevel": job.get("jobLevel"),
                         "reportS3Uri": job.get("reportS3Uri"), "framesScored": risk.get("framesScored"),
                         "framesFlagged": risk.get("framesFlagged"), "riskHistogram": risk.get("riskHistogram"),
                         "residualErrorRate": job.get("residualErrorRate")})
    between_rows = []
    workers: dict[str, dict[str, dict[str, Any]]] = {}
    for job in jobs:
        between = job.get("betweenLevels")
        if not between:
            continue
        parent_name = str(between.get("parentJobName"))
        fails = sum(int(w.get("auditFail") or 0) for w in (between.get("perWorker") or {}).values())
        between_rows.append({"parentJobName": parent_name, "jobName": job.get("jobName"),
                             "objects": between.get("objects"), "adjusted": between.get("adjusted"),
                             "shareAdjusted": between.get("shareAdjusted"),
                             "auditFailRate": round(fails / between["objects"], 4) if between.get("objects") else None,
                             "mot": between.get("mot")})
        parent = by_name.get(parent_name) or {}
        target = workers.setdefault(parent_name, {w: dict(v) for w, v in (parent.get("perWorker") or {}).items()})
        for worker, numbers in (between.get("perWorker") or {}).items():
            entry = target.setdefault(worker, {})
            entry.update({"auditedObjects": numbers.get("objects"), "shareAdjustedAtNextLevel": numbers.get("shareAdjusted"),
                          "auditFailRate": numbers.get("auditFailRate")})
    for job in jobs:
        if job.get("jobLevel") == 1 and str(job.get("jobName")) not in workers:
            workers[str(job.get("jobName"))] = dict(job.get("perWorker") or {})
    return {"kind": "smgt.qualityReport.batch", "batchId": batch_id, "reportS3Uri": report_uri, "jobs": job_rows,
            "betweenLevels": between_rows, "level1Workers": workers}


def write_batch_report(storage: Storage | Any, batch_id: str, report_uri: str,
                       jobs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Build the batch report (`build_batch_report`) and write it to `report_uri`; return it."""
    report = build_batch_report(batch_id, report_uri, jobs)
    as_storage(storage).write_json(report_uri, report)
    return report
