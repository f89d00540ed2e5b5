"""The device table: one slot per (device, receiver) pair, smoothed once per tick by the kernels.

Per-slot state lives in preallocated numpy arrays that double when full; slots of devices that
have been gone for a while are recycled, so memory follows the devices present, not those ever seen.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from edge_agent.config import (
    CalibrationConfig,
    FilterConfig,
    ProximityConfig,
    ReceiverConfig,
)
from edge_agent.models import (
    Advert,
    AltBeaconFrame,
    DeviceClass,
    EddystoneUIDFrame,
    Frame,
    IBeaconFrame,
)
from edge_agent.pipeline import kernels
from edge_agent.pipeline.identity import DeviceRef

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
    sigma: float = 0.0
    """Uncertainty of the distance: one standard deviation of its natural log (the filter's
    variance and ``shadowing_db``), so the distance is within ``×/÷ e^sigma`` about 2 times
    in 3."""
    runner_up_sigma: float = 0.0
    """The same for the runner-up."""

    @property
    def distance_range_m(self) -> tuple[float, float]:
        """One standard deviation either side of ``distance_m``."""
        k = math.exp(self.sigma)
        return self.distance_m / k, self.distance_m * k


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


EDDYSTONE_0M_TO_1M_DB = 41
_STATES_TX = (IBeaconFrame, AltBeaconFrame)


def tx_power_1m(frame: Frame) -> int | None:
    """RSSI at 1 m as the frame states it (Eddystone states it at 0 m)."""
    if isinstance(frame, _STATES_TX):
        return frame.tx_power
    if isinstance(frame, EddystoneUIDFrame):
        return frame.tx_power - EDDYSTONE_0M_TO_1M_DB
    return None


def stated_tx(ref: DeviceRef, frames: list[Frame]) -> int | None:
    """A device's power at 1 m: configured for it, else the first frame that states it."""
    tx = ref.tx_power_1m
    for frame in frames:
        if tx is not None:
            break
        tx = tx_power_1m(frame)
    return tx


FILTER_KINDS = ("kalman", "ema", "one_euro", "median")
MEDIAN_DEPTH = 32
"""Samples kept per slot for the median filter."""
_WINDOW = ("buf_v", "buf_t", "srt", "head", "count")
"""The median's state arrays (``kernels.new_window``), in the kernel's argument order."""


class DeviceTable:
    """Smoothed RSSI and distance for every (device, receiver) pair.

    Each slot is smoothed by the filter of its device's class (``proximity.filter`` /
    ``proximity.filters``); a tick's samples go through each kernel in one call per kind.
    """

    def __init__(
        self,
        prox: ProximityConfig,
        receivers: list[ReceiverConfig],
        capacity: int = 1024,
        use_jit: bool | None = None,
        calibration: CalibrationConfig | None = None,
    ) -> None:
        self.prox = prox
        self._offsets = {r.id: r.rssi_offset_db for r in receivers}
        self._exponents: dict[str, float] = {}
        for cal in (calibration or CalibrationConfig()).receivers:
            self._offsets[cal.id] = cal.rssi_offset_db
            self._exponents[cal.id] = cal.path_loss_exponent
        if use_jit is None:
            use_jit = os.environ.get("EDGE_AGENT_PURE_PYTHON") != "1"
        k = kernels
        self._ema = k.ema_batch if use_jit else k.ema_batch_py
        self._kalman = k.kalman_batch if use_jit else k.kalman_batch_py
        self._one_euro = k.one_euro_batch if use_jit else k.one_euro_batch_py
        self._median = k.median_batch if use_jit else k.median_batch_py
        self._distance = k.log_distance if use_jit else k.log_distance_py
        self._settle_batch = k.settle_batch if use_jit else k.settle_batch_py
        self._stamp = 0
        self._filters: dict[DeviceClass, tuple[int, FilterConfig]] = {}
        self._params: list[FilterConfig] = []
        self._slot_of: dict[tuple[str, str], int] = {}
        self._slot_key: list[tuple[str, str] | None] = []
        self._device_slots: dict[str, list[int]] = {}
        self._free: list[int] = []
        self.receivers_heard: set[str] = set()
        """Every receiver a slot was ever made for."""
        self._arrays: dict[str, np.ndarray] = {}
        self._alloc(capacity)
        self._pending: tuple[list[int], list[float], list[float], list[float]] = ([], [], [], [])

    _SPEC: tuple[tuple[str, float, type], ...] = (
        ("level", 0.0, np.float64),
        ("dist", np.inf, np.float64),
        ("tx", 0.0, np.float64),
        ("filter", 0, np.int64),
        ("n", 2.0, np.float64),
        ("dist_t", -np.inf, np.float64),
        ("mark", 0, np.int64),
    )

    def _alloc(self, n: int) -> None:
        old = self._arrays
        new: dict[str, np.ndarray] = {
            name: np.full(n, fill, dtype=dtype) for name, fill, dtype in self._SPEC
        }
        new["state"] = kernels.new_state(n)
        if any(p.kind == "median" for p in self._params) or "buf_v" in old:
            new.update(zip(_WINDOW, kernels.new_window(n, MEDIAN_DEPTH), strict=True))
        for name, a in new.items():
            if name in old:
                a[: len(old[name])] = old[name]
        self._arrays = new
        self._state = new["state"]
        self._level = new["level"]
        self._last_t = self._state[:, kernels.LAST_T]
        self._dist = new["dist"]
        self._tx = new["tx"]

    def _window(self) -> tuple[kernels.F64, kernels.F64, kernels.F64, kernels.I64, kernels.I64]:
        """The median's state arrays, as ``kernels.new_window`` made them."""
        buf_v, buf_t, srt, head, count = (self._arrays[name] for name in _WINDOW)
        return buf_v, buf_t, srt, head, count

    @property
    def devices(self) -> int:
        """Devices with at least one slot."""
        return len(self._device_slots)

    @property
    def slots(self) -> int:
        """Slots in use."""
        return len(self._slot_of)

    def _filter_index(self, kind: DeviceClass) -> int:
        found = self._filters.get(kind)
        if found is None:
            params = self.prox.filter_for(kind)
            if params in self._params:
                index = self._params.index(params)
            else:
                index = len(self._params)
                self._params.append(params)
                if params.kind == "median" and "buf_v" not in self._arrays:
                    self._alloc(len(self._level))
            found = self._filters[kind] = (index, params)
        return found[0]

    def slot(self, device: str, receiver: str, kind: DeviceClass = DeviceClass.UNKNOWN) -> int:
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
                self._alloc(2 * len(self._level))
            self._slot_key.append(key)
        index = self._filter_index(kind)  # may reallocate (the median's buffers)
        a = self._arrays
        for name, fill, _ in self._SPEC:
            a[name][s] = fill
        kernels.clear_state(self._state, s)
        if "buf_v" in a:
            kernels.clear_window(self._window(), s)
        a["tx"][s] = float(self.prox.tx_power_1m_dbm)
        a["n"][s] = self._exponents.get(receiver, self.prox.path_loss_exponent)
        a["filter"][s] = index
        self._slot_of[key] = s
        self._device_slots.setdefault(device, []).append(s)
        self.receivers_heard.add(receiver)
        return s

    def add(self, ref: DeviceRef, advert: Advert, tx_power_1m: int | None) -> int:
        """One advert as a sample of the tick: its (device, receiver) slot, its time, its RSSI
        after the receiver's offset, and the device's power at 1 m (``None``: the configured
        default). Returns the sample's index in the tick (``flush`` runs them)."""
        slots, ts, rssis, txs = self._pending
        slots.append(self.slot(ref.id, advert.receiver, ref.kind))
        ts.append(advert.t)
        rssis.append(advert.rssi + self.offset(advert.receiver))
        txs.append(self.prox.tx_power_1m_dbm if tx_power_1m is None else tx_power_1m)
        return len(slots) - 1

    def flush(self, per_sample: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
        """Run the tick's samples (``add``) through the kernels: see ``update``."""
        pending, self._pending = self._pending, ([], [], [], [])
        return self.update(*pending, per_sample=per_sample)

    def update(
        self,
        slots: list[int],
        t: list[float],
        rssi: list[float],
        tx: list[float],
        per_sample: bool = False,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Feed one tick's samples (arrival order) through the kernels, one call per filter in
        use. With ``per_sample``, also return each sample's smoothed RSSI and distance (for the
        estimates file)."""
        if not slots:
            return None
        s = np.asarray(slots, dtype=np.int64)
        tt = np.asarray(t, dtype=np.float64)
        rr = np.asarray(rssi, dtype=np.float64)
        out = np.empty(len(s))
        a = self._arrays
        which = a["filter"][s]
        for index, params in enumerate(self._params):
            sub: slice | np.ndarray
            if len(self._params) == 1:
                sub = slice(None)
            else:
                sub = np.flatnonzero(which == index)
                if not sub.size:
                    continue
            self._run(params, s[sub], tt[sub], rr[sub], out, sub)
        self._settle(s, out, np.asarray(tx, dtype=np.float64))
        if not per_sample:
            return None
        sample_tx = np.asarray(tx, dtype=np.float64)
        sample_dist = np.empty(len(s))
        self._distance(out, sample_tx, a["n"][s], sample_dist)
        return out, sample_dist

    def set_levels(
        self, slots: list[int], t: list[float], levels: list[float], tx: list[float]
    ) -> None:
        """Smoothed RSSI computed elsewhere (another filter, scored against ours): the
        distance model, its uncertainty and the speed gate as for ``update``."""
        if not slots:
            return
        s = np.asarray(slots, dtype=np.int64)
        np.maximum.at(self._last_t, s, np.asarray(t, dtype=np.float64))
        self._settle(s, np.asarray(levels, dtype=np.float64), np.asarray(tx, dtype=np.float64))

    def _settle(self, s: np.ndarray, levels: np.ndarray, tx: np.ndarray) -> None:
        """Each touched slot's level and power from its last sample, then its distance, with
        the speed gate: a distance moves at most ``max_speed_mps`` since the previous one
        (unless that one is older than ``gone_after_s``)."""
        a, prox = self._arrays, self.prox
        self._stamp += 1
        self._settle_batch(
            s, levels, tx, self._level, self._tx, a["n"], self._dist, a["dist_t"],
            self._last_t, a["mark"], self._stamp, prox.max_speed_mps, prox.gone_after_s,
        )  # fmt: skip

    def _run(
        self,
        p: FilterConfig,
        s: np.ndarray,
        t: np.ndarray,
        r: np.ndarray,
        out: np.ndarray,
        sub: slice | np.ndarray,
    ) -> None:
        res = np.empty(len(s))
        reset = self.prox.gone_after_s
        if p.kind == "kalman":
            self._kalman(s, t, r, p.q, p.r, p.gate, p.trend_tau_s, reset, self._state, res)
        elif p.kind == "ema":
            self._ema(s, t, r, p.tau_s, reset, self._state, res)
        elif p.kind == "one_euro":
            self._one_euro(s, t, r, p.min_cutoff_hz, p.beta, p.d_cutoff_hz, reset, self._state, res)
        else:
            self._median(s, t, r, p.window_s, *self._window(), res)
            np.maximum.at(self._last_t, s, t)
        out[sub] = res

    def offset(self, receiver: str) -> float:
        """The configured RSSI offset of a receiver (0 for unknown receivers)."""
        return self._offsets.get(receiver, 0.0)

    def sigma(self, slot: int) -> float:
        """Uncertainty of a slot's distance: standard deviation of its natural log."""
        a = self._arrays
        f = self._params[int(a["filter"][slot])] if self._params else None
        var = float(self._state[slot, kernels.P00]) if f is not None and f.kind == "kalman" else 0.0
        db = math.sqrt(max(var, 0.0) + self.prox.shadowing_db**2)
        return db * math.log(10.0) / (10.0 * float(a["n"][slot]))

    def nearest(
        self, device: str, now: float, prefer: str | None = None, margin_db: float = 0.0
    ) -> Estimate | None:
        """The nearest receiver that heard the device within ``gone_after_s``, if any. With
        ``prefer`` (the receiver the device's zone was decided on), that receiver stays the
        answer while no other is closer by more than ``margin_db`` of path loss."""
        best = second = np.inf
        best_slot = second_slot = kept = -1
        horizon = now - self.prox.gone_after_s
        for s in self._device_slots.get(device, ()):
            if self._last_t[s] < horizon:
                continue
            key = self._slot_key[s]
            if prefer is not None and key is not None and key[1] == prefer:
                kept = s
            d = self._dist[s]
            if d < best:
                best, second, best_slot, second_slot = d, best, s, best_slot
            elif d < second:
                second, second_slot = d, s
        if best_slot < 0:
            return None
        if kept >= 0 and kept != best_slot:
            n = float(self._arrays["n"][kept])
            # margin_db of path loss is a factor of distance(0, margin_db, n) in distance
            if self._dist[kept] <= best * kernels.distance(0.0, margin_db, n):
                best_slot, second_slot = kept, best_slot
                best, second = float(self._dist[kept]), best
        key = self._slot_key[best_slot]
        assert key is not None
        return Estimate(
            key[1],
            float(best),
            float(self._level[best_slot]),
            float(second),
            self.sigma(best_slot),
            self.sigma(second_slot) if second_slot >= 0 else 0.0,
        )

    def expires_at(self, device: str, now: float) -> float:
        """When the next of the device's receivers heard within ``gone_after_s`` stops counting
        for ``nearest`` (``inf``: none left)."""
        gone = self.prox.gone_after_s
        horizon = now - gone
        last = self._last_t
        ts = [last[s] for s in self._device_slots.get(device, ()) if last[s] >= horizon]
        return float(min(ts)) + gone if ts else math.inf

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
