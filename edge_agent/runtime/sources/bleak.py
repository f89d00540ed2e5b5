"""The radio: bleak scanners that heal themselves.

One *lane* per receiver. With ``adapter_policy = "all"`` every configured adapter is its own
lane and receiver (``hci0``, ``hci1`` …); with ``"failover"`` there is one lane, reported as the
first adapter, that scans with the first adapter present and moves down the list when one fails.

Each lane runs a supervisor:

- it waits until BlueZ runs and its adapter is present and powered (``BluezWatch``);
- it starts a ``BleakScanner`` under a timeout (passive through the advertisement monitor, or
  active when BlueZ cannot, with a warning);
- a watchdog restarts a scanner silent for ``watchdog_s`` while adverts are expected;
- repeated silence climbs a ladder: restart the scan → power-cycle the adapter over D-Bus →
  move to the next adapter (``failover``) or rest with backoff (``all``);
- BlueZ going away, an adapter unplugged or powered off stop the scanner; their return starts it.

None of this restarts the process; everything is logged and counted in ``health.adapters``.
The bleak callback only builds an ``Advert`` and offers it to the bounded queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Literal

from bleak import BleakScanner
from bleak.args.bluez import BlueZScannerArgs, OrPattern, OrPatternLike
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError
from dbus_fast.errors import DBusError

from edge_agent.config import SourceConfig
from edge_agent.contract import AdapterHealth
from edge_agent.models import Advert
from edge_agent.runtime.sources import AdvertSink
from edge_agent.runtime.sources.bluez import BluezWatch

_LOGGER = logging.getLogger(__name__)

STOP_TIMEOUT_S = 5.0
POWER_OFF_S = 1.0
"""How long an adapter stays off in a power cycle."""

# Passive scanning needs "or patterns"; these cover what the agent decodes: every usual value of
# the flags AD, Apple (iBeacon), Ruuvi and AltBeacon company ids, Eddystone and BTHome service data.
PASSIVE_PATTERNS: list[OrPatternLike] = [
    *(OrPattern(0, AdvertisementDataType.FLAGS, bytes([f])) for f in (2, 4, 5, 6, 0x1A, 0x1E)),
    OrPattern(0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, b"\x4c\x00"),
    OrPattern(0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, b"\x99\x04"),
    OrPattern(0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, b"\x18\x01"),
    OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\xaa\xfe"),
    OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\xd2\xfc"),
]
_SCAN_ERRORS = (BleakError, DBusError, TimeoutError, OSError, EOFError)


@dataclass(slots=True)
class LaneStats:
    """What one lane has been through (copied into ``health.adapters``)."""

    state: str = "waiting"
    """``waiting`` (for BlueZ or the adapter), ``starting``, ``scanning``, ``resting``."""
    adapter: str | None = None
    """Adapter in use now."""
    mode: str = ""
    """Scanning mode in effect (``passive`` may have fallen back to ``active``)."""
    adverts: int = 0
    """Adverts received."""
    last_advert: float = float("-inf")
    """Monotonic time of the last advert."""
    starts: int = 0
    """Scanner starts that succeeded."""
    start_failures: int = 0
    """Scanner starts that failed or timed out."""
    watchdog_trips: int = 0
    """Times the scanner was silent for ``watchdog_s`` while adverts were expected."""
    restarts: int = 0
    """Scan restarts (first rung of the ladder)."""
    power_cycles: int = 0
    """Adapter power cycles (second rung)."""
    failovers: int = 0
    """Moves to another adapter (third rung, ``failover``)."""
    bluez_restarts: int = 0
    """Times BlueZ went away under a running scanner."""
    adapter_lost: int = 0
    """Times the adapter was removed or powered off under a running scanner."""
    last_error: str | None = None
    """The last start or stop error."""


class Lane:
    """One receiver's supervisor."""

    def __init__(
        self,
        receiver: str,
        candidates: list[str],
        cfg: SourceConfig,
        watch: BluezWatch,
        sink: AdvertSink,
        peers: list[Lane],
    ) -> None:
        self.receiver = receiver
        self.candidates = candidates
        self.cfg = cfg
        self.watch = watch
        self.sink = sink
        self.peers = peers
        self.stats = LaneStats(mode=cfg.scanning_mode)
        self._mode: Literal["active", "passive"] = cfg.scanning_mode
        self._index = 0
        self._rung = 0
        self._scanner: BleakScanner | None = None
        self._started_at = 0.0
        self._adverts_at_start = 0
        self._benched: dict[str, float] = {}
        """Adapters that stayed silent through a power cycle: not used again until then."""

    # ---------------------------------------------------------------- health

    def health(self, now: float) -> AdapterHealth:
        """This lane in ``health``."""
        fields = dataclasses.asdict(self.stats)
        last = fields.pop("last_advert")
        silent = round(now - last, 1) if self.stats.adverts else None
        return AdapterHealth(receiver=self.receiver, silent_s=silent, **fields)

    # ------------------------------------------------------------- callback

    def callback(self, device: BLEDevice, adv: AdvertisementData) -> None:
        """bleak's detection callback: build the ``Advert`` and offer it; nothing else."""
        t = time.monotonic()
        stats = self.stats
        stats.adverts += 1
        stats.last_advert = t
        details = device.details
        props = details.get("props", {}) if isinstance(details, dict) else {}
        self.sink.offer(
            Advert(
                address=device.address,
                rssi=adv.rssi,
                t=t,
                wall=time.time(),
                receiver=self.receiver,
                address_type=str(props.get("AddressType", "public")),
                manufacturer_data=adv.manufacturer_data,
                service_data=adv.service_data,
                service_uuids=tuple(adv.service_uuids),
                local_name=adv.local_name,
                tx_power=adv.tx_power,
            )
        )

    # ------------------------------------------------------------ supervisor

    async def run(self) -> None:
        """Keep this receiver scanning until cancelled."""
        backoff = 1.0
        try:
            while True:
                adapter = await self._pick()
                generation = self.watch.generation  # a BlueZ restart during the start counts
                if not await self._start(adapter):
                    self.stats.state = "resting"
                    await self.watch.wait_change(backoff)
                    backoff = min(backoff * 2, self.cfg.restart_backoff_max_s)
                    continue
                backoff = 1.0
                reason = await self._supervise(adapter, generation)
                await self._stop()
                await self._after(adapter, reason)
        finally:
            await self._stop()

    async def _pick(self) -> str:
        """Wait until BlueZ runs and a candidate adapter is present; power it on if it is off."""
        self.stats.state = "waiting"
        warned = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.cfg.start_timeout_s):
                await self.watch.first_look.wait()
        while True:
            watch = self.watch
            if watch.owner is not None:
                n = len(self.candidates)
                now = time.monotonic()
                usable = [a for a in self.candidates if self._benched.get(a, 0.0) <= now]
                for k in range(n):
                    adapter = self.candidates[(self._index + k) % n]
                    if adapter not in watch.adapters or (usable and adapter not in usable):
                        continue
                    if not watch.adapters[adapter] and not await self._power_on(adapter):
                        continue
                    if k:
                        self._moved(self.candidates[self._index], adapter, "is not available")
                    self._index = (self._index + k) % n
                    return adapter
            if not warned:
                why = "BlueZ is not running" if watch.owner is None else "adapter not present"
                _LOGGER.warning(
                    "%s: waiting for %s (%s)", self.receiver, " or ".join(self.candidates), why
                )
                self.stats.last_error = f"waiting for {' or '.join(self.candidates)}: {why}"
                warned = True
            await watch.wait_change(5.0)

    def _moved(self, old: str, new: str, why: str) -> None:
        self.stats.failovers += 1
        _LOGGER.warning("%s: %s %s; scanning with %s", self.receiver, old, why, new)

    async def _power_on(self, adapter: str) -> bool:
        _LOGGER.warning("%s: adapter %s is powered off; powering it on", self.receiver, adapter)
        try:
            await self.watch.set_powered(adapter, True)
        except _SCAN_ERRORS as err:
            self.stats.last_error = f"power on {adapter}: {err}"
            _LOGGER.warning("%s: cannot power on %s: %s", self.receiver, adapter, err)
            return False
        return True

    async def _start(self, adapter: str) -> bool:
        self.stats.state = "starting"
        self.stats.adapter = adapter
        while True:
            args = BlueZScannerArgs(adapter=adapter)
            if self._mode == "passive":
                args["or_patterns"] = PASSIVE_PATTERNS
            scanner = BleakScanner(
                detection_callback=self.callback, scanning_mode=self._mode, bluez=args
            )
            try:
                async with asyncio.timeout(self.cfg.start_timeout_s):
                    await scanner.start()
            except _SCAN_ERRORS as err:
                reason = str(err) or type(err).__name__
                if self._mode == "passive" and "passive" in reason:
                    _LOGGER.warning(
                        "%s: BlueZ cannot scan passively on %s (%s); falling back to active "
                        "scanning",
                        self.receiver,
                        adapter,
                        reason,
                    )
                    self._mode = "active"
                    self.stats.mode = "active (passive unsupported)"
                    continue
                self.stats.start_failures += 1
                self.stats.last_error = f"start on {adapter}: {reason}"
                _LOGGER.warning(
                    "%s: cannot start scanning on %s: %s", self.receiver, adapter, reason
                )
                return False
            break
        self._scanner = scanner
        self._started_at = time.monotonic()
        self._adverts_at_start = self.stats.adverts
        self.stats.starts += 1
        self.stats.state = "scanning"
        _LOGGER.info("%s: scanning on %s (%s)", self.receiver, adapter, self._mode)
        return True

    async def _stop(self) -> None:
        scanner, self._scanner = self._scanner, None
        if scanner is None:
            return
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await scanner.stop()
        except _SCAN_ERRORS as err:
            # BlueZ gone, adapter gone, or discovery already dropped by a power cycle: the
            # scanner's callbacks are unregistered either way.
            _LOGGER.debug("%s: stop: %s", self.receiver, err)

    def _expected(self, now: float) -> bool:
        """Adverts are expected when this lane has heard any, or another lane hears some now."""
        if self.stats.adverts:
            return True
        window = self.cfg.watchdog_s
        return any(p is not self and now - p.stats.last_advert < window for p in self.peers)

    async def _supervise(self, adapter: str, generation: int) -> str:
        """Wait while scanning goes well; return why it stopped."""
        watch = self.watch
        primary = self.candidates[0]
        tick = min(1.0, self.cfg.watchdog_s / 4)
        while True:
            if watch.owner is None or watch.generation != generation:
                return "bluez"
            if adapter not in watch.adapters:
                return "removed"
            if not watch.adapters[adapter]:
                return "powered_off"
            now = time.monotonic()
            if (
                adapter != primary
                and watch.adapters.get(primary, False)
                and self._benched.get(primary, 0.0) <= now
            ):
                return "primary_back"
            quiet_since = max(self.stats.last_advert, self._started_at)
            if now - quiet_since > self.cfg.watchdog_s and self._expected(now):
                return "silent"
            await watch.wait_change(tick)

    async def _after(self, adapter: str, reason: str) -> None:
        """Log and count why the scanner stopped, and climb the ladder on silence."""
        stats = self.stats
        if reason == "bluez":
            stats.bluez_restarts += 1
            self._rung = 0
            _LOGGER.warning("%s: BlueZ restarted; scanning resumes when it is back", self.receiver)
            return
        if reason in ("removed", "powered_off"):
            stats.adapter_lost += 1
            self._rung = 0
            self._benched.pop(adapter, None)  # what comes back may be another dongle
            _LOGGER.warning("%s: adapter %s %s", self.receiver, adapter, reason.replace("_", " "))
            return
        if reason == "primary_back":
            self._index = 0
            self._moved(self.candidates[0], self.candidates[0], "is back")
            return
        stats.watchdog_trips += 1
        helped = stats.adverts > self._adverts_at_start
        self._rung = 1 if helped else self._rung + 1
        if self._rung == 1:
            stats.restarts += 1
            _LOGGER.warning(
                "%s: no adverts on %s for %.0f s; restarting the scan",
                self.receiver,
                adapter,
                self.cfg.watchdog_s,
            )
        elif self._rung == 2:
            stats.power_cycles += 1
            _LOGGER.warning(
                "%s: %s still silent after a restart; power-cycling it", self.receiver, adapter
            )
            await self._power_cycle(adapter)
        elif len(self.candidates) > 1:
            self._rung = 0
            self._benched[adapter] = time.monotonic() + self.cfg.restart_backoff_max_s
            self._index = (self._index + 1) % len(self.candidates)
            self._moved(adapter, self.candidates[self._index], "stays silent after a power cycle")
        else:
            rest = min(self.cfg.watchdog_s * 2 ** (self._rung - 2), self.cfg.restart_backoff_max_s)
            self.stats.state = "resting"
            _LOGGER.warning(
                "%s: %s stays silent after a power cycle; trying again in %.0f s",
                self.receiver,
                adapter,
                rest,
            )
            await asyncio.sleep(rest)

    async def _power_cycle(self, adapter: str) -> None:
        try:
            await self.watch.set_powered(adapter, False)
            await asyncio.sleep(POWER_OFF_S)
            await self.watch.set_powered(adapter, True)
        except _SCAN_ERRORS as err:
            self.stats.last_error = f"power cycle {adapter}: {err}"
            _LOGGER.warning("%s: power cycle of %s failed: %s", self.receiver, adapter, err)


class BleakSource:
    """Scans with the configured adapters through bleak, supervised."""

    def __init__(self, cfg: SourceConfig, bus_address: str | None = None) -> None:
        self.cfg = cfg
        self.name = "bleak:" + ",".join(cfg.adapters)
        self.live = True
        self.watch = BluezWatch(bus_address)
        self.lanes: list[Lane] = []

    def now(self) -> float:
        """The monotonic clock."""
        return time.monotonic()

    def wall_at(self, t: float) -> float:
        """Wall time of a monotonic instant."""
        return time.time() - (time.monotonic() - t)

    def adapter_health(self) -> list[AdapterHealth]:
        """Each lane's state and counters."""
        now = time.monotonic()
        return [lane.health(now) for lane in self.lanes]

    def _lanes(self, sink: AdvertSink) -> list[Lane]:
        cfg = self.cfg
        lanes: list[Lane] = []
        if cfg.adapter_policy == "failover":
            lanes.append(Lane(cfg.adapters[0], list(cfg.adapters), cfg, self.watch, sink, lanes))
        else:
            lanes.extend(Lane(a, [a], cfg, self.watch, sink, lanes) for a in cfg.adapters)
        return lanes

    async def run(self, sink: AdvertSink) -> None:
        """Scan until cancelled."""
        self.lanes = self._lanes(sink)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.watch.run(), name="bluez-watch")
                for lane in self.lanes:
                    tg.create_task(lane.run(), name=f"scan-{lane.receiver}")
        finally:
            with contextlib.suppress(Exception):
                self.watch.close()
