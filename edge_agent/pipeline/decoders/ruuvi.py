"""Ruuvi RAWv2 (data format 5) in manufacturer data under company id 0x0499."""

from __future__ import annotations

from edge_agent.models import RuuviFrame
from edge_agent.pipeline.decoders.base import Malformed

RUUVI_COMPANY_ID = 0x0499
FORMAT_RAWV2 = 0x05
_FRAME_LEN = 24
_NA_S16 = 0x8000
_NA_U16 = 0xFFFF
_NA_BATTERY = 0x7FF
_NA_TX = 0x1F
_NA_MOVEMENT = 0xFF
_NA_MAC = b"\xff" * 6


def _s16(data: bytes, i: int) -> int | None:
    raw = (data[i] << 8) | data[i + 1]
    if raw == _NA_S16:
        return None
    return raw - 0x10000 if raw & 0x8000 else raw


def _u16(data: bytes, i: int) -> int | None:
    raw = (data[i] << 8) | data[i + 1]
    return None if raw == _NA_U16 else raw


def decode_ruuvi(data: bytes) -> RuuviFrame | Malformed | None:
    """Decode Ruuvi manufacturer data; other Ruuvi formats are ``None``."""
    if len(data) < 1 or data[0] != FORMAT_RAWV2:
        return None
    if len(data) != _FRAME_LEN:
        return Malformed("ruuvi", "length")
    temp = _s16(data, 1)
    hum = _u16(data, 3)
    pres = _u16(data, 5)
    power = (data[13] << 8) | data[14]
    battery = power >> 5
    tx = power & 0x1F
    mac = bytes(data[18:24])
    return RuuviFrame(
        temperature_c=None if temp is None else round(temp * 0.005, 3),
        humidity_pct=None if hum is None else round(hum * 0.0025, 4),
        pressure_pa=None if pres is None else pres + 50000,
        accel_mg=(_s16(data, 7), _s16(data, 9), _s16(data, 11)),
        battery_mv=None if battery == _NA_BATTERY else battery + 1600,
        tx_power=None if tx == _NA_TX else tx * 2 - 40,
        movement_counter=None if data[15] == _NA_MOVEMENT else data[15],
        sequence=_u16(data, 16),
        mac=None if mac == _NA_MAC else ":".join(f"{b:02X}" for b in mac),
    )
