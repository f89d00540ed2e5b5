"""Scale: CPU per advert and RSS with 1 k, 10 k and 100 k tracked devices (each in a process
of its own, ``tests/bench/scale.py``), and RSS through address churn."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.bench_report import REPO, record
from tests.support.churn import churn_soak
from tests.support.configs import MINIMAL

pytestmark = pytest.mark.bench


def test_scale_to_100k_tracked_devices() -> None:
    rows = {}
    for devices in (1_000, 10_000, 100_000):
        proc = subprocess.run(
            [sys.executable, "-m", "tests.bench.scale", str(devices)],
            capture_output=True, text=True, timeout=900, cwd=REPO, check=True,
        )  # fmt: skip
        rows[str(devices)] = json.loads(proc.stdout.strip().splitlines()[-1])
    small, big = rows["1000"]["cpu_us"], rows["100000"]["cpu_us"]
    lines = [
        f"{r['devices']:,} devices tracked (each heard every 5 s, the shipped config): "
        f"{r['cpu_us']:.1f} µs CPU/advert, RSS {r['rss_mb']:.0f} MB "
        f"({r['rss_base_mb']:.0f} MB before the first device), "
        f"{r['events'] / r['adverts']:.2f} events/advert"
        for r in rows.values()
    ]
    per_device_kb = (rows["100000"]["rss_mb"] - rows["100000"]["rss_base_mb"]) * 1024 / 100_000
    lines.append(
        f"CPU/advert at 100 k ÷ at 1 k: {big / small:.2f}; memory ≈ {per_device_kb:.1f} KB a device"
    )
    print("\nscale:\n  " + "\n  ".join(lines))
    record("scale", {**rows, "line": "; ".join(lines)})
    assert all(r["tracked"] >= 0.99 * r["devices"] for r in rows.values())


def test_rss_through_address_churn(write_config: Callable[[str], Path]) -> None:
    """Two simulated hours at 50 000 addresses an hour (the soak runs three)."""
    figures = churn_soak(write_config(MINIMAL), 2.0)
    record("churn", figures)
