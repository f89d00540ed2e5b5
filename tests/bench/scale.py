"""The pipeline at a store's scale, in a process of its own so that its RSS is its own:
``python -m tests.bench.scale N`` tracks ``N`` phones (iBeacon frames of an unregistered UUID,
random static addresses: pseudonymous shoppers) spread over the demo floor, each heard every
5 s by one of the receivers nearest it, with the shipped config (fusion, zones, moments and
aggregates on); prints one JSON line: CPU µs per advert over a minute of store time once all
are tracked, RSS before any device and at the end."""

from __future__ import annotations

import json
import math
import random
import sys
import time
from pathlib import Path

from edge_agent.config import load_config
from edge_agent.models import Advert, IBeaconFrame
from edge_agent.pipeline.tick import Pipeline
from firmware_sim.encoders import encode_ibeacon

CONFIG = Path(__file__).resolve().parents[2] / "config" / "agent.toml"
EVERY_S = 5.0
"""Each phone is heard once every this many seconds (well within ``gone_after_s``)."""
PHONE_UUID = "6b0e1c38-52d1-4b8c-9c1e-4d5f3a2b1c0d"
WALL0 = 1.7e9


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(devices: int, seconds: float = 60.0, seed: int = 1) -> dict[str, float]:
    cfg = load_config(CONFIG, {"pipeline.max_devices": max(20_000, 2 * devices)})
    pipeline = Pipeline(cfg)
    rng = random.Random(seed)
    rx = [(r.id, r.x, r.y) for r in cfg.receivers if r.id.startswith("rx-") and r.x is not None]
    spots = [(rng.uniform(0, 36), rng.uniform(0, 24)) for _ in range(devices)]
    near = [
        sorted(rx, key=lambda r, x=x, y=y: (r[1] - x) ** 2 + (r[2] - y) ** 2)[:2] for x, y in spots
    ]
    frames = [
        {0x004C: encode_ibeacon(IBeaconFrame(PHONE_UUID, 1 + d // 60_000, d % 60_000, -59))}
        for d in range(devices)
    ]
    addresses = [f"D{d >> 32 & 15:X}:{d >> 24 & 255:02X}:{d >> 16 & 255:02X}:"
                 f"{d >> 8 & 255:02X}:{d & 255:02X}:01" for d in range(devices)]  # fmt: skip
    offset = [rng.uniform(0, EVERY_S) for _ in range(devices)]
    tick = cfg.pipeline.tick_s
    per_tick = round(EVERY_S / tick)
    slots: list[list[int]] = [[] for _ in range(per_tick)]
    for d in range(devices):
        slots[int(offset[d] / tick) % per_tick].append(d)

    def adverts(k: int) -> list[Advert]:
        t = k * tick
        out = []
        for d in slots[k % per_tick]:
            name, x, y = near[d][rng.randrange(2)]
            dist = math.hypot(spots[d][0] - x, spots[d][1] - y, 1.6)
            rssi = round(-59 - 22 * math.log10(dist) + rng.gauss(0, 5))
            out.append(Advert(addresses[d], rssi, t, WALL0 + t, name, "random", frames[d]))
        return out

    pipeline.process([], 0.0, WALL0)  # kernels loaded
    base = rss_mb()
    warm = per_tick * 2  # every phone heard twice: all tracked
    k = 0
    for k in range(warm):
        pipeline.process(adverts(k), (k + 1) * tick, WALL0 + (k + 1) * tick)
    batches = [adverts(k) for k in range(warm, warm + int(seconds / tick))]
    heard = sum(len(b) for b in batches)
    events = 0
    c0 = time.process_time()
    for i, batch in enumerate(batches):
        now = (warm + i + 1) * tick
        events += len(pipeline.process(batch, now, WALL0 + now))
    cpu = time.process_time() - c0
    return {
        "devices": devices,
        "tracked": pipeline.devices_tracked,
        "adverts": heard,
        "events": events,
        "cpu_us": 1e6 * cpu / heard,
        "rss_base_mb": base,
        "rss_mb": rss_mb(),
    }


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]))))
