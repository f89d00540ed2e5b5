"""Apple iBeacon: manufacturer 0x004C, ``02 15`` + UUID(16) + major(2) + minor(2) + power(1)."""

from __future__ import annotations

from edge_agent.models import IBeaconFrame
from edge_agent.pipeline.decoders.base import Malformed

APPLE_COMPANY_ID = 0x004C
IBEACON_TYPE = 0x02
IBEACON_LENGTH = 0x15
_FRAME_LEN = 2 + IBEACON_LENGTH


def format_uuid(raw: bytes) -> str:
    """Canonical lowercase UUID text from 16 bytes, without ``uuid.UUID`` (≈ 2 µs)."""
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def decode_ibeacon(data: bytes) -> IBeaconFrame | Malformed | None:
    """Decode Apple manufacturer data; ``None`` when it is another Apple message."""
    if len(data) < 2 or data[0] != IBEACON_TYPE:
        return None
    if data[1] != IBEACON_LENGTH or len(data) != _FRAME_LEN:
        return Malformed("ibeacon", "length")
    tx = data[22]
    return IBeaconFrame(
        uuid=format_uuid(data[2:18]),
        major=(data[18] << 8) | data[19],
        minor=(data[20] << 8) | data[21],
        tx_power=tx - 256 if tx > 127 else tx,
    )
