"""numba kernels for RSSI smoothing and distance, each with a pure-Python twin beside it.

Kernels take numpy arrays and scalars only, are called once per tick over the whole batch, and
keep per-slot state in preallocated arrays owned by the caller (``tracking.DeviceTable``).
Tests compare every kernel with its twin, and pass with ``NUMBA_DISABLE_JIT=1``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

AHEAD = 8
"""How many samples ahead the kernels prefetch a slot's state row. A batch visits slots in
random order; with 10 000 slots the state outgrows a core's L2 cache, and waiting for each row
in turn halves the throughput."""


def prefetch_row(state: F64, row: int, col: int = 0) -> None:
    """Hint the CPU to fetch the cache line of ``state[row, col]``. A no-op outside compiled
    code."""


@intrinsic
def _prefetch(typingctx: Any, state: Any, row: Any, col: Any) -> Any:
    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        aryty = sig.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer2(  # type: ignore[no-untyped-call]
            context,
            builder,
            data=ary.data,
            shape=cgutils.unpack_tuple(builder, ary.shape),  # type: ignore[no-untyped-call]
            strides=cgutils.unpack_tuple(builder, ary.strides),  # type: ignore[no-untyped-call]
            layout=aryty.layout,
            inds=[args[1], args[2]],
        )
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(  # type: ignore[no-untyped-call]
            builder.module, fnty, "llvm.prefetch.p0i8"
        )
        # read, keep in all cache levels, data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(state, row, col), codegen


@overload(prefetch_row)
def _prefetch_row_jit(state: Any, row: Any, col: Any = 0) -> Any:
    def impl(state: Any, row: Any, col: Any = 0) -> None:
        _prefetch(state, row, col)  # type: ignore[call-arg]

    return impl


STATE_WIDTH = 8
"""Columns of a slot's filter state. One row per slot, 64 bytes, so a sample touches one cache
line of state whatever the filter (the batch arrives in random slot order)."""
X, V, P00, P01, P11, LAST_T, MISSES = range(7)
"""State columns: the level (dBm), its trend (dB/s; the 1-Euro's derivative), the Kalman
covariance, the time of the slot's last sample (``-inf`` when never heard) and the Kalman's
count of gated samples in a row. The EMA uses ``X`` and ``LAST_T``."""

FASTMATH = {"contract", "arcp", "afn", "reassoc", "nsz"}
"""LLVM fast-math flags for the kernels, without ``nnan``/``ninf``: NaN and infinity keep their
meaning (a never-heard slot's ``-inf``, a NaN time)."""


def new_state(n: int) -> F64:
    """Filter state for ``n`` slots, every slot unheard, each row starting on a cache line."""
    size = n * STATE_WIDTH
    buf = np.zeros(size + STATE_WIDTH)
    skip = (-buf.ctypes.data % 64) // 8
    state: F64 = buf[skip : skip + size].reshape(n, STATE_WIDTH)
    clear_state(state, slice(None))
    return state


def clear_state(state: F64, rows: int | slice) -> None:
    """Make ``rows`` unheard: the next sample restarts their filter."""
    state[rows] = 0.0
    state[rows, LAST_T] = -np.inf


_EXP_STEPS = 32
_EXP_TABLE = np.exp2(-np.arange(64 * _EXP_STEPS) / _EXP_STEPS)
"""``2^(-k/32)``: ``exp(-y)`` is a table entry times a short polynomial."""
_EXP_STEP = math.log(2.0) / _EXP_STEPS
_EXP_LIMIT = len(_EXP_TABLE) * _EXP_STEP
"""Beyond this ``exp(-y)`` is below 1e-19, taken as 0."""


@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def exp_neg(y: float) -> float:
    """``exp(-y)`` for ``y >= 0``, within 1e-14 of ``math.exp`` at a third of its cost (the
    EMA's one transcendental per sample): ``2^(-k/32)`` from a table times the Taylor series
    of the remainder, which is under ``ln 2 / 32``."""
    if not y < _EXP_LIMIT:  # also NaN
        return 0.0
    k = int(y * (1.0 / _EXP_STEP))
    r = k * _EXP_STEP - y
    p = 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return float(p * _EXP_TABLE[k])


@njit(cache=True, nogil=True, inline="always")
def _restarts(last: float, dt: float, reset_after: float) -> bool:
    """Whether a sample restarts its slot's filter: never heard, silent longer than
    ``reset_after``, or a NaN time."""
    return last == -np.inf or not dt <= reset_after


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def ema_batch(
    slots: I64, t: F64, rssi: F64, tau: float, reset_after: float, state: F64, out: F64
) -> None:
    """Time-aware exponential smoothing of RSSI, in arrival order.

    ``alpha = 1 - exp(-dt / tau)`` so the filter forgets at the same rate whatever the advertising
    interval; a slot unheard for ``reset_after`` seconds (or never) restarts at the new sample.
    ``state`` rows (``new_state``) are updated in place; ``out[i]`` is the level after sample ``i``.
    """
    rate = 1.0 / tau
    n = slots.shape[0]
    for i in range(n):
        if i + AHEAD < n:
            prefetch_row(state, slots[i + AHEAD])
        s = slots[i]
        ti = t[i]
        last = state[s, LAST_T]
        dt = ti - last
        if _restarts(last, dt, reset_after):
            level = rssi[i]
            state[s, LAST_T] = ti
        else:
            if dt < 0.0:
                dt = 0.0
            level = state[s, X]
            level += (1.0 - exp_neg(dt * rate)) * (rssi[i] - level)
            if ti > last:
                state[s, LAST_T] = ti
        state[s, X] = level
        out[i] = level


def ema_batch_py(
    slots: I64, t: F64, rssi: F64, tau: float, reset_after: float, state: F64, out: F64
) -> None:
    """Pure-Python twin of ``ema_batch``."""
    for i in range(len(slots)):
        s = int(slots[i])
        dt = float(t[i] - state[s, LAST_T])
        if state[s, LAST_T] == -math.inf or dt > reset_after or math.isnan(dt):
            state[s, X] = rssi[i]
            state[s, LAST_T] = t[i]
        else:
            dt = max(dt, 0.0)
            alpha = 1.0 - math.exp(-dt / tau)
            state[s, X] += alpha * (rssi[i] - state[s, X])
            state[s, LAST_T] = max(state[s, LAST_T], t[i])
        out[i] = state[s, X]


def distance(rssi: Any, tx_power_1m: Any, exponent: Any) -> Any:
    """The one formula for distance: metres from the log-distance model
    ``rssi = P1m - 10 n log10(d)``. Scalars or numpy arrays (element-wise)."""
    return 10.0 ** ((tx_power_1m - rssi) / (10.0 * exponent))


_distance = njit(cache=True, nogil=True, inline="always")(distance)


@njit(cache=True, nogil=True)
def log_distance(rssi: F64, tx_power_1m: F64, exponent: F64, out: F64) -> None:
    """``distance`` of every element, with a path-loss exponent ``n`` per element (each
    receiver has its own)."""
    for i in range(rssi.shape[0]):
        out[i] = _distance(rssi[i], tx_power_1m[i], exponent[i])


def log_distance_py(rssi: F64, tx_power_1m: F64, exponent: F64, out: F64) -> None:
    """Pure-Python twin of ``log_distance``."""
    for i in range(len(rssi)):
        out[i] = 10.0 ** ((float(tx_power_1m[i]) - float(rssi[i])) / (10.0 * float(exponent[i])))


@njit(cache=True, nogil=True)
def settle_batch(
    slots: I64, out: F64, tx: F64, level: F64, slot_tx: F64, exponent: F64, dist: F64,
    dist_t: F64, last_t: F64, mark: I64, stamp: int, max_speed: float, stale_after: float,
) -> None:  # fmt: skip
    """After a tick's samples: each slot's level and power at 1 m are its last sample's
    (``out``, ``tx``), then each touched slot (``mark`` set to ``stamp`` once) gets its
    distance, moved at most ``max_speed`` since the previous one unless that one is stale."""
    for i in range(slots.shape[0]):
        level[slots[i]] = out[i]
        slot_tx[slots[i]] = tx[i]
    for i in range(slots.shape[0]):
        k = slots[i]
        if mark[k] == stamp:
            continue
        mark[k] = stamp
        d = _distance(level[k], slot_tx[k], exponent[k])
        prev, t = dist[k], last_t[k]
        dt = t - dist_t[k]
        if np.isfinite(prev) and np.isfinite(d) and dt <= stale_after:
            d = min(max(d, prev - max_speed * dt), prev + max_speed * dt)
        dist[k] = d
        dist_t[k] = t


def settle_batch_py(
    slots: I64, out: F64, tx: F64, level: F64, slot_tx: F64, exponent: F64, dist: F64,
    dist_t: F64, last_t: F64, mark: I64, stamp: int, max_speed: float, stale_after: float,
) -> None:  # fmt: skip
    """Pure-Python twin of ``settle_batch``, with numpy's whole-array operations."""
    level[slots] = out  # repeated slots: the last assignment stays
    slot_tx[slots] = tx
    touched = np.unique(slots)
    mark[touched] = stamp
    d = distance(level[touched], slot_tx[touched], exponent[touched])
    prev, t = dist[touched], last_t[touched]
    dt = t - dist_t[touched]
    gated = np.isfinite(prev) & np.isfinite(d) & (dt <= stale_after)
    step = max_speed * dt[gated]
    d[gated] = np.clip(d[gated], prev[gated] - step, prev[gated] + step)
    dist[touched] = d
    dist_t[touched] = t


MIN_RSSI = -127.0
"""Below this an RSSI is not a measurement (BlueZ reports -127 for "unknown")."""
MAX_RSSI = 0.0
"""An RSSI is below this: 0 is what a stack reports when it has none, and nothing is received
stronger than a milliwatt."""


def valid_rssi(rssi: Any) -> Any:
    """The one rule for a usable RSSI: ``MIN_RSSI <= rssi < MAX_RSSI`` (NaN is not). Scalars or
    numpy arrays (element-wise)."""
    return (rssi >= MIN_RSSI) & (rssi < MAX_RSSI)


_valid_rssi = njit(cache=True, nogil=True, inline="always")(valid_rssi)


@njit(cache=True, nogil=True, inline="always")
def _kalman_start(state: F64, s: int, z: float, q: float, r: float) -> None:
    """(Re)start slot ``s``'s Kalman filter at the sample ``z``: no trend, the level as
    uncertain as one measurement, no gated samples."""
    state[s, X] = z
    state[s, V] = 0.0
    state[s, P00] = r
    state[s, P01] = 0.0
    state[s, P11] = q
    state[s, MISSES] = 0.0


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def kalman_batch(
    slots: I64, t: F64, rssi: F64, q: float, r: float, gate: float, trend_tau: float,
    reset_after: float, state: F64, out: F64,
) -> None:  # fmt: skip
    """Time-aware Kalman filter on RSSI with a level and a damped trend, in arrival order.

    The trend decays with time constant ``trend_tau`` (seconds; ``inf``: a constant trend):
    over ``dt`` it is multiplied by ``phi = exp(-dt / trend_tau)`` and moves the level by
    ``trend_tau (1 - phi)`` times itself, so a shopper who stops is not extrapolated onwards.
    Prediction adds the process noise of white acceleration of spectral density ``q``
    (dB²/s³), so the filter trusts its state less the longer a slot has been silent. ``r`` is
    the measurement noise (dB²). A sample whose
    normalised innovation exceeds ``gate`` standard deviations is rejected (its output is the
    prediction); three rejections in a row mean the signal really moved, and the filter restarts
    at the sample. Impossible values (not ``valid_rssi``) are rejected outright.
    A slot unheard for ``reset_after`` seconds (or never) restarts at the sample.
    """
    gate2 = gate * gate
    q2 = q / 2.0
    q3 = q / 3.0
    damping = 1.0 / trend_tau  # 0 for a constant trend
    n = slots.shape[0]
    for i in range(n):
        if i + AHEAD < n:
            prefetch_row(state, slots[i + AHEAD])
        s = slots[i]
        z = rssi[i]
        ti = t[i]
        last = state[s, LAST_T]
        dt = ti - last
        fresh = _restarts(last, dt, reset_after)
        if not _valid_rssi(z):
            out[i] = np.nan if fresh else state[s, X]
            continue
        if fresh:
            _kalman_start(state, s, z, q, r)
            state[s, LAST_T] = ti
            out[i] = z
            continue
        if dt < 0.0:
            dt = 0.0
        if ti > last:
            state[s, LAST_T] = ti
        # predict: F = [[1, b], [0, phi]], P = F P F' + Q
        phi = 1.0
        b = dt
        if damping > 0.0:
            phi = exp_neg(dt * damping)
            b = (1.0 - phi) * trend_tau
        p01 = state[s, P01]
        p11 = state[s, P11]
        a00 = state[s, P00] + b * (2.0 * p01 + b * p11) + q3 * dt * dt * dt
        a01 = phi * (p01 + b * p11) + q2 * dt * dt
        a11 = phi * phi * p11 + q * dt
        xp = state[s, X] + b * state[s, V]
        vp = phi * state[s, V]
        y = z - xp
        sv = a00 + r
        if y * y > gate2 * sv:
            misses = state[s, MISSES] + 1.0
            if misses >= 3.0:
                _kalman_start(state, s, z, q, r)
                out[i] = z
            else:  # the prediction stands: the state moves to this sample's time
                state[s, MISSES] = misses
                state[s, X] = xp
                state[s, V] = vp
                state[s, P00] = a00
                state[s, P01] = a01
                state[s, P11] = a11
                out[i] = xp
            continue
        # update
        state[s, MISSES] = 0.0
        inv = 1.0 / sv
        k0 = a00 * inv
        k1 = a01 * inv
        x = xp + k0 * y
        state[s, X] = x
        state[s, V] = vp + k1 * y
        state[s, P00] = (1.0 - k0) * a00
        state[s, P01] = (1.0 - k0) * a01
        state[s, P11] = a11 - k1 * a01
        out[i] = x


def kalman_batch_py(
    slots: I64, t: F64, rssi: F64, q: float, r: float, gate: float, trend_tau: float,
    reset_after: float, state: F64, out: F64,
) -> None:  # fmt: skip
    """Pure-Python twin of ``kalman_batch``."""
    for i in range(len(slots)):
        row = state[int(slots[i])]
        z = float(rssi[i])
        dt = float(t[i] - row[LAST_T])
        fresh = row[LAST_T] == -math.inf or dt > reset_after or math.isnan(dt)
        if not valid_rssi(z):
            out[i] = math.nan if fresh else row[X]
            continue
        if fresh:
            row[[X, V, P00, P01, P11, LAST_T, MISSES]] = z, 0.0, r, 0.0, q, t[i], 0.0
            out[i] = z
            continue
        dt = max(dt, 0.0)
        row[LAST_T] = max(row[LAST_T], t[i])
        phi = math.exp(-dt / trend_tau)
        b = (1.0 - phi) * trend_tau if math.isfinite(trend_tau) else dt
        a00 = row[P00] + b * (2.0 * row[P01] + b * row[P11]) + q * dt**3 / 3.0
        a01 = phi * (row[P01] + b * row[P11]) + q * dt**2 / 2.0
        a11 = phi * phi * row[P11] + q * dt
        xp = row[X] + b * row[V]
        vp = phi * row[V]
        y = z - xp
        sv = a00 + r
        if y * y > gate * gate * sv:
            row[MISSES] += 1.0
            if row[MISSES] >= 3.0:
                row[[X, V, P00, P01, P11, MISSES]] = z, 0.0, r, 0.0, q, 0.0
                out[i] = z
            else:  # the prediction stands: the state moves to this sample's time
                row[[X, V, P00, P01, P11]] = xp, vp, a00, a01, a11
                out[i] = xp
            continue
        row[MISSES] = 0.0
        k0, k1 = a00 / sv, a01 / sv
        row[X] = xp + k0 * y
        row[V] = vp + k1 * y
        row[P00] = (1.0 - k0) * a00
        row[P01] = (1.0 - k0) * a01
        row[P11] = a11 - k1 * a01
        out[i] = row[X]


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def one_euro_batch(
    slots: I64, t: F64, rssi: F64, min_cutoff: float, beta: float, d_cutoff: float,
    reset_after: float, state: F64, out: F64,
) -> None:  # fmt: skip
    """1-Euro filter (Casiez et al. 2012) on RSSI, in arrival order: a low-pass whose cutoff
    rises with the signal's speed (``min_cutoff + beta * |dx/dt|``, Hz). ``state`` keeps the
    level in ``X`` and the smoothed derivative in ``V``."""
    tau_d = 1.0 / (2.0 * math.pi * d_cutoff)
    two_pi = 2.0 * math.pi
    n = slots.shape[0]
    for i in range(n):
        if i + AHEAD < n:
            prefetch_row(state, slots[i + AHEAD])
        s = slots[i]
        ti = t[i]
        last = state[s, LAST_T]
        dt = ti - last
        if _restarts(last, dt, reset_after):
            state[s, X] = rssi[i]
            state[s, V] = 0.0
            state[s, LAST_T] = ti
            out[i] = rssi[i]
            continue
        x = state[s, X]
        if dt <= 0.0:
            out[i] = x
            continue
        dx = state[s, V]
        dx += ((rssi[i] - x) / dt - dx) / (1.0 + tau_d / dt)
        cutoff = min_cutoff + beta * abs(dx)
        x += (rssi[i] - x) / (1.0 + 1.0 / (two_pi * cutoff * dt))
        state[s, X] = x
        state[s, V] = dx
        state[s, LAST_T] = ti
        out[i] = x


def one_euro_batch_py(
    slots: I64, t: F64, rssi: F64, min_cutoff: float, beta: float, d_cutoff: float,
    reset_after: float, state: F64, out: F64,
) -> None:  # fmt: skip
    """Pure-Python twin of ``one_euro_batch``."""
    for i in range(len(slots)):
        row = state[int(slots[i])]
        dt = float(t[i] - row[LAST_T])
        if row[LAST_T] == -math.inf or dt > reset_after or math.isnan(dt):
            row[[X, V, LAST_T]] = rssi[i], 0.0, t[i]
            out[i] = rssi[i]
            continue
        if dt <= 0.0:
            out[i] = row[X]
            continue
        ad = 1.0 / (1.0 + 1.0 / (2.0 * math.pi * d_cutoff * dt))
        row[V] += ad * ((rssi[i] - row[X]) / dt - row[V])
        cutoff = min_cutoff + beta * abs(row[V])
        a = 1.0 / (1.0 + 1.0 / (2.0 * math.pi * cutoff * dt))
        row[X] += a * (rssi[i] - row[X])
        row[LAST_T] = t[i]
        out[i] = row[X]


def new_window(n: int, depth: int) -> tuple[F64, F64, F64, I64, I64]:
    """Median state for ``n`` slots of up to ``depth`` samples each (a power of two): ring of
    values, ring of times, the ring's values sorted, ring head (samples ever written) and
    samples in the window."""
    if depth < 1 or depth & (depth - 1):
        raise ValueError(f"median depth {depth} is not a power of two")
    window = (
        np.empty((n, depth)),
        np.empty((n, depth)),
        np.empty((n, depth)),
        np.empty(n, np.int64),
        np.empty(n, np.int64),
    )
    clear_window(window, slice(None))
    return window


def clear_window(window: tuple[F64, F64, F64, I64, I64], rows: int | slice) -> None:
    """Empty the median windows of ``rows`` (``window`` as ``new_window`` returns it)."""
    buf_v, buf_t, srt, head, count = window
    buf_v[rows] = 0.0
    buf_t[rows] = -np.inf
    srt[rows] = 0.0
    head[rows] = 0
    count[rows] = 0


@njit(cache=True, nogil=True, inline="always")
def _middle(srt: F64, s: int, c: int) -> float:
    """Median of the first ``c`` sorted values of row ``s`` (NaN when ``c`` is 0)."""
    if c == 0:
        return math.nan
    half = c // 2
    return float(srt[s, half] if c % 2 else 0.5 * (srt[s, half - 1] + srt[s, half]))


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def median_batch(
    slots: I64, t: F64, rssi: F64, window: float, buf_v: F64, buf_t: F64, srt: F64,
    head: I64, count: I64, out: F64,
) -> None:  # fmt: skip
    """Median of each slot's samples of the last ``window`` seconds (at most ``buf_v.shape[1]``
    of them), in arrival order.

    Each slot keeps its window twice: as a ring in arrival order, from which samples expire
    oldest first, and sorted (``srt[s, :count[s]]``), into which a sample is inserted and from
    which an expired one is removed by shifting, so the median is read, not computed."""
    k = buf_v.shape[1]
    mask = k - 1
    n = slots.shape[0]
    for i in range(n):
        if i + AHEAD < n:
            ahead = slots[i + AHEAD]
            tail = (head[ahead] - count[ahead]) & mask
            prefetch_row(buf_t, ahead, tail)
            prefetch_row(buf_v, ahead, tail)
            prefetch_row(buf_v, ahead, head[ahead] & mask)
            for col in range(0, k, 8):
                prefetch_row(srt, ahead, col)
        s = slots[i]
        v = rssi[i]
        c = count[s]
        h = head[s]
        if v != v or t[i] != t[i]:  # not a sample: the median stands
            out[i] = _middle(srt, s, c)
            continue
        horizon = t[i] - window
        # expire: the oldest samples while they are older than the window, or the ring is full
        while c > 0 and (c == k or buf_t[s, (h - c) & mask] < horizon):
            gone = buf_v[s, (h - c) & mask]
            j = 0
            while j < c - 1 and srt[s, j] != gone:
                j += 1
            for m in range(j, c - 1):
                srt[s, m] = srt[s, m + 1]
            c -= 1
        # insert
        j = c
        while j > 0 and srt[s, j - 1] > v:
            srt[s, j] = srt[s, j - 1]
            j -= 1
        srt[s, j] = v
        c += 1
        buf_v[s, h & mask] = v
        buf_t[s, h & mask] = t[i]
        head[s] = h + 1
        count[s] = c
        out[i] = _middle(srt, s, c)


def median_batch_py(
    slots: I64, t: F64, rssi: F64, window: float, buf_v: F64, buf_t: F64, srt: F64,
    head: I64, count: I64, out: F64,
) -> None:  # fmt: skip
    """Pure-Python twin of ``median_batch``: the same ring, the median by sorting it."""
    k = buf_v.shape[1]
    for i in range(len(slots)):
        s = int(slots[i])
        h, c = int(head[s]), int(count[s])
        if math.isnan(rssi[i]) or math.isnan(t[i]):
            held = sorted(float(buf_v[s, (h - 1 - j) % k]) for j in range(c))
            out[i] = math.nan if c == 0 else float(np.median(held))
            continue
        while c > 0 and (c == k or buf_t[s, (h - c) % k] < t[i] - window):
            c -= 1
        buf_v[s, h % k] = rssi[i]
        buf_t[s, h % k] = t[i]
        head[s], count[s] = h + 1, c + 1
        values = sorted(float(buf_v[s, (h - j) % k]) for j in range(c + 1))
        srt[s, : c + 1] = values
        m = len(values)
        out[i] = values[m // 2] if m % 2 else (values[m // 2 - 1] + values[m // 2]) / 2.0


def warm_up() -> None:
    """Compile (or load from the on-disk cache) every kernel before the first tick."""
    one = np.zeros(1)
    i1 = np.zeros(1, np.int64)
    ema_batch(i1, one, one, 1.0, 1.0, new_state(1), np.zeros(1))
    log_distance(one, one, np.full(1, 2.0), np.zeros(1))
    i0 = np.zeros(1, np.int64)
    two = np.full(1, 2.0)
    settle_batch(i1, one, one, one, one, two, one, one, new_state(1)[:, LAST_T], i0, 1, 1.0, 1.0)
    kalman_batch(i1, one, one, 1.0, 1.0, 3.0, 3.0, 1.0, new_state(1), np.zeros(1))
    one_euro_batch(i1, one, one, 1.0, 0.0, 1.0, 1.0, new_state(1), np.zeros(1))
    median_batch(i1, one, one, 1.0, *new_window(1, 4), np.zeros(1))
