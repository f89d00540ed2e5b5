"""Advertisers that only add work in a dense store, dropped before any (``pipeline.drop``).

Phones, laptops and trackers announce themselves many times a second for their own ecosystems:
none of it places a cart, a badge or a sensor. Each rule is matched on the raw advert (a
company id, a 16-bit service UUID), before decoding, identity and smoothing, and counted in
``health.decode.dropped``. Apple Continuity (AirDrop, Handoff, Nearby Info …) is what phones
send: dropping it stops phones being counted as shoppers, so it is not dropped unless asked.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from edge_agent.models import Advert


def _uuid16(short: int) -> str:
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


APPLE: Final = 0x004C
IBEACON_TYPE: Final = 0x02
COMPANIES: Final = {"microsoft_cdp": 0x0006}
"""Rules that match a manufacturer's company id."""
SERVICES: Final = {
    "exposure_notification": frozenset({_uuid16(0xFD6F)}),
    "tile": frozenset({_uuid16(0xFEED), _uuid16(0xFEEC), _uuid16(0xFD84)}),
    "fast_pair": frozenset({_uuid16(0xFE2C)}),
}
"""Rules that match a service UUID (in the service data or the advertised list)."""
RULES: Final = ("apple_continuity", *COMPANIES, *SERVICES)
"""Every rule ``pipeline.drop`` may name."""
DEFAULT: Final = ("microsoft_cdp", "exposure_notification", "tile", "fast_pair")
"""Dropped unless the configuration says otherwise."""


class Chatter:
    """The configured rules, compiled: ``match`` names the rule an advert falls under."""

    __slots__ = ("_apple", "_companies", "_services")

    def __init__(self, rules: Iterable[str]) -> None:
        chosen = set(rules)
        self._apple = "apple_continuity" in chosen
        self._companies = {cid: name for name, cid in COMPANIES.items() if name in chosen}
        self._services = {u: name for name, us in SERVICES.items() if name in chosen for u in us}

    def __bool__(self) -> bool:
        return bool(self._apple or self._companies or self._services)

    def match(self, adv: Advert) -> str | None:
        """The rule that drops ``adv``, or ``None`` to keep it."""
        mfr = adv.manufacturer_data
        if mfr:
            for cid, data in mfr.items():
                if cid == APPLE:
                    if self._apple and data[:1] != bytes([IBEACON_TYPE]):
                        return "apple_continuity"
                elif cid in self._companies:
                    return self._companies[cid]
        services = self._services
        if services:
            for uuid in adv.service_data:
                if uuid in services:
                    return services[uuid]
            for uuid in adv.service_uuids:
                if uuid in services:
                    return services[uuid]
        return None
