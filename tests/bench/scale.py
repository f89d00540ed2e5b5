"""The pipeline at a store's scale, in a process of its own so that its RSS is its own:
``python -m tests.bench.scale N`` runs ``edge-agent bench``'s synthetic store (``N`` devices on
the demo floor, each heard every 5 s, a tenth of them sensors) through the shipped config
(fusion, zones, moments and aggregates on) and prints one JSON line: CPU µs per advert over a
minute of store time once all are tracked, RSS before the first device and at the end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edge_agent.config import load_config
from edge_agent.tools.capacity import SyntheticStore, rss_mb, run_pipeline

CONFIG = Path(__file__).resolve().parents[2] / "config" / "agent.toml"


def run(devices: int, seconds: float = 60.0) -> dict[str, float]:
    cfg = load_config(CONFIG, {"pipeline.max_devices": max(20_000, 2 * devices)})
    before: list[float] = []
    measured = run_pipeline(cfg, SyntheticStore(cfg, devices), seconds, before)
    return {
        "devices": devices,
        "tracked": measured.pipeline.devices_tracked,
        "adverts": measured.adverts,
        "events": sum(len(b) for b in measured.batches),
        "cpu_us": 1e6 * measured.cpu_s / measured.adverts,
        "rss_base_mb": before[0],
        "rss_mb": rss_mb(),
    }


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]))))
