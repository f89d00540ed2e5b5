"""The simulated store (``firmware_sim``): the ``sim`` source, the store scores of
``eval --store`` and the firmware encoders ``bench``'s synthetic store sends. The only module
of ``edge_agent`` that imports ``firmware_sim``."""

from __future__ import annotations

from collections.abc import Callable

from edge_agent.config import AgentConfig, SourceConfig
from edge_agent.runtime.sources import AdvertSource
from edge_agent.tools import evaluation as ev
from firmware_sim import moment_scoring, scoring
from firmware_sim.encoders import encode_bthome, encode_ibeacon
from firmware_sim.source import SimSource

__all__ = ["encode_bthome", "encode_ibeacon", "moments_report", "sim_source", "store_report"]


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


def store_report(
    scenario: str,
    cfg: AgentConfig,
    duration_s: float,
    seed: int | None,
    progress: Callable[[str], None] | None = None,
) -> tuple[str, bool]:
    """``eval --store``: the agent as configured, the oracle and the baselines on the simulated
    store: a table and a pass/FAIL line per target, and whether every target passed."""
    if progress is not None:
        progress(f"simulating {duration_s:g} s of the store")
    run = scoring.run_store(scenario, duration_s, seed)
    filters = ev.baselines(ev.ours(cfg.proximity, run.slot_classes))
    scores = scoring.score_store(run, cfg, filters, progress, scenario, seed)
    return _with_verdict(scoring.report(scores), scoring.verdict(scores))


def moments_report(
    scenario: str,
    cfg: AgentConfig,
    duration_s: float,
    seed: int | None,
    progress: Callable[[str], None] | None = None,
) -> tuple[str, bool]:
    """``eval --moments``: the whole pipeline on the simulated store, its moments and
    aggregates against the truth (dwells, scripted incidents, flow): a table and a pass/FAIL
    line per target, and whether every target passed."""
    if progress is not None:
        progress(f"simulating {duration_s:g} s of the store through the agent")
    run = moment_scoring.run_moments(scenario, cfg, duration_s, seed, progress)
    return _with_verdict(*moment_scoring.report(moment_scoring.score(run, cfg)))


def _with_verdict(table: str, verdict: list[str]) -> tuple[str, bool]:
    """The table and its pass/FAIL lines, and whether every target passed."""
    return table + "\n" + "\n".join(verdict), not any(v.startswith("FAIL") for v in verdict)
