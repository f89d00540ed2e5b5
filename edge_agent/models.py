"""Records handed from one pipeline stage to the next.

Each is a frozen, slotted dataclass: cheap to create on the hot path and impossible to mutate
behind the next stage's back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, Final

from edge_agent.ids import is_address

EMPTY_MFR: Mapping[int, bytes] = {}
EMPTY_SVC: Mapping[str, bytes] = {}


@dataclass(slots=True, frozen=True)
class Advert:
    """One advertisement as a receiver heard it (the shape of bleak's ``AdvertisementData``)."""

    address: str
    """Advertiser address ``AA:BB:CC:DD:EE:FF``. Never leaves the identity stage."""
    rssi: int
    """Received signal strength in dBm."""
    t: float
    """Monotonic time of reception in seconds, on the source's clock (virtual in simulation)."""
    wall: float
    """Wall-clock time of reception, seconds since the Unix epoch (UTC)."""
    receiver: str
    """Which receiver heard it: the adapter (``hci0``) or the simulated receiver's id."""
    address_type: str = "public"
    """``public`` or ``random`` as BlueZ reports it; the identity stage refines ``random``."""
    manufacturer_data: Mapping[int, bytes] = field(default_factory=lambda: EMPTY_MFR)
    """Manufacturer-specific data by 16-bit company id, without the id bytes."""
    service_data: Mapping[str, bytes] = field(default_factory=lambda: EMPTY_SVC)
    """Service data by 128-bit lowercase service UUID string."""
    service_uuids: tuple[str, ...] = ()
    """Advertised service UUIDs."""
    local_name: str | None = None
    """Complete or shortened local name, when advertised."""
    tx_power: int | None = None
    """TX power level AD field in dBm, when advertised."""


class FrameKind(StrEnum):
    """What a decoded frame is, used to route it in the context engine."""

    IBEACON = "ibeacon"
    ALTBEACON = "altbeacon"
    EDDYSTONE_UID = "eddystone_uid"
    EDDYSTONE_URL = "eddystone_url"
    EDDYSTONE_TLM = "eddystone_tlm"
    EDDYSTONE_EID = "eddystone_eid"
    BTHOME = "bthome"
    RUUVI = "ruuvi"


@dataclass(slots=True, frozen=True)
class IBeaconFrame:
    """Apple iBeacon (manufacturer 0x004C, type 0x02, length 0x15)."""

    uuid: str
    """Proximity UUID, canonical lowercase form."""
    major: int
    """Major, 0–65535."""
    minor: int
    """Minor, 0–65535."""
    tx_power: int
    """Measured power: RSSI at 1 m in dBm, as calibrated in the beacon."""

    kind = FrameKind.IBEACON

    @property
    def beacon_id(self) -> str:
        """Stable id of the beacon: ``ibeacon:<uuid>:<major>:<minor>``."""
        return f"ibeacon:{self.uuid}:{self.major}:{self.minor}"


@dataclass(slots=True, frozen=True)
class AltBeaconFrame:
    """AltBeacon (any manufacturer id, beacon code 0xBEAC)."""

    manufacturer_id: int
    """Company id the beacon advertises under."""
    beacon_id_bytes: bytes
    """The 20-byte beacon id (by convention a 16-byte UUID, 2-byte id2, 2-byte id3)."""
    tx_power: int
    """Reference RSSI at 1 m in dBm."""
    reserved: int
    """Manufacturer-reserved byte."""

    kind = FrameKind.ALTBEACON

    @property
    def beacon_id(self) -> str:
        """Stable id: ``altbeacon:<40 hex digits>``."""
        return f"altbeacon:{self.beacon_id_bytes.hex()}"


@dataclass(slots=True, frozen=True)
class EddystoneUIDFrame:
    """Eddystone-UID: 10-byte namespace and 6-byte instance."""

    namespace: str
    """Namespace id, 20 lowercase hex digits."""
    instance: str
    """Instance id, 12 lowercase hex digits."""
    tx_power: int
    """Calibrated TX power at 0 m in dBm (subtract 41 dB for 1 m)."""

    kind = FrameKind.EDDYSTONE_UID

    @property
    def beacon_id(self) -> str:
        """Stable id: ``eddystone:<namespace>:<instance>``."""
        return f"eddystone:{self.namespace}:{self.instance}"


@dataclass(slots=True, frozen=True)
class EddystoneURLFrame:
    """Eddystone-URL: a compressed URL."""

    url: str
    """The expanded URL."""
    tx_power: int
    """Calibrated TX power at 0 m in dBm."""

    kind = FrameKind.EDDYSTONE_URL


@dataclass(slots=True, frozen=True)
class EddystoneTLMFrame:
    """Eddystone-TLM (unencrypted, version 0): beacon telemetry."""

    battery_mv: int | None
    """Battery voltage in mV; ``None`` when the beacon reports 0 (not supported)."""
    temperature_c: float | None
    """Beacon temperature in °C (8.8 fixed point); ``None`` for 0x8000 (not supported)."""
    adv_count: int
    """Advertising PDUs sent since power-up."""
    uptime_s: float
    """Time since power-up in seconds (0.1 s resolution)."""

    kind = FrameKind.EDDYSTONE_TLM


@dataclass(slots=True, frozen=True)
class EddystoneEIDFrame:
    """Eddystone-EID: a rotating ephemeral id (recognised, not resolved)."""

    eid: str
    """The 8-byte ephemeral id, 16 lowercase hex digits."""
    tx_power: int
    """Calibrated TX power at 0 m in dBm."""

    kind = FrameKind.EDDYSTONE_EID


@dataclass(slots=True, frozen=True)
class Measurement:
    """One typed value from a sensor frame."""

    name: str
    """Measurement name, e.g. ``temperature``, ``door``, ``battery``."""
    value: float | int | bool | str
    """Scaled value in ``unit``; booleans for binary sensors, strings for text and events."""
    unit: str | None
    """Unit symbol (``°C``, ``%``, ``hPa`` …), ``None`` when dimensionless."""
    object_id: int | None = None
    """BTHome object id the value came from (several ids share a name at different scales)."""


@dataclass(slots=True, frozen=True)
class BTHomeFrame:
    """BTHome v2 service data (UUID 0xFCD2)."""

    encrypted: bool
    """True when the payload came encrypted; without its bind key nothing is decoded."""
    trigger_based: bool
    """True when the device sends on events rather than at a regular interval."""
    packet_id: int | None
    """Packet id (object 0x00) when present, used to drop repeats."""
    measurements: tuple[Measurement, ...]
    """Decoded objects, in payload order."""
    partial: str | None = None
    """Why some of the payload was not decoded (``unknown_object``, ``truncated``,
    ``binary_value`` …): the objects kept are those before or around it; ``None`` when all was."""

    kind = FrameKind.BTHOME


@dataclass(slots=True, frozen=True)
class RuuviFrame:
    """Ruuvi RAWv2 (data format 5); ``None`` wherever the tag reports "not available"."""

    temperature_c: float | None
    """Temperature in °C, 0.005 °C resolution."""
    humidity_pct: float | None
    """Relative humidity in %, 0.0025 % resolution."""
    pressure_pa: int | None
    """Air pressure in Pa."""
    accel_mg: tuple[int | None, int | None, int | None]
    """Acceleration x, y, z in milli-g."""
    battery_mv: int | None
    """Battery voltage in mV."""
    tx_power: int | None
    """TX power in dBm."""
    movement_counter: int | None
    """Movement counter, 0–254."""
    sequence: int | None
    """Measurement sequence number, 0–65534."""
    mac: str | None
    """The MAC address the tag puts in its payload (``AA:BB:…``); treated as an address."""

    kind = FrameKind.RUUVI


Frame = (
    IBeaconFrame
    | AltBeaconFrame
    | EddystoneUIDFrame
    | EddystoneURLFrame
    | EddystoneTLMFrame
    | EddystoneEIDFrame
    | BTHomeFrame
    | RuuviFrame
)
SENSOR_FRAMES: Final = (BTHomeFrame, RuuviFrame)
"""Frames that carry readings (``isinstance`` with a tuple: no union built per call)."""
BEACON_ID_FRAMES: Final = (IBeaconFrame, AltBeaconFrame, EddystoneUIDFrame)
"""Frames that name a beacon (``beacon_id``)."""


class DeviceClass(StrEnum):
    """What a device is for the store; drives occupancy counts and policies."""

    CART = "cart"
    STAFF = "staff"
    ASSET = "asset"
    SHOPPER = "shopper"
    SENSOR = "sensor"
    BEACON = "beacon"
    UNKNOWN = "unknown"


@dataclass(slots=True, frozen=True)
class Consent:
    """One consenting device (an entry of the consent list)."""

    match: str
    """Address ``AA:BB:CC:DD:EE:FF`` (upper case) or beacon id the device is recognised by."""
    id: str
    """Stable id it is published under (a topic segment)."""
    kind: DeviceClass
    """What it is (usually ``shopper`` for an app beacon)."""
    added: float
    """When consent was recorded, seconds since the epoch."""

    @property
    def is_address(self) -> bool:
        """True when ``match`` is a Bluetooth address."""
        return is_address(self.match)


@dataclass(slots=True, frozen=True)
class SampleEstimate:
    """One advert after smoothing and the distance model."""

    t: float
    """Source time of the sample (epoch seconds for captures and recordings)."""
    receiver: str
    """Receiver that heard it."""
    device: str
    """Wire id of the device (never its address)."""
    rssi: int
    """RSSI as received, dBm."""
    rssi_smoothed: float
    """Smoothed RSSI after the receiver's offset, dBm."""
    distance_m: float
    """Distance from the log-distance model, metres."""


class Priority(IntEnum):
    """Eviction order when the outbox is full: the lowest goes first."""

    UPDATE = 0
    """Rate-limited presence ``update``s: the next one says the same."""
    HEALTH = 1
    """Beacon health (refreshed every interval)."""
    PRESENCE = 2
    """``enter``, ``exit`` and zone occupancy."""
    READING = 3
    """Sensor readings."""
    ALARM = 4
    """Binary and event readings (door, smoke, button …) and trigger-based frames."""


@dataclass(slots=True, frozen=True)
class PresenceBody:
    """``presence/{device}``: a device entered, is still in, or left a zone."""

    device: str
    """Wire id: configured id, beacon id or pseudonym."""
    device_class: str
    """``DeviceClass`` value."""
    zone: str
    """The zone the event is about."""
    band: str
    """Proximity band to the nearest receiver (``immediate`` … ``gone``)."""
    receiver: str | None
    """Nearest receiver (``None`` when none hears it any more)."""
    distance_m: float | None
    """Estimated distance to it, metres."""
    distance_range_m: tuple[float, float] | None
    """One standard deviation either side of ``distance_m``, metres."""
    rssi: float | None
    """Smoothed RSSI at it, dBm."""
    dwell_s: float
    """Time in the zone so far (0 on ``enter``)."""
    confidence: float
    """Probability that the device is where the event says (on a floor plan: the zone's
    probability)."""
    x: float | None = None
    """Fused position on the floor plan, metres (``None`` without a plan)."""
    y: float | None = None
    """Fused position on the floor plan, metres."""
    position_error_m: float | None = None
    """Spread of the fused position, metres."""


@dataclass(slots=True, frozen=True)
class OccupancyBody:
    """``zone/{zone}/occupancy`` (retained): how many are in a zone, k-anonymous."""

    zone: str
    """The zone."""
    counts: Mapping[str, int]
    """Devices by class; classes with 1 to k-1 devices are left out (``fewer_than_k``)."""
    fewer_than_k: tuple[str, ...]
    """Classes present with fewer than k devices."""
    k: int
    """The k-anonymity threshold in force."""
    total: int | None
    """Devices in the zone; ``None`` when from 1 to k-1."""
    mean_dwell_s: float | None
    """Mean time in the zone of those present; ``None`` when nobody is, or fewer than k are."""
    window_s: float
    """Reporting interval, seconds."""


@dataclass(slots=True, frozen=True)
class MeasurementValue:
    """One published measurement."""

    value: float | int | bool | str
    """The value in ``unit``."""
    unit: str | None
    """Unit symbol, ``None`` when dimensionless."""


@dataclass(slots=True, frozen=True)
class ReadingBody:
    """``sensor/{device}``: a sensor reading."""

    device: str
    """Wire id of the sensor."""
    device_class: str
    """``DeviceClass`` value."""
    format: str
    """``bthome`` or ``ruuvi``."""
    measurements: Mapping[str, MeasurementValue]
    """Name → value and unit."""
    rssi: float | None
    """RSSI of the advert it came in, dBm."""
    zone: str | None = None
    """The zone a fixed sensor stands in (``[[devices]] zone``), else ``None``."""


@dataclass(slots=True, frozen=True)
class BeaconHealthBody:
    """``beacon/{device}/health`` (retained): battery and liveness of a beacon."""

    device: str
    """Wire id of the beacon."""
    device_class: str
    """``DeviceClass`` value."""
    battery_mv: int | None
    """Battery voltage (Eddystone-TLM), mV."""
    tx_power_dbm: int | None
    """RSSI at 1 m the beacon advertises, dBm."""
    observed_interval_s: float | None
    """Mean time between its adverts, seconds."""
    missing: bool
    """Not heard for a whole reporting interval."""
    last_seen_s_ago: float
    """Seconds since it was last heard."""
    zone: str | None = None
    """The zone a fixed beacon stands in (``[[devices]] zone``), else ``None``."""


@dataclass(slots=True, frozen=True)
class MomentBody:
    """``moment/{name}``: a moment that matters, about one subject or one place."""

    name: str
    """The rule's name."""
    trigger: str
    """``dwell``, ``sequence``, ``crowd``, ``sensor`` or ``absence``."""
    state: str
    """``instant`` (dwell, sequence), ``start`` or ``end`` (crowd, sensor, absence)."""
    subject: str | None
    """Wire id of the device it is about (consented or registered only), ``None`` for a place."""
    subject_class: str | None
    """Its ``DeviceClass`` value."""
    zone: str | None
    """Where."""
    started: float
    """When the condition began to hold (epoch seconds; the dwell's entry, the crowd's start)."""
    duration_s: float
    """How long it has held: to the firing, or (on ``end``) in all."""
    facts: Mapping[str, float | int | str | bool]
    """What triggered it (``dwell_s``, ``count``, ``value``, ``threshold``, ``zones`` …)."""


@dataclass(slots=True, frozen=True)
class MomentCountBody:
    """``moment/{name}/count``: how many anonymous devices met a rule in one interval."""

    name: str
    """The rule's name."""
    trigger: str
    """``dwell`` or ``sequence``."""
    zone: str | None
    """The zone (the last of a sequence)."""
    count: int | None
    """Devices that met it; ``None`` when from 1 to k-1."""
    fewer_than_k: bool
    """True when withheld for being from 1 to k-1."""
    k: int
    """The k-anonymity threshold in force."""
    interval_start: float
    """Start of the interval, epoch seconds."""
    interval_s: float
    """Its length."""


@dataclass(slots=True, frozen=True)
class AggregateCell:
    """One cell of an aggregate: its labels (zones, bins — never an id) and its count."""

    labels: Mapping[str, str]
    """``{"from": "produce", "to": "dairy"}``, ``{"zone": "dairy", "bin": "60-120"}`` …"""
    count: int
    """How many (at least k: smaller cells are withheld)."""


@dataclass(slots=True, frozen=True)
class AggregateBody:
    """``aggregate/{kind}``: anonymous figures of one interval, for everyone."""

    kind: str
    """``flow`` (zone to zone), ``dwell`` (time in a zone), ``visits`` (per zone),
    ``visit_length`` (time in the store)."""
    cells: tuple[AggregateCell, ...]
    """The cells with at least k."""
    suppressed: int
    """Cells withheld for holding from 1 to k-1."""
    k: int
    """The k-anonymity threshold in force."""
    interval_start: float
    """Start of the interval, epoch seconds."""
    interval_s: float
    """Its length."""
    observed_s: float
    """How much of it the agent saw (less in its first interval after a start)."""


EventBody = (
    PresenceBody
    | OccupancyBody
    | ReadingBody
    | BeaconHealthBody
    | MomentBody
    | MomentCountBody
    | AggregateBody
)


def body_fields(body: EventBody) -> dict[str, Any]:
    """An event body as the plain values of its payload fields (nested records as dicts)."""
    return asdict(body)


@dataclass(slots=True, frozen=True)
class ContextEvent:
    """A fact for the outside world; the outbox gives it ``seq`` and ``id`` and stores it."""

    topic: str
    """Topic below the gateway root, e.g. ``presence/cart-07``."""
    type: str
    """Payload ``type`` of the MQTT contract (``enter``, ``occupancy``, ``reading`` …)."""
    wall: float
    """When it happened, epoch seconds (becomes ``ts``)."""
    body: EventBody
    """Payload fields other than the envelope (``v``, ``id``, ``seq``, ``ts``, ``type``)."""
    retain: bool = False
    """Publish retained (occupancy, beacon health)."""
    qos: int = 1
    """MQTT QoS level."""
    priority: Priority = Priority.HEALTH
    """Eviction priority when the outbox is full: lower goes first."""
