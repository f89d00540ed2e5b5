"""Context events as the pipeline makes them, for tests of what comes after it."""

from __future__ import annotations

from edge_agent import topics
from edge_agent.models import ContextEvent, PresenceBody, Priority


def presence_event(
    device: str,
    wall: float,
    *,
    kind: str = "enter",
    zone: str = "a",
    distance_m: float = 2.0,
    rssi: float = -65.0,
    dwell_s: float = 0.0,
    confidence: float = 0.5,
) -> ContextEvent:
    """A presence event of a cart ``device`` in ``zone``, near its receiver ``rx-<zone>``."""
    return ContextEvent(
        topic=topics.presence(device),
        type=kind,
        wall=wall,
        body=PresenceBody(
            device=device,
            device_class="cart",
            zone=zone,
            band="near",
            receiver=f"rx-{zone}",
            distance_m=distance_m,
            distance_range_m=None,
            rssi=rssi,
            dwell_s=dwell_s,
            confidence=confidence,
        ),
        priority=Priority.UPDATE if kind == "update" else Priority.PRESENCE,
    )
