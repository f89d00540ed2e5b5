"""The bleak callback: every advert becomes an ``Advert`` with both clocks; a full queue drops
and counts, never blocks."""

from __future__ import annotations

import asyncio
import time

from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from edge_agent.config import SourceConfig
from edge_agent.runtime.sources import AdvertSink
from edge_agent.runtime.sources.bleak import Lane
from edge_agent.runtime.sources.bluez import BluezWatch


def _advert(n: int) -> tuple[BLEDevice, AdvertisementData]:
    address = f"C0:00:00:00:00:{n % 256:02X}"
    props = {"Address": address, "AddressType": "random"}
    adv = AdvertisementData(
        local_name=None,
        manufacturer_data={0x004C: b"\x02\x15" + bytes(21)},
        service_data={},
        service_uuids=[],
        tx_power=None,
        rssi=-60 - n % 20,
        platform_data=("/org/bluez/hci0/dev", props),
    )
    return BLEDevice(address, None, {"path": "/p", "props": props}), adv


def test_callback_offers_adverts_with_both_clocks_and_counts_drops() -> None:
    sink = AdvertSink(100)
    lane = Lane("hci0", ["hci0"], SourceConfig(), BluezWatch(), sink, [])
    before_t, before_wall = time.monotonic(), time.time()
    for n in range(150):
        lane.callback(*_advert(n))
    assert (sink.received, sink.dropped) == (100, 50)
    assert lane.stats.adverts == 150 and lane.stats.last_advert >= before_t
    first = sink.queue.get_nowait()
    assert first is not None
    assert first.receiver == "hci0" and first.address_type == "random"
    assert before_t <= first.t <= time.monotonic()
    assert before_wall <= first.wall <= time.time()
    assert first.rssi == -60 and first.manufacturer_data[0x004C][:2] == b"\x02\x15"
    health = lane.health(time.monotonic())
    assert health.adverts == 150 and health.silent_s is not None and health.silent_s < 5


def test_the_bluez_watch_survives_a_refresh_that_times_out() -> None:
    """A stuck bus must not end the watch (and with it the source and the agent)."""

    async def scenario() -> int:
        watch = BluezWatch()
        calls = 0

        async def refresh() -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise TimeoutError

        watch.refresh = refresh  # type: ignore[method-assign]
        task = asyncio.create_task(watch._refresher())
        for _ in range(2):
            watch._refresh_wanted.set()
            await asyncio.sleep(0.01)
        assert not task.done()
        task.cancel()
        return calls

    assert asyncio.run(scenario()) == 2
