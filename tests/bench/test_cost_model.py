"""The cost model (issue 21): what an advert, an event and a tracked device cost, measured in
CPU time of this process on the demo store and on crowds of quiet devices. `make bench` prints
it; README's *Cost model* quotes it."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.models import Advert, ContextEvent, IBeaconFrame
from edge_agent.pipeline.tick import Pipeline, Ticker
from edge_agent.runtime.outbox import Outbox
from edge_agent.wire import checked_event_payload, event_payload
from firmware_sim.encoders import encode_ibeacon
from firmware_sim.moment_scoring import WALL0, StoreSim, load_scenario, simulate
from tests.support.bench_report import record
from tests.support.paths import CONFIG_DIR
from tests.unit.test_pipeline import CONFIG, UUID

pytestmark = pytest.mark.bench


def _cpu(fn: Callable[[], object]) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def _store(seconds: float) -> tuple[list[tuple[list[Advert], float]], Pipeline]:
    cfg = load_config(CONFIG_DIR / "agent.toml")
    ticks: list[tuple[list[Advert], float]] = []
    batch: list[Advert] = []
    ticker: Ticker[Advert] = Ticker(
        cfg.pipeline.tick_s, lambda b, end: ticks.append((b, end)), start=0.0
    )
    sim = StoreSim(load_scenario(CONFIG_DIR / "store-demo.toml"), 7)
    for t1, adverts, _truth in simulate(sim, seconds, WALL0):
        for a in adverts:
            ticker.add(a, a.t)
        ticker.close(t1)
    del batch
    return ticks, Pipeline(cfg)


def _address(c: int) -> str:
    return "C2:" + ":".join(f"{c >> shift & 255:02X}" for shift in (24, 16, 8, 0)) + ":01"


def _quiet_crowd(write: Path, devices: int) -> Pipeline:
    """``devices`` carts that entered zone a and then fell silent (within gone_after_s)."""
    p = Pipeline(load_config(write, {"pipeline.max_devices": 200_000}))
    frames = [
        encode_ibeacon(IBeaconFrame(UUID, 1 + c // 60000, c % 60000, -59)) for c in range(devices)
    ]
    for k in range(4):  # 4 adverts each over 3 s: every cart is in the zone
        t = k * 1.0
        batch = [
            Advert(_address(c), -62, t, 1.7e9 + t, "rx-a", "random", {0x004C: frames[c]})
            for c in range(devices)
        ]
        p.process(batch, t + 0.5, 1.7e9 + t + 0.5)
    return p


def test_cost_model(tmp_path: Path) -> None:
    ticks, pipeline = _store(300.0)
    adverts = sum(len(b) for b, _ in ticks)
    events: list[ContextEvent] = []

    def run_store() -> None:
        for b, end in ticks:
            events.extend(pipeline.process(b, end, WALL0 + end))

    per_advert = _cpu(run_store) / adverts * 1e6

    def serialise(fn: Callable[[str, int, ContextEvent], bytes]) -> Callable[[], None]:
        return lambda: [fn("gw", i, e) for i, e in enumerate(events)]

    fast = _cpu(serialise(event_payload)) / len(events) * 1e6
    checked = _cpu(serialise(checked_event_payload)) / len(events) * 1e6
    with Outbox(tmp_path / "outbox.sqlite", "gw", "store/s/gw") as box:
        per_tick = max(1, len(events) // len(ticks))
        chunks = [events[i : i + 10] for i in range(0, len(events), 10)]
        commit = _cpu(lambda: [box.append(c) for c in chunks]) / len(events) * 1e6

    path = tmp_path / "crowd.toml"
    path.write_text(CONFIG.replace("{state}", tempfile.mkdtemp()))
    rows = []
    for devices in (1_000, 10_000):
        p = _quiet_crowd(path, devices)
        assert len(p.presence.states) == devices
        made: list[ContextEvent] = []

        def quiet(p: Pipeline = p, made: list[ContextEvent] = made) -> None:
            for k in range(1, 51):  # 4.1 … 9.0 s: nothing of theirs falls due
                made.extend(p.process([], 4.0 + k * 0.1, 1.7e9 + 4.0 + k * 0.1))

        cpu = _cpu(quiet)
        assert not made
        rows.append((devices, cpu / 50 * 1e6, cpu / 50 / devices * 1e9))
    lines = [
        f"an advert, the demo store through the whole pure pipeline (fusion, moments): "
        f"{per_advert:.1f} µs ({adverts} adverts, {len(events)} events, 300 simulated s)",
        f"an event: payload {fast:.1f} µs (validated through pydantic: {checked:.1f} µs), "
        f"payload and outbox commit in transactions of 10 (synchronous FULL): {commit:.1f} µs "
        f"(the store makes ~{per_tick} a tick)",
        *(
            f"a tick with {d:,} quiet devices in a zone: {tick_us:.0f} µs "
            f"({dev_ns:.1f} ns a device)"
            for d, tick_us, dev_ns in rows
        ),
    ]
    print("\ncost model (this machine, CPU of this process):\n  " + "\n  ".join(lines))
    figures = {"advert_us": per_advert, "event_us": fast, "commit_us": commit}
    record("cost_model", {**figures, "line": "cost model: " + "; ".join(lines)})
    assert fast < checked
    assert rows[1][1] < 20 * max(rows[0][1], 50.0)  # no per-device work in a quiet tick
