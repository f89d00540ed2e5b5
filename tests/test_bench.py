"""Benchmarks (``make bench``): figures as ratios against a baseline run in the same process."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

import numpy as np
import pytest

from edge_agent import kernels
from edge_agent.config import load_config
from edge_agent.decoders import DecodeStats, decode_advert
from edge_agent.models import Advert, IBeaconFrame
from edge_agent.pipeline import Pipeline
from firmware_sim.encoders import encode_ibeacon
from firmware_sim.store import StoreSim, load_scenario
from tests.conftest import CONFIG_DIR

pytestmark = pytest.mark.bench


def _rate(fn: Callable[[], int], repeat: int = 5) -> float:
    """Best items per second over ``repeat`` runs."""
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        best = max(best, n / (time.perf_counter() - t0))
    return best


def test_bench_decode_against_plain_struct() -> None:
    data = encode_ibeacon(IBeaconFrame("2f234454-cf6d-4a0f-adf2-f4911ba9ffa6", 1, 7, -59))
    adverts = [
        Advert("C1:00:00:00:00:07", -60, 0.0, 0.0, "hci0", manufacturer_data={0x004C: data})
        for _ in range(50_000)
    ]
    unpack = struct.Struct(">2s16sHHb").unpack

    def baseline() -> int:
        for a in adverts:
            unpack(a.manufacturer_data[0x004C])
        return len(adverts)

    def ours() -> int:
        stats = DecodeStats()
        for a in adverts:
            decode_advert(a, stats)
        return len(adverts)

    base, mine = _rate(baseline), _rate(ours)
    print(f"\ndecode iBeacon: {mine:,.0f}/s, plain struct {base:,.0f}/s, ratio {mine / base:.2f}")
    assert mine > 0


def test_bench_ema_kernel_against_python_twin() -> None:
    n, slots = 1_000_000, 10_000
    rng = np.random.default_rng(1)
    s = rng.integers(0, slots, n).astype(np.int64)
    t = np.sort(rng.uniform(0, 1000, n))
    r = rng.normal(-70, 6, n)
    out = np.empty(n)

    def run(fn: Callable[..., None], count: int) -> Callable[[], int]:
        def go() -> int:
            fn(
                s[:count],
                t[:count],
                r[:count],
                2.0,
                15.0,
                np.zeros(slots),
                np.full(slots, -np.inf),
                out,
            )
            return count

        return go

    kernels.warm_up()
    jit = _rate(run(kernels.ema_batch, n))
    py = _rate(run(kernels.ema_batch_py, 50_000), repeat=2)
    print(
        f"\nEMA kernel: {jit / 1e6:,.1f} M samples/s, Python twin {py / 1e6:.2f} M/s, "
        f"ratio {jit / py:,.0f}"
    )
    assert jit > py


def test_bench_pure_pipeline_on_the_simulated_store() -> None:
    sim = StoreSim(load_scenario(CONFIG_DIR / "store-demo.toml"))
    ticks = []
    t = 0.0
    while t < 300.0:
        ticks.append((sim.step(t, t + 0.1, 1.7e9), t + 0.1))
        t += 0.1
    total = sum(len(a) for a, _ in ticks)

    def run() -> int:
        p = Pipeline(load_config(CONFIG_DIR / "agent.toml"))
        for adverts, now in ticks:
            p.process(adverts, now, 1.7e9 + now)
        return total

    def decode_only() -> int:
        stats = DecodeStats()
        for adverts, _ in ticks:
            for a in adverts:
                decode_advert(a, stats)
        return total

    whole, dec = _rate(run, repeat=3), _rate(decode_only, repeat=3)
    print(
        f"\npure pipeline: {whole:,.0f} adverts/s ({total} adverts), decode alone {dec:,.0f}/s, "
        f"ratio {whole / dec:.2f}"
    )
    assert whole > 0
