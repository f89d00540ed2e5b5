"""The floor plan as the fusion kernels see it: a grid of cells over the floor, each
receiver's modelled path loss to every cell, which receiver is nearest to each cell, and which
cells each zone covers. Built once from the config; arrays only."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_agent import geometry
from edge_agent.config import AgentConfig
from edge_agent.pipeline import radiomap

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

FLOOR_MARGIN_M = 1.0
"""Without ``fusion.floor``, the grid covers the zones and receivers and this much around."""


@dataclass(slots=True, frozen=True)
class FloorPlan:
    """Grid, receivers and zones of one store, in the arrays the kernels take."""

    x0: float
    """West edge of the grid, metres."""
    y0: float
    """South edge of the grid, metres."""
    cell_m: float
    """Cell size, metres."""
    nx: int
    """Cells west to east."""
    ny: int
    """Cells south to north (cell ``(i, j)`` is index ``i * ny + j``)."""
    cx: F64
    """Centre x of every cell."""
    cy: F64
    """Centre y of every cell."""
    receivers: tuple[str, ...]
    """Receiver ids, in the order of ``gain`` rows."""
    receiver_xyz: F64
    """Receiver positions, shape (receivers, 3)."""
    gain: F32
    """Modelled ``-10 n log10(d)`` from every cell to every receiver, dB, shape (receivers,
    cells): the RSSI a tag in the cell gives at the receiver, less its power at 1 m."""
    owner: I64
    """Per cell: the nearest receiver (row of ``gain``)."""
    zones: tuple[str, ...]
    """Zone ids."""
    zone_starts: I64
    """CSR offsets into ``zone_cells``, one more than there are zones."""
    zone_cells: I64
    """The cells of each zone, zone after zone."""

    @property
    def cells(self) -> int:
        """Number of cells."""
        return self.nx * self.ny

    def receiver_index(self, receiver: str) -> int:
        """Row of a receiver (``-1`` when it is not on the plan)."""
        try:
            return self.receivers.index(receiver)
        except ValueError:
            return -1


def path_gain(distance: F64, exponent: F64 | float) -> F64:
    """The model's ``-10 n log10(d)``: the RSSI a tag gives at ``distance`` (metres, at least
    0.1) less its power at 1 m, dB; the inverse of ``kernels.distance``."""
    return np.asarray(-10.0 * exponent * np.log10(np.maximum(distance, 0.1)), dtype=np.float64)


def exponents(cfg: AgentConfig) -> dict[str, tuple[float, float]]:
    """Per receiver (by its plan name, ``ReceiverConfig.key``): the offset (dB) added to what it
    reports, and its path-loss exponent, as fusion uses them: the mean-signal calibration when
    there is one, else the distance calibration, else ``rssi_offset_db`` and
    ``proximity.path_loss_exponent``."""
    own = cfg.gateway.id
    out = {r.key(own): (r.rssi_offset_db, cfg.proximity.path_loss_exponent) for r in cfg.receivers}
    for cal in cfg.calibration.receivers:
        offset = cal.mean_offset_db if cal.mean_offset_db is not None else cal.rssi_offset_db
        n = cal.mean_exponent if cal.mean_exponent is not None else cal.path_loss_exponent
        out[cal.id] = (offset, n)
    return out


def build(cfg: AgentConfig) -> FloorPlan | None:
    """The plan of ``cfg`` (``None`` when its receivers have no positions)."""
    if not cfg.floor_plan:
        return None
    fusion = cfg.fusion
    placed = [r for r in cfg.receivers if r.x is not None and r.y is not None]
    shapes = [(z.id, z.shape) for z in cfg.zones]
    if fusion.floor is not None:
        x0, y0, x1, y1 = fusion.floor
    else:
        points = [(r.x, r.y) for r in placed if r.x is not None and r.y is not None]
        points += [c for _, shape in shapes if shape is not None for c in shape]
        m = FLOOR_MARGIN_M
        x0, y0, x1, y1 = geometry.bounds(points)
        x0, y0, x1, y1 = x0 - m, y0 - m, x1 + m, y1 + m
    step = fusion.grid_m
    nx = max(math.ceil((x1 - x0) / step), 1)
    ny = max(math.ceil((y1 - y0) / step), 1)
    ii, jj = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    cx = (x0 + (ii.ravel() + 0.5) * step).astype(np.float64)
    cy = (y0 + (jj.ravel() + 0.5) * step).astype(np.float64)
    xyz = np.array([(r.x, r.y, r.z) for r in placed], dtype=np.float64).reshape(-1, 3)
    model = exponents(cfg)
    keys = [r.key(cfg.gateway.id) for r in placed]
    n = np.array([model[k][1] for k in keys], dtype=np.float64)
    dz = xyz[:, 2:3] - fusion.tag_height_m
    d = np.sqrt((cx[None, :] - xyz[:, 0:1]) ** 2 + (cy[None, :] - xyz[:, 1:2]) ** 2 + dz**2)
    gain = path_gain(d, n[:, None])
    rmap = cfg.calibration.radio_map
    if rmap is not None:  # the site survey's shadowing, where it went
        for r, key in enumerate(keys):
            gain[r] += radiomap.correction(rmap, key, cx, cy)
    gain = gain.astype(np.float32)
    owner = np.argmin(d, axis=0).astype(np.int64) if len(placed) else np.zeros(nx * ny, np.int64)
    starts = [0]
    cells: list[I64] = []
    for _, shape in shapes:
        if shape is None:
            inside = np.zeros(0, dtype=np.int64)
        else:
            inside = np.flatnonzero(geometry.contains_points(shape, cx, cy)).astype(np.int64)
        cells.append(inside)
        starts.append(starts[-1] + len(inside))
    return FloorPlan(
        x0=x0,
        y0=y0,
        cell_m=step,
        nx=nx,
        ny=ny,
        cx=cx,
        cy=cy,
        receivers=tuple(keys),
        receiver_xyz=xyz,
        gain=np.ascontiguousarray(gain),
        owner=owner,
        zones=tuple(z for z, _ in shapes),
        zone_starts=np.asarray(starts, dtype=np.int64),
        zone_cells=np.concatenate(cells) if cells else np.zeros(0, dtype=np.int64),
    )
