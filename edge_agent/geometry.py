"""Plane geometry of the floor plan: polygons (zones) and points (receivers), in metres.

Pure and small: the config checks use it (a polygon that is not simple, zones that overlap,
a receiver outside the plan) and so does the fusion stage (which cells a zone covers), with the
one point-in-polygon test, ``contains_points``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Point = tuple[float, float]
Polygon = Sequence[Point]


def rectangle(x0: float, y0: float, x1: float, y1: float) -> list[Point]:
    """The four corners of an axis-aligned rectangle, counter-clockwise."""
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def contains_points(
    poly: Polygon, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """Whether each point ``(x[i], y[i])`` is inside ``poly`` (even-odd rule; a point on the
    lower or left edge is inside, on the upper or right edge outside, so that zones sharing an
    edge never both hold a point)."""
    inside = np.zeros(len(x), dtype=bool)
    n = len(poly)
    for i in range(n):
        xa, ya = poly[i]
        xb, yb = poly[(i + 1) % n]
        if ya == yb:  # a horizontal edge crosses no horizontal ray
            continue
        spans = (ya <= y) != (yb <= y)
        cross = xa + (y - ya) * (xb - xa) / (yb - ya)
        inside ^= spans & (x < cross)
    return inside


def contains(poly: Polygon, x: float, y: float) -> bool:
    """Whether ``(x, y)`` is inside ``poly`` (``contains_points`` for one point)."""
    return bool(contains_points(poly, np.array([x], dtype=float), np.array([y], dtype=float))[0])


def area(poly: Polygon) -> float:
    """Unsigned area (shoelace)."""
    n = len(poly)
    s = 0.0
    for i in range(n):
        xa, ya = poly[i]
        xb, yb = poly[(i + 1) % n]
        s += xa * yb - xb * ya
    return abs(s) / 2.0


def _orient(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _on_segment(a: Point, b: Point, p: Point) -> bool:
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def _segments_meet(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Whether segments ab and cd share a point."""
    o1, o2, o3, o4 = _orient(a, b, c), _orient(a, b, d), _orient(c, d, a), _orient(c, d, b)
    if ((o1 > 0) != (o2 > 0)) and ((o3 > 0) != (o4 > 0)) and o1 and o2 and o3 and o4:
        return True
    return (
        (o1 == 0 and _on_segment(a, b, c))
        or (o2 == 0 and _on_segment(a, b, d))
        or (o3 == 0 and _on_segment(c, d, a))
        or (o4 == 0 and _on_segment(c, d, b))
    )


def simple_problem(poly: Polygon) -> str | None:
    """Why ``poly`` is not a simple polygon (fewer than 3 corners, no area, edges that cross
    or touch other than at their shared corner), or ``None`` when it is."""
    n = len(poly)
    if n < 3:
        return f"has {n} corners; a polygon needs at least 3"
    if area(poly) <= 1e-9:
        return "has no area (its corners are on one line)"
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        if a == b:
            return f"corners {i} and {(i + 1) % n} are the same point"
        for j in range(i + 1, n):
            if j == i or (j + 1) % n == i or j == (i + 1) % n:
                continue  # neighbouring edges share a corner
            c, d = poly[j], poly[(j + 1) % n]
            if _segments_meet(a, b, c, d):
                return f"edge {i}–{(i + 1) % n} crosses edge {j}–{(j + 1) % n}: it is not simple"
    return None


def bounds(poly: Polygon) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)`` of a polygon."""
    xs = [p[0] for p in poly]
    ys = [p[1] for p in poly]
    return min(xs), min(ys), max(xs), max(ys)


def overlap_area(a: Polygon, b: Polygon, step: float = 0.1) -> float:
    """Approximate area two polygons share (sampled every ``step`` metres over the
    intersection of their bounds, at most 250 000 samples): zones that only share an edge
    share none."""
    ax0, ay0, ax1, ay1 = bounds(a)
    bx0, by0, bx1, by1 = bounds(b)
    x0, y0, x1, y1 = max(ax0, bx0), max(ay0, by0), min(ax1, bx1), min(ay1, by1)
    if x0 >= x1 or y0 >= y1:
        return 0.0
    step = max(step, ((x1 - x0) * (y1 - y0) / 250_000.0) ** 0.5)
    nx, ny = max(int((x1 - x0) / step), 1), max(int((y1 - y0) / step), 1)
    dx, dy = (x1 - x0) / nx, (y1 - y0) / ny
    gx, gy = np.meshgrid(x0 + (np.arange(nx) + 0.5) * dx, y0 + (np.arange(ny) + 0.5) * dy)
    px, py = gx.ravel(), gy.ravel()
    shared = int(np.count_nonzero(contains_points(a, px, py) & contains_points(b, px, py)))
    return shared * dx * dy
