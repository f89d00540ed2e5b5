"""A new configuration for a running pipeline (hot reload), keeping what still holds.

The pseudonym key and its day always carry over (a reload never re-keys shoppers), and so do
the counters. When the sections that shape tracking are unchanged, so is the tracking itself
(filters, fusion, zone machines, sensor readings): a reload that changes a moment rule or a rate
limit is not seen by devices. Otherwise tracking starts afresh: every device in a zone leaves it
first (``exit``), so that consumers never hold a presence nothing will end. Moments under way
and the interval's counts carry over through the pipeline's snapshot. Pure: no I/O.
"""

from __future__ import annotations

from edge_agent.config import AgentConfig
from edge_agent.models import ContextEvent
from edge_agent.pipeline.identity import Identity
from edge_agent.pipeline.tick import Pipeline
from edge_agent.pipeline.zones import ZoneChange

TRACKING = (
    "proximity",
    "receivers",
    "calibration",
    "zones",
    "fusion",
    "devices",
    "fleets",
    "privacy",
    "pipeline.tick_s",
    "presence.min_dwell_s",
    "presence.switch_margin_db",
    "presence.exit_debounce_s",
)
"""Settings the tracked devices' state depends on (dotted: one key of a section)."""
RULES = ("moments", "aggregates")
"""Settings the moments and aggregates under way depend on."""


def _value(cfg: AgentConfig, dotted: str) -> object:
    node: object = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def changed(old: AgentConfig, new: AgentConfig, keys: tuple[str, ...]) -> list[str]:
    """Those of ``keys`` whose value differs between the two configurations."""
    return [k for k in keys if _value(old, k) != _value(new, k)]


def carried_identity(old: Identity, cfg: AgentConfig) -> Identity:
    """An identity stage for ``cfg`` that goes on with ``old``'s key, its day and counters."""
    new = Identity(cfg, key=old.key_bytes(), day_keys=old.day_keys)
    new.continue_from(old)
    return new


def reconfigured(
    old: Pipeline, cfg: AgentConfig, now: float, wall: float
) -> tuple[Pipeline, list[ContextEvent], bool]:
    """A pipeline for ``cfg`` that takes over from ``old`` at ``now`` (source clock).

    Returns it, the events of the hand-over (``exit`` of every device in a zone, and what
    moments and aggregates make of them, when tracking starts afresh) and whether the
    tracked devices were kept.
    """
    keep = not changed(old.cfg, cfg, TRACKING)
    identity = old.identity if keep else carried_identity(old.identity, cfg)
    out: list[ContextEvent] = []
    if not keep:
        old.close_all(now, wall, out)
    new = Pipeline(cfg, identity, bthome_keys=old.bthome_keys)
    new.stats, new.decode_stats = old.stats, old.decode_stats
    new.sample_log = old.sample_log
    if keep:
        new.table, new.fusion, new.feed = old.table, old.fusion, old.feed
        new.presence = old.presence
        new.presence.reconfigure(cfg)
        new.adopt_devices(old)
        if not changed(old.cfg, cfg, ("sensors",)):
            new.sensors = old.sensors
        if not changed(old.cfg, cfg, RULES):
            new.moments, new.aggregates = old.moments, old.aggregates
            return new, out, keep
    new.restore(old.snapshot())
    if keep:  # the new rules see who is where already, as if they had just come in
        present = [
            ZoneChange(st.ref, "enter", st.zone, st.entered_at, st.entered_at)
            for st in new.presence.states.values()
            if st.zone is not None
        ]
        new.moments.step(present, now, wall, out)
    return new, out, keep
