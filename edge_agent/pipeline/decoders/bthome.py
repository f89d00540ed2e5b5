"""BTHome v2 (service data 0xFCD2), decoded from a table of object ids; encrypted payloads
are opened by ``bthome_keys.BindKeys`` when the device's bind key is known.

The table follows the public format at bthome.io: every sensor, binary-sensor, event and
device-information object id, with length, signedness, scale factor and unit.

A packet that goes wrong part-way keeps what came before (the specification orders object ids
so that a receiver that meets an id it does not know can stop there and keep the rest): an
unknown id or a truncated object ends the parse, a bad value in an object of known length
(a binary value above 1, an unknown event, text that is not UTF-8) skips that object only.
The frame then says why in ``partial``, and the decode stage counts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from edge_agent.models import BTHomeFrame, Measurement
from edge_agent.pipeline.decoders.base import Malformed

if TYPE_CHECKING:
    from edge_agent.pipeline.decoders.bthome_keys import BindKeys

BTHOME_UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"
BTHOME_VERSION = 2
FLAG_ENCRYPTED = 0x01
FLAG_MAC_INCLUDED = 0x02
FLAG_TRIGGER = 0x04
OBJ_PACKET_ID = 0x00


class Kind(Enum):
    """How an object's bytes become a value."""

    NUMBER = "number"
    BINARY = "binary"
    BUTTON = "button"
    DIMMER = "dimmer"
    TEXT = "text"
    RAW = "raw"
    FIRMWARE = "firmware"


@dataclass(slots=True, frozen=True)
class ObjectType:
    """One row of the BTHome object table."""

    name: str
    """Measurement name we publish."""
    length: int
    """Bytes of data after the id (0 for length-prefixed text and raw)."""
    kind: Kind = Kind.NUMBER
    """How to read the bytes."""
    signed: bool = False
    """Two's complement integer."""
    factor: float = 1
    """Scale from the raw integer to ``unit``."""
    unit: str | None = None
    """Unit symbol."""

    @property
    def decimals(self) -> int:
        """Decimal places the factor produces; used to round away float noise."""
        text = f"{self.factor:.10f}".rstrip("0")
        return len(text.split(".")[1]) if "." in text else 0


def _n(
    name: str, length: int, factor: float = 1, unit: str | None = None, signed: bool = False
) -> ObjectType:
    return ObjectType(name, length, Kind.NUMBER, signed, factor, unit)


def _b(name: str) -> ObjectType:
    return ObjectType(name, 1, Kind.BINARY)


OBJECTS: dict[int, ObjectType] = {
    0x01: _n("battery", 1, 1, "%"),
    0x02: _n("temperature", 2, 0.01, "°C", signed=True),
    0x03: _n("humidity", 2, 0.01, "%"),
    0x04: _n("pressure", 3, 0.01, "hPa"),
    0x05: _n("illuminance", 3, 0.01, "lx"),
    0x06: _n("mass", 2, 0.01, "kg"),
    0x07: _n("mass_lb", 2, 0.01, "lb"),
    0x08: _n("dewpoint", 2, 0.01, "°C", signed=True),
    0x09: _n("count", 1),
    0x0A: _n("energy", 3, 0.001, "kWh"),
    0x0B: _n("power", 3, 0.01, "W"),
    0x0C: _n("voltage", 2, 0.001, "V"),
    0x0D: _n("pm2_5", 2, 1, "µg/m³"),
    0x0E: _n("pm10", 2, 1, "µg/m³"),
    0x0F: _b("generic"),
    0x10: _b("power_on"),
    0x11: _b("opening"),
    0x12: _n("co2", 2, 1, "ppm"),
    0x13: _n("tvoc", 2, 1, "µg/m³"),
    0x14: _n("moisture", 2, 0.01, "%"),
    0x15: _b("battery_low"),
    0x16: _b("battery_charging"),
    0x17: _b("carbon_monoxide"),
    0x18: _b("cold"),
    0x19: _b("connectivity"),
    0x1A: _b("door"),
    0x1B: _b("garage_door"),
    0x1C: _b("gas_detected"),
    0x1D: _b("heat"),
    0x1E: _b("light"),
    0x1F: _b("lock"),
    0x20: _b("moisture_detected"),
    0x21: _b("motion"),
    0x22: _b("moving"),
    0x23: _b("occupancy"),
    0x24: _b("plug"),
    0x25: _b("presence"),
    0x26: _b("problem"),
    0x27: _b("running"),
    0x28: _b("safety"),
    0x29: _b("smoke"),
    0x2A: _b("sound"),
    0x2B: _b("tamper"),
    0x2C: _b("vibration"),
    0x2D: _b("window"),
    0x2E: _n("humidity", 1, 1, "%"),
    0x2F: _n("moisture", 1, 1, "%"),
    0x3A: ObjectType("button", 1, Kind.BUTTON),
    0x3B: _n("command", 1),
    0x3C: ObjectType("dimmer", 2, Kind.DIMMER),
    0x3D: _n("count", 2),
    0x3E: _n("count", 4),
    0x3F: _n("rotation", 2, 0.1, "°", signed=True),
    0x40: _n("distance", 2, 1, "mm"),
    0x41: _n("distance", 2, 0.1, "m"),
    0x42: _n("duration", 3, 0.001, "s"),
    0x43: _n("current", 2, 0.001, "A"),
    0x44: _n("speed", 2, 0.01, "m/s"),
    0x45: _n("temperature", 2, 0.1, "°C", signed=True),
    0x46: _n("uv_index", 1, 0.1),
    0x47: _n("volume", 2, 0.1, "L"),
    0x48: _n("volume", 2, 1, "mL"),
    0x49: _n("volume_flow_rate", 2, 0.001, "m³/h"),
    0x4A: _n("voltage", 2, 0.1, "V"),
    0x4B: _n("gas", 3, 0.001, "m³"),
    0x4C: _n("gas", 4, 0.001, "m³"),
    0x4D: _n("energy", 4, 0.001, "kWh"),
    0x4E: _n("volume", 4, 0.001, "L"),
    0x4F: _n("water", 4, 0.001, "L"),
    0x50: _n("timestamp", 4, 1, "s"),
    0x51: _n("acceleration", 2, 0.001, "m/s²"),
    0x52: _n("gyroscope", 2, 0.001, "°/s"),
    0x53: ObjectType("text", 0, Kind.TEXT),
    0x54: ObjectType("raw", 0, Kind.RAW),
    0x55: _n("volume_storage", 4, 0.001, "L"),
    0x56: _n("conductivity", 2, 1, "µS/cm"),
    0x57: _n("temperature", 1, 1, "°C", signed=True),
    0x58: _n("temperature", 1, 0.35, "°C", signed=True),
    0x59: _n("count", 1, signed=True),
    0x5A: _n("count", 2, signed=True),
    0x5B: _n("count", 4, signed=True),
    0x5C: _n("power", 4, 0.01, "W", signed=True),
    0x5D: _n("current", 2, 0.001, "A", signed=True),
    0x5E: _n("direction", 2, 0.01, "°"),
    0x5F: _n("precipitation", 2, 0.1, "mm"),
    0x60: _n("channel", 1),
    0x61: _n("rotational_speed", 2, 1, "rpm"),
    0x62: _n("speed", 4, 0.000001, "m/s", signed=True),
    0x63: _n("acceleration", 4, 0.000001, "m/s²", signed=True),
    0x64: _n("light_level", 1),
    0x65: _n("settings_revision", 1),
    0xF0: _n("device_type_id", 2),
    0xF1: ObjectType("firmware_version", 4, Kind.FIRMWARE),
    0xF2: ObjectType("firmware_version", 3, Kind.FIRMWARE),
}

BUTTON_EVENTS: dict[int, str] = {
    0x00: "none",
    0x01: "press",
    0x02: "double_press",
    0x03: "triple_press",
    0x04: "long_press",
    0x05: "long_double_press",
    0x06: "long_triple_press",
    0x80: "hold_press",
    0x81: "hold_release",
}
DIMMER_EVENTS: dict[int, str] = {0x00: "none", 0x01: "rotate_left", 0x02: "rotate_right"}
_DECIMALS = {oid: obj.decimals for oid, obj in OBJECTS.items()}


def decode_bthome(
    data: bytes | bytearray | memoryview, address: str = "", keys: BindKeys | None = None
) -> BTHomeFrame | Malformed | None:
    """Decode BTHome service data heard from ``address``. Every read is bounds-checked.

    An encrypted payload is opened with ``keys`` (its device's bind key, the counter checked
    against replay); without a key it is a frame with no measurements. A device that has a key
    but sends in the clear is refused (``downgrade``): anyone could forge its readings."""
    data = bytes(data)  # a memoryview or bytearray reads the same from here on
    n = len(data)
    if n < 1:
        return Malformed("bthome", "empty")
    info = data[0]
    if info >> 5 != BTHOME_VERSION:
        return Malformed("bthome", "version")
    encrypted = bool(info & FLAG_ENCRYPTED)
    trigger = bool(info & FLAG_TRIGGER)
    body = data[1:]
    mac = address
    if info & FLAG_MAC_INCLUDED:
        if len(body) < 6:
            return Malformed("bthome", "truncated")
        mac = ":".join(f"{b:02X}" for b in reversed(body[:6]))
        body = body[6:]
    if encrypted:
        if keys is None or not keys.has(mac):
            if keys is not None:
                keys.stats.no_key += 1
            return BTHomeFrame(
                encrypted=True, trigger_based=trigger, packet_id=None, measurements=()
            )
        opened = keys.open(mac, info, body)
        if isinstance(opened, Malformed):
            return opened
        body = opened
    elif keys is not None and keys.has(mac):
        keys.stats.downgrade += 1
        return Malformed("bthome", "downgrade")
    packet_id, out, partial = _objects(body)
    if partial is not None and not out and packet_id is None:
        return Malformed("bthome", partial)  # nothing worth keeping
    return BTHomeFrame(encrypted, trigger, packet_id, tuple(out), partial)


def _objects(data: bytes) -> tuple[int | None, list[Measurement], str | None]:
    """The objects of a clear payload: packet id, measurements, and why the parse stopped
    early or skipped an object (``None`` when every byte was understood)."""
    n = len(data)
    packet_id: int | None = None
    out: list[Measurement] = []
    skipped: str | None = None
    i = 0
    while i < n:
        oid = data[i]
        i += 1
        if oid == OBJ_PACKET_ID:
            if i >= n:
                return packet_id, out, "truncated"
            packet_id = data[i]
            i += 1
            continue
        obj = OBJECTS.get(oid)
        if obj is None:  # its length is unknown: nothing after it can be read
            return packet_id, out, "unknown_object"
        kind = obj.kind
        if kind is Kind.TEXT or kind is Kind.RAW:
            if i >= n:
                return packet_id, out, "truncated"
            size = data[i]
            i += 1
            if i + size > n:
                return packet_id, out, "truncated"
            chunk = data[i : i + size]
            i += size
            if kind is Kind.RAW:
                out.append(Measurement(obj.name, chunk.hex(), None, oid))
                continue
            try:
                out.append(Measurement(obj.name, chunk.decode("utf-8"), None, oid))
            except UnicodeDecodeError:
                skipped = skipped or "text_encoding"
            continue
        end = i + obj.length
        if end > n:
            return packet_id, out, "truncated"
        chunk = data[i:end]
        i = end
        if kind is Kind.NUMBER:
            raw = int.from_bytes(chunk, "little", signed=obj.signed)
            value: float | int = raw if obj.factor == 1 else round(raw * obj.factor, _DECIMALS[oid])
            out.append(Measurement(obj.name, value, obj.unit, oid))
        elif kind is Kind.BINARY:
            if chunk[0] > 1:
                skipped = skipped or "binary_value"
                continue
            out.append(Measurement(obj.name, chunk[0] == 1, None, oid))
        elif kind is Kind.BUTTON:
            event = BUTTON_EVENTS.get(chunk[0])
            if event is None:
                skipped = skipped or "button_event"
                continue
            out.append(Measurement(obj.name, event, None, oid))
        elif kind is Kind.DIMMER:
            dimmer = DIMMER_EVENTS.get(chunk[0])
            if dimmer is None:
                skipped = skipped or "dimmer_event"
                continue
            out.append(Measurement(obj.name, f"{dimmer}:{chunk[1]}", None, oid))
        else:  # Kind.FIRMWARE: little-endian, most significant part first in the text
            out.append(Measurement(obj.name, ".".join(str(b) for b in reversed(chunk)), None, oid))
    return packet_id, out, skipped
