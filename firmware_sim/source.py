"""The simulated store as an ``AdvertSource`` with a virtual clock (any speed, or flat out)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import IO

from edge_agent.sources import AdvertSink
from firmware_sim.store import StoreSim, Truth, load_scenario

STEP_S = 0.05
TRUTH_EVERY_S = 1.0


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
        keep_truth: bool = False,
    ) -> None:
        spec = load_scenario(scenario)
        self.sim = StoreSim(spec, seed)
        self.name = "sim"
        self.speed = speed
        self.duration_s = duration_s
        self.start_wall = spec.start_wall if spec.start_wall is not None else round(time.time(), 3)
        self.truth_path = Path(truth_path) if truth_path else None
        self.keep_truth = keep_truth
        self.truth: list[Truth] = []
        self.adverts = 0
        self._now = 0.0

    def now(self) -> float:
        """Virtual time up to which every advert has been handed over."""
        return self._now

    def wall_at(self, t: float) -> float:
        """Wall time of virtual instant ``t``."""
        return self.start_wall + t

    def _record_truth(self, t: float, out: IO[str] | None) -> None:
        for tr in self.sim.truth(t):
            if self.keep_truth:
                self.truth.append(tr)
            if out is not None:
                out.write(
                    json.dumps(
                        {
                            "t": tr.t,
                            "device": tr.device,
                            "kind": tr.kind,
                            "x": tr.x,
                            "y": tr.y,
                            "zone": tr.zone,
                        }
                    )
                    + "\n"
                )

    async def run(self, sink: AdvertSink) -> None:
        """Step the store until ``duration_s`` (or forever), pacing to ``speed``."""
        out = self.truth_path.open("w", encoding="utf-8") if self.truth_path else None
        try:
            start_real = time.monotonic()
            next_truth = 0.0
            t = 0.0
            while self.duration_s is None or t < self.duration_s:
                t1 = t + STEP_S
                if self.duration_s is not None:
                    t1 = min(t1, self.duration_s)
                if self.speed > 0:
                    delay = start_real + t1 / self.speed - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                for advert in self.sim.step(t, t1, self.start_wall):
                    await sink.put(advert)
                self.adverts = sink.received
                while next_truth < t1:
                    self._record_truth(next_truth, out)
                    next_truth += TRUTH_EVERY_S
                t = t1
                self._now = t1
                await asyncio.sleep(0)
            await sink.end()
        finally:
            if out is not None:
                out.close()
