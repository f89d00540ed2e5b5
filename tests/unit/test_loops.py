"""The one tick loop (``Ticker``) and the one way to consume a source (``SourceFeed``)."""

from __future__ import annotations

import asyncio
import math
import os
import signal
from pathlib import Path

import pytest

from edge_agent.contract import AdapterHealth
from edge_agent.errors import SourceError
from edge_agent.models import Advert
from edge_agent.pipeline.tick import Ticker
from edge_agent.runtime.sources import AdvertSink, SourceFeed
from edge_agent.runtime.sources.replay import ReplaySource
from tests.support.configs import record_store


def _ticks(
    times: list[float], until: float | None = None, **kw: float
) -> list[tuple[list[float], float]]:
    got: list[tuple[list[float], float]] = []
    ticker: Ticker[float] = Ticker(
        kw.pop("tick", 1.0), lambda batch, end: got.append((batch, end)), **kw
    )  # type: ignore[arg-type]
    for t in times:
        ticker.add(t, t)
    if until is not None:
        ticker.close(until)
    return got


def test_items_go_to_the_tick_that_ends_after_them() -> None:
    got = _ticks([0.0, 0.5, 1.0, 1.2, 3.5], until=4.0)
    assert got == [([0.0, 0.5], 1.0), ([1.0, 1.2], 2.0), ([], 3.0), ([3.5], 4.0)]


def test_ticks_start_at_the_first_item_unless_a_start_is_given() -> None:
    assert _ticks([10.3], until=11.3)[0][1] == pytest.approx(11.3)
    assert [end for _, end in _ticks([0.25], until=2.0, start=0.0)] == [1.0, 2.0]


def test_a_silence_longer_than_the_catch_up_runs_one_tick_then_realigns() -> None:
    every = _ticks([0.0, 500.5], tick=1.0)
    assert len(every) == 500  # without a bound, every empty tick in between runs
    bounded = _ticks([0.0, 500.5], tick=1.0, max_catch_up=10)
    assert [end for _, end in bounded] == [1.0, 500.0]
    assert bounded[0][0] == [0.0]


def test_flush_runs_what_is_left_at_the_end() -> None:
    got: list[tuple[list[float], float]] = []
    ticker: Ticker[float] = Ticker(1.0, lambda batch, end: got.append((batch, end)))
    for t in (0.0, 0.4, 2.2):
        ticker.add(t, t)
    ticker.flush(2.6)
    assert got == [([0.0, 0.4], 1.0), ([], 2.0), ([2.2], 2.6)]
    got.clear()
    ticker.add(5.0, 5.0)
    ticker.flush(math.inf)  # no usable end time: the last item's
    assert got[-1] == ([5.0], 5.0)


def test_aligned_ticks_end_on_whole_multiples_whenever_the_stream_starts() -> None:
    """The gateways of a store tick at the same instants: tick ends are k · tick_s exactly,
    computed from k (no drift from adding tick_s up), from any first item."""
    ends: dict[float, list[float]] = {}
    for first in (1_800_000_000.037, 1_800_000_000.081):
        got: list[float] = []
        ticker: Ticker[float] = Ticker(0.1, lambda _b, end, got=got: got.append(end), align=True)
        t = first
        while t < first + 60.0:
            ticker.add(t, t)
            t += 0.013
        ends[first] = got
    a, b = ends.values()
    assert len(a) >= 599 and a[:599] == b[:599]  # the same instants, to the bit
    assert all(abs(e / 0.1 - round(e / 0.1)) < 1e-6 for e in a)
    assert a[0] == pytest.approx(1_800_000_000.1)  # the tick that holds the first item
    assert a[-1] == 18_000_000_600 * 0.1  # k · tick_s, not a sum of 600 steps


class _Failing:
    """A radio that breaks after one advert."""

    name = "failing"

    def now(self) -> float:
        return 0.0

    def wall_at(self, t: float) -> float:
        return t

    def adapter_health(self) -> list[AdapterHealth]:
        return []

    async def run(self, sink: AdvertSink) -> None:
        await sink.put(Advert("C4:00:00:00:00:01", -60, 0.0, 0.0, "rx"))
        await asyncio.sleep(0.05)
        raise SourceError("failing", "the adapter is gone")


def test_a_feed_hands_out_everything_then_ends(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    record_store(rec, 5)
    n = len(rec.read_text().splitlines())

    async def consume() -> tuple[int, bool]:
        got = 0
        async with SourceFeed(ReplaySource(rec), 100) as feed:
            async for batch in feed.batches(0.5):
                got += len(batch)
        return got, feed.ended

    assert asyncio.run(consume()) == (n, True)


def test_a_feed_ends_on_sigterm_with_what_was_queued(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    record_store(rec, 30)

    async def consume() -> tuple[int, bool, bool]:
        got = 0
        async with SourceFeed(ReplaySource(rec, speed=5.0), 10_000) as feed:
            async for batch in feed.batches(0.1):
                got += len(batch)
                if got and not feed.stopped:
                    os.kill(os.getpid(), signal.SIGTERM)
        return got, feed.stopped, feed.ended

    got, stopped, ended = asyncio.run(consume())
    assert stopped and not ended and got > 0
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers removed again


def test_a_failing_source_ends_the_feed_with_its_error() -> None:
    async def consume() -> int:
        got = 0
        async with SourceFeed(_Failing(), 10, signals=False) as feed:
            async for batch in feed.batches(1.0):
                got += len(batch)
        return got

    with pytest.raises(SourceError, match="the adapter is gone"):
        asyncio.run(consume())


class _Radio:
    """A live source: an advert every millisecond, offered (never waited for)."""

    name = "radio"
    live = True

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def wall_at(self, t: float) -> float:
        return t

    async def run(self, sink: AdvertSink) -> None:
        n = 0
        while True:
            sink.offer(Advert(f"C0:00:00:00:00:{n % 200:02X}", -60, self.now(), 0.0, "hci0"))
            n += 1
            await asyncio.sleep(0.001)

    def adapter_health(self) -> list[AdapterHealth]:
        return []


def test_a_live_feed_wakes_once_a_tick_when_asked_to_gather() -> None:
    """With ``gather`` (the rest of a 50 ms tick), a radio sending every millisecond is handed
    out in one batch a tick, not one per wake-up (hundreds)."""

    async def go() -> tuple[list[int], float]:
        sizes: list[int] = []
        async with SourceFeed(_Radio(), 10_000, signals=False) as feed:
            loop = asyncio.get_running_loop()
            start = loop.time()

            def rest_of_tick() -> float:
                return 0.05 - loop.time() % 0.05

            async for batch in feed.batches(0.05, rest_of_tick):
                sizes.append(len(batch))
                if sum(sizes) >= 300:
                    feed.stop()
            return sizes, loop.time() - start

    sizes, took = asyncio.run(go())
    assert sum(sizes) >= 300
    assert len(sizes) <= took / 0.05 + 2, (sizes, took)
