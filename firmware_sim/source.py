"""The simulated store as an ``AdvertSource`` with a virtual clock (any speed, or flat out)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import IO

from edge_agent.contract import AdapterHealth
from edge_agent.runtime.sources import AdvertSink
from firmware_sim.store import StoreSim, load_scenario, simulate


def open_or_none(path: str | Path | None) -> contextlib.AbstractContextManager[IO[str] | None]:
    """A text file opened for writing, or ``None`` (as a context manager) when no path is given."""
    if path is None:
        return contextlib.nullcontext(None)
    return Path(path).open("w", encoding="utf-8")


class SimSource:
    """Runs ``StoreSim`` forward in steps of virtual time and feeds the adverts to a sink."""

    def __init__(
        self,
        scenario: str | Path,
        *,
        speed: float = 1.0,
        duration_s: float | None = None,
        seed: int | None = None,
        truth_path: str | Path | None = None,
    ) -> None:
        spec = load_scenario(scenario)
        self.sim = StoreSim(spec, seed)
        self.name = "sim"
        self.live = False
        self.speed = speed
        self.duration_s = duration_s
        self.start_wall = spec.start_wall if spec.start_wall is not None else round(time.time(), 3)
        self.truth_path = Path(truth_path) if truth_path else None
        self._now = 0.0

    def now(self) -> float:
        """Virtual time up to which every advert has been handed over."""
        return self._now

    def wall_at(self, t: float) -> float:
        """Wall time of virtual instant ``t``."""
        return self.start_wall + t

    def adapter_health(self) -> list[AdapterHealth]:
        """No radio here."""
        return []

    async def run(self, sink: AdvertSink) -> None:
        """Step the store until ``duration_s`` (or forever), pacing to ``speed``."""
        with open_or_none(self.truth_path) as out:
            start_real = time.monotonic()
            for t1, adverts, truth in simulate(self.sim, self.duration_s, self.start_wall):
                if self.speed > 0:
                    delay = start_real + t1 / self.speed - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                for advert in adverts:
                    await sink.put(advert)
                if out is not None:
                    out.writelines(tr.to_json() + "\n" for tr in truth)
                self._now = t1
                await asyncio.sleep(0)
            await sink.end()
