"""Every numba kernel agrees with its pure-Python twin (also run with NUMBA_DISABLE_JIT=1)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_agent.pipeline import kernels


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
        state = kernels.new_state(50)
        out = np.empty(len(s))
        fn(s, t, rssi, 2.0, 15.0, state, out)
        outs.append((out, state))
    for a, b in zip(outs[0], outs[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_ema_semantics() -> None:
    state = kernels.new_state(1)
    out = np.empty(3)
    s = np.zeros(3, np.int64)
    t, rssi = np.array([0.0, 2.0, 100.0]), np.array([-60.0, -80.0, -50.0])
    kernels.ema_batch(s, t, rssi, 2.0, 15.0, state, out)
    assert out[0] == -60.0  # first sample starts the filter
    assert out[1] == pytest.approx(-60.0 - 20.0 * (1 - math.exp(-1.0)))  # one time constant
    assert out[2] == -50.0  # a gap longer than reset_after restarts it


def test_exp_neg_is_math_exp() -> None:
    """The EMA's table-driven exp agrees with ``math.exp`` to 1e-14 over its whole domain."""
    for y in np.concatenate([np.linspace(0.0, 46.0, 20_001), [1e-300, 0.5 * kernels._EXP_STEP]]):
        assert kernels.exp_neg(float(y)) == pytest.approx(math.exp(-y), rel=1e-14, abs=1e-19)
    assert kernels.exp_neg(math.inf) == 0.0 and kernels.exp_neg(math.nan) == 0.0


def test_state_rows_start_unheard_on_cache_lines() -> None:
    state = kernels.new_state(5)
    assert state.shape == (5, kernels.STATE_WIDTH) and state.ctypes.data % 64 == 0
    assert (state[:, kernels.LAST_T] == -np.inf).all()


def test_log_distance_matches_twin_and_model() -> None:
    rssi = np.array([-59.0, -65.0, -79.0, -99.0])
    tx = np.full(4, -59.0)
    a, b = np.empty(4), np.empty(4)
    n = np.full(4, 2.0)
    kernels.log_distance(rssi, tx, n, a)
    kernels.log_distance_py(rssi, tx, n, b)
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(a, [1.0, 10**0.3, 10.0, 100.0])


def _kalman(
    fn: object,
    s: np.ndarray,
    t: np.ndarray,
    rssi: np.ndarray,
    slots: int = 50,
    trend_tau: float = math.inf,
) -> tuple:
    state = kernels.new_state(slots)
    out = np.empty(len(s))
    fn(s, t, rssi, 0.5, 16.0, 3.0, trend_tau, 15.0, state, out)  # type: ignore[operator]
    return out, state


@pytest.mark.parametrize("trend_tau", [math.inf, 2.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kalman_matches_twin(seed: int, trend_tau: float) -> None:
    s, t, rssi = _batch(seed)
    rssi[::97] = 5.0  # impossible values
    rssi[::89] = -20.0  # outliers
    for a, b in zip(
        _kalman(kernels.kalman_batch, s, t, rssi, trend_tau=trend_tau),
        _kalman(kernels.kalman_batch_py, s, t, rssi, trend_tau=trend_tau),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_kalman_semantics() -> None:
    s = np.zeros(8, np.int64)
    t = np.arange(8.0)
    rssi = np.array([-70.0, -70.0, 3.0, -70.0, -30.0, -70.0, -70.0, -70.0])
    out = _kalman(kernels.kalman_batch, s, t, rssi, slots=1)[0]
    assert out[0] == -70.0 and out[1] == pytest.approx(-70.0)
    assert out[2] == pytest.approx(-70.0)  # a positive RSSI is not a measurement
    assert out[4] == pytest.approx(-70.0, abs=0.5)  # a 40 dB jump is gated out once
    # a step that persists is followed: three gated samples in a row restart the filter
    step = np.array([-70.0] * 5 + [-50.0] * 6)
    s11, t11 = np.zeros(11, np.int64), np.arange(11.0)
    out = _kalman(kernels.kalman_batch, s11, t11, step, 1, trend_tau=3.0)[0]
    assert out[-1] == pytest.approx(-50.0, abs=1.0)

    # the longer a slot was silent, the more a new sample counts
    def second_output(gap: float) -> float:
        two = np.array([-70.0, -64.0])
        return float(_kalman(kernels.kalman_batch, s11[:2], np.array([0.0, gap]), two, 1)[0][1])

    quick, slow = second_output(0.5), second_output(10.0)
    assert -70.0 < quick < slow < -64.0 + 1e-9


def test_kalman_trend_fades_when_the_signal_stops_moving() -> None:
    """A ramp then a plateau: a constant trend overshoots the plateau, a fading one settles."""
    t = np.arange(40.0)
    rssi = np.where(t < 20, -80.0 + t, -61.0)
    s = np.zeros(40, np.int64)
    constant = _kalman(kernels.kalman_batch, s, t, rssi, 1)[0]
    fading = _kalman(kernels.kalman_batch, s, t, rssi, 1, trend_tau=2.0)[0]
    overshoot = lambda out: float(np.max(out[20:] - (-61.0)))  # noqa: E731
    assert overshoot(fading) < overshoot(constant) / 2
    assert fading[-1] == pytest.approx(-61.0, abs=0.5)
    # with a long time constant it is the constant-trend filter
    np.testing.assert_allclose(
        _kalman(kernels.kalman_batch, s, t, rssi, 1, trend_tau=1e12)[0], constant, rtol=1e-6
    )


def test_kalman_gated_sample_moves_the_state_to_its_time() -> None:
    """A rejected sample leaves the prediction as the state, at that sample's time: the next
    prediction starts from there, not from the older state over the shorter gap."""
    s = np.zeros(4, np.int64)
    t = np.array([0.0, 1.0, 2.0, 3.0])
    rssi = np.array([-70.0, -68.0, -20.0, -66.0])  # the third is an outlier, gated
    out, state = _kalman(kernels.kalman_batch, s, t, rssi, 1)
    ref, ref_state = _kalman(kernels.kalman_batch_py, s, t, rssi, 1)
    assert state[0, kernels.MISSES] == 0.0 and out[2] < -60.0  # gated, then a good sample
    np.testing.assert_allclose(out, ref)
    np.testing.assert_allclose(state, ref_state)
    skipped = _kalman(kernels.kalman_batch, s[[0, 1, 3]], t[[0, 1, 3]], rssi[[0, 1, 3]], 1)[0]
    assert out[3] == pytest.approx(skipped[2], abs=1e-9)  # as if the outlier never came


def _one_euro(fn: object, s: np.ndarray, t: np.ndarray, rssi: np.ndarray) -> tuple:
    state, out = kernels.new_state(50), np.empty(len(s))
    fn(s, t, rssi, 0.1, 0.05, 1.0, 15.0, state, out)  # type: ignore[operator]
    return out, state


@pytest.mark.parametrize("seed", [1, 2])
def test_one_euro_matches_twin(seed: int) -> None:
    s, t, rssi = _batch(seed)
    for a, b in zip(
        _one_euro(kernels.one_euro_batch, s, t, rssi),
        _one_euro(kernels.one_euro_batch_py, s, t, rssi),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def _median(fn: object, s: np.ndarray, t: np.ndarray, rssi: np.ndarray) -> tuple:
    window, out = kernels.new_window(50, 16), np.empty(len(s))
    fn(s, t, rssi, 15.0, *window, out)  # type: ignore[operator]
    return (out, *window)


@pytest.mark.parametrize("seed", [1, 2])
def test_median_matches_twin_and_numpy(seed: int) -> None:
    s, t, rssi = _batch(seed)
    jit, py = (
        _median(kernels.median_batch, s, t, rssi),
        _median(kernels.median_batch_py, s, t, rssi),
    )
    for a, b in zip(jit[:3] + jit[4:], py[:3] + py[4:], strict=True):
        np.testing.assert_allclose(a, b)
    for row, count in enumerate(jit[-1]):  # the sorted window, as far as it is filled
        np.testing.assert_allclose(jit[3][row, :count], py[3][row, :count])
    one = np.zeros(5, np.int64)
    out = _median(
        kernels.median_batch,
        one,
        np.array([0.0, 1, 2, 30, 31]),
        np.array([-60.0, -90, -61, -70, -72]),
    )[0]
    np.testing.assert_allclose(out, [-60.0, -75.0, -61.0, -70.0, -71.0])


@pytest.mark.parametrize("fn", [kernels.median_batch, kernels.median_batch_py])
def test_median_window_full_duplicates_and_missing_samples(fn: object) -> None:
    """A full ring drops its oldest sample (duplicates of it stay), a NaN is not a sample."""
    t = np.arange(8.0)
    rssi = np.array([-60.0, -60, -70, -60, -80, np.nan, -90, -90])
    window, out = kernels.new_window(1, 4), np.empty(8)
    fn(np.zeros(8, np.int64), t, rssi, 100.0, *window, out)  # type: ignore[operator]
    # windows: [-60] [-60 -60] [-60 -60 -70] [-60 -60 -70 -60] [-60 -70 -60 -80] (NaN: unchanged)
    # [-70 -60 -80 -90] [-60 -80 -90 -90]
    np.testing.assert_allclose(out, [-60, -60, -60, -60, -65, -65, -75, -85])
    assert window[4][0] == 4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_settle_matches_twin(seed: int) -> None:
    """A tick's samples settle each slot: last sample wins (slots repeat), the distance moves
    at most max_speed·dt from a fresh previous one, a stale or unknown previous one does not
    hold it back, and a NaN level gives a NaN distance."""
    rng = np.random.default_rng(seed)
    n, slots = 200, 40
    s = rng.integers(0, slots, n).astype(np.int64)
    out = rng.normal(-70.0, 8.0, n)
    out[rng.random(n) < 0.05] = np.nan
    tx = rng.normal(-59.0, 2.0, n)
    base = {
        "level": np.zeros(slots), "slot_tx": np.zeros(slots),
        "exponent": rng.uniform(1.8, 3.0, slots),
        "dist": np.where(rng.random(slots) < 0.2, np.inf, rng.uniform(0.5, 15.0, slots)),
        "dist_t": rng.uniform(0.0, 20.0, slots), "last_t": np.full(slots, 21.0),
        "mark": np.zeros(slots, dtype=np.int64),
    }  # fmt: skip
    got = {k: v.copy() for k, v in base.items()}
    want = {k: v.copy() for k, v in base.items()}
    kernels.settle_batch(s, out, tx, *got.values(), 3, 1.5, 15.0)
    kernels.settle_batch_py(s, out, tx, *want.values(), 3, 1.5, 15.0)
    for key in base:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12, err_msg=key)
    touched = np.unique(s)
    assert (got["mark"][touched] == 3).all() and (got["dist_t"][touched] == 21.0).all()
    last = {int(k): i for i, k in enumerate(s)}
    for k, i in last.items():
        assert got["level"][k] == out[i] or (np.isnan(got["level"][k]) and np.isnan(out[i]))
    fresh = np.isfinite(base["dist"]) & (21.0 - base["dist_t"] <= 15.0) & np.isfinite(got["dist"])
    moved = np.abs(got["dist"] - base["dist"])[touched][fresh[touched]]
    limit = (1.5 * (21.0 - base["dist_t"]))[touched][fresh[touched]]
    assert (moved <= limit + 1e-9).all() and (moved == limit).any()  # the gate holds some back


def test_warm_up_loads_every_kernel() -> None:
    """What the agent runs before its first tick (a bad argument there stops the agent). Its
    one-sample calls start from unheard state (``-inf`` times): the twins say so in numpy's
    warnings, compiled kernels do not."""
    with np.errstate(invalid="ignore"):
        kernels.warm_up()
