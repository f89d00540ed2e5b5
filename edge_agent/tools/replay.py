"""``edge-agent record`` and ``edge-agent replay``: advertisements to a file, and a file back
through the same pipeline.

A recording is JSONL with raw payloads in hex, so a replay exercises the decoders too. Unless
``--raw-addresses`` is given, every address not registered in the config or the consent list is
replaced, consistently within the recording, by a keyed pseudonymous address of the same class
(the top two bits of a random address are kept), with a key that is discarded when recording
ends: a recording then holds no shopper's real address, and replays the same way.

A replay is deterministic: the pseudonym key is derived from the file's content, so replaying
the same file twice gives identical events.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
import math
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from edge_agent.config import AgentConfig, parse_config
from edge_agent.config.checks import load_checked
from edge_agent.errors import SourceError
from edge_agent.ids import normalise_match
from edge_agent.models import Advert, ContextEvent, body_fields
from edge_agent.pipeline.identity import Identity
from edge_agent.pipeline.tick import Pipeline
from edge_agent.runtime.consent import load_consents
from edge_agent.runtime.sources import AdvertSink, AdvertSource, source_error
from edge_agent.runtime.sources.replay import advert_to_json, read_adverts
from edge_agent.tools.estimates import EstimateWriter
from edge_agent.tools.evaluation import load_positions

if TYPE_CHECKING:
    from edge_agent.runtime.agent import Agent

REPLAY_DEFAULTS = """
[gateway]
id = "replay"
site = "replay"
state_dir = "{state}"
"""


def replay_config(path: str | None, state_dir: Path) -> AgentConfig:
    """The config to replay with: ``path``, or defaults (no zones) when none is given."""
    if path is not None:
        return load_checked(path)
    return parse_config(REPLAY_DEFAULTS.format(state=state_dir), source="<replay defaults>")


# ------------------------------------------------------------------------------------ record


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
    sink = AdvertSink(queue_size)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    written = 0
    addresses: set[str] = set()
    try:
        async with asyncio.TaskGroup() as tg:
            feeder = tg.create_task(source.run(sink), name="source")
            first: float | None = None
            started = source.now()
            while not stop.is_set():
                try:
                    async with asyncio.timeout(0.5):
                        advert = await sink.queue.get()
                except TimeoutError:  # a quiet radio: the duration still ends the recording
                    quiet = source.now() - started
                    if duration_s is not None and math.isfinite(quiet) and quiet >= duration_s:
                        break
                    continue
                if advert is None:
                    break
                if first is None:
                    first = advert.t
                if duration_s is not None and advert.t - first >= duration_s:
                    break
                if mask is not None:
                    advert = mask(advert)
                out.write(advert_to_json(advert) + "\n")
                written += 1
                addresses.add(advert.address)
                if count is not None and written >= count:
                    break
            feeder.cancel()
    except BaseExceptionGroup as group:
        raise source_error(group) from None
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return RecordSummary(written, len(addresses), sink.dropped)


# ------------------------------------------------------------------------------------ replay


@dataclass(slots=True, frozen=True)
class ReplaySummary:
    """What a replay did."""

    adverts: int
    """Adverts read."""
    events: Counter[str]
    """Events produced, by type."""
    samples: int
    """Sample lines written to the estimates file."""
    fused: int
    """Fused lines written to the estimates file."""


def file_day_keys(path: Path) -> Callable[[float], bytes]:
    """The pseudonym keys of a replay: each day's from the file's content and that day (the
    end of its key period), so replays are repeatable, across a key rotation too."""
    try:
        with path.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").digest()
    except OSError as err:
        raise SourceError(f"replay:{path}", err.strerror or str(err)) from err
    seed = hmac.new(b"edge-agent replay", digest, hashlib.sha256).digest()

    def day_key(day_end: float) -> bytes:
        return hmac.new(seed, repr(day_end).encode(), hashlib.sha256).digest()

    return day_key


def event_line(event: ContextEvent) -> str:
    """One line of ``--events``."""
    return json.dumps(
        {
            "topic": event.topic,
            "type": event.type,
            "wall": event.wall,
            "body": body_fields(event.body),
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def replay(
    cfg: AgentConfig,
    path: Path,
    *,
    estimates: IO[str] | None = None,
    events: IO[str] | None = None,
    receivers: Path | None = None,
    speed: float = 0.0,
) -> ReplaySummary:
    """Feed a recording or capture through the pure pipeline, tick by tick of its own time."""
    pipeline = Pipeline(cfg, Identity(cfg, day_keys=file_day_keys(path)))
    writer = _writer(cfg, estimates, receivers, pipeline)
    tick = cfg.pipeline.tick_s
    counts: Counter[str] = Counter()
    batch: list[Advert] = []
    n = 0
    tick_end = t0 = wall0 = 0.0
    start_real = time.monotonic()

    def run_tick(now: float) -> None:
        nonlocal batch
        out = pipeline.process(batch, now, wall0 + (now - t0))
        batch = []
        counts.update(e.type for e in out)
        if events is not None and out:
            events.write("".join(event_line(e) + "\n" for e in out))
        if writer is not None and pipeline.sample_log:
            writer.write(pipeline.sample_log)
            pipeline.sample_log.clear()

    for advert in read_adverts(path):
        if n == 0:
            t0, wall0 = advert.t, advert.wall
            tick_end = t0 + tick
        n += 1
        while advert.t >= tick_end:
            run_tick(tick_end)
            tick_end += tick
        if speed > 0:
            delay = start_real + (advert.t - t0) / speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        batch.append(advert)
    if n:
        run_tick(tick_end)
    return ReplaySummary(
        n,
        counts,
        writer.samples if writer else 0,
        writer.fused if writer else 0,
    )


def _writer(
    cfg: AgentConfig, out: IO[str] | None, receivers: Path | None, pipeline: Pipeline
) -> EstimateWriter | None:
    if out is None:
        return None
    positions = (
        {k: (x, y) for k, (x, y, _) in load_positions(receivers).items()} if receivers else None
    )
    pipeline.sample_log = []
    return EstimateWriter(out, cfg.proximity, positions)


def replay_hook(
    agent: Agent,
    estimates: IO[str] | None,
    events: IO[str] | None,
    receivers: Path | None,
) -> Callable[[Agent, list[ContextEvent]], None]:
    """An ``on_tick`` for an agent that publishes a replay: it writes estimates and events too."""
    writer = _writer(agent.cfg, estimates, receivers, agent.pipeline)

    def on_tick(agent: Agent, out: list[ContextEvent]) -> None:
        if events is not None and out:
            events.write("".join(event_line(e) + "\n" for e in out))
        log = agent.pipeline.sample_log
        if writer is not None and log:
            writer.write(log)
            log.clear()

    return on_tick


@contextlib.contextmanager
def private_file(path: Path) -> Iterator[IO[str]]:
    """A new file only the owner can read (recordings and estimates are about people)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as handle:
        yield handle
