"""Who is in a zone by fused positions, for the moments that need it without the zone
machine's hysteresis and delay (crowds, dwells on a floor plan).

A device counts in a zone where it is more likely than not. Measured on the simulated store,
that is closer to the truth than the sum of probabilities (the posterior's spread into the
neighbouring zones biases a sum low) and sooner than the zone machine's counts.
"""

from __future__ import annotations

from edge_agent.pipeline.fusion import Position
from edge_agent.pipeline.identity import DeviceRef


def counted(p: float) -> float:
    """What a device with probability ``p`` of being in a zone adds to its count."""
    return 1.0 if p >= 0.5 else 0.0


class ZoneFollower:
    """Per followed zone and device class, the devices counted there, kept up to date from
    each device's latest fused position (work per position, not per tick)."""

    def __init__(self, plan_zones: tuple[str, ...], followed: set[str]) -> None:
        self._index = {z: k for k, z in enumerate(plan_zones) if z in followed}
        self._counts: dict[str, dict[str, float]] = {z: {} for z in self._index}
        self._placed: dict[str, tuple[str, tuple[tuple[str, float], ...]]] = {}
        self._at: dict[str, Position] = {}
        """The position each device was last placed by (heard again without a new one:
        nothing to redo)."""

    def __bool__(self) -> bool:
        """Whether any zone is followed (a floor plan with crowd or dwell rules)."""
        return bool(self._index)

    def follows(self, zone: str) -> bool:
        """Whether ``zone`` is followed."""
        return zone in self._index

    def placed(self, ref: DeviceRef, pos: Position | None) -> None:
        """A device's latest fused position (``None``: it is no longer placed)."""
        if pos is not None and self._at.get(ref.id) is pos:
            return
        self.unplace(ref.id)
        if pos is None:
            return
        self._at[ref.id] = pos
        kind = ref.kind.value
        probs = tuple((z, pos.zones[k]) for z, k in self._index.items() if pos.zones[k] > 1e-3)
        if probs:
            self._placed[ref.id] = (kind, probs)
            for zone, p in probs:
                by_class = self._counts[zone]
                by_class[kind] = by_class.get(kind, 0.0) + counted(p)

    def unplace(self, device: str) -> None:
        """Take a device out of every count."""
        self._at.pop(device, None)
        old = self._placed.pop(device, None)
        if old is not None:
            kind, probs = old
            for zone, p in probs:
                by_class = self._counts[zone]
                by_class[kind] = max(by_class.get(kind, 0.0) - counted(p), 0.0)

    def probability(self, device: str, zone: str) -> float:
        """How likely the device is in a followed ``zone`` by its latest position."""
        placed = self._placed.get(device)
        if placed is None:
            return 0.0
        return next((p for z, p in placed[1] if z == zone), 0.0)

    def count(self, zone: str, classes: list[str]) -> float:
        """Devices of ``classes`` (every class when empty) counted in a followed ``zone``."""
        by_class = self._counts[zone]
        n = sum(by_class.get(c, 0.0) for c in classes) if classes else sum(by_class.values())
        return round(n, 1)
