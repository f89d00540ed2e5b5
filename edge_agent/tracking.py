"""The device table: one slot per (device, receiver) pair, smoothed once per tick by the kernels.

Per-slot state lives in preallocated numpy arrays that double when full; slots of devices that
have been gone for a while are recycled, so memory follows the devices present, not those ever seen.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from edge_agent import kernels
from edge_agent.config import ProximityConfig, ReceiverConfig

BANDS = ("immediate", "near", "far", "gone")


@dataclass(slots=True, frozen=True)
class Estimate:
    """Where a device is relative to its nearest receiver, at one instant."""

    receiver: str
    """Receiver with the smallest estimated distance among those that heard it recently."""
    distance_m: float
    """Estimated distance to that receiver, metres."""
    rssi: float
    """Smoothed RSSI at that receiver (after the receiver's offset), dBm."""
    runner_up_m: float
    """Distance to the second-nearest receiver (``inf`` when only one hears it)."""


def band_for(distance: float, current: str, prox: ProximityConfig) -> str:
    """Band for ``distance``, leaving ``current`` only past its edge by ``hysteresis_m``."""
    edges = (prox.immediate_m, prox.near_m, prox.far_m)
    raw = next((BANDS[i] for i, edge in enumerate(edges) if distance <= edge), "gone")
    if current not in BANDS or raw == current:
        return raw
    ci, ri = BANDS.index(current), BANDS.index(raw)
    h = prox.hysteresis_m
    if ri > ci:  # moving out: stay until past the current band's outer edge + h
        return raw if distance > edges[ci] + h else current
    # moving in: cross the inner band's outer edge by h
    return raw if distance < edges[ri] - h or ri < ci - 1 else current


class DeviceTable:
    """Smoothed RSSI and distance for every (device, receiver) pair."""

    def __init__(
        self,
        prox: ProximityConfig,
        receivers: list[ReceiverConfig],
        capacity: int = 1024,
        use_jit: bool | None = None,
    ) -> None:
        self.prox = prox
        self._offsets = {r.id: r.rssi_offset_db for r in receivers}
        if use_jit is None:
            use_jit = os.environ.get("EDGE_AGENT_PURE_PYTHON") != "1"
        self._ema = kernels.ema_batch if use_jit else kernels.ema_batch_py
        self._distance = kernels.log_distance if use_jit else kernels.log_distance_py
        self._slot_of: dict[tuple[str, str], int] = {}
        self._slot_key: list[tuple[str, str] | None] = []
        self._device_slots: dict[str, list[int]] = {}
        self._free: list[int] = []
        self._level = np.zeros(capacity)
        self._last_t = np.full(capacity, -np.inf)
        self._dist = np.full(capacity, np.inf)
        self._tx = np.full(capacity, float(prox.tx_power_1m_dbm))

    @property
    def devices(self) -> int:
        """Devices with at least one slot."""
        return len(self._device_slots)

    @property
    def slots(self) -> int:
        """Slots in use."""
        return len(self._slot_of)

    def _grow(self) -> None:
        n = len(self._level)
        self._level = np.concatenate([self._level, np.zeros(n)])
        self._last_t = np.concatenate([self._last_t, np.full(n, -np.inf)])
        self._dist = np.concatenate([self._dist, np.full(n, np.inf)])
        self._tx = np.concatenate([self._tx, np.full(n, float(self.prox.tx_power_1m_dbm))])

    def slot(self, device: str, receiver: str) -> int:
        """The slot of a pair, allocating one the first time."""
        key = (device, receiver)
        s = self._slot_of.get(key)
        if s is not None:
            return s
        if self._free:
            s = self._free.pop()
            self._slot_key[s] = key
        else:
            s = len(self._slot_key)
            if s >= len(self._level):
                self._grow()
            self._slot_key.append(key)
        self._level[s] = 0.0
        self._last_t[s] = -np.inf
        self._dist[s] = np.inf
        self._slot_of[key] = s
        self._device_slots.setdefault(device, []).append(s)
        return s

    def update(
        self,
        slots: list[int],
        t: list[float],
        rssi: list[float],
        tx: list[float],
        per_sample: bool = False,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Feed one tick's samples (arrival order) through the kernels. With ``per_sample``,
        also return each sample's smoothed RSSI and distance (for the estimates file)."""
        if not slots:
            return None
        s = np.asarray(slots, dtype=np.int64)
        tt = np.asarray(t, dtype=np.float64)
        rr = np.asarray(rssi, dtype=np.float64)
        out = np.empty(len(s))
        self._ema(
            s,
            tt,
            rr,
            self.prox.smoothing_tau_s,
            self.prox.gone_after_s,
            self._level,
            self._last_t,
            out,
        )
        touched = np.unique(s)
        self._tx[s] = np.asarray(tx, dtype=np.float64)
        dist = np.empty(len(touched))
        self._distance(self._level[touched], self._tx[touched], self.prox.path_loss_exponent, dist)
        self._dist[touched] = dist
        if not per_sample:
            return None
        sample_tx = np.asarray(tx, dtype=np.float64)
        sample_dist = np.empty(len(s))
        self._distance(out, sample_tx, self.prox.path_loss_exponent, sample_dist)
        return out, sample_dist

    def offset(self, receiver: str) -> float:
        """The configured RSSI offset of a receiver (0 for unknown receivers)."""
        return self._offsets.get(receiver, 0.0)

    def nearest(self, device: str, now: float) -> Estimate | None:
        """The nearest receiver that heard the device within ``gone_after_s``, if any."""
        best = second = np.inf
        best_slot = -1
        horizon = now - self.prox.gone_after_s
        for s in self._device_slots.get(device, ()):
            if self._last_t[s] < horizon:
                continue
            d = self._dist[s]
            if d < best:
                best, second, best_slot = d, best, s
            elif d < second:
                second = d
        if best_slot < 0:
            return None
        key = self._slot_key[best_slot]
        assert key is not None
        return Estimate(key[1], float(best), float(self._level[best_slot]), float(second))

    def last_seen(self, device: str) -> float:
        """Latest sample time of the device on any receiver (``-inf`` if unknown)."""
        slots = self._device_slots.get(device)
        if not slots:
            return -np.inf
        return float(self._last_t[slots].max())

    def forget(self, device: str) -> None:
        """Release every slot of a device."""
        for s in self._device_slots.pop(device, ()):
            key = self._slot_key[s]
            if key is not None:
                del self._slot_of[key]
            self._slot_key[s] = None
            self._free.append(s)
