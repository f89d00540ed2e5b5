"""numba kernel of the fusion stage, with its pure-Python (numpy) twin beside it.

One call per step over every device that has news: each device's position is a probability
over the cells of the floor plan (a grid Bayes filter). Per device:

1. **motion**: the probability spreads by a Gaussian of ``speed · √(dt · 1 s)`` (a random
   walk that strays ``speed`` metres in a second, whatever the step; separable, mass kept at
   the walls), and a small share spreads over the whole floor, so a lost track recovers;
   after a long silence (the spread beyond ``max_radius`` cells) the device starts afresh;
2. **evidence**: every receiver heard in the step adds ``-½ min(e², cap²)`` to each cell's
   log-likelihood, ``e = (z - gain) / σ`` — a Gaussian with heavy tails: beyond ``cap``
   standard deviations a sample counts no more against a place, so one reflection cannot move
   a device across the store. The tails are lopsided: a signal far weaker than the model is
   common (a body, a shelf in the way; ``cap_weak``), a far stronger one is not (``cap_strong``).
   The sum is weighted by ``weight``, because consecutive samples' errors at one place are
   alike;
3. **outputs**: mean position and its spread, the receiver whose cells hold the most
   probability, and each zone's probability.

The caller owns every array (``FusionEngine``); nothing is allocated per call except in the
twin.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

from edge_agent.pipeline.kernels import FASTMATH, exp_neg

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

FLOOR_SHARE = 1e-3
"""Share of probability spread evenly over the floor at every step (recovery from a wrong
lock: a device is never ruled out anywhere)."""


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _blur_rows(a: F64, nx: int, ny: int, w: F64, r: int, wsum: float, buf: F64) -> None:
    """``_blur_line`` along x for every line at once: whole rows of ``ny`` contiguous cells
    are scaled and added, so the inner loops run over contiguous memory."""
    for i in range(r * ny):  # zero padding beyond the walls
        buf[i] = 0.0
        buf[(nx + r) * ny + i] = 0.0
    for i in range(nx):
        total = wsum
        if i < r or i >= nx - r:  # near a wall only the part of the kernel inside counts
            total = 0.0
            for k in range(max(-r, -i), min(r, nx - 1 - i) + 1):
                total += w[k + r]
        inv = 1.0 / total
        base, src = (i + r) * ny, i * ny
        for j in range(ny):
            buf[base + j] = a[src + j] * inv
    for i in range(nx):
        out = i * ny
        for j in range(ny):
            a[out + j] = 0.0
        for k in range(2 * r + 1):
            wk = w[k]
            src = (i + k) * ny
            for j in range(ny):
                a[out + j] += wk * buf[src + j]


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _blur_cols(a: F64, nx: int, ny: int, w: F64, r: int, wsum: float, buf: F64) -> None:
    """The same along y, inside every row of ``ny`` cells: each row is copied, scaled, into a
    zero-padded line of ``buf``, so that the kernel's taps run over contiguous memory."""
    width = ny + 2 * r
    scale = np.empty(ny)
    for j in range(ny):  # near a wall only the part of the kernel inside counts
        total = wsum
        if j < r or j >= ny - r:
            total = 0.0
            for k in range(max(-r, -j), min(r, ny - 1 - j) + 1):
                total += w[k + r]
        scale[j] = 1.0 / total
    for i in range(nx):
        base, src = i * width, i * ny
        for j in range(r):
            buf[base + j] = 0.0
            buf[base + r + ny + j] = 0.0
        for j in range(ny):
            buf[base + r + j] = a[src + j] * scale[j]
    for i in range(nx):
        out, base = i * ny, i * width
        for j in range(ny):
            a[out + j] = 0.0
        for k in range(2 * r + 1):
            wk = w[k]
            for j in range(ny):
                a[out + j] += wk * buf[base + k + j]


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def fuse_batch(
    post: F32,
    nx: int,
    ny: int,
    rows: I64,
    dt: F64,
    starts: I64,
    rx: I64,
    z: F64,
    gain: F32,
    spread: float,
    sigma: float,
    cap_weak: float,
    cap_strong: float,
    weight: float,
    max_radius: int,
    owner: I64,
    zone_starts: I64,
    zone_cells: I64,
    cx: F64,
    cy: F64,
    out_pos: F64,
    out_near: I64,
    out_zone: F64,
    ll: F64,
    tmp: F64,
    near_mass: F64,
) -> None:
    """Advance ``post[rows[m]]`` by ``dt[m]`` and the evidence ``z[starts[m]:starts[m+1]]``
    (one mean ``RSSI - power at 1 m`` per receiver ``rx``); write the outputs of row ``m`` to
    ``out_pos[m] = (x, y, spread)``, ``out_near[m]``, ``out_zone[m]``.

    ``spread`` is the motion's standard deviation over one second, in cells; ``ll``, ``tmp``
    (cells) and ``near_mass`` (receivers) are scratch."""
    cells = nx * ny
    inv_s = 1.0 / sigma
    weak2 = cap_weak * cap_weak
    strong2 = cap_strong * cap_strong
    n_zones = len(zone_starts) - 1
    w = np.empty(2 * max_radius + 1)
    rows_buf = np.empty(max((nx + 2 * max_radius) * ny, nx * (ny + 2 * max_radius)))
    for m in range(len(rows)):
        p = post[rows[m]]
        fresh = not (dt[m] >= 0.0) or 3.0 * spread * math.sqrt(dt[m]) > max_radius
        s_cells = 0.0 if fresh else spread * math.sqrt(dt[m])
        if fresh:
            for c in range(cells):
                tmp[c] = 1.0 / cells
        else:
            for c in range(cells):
                tmp[c] = p[c]
            if s_cells > 0.05:
                r = min(int(math.ceil(3.0 * s_cells)), max_radius)  # noqa: RUF046 (numba)
                wsum = 0.0
                for k in range(-r, r + 1):
                    w[k + r] = math.exp(-0.5 * (k / s_cells) ** 2)
                    wsum += w[k + r]
                _blur_rows(tmp, nx, ny, w, r, wsum, rows_buf)  # along x, a row at a time
                _blur_cols(tmp, nx, ny, w, r, wsum, rows_buf)  # along y, inside each row
            floor = FLOOR_SHARE / cells
            for c in range(cells):
                tmp[c] = (1.0 - FLOOR_SHARE) * tmp[c] + floor
        for c in range(cells):
            ll[c] = 0.0
        for k in range(starts[m], starts[m + 1]):
            g = gain[rx[k]]
            zk = z[k]
            for c in range(cells):
                e = (zk - g[c]) * inv_s
                e2 = e * e
                cap2 = weak2 if e < 0.0 else strong2
                ll[c] -= 0.5 * (e2 if e2 < cap2 else cap2)
        top = -np.inf
        for c in range(cells):
            if ll[c] > top:
                top = ll[c]
        total = 0.0
        for c in range(cells):
            v = tmp[c] * exp_neg(weight * (top - ll[c]))
            tmp[c] = v
            total += v
        inv = 1.0 / total
        sx = sy = sxx = syy = 0.0
        for c in range(cells):
            v = tmp[c] * inv
            p[c] = v
            sx += v * cx[c]
            sy += v * cy[c]
            sxx += v * cx[c] * cx[c]
            syy += v * cy[c] * cy[c]
        for c in range(len(near_mass)):
            near_mass[c] = 0.0
        for c in range(cells):
            near_mass[owner[c]] += p[c]
        out_pos[m, 0] = sx
        out_pos[m, 1] = sy
        out_pos[m, 2] = math.sqrt(max(sxx - sx * sx, 0.0) + max(syy - sy * sy, 0.0))
        best = 0
        for c in range(len(near_mass)):
            if near_mass[c] > near_mass[best]:
                best = c
        out_near[m] = best
        for zi in range(n_zones):
            acc = 0.0
            for k in range(zone_starts[zi], zone_starts[zi + 1]):
                acc += p[zone_cells[k]]
            out_zone[m, zi] = acc


def fuse_batch_py(
    post: F32,
    nx: int,
    ny: int,
    rows: I64,
    dt: F64,
    starts: I64,
    rx: I64,
    z: F64,
    gain: F32,
    spread: float,
    sigma: float,
    cap_weak: float,
    cap_strong: float,
    weight: float,
    max_radius: int,
    owner: I64,
    zone_starts: I64,
    zone_cells: I64,
    cx: F64,
    cy: F64,
    out_pos: F64,
    out_near: I64,
    out_zone: F64,
    ll: F64,
    tmp: F64,
    near_mass: F64,
) -> None:
    """``fuse_batch`` in numpy, written independently (whole-array operations), for the
    tests to compare with."""
    cells = nx * ny
    for m in range(len(rows)):
        s_cells = spread * math.sqrt(dt[m]) if dt[m] >= 0.0 else math.inf
        if not s_cells * 3.0 <= max_radius:
            prior = np.full((nx, ny), 1.0 / cells)
        else:
            prior = post[rows[m]].astype(np.float64).reshape(nx, ny)
            if s_cells > 0.05:
                r = min(math.ceil(3.0 * s_cells), max_radius)
                k = np.exp(-0.5 * (np.arange(-r, r + 1) / s_cells) ** 2)
                prior = _spread(_spread(prior, k, 0), k, 1)
            prior = (1.0 - FLOOR_SHARE) * prior + FLOOR_SHARE / cells
        e = (z[starts[m] : starts[m + 1], None] - gain[rx[starts[m] : starts[m + 1]]]) / sigma
        caps = np.where(e < 0.0, cap_weak, cap_strong)
        loglik = -0.5 * np.minimum(e * e, caps * caps).sum(axis=0)
        p = prior.ravel() * np.exp(weight * (loglik - loglik.max()))
        p /= p.sum()
        post[rows[m]] = p
        x, y = float(p @ cx), float(p @ cy)
        var = float(p @ (cx - x) ** 2) + float(p @ (cy - y) ** 2)
        out_pos[m] = (x, y, math.sqrt(max(var, 0.0)))
        out_near[m] = int(np.argmax(np.bincount(owner, weights=p, minlength=len(near_mass))))
        for zi in range(len(zone_starts) - 1):
            out_zone[m, zi] = p[zone_cells[zone_starts[zi] : zone_starts[zi + 1]]].sum()


def _spread(a: F64, k: F64, axis: int) -> F64:
    """Share each cell's mass along ``axis`` by kernel ``k``, among the cells inside only."""
    r = len(k) // 2
    n = a.shape[axis]
    # the kernel's mass that stays inside, for each source cell
    inside = np.convolve(np.ones(n), k, mode="full")[r : r + n]
    shape = [1, 1]
    shape[axis] = n
    src = a / inside.reshape(shape)
    return np.asarray(
        np.apply_along_axis(lambda v: np.convolve(v, k, mode="full")[r : r + n], axis, src)
    )
