"""Address churn: phones rotate their address every ~15 minutes, so a busy store hears tens of
thousands of addresses an hour. The device table stays under ``pipeline.max_devices`` and
memory stays flat (the soak reports the slope)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import load_config
from edge_agent.models import Advert
from edge_agent.pipeline.recent import Recent
from edge_agent.pipeline.tick import Pipeline, Ticker
from tests.unit.test_pipeline import CONFIG

LIFE_S = 900.0
"""How long a phone keeps one address."""


def churn(hours: float, per_hour: int, every_s: float, seed: int = 1) -> Iterator[Advert]:
    """Adverts of ``per_hour`` distinct resolvable addresses an hour, each heard every
    ``every_s`` for ``LIFE_S``, in time order."""
    rng = random.Random(seed)
    n = int(hours * per_hour)
    starts = sorted(rng.uniform(0, hours * 3600) for _ in range(n))
    addresses = [
        ":".join(f"{b:02X}" for b in [0x40 | rng.randrange(64), *rng.randbytes(5)])
        for _ in range(n)
    ]
    active: list[int] = []
    nxt = 0
    t = 0.0
    while t < hours * 3600:
        while nxt < n and starts[nxt] < t + every_s:
            active.append(nxt)
            nxt += 1
        active = [i for i in active if starts[i] + LIFE_S > t]
        slot = sorted((max(t, starts[i]) + (i % 97) / 97 * every_s * 0.99, i) for i in active)
        for at, i in slot:
            if at < t + every_s:
                yield Advert(addresses[i], -60 - (i % 30), at, 1.7e9 + at, "rx-a", "random")
        t += every_s


def _run(p: Pipeline, adverts: Iterator[Advert], check: Callable[[float], None]) -> None:
    def tick(batch: list[Advert], now: float) -> None:
        p.process(batch, now, 1.7e9 + now)
        check(now)

    ticker: Ticker[Advert] = Ticker(p.cfg.pipeline.tick_s, tick, start=0.0)
    for a in adverts:
        ticker.add(a, a.t)
    ticker.flush(ticker.tick_end or 0.0)


def test_the_table_stays_under_the_cap_through_address_churn(
    write_config: Callable[[str], Path],
) -> None:
    cap = 2000
    p = Pipeline(
        load_config(write_config(CONFIG), {"pipeline.max_devices": cap, "pipeline.tick_s": 0.5})
    )
    most = 0

    def check(_now: float) -> None:
        nonlocal most
        most = max(most, len(p._refs), p.devices_tracked)

    _run(p, churn(10 / 60, 50_000, 30.0), check)  # 10 minutes at 50 000 addresses an hour
    assert most <= cap
    assert p.stats.evicted > 0 and p.stats.adverts > 50_000


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20


@pytest.mark.soak
def test_memory_is_flat_through_three_hours_of_churn(write_config: Callable[[str], Path]) -> None:
    """`make soak`: 3 simulated hours, 50 000 addresses an hour, each heard every 20 s (about
    13 000 at once), the default cap and tick: RSS sampled every simulated 5 minutes; the slope
    over the last two hours."""
    p = Pipeline(load_config(write_config(CONFIG)))
    cap = p.cfg.pipeline.max_devices
    samples: list[tuple[float, float]] = []
    most = 0
    next_at = 0.0

    def check(now: float) -> None:
        nonlocal most, next_at
        most = max(most, len(p._refs))
        if now >= next_at:
            samples.append((now / 3600, _rss_mb()))
            next_at += 300.0

    _run(p, churn(3.0, 50_000, 20.0), check)
    late = [(h, mb) for h, mb in samples if h >= 1.0]
    slope = float(np.polyfit([h for h, _ in late], [mb for _, mb in late], 1)[0])
    print(
        f"\nFIGURE churn: 150000 addresses over 3 h, {p.stats.adverts} adverts, "
        f"most tracked {most} (cap {cap}), evicted {p.stats.evicted}, "
        f"RSS {late[0][1]:.1f} -> {late[-1][1]:.1f} MB, slope {slope:+.2f} MB/h\n"
        + " ".join(f"{h:.2f}h:{mb:.1f}" for h, mb in samples)
    )
    assert most <= cap
    assert slope < 1.0


def test_the_resolution_cache_is_bounded_and_keeps_what_is_used() -> None:
    cache: Recent[str, int] = Recent(4)
    for i in range(100):
        cache[f"a{i}"] = i
        cache["kept"] = -1 if i == 0 else cache["kept"]  # used all along
    assert len(cache) <= 8
    assert cache["kept"] == -1 and cache["a99"] == 99
    with pytest.raises(KeyError):
        cache["a0"]
    cache.drop_if(lambda v: v < 0)
    with pytest.raises(KeyError):
        cache["kept"]


def test_devices_without_news_are_looked_at_only_when_a_timer_expires(
    write_config: Callable[[str], Path],
) -> None:
    """200 carts in a zone, then silence: no tick looks at them until a timer of theirs (an
    update due, their receiver ageing out) expires — then each leaves on time."""
    from edge_agent.models import IBeaconFrame
    from firmware_sim.encoders import encode_ibeacon
    from tests.support.ticks import run_ticks
    from tests.unit.test_pipeline import UUID

    p = Pipeline(load_config(write_config(CONFIG)))
    frames = [encode_ibeacon(IBeaconFrame(UUID, 1, 100 + c, -59)) for c in range(200)]
    heard = [
        Advert(
            f"C1:00:00:00:02:{c:02X}",
            -62,
            t,
            1.7e9 + t,
            "rx-a",
            "random",
            manufacturer_data={0x004C: frames[c]},
        )
        for t in (i * 1.0 for i in range(10))
        for c in range(200)
    ]
    looked: list[float] = []
    evaluate = p.presence.evaluate

    def counting(*args, **kw):  # type: ignore[no-untyped-def]
        looked.append(args[2])
        return evaluate(*args, **kw)

    p.presence.evaluate = counting  # type: ignore[method-assign]
    due = p.sensors._due
    beacons_looked: list[tuple[float, int]] = []

    def due_counting(now: float):  # type: ignore[no-untyped-def]
        found = due(now)
        beacons_looked.append((now, len(found)))
        return found

    p.sensors._due = due_counting  # type: ignore[method-assign]
    events = run_ticks(p, heard, 40.0)
    # beacon health: each cart reported when first heard, then nothing is due for 600 s
    assert sum(n for t, n in beacons_looked if t > 1.05) == 0
    # after the last adverts (9 s): looked at only when updates fall due (entered at 2.1 s:
    # 12.1 and 22.1 s) and when the receiver ages out (9 + 15 = 24 s), 200 each time
    after = Counter(round(t, 1) for t in looked if t > 10.05)
    assert set(after) <= {12.1, 22.1, 24.0, 24.1}, after
    assert after[12.1] == after[22.1] == 200
    exits = [e for e in events if e.type == "exit"]
    assert len(exits) == 200 and all(24.0 <= e.wall - 1.7e9 <= 24.2 for e in exits)
