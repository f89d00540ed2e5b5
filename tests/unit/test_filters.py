"""Per-class filters in the device table: each slot is smoothed by its class's kernel, batched
per kind, exactly as the kernel alone would smooth it."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.config import FilterConfig, ProximityConfig
from edge_agent.models import DeviceClass
from edge_agent.pipeline import kernels
from edge_agent.pipeline.proximity import DeviceTable

PROX = ProximityConfig(
    filter=FilterConfig(kind="kalman"),
    filters={
        DeviceClass.CART: FilterConfig(kind="median", window_s=10.0),
        DeviceClass.STAFF: FilterConfig(kind="ema", tau_s=3.0),
        DeviceClass.ASSET: FilterConfig(kind="one_euro"),
    },
)


def _alone(p: FilterConfig, t: np.ndarray, r: np.ndarray) -> np.ndarray:
    n = len(t)
    s = np.zeros(n, np.int64)
    out = np.empty(n)
    state = kernels.new_state(1)
    if p.kind == "kalman":
        kernels.kalman_batch(s, t, r, p.q, p.r, p.gate, p.trend_tau_s, 15.0, state, out)
    elif p.kind == "ema":
        kernels.ema_batch(s, t, r, p.tau_s, 15.0, state, out)
    elif p.kind == "one_euro":
        kernels.one_euro_batch(s, t, r, p.min_cutoff_hz, p.beta, p.d_cutoff_hz, 15.0, state, out)
    else:
        kernels.median_batch(s, t, r, p.window_s, *kernels.new_window(1, 32), out)
    return out


@pytest.mark.parametrize("use_jit", [True, False])
def test_each_class_is_smoothed_by_its_own_kernel(use_jit: bool) -> None:
    table = DeviceTable(PROX, [], capacity=2, use_jit=use_jit)  # also grows past its capacity
    rng = np.random.default_rng(4)
    classes = [DeviceClass.CART, DeviceClass.STAFF, DeviceClass.ASSET, DeviceClass.SHOPPER]
    streams = {
        c: (np.cumsum(rng.uniform(0.2, 1.5, 60)), rng.normal(-70, 6, 60).round()) for c in classes
    }
    events = sorted(
        (float(t), c, float(r)) for c in classes for t, r in zip(*streams[c], strict=True)
    )
    got: dict[DeviceClass, list[float]] = {c: [] for c in classes}
    for k in range(0, len(events), 17):  # ticks mixing every kind
        batch = events[k : k + 17]
        slots = [table.slot(c.value, "rx", c) for _, c, _ in batch]
        res = table.update(
            slots,
            [e[0] for e in batch],
            [e[2] for e in batch],
            [-59.0] * len(batch),
            per_sample=True,
        )
        assert res is not None
        for (_, c, _), v in zip(batch, res[0], strict=True):
            got[c].append(float(v))
    for c in classes:
        expected = _alone(PROX.filter_for(c), *streams[c])
        np.testing.assert_allclose(got[c], expected, rtol=1e-12)
        assert table.nearest(c.value, streams[c][0][-1]) is not None


@pytest.mark.parametrize("use_jit", [True, False])
@pytest.mark.parametrize("kind", [DeviceClass.SHOPPER, DeviceClass.CART, DeviceClass.STAFF,
                                  DeviceClass.ASSET])  # fmt: skip
def test_a_reused_slot_starts_unheard(kind: DeviceClass, use_jit: bool) -> None:
    """A forgotten device's slot, handed to the next device, keeps nothing of it: its first
    sample restarts the filter (Kalman, median, EMA, 1-Euro), even a second later."""
    table = DeviceTable(PROX, [], use_jit=use_jit)
    old = table.slot("gone", "rx", kind)
    for k in range(20):
        table.update([old], [float(k)], [-50.0], [-59.0])
    table.forget("gone")
    new = table.slot("next", "rx", kind)
    assert new == old
    res = table.update([new], [20.0], [-90.0], [-59.0], per_sample=True)
    assert res is not None and res[0][0] == -90.0
    assert table.last_seen("next") == 20.0


def test_the_old_smoothing_tau_key_still_means_an_ema() -> None:
    old = ProximityConfig(smoothing_tau_s=4.0)
    assert old.filter_for(DeviceClass.CART) == FilterConfig(kind="ema", tau_s=4.0)
    assert ProximityConfig().filter_for(DeviceClass.CART).kind == "kalman"
