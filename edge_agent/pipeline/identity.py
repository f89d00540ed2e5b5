"""Decides what a device is called on the wire. Raw addresses never leave this stage.

Registered devices (``[[devices]]``, ``[[fleets]]`` and the consent list) keep their configured
id. Every other device is handled by the policy of its address class:

- ``track``: published under its own broadcast id where it has one (a beacon id), else under
  its pseudonym;
- ``pseudonymous``: published under its pseudonym only;
- ``count_only``: counted in zone occupancy, never published on its own;
- ``ignore``: its adverts are dropped here (counted).

A pseudonym is a truncated HMAC-SHA256 of the address (or beacon id) under a key that lives only
in memory and is replaced every day at ``privacy.rotate_at`` local time, the old key overwritten:
pseudonyms are stable within a day and cannot be linked across days, not even by us.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from edge_agent.config import AgentConfig
from edge_agent.ids import is_address, normalise_match
from edge_agent.models import (
    BEACON_ID_FRAMES,
    SENSOR_FRAMES,
    Advert,
    AltBeaconFrame,
    Consent,
    DeviceClass,
    EddystoneUIDFrame,
    Frame,
    IBeaconFrame,
)
from edge_agent.pipeline.recent import Recent

CACHE_GENERATION = 32_768
"""Resolutions kept per generation (``Recent``), at least, or ``pipeline.max_devices`` when
more: well above the addresses a busy store hears in any quarter of an hour, and bounded
whatever the churn."""
KEY_BYTES = 32


class AddressClass(StrEnum):
    """The kind of Bluetooth address a device advertises from (Core spec, Vol 6, Part B, 1.3)."""

    PUBLIC = "public"
    RANDOM_STATIC = "random_static"
    RESOLVABLE = "resolvable"
    NON_RESOLVABLE = "non_resolvable"


class Policy(StrEnum):
    """What is done with an unregistered device (see the module docstring)."""

    TRACK = "track"
    PSEUDONYMOUS = "pseudonymous"
    COUNT_ONLY = "count_only"
    IGNORE = "ignore"


def address_class(address: str, address_type: str) -> AddressClass:
    """Classify an address: BlueZ says public or random; a random one's two top bits say which.

    ``0b11`` static, ``0b01`` resolvable private, ``0b00`` non-resolvable private; the reserved
    ``0b10`` is treated as non-resolvable (the strictest default).
    """
    if address_type != "random":
        return AddressClass.PUBLIC
    try:
        top = int(address[:2], 16) >> 6
    except ValueError:
        return AddressClass.NON_RESOLVABLE
    if top == 0b11:
        return AddressClass.RANDOM_STATIC
    if top == 0b01:
        return AddressClass.RESOLVABLE
    return AddressClass.NON_RESOLVABLE


def _at(local: datetime, rotate_at: str) -> float:
    """``local``'s day at the clock time ``rotate_at`` (``HH:MM[:SS]``), as epoch seconds."""
    hour, minute, second = (int(p) for p in (rotate_at + ":00").split(":")[:3])
    return local.replace(hour=hour, minute=minute, second=second, microsecond=0).timestamp()


def next_rotation(wall: float, rotate_at: str, tz: ZoneInfo) -> float:
    """The first instant after ``wall`` at which the local clock in ``tz`` reads ``rotate_at``."""
    local = datetime.fromtimestamp(wall, tz)
    today = _at(local, rotate_at)
    return today if today > wall else _at(local + timedelta(days=1), rotate_at)


def previous_rotation(boundary: float, rotate_at: str, tz: ZoneInfo) -> float:
    """The rotation one local day before ``boundary`` (23 or 25 hours across a DST change)."""
    return _at(datetime.fromtimestamp(boundary, tz) - timedelta(days=1), rotate_at)


@dataclass(slots=True, frozen=True)
class DeviceRef:
    """Who an advert is from, as the rest of the pipeline may know it."""

    id: str
    """Id used on the wire (configured id, beacon id or pseudonym); a topic segment."""
    kind: DeviceClass
    """What the device is."""
    registered: bool
    """True for devices named in the configuration or the consent list."""
    tx_power_1m: int | None
    """Configured RSSI at 1 m, overriding what the frame says."""
    publish: bool = True
    """False for ``count_only`` devices: tracked for occupancy counts, never published alone."""
    presence: bool = True
    """False for sensors and fixed devices: the zone machine does not follow them."""
    zone: str | None = None
    """The zone a fixed device stands in (its readings say it)."""
    consented: bool = False
    """Named by the consent list (a shopper who agreed), not by the configuration."""


@dataclass(slots=True)
class IdentityStats:
    """Counters of the identity stage (``health.privacy``)."""

    key_rotations: int = 0
    """Pseudonym keys replaced (one a day, and on a backward clock step over a boundary)."""
    ignored: int = 0
    """Adverts dropped by the ``ignore`` policy."""
    count_only: int = 0
    """Adverts from ``count_only`` devices."""


def beacon_wire_id(beacon_id: str) -> str:
    """Topic-safe id of an unregistered beacon (under the ``track`` policy)."""
    return beacon_id.replace(":", "-")


STORE_KEY_LABEL = b"edge-agent pseudonym day key v1\x00"
"""Domain separation of the day keys derived from a store secret."""


def store_day_keys(secret: bytes) -> Callable[[float], bytes]:
    """Day keys for ``Identity(day_keys=…)`` derived from the store's secret and the end of the
    day: every gateway of the store holding the secret gives a device the same pseudonym that
    day, and nobody without it can compute or link them. The secret itself never leaves."""
    key = bytes(secret)

    def day_key(day_end: float) -> bytes:
        return hmac.new(
            key, STORE_KEY_LABEL + str(round(day_end)).encode(), hashlib.sha256
        ).digest()

    return day_key


class Identity:
    """Maps adverts to ``DeviceRef``s; holds the pseudonym key in memory only.

    ``key`` is the first day's key (random when not given), and every later day's key is
    random. With ``day_keys``, every day's key is instead ``day_keys(end of that day)``: a
    replay derives them from the recording's content, so it gives the same pseudonyms every
    time, across a rotation too.
    """

    def __init__(
        self,
        cfg: AgentConfig,
        key: bytes | None = None,
        consents: list[Consent] | None = None,
        day_keys: Callable[[float], bytes] | None = None,
    ) -> None:
        pv = cfg.privacy
        self._devices = cfg.devices
        self._policy = {
            AddressClass.PUBLIC: Policy(pv.policy.public),
            AddressClass.RANDOM_STATIC: Policy(pv.policy.random_static),
            AddressClass.RESOLVABLE: Policy(pv.policy.resolvable),
            AddressClass.NON_RESOLVABLE: Policy(pv.policy.non_resolvable),
        }
        self._rotate_at = pv.rotate_at
        self._tz = ZoneInfo(pv.timezone)
        self._day_keys = day_keys
        self._key = bytearray(key or secrets.token_bytes(KEY_BYTES))
        self._period: tuple[float, float] | None = None  # [start, end) of the key's day
        self._fleets = {f.ibeacon_uuid: f for f in cfg.fleets}
        self._by_address: dict[str, DeviceRef] = {}
        self._by_beacon: dict[str, DeviceRef] = {}
        size = max(CACHE_GENERATION, cfg.pipeline.max_devices)  # a generation holds them all
        self._cache: Recent[str, DeviceRef | None] = Recent(size)
        self._address_links: Recent[str, DeviceRef] = Recent(size)
        self.stats = IdentityStats()
        self.set_consents(consents or [])

    # ------------------------------------------------------------- registry

    def set_consents(self, consents: list[Consent]) -> None:
        """Registered devices are the configuration's plus these (replacing earlier ones)."""
        by_address: dict[str, DeviceRef] = {}
        by_beacon: dict[str, DeviceRef] = {}
        for c in consents:
            ref = DeviceRef(
                c.id, c.kind, True, None, presence=c.kind is not DeviceClass.SENSOR, consented=True
            )
            (by_address if c.is_address else by_beacon)[c.match] = ref
        for d in self._devices:  # the configuration wins over the consent list
            ref = DeviceRef(
                d.id, d.kind, True, d.tx_power_1m_dbm, presence=d.tracks_presence, zone=d.zone
            )
            if d.address:
                by_address[d.address.upper()] = ref
            if d.beacon:
                by_beacon[d.beacon] = ref
        self._by_address, self._by_beacon = by_address, by_beacon
        self._clear_caches()

    def ids_for(self, device: str) -> set[str]:
        """Every wire id ``device`` (a wire id, an address or a beacon id) may have today.

        An address or beacon id given is never returned itself: these ids become topics.
        """
        try:
            match = normalise_match(device)
        except ValueError:
            return {device}  # already a wire id
        out = {self.pseudonym(match)}
        for table in (self._by_address, self._by_beacon):
            if match in table:
                out.add(table[match].id)
        if not is_address(match):
            out.add(beacon_wire_id(match))
        return out

    # ------------------------------------------------------------ pseudonyms

    def pseudonym(self, value: str) -> str:
        """Keyed, truncated HMAC-SHA256: stable while today's key lives (addresses compare
        case-insensitively)."""
        if len(value) == 17 and value[2] == ":":
            value = value.upper()
        digest = hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()
        return f"p-{digest[:16]}"

    def _maybe_rotate(self, wall: float) -> None:
        period = self._period
        if period is not None and period[0] <= wall < period[1]:
            return
        if not math.isfinite(wall):
            new_period = (-math.inf, math.inf)
        else:
            end = next_rotation(wall, self._rotate_at, self._tz)
            new_period = (min(previous_rotation(end, self._rotate_at, self._tz), wall), end)
        if period is not None:  # a new day (or the clock went back over a boundary)
            self.stats.key_rotations += 1
            self._clear_caches()
        if self._day_keys is not None:
            self._replace_key(self._day_keys(new_period[1]))
        elif period is not None:
            self._replace_key(secrets.token_bytes(KEY_BYTES))
        self._period = new_period

    def _replace_key(self, key: bytes) -> None:
        for i in range(len(self._key)):
            self._key[i] = 0  # destroy the old key before dropping it
        self._key = bytearray(key)

    def key_bytes(self) -> bytes:
        """The current pseudonym key (to carry it over a reload; never logged or stored)."""
        return bytes(self._key)

    @property
    def day_keys(self) -> Callable[[float], bytes] | None:
        """Where each day's key comes from (``None``: random)."""
        return self._day_keys

    def continue_from(self, old: Identity) -> None:
        """Go on with ``old``'s day (its key given to ``__init__``) and counters; the runtime
        sets the consents again."""
        self._period = old._period
        self.stats = old.stats

    @property
    def key_since(self) -> float:
        """When today's key began (inf before the first advert or tick)."""
        return math.inf if self._period is None else self._period[0]

    @property
    def key_until(self) -> float:
        """When today's key is to be replaced (-inf before the first advert or tick)."""
        return -math.inf if self._period is None else self._period[1]

    def tick(self, wall: float) -> bool:
        """Replace the key when ``wall`` is past its day (or before it: the clock stepped
        back). True when it was replaced, so every pseudonym made with the old one is void."""
        before = self.stats.key_rotations
        self._maybe_rotate(wall)
        return self.stats.key_rotations != before

    def forget(self, devices: set[str]) -> None:
        """Drop cached resolutions to these wire ids (erasure)."""
        self._cache.drop_if(lambda ref: ref is not None and ref.id in devices)
        self._address_links.drop_if(lambda ref: ref.id in devices)

    def _clear_caches(self) -> None:
        self._cache.clear()
        self._address_links.clear()

    # --------------------------------------------------------------- resolve

    def resolve(self, advert: Advert, frames: list[Frame]) -> DeviceRef | None:
        """The device an advert comes from, or ``None`` when policy says to ignore it."""
        if self._period is None:
            self._maybe_rotate(advert.wall)
        address = advert.address
        for frame in frames:
            if isinstance(frame, BEACON_ID_FRAMES):
                ref = self._beacon(frame, advert)
                if ref is not None:
                    self._address_links[address] = ref
                return self._counted(ref)
        try:
            return self._counted(self._address_links[address])
        except KeyError:
            pass  # e.g. Eddystone-TLM from a beacon whose UID was seen
        try:
            ref = self._cache[address]
        except KeyError:
            ref = self._by_address_ref(advert, frames)
            self._cache[address] = ref
        return self._counted(ref)

    def _counted(self, ref: DeviceRef | None) -> DeviceRef | None:
        if ref is None:
            self.stats.ignored += 1
        elif not ref.publish:
            self.stats.count_only += 1
        return ref

    def _unregistered(
        self, advert: Advert, kind: DeviceClass, natural: str | None, hashed: str
    ) -> DeviceRef | None:
        policy = self._policy[address_class(advert.address, advert.address_type)]
        if policy is Policy.IGNORE:
            return None
        presence = kind is not DeviceClass.SENSOR
        if policy is Policy.TRACK and natural is not None:
            return DeviceRef(natural, kind, False, None, presence=presence)
        publish = policy is not Policy.COUNT_ONLY
        return DeviceRef(self.pseudonym(hashed), kind, False, None, publish, presence)

    def _beacon(
        self, frame: IBeaconFrame | AltBeaconFrame | EddystoneUIDFrame, advert: Advert
    ) -> DeviceRef | None:
        beacon_id = frame.beacon_id
        key = f"{beacon_id}|{advert.address_type}|{advert.address[:2]}"
        try:
            return self._cache[key]
        except KeyError:
            pass
        ref = self._by_beacon.get(beacon_id)
        if ref is None and isinstance(frame, IBeaconFrame) and frame.uuid in self._fleets:
            fleet = self._fleets[frame.uuid]
            wire = fleet.id_format.format(
                kind=fleet.kind.value, major=frame.major, minor=frame.minor
            )
            ref = DeviceRef(
                wire, fleet.kind, True, None, presence=fleet.kind is not DeviceClass.SENSOR
            )
        if ref is None:
            ref = self._unregistered(
                advert, DeviceClass.BEACON, beacon_wire_id(beacon_id), beacon_id
            )
        self._cache[key] = ref
        return ref

    def _by_address_ref(self, advert: Advert, frames: list[Frame]) -> DeviceRef | None:
        address = advert.address.upper()
        ref = self._by_address.get(address)
        if ref is not None:
            return ref
        is_sensor = any(isinstance(f, SENSOR_FRAMES) for f in frames)
        kind = DeviceClass.SENSOR if is_sensor else DeviceClass.UNKNOWN
        return self._unregistered(advert, kind, None, address)
