"""The simulated store (``firmware_sim``): the ``sim`` source and the store scores of
``eval --store``. The only module of ``edge_agent`` that imports ``firmware_sim``."""

from __future__ import annotations

from edge_agent.config import AgentConfig, SourceConfig
from edge_agent.runtime.sources import AdvertSource
from edge_agent.tools import evaluation as ev
from firmware_sim import scoring
from firmware_sim.source import SimSource


def sim_source(src: SourceConfig) -> AdvertSource:
    """The store of ``src.scenario``, at ``src.speed``, for ``src.duration_s``."""
    assert src.scenario is not None
    return SimSource(
        src.scenario,
        speed=src.speed,
        duration_s=src.duration_s,
        seed=src.seed,
        truth_path=src.truth_log,
    )


def store_report(scenario: str, cfg: AgentConfig, duration_s: float, seed: int | None) -> str:
    """``eval --store``: the agent as configured, the oracle and the baselines on the simulated
    store, a table and a pass/FAIL line per target."""
    run = scoring.run_store(scenario, duration_s, seed)
    scores = scoring.score_store(run, cfg, ev.baselines(ev.ours(cfg.proximity, run.slot_classes)))
    return scoring.report(scores) + "\n" + "\n".join(scoring.verdict(scores))
