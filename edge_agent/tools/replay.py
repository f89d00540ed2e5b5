"""``edge-agent replay``: a recording (``edge-agent record``) or a capture CSV back through the
same pipeline, tick by tick of its own time.

A replay is deterministic: every pseudonym key is derived from the file's content and the day,
so replaying the same file twice gives identical events, across a key rotation too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from edge_agent.config import AgentConfig, ReceiverConfig, parse_config
from edge_agent.config.checks import load_checked
from edge_agent.errors import SourceError
from edge_agent.models import Advert, ContextEvent, body_fields
from edge_agent.pipeline.identity import Identity
from edge_agent.pipeline.tick import Pipeline, Ticker
from edge_agent.runtime.sources.replay import read_adverts
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


def replay_config(path: str | None, state_dir: Path, *, publish: bool = False) -> AgentConfig:
    """The config to replay with: ``path``, or defaults (no zones) when none is given; its
    broker's secrets are needed only to ``publish``."""
    if path is not None:
        return load_checked(path, secrets=publish)
    return parse_config(REPLAY_DEFAULTS.format(state=state_dir), source="<replay defaults>")


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
    """Feed a recording or capture through the pure pipeline, tick by tick of its own time.
    With ``receivers`` (positions JSON) and no floor plan in ``cfg``, those positions make one,
    so that the estimates have fused lines."""
    cfg = with_positions(cfg, receivers)
    pipeline = Pipeline(cfg, Identity(cfg, day_keys=file_day_keys(path)))
    writer = _writer(cfg, estimates, pipeline)
    counts: Counter[str] = Counter()
    n = 0
    t0 = wall0 = 0.0
    start_real = time.monotonic()

    def run_tick(batch: list[Advert], now: float) -> None:
        out = pipeline.process(batch, now, wall0 + (now - t0))
        counts.update(e.type for e in out)
        _write(pipeline, out, events, writer)

    ticker = Ticker(cfg.pipeline.tick_s, run_tick)
    for advert in read_adverts(path):
        if n == 0:
            t0, wall0 = advert.t, advert.wall
        n += 1
        if speed > 0:
            delay = start_real + (advert.t - t0) / speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        ticker.add(advert, advert.t)
    if ticker.tick_end is not None:
        ticker.flush(ticker.tick_end)
    return ReplaySummary(
        n,
        counts,
        writer.samples if writer else 0,
        writer.fused if writer else 0,
    )


def with_positions(cfg: AgentConfig, receivers: Path | None) -> AgentConfig:
    """``cfg`` with the receivers of a positions JSON on a floor plan, unless it has one."""
    if receivers is None or cfg.floor_plan:
        return cfg
    known = {r.id: r for r in cfg.receivers}
    placed = []
    for rid, (x, y, z) in load_positions(receivers).items():
        base = known.get(rid) or ReceiverConfig(id=rid)
        placed.append(base.model_copy(update={"x": x, "y": y, "z": z}))
    return cfg.model_copy(update={"receivers": placed})


def _writer(cfg: AgentConfig, out: IO[str] | None, pipeline: Pipeline) -> EstimateWriter | None:
    if out is None:
        return None
    pipeline.sample_log = []
    return EstimateWriter(out, cfg.proximity)


def replay_hook(
    agent: Agent, estimates: IO[str] | None, events: IO[str] | None
) -> Callable[[Agent, list[ContextEvent]], None]:
    """An ``on_tick`` for an agent that publishes a replay: it writes estimates and events too."""
    writer = _writer(agent.cfg, estimates, agent.pipeline)

    def on_tick(agent: Agent, out: list[ContextEvent]) -> None:
        _write(agent.pipeline, out, events, writer)

    return on_tick


def _write(
    pipeline: Pipeline,
    out: list[ContextEvent],
    events: IO[str] | None,
    writer: EstimateWriter | None,
) -> None:
    """A tick's events to ``--events``, its samples to ``--estimates``."""
    if events is not None and out:
        events.write("".join(event_line(e) + "\n" for e in out))
    if writer is None:
        return
    fusion = pipeline.fusion
    fused = [
        pos
        for d in pipeline.fused
        if fusion is not None and pipeline.published(d) and (pos := fusion.position(d))
    ]
    if pipeline.sample_log or fused:
        writer.write(pipeline.sample_log or (), fused)
        if pipeline.sample_log:
            pipeline.sample_log.clear()
