"""Frame → bytes: the exact inverses of ``edge_agent.pipeline.decoders`` (tests check both
ways)."""

from __future__ import annotations

import struct

from edge_agent.models import (
    AltBeaconFrame,
    BTHomeFrame,
    EddystoneEIDFrame,
    EddystoneTLMFrame,
    EddystoneUIDFrame,
    EddystoneURLFrame,
    IBeaconFrame,
    RuuviFrame,
)
from edge_agent.pipeline.decoders.altbeacon import BEACON_CODE
from edge_agent.pipeline.decoders.bthome import (
    BUTTON_EVENTS,
    DIMMER_EVENTS,
    FLAG_ENCRYPTED,
    FLAG_TRIGGER,
    OBJ_PACKET_ID,
    OBJECTS,
    Kind,
)
from edge_agent.pipeline.decoders.eddystone import (
    FRAME_EID,
    FRAME_TLM,
    FRAME_UID,
    FRAME_URL,
    URL_EXPANSIONS,
    URL_SCHEMES,
)
from edge_agent.pipeline.decoders.ruuvi import FORMAT_RAWV2


def _u8(value: int) -> bytes:
    return (value & 0xFF).to_bytes(1, "big")


def encode_ibeacon(frame: IBeaconFrame) -> bytes:
    """Apple manufacturer data (without the company id)."""
    return (
        b"\x02\x15"
        + bytes.fromhex(frame.uuid.replace("-", ""))
        + struct.pack(">HHb", frame.major, frame.minor, frame.tx_power)
    )


def encode_altbeacon(frame: AltBeaconFrame) -> tuple[int, bytes]:
    """(company id, manufacturer data)."""
    return frame.manufacturer_id, (
        BEACON_CODE + frame.beacon_id_bytes + struct.pack(">bB", frame.tx_power, frame.reserved)
    )


def encode_eddystone_uid(frame: EddystoneUIDFrame, rfu: bool = True) -> bytes:
    """Service data for 0xFEAA; ``rfu`` appends the two reserved bytes."""
    out = bytes([FRAME_UID]) + _u8(frame.tx_power)
    out += bytes.fromhex(frame.namespace) + bytes.fromhex(frame.instance)
    return out + (b"\x00\x00" if rfu else b"")


def encode_eddystone_url(frame: EddystoneURLFrame) -> bytes:
    """Service data for 0xFEAA: the URL compressed with the scheme and expansion codes."""
    url = frame.url
    scheme = max(
        (i for i, s in enumerate(URL_SCHEMES) if url.startswith(s)),
        key=lambda i: len(URL_SCHEMES[i]),
        default=None,
    )
    if scheme is None:
        raise ValueError(f"URL needs one of the schemes {URL_SCHEMES}: {url!r}")
    rest = url[len(URL_SCHEMES[scheme]) :]
    body = bytearray()
    i = 0
    while i < len(rest):
        for code, text in enumerate(URL_EXPANSIONS):
            if rest.startswith(text, i):
                body.append(code)
                i += len(text)
                break
        else:
            ch = ord(rest[i])
            if not 0x21 <= ch <= 0x7E:
                raise ValueError(f"URL character {rest[i]!r} cannot be encoded")
            body.append(ch)
            i += 1
    if len(body) > 17:
        raise ValueError(f"URL too long for Eddystone-URL: {url!r}")
    return bytes([FRAME_URL]) + _u8(frame.tx_power) + bytes([scheme]) + bytes(body)


def encode_eddystone_tlm(frame: EddystoneTLMFrame) -> bytes:
    """Service data for 0xFEAA (unencrypted TLM, version 0)."""
    temp = 0x8000 if frame.temperature_c is None else round(frame.temperature_c * 256) & 0xFFFF
    return struct.pack(
        ">BBHHII",
        FRAME_TLM,
        0,
        frame.battery_mv or 0,
        temp,
        frame.adv_count,
        round(frame.uptime_s * 10),
    )


def encode_eddystone_eid(frame: EddystoneEIDFrame) -> bytes:
    """Service data for 0xFEAA."""
    return bytes([FRAME_EID]) + _u8(frame.tx_power) + bytes.fromhex(frame.eid)


_BUTTON_CODES = {v: k for k, v in BUTTON_EVENTS.items()}
_DIMMER_CODES = {v: k for k, v in DIMMER_EVENTS.items()}


def encode_bthome(frame: BTHomeFrame) -> bytes:
    """Service data for 0xFCD2. Measurements must carry their ``object_id``."""
    info = 2 << 5 | (FLAG_ENCRYPTED if frame.encrypted else 0)
    info |= FLAG_TRIGGER if frame.trigger_based else 0
    out = bytearray([info])
    if frame.packet_id is not None:
        out += bytes([OBJ_PACKET_ID, frame.packet_id])
    for m in frame.measurements:
        oid = m.object_id
        if oid is None or oid not in OBJECTS:
            raise ValueError(f"measurement {m.name!r} has no BTHome object id")
        obj = OBJECTS[oid]
        out.append(oid)
        if obj.kind is Kind.NUMBER:
            raw = round(float(m.value) / obj.factor)
            out += raw.to_bytes(obj.length, "little", signed=obj.signed)
        elif obj.kind is Kind.BINARY:
            out.append(1 if m.value else 0)
        elif obj.kind is Kind.BUTTON:
            out.append(_BUTTON_CODES[str(m.value)])
        elif obj.kind is Kind.DIMMER:
            event, steps = str(m.value).split(":")
            out += bytes([_DIMMER_CODES[event], int(steps)])
        elif obj.kind is Kind.TEXT:
            data = str(m.value).encode("utf-8")
            out += bytes([len(data)]) + data
        elif obj.kind is Kind.RAW:
            data = bytes.fromhex(str(m.value))
            out += bytes([len(data)]) + data
        else:  # firmware version "a.b.c(.d)", most significant first
            out += bytes(int(p) for p in reversed(str(m.value).split(".")))
    return bytes(out)


def _s16_or_na(value: int | None) -> int:
    return 0x8000 if value is None else value & 0xFFFF


def encode_ruuvi(frame: RuuviFrame) -> bytes:
    """Ruuvi manufacturer data (company 0x0499), data format 5."""
    temp = _s16_or_na(None if frame.temperature_c is None else round(frame.temperature_c / 0.005))
    hum = 0xFFFF if frame.humidity_pct is None else round(frame.humidity_pct / 0.0025)
    pres = 0xFFFF if frame.pressure_pa is None else frame.pressure_pa - 50000
    battery = 0x7FF if frame.battery_mv is None else frame.battery_mv - 1600
    tx = 0x1F if frame.tx_power is None else (frame.tx_power + 40) // 2
    mac = b"\xff" * 6 if frame.mac is None else bytes.fromhex(frame.mac.replace(":", ""))
    return (
        bytes([FORMAT_RAWV2])
        + struct.pack(">HHH", temp, hum, pres)
        + struct.pack(">HHH", *(_s16_or_na(a) for a in frame.accel_mg))
        + struct.pack(
            ">HBH",
            battery << 5 | tx,
            0xFF if frame.movement_counter is None else frame.movement_counter,
            0xFFFF if frame.sequence is None else frame.sequence,
        )
        + mac
    )
