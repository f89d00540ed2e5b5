"""Radio map: what a site survey heard against the mean-signal model, per receiver and place.

Shelves, walls and bodies make a receiver hear a place louder or softer than the
log-distance model says, and they do so the same way every day ("shadowing", 4 dB and more
in a store). Fusion cannot tell such a place from another one the model puts there, which is
where its error ends without site knowledge (``edge-agent eval --store``'s floor rows). A walk
with a beacon along known positions measures it: ``fit`` turns the survey's samples into a
correction per receiver on a grid (kernel regression: a Gaussian-weighted mean of the
residuals near each cell, shrunk towards zero where the survey has few samples), which
``edge-agent calibrate --radio-map`` writes into the calibration, and ``floorplan.build``
adds to each cell's modelled signal. Where the survey did not go, nothing changes.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from edge_agent.config import RadioMapConfig

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

LENGTH_M = 0.7
"""How far one survey sample speaks for, metres (the kernel's standard deviation). Sized on
every subset of the shared tracks (each scored with the map of the others) and the simulated
store's survey: a longer one blurs away shadowing that changes within a few metres."""
PRIOR_SAMPLES = 30.0
"""Shrinkage: a cell's correction is its neighbours' mean residual weighted as if this many
samples of zero stood beside them (few samples: a small correction). One pass of a walk
leaves errors that do not average out (the walker's body, on one side of the beacon), so a
map from one track must not be trusted far: 10 made a map of one shared track cost the other
13 cm, 30 costs it 4 cm and keeps the gain where tracks cross."""
CELL_M = 0.5
"""Grid of the map, metres."""
MARGIN_M = 2.0
"""The map reaches this far beyond the survey's positions."""


def fit(
    x: F64,
    y: F64,
    receiver: I64,
    residual_db: F64,
    names: list[str],
    *,
    cell_m: float = CELL_M,
    length_m: float = LENGTH_M,
    prior_samples: float = PRIOR_SAMPLES,
) -> RadioMapConfig:
    """The map of survey samples at ``(x, y)``, heard by receiver ``names[receiver]``, whose
    RSSI was ``residual_db`` above the mean-signal model there (non-finite ones are skipped)."""
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(residual_db)
    x, y, receiver, residual_db = x[ok], y[ok], receiver[ok], residual_db[ok]
    if len(x) == 0:
        raise ValueError("no survey sample with a position")
    x0 = math.floor((float(x.min()) - MARGIN_M) / cell_m) * cell_m
    y0 = math.floor((float(y.min()) - MARGIN_M) / cell_m) * cell_m
    nx = math.ceil((float(x.max()) + MARGIN_M - x0) / cell_m)
    ny = math.ceil((float(y.max()) + MARGIN_M - y0) / cell_m)
    i = np.clip(((x - x0) / cell_m).astype(np.int64), 0, nx - 1)
    j = np.clip(((y - y0) / cell_m).astype(np.int64), 0, ny - 1)
    radius = max(math.ceil(3.0 * length_m / cell_m), 1)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) * cell_m / length_m) ** 2)
    out: dict[str, list[float]] = {}
    for r, name in enumerate(names):
        mine = receiver == r
        if not mine.any():
            continue
        cell = i[mine] * ny + j[mine]
        total = np.bincount(cell, weights=residual_db[mine], minlength=nx * ny).astype(np.float64)
        count = np.bincount(cell, minlength=nx * ny).astype(np.float64)
        corr = _blur(total.reshape(nx, ny), taps) / (
            _blur(count.reshape(nx, ny), taps) + prior_samples
        )
        out[name] = [round(float(v), 1) + 0.0 for v in corr.ravel()]  # no -0
    return RadioMapConfig(
        x0=x0, y0=y0, cell_m=cell_m, nx=nx, ny=ny, length_m=length_m, correction_db=out
    )


def _blur(a: F64, taps: F64) -> F64:
    """Separable convolution with ``taps`` (zero beyond the edges)."""
    r = len(taps) // 2

    def line(v: F64) -> F64:
        return np.convolve(v, taps, mode="full")[r : r + len(v)]

    for axis in (0, 1):
        a = np.apply_along_axis(line, axis, a)
    return a


def correction(rmap: RadioMapConfig, receiver: str, x: F64, y: F64) -> F64:
    """The map's correction for ``receiver`` at each point (the nearest cell's), dB; zero
    outside the map and for a receiver it does not hold."""
    values = rmap.correction_db.get(receiver)
    if values is None:
        return np.zeros(len(x))
    i = np.floor((x - rmap.x0) / rmap.cell_m).astype(np.int64)
    j = np.floor((y - rmap.y0) / rmap.cell_m).astype(np.int64)
    inside = (i >= 0) & (i < rmap.nx) & (j >= 0) & (j < rmap.ny)
    grid = np.asarray(values, dtype=np.float64)
    out = np.zeros(len(x))
    out[inside] = grid[i[inside] * rmap.ny + j[inside]]
    return out
