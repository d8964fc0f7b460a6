"""Between levels: what the audit (adjustment) job changed in its parent's labels, and the standard
multi-object tracking metrics of the parent's labels taken against the adjusted ones.

Per object (matched by object-id for tracking, by best IoU for detection and images): the IoU of the
parent's and the adjusted box (vertex shapes: Hausdorff distance in pixels), whether it was adjusted
(moved by more than the emulator's and GT's 1 px tolerance, removed or added), and the audit attribute
(e.g. "audit": "Pass"/"Fail" in the audit label config). Rolled up per label and per level-1 worker.

CLEAR MOT (MOTA, MOTP, ID switches), Identity (IDF1) and HOTA come from trackeval
(https://github.com/JonathonLuiten/TrackEval, maintained fork `trackeval` on PyPI); only its metrics
are used (numpy + scipy), on data prepared the way its MOTChallenge reader prepares it.
"""

from __future__ import annotations

import contextlib
import io
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from smgt.manifests import SEQ_LABEL_LISTS, ManifestError, Storage, as_storage, shape_vertices

from .geometry import Box, box_iou, box_of, shape_distance, vertices_of
from .job import iter_output_lines, seq_label_list, worker_responses
from .video import label_of

ADJUST_TOLERANCE_PX = 1.0
MATCH_IOU = 0.5  # CLEAR MOT's default threshold (trackeval's THRESHOLD), also for matching untracked boxes
FAIL_VALUES = ("Fail",)

TrackFrames = list[list[tuple[str, Box]]]  # per frame: (object id, box)


def trackeval_metrics() -> Any:
    """trackeval.metrics, imported on first use (smgt.warm imports it in a task parent)."""
    # trackeval's package __init__ prints a line about an optional dataset it cannot import (BURST needs
    # pycocotools, left out of the lock); keep that off our stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        import trackeval.metrics as metrics
    return metrics


def _trackeval_data(gt: TrackFrames, tracker: TrackFrames) -> dict[str, Any]:
    """The per-sequence dict trackeval's metrics take (ids renumbered from 0, IoU similarity)."""
    import numpy as np

    gt_ids = {oid: i for i, oid in enumerate(sorted({o for f in gt for o, _ in f}))}
    tr_ids = {oid: i for i, oid in enumerate(sorted({o for f in tracker for o, _ in f}))}
    data: dict[str, Any] = {"num_timesteps": len(gt), "num_gt_ids": len(gt_ids), "num_tracker_ids": len(tr_ids),
                            "num_gt_dets": sum(len(f) for f in gt), "num_tracker_dets": sum(len(f) for f in tracker),
                            "gt_ids": [], "tracker_ids": [], "similarity_scores": []}
    for g, t in zip(gt, tracker, strict=True):
        data["gt_ids"].append(np.array([gt_ids[o] for o, _ in g], dtype=int))
        data["tracker_ids"].append(np.array([tr_ids[o] for o, _ in t], dtype=int))
        sim = np.zeros((len(g), len(t)))
        for i, (_, gb) in enumerate(g):
            for j, (_, tb) in enumerate(t):
                sim[i, j] = box_iou(gb, tb)
        data["similarity_scores"].append(sim)
    return data


def mot_metrics(gt: TrackFrames, tracker: TrackFrames, *, threshold: float = MATCH_IOU) -> dict[str, float]:
    """CLEAR MOT, Identity and HOTA of `tracker` against `gt`, frame lists of equal length.

    Returns MOTA, MOTP, IDF1, HOTA, DetA, AssA (fractions, 0..1; MOTA can be negative) and the counts
    TP, FN, FP, IDSW. Raises ValueError when the frame lists differ in length.
    """
    if len(gt) != len(tracker):
        raise ValueError(f"gt has {len(gt)} frames, tracker {len(tracker)}")
    metrics = trackeval_metrics()
    data = _trackeval_data(gt, tracker)
    config = {"THRESHOLD": threshold, "PRINT_CONFIG": False}
    clear = metrics.CLEAR(config).eval_sequence(data)
    identity = metrics.Identity(config).eval_sequence(data)
    hota = metrics.HOTA().eval_sequence(data)
    return {
        "MOTA": float(clear["MOTA"]), "MOTP": float(clear["MOTP"]), "IDF1": float(identity["IDF1"]),
        # HOTA averages over localisation thresholds 0.05..0.95; trackeval returns one value per alpha.
        "HOTA": float(hota["HOTA"].mean()), "DetA": float(hota["DetA"].mean()), "AssA": float(hota["AssA"].mean()),
        "TP": int(clear["CLR_TP"]), "FN": int(clear["CLR_FN"]), "FP": int(clear["CLR_FP"]), "IDSW": int(clear["IDSW"]),
    }


def mot_events_per_frame(gt: TrackFrames, tracker: TrackFrames, *, threshold: float = MATCH_IOU) -> list[dict[str, int]]:
    """Per frame: the false positives, misses and identity switches trackeval's CLEAR counts there.

    CLEAR matches frame by frame with only the past as state, so the counts over frames 0..t are
    those of the whole run up to t; evaluating each prefix and taking differences gives every frame's
    own events from the library's matching (T evaluations for T frames).
    """
    metrics = trackeval_metrics()
    clear = metrics.CLEAR({"THRESHOLD": threshold, "PRINT_CONFIG": False})
    full = _trackeval_data(gt, tracker)
    out, before = [], {"FP": 0, "FN": 0, "IDSW": 0}
    for t in range(len(gt)):
        data = dict(full)
        for key in ("gt_ids", "tracker_ids", "similarity_scores"):
            data[key] = full[key][: t + 1]
        data["num_timesteps"] = t + 1
        data["num_gt_dets"] = sum(len(f) for f in gt[: t + 1])
        data["num_tracker_dets"] = sum(len(f) for f in tracker[: t + 1])
        res = clear.eval_sequence(data)
        now = {"FP": int(res["CLR_FP"]), "FN": int(res["CLR_FN"]), "IDSW": int(res["IDSW"])}
        out.append({k: now[k] - before[k] for k in now})
        before = now
    return out


def boxes_by_frame(frames: Sequence[Mapping[str, Any]]) -> TrackFrames:
    """(object id, box) per frame of SeqLabel frames; items without object-id get a per-frame id."""
    out: TrackFrames = []
    for index, frame in enumerate(frames):
        items = []
        for pos, item in enumerate(frame.get("annotations") or []):
            box = box_of(item)
            if box is not None:
                oid = item.get("object-id")
                items.append((str(oid) if oid is not None else f"#{index}.{pos}", box))
        out.append(items)
    return out


# --------------------------------------------------------------------------------------------------
# Parent vs adjusted
# --------------------------------------------------------------------------------------------------


@dataclass
class ObjectChange:
    frame: str | None
    object_id: str | None
    label: str | None
    status: str  # "unchanged" | "adjusted" | "removed" | "added"
    iou: float | None = None  # boxes
    distance_px: float | None = None  # vertex shapes and keypoints
    audit: Any = None  # the audit attribute's value on the adjusted object
    worker_id: str | None = None  # the level-1 worker who labeled the parent's data object

    @property
    def failed(self) -> bool:
        return self.audit in FAIL_VALUES

    def to_dict(self) -> dict[str, Any]:
        out = {"frame": self.frame, "objectId": self.object_id, "label": self.label, "status": self.status,
               "iou": None if self.iou is None else round(self.iou, 4),
               "distancePx": None if self.distance_px is None else round(self.distance_px, 2), "audit": self.audit}
        if self.worker_id is not None:
            out["workerId"] = self.worker_id
        return out


def _item_shape(item: Mapping[str, Any]) -> tuple[str, Any]:
    box = box_of(item)
    if box is not None:
        return "box", box
    if "x" in item and "y" in item:
        return "point", [(float(item["x"]), float(item["y"]))]
    try:
        return "shape", vertices_of(shape_vertices(item))
    except ManifestError:
        return "none", None


def _change(parent: Mapping[str, Any], adjusted: Mapping[str, Any], frame: str | None, label: str | None,
            audit_attribute: str | None) -> ObjectChange:
    kind_p, shape_p = _item_shape(parent)
    kind_a, shape_a = _item_shape(adjusted)
    audit = (adjusted.get("label-category-attributes") or {}).get(audit_attribute) if audit_attribute else None
    oid = adjusted.get("object-id", parent.get("object-id"))
    change = ObjectChange(frame, None if oid is None else str(oid), label, "unchanged", audit=audit)
    if kind_p != kind_a or shape_p is None:
        change.status = "adjusted"
        return change
    if kind_p == "box":
        change.iou = box_iou(shape_p, shape_a)
        moved = max(abs(a - b) for a, b in zip(shape_p, shape_a, strict=True))
    else:
        change.distance_px = moved = shape_distance(shape_p, shape_a, closed=False) if len(shape_p) > 1 and len(
            shape_a) > 1 else ((shape_p[0][0] - shape_a[0][0]) ** 2 + (shape_p[0][1] - shape_a[0][1]) ** 2) ** 0.5
    if moved > ADJUST_TOLERANCE_PX:
        change.status = "adjusted"
    return change


def compare_frames(parent_frames: Sequence[Mapping[str, Any]], adjusted_frames: Sequence[Mapping[str, Any]], *,
                   parent_class_map: Mapping[str, str] | None = None,
                   adjusted_class_map: Mapping[str, str] | None = None,
                   audit_attribute: str | None = "audit") -> list[ObjectChange]:
    """Every object of the adjusted frames (and every parent object the audit removed), compared.

    Frames are matched by file name (`frame`); only frames the adjustment job labeled count (it saw
    the down-sampled frames only). Objects match by object-id, else by best box IoU >= 0.5 greedily.
    """
    by_name = {str(f.get("frame", f.get("frame-name"))): f for f in parent_frames}
    changes: list[ObjectChange] = []
    for frame in adjusted_frames:
        name = str(frame.get("frame", frame.get("frame-name")))
        parent = by_name.get(name, {})
        for list_key in SEQ_LABEL_LISTS.values():
            p_items = [i for i in parent.get(list_key) or [] if isinstance(i, dict)]
            a_items = [i for i in frame.get(list_key) or [] if isinstance(i, dict)]
            changes.extend(_pair(p_items, a_items, name, parent_class_map, adjusted_class_map, audit_attribute))
    return changes


def _pair(p_items: list[dict[str, Any]], a_items: list[dict[str, Any]], frame: str | None,
          parent_class_map: Mapping[str, str] | None, adjusted_class_map: Mapping[str, str] | None,
          audit_attribute: str | None) -> list[ObjectChange]:
    out = []
    unmatched_p = list(range(len(p_items)))
    for a in a_items:
        match = None
        oid = a.get("object-id")
        if oid is not None:
            match = next((k for k in unmatched_p if p_items[k].get("object-id") == oid), None)
        else:
            box_a = box_of(a)
            best = MATCH_IOU
            for k in unmatched_p:
                box_p = box_of(p_items[k])
                if box_a is not None and box_p is not None and box_iou(box_a, box_p) >= best:
                    best, match = box_iou(box_a, box_p), k
        label = label_of(a, adjusted_class_map) or (label_of(p_items[match], parent_class_map) if match is not None else None)
        if match is None:
            audit = (a.get("label-category-attributes") or {}).get(audit_attribute) if audit_attribute else None
            out.append(ObjectChange(frame, None if oid is None else str(oid), label, "added", audit=audit))
            continue
        unmatched_p.remove(match)
        out.append(_change(p_items[match], a, frame, label, audit_attribute))
    for k in unmatched_p:
        oid = p_items[k].get("object-id")
        out.append(ObjectChange(frame, None if oid is None else str(oid), label_of(p_items[k], parent_class_map), "removed"))
    return out


def summarize_changes(changes: Sequence[ObjectChange], key: str) -> dict[str, dict[str, Any]]:
    """Roll-up by "label" or "worker": objects, adjusted (moved/removed/added), share adjusted, audit
    Fail count and rate, mean IoU of boxes."""
    groups: dict[str, list[ObjectChange]] = defaultdict(list)
    for c in changes:
        groups[str((c.label if key == "label" else c.worker_id) or "unknown")].append(c)
    out = {}
    for name, items in sorted(groups.items()):
        adjusted = sum(1 for c in items if c.status != "unchanged")
        fails = sum(1 for c in items if c.failed)
        ious = [c.iou for c in items if c.iou is not None]
        out[name] = {"objects": len(items), "adjusted": adjusted, "shareAdjusted": round(adjusted / len(items), 4),
                     "auditFail": fails, "auditFailRate": round(fails / len(items), 4),
                     "meanIoU": round(sum(ious) / len(ious), 4) if ious else None}
    return out


@dataclass
class LevelComparison:
    """What an adjustment job changed in its parent's labels (JSON via to_dict)."""

    child_manifest_uri: str
    changes: list[ObjectChange] = field(default_factory=list)
    mot: dict[str, float] | None = None  # over every sequence's audited frames (boxes of tracking jobs)

    def to_dict(self, *, max_changes: int = 200) -> dict[str, Any]:
        adjusted = sum(1 for c in self.changes if c.status != "unchanged")
        return {"childOutputManifestS3Uri": self.child_manifest_uri, "objects": len(self.changes),
                "adjusted": adjusted, "shareAdjusted": round(adjusted / len(self.changes), 4) if self.changes else None,
                "perLabel": summarize_changes(self.changes, "label"),
                "perWorker": summarize_changes(self.changes, "worker"), "mot": self.mot,
                "changes": [c.to_dict() for c in self.changes if c.status != "unchanged"][:max_changes]}


def compare_job_outputs(storage: Storage | Any, parent_manifest_uri: str, parent_attribute: str,
                        child_manifest_uri: str, child_attribute: str, *,
                        audit_attribute: str | None = "audit",
                        parent_job_manifest_uri: str | None = None) -> LevelComparison:
    """Compare an adjustment job's output with its parent's, from their output manifests.

    A chained line keeps the parent's label (`parent_attribute`) next to the adjusted one, so both are
    on the child's line; the parent's manifest and worker responses say which level-1 worker labeled
    each data object. The MOT metrics cover the audited frames of box tracking sequences.
    `parent_job_manifest_uri`: the parent job's own GT output manifest (where its worker responses are),
    when `parent_manifest_uri` is the output its QA gate's re-work corrected (same lines, same order).
    """
    storage = as_storage(storage)
    parent_line_of: dict[str, int] = {}
    for number, obj in iter_output_lines(storage, parent_manifest_uri):
        ref = obj.get(parent_attribute)
        parent_line_of[ref if isinstance(ref, str) else str(obj.get("source-ref"))] = number
    workers = {i: (answers[0].get("workerId") if answers else None)
               for i, answers in worker_responses(storage, parent_job_manifest_uri or parent_manifest_uri).items()}
    result = LevelComparison(child_manifest_uri)
    gt_all: TrackFrames = []
    tr_all: TrackFrames = []
    for number, obj in iter_output_lines(storage, child_manifest_uri):
        parent_value, child_value = obj.get(parent_attribute), obj.get(child_attribute)
        if parent_value is None or child_value is None:
            continue
        p_meta = obj.get(f"{parent_attribute}-metadata") or {}
        c_meta = obj.get(f"{child_attribute}-metadata") or {}
        key = parent_value if isinstance(parent_value, str) else str(obj.get("source-ref"))
        worker = workers.get(parent_line_of.get(key, -1))
        if isinstance(child_value, dict):  # images: inline boxes, matched by IoU
            p_items = [{**a, "class-id": a.get("class_id")} for a in parent_value.get("annotations") or []]
            a_items = [{**a, "class-id": a.get("class_id")} for a in child_value.get("annotations") or []]
            changes = _pair(p_items, a_items, None, p_meta.get("class-map"), c_meta.get("class-map"), audit_attribute)
        else:
            try:
                _, p_frames = seq_label_list(storage.read_json(parent_value))
                _, a_frames = seq_label_list(storage.read_json(child_value))
            except ManifestError:
                continue
            changes = compare_frames(p_frames, a_frames, parent_class_map=p_meta.get("class-map"),
                                     adjusted_class_map=c_meta.get("class-map"), audit_attribute=audit_attribute)
            audited = {str(f.get("frame")) for f in a_frames}
            p_audited = [f for f in p_frames if str(f.get("frame")) in audited]
            order = [str(f.get("frame")) for f in a_frames]
            p_by = {str(f.get("frame")): f for f in p_audited}
            # Ids are per sequence: prefix them with the line so sequences never share one.
            gt_all.extend([[(f"{number}:{o}", b) for o, b in f] for f in boxes_by_frame(a_frames)])
            tr_all.extend([[(f"{number}:{o}", b) for o, b in f]
                           for f in boxes_by_frame([p_by.get(n, {}) for n in order])])
        for c in changes:
            c.worker_id = worker
        result.changes.extend(changes)
    if any(gt_all) or any(tr_all):
        result.mot = mot_metrics(gt_all, tr_all)
    return result
