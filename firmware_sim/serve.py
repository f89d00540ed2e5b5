"""Serving a store (or a flood of beacons, for benchmarks) through the virtual BlueZ: the
simulation's adverts delivered to the adapters that hear them, in real time."""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from edge_agent.errors import ScenarioError
from edge_agent.models import Advert, IBeaconFrame
from edge_agent.pipeline.decoders.ibeacon import APPLE_COMPANY_ID
from firmware_sim.bluez import VirtualBlueZ
from firmware_sim.encoders import encode_ibeacon
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


async def flood(bluez: VirtualBlueZ, devices: int, duration_s: float | None = None) -> None:
    """Benchmarks: ``devices`` iBeacons whose RSSI changes on every advert, delivered to every
    adapter as fast as one Python process can emit them."""
    uuid = "2f234454-cf6d-4a0f-adf2-f4911ba9ffa6"
    payloads = [
        {APPLE_COMPANY_ID: encode_ibeacon(IBeaconFrame(uuid, 1, n, -59))} for n in range(devices)
    ]
    addresses = [f"C0:00:00:00:{n >> 8:02X}:{n & 0xFF:02X}" for n in range(devices)]
    end = math.inf if duration_s is None else time.monotonic() + duration_s
    k = 0
    while time.monotonic() < end:
        for _ in range(200):
            n = k % devices
            advert = Advert(
                addresses[n], -50 - (k // devices) % 30, 0.0, 0.0, "", "random", payloads[n]
            )
            for adapter in bluez.adapter_names:
                bluez.deliver(adapter, advert)
            k += 1
        await asyncio.sleep(0)


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
    flood_devices: int = 0,
    receivers: Sequence[str] = (),
    start_at: float | None = None,
) -> None:
    """Serve a scenario (or a flood of ``flood_devices`` beacons) until SIGTERM/SIGINT (or
    ``duration_s``)."""
    async with VirtualBlueZ(adapters, bus_address=bus_address, monitor=monitor) as bluez:
        if on_ready is not None:
            on_ready(bluez)
        loop = asyncio.get_running_loop()
        if flood_devices:
            task = asyncio.create_task(flood(bluez, flood_devices, duration_s))
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
