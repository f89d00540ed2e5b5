"""The radio path as a store has it, for benchmarks: a program under test (the agent, or a peer
such as Theengs Gateway) scans the virtual BlueZ through real bleak and D-Bus while the virtual
BlueZ delivers a store-like stream at a set rate; we count its CPU (``/proc``), its RSS, the
messages it puts on a real mosquitto and, for the agent, how long a sensor's advert takes to
reach a subscriber."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.tools.capacity import rss_mb
from edge_agent.tools.mosquitto import LocalMosquitto, terminate
from firmware_sim.dbus import PrivateBus
from tests.support.paths import CONFIG_DIR, ROOT
from tests.support.virtual_bluez import BluezProcess

REPO = ROOT
THEENGS_PYTHON = REPO / ".cache" / "bench" / "theengs" / "bin" / "python"
"""Theengs Gateway's own venv (``make bench`` installs it: its pins differ from ours)."""
AGENT_ROOT = "retail/store-0042/gw-demo-01"
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(slots=True, frozen=True)
class Stream:
    """What the virtual BlueZ delivers on hci0."""

    rate: float
    """Adverts per second."""
    devices: int = 200
    """Advertisers in turn: iBeacons of the demo's cart fleet whose RSSI wanders…"""
    sensors: int = 20
    """…and, of them, BTHome sensors whose temperature changes on every advert."""


@dataclass(slots=True, frozen=True)
class RadioFigures:
    """One program on one stream, over the measured window (after its start-up)."""

    program: str
    rate: float
    """Adverts per second delivered during the window."""
    cpu_us: float
    """CPU of the program's process per advert delivered, µs."""
    core: float
    """Share of one core."""
    kernel: float
    """Share of its CPU spent in the kernel (system time: syscalls, sockets)."""
    messages: float
    """Messages per second it published."""
    rss_mb: float
    """Resident memory at the end of the window."""
    latency_ms: tuple[float, float] | None = None
    """Sensor advert delivered on D-Bus → its reading at a subscriber, (p50, p99) ms."""

    def as_dict(self) -> dict[str, object]:
        return {
            "rate": self.rate, "cpu_us": self.cpu_us, "core": self.core, "kernel": self.kernel,
            "messages": self.messages, "rss_mb": self.rss_mb, "latency_ms": self.latency_ms,
            "line": self.row(),
        }  # fmt: skip

    def row(self) -> str:
        lat = (
            f", latency p50 {self.latency_ms[0]:.1f} ms p99 {self.latency_ms[1]:.1f} ms"
            if self.latency_ms
            else ""
        )
        return (
            f"{self.program}: {self.rate:,.0f} adverts/s, {self.cpu_us:.1f} µs CPU/advert "
            f"({self.core:.0%} of a core, {self.kernel:.0%} of it in the kernel), "
            f"{self.messages:,.0f} msg/s, RSS {self.rss_mb:.0f} MB"
            f"{lat}"
        )


def process_cpu(pid: int) -> tuple[float, float]:
    """(user + system, system) CPU seconds of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS, int(fields[12]) / TICKS


class Subscriber:
    """Counts what arrives under a pattern; keeps the arrival time of the agent's sensor
    readings by (sensor index, counter) — the flood's humidity and temperature."""

    def __init__(self, broker: LocalMosquitto, pattern: str) -> None:
        self.count = 0
        self.arrivals: list[tuple[int, int, float]] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{time.time_ns()}")
        self.client.on_connect = lambda c, *_: c.subscribe(pattern, qos=1)
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, 30)
        self.client.loop_start()
        if not ready.wait(10):
            raise TimeoutError("subscription not acknowledged")

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        now = time.time()
        probe = None
        if "/sensor/" in msg.topic:
            m = json.loads(msg.payload).get("measurements", {})
            if "humidity" in m and "temperature" in m:
                c = round((m["temperature"]["value"] + 50.0) / 0.25)
                probe = (int(m["humidity"]["value"]), c, now)
        with self._lock:
            self.count += 1
            if probe is not None:
                self.arrivals.append(probe)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _delivered(probes: Path) -> tuple[dict[tuple[int, int], list[float]], list[tuple[float, int]]]:
    sent: dict[tuple[int, int], list[float]] = {}
    totals: list[tuple[float, int]] = []
    for line in probes.read_text().splitlines():
        a, b, wall = line.split()
        if a == "=":
            totals.append((float(wall), int(b)))
        else:
            sent.setdefault((int(a), int(b)), []).append(float(wall))
    return sent, totals


def _latencies(
    sent: dict[tuple[int, int], list[float]], arrivals: Sequence[tuple[int, int, float]]
) -> list[float]:
    """Arrival minus the latest delivery of the same (sensor, counter) before it."""
    out = []
    for i, c, at in arrivals:
        before = [w for w in sent.get((i, c), ()) if w <= at]
        if before:
            out.append(at - max(before))
    return out


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def agent_config(tmp: Path, broker: LocalMosquitto, edits: dict[str, str] | None = None) -> Path:
    """The shipped config (bleak on hci0, the demo store's floor, fusion and moments on)."""
    text = (CONFIG_DIR / "agent.toml").read_text(encoding="utf-8")
    for old, new in {
        'state_dir = "/var/lib/edge-agent"': f'state_dir = "{tmp / "state"}"',
        'urls = ["mqtt://127.0.0.1:1883"]': f'urls = ["{broker.url}"]',
        **(edits or {}),
    }.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


def agent_argv(config: Path) -> list[str]:
    return [sys.executable, "-m", "edge_agent", "run", "--config", str(config)]


def theengs_argv(broker: LocalMosquitto, tmp: Path) -> list[str]:
    """Theengs Gateway as its README runs it, on hci0, active scanning, discovery off."""
    return [
        str(THEENGS_PYTHON), "-m", "TheengsGateway", "-c", str(tmp / "theengsgw.conf"),
        "-H", broker.host, "-P", str(broker.port), "-a", "hci0", "-s", "active",
        "-D", "0", "-ll", "WARNING",
    ]  # fmt: skip


def flood(bus: PrivateBus, stream: Stream, probes: Path | None = None) -> BluezProcess:
    """The virtual BlueZ serving ``stream`` on hci0 (no scenario), started."""
    extra = ["--flood-probes", str(probes)] if probes is not None else []
    bluez = BluezProcess(
        bus, "hci0",
        "--flood", str(stream.devices), "--flood-rate", str(stream.rate),
        "--flood-sensors", str(stream.sensors), *extra,
    )  # fmt: skip
    i = bluez.argv.index("--scenario")
    del bluez.argv[i : i + 2]
    return bluez.start()


def measure(
    program: str,
    argv: Sequence[str],
    stream: Stream,
    broker: LocalMosquitto,
    tmp: Path,
    *,
    pattern: str,
    window_s: float = 10.0,
    warmup_s: float = 3.0,
    publishes: bool = True,
) -> RadioFigures:
    """Serve ``stream`` on a private bus, run ``argv`` against it until it has published (or,
    when it never ``publishes``, printed ``scanning``) and ``warmup_s`` more, then count over
    ``window_s``."""
    tmp.mkdir(parents=True, exist_ok=True)
    probes = tmp / "probes.txt"
    probes.unlink(missing_ok=True)
    with PrivateBus() as bus:
        bluez = flood(bus, stream, probes)
        sub = Subscriber(broker, pattern)
        log = (tmp / f"{program}.log").open("w")
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus.address},
            cwd=REPO,
        )
        try:
            deadline = time.monotonic() + 60
            while (sub.count < 20) if publishes else ("scanning" not in _text(tmp, program)):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise RuntimeError(
                        f"{program} published nothing (exit {proc.poll()}):\n"
                        + _text(tmp, program)[-3000:]
                    )
                time.sleep(0.1)
            time.sleep(warmup_s)
            (c0, k0), n0, w0 = process_cpu(proc.pid), sub.count, time.time()
            time.sleep(window_s)
            (c1, k1), n1, w1 = process_cpu(proc.pid), sub.count, time.time()
            rss = rss_mb(proc.pid)
        finally:
            terminate(proc)
            log.close()
            sub.close()
            bluez.stop()
    sent, totals = _delivered(probes)
    delivered = _interpolate(totals, w1) - _interpolate(totals, w0)
    lat = _latencies(sent, [a for a in sub.arrivals if w0 <= a[2] <= w1])
    return RadioFigures(
        program=program,
        rate=delivered / (w1 - w0),
        cpu_us=1e6 * (c1 - c0) / max(delivered, 1),
        core=(c1 - c0) / (w1 - w0),
        kernel=(k1 - k0) / max(c1 - c0, 1e-9),
        messages=(n1 - n0) / (w1 - w0),
        rss_mb=rss,
        latency_ms=(
            (1e3 * statistics.median(lat), 1e3 * _percentile(lat, 0.99)) if len(lat) > 20 else None
        ),
    )


def _interpolate(totals: Sequence[tuple[float, int]], wall: float) -> float:
    """Adverts delivered by ``wall``, from the flood's quarter-second counts."""
    before = [(w, k) for w, k in totals if w <= wall]
    after = [(w, k) for w, k in totals if w > wall]
    if not before:
        return 0.0
    if not after:
        return float(before[-1][1])
    (wa, ka), (wb, kb) = before[-1], after[0]
    return ka + (kb - ka) * (wall - wa) / (wb - wa)


def _text(tmp: Path, program: str) -> str:
    return (tmp / f"{program}.log").read_text(errors="replace")


def bare_bleak_argv() -> list[str]:
    return [sys.executable, "-m", "tests.bench.bare_bleak", "hci0"]
