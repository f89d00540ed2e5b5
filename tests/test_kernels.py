"""Every numba kernel agrees with its pure-Python twin (also run with NUMBA_DISABLE_JIT=1)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_agent import kernels


def _batch(seed: int, n: int = 2000, slots: int = 50) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    s = rng.integers(0, slots, n).astype(np.int64)
    t = np.sort(rng.uniform(0, 100, n))
    t[rng.integers(0, n, 20)] -= 5.0  # a few late (out-of-order) samples
    rssi = rng.normal(-70, 6, n).round()
    return s, t, rssi


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ema_matches_twin(seed: int) -> None:
    s, t, rssi = _batch(seed)
    outs = []
    for fn in (kernels.ema_batch, kernels.ema_batch_py):
        level = np.zeros(50)
        last = np.full(50, -np.inf)
        out = np.empty(len(s))
        fn(s, t, rssi, 2.0, 15.0, level, last, out)
        outs.append((out, level, last))
    for a, b in zip(outs[0], outs[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_ema_semantics() -> None:
    level = np.zeros(1)
    last = np.full(1, -np.inf)
    out = np.empty(3)
    s = np.zeros(3, np.int64)
    kernels.ema_batch(
        s, np.array([0.0, 2.0, 100.0]), np.array([-60.0, -80.0, -50.0]), 2.0, 15.0, level, last, out
    )
    assert out[0] == -60.0  # first sample starts the filter
    assert out[1] == pytest.approx(-60.0 - 20.0 * (1 - math.exp(-1.0)))  # one time constant
    assert out[2] == -50.0  # a gap longer than reset_after restarts it


def test_log_distance_matches_twin_and_model() -> None:
    rssi = np.array([-59.0, -65.0, -79.0, -99.0])
    tx = np.full(4, -59.0)
    a, b = np.empty(4), np.empty(4)
    kernels.log_distance(rssi, tx, 2.0, a)
    kernels.log_distance_py(rssi, tx, 2.0, b)
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(a, [1.0, 10**0.3, 10.0, 100.0])
