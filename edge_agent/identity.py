"""Decides what a device is called on the wire. Raw addresses never leave this stage.

Registered devices keep their configured id; beacons keep their beacon id (or their fleet's id);
everything else gets a keyed pseudonym. The key lives only in memory. (The privacy issue adds
address classes, policies, daily key rotation and consent on top of this.)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from edge_agent.config import AgentConfig
from edge_agent.models import (
    Advert,
    AltBeaconFrame,
    BTHomeFrame,
    DeviceClass,
    EddystoneUIDFrame,
    Frame,
    IBeaconFrame,
    RuuviFrame,
)

MAX_CACHED = 100_000


@dataclass(slots=True, frozen=True)
class DeviceRef:
    """Who an advert is from, as the rest of the pipeline may know it."""

    id: str
    """Id used on the wire (configured id, beacon id or pseudonym); a topic segment."""
    kind: DeviceClass
    """What the device is."""
    registered: bool
    """True for devices named in the configuration (devices and fleets)."""
    tx_power_1m: int | None
    """Configured RSSI at 1 m, overriding what the frame says."""


def beacon_wire_id(frame: IBeaconFrame | AltBeaconFrame | EddystoneUIDFrame) -> str:
    """Topic-safe id of an unregistered beacon."""
    return frame.beacon_id.replace(":", "-")


class Identity:
    """Maps adverts to ``DeviceRef``s; holds the pseudonym key in memory only."""

    def __init__(self, cfg: AgentConfig, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)
        self._by_address = {d.address.upper(): d for d in cfg.devices if d.address}
        self._by_beacon = {d.beacon: d for d in cfg.devices if d.beacon}
        self._fleets = {f.ibeacon_uuid: f for f in cfg.fleets}
        self._cache: dict[str, DeviceRef] = {}
        self._address_links: dict[str, DeviceRef] = {}

    def pseudonym(self, address: str) -> str:
        """Keyed, truncated HMAC-SHA256 of the address: stable while the key lives."""
        digest = hmac.new(self._key, address.upper().encode(), hashlib.sha256).hexdigest()
        return f"p-{digest[:16]}"

    def resolve(self, advert: Advert, frames: list[Frame]) -> DeviceRef:
        """The device an advert comes from."""
        address = advert.address
        for frame in frames:
            if isinstance(frame, IBeaconFrame | AltBeaconFrame | EddystoneUIDFrame):
                ref = self._beacon(frame)
                if len(self._address_links) > MAX_CACHED:
                    self._address_links.clear()
                self._address_links[address] = ref
                return ref
        linked = self._address_links.get(address)
        if linked is not None:
            return linked  # e.g. Eddystone-TLM from a beacon whose UID frame was seen
        cached = self._cache.get(address)
        if cached is not None:
            return cached
        ref = self._by_address_ref(address, frames)
        if len(self._cache) > MAX_CACHED:
            self._cache.clear()
        self._cache[address] = ref
        return ref

    def _beacon(self, frame: IBeaconFrame | AltBeaconFrame | EddystoneUIDFrame) -> DeviceRef:
        beacon_id = frame.beacon_id
        ref = self._cache.get(beacon_id)
        if ref is not None:
            return ref
        dev = self._by_beacon.get(beacon_id)
        if dev is not None:
            ref = DeviceRef(dev.id, dev.kind, True, dev.tx_power_1m_dbm)
        elif isinstance(frame, IBeaconFrame) and frame.uuid in self._fleets:
            fleet = self._fleets[frame.uuid]
            wire = fleet.id_format.format(
                kind=fleet.kind.value, major=frame.major, minor=frame.minor
            )
            ref = DeviceRef(wire, fleet.kind, True, None)
        else:
            ref = DeviceRef(beacon_wire_id(frame), DeviceClass.BEACON, False, None)
        self._cache[beacon_id] = ref
        return ref

    def _by_address_ref(self, address: str, frames: list[Frame]) -> DeviceRef:
        dev = self._by_address.get(address.upper())
        if dev is not None:
            return DeviceRef(dev.id, dev.kind, True, dev.tx_power_1m_dbm)
        is_sensor = any(isinstance(f, BTHomeFrame | RuuviFrame) for f in frames)
        kind = DeviceClass.SENSOR if is_sensor else DeviceClass.UNKNOWN
        return DeviceRef(self.pseudonym(address), kind, False, None)
