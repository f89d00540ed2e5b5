"""Bytes → typed frames. Pure and bounds-checked; "not this format" is a normal outcome."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from edge_agent.models import Advert, BTHomeFrame, Frame
from edge_agent.pipeline.decoders.altbeacon import decode_altbeacon
from edge_agent.pipeline.decoders.base import Malformed
from edge_agent.pipeline.decoders.bthome import BTHOME_UUID, decode_bthome
from edge_agent.pipeline.decoders.bthome_keys import BindKeys
from edge_agent.pipeline.decoders.eddystone import EDDYSTONE_UUID, decode_eddystone
from edge_agent.pipeline.decoders.ibeacon import APPLE_COMPANY_ID, decode_ibeacon
from edge_agent.pipeline.decoders.ruuvi import RUUVI_COMPANY_ID, decode_ruuvi

__all__ = [
    "BindKeys",
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
    """Malformed payloads by ``format:reason`` (a decoder that raised: ``format:error``)."""
    partial: Counter[str] = field(default_factory=Counter)
    """Frames kept in part by ``format:reason`` (the objects before an unknown id …)."""
    dropped: Counter[str] = field(default_factory=Counter)
    """Adverts dropped before decoding by ``pipeline.drop`` rule (chatty advertisers)."""


def decode_advert(
    advert: Advert, stats: DecodeStats, bthome_keys: BindKeys | None = None
) -> list[Frame]:
    """Every frame found in one advertisement; malformed payloads are counted and skipped,
    and so is any payload a decoder raises on (a bug must not stop the radio)."""
    frames: list[Frame] = []
    bad = 0
    for company, data in advert.manufacturer_data.items():
        if company == APPLE_COMPANY_ID:
            bad += _run("ibeacon", frames, stats, decode_ibeacon, data)
        elif company == RUUVI_COMPANY_ID:
            bad += _run("ruuvi", frames, stats, decode_ruuvi, data)
        else:
            bad += _run("altbeacon", frames, stats, decode_altbeacon, company, data)
    for uuid, data in advert.service_data.items():
        if uuid == EDDYSTONE_UUID:
            bad += _run("eddystone", frames, stats, decode_eddystone, data)
        elif uuid == BTHOME_UUID:
            bad += _run("bthome", frames, stats, decode_bthome, data, advert.address, bthome_keys)
    stats.adverts += 1
    stats.frames += len(frames)
    if not frames and not bad:
        stats.unknown += 1
    return frames


def _run(
    fmt: str,
    frames: list[Frame],
    stats: DecodeStats,
    decoder: Callable[..., Frame | Malformed | None],
    *args: object,
) -> int:
    """Decode one payload: keep a frame (counting a partial one), count a malformed payload
    or a decoder that raised (returns 1 for either), ignore "not this format"."""
    try:
        res = decoder(*args)
    except Exception:
        stats.malformed[f"{fmt}:error"] += 1
        return 1
    if res is None:
        return 0
    if isinstance(res, Malformed):
        stats.malformed[f"{res.format}:{res.reason}"] += 1
        return 1
    if isinstance(res, BTHomeFrame) and res.partial is not None:
        stats.partial[f"bthome:{res.partial}"] += 1
    frames.append(res)
    return 0
