"""The source that ``[source]`` asks for: the radio, the simulated store or a recording."""

from __future__ import annotations

from edge_agent.config import AgentConfig
from edge_agent.runtime.sources import AdvertSource


def make_source(cfg: AgentConfig) -> AdvertSource:
    """A new source for ``cfg.source`` (imports only what that kind needs)."""
    src = cfg.source
    if src.kind == "sim":
        from edge_agent.tools.simstore import sim_source  # the simulator is optional at run time

        return sim_source(src)
    if src.kind == "replay":
        from edge_agent.runtime.sources.replay import ReplaySource

        assert src.path is not None
        return ReplaySource(src.path, speed=src.speed)
    from edge_agent.runtime.sources.bleak import BleakSource

    return BleakSource(src)
