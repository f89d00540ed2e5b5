"""The baseline of the radio path: bleak's BlueZ backend scanning one adapter with a callback
that only counts — what D-Bus and bleak cost before any program does anything with an advert.
``python -m tests.bench.bare_bleak hci0``; prints ``scanning`` once it scans."""

from __future__ import annotations

import asyncio
import sys

from bleak import BleakScanner


async def main(adapter: str) -> None:
    seen = 0

    def count(_device: object, _adv: object) -> None:
        nonlocal seen
        seen += 1

    async with BleakScanner(count, bluez={"adapter": adapter}, scanning_mode="active"):
        print("scanning", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "hci0"))
