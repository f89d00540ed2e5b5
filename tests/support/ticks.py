"""The pipeline ticked as the agent ticks it (``Ticker``), for tests that drive it directly."""

from __future__ import annotations

from collections.abc import Iterable

from edge_agent.models import Advert, ContextEvent
from edge_agent.pipeline.tick import Pipeline, Ticker


def run_ticks(
    pipeline: Pipeline,
    adverts: Iterable[Advert],
    until: float,
    *,
    start: float = 0.0,
    tick: float = 0.1,
    wall_offset: float = 1.7e9,
) -> list[ContextEvent]:
    """Ticks of ``tick`` from ``start`` until one ends at or after ``until`` (source time; the
    wall clock is ``wall_offset`` ahead), the adverts in time order; every event."""
    out: list[ContextEvent] = []

    def run(batch: list[Advert], now: float) -> None:
        out.extend(pipeline.process(batch, now, wall_offset + now))

    ticker: Ticker[Advert] = Ticker(tick, run, start=start)
    for advert in sorted(adverts, key=lambda a: a.t):
        ticker.add(advert, advert.t)
    end = ticker.tick_end
    while end is not None and end - tick < until:  # the tick that began before ``until`` too
        ticker.close(end)
        end = ticker.tick_end
    return out
