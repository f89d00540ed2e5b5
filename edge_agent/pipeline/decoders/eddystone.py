"""Eddystone (service data 0xFEAA): UID, URL, TLM (unencrypted) and EID (recognised)."""

from __future__ import annotations

from edge_agent.models import (
    EddystoneEIDFrame,
    EddystoneTLMFrame,
    EddystoneUIDFrame,
    EddystoneURLFrame,
)
from edge_agent.pipeline.decoders.base import Malformed

EDDYSTONE_UUID = "0000feaa-0000-1000-8000-00805f9b34fb"
FRAME_UID = 0x00
FRAME_URL = 0x10
FRAME_TLM = 0x20
FRAME_EID = 0x30

URL_SCHEMES = ("http://www.", "https://www.", "http://", "https://")
URL_EXPANSIONS = (
    ".com/",
    ".org/",
    ".edu/",
    ".net/",
    ".info/",
    ".biz/",
    ".gov/",
    ".com",
    ".org",
    ".edu",
    ".net",
    ".info",
    ".biz",
    ".gov",
)
_TEMP_UNSUPPORTED = 0x8000

EddystoneFrame = EddystoneUIDFrame | EddystoneURLFrame | EddystoneTLMFrame | EddystoneEIDFrame


def _s8(b: int) -> int:
    return b - 256 if b > 127 else b


def decode_eddystone(data: bytes) -> EddystoneFrame | Malformed | None:
    """Decode Eddystone service data; unknown frame types are ``None`` (not an error)."""
    n = len(data)
    if n < 1:
        return Malformed("eddystone", "empty")
    ftype = data[0]
    if ftype == FRAME_UID:
        # Type, TX power, 10-byte namespace, 6-byte instance, 2 RFU bytes that many beacons omit.
        if n not in (18, 20):
            return Malformed("eddystone", "uid_length")
        return EddystoneUIDFrame(
            namespace=data[2:12].hex(), instance=data[12:18].hex(), tx_power=_s8(data[1])
        )
    if ftype == FRAME_URL:
        if n < 3 or n > 20:  # the encoded URL after the scheme byte is 0–17 bytes
            return Malformed("eddystone", "url_length")
        scheme = data[2]
        if scheme >= len(URL_SCHEMES):
            return Malformed("eddystone", "url_scheme")
        parts = [URL_SCHEMES[scheme]]
        for b in data[3:]:
            if b < len(URL_EXPANSIONS):
                parts.append(URL_EXPANSIONS[b])
            elif 0x21 <= b <= 0x7E:
                parts.append(chr(b))
            else:
                return Malformed("eddystone", "url_byte")
        return EddystoneURLFrame(url="".join(parts), tx_power=_s8(data[1]))
    if ftype == FRAME_TLM:
        if n < 2:
            return Malformed("eddystone", "tlm_length")
        if data[1] != 0x00:
            return None  # version 1 is encrypted TLM: recognised, not ours to read
        if n != 14:
            return Malformed("eddystone", "tlm_length")
        vbatt = (data[2] << 8) | data[3]
        temp_raw = (data[4] << 8) | data[5]
        temp = None
        if temp_raw != _TEMP_UNSUPPORTED:
            signed = temp_raw - 0x10000 if temp_raw & 0x8000 else temp_raw
            temp = signed / 256.0
        return EddystoneTLMFrame(
            battery_mv=vbatt or None,
            temperature_c=temp,
            adv_count=int.from_bytes(data[6:10], "big"),
            uptime_s=int.from_bytes(data[10:14], "big") / 10.0,
        )
    if ftype == FRAME_EID:
        if n != 10:
            return Malformed("eddystone", "eid_length")
        return EddystoneEIDFrame(eid=data[2:10].hex(), tx_power=_s8(data[1]))
    return None
