"""Scripted incidents of a scenario (``[[incidents]]``): what the moments of the agent must see,
with the truth of when each began and ended.

- ``warm``: a thermometer warms from its setpoint towards ``to_c`` (linear over ``ramp_s``),
  holds for ``duration_s``, then cools back over ``ramp_s`` (a freezer door left ajar);
- ``door_open``: a door contact stays open for ``duration_s``;
- ``rush``: ``count`` shoppers arrive at once with carts from the car park, go straight to
  ``zone`` and stay there ``duration_s`` (a queue at the checkout), then leave;
- ``badge_leaves``: a staff badge leaves the store (nothing hears it) for ``duration_s``.

The truth of a sensor incident is what the sensor itself measured (``Firmware.readings``): no
agent can know a value before the sensor sends it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class IncidentSpec(BaseModel):
    """One ``[[incidents]]`` entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["warm", "door_open", "rush", "badge_leaves"]
    at_s: float = Field(ge=0)
    """When it begins, simulated seconds."""
    duration_s: float = Field(gt=0)
    """How long it lasts (for ``warm``: the hold at ``to_c``)."""
    device: str | None = None
    """The thermometer, door or badge (``warm``, ``door_open``, ``badge_leaves``)."""
    zone: str | None = None
    """Where a ``rush`` goes."""
    count: int = Field(8, ge=1, le=500)
    """Shoppers in a ``rush``."""
    to_c: float = 0.0
    """Temperature a ``warm`` reaches."""
    ramp_s: float = Field(120.0, gt=0)
    """How long a ``warm`` takes to get there, and to come back."""


def warm_offset(t: float, setpoint_c: float, incidents: list[IncidentSpec]) -> float:
    """How far above its setpoint a thermometer is at ``t`` because of its ``warm`` incidents."""
    out = 0.0
    for inc in incidents:
        until = inc.at_s + inc.ramp_s + inc.duration_s
        if t < inc.at_s or t > until + inc.ramp_s:
            continue
        frac = min(1.0, (t - inc.at_s) / inc.ramp_s) if t <= until else 1 - (t - until) / inc.ramp_s
        out += max(frac, 0.0) * (inc.to_c - setpoint_c)
    return out


def forced_open(t: float, incidents: list[IncidentSpec]) -> bool:
    """Whether a ``door_open`` incident holds the door open at ``t``."""
    return any(inc.at_s <= t < inc.at_s + inc.duration_s for inc in incidents)


def away(t: float, incidents: list[IncidentSpec]) -> bool:
    """Whether a ``badge_leaves`` incident has the badge out of the store at ``t``."""
    return any(inc.at_s <= t < inc.at_s + inc.duration_s for inc in incidents)
