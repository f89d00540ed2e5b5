"""Every kind of scripted incident through the whole pipeline on the simulated store, scored
against its truth (a short version of ``edge-agent eval --moments``)."""

from __future__ import annotations

import re

import pytest
from pydantic import TypeAdapter

from edge_agent.config import load_config
from edge_agent.config.moments import MomentRule
from firmware_sim import moment_scoring as ms
from firmware_sim.store import Truth
from tests.support.paths import CONFIG_DIR

INCIDENTS = """
[[incidents]]
kind = "warm"
device = "freezer-1"
at_s = 0.0
ramp_s = 20.0
duration_s = 40.0
to_c = -8.0

[[incidents]]
kind = "door_open"
device = "door-entrance"
at_s = 5.0
duration_s = 50.0

[[incidents]]
kind = "rush"
zone = "checkout"
at_s = 10.0
count = 16
duration_s = 60.0

[[incidents]]
kind = "badge_leaves"
device = "staff-ben"
at_s = 10.0
duration_s = 60.0
"""

RULES = [
    {"name": "warm", "trigger": "sensor", "devices": ["freezer-1"],
     "measurement": "temperature", "above": -15.0, "for_s": 20},
    {"name": "door", "trigger": "sensor", "devices": ["door-entrance"],
     "measurement": "door", "equals": True, "for_s": 20},
    {"name": "queue", "trigger": "crowd", "zone": "checkout", "at_least": 10,
     "for_s": 20, "classes": ["cart"]},
    {"name": "away", "trigger": "absence", "devices": ["staff-ben"], "for_s": 30},
]  # fmt: skip


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> ms.MomentScore:
    tmp = tmp_path_factory.mktemp("sim")
    text = (CONFIG_DIR / "store-demo.toml").read_text(encoding="utf-8")
    scenario = tmp / "store.toml"
    scenario.write_text(re.sub(r"\n\[\[incidents\]\].*", "", text, flags=re.S) + INCIDENTS)
    cfg = load_config(CONFIG_DIR / "agent.toml")
    rules = TypeAdapter(list[MomentRule]).validate_python(RULES)
    cfg = cfg.model_copy(update={"moments": rules})
    run = ms.run_moments(scenario, cfg, 125.0)
    return ms.score(run, cfg)


def test_every_incident_starts_and_ends_within_five_seconds(scored: ms.MomentScore) -> None:
    assert {iv.rule for iv, _, _ in scored.incidents} == {"warm", "door", "queue", "away"}
    for iv, start, end in scored.incidents:
        assert start is not None and end is not None, iv
        assert -ms.DELAY_S <= start <= ms.DELAY_S and abs(end) <= ms.DELAY_S, (iv, start, end)
    assert scored.false_starts == []
    assert scored.privacy_leaks == []


def test_the_truth_of_a_held_condition() -> None:
    cond = [(0.0, False), (10.0, True), (30.0, False), (32.0, True), (60.0, False)]
    got = ms._first_interval("r", None, cond, 15.0, 5.0, 0.0, 100.0)
    assert got == ms.Interval("r", None, 25.0, 65.0)  # a 2 s dip breaks neither wait nor hold
    assert ms._first_interval("r", None, cond, 40.0, 1.0, 0.0, 100.0) is None


def test_truth_visits_merge_short_gaps() -> None:
    rows = [Truth(float(t), "cart-1", "cart", 0, 0, "a" if t < 10 or t > 13 else "b")
            for t in range(30)]  # fmt: skip
    run = ms.MomentRun([], [], rows, None, 30.0, set(), set())  # type: ignore[arg-type]
    assert ms.visits(run, 1.0)["cart-1"] == [("a", 0.0, 9.0), ("b", 10.0, 13.0), ("a", 14.0, 29.0)]
    assert ms.visits(run, 5.0, merge_s=5.0)["cart-1"] == [("a", 0.0, 29.0)]  # b: passing by
    assert ms.visits(run, 5.0, merge_s=4.0)["cart-1"] == [("a", 0.0, 9.0), ("a", 14.0, 29.0)]
