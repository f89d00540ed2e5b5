"""Anonymous journey aggregates: the flow matrix, dwell and visit-length histograms and visits
from zone changes, per interval, cells under k withheld, no id anywhere, and the interval's
counts kept across a restart."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.config import AgentConfig, load_config
from edge_agent.models import AggregateBody, ContextEvent, DeviceClass, body_fields
from edge_agent.pipeline.aggregates import AggregateEngine, bin_label
from edge_agent.pipeline.identity import DeviceRef
from edge_agent.pipeline.zones import ZoneChange
from tests.support.configs import MINIMAL

WALL0 = 1_800_000_000.0  # a whole number of 15-minute intervals
PEOPLE = [DeviceRef(f"p-{i:04x}", DeviceClass.SHOPPER, False, None) for i in range(5)]
STAFF = DeviceRef("staff-ana", DeviceClass.STAFF, True, None)


@pytest.fixture
def cfg(write_config: Callable[[str], Path]) -> AgentConfig:
    return load_config(write_config(MINIMAL + "\n[privacy]\nk_anonymity = 3\n"))


def journeys(engine: AggregateEngine, out: list[ContextEvent], t0: float = 0.0) -> None:
    """Five shoppers: a (40 s) → b (100 s) → gone; the staff badge a → b (not counted)."""
    changes: list[ZoneChange] = []
    for ref in [*PEOPLE, STAFF]:
        changes += [
            ZoneChange(ref, "enter", "a", t0 + 10, t0 + 10),
            ZoneChange(ref, "exit", "a", t0 + 50, t0 + 10),
            ZoneChange(ref, "enter", "b", t0 + 50, t0 + 50),
            ZoneChange(ref, "exit", "b", t0 + 150, t0 + 50),
            ZoneChange(ref, "gone", None, t0 + 210, t0 + 210),
        ]
    changes += [  # one back again; another only passes through a (3 s: not a visit)
        ZoneChange(PEOPLE[0], "enter", "b", t0 + 300, t0 + 300),
        ZoneChange(PEOPLE[0], "exit", "b", t0 + 320, t0 + 300),
        ZoneChange(PEOPLE[1], "enter", "a", t0 + 400, t0 + 400),
        ZoneChange(PEOPLE[1], "exit", "a", t0 + 403, t0 + 400),
    ]
    for ch in sorted(changes, key=lambda c: c.t):
        engine.step([ch], ch.t, WALL0 + ch.t, out)


def cells(out: list[ContextEvent], kind: str) -> dict[tuple[tuple[str, str], ...], int]:
    body = next(e.body for e in out if isinstance(e.body, AggregateBody) and e.body.kind == kind)
    return {tuple(sorted(c.labels.items())): c.count for c in body.cells}


def test_bins() -> None:
    assert [bin_label([30, 60], s) for s in (0, 29.9, 30, 45, 60, 61)] == [
        "0-30",
        "0-30",
        "0-30",
        "30-60",
        "30-60",
        "60+",
    ]


def test_one_interval_of_journeys(cfg: AgentConfig) -> None:
    engine = AggregateEngine(cfg)
    out: list[ContextEvent] = []
    journeys(engine, out)
    assert not out  # nothing before the interval ends
    engine.step([], 901.0, WALL0 + 901.0, out)
    assert [e.topic for e in out] == [
        "aggregate/flow",
        "aggregate/dwell",
        "aggregate/visits",
        "aggregate/visit_length",
    ]
    assert cells(out, "flow") == {
        (("from", "outside"), ("to", "a")): 5,
        (("from", "a"), ("to", "b")): 5,
        (("from", "b"), ("to", "outside")): 5,
        # the shopper back again (outside → b) is 1 < k: withheld
    }
    assert cells(out, "dwell") == {
        (("bin", "30-60"), ("zone", "a")): 5,
        (("bin", "60-120"), ("zone", "b")): 5,
    }
    assert cells(out, "visits") == {(("zone", "a"),): 5, (("zone", "b"),): 6}
    assert cells(out, "visit_length") == {(("bin", "0-300"),): 5}
    flow = next(e.body for e in out if isinstance(e.body, AggregateBody))
    assert flow.suppressed == 1 and flow.k == 3 and flow.observed_s == 890.0
    assert flow.interval_start == WALL0 and flow.interval_s == 900.0
    text = json.dumps([body_fields(e.body) for e in out])
    assert not any(ref.id in text for ref in [*PEOPLE, STAFF])


def test_the_interval_counts_survive_a_restart(cfg: AgentConfig) -> None:
    engine = AggregateEngine(cfg)
    out: list[ContextEvent] = []
    journeys(engine, out)
    snap = json.loads(json.dumps(engine.snapshot()))
    again = AggregateEngine(cfg)
    again.restore(snap)
    again.step([], 901.0, WALL0 + 901.0, out)
    assert cells(out, "visits") == {(("zone", "a"),): 5, (("zone", "b"),): 6}


def test_switched_off(write_config: Callable[[str], Path]) -> None:
    cfg = load_config(write_config(MINIMAL + "\n[aggregates]\nenabled = false\n"))
    engine = AggregateEngine(cfg)
    out: list[ContextEvent] = []
    journeys(engine, out)
    engine.step([], 901.0, WALL0 + 901.0, out)
    assert out == []
