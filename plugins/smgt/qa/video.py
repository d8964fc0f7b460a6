"""Risk signals on one labeled video sequence (a SeqLabel.json's frames), frame by frame.

Input: the frames of a SeqLabel.json in sequence order (`smgt.manifests.seq_label_frames` reads the
file; GT's layout is described there): per frame `frame` (file name), the tool's list
(`annotations` boxes, `polylines`/`polygons` with `vertices`, `keypoints`) and `frame-attributes`.
Tracking items carry `object-id`; detection items have none, so track signals need tracking output.

Thresholds adapt to each track: a jump is a transition much worse than the same track's median
transition (median and MAD over its consecutive frames), so fast and slow objects are judged by their
own motion. Where a track has too few transitions to know its motion, fixed defaults stand in.
A single bad frame (the object jumps away and back) is blamed on that frame only; a lasting change
(an identity swap, a track continuing elsewhere) on the frame where it starts.

Output: a list of `Finding`s (see model.py), grouped per frame by `score_sequence`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from smgt.manifests import SEQ_LABEL_LISTS, ManifestError, shape_vertices

from .geometry import (
    Box,
    Point,
    box_area,
    box_iou,
    box_of,
    is_finite_box,
    mad,
    median,
    point_distance,
    shape_distance,
    shape_problem,
    theil_sen,
)
from .model import (
    BORDER,
    BOX_JUMP,
    DEGENERATE,
    DUPLICATE,
    FRAME_ATTRIBUTE,
    GAP,
    IDENTITY_SWITCH,
    OUT_OF_IMAGE,
    SCALE,
    SELF_INTERSECTION,
    SHORT_TRACK,
    SIZE_JUMP,
    TOO_FEW_VERTICES,
    TRACK_END,
    TRACK_START,
    VERTEX_JUMP,
    Finding,
    FrameRisk,
    group_by_frame,
)

# Box jumps: a consecutive-frame IoU at least JUMP_MIN_DEFICIT (or 3 MADs) under the track's median.
JUMP_MIN_DEFICIT = 0.2
DEFAULT_TRACK_IOU = 0.8  # a track's expected consecutive IoU when it has under MIN_TRANSITIONS
MIN_TRANSITIONS = 3
LOCAL_WINDOW = 3  # transitions either side that set a transition's expected value
# Size jumps: |ln(area ratio)| above the track's median by ln(1.4) (or 3 MADs); ln 2 scores 1.
SIZE_MIN_LOG = math.log(1.4)
# Vertex/keypoint jumps: Hausdorff / point distance above the track's median by this many pixels (or 3 MADs).
VERTEX_MIN_PX = 6.0
VERTEX_FULL_PX = 30.0  # an excess of this many pixels scores 1
GAP_SCORE_SHORT, GAP_SCORE_LONG, GAP_SHORT_FRAMES = 0.8, 0.5, 2
SWITCH_MIN_IOU, SWITCH_MARGIN = 0.3, 0.1
FRAGMENT_MAX_FRAMES = 3  # a new id starting within this many frames after another ended, where it ended
SHORT_TRACK_FRAMES, SHORT_TRACK_MIN_SEQUENCE = 2, 10
MIN_BOX_PX = 2.0
MAX_ASPECT = 20.0
DUPLICATE_IOU = 0.9
BORDER_TOUCH_PX = 1.0
BORDER_MARGIN_PX = 8.0
# Scale vs image row: objects standing on the ground seen by one camera have a box height that grows
# linearly with the row of their bottom edge (the ground-plane constraint of single-view geometry,
# Hoiem, Efros & Hebert, "Putting Objects in Perspective", CVPR 2006). Fitted per label with the
# Theil-Sen estimator (geometry.theil_sen; robust to the outliers sought) on at most SCALE_FIT_POINTS
# boxes; used only when the label has SCALE_MIN_BOXES boxes, the fit rises with the row and explains
# heights within SCALE_MAX_SPREAD (MAD of ln(height / predicted)); a box off by more than
# max(ln 1.25, 3 MAD) is flagged.
SCALE_MIN_BOXES, SCALE_FIT_POINTS, SCALE_MAX_SPREAD, SCALE_MIN_LOG = 20, 400, 0.15, math.log(1.25)
# Out of the image on a frame next to one where the same object is out too: it is entering or
# leaving the view (MOT ground truth keeps such boxes whole), a much weaker sign than a lone one.
OUT_OF_IMAGE_SCORE, OUT_OF_IMAGE_ALONG_SCORE = 0.9, 0.15
# A track that ends (starts) inside the image, this share of the image size away from every border,
# before the last (after the first) frame: the frames after (before) it may miss the object.
INSIDE_SHARE = 0.05
TRACK_END_FRAMES, TRACK_END_SCORE = 3, 0.5  # scores fall by a third a frame: 0.5, 0.33, 0.17
TRACK_START_FRAMES, TRACK_START_SCORE = 3, 0.3


@dataclass(frozen=True)
class _Item:
    index: int  # frame position
    frame: str
    object_id: str | None
    label: str | None
    kind: str  # "box" | "polyline" | "polygon" | "keypoint"
    box: Box | None = None
    vertices: tuple[Point, ...] = ()


def label_of(item: Mapping[str, Any], class_map: Mapping[str, str] | None) -> str | None:
    """An item's label: the output manifest's class-map for its class-id, else its object-name's prefix."""
    class_id = item.get("class-id")
    if class_map and class_id is not None and str(class_id) in class_map:
        return class_map[str(class_id)]
    name = item.get("object-name")
    return name.rsplit(":", 1)[0] if isinstance(name, str) and name else None


def _items(frames: Sequence[Mapping[str, Any]], class_map: Mapping[str, str] | None,
           findings: list[Finding]) -> list[list[_Item]]:
    out: list[list[_Item]] = []
    kinds = {"annotations": "box", "polylines": "polyline", "polygons": "polygon", "keypoints": "keypoint"}
    for index, frame in enumerate(frames):
        name = str(frame.get("frame", frame.get("frame-name", index)))
        items: list[_Item] = []
        for list_key in SEQ_LABEL_LISTS.values():
            for raw in frame.get(list_key) or []:
                if not isinstance(raw, dict):
                    continue
                oid = raw.get("object-id")
                oid = str(oid) if oid is not None else None
                label = label_of(raw, class_map)
                kind = kinds[list_key]
                if kind == "box":
                    box = box_of(raw)
                    if box is None:
                        findings.append(Finding(DEGENERATE, 1.0, "box without numeric left/top/width/height",
                                                name, index, oid, label))
                        continue
                    items.append(_Item(index, name, oid, label, kind, box=box))
                elif kind == "keypoint":
                    x, y = raw.get("x"), raw.get("y")
                    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y)):
                        findings.append(Finding(DEGENERATE, 1.0, "keypoint without numeric x/y", name, index, oid, label))
                        continue
                    items.append(_Item(index, name, oid, label, kind, vertices=((float(x), float(y)),)))
                else:
                    try:
                        vertices = tuple((float(v["x"]), float(v["y"])) for v in shape_vertices(raw))
                    except ManifestError as exc:
                        findings.append(Finding(DEGENERATE, 1.0, str(exc), name, index, oid, label))
                        continue
                    items.append(_Item(index, name, oid, label, kind, vertices=vertices))
        out.append(items)
    return out


def _f(signal: str, score: float, reason: str, item: _Item) -> Finding:
    return Finding(signal, max(0.0, min(1.0, score)), reason, item.frame, item.index, item.object_id, item.label)


def _who(item: _Item) -> str:
    return f"{item.label or 'object'} {item.object_id}" if item.object_id else (item.label or "object")


# --------------------------------------------------------------------------------------------------
# Per-item checks (any frame, tracking or not)
# --------------------------------------------------------------------------------------------------


def _box_checks(item: _Item, image_size: tuple[int, int] | None) -> list[Finding]:
    assert item.box is not None
    left, top, width, height = item.box
    if not is_finite_box(item.box):
        return [_f(DEGENERATE, 1.0, f"{_who(item)}: box has a non-finite coordinate", item)]
    if width < MIN_BOX_PX or height < MIN_BOX_PX:
        return [_f(DEGENERATE, 1.0, f"{_who(item)}: box {width:g}x{height:g} px has (almost) no area", item)]
    out = []
    aspect = max(width / height, height / width)
    if aspect > MAX_ASPECT:
        out.append(_f(DEGENERATE, 0.5, f"{_who(item)}: box {width:g}x{height:g} px, aspect ratio {aspect:.0f}:1", item))
    if image_size is not None:
        w, h = image_size
        over = max(-left, -top, left + width - w, top + height - h)
        if over > BORDER_TOUCH_PX:
            out.append(_f(OUT_OF_IMAGE, OUT_OF_IMAGE_SCORE, f"{_who(item)}: box [{left:g}, {top:g}, {width:g}, {height:g}] "
                                             f"leaves the {w}x{h} image by {over:.0f} px", item))
    return out


def _shape_checks(item: _Item, image_size: tuple[int, int] | None) -> list[Finding]:
    out = []
    if item.kind in ("polyline", "polygon"):
        need = 2 if item.kind == "polyline" else 3
        if len(item.vertices) < need:
            return [_f(TOO_FEW_VERTICES, 1.0, f"{_who(item)}: {item.kind} with {len(item.vertices)} vertices "
                                              f"(needs at least {need})", item)]
        if not all(math.isfinite(c) for v in item.vertices for c in v):
            return [_f(DEGENERATE, 1.0, f"{_who(item)}: {item.kind} has a non-finite vertex", item)]
        problem = shape_problem(item.vertices, closed=item.kind == "polygon")
        if problem:
            out.append(_f(SELF_INTERSECTION, 0.8, f"{_who(item)}: {item.kind} is not simple ({problem})", item))
    if image_size is not None:
        w, h = image_size
        outside = [v for v in item.vertices if v[0] < -BORDER_TOUCH_PX or v[1] < -BORDER_TOUCH_PX
                   or v[0] > w + BORDER_TOUCH_PX or v[1] > h + BORDER_TOUCH_PX]
        if outside:
            x, y = outside[0]
            out.append(_f(OUT_OF_IMAGE, 0.9, f"{_who(item)}: {len(outside)} vertex(es) outside the {w}x{h} image, "
                                             f"e.g. ({x:g}, {y:g})", item))
    return out


def _duplicates(items: list[_Item]) -> list[Finding]:
    out = []
    boxes = [i for i in items if i.box is not None and is_finite_box(i.box)]
    for a_pos, a in enumerate(boxes):
        for b in boxes[a_pos + 1:]:
            if a.label == b.label and (a.object_id is None or a.object_id != b.object_id):
                iou = box_iou(a.box, b.box)  # type: ignore[arg-type]
                if iou >= DUPLICATE_IOU:
                    out.append(_f(DUPLICATE, 0.9, f"{_who(a)} and {_who(b)} overlap with IoU {iou:.2f} "
                                                  "(the same object labeled twice?)", b))
    return out


def count_rule_findings(frames: Sequence[Mapping[str, Any]], items: list[list[_Item]],
                        rules: Mapping[str, Sequence[str]]) -> list[Finding]:
    """Frame attributes declared as the count of some labels (rules: attribute -> labels; an empty list
    counts every label) that differ from the frame's number of such objects."""
    out = []
    for index, frame in enumerate(frames):
        attributes = frame.get("frame-attributes") or {}
        name = str(frame.get("frame", frame.get("frame-name", index)))
        for attribute, labels in rules.items():
            if attribute not in attributes:
                continue
            raw = attributes[attribute]
            try:
                said = float(raw)
            except (TypeError, ValueError):
                out.append(Finding(FRAME_ATTRIBUTE, 0.5, f"{attribute} is {raw!r}, not a number (declared as a count)",
                                   name, index))
                continue
            wanted = set(labels)
            seen = sum(1 for i in items[index] if not wanted or i.label in wanted)
            if said != seen:
                what = ", ".join(sorted(wanted)) if wanted else "labeled"
                out.append(Finding(FRAME_ATTRIBUTE, 0.7, f"{attribute} says {raw!r}, the frame has {seen} {what} "
                                                         "object(s)", name, index))
    return out


# --------------------------------------------------------------------------------------------------
# Track checks (tracking output: items with object-id)
# --------------------------------------------------------------------------------------------------


def _transition_outliers(track: list[_Item], metric: Callable[[_Item, _Item], float], *,
                         bad_if: str, min_excess: float, default_baseline: float | None,
                         ) -> list[tuple[_Item, float, str, float]]:
    """Frames where the track's transition metric is anomalous: (item, excess, why, track baseline).

    `metric(a, b)` between consecutive presences; `bad_if` "low" (IoU), "high" (distance) or "both"
    (signed log size ratio). A transition is bad when it differs from the median of its neighbours
    (LOCAL_WINDOW either side) by more than max(min_excess, 3 MAD of them). When the transitions into and out of one frame are both bad but the frames
    either side agree with each other, only that middle frame is blamed.
    """
    pairs = [(a, b) for a, b in zip(track, track[1:], strict=False) if b.index == a.index + 1]
    if not pairs:
        return []
    values = [metric(a, b) for a, b in pairs]
    # Each transition is judged against its neighbours (LOCAL_WINDOW either side): objects speed up,
    # grow as they approach, slow down; a window's median follows that, and a median of 2w+1 values
    # is not moved by the one or two outliers being looked for.
    baselines, limits = [], []
    for k in range(len(values)):
        window = values[max(0, k - LOCAL_WINDOW): k + LOCAL_WINDOW + 1]
        if len(window) >= MIN_TRANSITIONS or default_baseline is None:
            baselines.append(median(window))
            limits.append(max(min_excess, 3 * mad(window)))
        else:
            baselines.append(default_baseline)
            limits.append(min_excess)

    def excess(value: float, k: int) -> float:
        if bad_if == "both":
            return abs(value - baselines[k])
        return (baselines[k] - value) if bad_if == "low" else (value - baselines[k])

    bad = [excess(v, k) > limits[k] for k, v in enumerate(values)]
    out: list[tuple[_Item, float, str, float]] = []
    skip = -1
    for k, ((a, b), value) in enumerate(zip(pairs, values, strict=True)):
        if k == skip or not bad[k]:
            continue
        nxt = k + 1
        if nxt < len(pairs) and bad[nxt] and pairs[nxt][0] is b:
            c = pairs[nxt][1]
            across = metric(a, c)
            # Two steps apart the expected change doubles: distances and log size ratios add up, and
            # the IoU's shortfall from 1 about doubles.
            expected = 2 * baselines[k] - 1 if bad_if == "low" else 2 * baselines[k]
            two_step = (expected - across) if bad_if == "low" else abs(across - expected) if bad_if == "both" \
                else across - expected
            if two_step <= limits[k]:  # a -> c agree: b alone is off
                out.append((b, max(excess(value, k), excess(values[nxt], nxt)),
                            f"frames {a.frame} -> {b.frame} -> {c.frame}: {value:.2f}, {values[nxt]:.2f} "
                            f"(the frames either side: {across:.2f}; usual {baselines[k]:.2f})", baselines[k]))
                skip = nxt
                continue
        out.append((b, excess(value, k), f"frames {a.frame} -> {b.frame}: {value:.2f} (usual {baselines[k]:.2f})",
                    baselines[k]))
    return out


def _fragments(tracks: dict[str, list[_Item]]) -> list[tuple[_Item, _Item, float]]:
    """(last box of a track, first box of a track starting where it ended, IoU): one object, two ids."""
    ends = [t[-1] for t in tracks.values() if t[0].kind == "box"]
    out = []
    for track in tracks.values():
        first = track[0]
        if first.kind != "box" or first.index == 0:
            continue
        for last in ends:
            if last.object_id != first.object_id and first.index - FRAGMENT_MAX_FRAMES <= last.index < first.index:
                iou = box_iou(first.box, last.box)  # type: ignore[arg-type]
                if iou >= SWITCH_MIN_IOU:
                    out.append((last, first, iou))
                    break
    return out


def _track_findings(tracks: dict[str, list[_Item]], by_frame: list[list[_Item]], n_frames: int,
                    image_size: tuple[int, int] | None) -> list[Finding]:
    out: list[Finding] = []
    fragments = _fragments(tracks)
    continued = {last.object_id for last, _, _ in fragments if last.object_id}
    continuing = {first.object_id for _, first, _ in fragments if first.object_id}
    for track in tracks.values():
        kind = track[0].kind
        if kind == "box":
            for item, ex, why, baseline in _transition_outliers(
                    track, lambda a, b: box_iou(a.box, b.box), bad_if="low", min_excess=JUMP_MIN_DEFICIT,  # type: ignore[arg-type]
                    default_baseline=DEFAULT_TRACK_IOU):
                out.append(_f(BOX_JUMP, ex / max(baseline, 1e-6), f"{_who(item)} jumps: IoU {why}", item))
            for item, ex, why, _ in _transition_outliers(
                    track, lambda a, b: math.log(max(box_area(b.box), 1e-6) / max(box_area(a.box), 1e-6)),  # type: ignore[arg-type]
                    bad_if="both", min_excess=SIZE_MIN_LOG, default_baseline=0.0):
                out.append(_f(SIZE_JUMP, ex / math.log(2), f"{_who(item)} changes size: ln area ratio {why}", item))
        else:
            closed = kind == "polygon"

            def dist(a: _Item, b: _Item, closed: bool = closed) -> float:
                if a.kind == "keypoint":
                    return point_distance(a.vertices[0], b.vertices[0])
                if len(a.vertices) < 2 or len(b.vertices) < 2:
                    return 0.0
                return shape_distance(a.vertices, b.vertices, closed=closed)

            for item, ex, why, _ in _transition_outliers(track, dist, bad_if="high", min_excess=VERTEX_MIN_PX,
                                                      default_baseline=0.0):
                out.append(_f(VERTEX_JUMP, ex / VERTEX_FULL_PX, f"{_who(item)} {kind} moves: distance px {why}", item))
        # Gaps: absent between two frames where it is present.
        for a, b in zip(track, track[1:], strict=False):
            missing = b.index - a.index - 1
            if missing > 0:
                score = GAP_SCORE_SHORT if missing <= GAP_SHORT_FRAMES else GAP_SCORE_LONG
                for index in range(a.index + 1, b.index):
                    out.append(Finding(GAP, score, f"{_who(a)} is missing on {missing} frame(s) between "
                                                   f"{a.frame} and {b.frame}", None, index, a.object_id, a.label))
        # Short tracks inside a long sequence: a spurious object or a fragment of another track.
        if (n_frames >= SHORT_TRACK_MIN_SEQUENCE and len(track) <= SHORT_TRACK_FRAMES
                and track[0].index > 0 and track[-1].index < n_frames - 1):
            for item in track:
                out.append(_f(SHORT_TRACK, 0.4, f"{_who(item)} exists on only {len(track)} of {n_frames} frames", item))
        if kind == "box" and image_size is not None:
            out.extend(_border_snaps(track, image_size))
            out.extend(_ends_inside(track, n_frames, image_size, continued, continuing))
    if any(t[0].kind == "box" for t in tracks.values()):
        out.extend(_identity_switches(by_frame))
    for last, first, iou in fragments:
        out.append(_f(IDENTITY_SWITCH, 0.6, f"{_who(first)} starts where {_who(last)} ended on {last.frame} "
                                            f"(IoU {iou:.2f}): one object, two ids?", first))
    return out


def _scale_findings(by_frame: list[list[_Item]]) -> list[Finding]:
    """Boxes whose height breaks their label's height-vs-row relation in this sequence (see SCALE_*)."""
    by_label: dict[str | None, list[_Item]] = defaultdict(list)
    for items in by_frame:
        for item in items:
            if item.box is not None and is_finite_box(item.box) and item.box[3] >= MIN_BOX_PX:
                by_label[item.label].append(item)
    out = []
    for items in by_label.values():
        if len(items) < SCALE_MIN_BOXES:
            continue
        step = max(1, len(items) // SCALE_FIT_POINTS)
        sample = items[::step]
        rows = [i.box[1] + i.box[3] for i in sample]  # type: ignore[index]
        if len(set(rows)) < 3:
            continue  # every box on the same rows: nothing to fit
        slope, intercept = theil_sen([i.box[3] for i in sample], rows)  # type: ignore[index]
        if not slope > 0:
            continue

        def residual(item: _Item, slope: float = slope, intercept: float = intercept) -> float | None:
            predicted = intercept + slope * (item.box[1] + item.box[3])  # type: ignore[index]
            return math.log(item.box[3] / predicted) if predicted >= MIN_BOX_PX else None  # type: ignore[index]

        residuals = {id(i): residual(i) for i in items}
        valid = [r for r in residuals.values() if r is not None]
        if len(valid) < SCALE_MIN_BOXES:
            continue
        center, spread = median(valid), mad(valid)
        if spread > SCALE_MAX_SPREAD:
            continue  # no ground plane to speak of (moving camera, objects at many heights)
        limit = max(SCALE_MIN_LOG, 3 * spread)
        for item in items:
            r = residuals[id(item)]
            if r is not None and abs(r - center) > limit:
                ratio = math.exp(r - center)
                out.append(_f(SCALE, 0.3 + (abs(r - center) - limit) / math.log(2),
                              f"{_who(item)}: box height {item.box[3]:g} px is {ratio:.2f}x what its row "  # type: ignore[index]
                              f"(bottom at {item.box[1] + item.box[3]:.0f} px) gives {item.label or 'its label'} "  # type: ignore[index]
                              "elsewhere in the sequence", item))
    return out


def _inside(box: Box, image_size: tuple[int, int]) -> bool:
    w, h = image_size
    left, top, width, height = box
    return (left > INSIDE_SHARE * w and top > INSIDE_SHARE * h and left + width < (1 - INSIDE_SHARE) * w
            and top + height < (1 - INSIDE_SHARE) * h)


def _ends_inside(track: list[_Item], n_frames: int, image_size: tuple[int, int],
                 continued: set[str], continuing: set[str]) -> list[Finding]:
    """A track that ends (starts) well inside the image, not at the sequence's end (start): objects
    leave through the border, so the frames after (before) it may have the object unlabeled. Not for
    a track another id continues (`continued`) or one that continues another (`continuing`): that is
    an identity switch, flagged as such."""
    out = []
    first, last = track[0], track[-1]
    if last.index < n_frames - 1 and last.object_id not in continued and _inside(last.box, image_size):  # type: ignore[arg-type]
        for step, index in enumerate(range(last.index + 1, min(last.index + TRACK_END_FRAMES, n_frames - 1) + 1)):
            out.append(Finding(TRACK_END, TRACK_END_SCORE * (1 - step / TRACK_END_FRAMES),
                               f"{_who(last)} ends inside the image on {last.frame}, away from every border: "
                               "lost (unlabeled) here?", None, index, last.object_id, last.label))
    if first.index > 0 and first.object_id not in continuing and _inside(first.box, image_size):  # type: ignore[arg-type]
        for index in range(max(first.index - TRACK_START_FRAMES, 0), first.index):
            out.append(Finding(TRACK_START, TRACK_START_SCORE, f"{_who(first)} starts inside the image on {first.frame},"
                               " away from every border: unlabeled here before?", None, index, first.object_id, first.label))
    return out


def _border_snaps(track: list[_Item], image_size: tuple[int, int]) -> list[Finding]:
    w, h = image_size
    out = []
    by_index = {i.index: i for i in track}

    def gaps(box: Box) -> dict[str, float]:
        left, top, width, height = box
        return {"left": left, "top": top, "right": w - (left + width), "bottom": h - (top + height)}

    for item in track:
        prev, nxt = by_index.get(item.index - 1), by_index.get(item.index + 1)
        if prev is None or nxt is None:
            continue
        mine, before, after = gaps(item.box), gaps(prev.box), gaps(nxt.box)  # type: ignore[arg-type]
        for side, gap in mine.items():
            if -BORDER_TOUCH_PX <= gap <= BORDER_TOUCH_PX and before[side] > BORDER_MARGIN_PX and after[side] > BORDER_MARGIN_PX:
                out.append(_f(BORDER, 0.5, f"{_who(item)} touches the {side} border, {before[side]:.0f} px and "
                                           f"{after[side]:.0f} px from it on the frames either side", item))
                break
    return out


def _identity_switches(by_frame: list[list[_Item]]) -> list[Finding]:
    """Boxes that continue another id's track (previous frame) better than their own."""
    out = []
    for index in range(1, len(by_frame)):
        before = {i.object_id: i for i in by_frame[index - 1] if i.box is not None and i.object_id}
        for item in by_frame[index]:
            if item.box is None or item.object_id not in before:
                continue
            own = box_iou(item.box, before[item.object_id].box)  # type: ignore[arg-type]
            best, best_id = 0.0, None
            for oid, other in before.items():
                if oid != item.object_id:
                    iou = box_iou(item.box, other.box)  # type: ignore[arg-type]
                    if iou > best:
                        best, best_id = iou, oid
            if best_id is not None and best >= SWITCH_MIN_IOU and best > own + SWITCH_MARGIN:
                out.append(_f(IDENTITY_SWITCH, 0.5 + (best - own),
                              f"{_who(item)} overlaps {before[best_id].label or 'object'} {best_id}'s box on "
                              f"{before[best_id].frame} (IoU {best:.2f}) more than its own (IoU {own:.2f})", item))
    return out


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def _out_of_image_along_tracks(findings: list[Finding]) -> list[Finding]:
    """Out-of-image boxes of an object that is out on the frame before or after too: entering or
    leaving the view, scored OUT_OF_IMAGE_ALONG_SCORE instead of OUT_OF_IMAGE_SCORE."""
    out_at = {(f.object_id, f.index) for f in findings if f.signal == OUT_OF_IMAGE and f.object_id is not None}
    result = []
    for f in findings:
        if (f.signal == OUT_OF_IMAGE and f.object_id is not None and f.index is not None
                and ((f.object_id, f.index - 1) in out_at or (f.object_id, f.index + 1) in out_at)):
            f = Finding(f.signal, OUT_OF_IMAGE_ALONG_SCORE, f.reason + " (as on an adjacent frame: entering or "
                        "leaving the view?)", f.frame, f.index, f.object_id, f.label)
        result.append(f)
    return result


def sequence_findings(frames: Sequence[Mapping[str, Any]], *, image_size: tuple[int, int] | None = None,
                      class_map: Mapping[str, str] | None = None,
                      count_rules: Mapping[str, Sequence[str]] | None = None) -> list[Finding]:
    """Every finding on a labeled sequence.

    frames: SeqLabel.json frames in sequence order. image_size: (width, height) in pixels, None skips
    the border and out-of-image checks. class_map: the output manifest metadata's class-map
    ("class-id" -> label). count_rules: frame attribute -> labels it counts (empty: every label).
    """
    findings: list[Finding] = []
    by_frame = _items(frames, class_map, findings)
    tracks: dict[str, list[_Item]] = defaultdict(list)
    for items in by_frame:
        for item in items:
            if item.kind == "box":
                findings.extend(_box_checks(item, image_size))
            else:
                findings.extend(_shape_checks(item, image_size))
            if item.object_id is not None:
                tracks[f"{item.kind}\x1f{item.object_id}"].append(item)
        findings.extend(_duplicates(items))
    # A track holds each frame once; an id seen twice on one frame is itself an identity problem.
    for key, track in list(tracks.items()):
        seen: dict[int, _Item] = {}
        for item in track:
            if item.index in seen:
                findings.append(_f(IDENTITY_SWITCH, 0.8, f"{_who(item)} appears twice on the same frame", item))
            else:
                seen[item.index] = item
        tracks[key] = [seen[i] for i in sorted(seen)]
    findings = _out_of_image_along_tracks(findings)
    findings.extend(_track_findings(tracks, by_frame, len(frames), image_size))
    findings.extend(_scale_findings(by_frame))
    if count_rules:
        findings.extend(count_rule_findings(frames, by_frame, count_rules))
    names = [str(f.get("frame", f.get("frame-name", i))) for i, f in enumerate(frames)]
    # Gap findings were made without the frame name (the object is absent there); name them now.
    return [f if f.frame is not None or f.index is None else
            Finding(f.signal, f.score, f.reason, names[f.index], f.index, f.object_id, f.label) for f in findings]


def score_sequence(frames: Sequence[Mapping[str, Any]], *, image_size: tuple[int, int] | None = None,
                   class_map: Mapping[str, str] | None = None,
                   count_rules: Mapping[str, Sequence[str]] | None = None) -> list[FrameRisk]:
    """One FrameRisk per frame of the sequence, in order (see `sequence_findings` for the arguments)."""
    names: list[str | None] = [str(f.get("frame", f.get("frame-name", i))) for i, f in enumerate(frames)]
    findings = sequence_findings(frames, image_size=image_size, class_map=class_map, count_rules=count_rules)
    return group_by_frame(findings, names)
