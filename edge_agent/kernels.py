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
def log_distance(rssi: F64, tx_power_1m: F64, exponent: float, out: F64) -> None:
    """Distance in metres from the log-distance model ``rssi = P1m - 10 n log10(d)``."""
    inv = 1.0 / (10.0 * exponent)
    for i in range(rssi.shape[0]):
        out[i] = 10.0 ** ((tx_power_1m[i] - rssi[i]) * inv)


def log_distance_py(rssi: F64, tx_power_1m: F64, exponent: float, out: F64) -> None:
    """Pure-Python twin of ``log_distance``."""
    inv = 1.0 / (10.0 * exponent)
    for i in range(len(rssi)):
        out[i] = 10.0 ** ((float(tx_power_1m[i]) - float(rssi[i])) * inv)


def warm_up() -> None:
    """Compile (or load from the on-disk cache) every kernel before the first tick."""
    one = np.zeros(1)
    ema_batch(np.zeros(1, np.int64), one, one, 1.0, 1.0, np.zeros(1), np.full(1, -np.inf), one)
    log_distance(one, one, 2.0, np.zeros(1))
