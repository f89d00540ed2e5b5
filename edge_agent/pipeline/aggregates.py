"""Anonymous journey aggregates: how people move through the store, per interval, for everyone.

From the zone changes of the devices of ``aggregates.classes`` (shoppers and carts, pseudonymous
or not): the flow matrix (zone-to-zone transitions, ``outside`` for the store's edge), the
dwell-time histogram per zone, visits per zone and the visit-length histogram. A visit is a stay
of at least ``min_visit_s``, counted when it ends (a shorter stay is passing through). Cells
hold counts only, labelled by zones and bins, never an id; a cell from 1 to k-1 is withheld
(counted in ``suppressed``). Intervals are whole multiples of ``interval_s`` since the epoch;
this interval's counts are part of ``snapshot``, so a restart does not lose them.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from edge_agent import topics
from edge_agent.config import AgentConfig
from edge_agent.models import AggregateBody, AggregateCell, ContextEvent, Priority
from edge_agent.pipeline.zones import ZoneChange

OUTSIDE = "outside"
"""The flow matrix's name for beyond the store's zones (arrivals and departures)."""
KINDS = ("flow", "dwell", "visits", "visit_length")
"""The aggregates published each interval, in this order."""

Cell = tuple[tuple[str, str], ...]
"""A cell's labels, as sorted pairs (hashable)."""


def bin_label(edges: Sequence[float], seconds: float) -> str:
    """The histogram bin of ``seconds``: ``lo-hi`` by the upper ``edges``, ``lo+`` past them."""
    k = bisect.bisect_left(edges, seconds)
    lo = 0.0 if k == 0 else edges[k - 1]
    return f"{lo:g}+" if k == len(edges) else f"{lo:g}-{edges[k]:g}"


class AggregateEngine:
    """This interval's counts and the little per device they need (its last zone, arrival)."""

    def __init__(self, cfg: AgentConfig) -> None:
        agg = cfg.aggregates
        self.enabled = agg.enabled
        self._classes = frozenset(agg.classes)
        self._dwell_edges = list(agg.dwell_edges_s)
        self._visit_edges = list(agg.visit_edges_s)
        self._interval = agg.interval_s
        self._min_visit = agg.min_visit_s
        self._k = cfg.privacy.k_anonymity
        self._last_zone: dict[str, str] = {}
        self._arrived: dict[str, float] = {}
        self._left_at: dict[str, float] = {}
        self.counts: dict[str, Counter[Cell]] = {kind: Counter() for kind in KINDS}
        """This interval's counts by kind and cell."""
        self._interval_start: float | None = None
        self._observed_from: float | None = None
        self.dirty = False

    def step(
        self, changes: list[ZoneChange], now: float, wall: float, out: list[ContextEvent]
    ) -> None:
        """The zone changes of one tick, then the interval's figures when it is over."""
        if not self.enabled:
            return
        for ch in changes:
            if ch.ref.kind in self._classes:
                self._change(ch)
        start = math.floor(wall / self._interval) * self._interval
        if self._interval_start is None:
            self._interval_start = start
        if self._observed_from is None:
            self._observed_from = max(wall, self._interval_start)
        if start > self._interval_start:
            out.extend(self._publish())
            self._interval_start = self._observed_from = start
            self.dirty = True

    def _change(self, ch: ZoneChange) -> None:
        device = ch.ref.id
        c = self.counts
        if ch.kind == "exit" and ch.zone is not None and ch.t - ch.since >= self._min_visit:
            before = self._last_zone.get(device, OUTSIDE)
            if before != ch.zone:
                c["flow"][(("from", before), ("to", ch.zone))] += 1
            c["visits"][(("zone", ch.zone),)] += 1
            label = bin_label(self._dwell_edges, ch.t - ch.since)
            c["dwell"][(("bin", label), ("zone", ch.zone))] += 1
            self._last_zone[device] = ch.zone
            self._arrived.setdefault(device, ch.since)
            self._left_at[device] = ch.t
        elif ch.kind == "gone":
            last = self._last_zone.pop(device, None)
            arrived = self._arrived.pop(device, None)
            left = self._left_at.pop(device, ch.t)
            if last is not None:
                c["flow"][(("from", last), ("to", OUTSIDE))] += 1
            if arrived is not None:
                label = bin_label(self._visit_edges, max(left - arrived, 0.0))
                c["visit_length"][(("bin", label),)] += 1
        self.dirty = True

    def forget(self, devices: set[str]) -> None:
        """Erase the per-device state (counts hold no ids and stay)."""
        for device in devices:
            self._last_zone.pop(device, None)
            self._arrived.pop(device, None)
            self._left_at.pop(device, None)

    def _publish(self) -> list[ContextEvent]:
        assert self._interval_start is not None
        end = self._interval_start + self._interval
        observed = end - (self._observed_from if self._observed_from is not None else end)
        out = []
        for kind in KINDS:
            kept = [
                AggregateCell(dict(cell), n)
                for cell, n in sorted(self.counts[kind].items())
                if n >= self._k
            ]
            withheld = sum(1 for n in self.counts[kind].values() if 0 < n < self._k)
            out.append(
                ContextEvent(
                    topic=topics.aggregate(kind),
                    type="aggregate",
                    wall=end,
                    body=AggregateBody(
                        kind=kind,
                        cells=tuple(kept),
                        suppressed=withheld,
                        k=self._k,
                        interval_start=self._interval_start,
                        interval_s=self._interval,
                        observed_s=round(max(observed, 0.0), 1),
                    ),
                    priority=Priority.READING,
                )
            )
            self.counts[kind].clear()
        return out

    def snapshot(self) -> dict[str, Any]:
        """This interval's counts (no ids), for a restart."""
        self.dirty = False
        return {
            "interval_start": self._interval_start,
            "observed_from": self._observed_from,
            "counts": {
                kind: [[list(map(list, cell)), n] for cell, n in counts.items()]
                for kind, counts in self.counts.items()
            },
        }

    def restore(self, snap: Mapping[str, Any]) -> None:
        """Take up a previous run's counts (the interval they belong to is kept: if it is over,
        the next step publishes it)."""
        if snap.get("interval_start") is None:
            return
        self._interval_start = float(snap["interval_start"])
        if snap.get("observed_from") is not None:
            self._observed_from = float(snap["observed_from"])
        for kind, cells in (snap.get("counts") or {}).items():
            if kind in self.counts:
                for labels, n in cells:
                    cell: Cell = tuple((str(a), str(b)) for a, b in labels)
                    self.counts[kind][cell] += int(n)
