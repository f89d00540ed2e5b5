"""The radio: one ``BleakScanner`` per configured adapter, feeding the sink from its callback."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AsyncExitStack
from typing import Any, Literal

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from edge_agent.errors import SourceError
from edge_agent.models import Advert
from edge_agent.sources import AdvertSink

_LOGGER = logging.getLogger(__name__)
START_TIMEOUT_S = 10.0


class BleakSource:
    """Scans with every configured adapter; the callback only builds an ``Advert`` and offers it."""

    def __init__(self, adapters: list[str], mode: Literal["active", "passive"] = "active") -> None:
        self.name = "bleak:" + ",".join(adapters)
        self.adapters = adapters
        self.mode = mode
        self.callbacks = 0

    def now(self) -> float:
        """The monotonic clock."""
        return time.monotonic()

    def wall_at(self, t: float) -> float:
        """Wall time of a monotonic instant."""
        return time.time() - (time.monotonic() - t)

    async def run(self, sink: AdvertSink) -> None:
        """Scan until cancelled."""
        async with AsyncExitStack() as stack:
            for adapter in self.adapters:
                scanner = BleakScanner(
                    detection_callback=self._callback(sink, adapter),
                    scanning_mode=self.mode,
                    bluez={},
                    adapter=adapter,
                )
                try:
                    async with asyncio.timeout(START_TIMEOUT_S):
                        await stack.enter_async_context(scanner)
                except (TimeoutError, BleakError, OSError) as err:
                    raise SourceError(f"bleak:{adapter}", f"cannot start scanning: {err}") from err
                _LOGGER.info("adapter %s: scanning (%s)", adapter, self.mode)
            await asyncio.Event().wait()

    def _callback(self, sink: AdvertSink, adapter: str) -> Any:
        def on_advert(device: BLEDevice, adv: AdvertisementData) -> None:
            self.callbacks += 1
            t = time.monotonic()
            details = device.details if isinstance(device.details, dict) else {}
            props = details.get("props", {}) if isinstance(details, dict) else {}
            sink.offer(
                Advert(
                    address=device.address,
                    rssi=adv.rssi,
                    t=t,
                    wall=time.time(),
                    receiver=adapter,
                    address_type=str(props.get("AddressType", "public")),
                    manufacturer_data=adv.manufacturer_data,
                    service_data=adv.service_data,
                    service_uuids=tuple(adv.service_uuids),
                    local_name=adv.local_name,
                    tx_power=adv.tx_power,
                )
            )

        return on_advert
