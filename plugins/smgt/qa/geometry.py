"""Geometry the risk signals need: boxes as (left, top, width, height) in pixels (GT's layout), and
vertex shapes through shapely (validity, self-intersection, Hausdorff distance).

Box IoU is the one formula written here (intersection area over union area of two axis-aligned
rectangles); everything about general shapes is shapely's (https://shapely.readthedocs.io).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

Box = tuple[float, float, float, float]  # left, top, width, height (pixels)
Point = tuple[float, float]  # x, y (pixels)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def box_of(item: Any) -> Box | None:
    """The box of a GT box item ({"left", "top", "width", "height"}, numbers), or None if it has none."""
    if not isinstance(item, dict):
        return None
    values = [_num(item.get(k)) for k in ("left", "top", "width", "height")]
    if any(v is None for v in values):
        return None
    return values[0], values[1], values[2], values[3]  # type: ignore[return-value]


def is_finite_box(box: Box) -> bool:
    return all(math.isfinite(v) for v in box)


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes, 0.0 for boxes without area."""
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = min(ax2, bx2) - max(a[0], b[0])
    ih = min(ay2, by2) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = max(a[2], 0) * max(a[3], 0) + max(b[2], 0) * max(b[3], 0) - inter
    return inter / union if union > 0 else 0.0


def box_area(box: Box) -> float:
    return max(box[2], 0.0) * max(box[3], 0.0)


def vertices_of(points: Sequence[dict[str, Any]]) -> list[Point]:
    return [(float(p["x"]), float(p["y"])) for p in points]


def shape_problem(vertices: Sequence[Point], *, closed: bool) -> str | None:
    """Why a polygon (closed) or polyline is not a simple shape (shapely's explanation), else None.

    Polygons: shapely's validity (self-intersection, ring crossing itself, ...). Polylines: not simple
    (the line crosses or touches itself). Callers check the vertex count first.
    """
    from shapely import LineString, Polygon
    from shapely.validation import explain_validity

    if closed:
        polygon = Polygon(vertices)
        return None if polygon.is_valid else explain_validity(polygon)
    line = LineString(vertices)
    return None if line.is_simple else "the line crosses itself"


def shape_distance(a: Sequence[Point], b: Sequence[Point], *, closed: bool) -> float:
    """Hausdorff distance in pixels between two shapes' outlines (shapely), for vertex jumps."""
    from shapely import LinearRing, LineString
    from shapely import Point as SPoint

    def geom(v: Sequence[Point]) -> Any:
        if len(v) == 1:
            return SPoint(v[0])
        if closed and len(v) >= 3:
            return LinearRing(v)
        return LineString(v)

    return float(geom(a).hausdorff_distance(geom(b)))


def point_distance(a: Point, b: Point) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return 0.0
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def theil_sen(y: Sequence[float], x: Sequence[float]) -> tuple[float, float]:
    """(slope, intercept) of the Theil-Sen line of `y` on `x`: the median of the slopes of every pair
    of points with distinct x, and median(y) - slope * median(x) (Sen, "Estimates of the regression
    coefficient based on Kendall's tau", JASA 1968). The same numbers as `scipy.stats.theilslopes`
    (its default method "separate"; tests/qa compares them), without importing scipy.stats: that
    import alone took 0.6-0.7 s of every task that scores a job (measured, issue 13).

    Raises ValueError when every x is the same (no slope is defined).
    """
    import numpy as np

    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    dx, dy = xs[:, None] - xs, ys[:, None] - ys
    pairs = dx > 0
    if not pairs.any():
        raise ValueError("theil_sen: every x is the same")
    slope = float(np.median(dy[pairs] / dx[pairs]))
    return slope, float(np.median(ys) - slope * np.median(xs))


def mad(values: Sequence[float]) -> float:
    """Median absolute deviation from the median (a spread robust to the outliers being looked for)."""
    m = median(values)
    return median([abs(v - m) for v in values])
