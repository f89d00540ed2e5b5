"""The estimates file (DESIGN §4): what the filter and proximity stages concluded, sample by
sample, so anyone can score the agent on traces with truth using their own script.

One line per input sample ``{"t", "receiver", "device", "rssi", "rssi_smoothed", "distance_m",
"band"}`` and, on a floor plan, one line per fused update ``{"t", "device", "nearest_receiver",
"x", "y", "error_m"}`` from the fusion engine (the position the agent works with).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO

from edge_agent.config import ProximityConfig
from edge_agent.models import SampleEstimate
from edge_agent.pipeline.fusion import Position
from edge_agent.pipeline.proximity import band_for


class EstimateWriter:
    """Writes sample lines with their band (hysteresis per device and receiver), and the fused
    lines of the devices fusion placed anew."""

    def __init__(self, out: IO[str], prox: ProximityConfig) -> None:
        self.out = out
        self.prox = prox
        self._band: dict[tuple[str, str], str] = {}
        self.samples = 0
        self.fused = 0

    def write(self, samples: Iterable[SampleEstimate], fused: Iterable[Position] = ()) -> None:
        """One tick's samples, then its fused positions."""
        prox = self.prox
        lines: list[str] = []
        for s in samples:
            key = (s.device, s.receiver)
            band = band_for(s.distance_m, self._band.get(key, ""), prox)
            self._band[key] = band
            lines.append(
                json.dumps(
                    {
                        "t": s.t,
                        "receiver": s.receiver,
                        "device": s.device,
                        "rssi": s.rssi,
                        "rssi_smoothed": round(s.rssi_smoothed, 2),
                        "distance_m": round(s.distance_m, 3),
                        "band": band,
                    },
                    separators=(",", ":"),
                )
            )
            self.samples += 1
        for pos in fused:
            lines.append(
                json.dumps(
                    {
                        "t": pos.t,
                        "device": pos.device,
                        "nearest_receiver": pos.nearest,
                        "x": round(pos.x, 3),
                        "y": round(pos.y, 3),
                        "error_m": round(pos.error_m, 3),
                    },
                    separators=(",", ":"),
                )
            )
            self.fused += 1
        if lines:
            self.out.write("\n".join(lines) + "\n")
