"""Address churn as a busy store hears it: phones rotate their address every ~15 minutes, so
tens of thousands of addresses an hour (the churn tests, the soak and the bench)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from edge_agent.config import load_config
from edge_agent.models import Advert
from edge_agent.pipeline.tick import Pipeline, Ticker
from edge_agent.tools.capacity import rss_mb

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


def run_through(p: Pipeline, adverts: Iterator[Advert], check: Callable[[float], None]) -> None:
    def tick(batch: list[Advert], now: float) -> None:
        p.process(batch, now, 1.7e9 + now)
        check(now)

    ticker: Ticker[Advert] = Ticker(p.cfg.pipeline.tick_s, tick, start=0.0)
    for a in adverts:
        ticker.add(a, a.t)
    ticker.flush(ticker.tick_end or 0.0)


def churn_soak(config: Path, hours: float) -> dict[str, float]:
    """``hours`` simulated hours, 50 000 addresses an hour, each heard every 20 s (about
    13 000 at once), the default cap and tick: RSS sampled every simulated 5 minutes; the
    slope after the first hour (the table full)."""
    p = Pipeline(load_config(config))
    cap = p.cfg.pipeline.max_devices
    samples: list[tuple[float, float]] = []
    most = 0
    next_at = 0.0

    def check(now: float) -> None:
        nonlocal most, next_at
        most = max(most, len(p._refs))
        if now >= next_at:
            samples.append((now / 3600, rss_mb()))
            next_at += 300.0

    run_through(p, churn(hours, 50_000, 20.0), check)
    late = [(h, mb) for h, mb in samples if h >= 1.0]
    slope = float(np.polyfit([h for h, _ in late], [mb for _, mb in late], 1)[0])
    line = (
        f"churn: {int(hours * 50_000)} addresses over {hours:g} h, {p.stats.adverts} adverts, "
        f"most tracked {most} (cap {cap}), evicted {p.stats.evicted}, "
        f"RSS {late[0][1]:.1f} -> {late[-1][1]:.1f} MB, slope {slope:+.2f} MB/h"
    )
    print(f"\nFIGURE {line}\n" + " ".join(f"{h:.2f}h:{mb:.1f}" for h, mb in samples))
    assert most <= cap
    return {"slope_mb_h": slope, "most": most, "rss_end_mb": late[-1][1], "line": line}
