"""``edge-agent record``: advertisements to a JSONL file with raw payloads in hex, so that a
replay exercises the decoders too.

Unless ``--raw-addresses`` is given, every address not registered in the config or the consent
list is replaced, consistently within the recording, by a keyed pseudonymous address of the same
class (the top two bits of a random address are kept), with a key that is discarded when
recording ends: a recording then holds no shopper's real address, and replays the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from edge_agent.config import AgentConfig
from edge_agent.ids import normalise_match
from edge_agent.models import Advert
from edge_agent.runtime.consent import load_consents
from edge_agent.runtime.sources import AdvertSource, SourceFeed
from edge_agent.runtime.sources.replay import advert_to_json


class AddressMasker:
    """Replaces unregistered addresses by keyed pseudonymous ones of the same class."""

    def __init__(self, keep: set[str], key: bytes | None = None) -> None:
        self.keep = keep
        self._key = key or os.urandom(32)
        self._cache: dict[str, str] = {}

    def __call__(self, advert: Advert) -> Advert:
        address = advert.address.upper()
        if address in self.keep:
            return advert
        masked = self._cache.get(address)
        if masked is None:
            digest = bytearray(hmac.new(self._key, address.encode(), hashlib.sha256).digest()[:6])
            if advert.address_type == "random":
                top = int(address[:2], 16) & 0xC0
                digest[0] = (digest[0] & 0x3F) | top
            masked = ":".join(f"{b:02X}" for b in digest)
            self._cache[address] = masked
        return dataclasses.replace(advert, address=masked)


def registered_addresses(cfg: AgentConfig) -> set[str]:
    """Addresses of configured devices and consenting devices (kept as they are)."""
    keep = {normalise_match(d.address) for d in cfg.devices if d.address}
    keep |= {c.match for c in load_consents(cfg.consent_path) if c.is_address}
    return keep


@dataclass(slots=True, frozen=True)
class RecordSummary:
    """What a recording holds."""

    adverts: int
    """Adverts written."""
    devices: int
    """Distinct (written) addresses."""
    dropped: int
    """Adverts dropped because the queue was full."""


async def record(
    source: AdvertSource,
    out: IO[str],
    *,
    queue_size: int,
    duration_s: float | None = None,
    count: int | None = None,
    mask: Callable[[Advert], Advert] | None = None,
) -> RecordSummary:
    """Write the source's adverts until ``duration_s`` (source time), ``count``, the end of the
    source, or SIGINT/SIGTERM."""
    written = 0
    addresses: set[str] = set()
    first: float | None = None
    started = source.now()
    async with SourceFeed(source, queue_size) as feed:
        async for batch in feed.batches(0.5):
            if not batch:  # a quiet radio: the duration still ends the recording
                quiet = source.now() - started
                if duration_s is not None and math.isfinite(quiet) and quiet >= duration_s:
                    break
            for advert in batch:
                if first is None:
                    first = advert.t
                if duration_s is not None and advert.t - first >= duration_s:
                    feed.stop()
                    break
                if mask is not None:
                    advert = mask(advert)
                out.write(advert_to_json(advert) + "\n")
                written += 1
                addresses.add(advert.address)
                if count is not None and written >= count:
                    feed.stop()
                    break
            if feed.stopped:
                break
    return RecordSummary(written, len(addresses), feed.sink.dropped)


@contextlib.contextmanager
def private_file(path: Path, *, replace: bool = True) -> Iterator[IO[str]]:
    """A new file only the owner can read (recordings and estimates are about people); an
    existing one is replaced only with ``replace`` (else ``FileExistsError``)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    with open(fd, "w", encoding="utf-8") as handle:
        yield handle
