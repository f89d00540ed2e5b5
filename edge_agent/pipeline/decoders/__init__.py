"""Bytes → typed frames. Pure and bounds-checked; "not this format" is a normal outcome."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from edge_agent.models import Advert, BTHomeFrame, Frame
from edge_agent.pipeline.decoders.altbeacon import decode_altbeacon
from edge_agent.pipeline.decoders.base import Malformed
from edge_agent.pipeline.decoders.bthome import (
    BTHOME_UUID,
    FLAG_ENCRYPTED,
    FLAG_MAC_INCLUDED,
    decode_bthome,
)
from edge_agent.pipeline.decoders.bthome_keys import BindKeys
from edge_agent.pipeline.decoders.eddystone import EDDYSTONE_UUID, decode_eddystone
from edge_agent.pipeline.decoders.ibeacon import APPLE_COMPANY_ID, decode_ibeacon
from edge_agent.pipeline.decoders.ruuvi import RUUVI_COMPANY_ID, decode_ruuvi
from edge_agent.pipeline.recent import Recent

__all__ = [
    "BindKeys",
    "DecodeStats",
    "FrameCache",
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


Outcome = Frame | Malformed | None | type[Exception]
"""What a decoder made of one payload: a frame, a malformed one, not its format, or it raised
(``Exception`` itself stands for that)."""

FRAME_CACHE_SIZE = 4_096
"""Payloads kept decoded per generation (``FrameCache``), at least: a store's beacons and
sensors (the pipeline keeps ``pipeline.max_devices`` when more)."""


class FrameCache:
    """Decoded frames by payload bytes: a beacon sends the same bytes again and again, and a
    frame is immutable, so the second time costs a lookup. Bounded (two generations of
    ``size``); encrypted BTHome, BTHome naming its MAC and BTHome from a device with a bind key
    are never kept (they depend on the device, its key and its counter)."""

    __slots__ = ("_mfr", "_svc", "hits", "misses")

    def __init__(self, size: int = FRAME_CACHE_SIZE) -> None:
        self._mfr: Recent[tuple[int, bytes], object] = Recent(size)
        self._svc: Recent[tuple[str, bytes], object] = Recent(size)
        self.hits = 0
        self.misses = 0


_UNKNOWN: Final = object()


def _mfr_outcome(company: int, data: bytes) -> tuple[str, Outcome]:
    if company == APPLE_COMPANY_ID:
        return "ibeacon", _outcome(decode_ibeacon, data)
    if company == RUUVI_COMPANY_ID:
        return "ruuvi", _outcome(decode_ruuvi, data)
    return "altbeacon", _outcome(decode_altbeacon, company, data)


def _svc_outcome(
    uuid: str, data: bytes, address: str, keys: BindKeys | None
) -> tuple[str, Outcome]:
    if uuid == EDDYSTONE_UUID:
        return "eddystone", _outcome(decode_eddystone, data)
    return "bthome", _outcome(decode_bthome, data, address, keys)


def _outcome(decoder: Callable[..., Frame | Malformed | None], *args: object) -> Outcome:
    try:
        return decoder(*args)
    except Exception:
        return Exception


def decode_advert(
    advert: Advert,
    stats: DecodeStats,
    bthome_keys: BindKeys | None = None,
    cache: FrameCache | None = None,
) -> list[Frame]:
    """Every frame found in one advertisement; malformed payloads are counted and skipped,
    and so is any payload a decoder raises on (a bug must not stop the radio). With a
    ``cache``, payloads seen lately are not decoded again (counted alike)."""
    frames: list[Frame] = []
    bad = 0
    for company, data in advert.manufacturer_data.items():
        if cache is not None and type(data) is bytes:
            key = (company, data)
            got = cache._mfr.get(key, _UNKNOWN)
            if got is _UNKNOWN:
                cache.misses += 1
                got = _mfr_outcome(company, data)
                cache._mfr[key] = got
            else:
                cache.hits += 1
            fmt, res = got  # type: ignore[misc]
        else:
            fmt, res = _mfr_outcome(company, data)
        bad += _keep(fmt, res, frames, stats)
    for uuid, data in advert.service_data.items():
        if uuid == EDDYSTONE_UUID:
            cacheable = True
        elif uuid == BTHOME_UUID:
            cacheable = (
                bool(data) and not data[0] & (FLAG_ENCRYPTED | FLAG_MAC_INCLUDED)
                and (bthome_keys is None or not bthome_keys.has(advert.address))
            )  # fmt: skip
        else:
            continue
        if cache is not None and cacheable and type(data) is bytes:
            skey = (uuid, data)
            sgot = cache._svc.get(skey, _UNKNOWN)
            if sgot is _UNKNOWN:
                cache.misses += 1
                sgot = _svc_outcome(uuid, data, advert.address, bthome_keys)
                cache._svc[skey] = sgot
            else:
                cache.hits += 1
            fmt, res = sgot  # type: ignore[misc]
        else:
            fmt, res = _svc_outcome(uuid, data, advert.address, bthome_keys)
        bad += _keep(fmt, res, frames, stats)
    stats.adverts += 1
    stats.frames += len(frames)
    if not frames and not bad:
        stats.unknown += 1
    return frames


def _keep(fmt: str, res: Outcome, frames: list[Frame], stats: DecodeStats) -> int:
    """Keep a frame (counting a partial one), count a malformed payload or a decoder that
    raised (returns 1 for either), ignore "not this format"."""
    if res is None:
        return 0
    if res is Exception:
        stats.malformed[f"{fmt}:error"] += 1
        return 1
    if isinstance(res, Malformed):
        stats.malformed[f"{res.format}:{res.reason}"] += 1
        return 1
    if isinstance(res, BTHomeFrame) and res.partial is not None:
        stats.partial[f"bthome:{res.partial}"] += 1
    frames.append(res)  # type: ignore[arg-type]
    return 0
