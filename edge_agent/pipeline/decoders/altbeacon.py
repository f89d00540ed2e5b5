"""AltBeacon: any manufacturer id, ``BE AC`` + beacon id(20) + reference RSSI(1) + reserved(1)."""

from __future__ import annotations

from edge_agent.models import AltBeaconFrame
from edge_agent.pipeline.decoders.base import Malformed

BEACON_CODE = b"\xbe\xac"
_FRAME_LEN = 24


def decode_altbeacon(manufacturer_id: int, data: bytes) -> AltBeaconFrame | Malformed | None:
    """Decode manufacturer data under any company id; ``None`` without the beacon code."""
    if data[:2] != BEACON_CODE:
        return None
    if len(data) != _FRAME_LEN:
        return Malformed("altbeacon", "length")
    ref = data[22]
    return AltBeaconFrame(
        manufacturer_id=manufacturer_id,
        beacon_id_bytes=bytes(data[2:22]),
        tx_power=ref - 256 if ref > 127 else ref,
        reserved=data[23],
    )
