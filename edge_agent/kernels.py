"""numba kernels for RSSI smoothing and distance, each with a pure-Python twin beside it.

Kernels take numpy arrays and scalars only, are called once per tick over the whole batch, and
keep per-slot state in preallocated arrays owned by the caller (``tracking.DeviceTable``).
Tests compare every kernel with its twin, and pass with ``NUMBA_DISABLE_JIT=1``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@njit(cache=True, nogil=True)
def ema_batch(
    slots: I64, t: F64, rssi: F64, tau: float, reset_after: float, level: F64, last_t: F64, out: F64
) -> None:
    """Time-aware exponential smoothing of RSSI, in arrival order.

    ``alpha = 1 - exp(-dt / tau)`` so the filter forgets at the same rate whatever the advertising
    interval; a slot unheard for ``reset_after`` seconds (or never) restarts at the new sample.
    ``level`` and ``last_t`` are per-slot state, updated in place; ``out[i]`` is the level after
    sample ``i``.
    """
    for i in range(slots.shape[0]):
        s = slots[i]
        dt = t[i] - last_t[s]
        if dt > reset_after or dt != dt or last_t[s] == -np.inf:
            level[s] = rssi[i]
            last_t[s] = t[i]
        else:
            if dt < 0.0:
                dt = 0.0
            alpha = 1.0 - math.exp(-dt / tau)
            level[s] += alpha * (rssi[i] - level[s])
            if t[i] > last_t[s]:
                last_t[s] = t[i]
        out[i] = level[s]


def ema_batch_py(
    slots: I64, t: F64, rssi: F64, tau: float, reset_after: float, level: F64, last_t: F64, out: F64
) -> None:
    """Pure-Python twin of ``ema_batch``."""
    for i in range(len(slots)):
        s = int(slots[i])
        dt = float(t[i] - last_t[s])
        if dt > reset_after or math.isnan(dt) or last_t[s] == -math.inf:
            level[s] = rssi[i]
            last_t[s] = t[i]
        else:
            dt = max(dt, 0.0)
            alpha = 1.0 - math.exp(-dt / tau)
            level[s] += alpha * (rssi[i] - level[s])
            last_t[s] = max(last_t[s], t[i])
        out[i] = level[s]


@njit(cache=True, nogil=True)
def log_distance(rssi: F64, tx_power_1m: F64, exponent: F64, out: F64) -> None:
    """Distance in metres from the log-distance model ``rssi = P1m - 10 n log10(d)``, with a
    path-loss exponent ``n`` per element (each receiver has its own)."""
    for i in range(rssi.shape[0]):
        out[i] = 10.0 ** ((tx_power_1m[i] - rssi[i]) / (10.0 * exponent[i]))


def log_distance_py(rssi: F64, tx_power_1m: F64, exponent: F64, out: F64) -> None:
    """Pure-Python twin of ``log_distance``."""
    for i in range(len(rssi)):
        out[i] = 10.0 ** ((float(tx_power_1m[i]) - float(rssi[i])) / (10.0 * float(exponent[i])))


MIN_RSSI = -127.0
"""Below this an RSSI is not a measurement (BlueZ reports -127 for "unknown")."""


@njit(cache=True, nogil=True)
def kalman_batch(
    slots: I64,
    t: F64,
    rssi: F64,
    q: float,
    r: float,
    gate: float,
    reset_after: float,
    x: F64,
    v: F64,
    p00: F64,
    p01: F64,
    p11: F64,
    last_t: F64,
    misses: I64,
    out: F64,
) -> None:
    """Time-aware Kalman filter on RSSI with a level and a trend, in arrival order.

    Prediction over ``dt`` adds process noise of a constant-velocity model with white
    acceleration of spectral density ``q`` (dB²/s³), so the filter trusts its state less the
    longer a slot has been silent. ``r`` is the measurement noise (dB²). A sample whose
    normalised innovation exceeds ``gate`` standard deviations is rejected (its output is the
    prediction); three rejections in a row mean the signal really moved, and the filter restarts
    at the sample. Impossible values (positive, or below ``MIN_RSSI``) are rejected outright.
    A slot unheard for ``reset_after`` seconds (or never) restarts at the sample.
    """
    for i in range(slots.shape[0]):
        s = slots[i]
        z = rssi[i]
        dt = t[i] - last_t[s]
        fresh = last_t[s] == -np.inf or dt > reset_after or dt != dt
        if z > 0.0 or z < MIN_RSSI:
            out[i] = np.nan if fresh else x[s]
            continue
        if fresh:
            x[s] = z
            v[s] = 0.0
            p00[s] = r
            p01[s] = 0.0
            p11[s] = q
            last_t[s] = t[i]
            misses[s] = 0
            out[i] = z
            continue
        if dt < 0.0:
            dt = 0.0
        # predict
        a00 = p00[s] + dt * (2.0 * p01[s] + dt * p11[s]) + q * dt * dt * dt / 3.0
        a01 = p01[s] + dt * p11[s] + q * dt * dt / 2.0
        a11 = p11[s] + q * dt
        xp = x[s] + dt * v[s]
        y = z - xp
        sv = a00 + r
        if y * y > gate * gate * sv:
            misses[s] += 1
            if misses[s] >= 3:
                x[s] = z
                v[s] = 0.0
                p00[s] = r
                p01[s] = 0.0
                p11[s] = q
                misses[s] = 0
                out[i] = z
            else:
                out[i] = xp
            if t[i] > last_t[s]:
                last_t[s] = t[i]
            continue
        misses[s] = 0
        k0 = a00 / sv
        k1 = a01 / sv
        x[s] = xp + k0 * y
        v[s] = v[s] + k1 * y
        p00[s] = (1.0 - k0) * a00
        p01[s] = (1.0 - k0) * a01
        p11[s] = a11 - k1 * a01
        if t[i] > last_t[s]:
            last_t[s] = t[i]
        out[i] = x[s]


def kalman_batch_py(
    slots: I64,
    t: F64,
    rssi: F64,
    q: float,
    r: float,
    gate: float,
    reset_after: float,
    x: F64,
    v: F64,
    p00: F64,
    p01: F64,
    p11: F64,
    last_t: F64,
    misses: I64,
    out: F64,
) -> None:
    """Pure-Python twin of ``kalman_batch``."""
    for i in range(len(slots)):
        s = int(slots[i])
        z = float(rssi[i])
        dt = float(t[i] - last_t[s])
        fresh = last_t[s] == -math.inf or dt > reset_after or math.isnan(dt)
        if z > 0.0 or z < MIN_RSSI:
            out[i] = math.nan if fresh else x[s]
            continue
        if fresh:
            x[s], v[s], p00[s], p01[s], p11[s] = z, 0.0, r, 0.0, q
            last_t[s] = t[i]
            misses[s] = 0
            out[i] = z
            continue
        dt = max(dt, 0.0)
        a00 = p00[s] + dt * (2.0 * p01[s] + dt * p11[s]) + q * dt**3 / 3.0
        a01 = p01[s] + dt * p11[s] + q * dt**2 / 2.0
        a11 = p11[s] + q * dt
        xp = x[s] + dt * v[s]
        y = z - xp
        sv = a00 + r
        if y * y > gate * gate * sv:
            misses[s] += 1
            if misses[s] >= 3:
                x[s], v[s], p00[s], p01[s], p11[s] = z, 0.0, r, 0.0, q
                misses[s] = 0
                out[i] = z
            else:
                out[i] = xp
            last_t[s] = max(last_t[s], t[i])
            continue
        misses[s] = 0
        k0, k1 = a00 / sv, a01 / sv
        x[s] = xp + k0 * y
        v[s] = v[s] + k1 * y
        p00[s] = (1.0 - k0) * a00
        p01[s] = (1.0 - k0) * a01
        p11[s] = a11 - k1 * a01
        last_t[s] = max(last_t[s], t[i])
        out[i] = x[s]


@njit(cache=True, nogil=True)
def one_euro_batch(
    slots: I64,
    t: F64,
    rssi: F64,
    min_cutoff: float,
    beta: float,
    d_cutoff: float,
    reset_after: float,
    x: F64,
    dx: F64,
    last_t: F64,
    out: F64,
) -> None:
    """1-Euro filter (Casiez et al. 2012) on RSSI, in arrival order: a low-pass whose cutoff
    rises with the signal's speed (``min_cutoff + beta * |dx/dt|``, Hz)."""
    for i in range(slots.shape[0]):
        s = slots[i]
        dt = t[i] - last_t[s]
        if last_t[s] == -np.inf or dt > reset_after or dt != dt:
            x[s] = rssi[i]
            dx[s] = 0.0
            last_t[s] = t[i]
            out[i] = rssi[i]
            continue
        if dt <= 0.0:
            out[i] = x[s]
            continue
        ad = 1.0 / (1.0 + 1.0 / (2.0 * math.pi * d_cutoff * dt))
        dx[s] += ad * ((rssi[i] - x[s]) / dt - dx[s])
        cutoff = min_cutoff + beta * abs(dx[s])
        a = 1.0 / (1.0 + 1.0 / (2.0 * math.pi * cutoff * dt))
        x[s] += a * (rssi[i] - x[s])
        last_t[s] = t[i]
        out[i] = x[s]


def one_euro_batch_py(
    slots: I64,
    t: F64,
    rssi: F64,
    min_cutoff: float,
    beta: float,
    d_cutoff: float,
    reset_after: float,
    x: F64,
    dx: F64,
    last_t: F64,
    out: F64,
) -> None:
    """Pure-Python twin of ``one_euro_batch``."""
    for i in range(len(slots)):
        s = int(slots[i])
        dt = float(t[i] - last_t[s])
        if last_t[s] == -math.inf or dt > reset_after or math.isnan(dt):
            x[s], dx[s], last_t[s] = rssi[i], 0.0, t[i]
            out[i] = rssi[i]
            continue
        if dt <= 0.0:
            out[i] = x[s]
            continue
        ad = 1.0 / (1.0 + 1.0 / (2.0 * math.pi * d_cutoff * dt))
        dx[s] += ad * ((rssi[i] - x[s]) / dt - dx[s])
        cutoff = min_cutoff + beta * abs(dx[s])
        a = 1.0 / (1.0 + 1.0 / (2.0 * math.pi * cutoff * dt))
        x[s] += a * (rssi[i] - x[s])
        last_t[s] = t[i]
        out[i] = x[s]


@njit(cache=True, nogil=True)
def median_batch(
    slots: I64, t: F64, rssi: F64, window: float, buf_v: F64, buf_t: F64, head: I64, out: F64
) -> None:
    """Median of each slot's samples of the last ``window`` seconds (at most ``buf_v.shape[1]``
    of them, in a per-slot ring buffer), in arrival order."""
    k = buf_v.shape[1]
    tmp = np.empty(k)
    for i in range(slots.shape[0]):
        s = slots[i]
        h = head[s] % k
        buf_v[s, h] = rssi[i]
        buf_t[s, h] = t[i]
        head[s] += 1
        n = 0
        horizon = t[i] - window
        for j in range(k):
            if buf_t[s, j] >= horizon:
                tmp[n] = buf_v[s, j]
                n += 1
        out[i] = np.median(tmp[:n])


def median_batch_py(
    slots: I64, t: F64, rssi: F64, window: float, buf_v: F64, buf_t: F64, head: I64, out: F64
) -> None:
    """Pure-Python twin of ``median_batch``."""
    k = buf_v.shape[1]
    for i in range(len(slots)):
        s = int(slots[i])
        h = int(head[s]) % k
        buf_v[s, h] = rssi[i]
        buf_t[s, h] = t[i]
        head[s] += 1
        horizon = t[i] - window
        values = sorted(float(buf_v[s, j]) for j in range(k) if buf_t[s, j] >= horizon)
        m = len(values)
        out[i] = values[m // 2] if m % 2 else (values[m // 2 - 1] + values[m // 2]) / 2.0


def warm_up() -> None:
    """Compile (or load from the on-disk cache) every kernel before the first tick."""
    one = np.zeros(1)
    ema_batch(np.zeros(1, np.int64), one, one, 1.0, 1.0, np.zeros(1), np.full(1, -np.inf), one)
    log_distance(one, one, np.full(1, 2.0), np.zeros(1))
    i1 = np.zeros(1, np.int64)
    kalman_batch(
        i1,
        one,
        one,
        1.0,
        1.0,
        3.0,
        1.0,
        np.zeros(1),
        np.zeros(1),
        np.zeros(1),
        np.zeros(1),
        np.zeros(1),
        np.full(1, -np.inf),
        np.zeros(1, np.int64),
        np.zeros(1),
    )
    one_euro_batch(
        i1, one, one, 1.0, 0.0, 1.0, 1.0, np.zeros(1), np.zeros(1), np.full(1, -np.inf), np.zeros(1)
    )
    median_batch(
        i1,
        one,
        one,
        1.0,
        np.zeros((1, 4)),
        np.full((1, 4), -np.inf),
        np.zeros(1, np.int64),
        np.zeros(1),
    )
