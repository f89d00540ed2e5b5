"""Fusion of every receiver into one position per device (DESIGN §2, "fusion").

Adverts (this gateway's own, and the summaries other gateways of the store send) are
``observe``d as they come; ``step`` then runs the kernel once over every device that has news
and whose last update is at least ``fusion.step_s`` old. Each device's probability over the
floor lives in one row of a preallocated array that doubles when full; rows of forgotten
devices are reused.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from edge_agent.config import FusionConfig
from edge_agent.pipeline import fusion_kernels as fk
from edge_agent.pipeline.floorplan import FloorPlan

MAX_RADIUS_CELLS = 24
"""The motion model's widest spread, in cells; a device silent for longer than that spread
takes starts afresh (anywhere on the floor)."""


@dataclass(slots=True, frozen=True)
class Position:
    """Where fusion puts a device after its latest step."""

    device: str
    """The device's wire id."""
    t: float
    """Source time of the step, seconds."""
    x: float
    """Mean position, metres (east)."""
    y: float
    """Mean position, metres (north)."""
    error_m: float
    """Spread of the position (root of the summed variances of x and y), metres."""
    nearest: str
    """The receiver whose surroundings (the cells nearer to it than to any other) hold the
    most probability."""
    zones: tuple[float, ...]
    """Probability of each zone of the plan (``FloorPlan.zones`` order)."""
    receivers: int
    """Receivers whose samples went into this step."""


class FusionEngine:
    """Per-device grid Bayes filter over the floor plan."""

    def __init__(
        self,
        plan: FloorPlan,
        cfg: FusionConfig,
        capacity: int = 64,
        use_jit: bool | None = None,
    ) -> None:
        self.plan = plan
        self.cfg = cfg
        if use_jit is None:
            use_jit = os.environ.get("EDGE_AGENT_PURE_PYTHON") != "1"
        self._kernel = fk.fuse_batch if use_jit else fk.fuse_batch_py
        self._row: dict[str, int] = {}
        self._device: list[str | None] = []
        self._free: list[int] = []
        self._post = np.zeros((capacity, plan.cells), dtype=np.float32)
        self._last_t = np.full(capacity, -math.inf)
        self._positions: dict[str, Position] = {}
        self._pending: dict[int, dict[int, list[float]]] = {}
        """Evidence since each row's last step: row → receiver → [sum, samples]."""
        cells, n_rx = plan.cells, len(plan.receivers)
        self._ll = np.empty(cells)
        self._tmp = np.empty(cells)
        self._near = np.empty(max(n_rx, 1))
        self.steps = 0
        """Device updates run so far."""

    @property
    def devices(self) -> int:
        """Devices with a row."""
        return len(self._row)

    def _row_of(self, device: str) -> int:
        row = self._row.get(device)
        if row is not None:
            return row
        if self._free:
            row = self._free.pop()
            self._device[row] = device
        else:
            row = len(self._device)
            if row >= len(self._last_t):
                self._grow(
                    len(self._last_t) + len(self._last_t) // 4 + 64
                )  # memory: 10k devices ≈ 40 MB
            self._device.append(device)
        self._last_t[row] = -math.inf
        self._row[device] = row
        return row

    def _grow(self, n: int) -> None:
        post = np.zeros((n, self.plan.cells), dtype=np.float32)
        post[: len(self._post)] = self._post
        last = np.full(n, -math.inf)
        last[: len(self._last_t)] = self._last_t
        self._post, self._last_t = post, last

    def observe(self, device: str, receiver: int, value: float, count: float = 1.0) -> None:
        """Evidence for the next step: at receiver row ``receiver``, ``value`` = RSSI (after
        the receiver's offset) less the device's power at 1 m, dB; ``count`` samples whose
        mean that is (a summary from another gateway stands for several)."""
        if receiver < 0 or not math.isfinite(value):
            return
        row = self._row_of(device)
        acc = self._pending.setdefault(row, {}).setdefault(receiver, [0.0, 0.0])
        acc[0] += value * count
        acc[1] += count

    def step(self, now: float, every: bool = False) -> list[str]:
        """Update every device that has news and whose last update is at least ``step_s``
        old (``every``: every device that has news); the devices updated (their
        ``position`` is new)."""
        if not self._pending:
            return []
        horizon = math.inf if every else now - self.cfg.step_s + 1e-9
        last_t = self._last_t
        due = sorted(r for r in self._pending if last_t[r] <= horizon)
        if not due:
            return []
        starts_l, rx_l, z_l = [0], [], []
        for row in due:
            for rx, (total, number) in sorted(self._pending.pop(row).items()):
                rx_l.append(rx)
                z_l.append(total / number)
            starts_l.append(len(rx_l))
        rows_run = np.array(due, dtype=np.int64)
        starts = np.array(starts_l, dtype=np.int64)
        dt = now - last_t[rows_run]
        m, plan, cfg = len(rows_run), self.plan, self.cfg
        out_pos = np.empty((m, 3))
        out_near = np.empty(m, dtype=np.int64)
        out_zone = np.empty((m, len(plan.zones)))
        self._kernel(
            self._post,
            plan.nx,
            plan.ny,
            rows_run,
            dt,
            starts,
            np.array(rx_l, dtype=np.int64),
            np.array(z_l, dtype=np.float64),
            plan.gain,
            cfg.speed_mps / plan.cell_m,
            cfg.sigma_db,
            cfg.weak_tail_sigmas,
            cfg.strong_tail_sigmas,
            cfg.evidence_weight,
            MAX_RADIUS_CELLS,
            plan.owner,
            plan.zone_starts,
            plan.zone_cells,
            plan.cx,
            plan.cy,
            out_pos,
            out_near,
            out_zone,
            self._ll,
            self._tmp,
            self._near,
        )
        self._last_t[rows_run] = now
        self.steps += m
        updated = []
        receivers, devices, positions = plan.receivers, self._device, self._positions
        for k, (row, (x, y, err), near, zones) in enumerate(
            zip(due, out_pos.tolist(), out_near.tolist(), out_zone.tolist(), strict=True)
        ):
            device = devices[row]
            assert device is not None
            positions[device] = Position(
                device, now, x, y, err, receivers[near], tuple(zones), starts_l[k + 1] - starts_l[k]
            )
            updated.append(device)
        return updated

    @property
    def placed(self) -> list[str]:
        """The devices that have a position, in the order they first got one."""
        return list(self._positions)

    def position(self, device: str) -> Position | None:
        """The device's latest position, if it has had a step."""
        return self._positions.get(device)

    def distance(self, pos: Position, receiver: str) -> float:
        """Distance from a position (at tag height) to a receiver of the plan, metres."""
        i = self.plan.receiver_index(receiver)
        rx = self.plan.receiver_xyz[i]
        dz = float(rx[2]) - self.cfg.tag_height_m
        return math.sqrt((pos.x - float(rx[0])) ** 2 + (pos.y - float(rx[1])) ** 2 + dz * dz)

    def forget(self, device: str) -> None:
        """Release a device's row (its pending evidence is dropped at the next step)."""
        row = self._row.pop(device, None)
        self._positions.pop(device, None)
        if row is None:
            return
        self._device[row] = None
        self._free.append(row)
        self._pending.pop(row, None)
