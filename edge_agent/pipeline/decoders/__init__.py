"""Bytes → typed frames. Pure and bounds-checked; "not this format" is a normal outcome."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from edge_agent.models import Advert, Frame
from edge_agent.pipeline.decoders.altbeacon import decode_altbeacon
from edge_agent.pipeline.decoders.base import Malformed
from edge_agent.pipeline.decoders.bthome import BTHOME_UUID, decode_bthome
from edge_agent.pipeline.decoders.eddystone import EDDYSTONE_UUID, decode_eddystone
from edge_agent.pipeline.decoders.ibeacon import APPLE_COMPANY_ID, decode_ibeacon
from edge_agent.pipeline.decoders.ruuvi import RUUVI_COMPANY_ID, decode_ruuvi

__all__ = [
    "DecodeStats",
    "Malformed",
    "decode_advert",
    "decode_altbeacon",
    "decode_bthome",
    "decode_eddystone",
    "decode_ibeacon",
    "decode_ruuvi",
]


@dataclass(slots=True)
class DecodeStats:
    """Counters kept by the decode stage (reported in ``health``)."""

    adverts: int = 0
    """Advertisements looked at."""
    frames: int = 0
    """Frames decoded."""
    unknown: int = 0
    """Advertisements with no frame of a known format (normal: phones, headphones …)."""
    malformed: Counter[str] = field(default_factory=Counter)
    """Malformed payloads by ``format:reason``."""


def decode_advert(advert: Advert, stats: DecodeStats) -> list[Frame]:
    """Every frame found in one advertisement; malformed payloads are counted and skipped."""
    frames: list[Frame] = []
    bad = 0
    res: Frame | Malformed | None
    for company, data in advert.manufacturer_data.items():
        if company == APPLE_COMPANY_ID:
            res = decode_ibeacon(data)
        elif company == RUUVI_COMPANY_ID:
            res = decode_ruuvi(data)
        else:
            res = None
        bad += _collect(res if res is not None else decode_altbeacon(company, data), frames, stats)
    for uuid, data in advert.service_data.items():
        if uuid == EDDYSTONE_UUID:
            bad += _collect(decode_eddystone(data), frames, stats)
        elif uuid == BTHOME_UUID:
            bad += _collect(decode_bthome(data), frames, stats)
    stats.adverts += 1
    stats.frames += len(frames)
    if not frames and not bad:
        stats.unknown += 1
    return frames


def _collect(res: Frame | Malformed | None, frames: list[Frame], stats: DecodeStats) -> int:
    """Keep a frame, count a malformed payload (returns 1 for it), ignore "not this format"."""
    if res is None:
        return 0
    if isinstance(res, Malformed):
        stats.malformed[f"{res.format}:{res.reason}"] += 1
        return 1
    frames.append(res)
    return 0
