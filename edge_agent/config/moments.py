"""``[[moments]]`` and ``[aggregates]``: the moments that matter, and the anonymous figures.

Each moment rule has a ``name`` (its topic segment: ``moment/{name}``), who it applies to and
one ``trigger``; pydantic picks the rule's model from the trigger, so a key that belongs to
another trigger, or a threshold of the wrong type, is named as such. References (zones,
devices) are checked against the rest of the file in ``loading``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator, Sequence
from itertools import pairwise
from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge_agent.config.base import Segment, _Section
from edge_agent.models import DeviceClass


class _Rule(_Section):
    name: Segment
    """The moment's name: published on ``moment/{name}``."""
    classes: list[DeviceClass] = Field(default_factory=list)
    """Device classes it applies to (empty: every class)."""
    devices: list[Segment] = Field(default_factory=list)
    """Registered devices it applies to, by id (empty: every device of ``classes``)."""
    consented: bool = False
    """Only devices of the consent list (shoppers who agreed), not those the configuration
    registers (carts, badges): a loyalty moment."""
    rate_limit_s: float = Field(300.0, ge=0)
    """The same subject fires this rule at most once per this many seconds."""


class DwellRule(_Rule):
    """A device stays in a zone at least ``min_s`` (fires once per visit)."""

    trigger: Literal["dwell"]
    zone: Segment
    """The zone."""
    min_s: float = Field(gt=0)
    """Seconds in the zone before it fires."""
    max_gap_s: float = Field(15.0, ge=0)
    """A stay that leaves the zone for less than this and comes back is one visit (a shopper
    at the zone's edge; the zone decision may flicker there)."""


class SequenceRule(_Rule):
    """A device visits ``zones`` in this order (other zones between are allowed) within
    ``within_s`` of entering the first."""

    trigger: Literal["sequence"]
    zones: list[Segment] = Field(min_length=2)
    """The zones, in order (at least two)."""
    within_s: float = Field(gt=0)
    """From entering the first to entering the last."""


class CrowdRule(_Rule):
    """A zone holds at least ``at_least`` devices (of ``classes``) for at least ``for_s``: a
    queue. Has a start and an end (when fewer than ``at_least`` remain for ``for_s``)."""

    trigger: Literal["crowd"]
    zone: Segment
    """The zone."""
    at_least: int = Field(ge=1)
    """Devices in the zone."""
    for_s: float = Field(0.0, ge=0)
    """How long the count must hold before the moment starts."""
    clear_s: float = Field(15.0, ge=0)
    """How long fewer must remain before it ends, or before the wait for ``for_s`` starts
    again (a queue does not end, or start over, with one cart leaving for a moment)."""


class SensorRule(_Rule):
    """A sensor's ``measurement`` beyond a threshold for at least ``for_s`` (a freezer above
    −15 °C for 10 min, a door open over 2 min, a battery below 10 %), and its recovery."""

    trigger: Literal["sensor"]
    measurement: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,40}$")]
    """Measurement name as published (``temperature``, ``door``, ``battery`` …)."""
    above: float | None = None
    """Fires while the value is above this."""
    below: float | None = None
    """Fires while the value is below this."""
    equals: bool | float | str | None = None
    """Fires while the value equals this (``true`` for a door that is open)."""
    for_s: float = Field(0.0, ge=0)
    """How long the condition must hold before the moment starts."""
    clear_s: float = Field(0.0, ge=0)
    """How long it must not hold before the moment ends, or the wait for ``for_s`` starts
    again (0: at the first reading back)."""
    stale_s: float = Field(900.0, gt=0)
    """A sensor not heard for this long no longer counts as beyond the threshold."""

    @model_validator(mode="after")
    def _one_threshold(self) -> SensorRule:
        given = [k for k in ("above", "below", "equals") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a sensor moment needs exactly one of above, below or equals (given: "
                f"{', '.join(given) or 'none'})"
            )
        return self


class AbsenceRule(_Rule):
    """A registered device (a staff badge, a cart) not seen in ``zone`` — or, without a zone,
    anywhere in the store — for at least ``for_s``; ends when it is back."""

    trigger: Literal["absence"]
    zone: Segment | None = None
    """Where it belongs (unset: anywhere in the store)."""
    for_s: float = Field(gt=0)
    """Seconds away before the moment starts."""
    clear_s: float = Field(0.0, ge=0)
    """How long it must be back before the moment ends."""

    @model_validator(mode="after")
    def _needs_devices(self) -> AbsenceRule:
        if not self.devices:
            raise ValueError("an absence moment needs the registered devices it watches")
        return self


TRIGGERS = ("dwell", "sequence", "crowd", "sensor", "absence")
"""The ``trigger`` of each kind of rule."""
MomentRule = Annotated[
    DwellRule | SequenceRule | CrowdRule | SensorRule | AbsenceRule,
    Field(discriminator="trigger"),
]
"""One ``[[moments]]`` entry."""


class AggregatesConfig(_Section):
    """``[aggregates]``: anonymous figures of how people move, per interval, for everyone."""

    enabled: bool = True
    """Publish ``aggregate/{kind}`` each interval."""
    interval_s: float = Field(900.0, ge=10)
    """Length of one interval (aligned to whole multiples of it since the epoch)."""
    classes: list[DeviceClass] = Field(
        default_factory=lambda: [DeviceClass.SHOPPER, DeviceClass.CART, DeviceClass.UNKNOWN]
    )
    """Device classes counted (people and what they push, not staff or fixtures)."""
    min_visit_s: float = Field(5.0, ge=0)
    """A stay in a zone shorter than this is passing through, not a visit: it counts in no
    figure (a shopper crossing a corner of the bakery has not visited it)."""
    dwell_edges_s: list[float] = Field(
        default_factory=lambda: [30.0, 60.0, 120.0, 300.0, 600.0, 1200.0]
    )
    """Upper edges of the dwell-time histogram bins (a last bin holds the rest)."""
    visit_edges_s: list[float] = Field(
        default_factory=lambda: [300.0, 600.0, 1200.0, 1800.0, 3600.0]
    )
    """Upper edges of the visit-length (time in the store) histogram bins."""

    @model_validator(mode="after")
    def _increasing(self) -> AggregatesConfig:
        for key in ("dwell_edges_s", "visit_edges_s"):
            edges = getattr(self, key)
            if not edges or any(b <= a for a, b in pairwise(edges)):
                raise ValueError(f"{key} must be increasing and not empty")
        return self


def reference_issues(
    rules: Sequence[MomentRule],
    zones: set[str],
    devices: set[str],
    fleet_formats: Sequence[tuple[str, str]],
) -> Iterator[tuple[tuple[str | int, ...], object, str]]:
    """Rules that name what the rest of the file does not have: ``(key path, value, why)``;
    ``fleet_formats`` are each fleet's ``(id_format, kind)``."""
    known_zones = ", ".join(sorted(zones)) or "none"
    fleets = [fleet_pattern(fmt, kind) for fmt, kind in fleet_formats]
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        if rule.name in seen:
            yield ("moments", i, "name"), rule.name, "another moment has this name"
        seen.add(rule.name)
        names = rule.zones if isinstance(rule, SequenceRule) else [getattr(rule, "zone", None)]
        for j, zone in enumerate(names):
            if zone is not None and zone not in zones:
                loc: tuple[str | int, ...] = (
                    ("moments", i, "zones", j)
                    if isinstance(rule, SequenceRule)
                    else ("moments", i, "zone")
                )
                yield loc, zone, f"no such zone (zones: {known_zones})"
        for j, dev in enumerate(rule.devices):
            if dev not in devices and not any(p.fullmatch(dev) for p in fleets):
                yield (
                    ("moments", i, "devices", j),
                    dev,
                    "not a registered device: neither a [[devices]] id nor an id a [[fleets]] "
                    "id_format gives",
                )


def fleet_pattern(template: str, kind: str) -> re.Pattern[str]:
    """The ids a fleet's ``id_format`` can give (``cart-{minor}`` → ``cart-\\d+``)."""
    out = ""
    for literal, field, _, _ in string.Formatter().parse(template):
        out += re.escape(literal)
        if field == "kind":
            out += re.escape(kind)
        elif field is not None:
            out += r"\d+"
    return re.compile(out)
