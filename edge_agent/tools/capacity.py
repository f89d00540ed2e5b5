"""``edge-agent bench``: the capacity check a field engineer runs on the gateway itself.

A synthetic store for the gateway's own configuration (its receivers, floor plan, zones,
moments): ``devices`` phones and sensors spread over the floor (or, without positions, around
the receivers), each heard every ``EVERY_S`` by a receiver near it with the configured
log-distance model and 5 dB of noise; a tenth of them BTHome thermometers whose reading
changes. Through it, each stage's rate on this machine: decode, the whole pure pipeline, the
outbox (payloads and commits in tick-sized transactions, at the configured ``synchronous``, on
the disk of ``state_dir``) and the publisher draining the outbox into a broker (a private
mosquitto on loopback, or the configured broker under the ``edge-agent-bench`` prefix, so that
no integrator's subscription sees it). ``benchmarks`` (``make bench``) use the same store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from edge_agent.config import AgentConfig
from edge_agent.errors import EdgeAgentError
from edge_agent.models import Advert, BTHomeFrame, ContextEvent, IBeaconFrame, Measurement
from edge_agent.pipeline.decoders import DecodeStats, FrameCache, decode_advert
from edge_agent.pipeline.decoders.bthome import BTHOME_UUID
from edge_agent.pipeline.decoders.ibeacon import APPLE_COMPANY_ID
from edge_agent.pipeline.tick import Pipeline

EVERY_S = 5.0
"""Each device is heard once every this many seconds (well within ``gone_after_s``)."""
PHONE_UUID = "6b0e1c38-52d1-4b8c-9c1e-4d5f3a2b1c0d"
"""An iBeacon UUID no fleet claims: the phones are pseudonymous shoppers."""
WALL0 = 1.7e9
BENCH_PREFIX = "edge-agent-bench"
"""Topic prefix of the publish stage on the configured broker."""


def _bthome(index: int, count: int) -> bytes:
    from edge_agent.tools.simstore import encode_bthome

    return encode_bthome(
        BTHomeFrame(False, False, count % 256, (
            Measurement("temperature", round(4.0 + (count % 50) * 0.1, 2), "°C", 0x02),
            Measurement("humidity", float(index % 100), "%", 0x03),
        ))
    )  # fmt: skip


def _square_distance(x: float, y: float, receiver: tuple[str, float, float]) -> float:
    return (receiver[1] - x) ** 2 + (receiver[2] - y) ** 2


class SyntheticStore:
    """The synthetic store for one configuration; ``ticks`` yields its adverts tick by tick."""

    def __init__(self, cfg: AgentConfig, devices: int, seed: int = 1) -> None:
        from edge_agent.tools.simstore import encode_ibeacon

        self.cfg = cfg
        self.devices = devices
        self._rng = random.Random(seed)
        rng = self._rng
        placed = [(r.id, r.x, r.y) for r in cfg.receivers if r.x is not None and r.y is not None]
        self._placed = bool(placed)
        names = [r.id for r in cfg.receivers] or ["hci0"]
        self._near: list[list[tuple[str, float, float]]] = []
        self._spots: list[tuple[float, float]] = []
        for _ in range(devices):
            if placed:  # on the floor, heard by one of the two receivers nearest it
                x = rng.uniform(min(p[1] for p in placed), max(p[1] for p in placed))
                y = rng.uniform(min(p[2] for p in placed), max(p[2] for p in placed))
                self._near.append(sorted(placed, key=partial(_square_distance, x, y))[:2])
                self._spots.append((x, y))
            else:  # within 1–10 m of a receiver
                self._near.append([])
                self._spots.append((rng.uniform(1.0, 10.0), 0.0))
        self._names = names
        self._sensor = [d % 10 == 9 for d in range(devices)]
        self._frames = [
            {} if self._sensor[d] else {APPLE_COMPANY_ID: encode_ibeacon(
                IBeaconFrame(PHONE_UUID, 1 + d // 60_000, d % 60_000, -59))}
            for d in range(devices)
        ]  # fmt: skip
        self._counts = [0] * devices
        self._addresses = [
            f"D{d >> 32 & 15:X}:{d >> 24 & 255:02X}:{d >> 16 & 255:02X}:"
            f"{d >> 8 & 255:02X}:{d & 255:02X}:01"
            for d in range(devices)
        ]
        tick = cfg.pipeline.tick_s
        self.per_tick = max(1, round(EVERY_S / tick))
        self._slots: list[list[int]] = [[] for _ in range(self.per_tick)]
        for d in range(devices):
            self._slots[rng.randrange(self.per_tick)].append(d)

    def _advert(self, d: int, t: float) -> Advert:
        rng, prox = self._rng, self.cfg.proximity
        if self._placed:
            receiver, rx, ry = self._near[d][rng.randrange(len(self._near[d]))]
            x, y = self._spots[d]
            dist = math.hypot(x - rx, y - ry, 1.5)
        else:
            dist, receiver = self._spots[d][0], self._names[d % len(self._names)]
        rssi = round(
            prox.tx_power_1m_dbm - 10 * prox.path_loss_exponent * math.log10(dist)
            + rng.gauss(0.0, 5.0)
        )  # fmt: skip
        rssi = min(-20, max(-110, rssi))
        address = self._addresses[d]
        if self._sensor[d]:
            self._counts[d] += 1
            svc = {BTHOME_UUID: _bthome(d, self._counts[d])}
            return Advert(address, rssi, t, WALL0 + t, receiver, "public", {}, svc)
        return Advert(address, rssi, t, WALL0 + t, receiver, "random", self._frames[d])

    def ticks(self, first: int, count: int) -> Iterator[tuple[list[Advert], float]]:
        """Ticks ``first`` … ``first + count - 1``: (their adverts, the tick's end)."""
        tick = self.cfg.pipeline.tick_s
        for k in range(first, first + count):
            t = k * tick
            yield [self._advert(d, t) for d in self._slots[k % self.per_tick]], t + tick


@dataclass(slots=True)
class CapacityReport:
    """What ``edge-agent bench`` measured (CPU of this process)."""

    machine: str
    """CPU model and cores."""
    devices: int
    """Devices of the synthetic store."""
    fusion: bool
    """Whether the configuration fuses receivers on a floor plan."""
    decode_per_s: float = 0.0
    """Adverts decoded per second (frame cache on, as in the pipeline)."""
    pipeline_per_s: float = 0.0
    """Adverts per second through the whole pure pipeline."""
    events_per_advert: float = 0.0
    """Events the pipeline made per advert."""
    outbox_per_s: float = 0.0
    """Events per second made into payloads and committed, tick-sized transactions."""
    synchronous: str = ""
    """The outbox's ``synchronous`` level."""
    publish_per_s: float | None = None
    """Messages per second the publisher drained from the outbox to the broker, acknowledged."""
    broker: str = ""
    """Which broker the publish stage used, or why it did not run."""
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        def row(stage: str, rate: float | None, unit: str, per: str) -> str:
            if rate is None or rate <= 0:
                return f"{stage:<26} {'not measured':>16}"
            return f"{stage:<26} {rate:>12,.0f} {unit:<11} {1e6 / rate:>8.1f} µs/{per}"

        lines = [
            f"edge-agent bench on {self.machine}",
            f"synthetic store: {self.devices:,} devices, each heard every {EVERY_S:g} s, "
            f"fusion {'on' if self.fusion else 'off (no floor plan)'}",
            "",
            f"{'stage':<26} {'per CPU-second':>16} {'':<11} {'CPU cost':>11}",
            row("decode", self.decode_per_s, "adverts/s", "advert"),
            row("pipeline (all stages)", self.pipeline_per_s, "adverts/s", "advert"),
            row(f"outbox ({self.synchronous})", self.outbox_per_s, "events/s", "event"),
            row("publish (QoS 1, acked)", self.publish_per_s, "msg/s", "message"),
            "",
            f"events per advert: {self.events_per_advert:.2f}; broker: {self.broker}",
        ]
        if self.pipeline_per_s > 0 and self.outbox_per_s > 0:
            per_advert = 1 / self.pipeline_per_s + self.events_per_advert / self.outbox_per_s
            if self.publish_per_s:
                per_advert += self.events_per_advert / self.publish_per_s
            what = "pipeline, outbox and publish" if self.publish_per_s else "pipeline and outbox"
            lines.append(
                f"one core keeps up with about {1 / per_advert:,.0f} adverts/s of this store "
                f"({what}; the radio's own D-Bus and bleak work comes on top)"
            )
        return "\n".join(lines + self.notes)

    def as_json(self) -> str:
        return json.dumps(asdict(self), indent=1, ensure_ascii=False)


def machine() -> str:
    model = os.uname().machine
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores"


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


@dataclass(slots=True)
class PipelineRun:
    """The pure pipeline over a measured stretch of the synthetic store."""

    pipeline: Pipeline
    ticks: list[tuple[list[Advert], float]]
    """The measured ticks: (adverts, end)."""
    batches: list[list[ContextEvent]]
    """The events of each measured tick."""
    adverts: int
    cpu_s: float
    """CPU of this process over the measured ticks."""


def run_pipeline(
    cfg: AgentConfig, store: SyntheticStore, seconds: float, before: list[float] | None = None
) -> PipelineRun:
    """Warm up (every device heard twice: all tracked), then time ``seconds`` of store time.
    ``before`` gets the RSS in MB with every kernel loaded, before the first device
    (benchmarks)."""
    if before is not None:  # every kernel loaded by a store of ten, then dropped
        small, probe = SyntheticStore(cfg, 10, seed=2), Pipeline(cfg)
        for adverts, end in small.ticks(0, small.per_tick * 2):
            probe.process(adverts, end, WALL0 + end)
        del probe
        before.append(rss_mb())
    pipeline = Pipeline(cfg)
    pipeline.process([], 0.0, WALL0)
    warm = store.per_tick * 2
    for adverts, end in store.ticks(0, warm):
        pipeline.process(adverts, end, WALL0 + end)
    ticks = list(store.ticks(warm, max(1, round(seconds / cfg.pipeline.tick_s))))
    batches: list[list[ContextEvent]] = []
    c0 = time.process_time()
    for adverts, end in ticks:
        batches.append(pipeline.process(adverts, end, WALL0 + end))
    cpu = time.process_time() - c0
    return PipelineRun(pipeline, ticks, batches, sum(len(a) for a, _ in ticks), cpu)


def rss_mb(pid: int | None = None) -> float:
    """Resident memory of a process (this one by default), MB; 0 where ``/proc`` says not."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run(cfg: AgentConfig, devices: int, seconds: float, broker: str) -> CapacityReport:
    """Every stage on this machine; ``broker``: ``local``, ``config`` or ``none``."""
    measured = run_pipeline(cfg, SyntheticStore(cfg, devices), seconds)
    report = CapacityReport(machine(), devices, measured.pipeline.fusion is not None)
    stats, cache = DecodeStats(), FrameCache()
    c0 = time.process_time()
    for adverts, _ in measured.ticks:
        for a in adverts:
            decode_advert(a, stats, cache=cache)
    report.decode_per_s = _rate(measured.adverts, time.process_time() - c0)
    report.pipeline_per_s = _rate(measured.adverts, measured.cpu_s)
    made = sum(len(b) for b in measured.batches)
    report.events_per_advert = made / max(measured.adverts, 1)
    report.synchronous = cfg.outbox.synchronous
    with _scratch_dir(cfg) as scratch:
        report.outbox_per_s = _outbox_stage(cfg, scratch, measured.batches, made)
        report.publish_per_s, report.broker = _publish_stage(cfg, scratch, measured.batches, broker)
    return report


@contextlib.contextmanager
def _scratch_dir(cfg: AgentConfig) -> Iterator[Path]:
    """A temporary directory on the disk of ``state_dir`` (the disk the outbox lives on), or
    in the system's temporary directory when that is not writable."""
    base = cfg.gateway.state_dir
    where = str(base) if base.is_dir() and os.access(base, os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="edge-agent-bench-", dir=where) as tmp:
        yield Path(tmp)


def _outbox_stage(
    cfg: AgentConfig, scratch: Path, batches: list[list[ContextEvent]], made: int
) -> float:
    from edge_agent.runtime.outbox import Outbox

    if not made:
        return 0.0
    with Outbox(scratch / "outbox.sqlite", cfg.gateway.id, cfg.topic_root,
                synchronous=cfg.outbox.synchronous) as box:  # fmt: skip
        c0 = time.process_time()
        for batch in batches:
            if batch:
                box.append(batch)
        return _rate(made, time.process_time() - c0)


def _publish_stage(
    cfg: AgentConfig, scratch: Path, batches: list[list[ContextEvent]], broker: str
) -> tuple[float | None, str]:
    from edge_agent.tools.mosquitto import LocalMosquitto, find_mosquitto

    events = [e for b in batches for e in b][:20_000]
    if broker == "none" or not events:
        return None, "not measured (--broker none)" if broker == "none" else "no events"
    if broker == "config":
        target = cfg.model_copy(
            update={"mqtt": cfg.mqtt.model_copy(update={"prefix": BENCH_PREFIX})}
        )
        return _drain(target, scratch, events), f"{cfg.mqtt.urls[0]} under {BENCH_PREFIX}/"
    try:
        find_mosquitto()
    except EdgeAgentError as err:  # reported, not raised: the other stages stand
        return None, f"not measured: {err}"
    with LocalMosquitto() as local:
        mqtt = cfg.mqtt.model_copy(
            update={"urls": [local.url], "username": None, "password_file": None,
                    "password_env": None, "password_credential": None,
                    "tls": type(cfg.mqtt.tls)()}
        )  # fmt: skip
        return _drain(cfg.model_copy(update={"mqtt": mqtt}), scratch, events), (
            f"a private mosquitto on {local.host}:{local.port}"
        )


def _drain(cfg: AgentConfig, scratch: Path, events: list[ContextEvent]) -> float | None:
    """Commit ``events`` (several times over, up to 20 000), then time the publisher from
    its first message to the last PUBACK."""
    from edge_agent.runtime.outbox import Outbox
    from edge_agent.runtime.publisher import Publisher

    rows = (events * (20_000 // len(events) + 1))[:20_000]
    path = scratch / "publish.sqlite"
    with Outbox(path, cfg.gateway.id, cfg.topic_root, synchronous="NORMAL") as box:
        for i in range(0, len(rows), 500):
            box.append(rows[i : i + 500])

        async def go() -> float | None:
            publisher = Publisher(cfg, box, lambda _s: b"{}", ephemeral=True)
            async with asyncio.TaskGroup() as tg:
                task = tg.create_task(publisher.run())
                try:
                    if not await publisher.wait_connected(cfg.mqtt.connect_timeout_s):
                        return None
                    c0 = time.process_time()
                    done = await publisher.drain(120.0)
                    cpu = time.process_time() - c0
                    return _rate(len(rows), cpu) if done else None
                finally:
                    await publisher.close()
                    task.cancel()

        return asyncio.run(go())
