"""Benchmarks (``make bench``): figures as ratios against a baseline run in the same process."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edge_agent.config import load_config
from edge_agent.models import (
    Advert,
    BTHomeFrame,
    ContextEvent,
    IBeaconFrame,
    Measurement,
    RuuviFrame,
)
from edge_agent.pipeline import kernels
from edge_agent.pipeline.decoders import DecodeStats, FrameCache, decode_advert
from edge_agent.pipeline.decoders.bthome import BTHOME_UUID
from edge_agent.pipeline.tick import Pipeline
from edge_agent.runtime.outbox import Outbox
from edge_agent.runtime.publisher import Publisher
from edge_agent.tools.mosquitto import LocalMosquitto
from firmware_sim.encoders import encode_bthome, encode_ibeacon, encode_ruuvi
from firmware_sim.serve import CART_UUID
from firmware_sim.store import StoreSim, load_scenario
from tests.support.bench_report import record
from tests.support.configs import MINIMAL
from tests.support.events import presence_event
from tests.support.paths import CONFIG_DIR

pytestmark = pytest.mark.bench


def _rate(fn: Callable[[], int], repeat: int = 5) -> float:
    """Best items per second over ``repeat`` runs."""
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        best = max(best, n / (time.perf_counter() - t0))
    return best


def _samples(
    seed: int, n: int, slots: int, span_s: float = 1000.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(slot, time, rssi) of ``n`` samples spread over ``slots`` slots, in time order."""
    rng = np.random.default_rng(seed)
    s = rng.integers(0, slots, n).astype(np.int64)
    t = np.sort(rng.uniform(0, span_s, n))
    return s, t, rng.normal(-70, 6, n)


def _store_payloads(n: int) -> list[Advert]:
    """A store's mix, in turn: 180 cart iBeacons (the same bytes every time), 20 BTHome
    thermometers and 10 RuuviTags whose readings change on every advert."""
    out = []
    for k in range(n):
        d = k % 210
        address = f"C1:00:00:00:{d >> 8:02X}:{d & 255:02X}"
        if d < 180:
            mfr = {0x004C: encode_ibeacon(IBeaconFrame(CART_UUID, 1, d, -59))}
            out.append(Advert(address, -60, 0.0, 0.0, "hci0", "random", mfr))
        elif d < 200:
            reading = BTHomeFrame(False, False, k // 210 % 256, (
                Measurement("temperature", round(4 + (k // 210 % 50) * 0.1, 2), "°C", 0x02),
                Measurement("humidity", 50.0, "%", 0x03),
            ))  # fmt: skip
            svc = {BTHOME_UUID: encode_bthome(reading)}
            out.append(Advert(address, -60, 0.0, 0.0, "hci0", "public", {}, svc))
        else:
            frame = RuuviFrame(4 + (k // 210 % 50) * 0.1, 50.0, 100_000, (0, 0, 1000), 2900, 4,
                               k // 210 % 200, k // 210 % 60_000, None)  # fmt: skip
            out.append(
                Advert(address, -60, 0.0, 0.0, "hci0", "public", {0x0499: encode_ruuvi(frame)})
            )
    return out


def _service_info(cls: Any, a: Advert) -> Any:
    """What Home Assistant hands bthome-ble for an advert."""
    svc = dict(a.service_data)
    return cls("", a.address, a.rssi, {}, svc, list(svc), "hci0", None, None, False, 0.0, None)


def test_bench_decoders_against_bthome_ble_and_theengs_decoder() -> None:
    """Our decoders on a store's mix, with and without the frame cache; then each format
    against a peer's parser on the same payloads: iBeacon and Ruuvi against TheengsDecoder
    (a JSON string in, as Theengs Gateway calls it), BTHome against Home Assistant's
    bthome-ble (its ``update`` on a prepared service info, as Home Assistant calls it)."""
    import json

    from bthome_ble import BTHomeBluetoothDeviceData
    from habluetooth import BluetoothServiceInfoBleak
    from TheengsDecoder import decodeBLE

    adverts = _store_payloads(50_000)

    def ours(cache: bool) -> Callable[[], int]:
        def run() -> int:
            stats, frames = DecodeStats(), FrameCache() if cache else None
            for a in adverts:
                decode_advert(a, stats, cache=frames)
            return len(adverts)

        return run

    plain, cached = _rate(ours(False)), _rate(ours(True))
    rows = [f"decode, a store's mix: {cached:,.0f} adverts/s with the frame cache, "
            f"{plain:,.0f}/s without"]  # fmt: skip
    figures: dict[str, Any] = {"ours": cached, "uncached": plain}
    by_format = {
        "ibeacon": [a for a in adverts[:2100] if 0x004C in a.manufacturer_data],
        "ruuvi": [a for a in adverts[:2100] if 0x0499 in a.manufacturer_data],
        "bthome": [a for a in adverts[:2100] if a.service_data],
    }
    for fmt, sample in by_format.items():
        sample = (sample * (10_000 // len(sample) + 1))[:10_000]

        def mine(sample: list[Advert] = sample) -> int:
            stats = DecodeStats()
            for a in sample:
                decode_advert(a, stats)
            return len(sample)

        if fmt == "bthome":
            peer_name = "bthome-ble"
            infos = [_service_info(BluetoothServiceInfoBleak, a) for a in sample]
            parser = BTHomeBluetoothDeviceData()

            def peer(infos: list[Any] = infos, parser: Any = parser) -> int:
                for info in infos:
                    parser.update(info)
                return len(infos)
        else:
            peer_name = "TheengsDecoder"
            texts = [
                json.dumps({"id": a.address, "rssi": a.rssi, "manufacturerdata": "".join(
                    cid.to_bytes(2, "little").hex() + d.hex()
                    for cid, d in a.manufacturer_data.items())})
                for a in sample
            ]  # fmt: skip
            assert decodeBLE(texts[0]) is not None

            def peer(texts: list[str] = texts) -> int:
                for t in texts:
                    decodeBLE(t)
                return len(texts)

        m, b = _rate(mine, repeat=3), _rate(peer, repeat=3)
        figures[fmt] = {"ours": m, peer_name: b}
        rows.append(
            f"decode {fmt} (no cache): {m:,.0f}/s; {peer_name} {b:,.0f}/s; ratio {m / b:.1f}×"
        )
    print("\n" + "\n".join(rows))
    record("decode", {**figures, "line": "; ".join(rows)})
    assert cached > plain


KERNEL_TARGET = 100e6
"""DESIGN §5: filter kernels, batched, at least 100 M samples/s."""


def _kernel_calls(
    s: np.ndarray, t: np.ndarray, r: np.ndarray, slots: int, out: np.ndarray
) -> dict[str, tuple[Callable[[Callable[..., None], int], Callable[[], int]], Any, Any]]:
    """For each kernel: a maker of a run over the first ``count`` samples, the kernel, its twin.
    State is allocated inside the run, as a fresh table would have it."""

    def recursive(*params: float) -> Callable[[Callable[..., None], int], Callable[[], int]]:
        def make(fn: Callable[..., None], count: int) -> Callable[[], int]:
            def go() -> int:
                fn(s[:count], t[:count], r[:count], *params, kernels.new_state(slots), out)
                return count

            return go

        return make

    def median(fn: Callable[..., None], count: int) -> Callable[[], int]:
        def go() -> int:
            fn(s[:count], t[:count], r[:count], 15.0, *kernels.new_window(slots, 32), out)
            return count

        return go

    k = kernels
    return {
        "EMA": (recursive(2.0, 15.0), k.ema_batch, k.ema_batch_py),
        "Kalman": (recursive(0.3, 36.0, 2.5, 3.0, 15.0), k.kalman_batch, k.kalman_batch_py),
        "1-Euro": (recursive(0.1, 0.05, 1.0, 15.0), k.one_euro_batch, k.one_euro_batch_py),
        "median": (median, k.median_batch, k.median_batch_py),
    }


@pytest.mark.parametrize("slots", [1_000, 10_000])
def test_bench_kernels_against_python_twins(slots: int) -> None:
    """One million samples, one call, from ``slots`` (device, receiver) streams advertising at
    1 Hz each, in random interleaving: 1 000 streams is a busy store's gateway, 10 000 the
    DESIGN's tracked-device ceiling (whose state no longer fits in a core's L2 cache)."""
    n = 1_000_000
    s, t, r = _samples(2, n, slots, span_s=n / slots)
    out = np.empty(n)
    kernels.warm_up()
    lines = []
    for name, (make, jit_fn, py_fn) in _kernel_calls(s, t, r, slots, out).items():
        jit = _rate(make(jit_fn, n), repeat=5)
        py = _rate(make(py_fn, 20_000), repeat=2)
        verdict = " pass" if jit >= KERNEL_TARGET else " FAIL (target 100 M/s)"
        lines.append(
            f"{name} kernel, {slots:,} slots: {jit / 1e6:,.1f} M samples/s, "
            f"Python twin {py / 1e6:.2f} M/s, ratio {jit / py:,.0f}{verdict}"
        )
        print("\n" + lines[-1])
        assert jit > py
    record(f"kernels_{slots}", {"line": "; ".join(lines)})


def test_bench_kalman_kernel_against_filterpy() -> None:
    """The same constant-velocity Kalman per slot with filterpy (one object per slot, one
    predict/update per sample), against the batched kernel, in one run."""
    kalman = pytest.importorskip("filterpy.kalman", reason="make bench installs filterpy")
    KalmanFilter = kalman.KalmanFilter

    n, slots = 20_000, 1_000
    s, t, r = _samples(3, n, slots, span_s=100.0)
    q, meas = 0.03, 36.0

    def filterpy_run() -> int:
        filters: dict[int, tuple[Any, float]] = {}
        for k in range(n):
            slot, z = int(s[k]), r[k]
            if slot not in filters:
                kf = KalmanFilter(dim_x=2, dim_z=1)
                kf.x = np.array([[z], [0.0]])
                kf.H = np.array([[1.0, 0.0]])
                kf.P = np.diag([meas, q])
                kf.R = np.array([[meas]])
                filters[slot] = (kf, t[k])
                continue
            kf, last = filters[slot]
            dt = max(t[k] - last, 0.0)
            kf.F = np.array([[1.0, dt], [0.0, 1.0]])
            kf.Q = q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
            kf.predict()
            kf.update(z)
            filters[slot] = (kf, t[k])
        return n

    big_n, big_slots = 1_000_000, 10_000
    bs, bt, br = _samples(4, big_n, big_slots, span_s=big_n / big_slots)
    out = np.empty(big_n)

    def kernel_run() -> int:
        state = kernels.new_state(big_slots)
        kernels.kalman_batch(bs, bt, br, q, meas, 1e9, math.inf, 15.0, state, out)
        return big_n

    kernels.warm_up()
    fp = _rate(filterpy_run, repeat=1)
    jit = _rate(kernel_run, repeat=3)
    line = (
        f"Kalman: kernel {jit / 1e6:,.1f} M samples/s, filterpy {fp / 1e3:,.1f} k/s, "
        f"ratio {jit / fp:,.0f}"
    )
    print("\n" + line)
    record("kalman", {"kernel": jit, "filterpy": fp, "line": line})
    assert jit > fp


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
        stats, cache = DecodeStats(), FrameCache()
        for adverts, _ in ticks:
            for a in adverts:
                decode_advert(a, stats, cache=cache)
        return total

    whole, dec = _rate(run, repeat=3), _rate(decode_only, repeat=3)
    line = (
        f"pure pipeline, the demo store (shipped config, 300 s): {whole:,.0f} adverts/s "
        f"({total} adverts), decode alone {dec:,.0f}/s, ratio {whole / dec:.2f}"
    )
    print("\n" + line)
    record("pipeline", {"rate": whole, "decode": dec, "line": line})
    assert whole > 0


@pytest.mark.parametrize("devices", [100, 1_000])
def test_bench_fusion_per_device_update_against_its_twin(devices: int) -> None:
    """The demo store's floor (38 m × 26 m at 0.5 m: 3 952 cells, 6 receivers); every device
    heard once a second by all 6 receivers, stepped every 0.25 s (a quarter of them have news
    at each step): the cost of one device's update, and how many devices one core fuses in
    10 % of its time."""
    from edge_agent.pipeline import floorplan
    from edge_agent.pipeline.fusion import FusionEngine

    cfg = load_config(CONFIG_DIR / "agent.toml")
    plan = floorplan.build(cfg)
    assert plan is not None
    rng = np.random.default_rng(1)
    where = rng.uniform((0, 0), (36, 24), (devices, 2))
    rx = [plan.receiver_index(r) for r in plan.receivers if r.startswith("rx-")]
    gain = plan.gain[rx][
        :, [int(np.argmin((plan.cx - x) ** 2 + (plan.cy - y) ** 2)) for x, y in where]
    ]

    def run(use_jit: bool, seconds: int) -> int:
        engine = FusionEngine(plan, cfg.fusion, capacity=devices, use_jit=use_jit)
        updates = 0
        for step in range(seconds * 4):
            quarter = range(step % 4, devices, 4)
            for d in quarter:
                for k, r in enumerate(rx):
                    engine.observe(f"d{d}", r, float(gain[k, d]) + rng.normal(0, 6))
            updates += len(engine.step(0.25 * (step + 1)))
        return updates

    run(True, 1)  # compile, fill every row once
    jit = _rate(lambda: run(True, 5), repeat=3)
    twin = _rate(lambda: run(False, 1 if devices > 100 else 2), repeat=1)
    cost_us = 1e6 / jit
    line = (
        f"fusion, {devices} devices, {plan.cells} cells, 6 receivers: {cost_us:.1f} µs per "
        f"device update (numba), {1e6 / twin:.0f} µs (numpy twin), ratio {jit / twin:.1f}×; "
        f"one core fuses {0.1 * jit:,.0f} devices heard at 1 advert/s in 10 % of its time"
    )
    print("\n" + line)
    record(f"fusion_{devices}", {"us": cost_us, "line": line})
    assert jit > twin


# ------------------------------------------------------------------ outbox + publisher


def _presence(n: int) -> ContextEvent:
    return presence_event(
        f"cart-{n % 500}",
        1.7e9 + n * 0.01,
        kind="update",
        zone="dairy",
        distance_m=2.4,
        rssi=-67.5,
        dwell_s=12.5,
        confidence=0.82,
    )


def test_bench_outbox_synchronous_full_against_normal(tmp_path: Path) -> None:
    """Group commit per tick (10 events, the store's rate at 100 events/s) under each level,
    next to a raw ``executemany`` of the same rows."""
    ticks, per_tick = 300, 10
    batches = [[_presence(t * per_tick + i) for i in range(per_tick)] for t in range(ticks)]
    rates = {}
    for level in ("NORMAL", "FULL"):
        box = Outbox(tmp_path / f"{level}.sqlite", "gw", "r", synchronous=level)

        def run(box: Outbox = box) -> int:
            for batch in batches:
                box.append(batch)
            return ticks

        rates[level] = _rate(run, repeat=3)
        box.close()
    conn = sqlite3.connect(tmp_path / "raw.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, topic TEXT, payload BLOB)")
    payload = b"x" * 300
    seq = [0]

    def raw() -> int:
        for _ in range(ticks):
            rows = [(seq[0] + i, "r/presence/cart-1", payload) for i in range(1, per_tick + 1)]
            seq[0] += per_tick
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
            conn.execute("COMMIT")
        return ticks

    base = _rate(raw, repeat=3)
    line = (
        f"outbox commits of {per_tick} events: FULL {rates['FULL']:,.0f}/s "
        f"({rates['FULL'] * per_tick:,.0f} events/s), NORMAL {rates['NORMAL']:,.0f}/s; "
        f"FULL/NORMAL {rates['FULL'] / rates['NORMAL']:.2f}; raw executemany FULL {base:,.0f}/s, "
        f"ratio {rates['FULL'] / base:.2f}; at 10 ticks/s FULL costs "
        f"{10 / rates['FULL'] * 100:.2f} % of the loop"
    )
    print("\n" + line)
    record("outbox", {**rates, "raw": base, "line": line})
    assert rates["FULL"] > 10  # ten ticks a second, with room to spare


def _raw_paho_rate(broker: LocalMosquitto, n: int, topic: str, payload: bytes) -> float:
    """Plain paho-mqtt, its own network thread, QoS 1, in-flight 100: messages per second."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    done = threading.Event()
    acked = [0]

    def on_publish(*_: object) -> None:
        acked[0] += 1
        if acked[0] == n:
            done.set()

    client.on_publish = on_publish
    client.connect(broker.host, broker.port, 30)
    client.loop_start()
    t0 = time.perf_counter()
    for _ in range(n):
        info = client.publish(topic, payload, qos=1)
        assert info.rc == 0
    assert done.wait(120)
    rate = n / (time.perf_counter() - t0)
    client.disconnect()
    client.loop_stop()
    return rate


def test_bench_backlog_drain_against_raw_paho(tmp_path: Path, mosquitto: LocalMosquitto) -> None:
    """An hour at 100 events/s (360 000) waiting in the outbox drains into mosquitto while
    live events keep being committed at 100/s; the rate is compared with raw paho's."""
    backlog = 360_000
    box = Outbox(tmp_path / "o.sqlite", "gw-bench", "retail/s/gw-bench")
    cfg_path = tmp_path / "agent.toml"
    cfg_path.write_text(
        MINIMAL.replace("{state}", str(tmp_path)) + f'\n[mqtt]\nurls = ["{mosquitto.url}"]\n',
        encoding="utf-8",
    )
    cfg = load_config(cfg_path)

    async def drain() -> tuple[float, int]:
        publisher = Publisher(cfg, box, lambda state: b"{}")
        live = [0]

        async def feed() -> None:
            n = backlog
            while True:
                await asyncio.sleep(0.1)
                box.append([_presence(n + i) for i in range(10)])
                n += 10
                live[0] += 10
                publisher.wake()

        async with asyncio.TaskGroup() as tg:
            t0 = time.perf_counter()
            run = tg.create_task(publisher.run())
            feeder = tg.create_task(feed())
            while box.depth() > 0 or not publisher.connected:  # noqa: ASYNC110 - a bench probe
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - t0
            feeder.cancel()
            await publisher.drain(10)
            await publisher.close()
            run.cancel()
        return elapsed, live[0]

    best = (0.0, 0.0, 0)
    raw = 0.0
    for _ in range(2):  # best of two for both, interleaved, against a noisy machine
        for start in range(0, backlog, 10_000):
            box.append([_presence(n) for n in range(start, start + 10_000)])
        sample = box.pending(0, 1)[0]
        raw = max(raw, _raw_paho_rate(mosquitto, 50_000, sample.topic, sample.payload))
        elapsed, live = asyncio.run(drain())
        if (backlog + live) / elapsed > best[0]:
            best = ((backlog + live) / elapsed, elapsed, live)
    ours, elapsed, live = best
    line = (
        f"backlog drain: {backlog:,} + {live:,} live events in {elapsed:.1f} s = "
        f"{ours:,.0f} msg/s; raw paho QoS 1 {raw:,.0f} msg/s; ratio {ours / raw:.2f}"
    )
    print("\n" + line)
    record("drain", {"ours": ours, "raw": raw, "line": line})
    assert box.depth() == 0
    assert ours > 0
