"""The whole agent through real bleak and D-Bus on a store-like stream, beside bare bleak and
Theengs Gateway in the same run; latency to the broker; start-up with a cold and a warm numba
cache. Every figure is CPU of the program's own process, counted from ``/proc``."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from edge_agent.tools.mosquitto import LocalMosquitto, terminate
from firmware_sim.dbus import PrivateBus
from tests.support import radio_bench as radio
from tests.support.bench_report import record

pytestmark = pytest.mark.bench


@pytest.mark.parametrize("rate", [1_000, 2_000])
def test_whole_agent_against_theengs_gateway(
    rate: int, tmp_path: Path, mosquitto: LocalMosquitto
) -> None:
    """200 advertisers on hci0 (180 cart iBeacons whose RSSI wanders, 20 BTHome sensors whose
    temperature changes), ``rate`` adverts/s; the shipped config (fusion and moments on)."""
    stream = radio.Stream(rate)
    bare = radio.measure(
        "bare bleak", radio.bare_bleak_argv(), stream, mosquitto, tmp_path / "bare",
        pattern="bench/none", publishes=False,
    )  # fmt: skip
    ours = radio.measure(
        "edge-agent", radio.agent_argv(radio.agent_config(tmp_path, mosquitto)), stream,
        mosquitto, tmp_path / "agent", pattern=radio.AGENT_ROOT + "/#",
    )  # fmt: skip
    rows = [bare, ours]
    if radio.THEENGS_PYTHON.exists():
        rows.append(
            radio.measure(
                "Theengs Gateway",
                radio.theengs_argv(mosquitto, tmp_path),
                stream,
                mosquitto,
                tmp_path / "theengs",
                pattern="home/#",
            )
        )
    print(f"\nradio path, {rate:,} adverts/s offered, 200 devices:")
    for row in rows:
        print(f"  {row.row()}")
    summary = (
        f"{rate:,} adverts/s: the agent's own work above bare bleak "
        f"{ours.cpu_us - bare.cpu_us:.1f} µs/advert; "
        + (
            f"Theengs Gateway ÷ edge-agent {rows[2].cpu_us / ours.cpu_us:.1f}×"
            if len(rows) == 3
            else f"Theengs Gateway not measured: no {radio.THEENGS_PYTHON} (make bench installs it)"
        )
    )
    print(f"  {summary}")
    record(f"radio_{rate}", {"line": summary, **{r.program: r.as_dict() for r in rows}})
    assert ours.rate > 0.8 * rate and ours.messages > 0


LOW_LATENCY_TICK_S = 0.02
"""``pipeline.tick_s`` for the latency figure: an advert waits for the end of its tick (half a
tick on average), so the default 0.1 s tick alone puts the median near 50 ms."""


@pytest.mark.parametrize("rate", [1_000, 5_000])
def test_latency_advert_to_broker(rate: int, tmp_path: Path, mosquitto: LocalMosquitto) -> None:
    """A sensor's advert delivered on D-Bus → its reading at a subscriber of the broker (the
    broker sends it on as it sends the PUBACK), over every sensor advert of the window: with
    ``tick_s`` 0.02 and, for comparison, the default 0.1."""
    rows = {}
    for tick in (LOW_LATENCY_TICK_S, 0.1):
        cfg = radio.agent_config(
            tmp_path / str(tick), mosquitto, {"tick_s = 0.1": f"tick_s = {tick}"}
        )
        ours = radio.measure(
            f"edge-agent, tick_s {tick}", radio.agent_argv(cfg), radio.Stream(rate), mosquitto,
            tmp_path / f"agent-{tick}", pattern=radio.AGENT_ROOT + "/#",
        )  # fmt: skip
        assert ours.latency_ms is not None
        print(f"\nlatency, {rate:,} adverts/s: {ours.row()}")
        rows[str(tick)] = ours.as_dict()
    record(f"latency_{rate}", {"latency_ms": rows[str(LOW_LATENCY_TICK_S)]["latency_ms"], **rows})


def test_start_up_cold_and_warm_cache(tmp_path: Path, mosquitto: LocalMosquitto) -> None:
    """Process start → first event at the broker, with the store-like stream on the air: an
    empty numba cache (everything compiles), then the same cache again."""
    cache = tmp_path / "numba-cache"
    times = []
    with PrivateBus() as bus:
        bluez = radio.flood(bus, radio.Stream(1_000))
        try:
            for run in ("cold", "warm"):
                sub = radio.Subscriber(mosquitto, radio.AGENT_ROOT + "/sensor/#")
                cfg = radio.agent_config(tmp_path / run, mosquitto)
                env = {
                    **os.environ,
                    "DBUS_SYSTEM_BUS_ADDRESS": bus.address,
                    "NUMBA_CACHE_DIR": str(cache),
                }
                t0 = time.monotonic()
                proc = subprocess.Popen(
                    radio.agent_argv(cfg), env=env, cwd=radio.REPO,
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                try:
                    while sub.count == 0:
                        assert proc.poll() is None, "the agent stopped"
                        assert time.monotonic() - t0 < 300, "no event in 300 s"
                        time.sleep(0.01)
                    times.append(time.monotonic() - t0)
                finally:
                    terminate(proc)
                    sub.close()
        finally:
            bluez.stop()
    shutil.rmtree(cache, ignore_errors=True)
    cold, warm = times
    print(f"\nstart → first event: cold numba cache {cold:.2f} s, warm {warm:.2f} s")
    record("start_up", {"cold_s": cold, "warm_s": warm})
    assert warm < cold
