"""Serving a store (or a flood of beacons, for benchmarks) through the virtual BlueZ: the
simulation's adverts delivered to the adapters that hear them, in real time."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_agent.errors import ScenarioError
from edge_agent.models import Advert, BTHomeFrame, IBeaconFrame, Measurement
from edge_agent.pipeline.decoders.bthome import BTHOME_UUID
from edge_agent.pipeline.decoders.ibeacon import APPLE_COMPANY_ID
from firmware_sim.bluez import VirtualBlueZ
from firmware_sim.encoders import encode_bthome, encode_ibeacon
from firmware_sim.store import StoreSim, load_scenario, simulate


def receiver_map(adapters: Sequence[str], receivers: Sequence[str]) -> dict[str, list[str]]:
    """Which adapters hear which simulated receiver: the i-th adapter hears the i-th receiver
    (adapters beyond the receivers wrap around; receivers beyond the adapters are not served)."""
    out: dict[str, list[str]] = {}
    for i, adapter in enumerate(adapters):
        if receivers:
            out.setdefault(receivers[i % len(receivers)], []).append(adapter)
    return out


async def serve_store(
    bluez: VirtualBlueZ,
    scenario: str | Path,
    *,
    speed: float = 1.0,
    seed: int | None = None,
    duration_s: float | None = None,
    receivers: Sequence[str] = (),
    start_at: float | None = None,
) -> None:
    """Run the store in real time (times ``speed``) and deliver what each adapter hears:
    the scenario's receivers in order, or ``receivers`` (the i-th adapter hears the i-th).
    With ``start_at`` (epoch seconds), simulated time 0 is that wall-clock instant, so that
    several processes serve one store in step (one gateway's half each); what fell before
    now is simulated but not delivered."""
    sim = StoreSim(load_scenario(scenario), seed)
    unknown = [r for r in receivers if r not in sim.receivers]
    if unknown:
        raise ScenarioError(str(scenario), f"no receiver {', '.join(unknown)} in the scenario")
    routes = receiver_map(bluez.adapter_names, list(receivers) or sim.receivers)
    wall0 = time.time() if start_at is None else start_at
    start = time.monotonic() - (time.time() - wall0)
    next_expire = time.monotonic() + 1.0
    for t1, adverts, _ in simulate(sim, duration_s, wall0):
        delay = start + t1 / speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -1.0:  # catching up to start_at: simulate, deliver nothing
            continue
        for advert in adverts:
            for adapter in routes.get(advert.receiver, ()):
                bluez.deliver(adapter, advert)
        if time.monotonic() >= next_expire:
            bluez.expire()
            next_expire += 1.0
        await asyncio.sleep(0)


@dataclass(slots=True, frozen=True)
class Flood:
    """A benchmark stream instead of a scenario: what a busy store's radio looks like to one
    adapter, without the store."""

    devices: int
    """Devices advertising, in turn."""
    rate: float = 0.0
    """Adverts per second on every adapter; 0 is as fast as one Python process emits them."""
    sensors: int = 0
    """Of ``devices``, how many are BTHome sensors whose temperature changes on every advert
    (the rest are iBeacons of the demo's cart fleet whose RSSI wanders)."""
    probes: Path | None = None
    """Where to write ``index counter wall`` for every sensor advert delivered (a sensor's
    humidity is its index, its temperature ``counter × 0.25 − 50``, so that a subscriber
    matches what it receives to when it was delivered), and ``= delivered wall`` four times
    a second."""
    seed: int = 0
    """The RSSI walk's seed."""


CART_UUID = "2f234454-cf6d-4a0f-adf2-f4911ba9ffa6"


def _sensor_frame(index: int, count: int) -> dict[str, bytes]:
    reading = BTHomeFrame(
        encrypted=False,
        trigger_based=False,
        packet_id=None,
        measurements=(
            Measurement("temperature", round((count % 400) * 0.25 - 50.0, 2), "°C", 0x02),
            Measurement("humidity", float(index), "%", 0x03),
        ),
    )
    return {BTHOME_UUID: encode_bthome(reading)}


async def flood(bluez: VirtualBlueZ, spec: Flood, duration_s: float | None = None) -> None:
    """Benchmarks: ``spec.devices`` advertisers in turn, each advert a property change (a new
    RSSI; for a sensor, a new temperature too), delivered to every adapter at ``spec.rate``."""
    rng = random.Random(spec.seed)
    # the sensors spread evenly among the beacons (their adverts evenly in time); -1: a beacon
    sensor_of = [-1] * spec.devices
    for i in range(spec.sensors):
        sensor_of[i * spec.devices // spec.sensors] = i
    payloads: list[dict[int, bytes]] = [
        {APPLE_COMPANY_ID: encode_ibeacon(IBeaconFrame(CART_UUID, 1, n, -59))}
        for n in range(spec.devices)
    ]
    addresses = [f"C0:00:00:00:{n >> 8:02X}:{n & 0xFF:02X}" for n in range(spec.devices)]
    level = [rng.uniform(-90.0, -55.0) for _ in range(spec.devices)]
    rssi = [0] * spec.devices
    counts = [0] * spec.devices
    probes = spec.probes.open("a", encoding="utf-8") if spec.probes else None
    t0 = time.monotonic()
    end = math.inf if duration_s is None else t0 + duration_s
    k = 0
    told = t0
    try:
        while (now := time.monotonic()) < end:
            due = int((now - t0) * spec.rate) - k if spec.rate > 0 else 200
            for _ in range(min(due, 2_000)):
                n = k % spec.devices
                level[n] = min(-45.0, max(-100.0, level[n] + rng.gauss(0.0, 1.5)))
                value = round(level[n] + rng.gauss(0.0, 4.0))
                rssi[n] = value if value != rssi[n] else value + 1
                i = sensor_of[n]
                if i < 0:
                    advert = Advert(addresses[n], rssi[n], 0.0, 0.0, "", "random", payloads[n])
                else:
                    counts[n] += 1
                    svc = _sensor_frame(i, counts[n])
                    advert = Advert(addresses[n], rssi[n], 0.0, 0.0, "", "public", {}, svc)
                    if probes is not None:
                        probes.write(f"{i} {counts[n] % 400} {time.time():.6f}\n")
                for adapter in bluez.adapter_names:
                    bluez.deliver(adapter, advert)
                k += 1
            if probes is not None and now - told >= 0.25:
                probes.write(f"= {k} {time.time():.6f}\n")  # adverts delivered so far
                probes.flush()
                told = now
            await asyncio.sleep(0.002 if spec.rate > 0 else 0)
    finally:
        if probes is not None:
            probes.close()


async def serve(
    scenario: str | Path | None,
    adapters: Sequence[str],
    *,
    bus_address: str | None,
    speed: float = 1.0,
    seed: int | None = None,
    duration_s: float | None = None,
    monitor: bool = True,
    on_ready: Callable[[VirtualBlueZ], None] | None = None,
    flood_spec: Flood | None = None,
    receivers: Sequence[str] = (),
    start_at: float | None = None,
) -> None:
    """Serve a scenario (or a benchmark ``flood_spec``) until SIGTERM/SIGINT (or
    ``duration_s``)."""
    async with VirtualBlueZ(adapters, bus_address=bus_address, monitor=monitor) as bluez:
        if on_ready is not None:
            on_ready(bluez)
        loop = asyncio.get_running_loop()
        if flood_spec is not None:
            task = asyncio.create_task(flood(bluez, flood_spec, duration_s))
        else:
            assert scenario is not None
            task = asyncio.create_task(
                serve_store(
                    bluez,
                    scenario,
                    speed=speed,
                    seed=seed,
                    duration_s=duration_s,
                    receivers=receivers,
                    start_at=start_at,
                )
            )
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task
