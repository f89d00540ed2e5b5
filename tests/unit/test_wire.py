"""The outbox writes each event's payload without validating it again (``wire.event_payload``):
it must be byte for byte what the payload model makes, for every kind of event the store
produces."""

from __future__ import annotations

from collections import Counter

import pytest

from edge_agent.config import load_config
from edge_agent.contract import EVENT_MODELS, model_for
from edge_agent.models import ContextEvent, PresenceBody, Priority
from edge_agent.pipeline.tick import Pipeline, Ticker
from edge_agent.wire import checked_event_payload, event_payload
from firmware_sim.moment_scoring import WALL0, StoreSim, load_scenario, simulate
from tests.support.paths import CONFIG_DIR


@pytest.fixture(scope="module")
def store_events() -> list[ContextEvent]:
    """Four minutes of the demo store through the whole pipeline (moments on, aggregates every
    minute)."""
    cfg = load_config(CONFIG_DIR / "agent.toml", {"aggregates.interval_s": 60.0})
    p = Pipeline(cfg)
    out: list[ContextEvent] = []
    ticker: Ticker = Ticker(  # type: ignore[type-arg]
        cfg.pipeline.tick_s, lambda b, end: out.extend(p.process(b, end, WALL0 + end)), start=0.0
    )
    sim = StoreSim(load_scenario(CONFIG_DIR / "store-demo.toml"), 7)
    for t1, adverts, _truth in simulate(sim, 240, WALL0):
        for a in adverts:
            ticker.add(a, a.t)
        ticker.close(t1)
    return out


def test_every_event_of_the_store_is_written_as_its_model_writes_it(
    store_events: list[ContextEvent],
) -> None:
    kinds = Counter(ev.type for ev in store_events)
    assert set(kinds) >= set(EVENT_MODELS) - {"moment_count"}, kinds
    for seq, ev in enumerate(store_events, 1):
        fast = event_payload("gw-1", seq, ev)
        assert fast == checked_event_payload("gw-1", seq, ev), ev.type
        model_for(ev.type).model_validate_json(fast)


def test_ints_where_the_model_holds_floats_and_defaults_left_out() -> None:
    body = PresenceBody(
        device="cart-1",
        device_class="cart",
        zone="a",
        band="near",
        receiver="rx-a",
        distance_m=2,  # type: ignore[arg-type]
        distance_range_m=None,
        rssi=-70,  # type: ignore[arg-type]
        dwell_s=0.0,
        confidence=1,  # type: ignore[arg-type]
        x=None,
        y=None,
        position_error_m=None,
    )
    ev = ContextEvent("presence/cart-1", "enter", 1.7e9 + 1e-7, body, priority=Priority.PRESENCE)
    assert event_payload("gw", 5, ev) == checked_event_payload("gw", 5, ev)
