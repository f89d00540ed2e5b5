"""Proximity and the zone machine: distance uncertainty, the speed gate, receiver hysteresis
and confidence."""

from __future__ import annotations

import math

import pytest

from edge_agent.config import AgentConfig, FilterConfig, ProximityConfig
from edge_agent.models import ContextEvent, DeviceClass
from edge_agent.pipeline.identity import DeviceRef
from edge_agent.pipeline.proximity import DeviceTable, Estimate
from edge_agent.pipeline.zones import PresenceEngine

EMA = ProximityConfig(filter=FilterConfig(kind="ema", tau_s=0.01), path_loss_exponent=2.0)


def _rssi_at(d: float, tx: float = -59.0, n: float = 2.0) -> float:
    return tx - 10.0 * n * math.log10(d)


def _feed(table: DeviceTable, device: str, rx: str, t: float, d: float) -> None:
    table.update([table.slot(device, rx)], [t], [_rssi_at(d)], [-59.0])


def test_a_jump_in_distance_is_followed_at_the_speed_gate() -> None:
    prox = EMA.model_copy(update={"max_speed_mps": 2.0})
    table = DeviceTable(prox, [], use_jit=False)
    _feed(table, "d", "rx", 0.0, 10.0)
    _feed(table, "d", "rx", 1.0, 1.0)  # 9 m in one second: a reflection, not a walk
    est = table.nearest("d", 1.0)
    assert est is not None and est.distance_m == pytest.approx(8.0, rel=1e-6)
    _feed(table, "d", "rx", 2.0, 1.0)
    est = table.nearest("d", 2.0)
    assert est is not None and est.distance_m == pytest.approx(6.0, rel=1e-6)
    # after silence longer than gone_after_s, the new distance is taken as it is
    _feed(table, "d", "rx", 40.0, 20.0)
    est = table.nearest("d", 40.0)
    assert est is not None and est.distance_m == pytest.approx(20.0, rel=1e-6)


def test_distance_uncertainty_is_shadowing_plus_the_kalman_variance() -> None:
    prox = ProximityConfig(path_loss_exponent=2.0, shadowing_db=4.0)
    table = DeviceTable(prox, [], use_jit=False)
    for k in range(50):
        _feed(table, "d", "rx", k * 0.5, 3.0)
    est = table.nearest("d", 25.0)
    assert est is not None
    floor = 4.0 * math.log(10.0) / 20.0
    assert floor < est.sigma < floor * 1.2  # a settled filter adds little to the floor
    lo, hi = est.distance_range_m
    assert lo < est.distance_m < hi and hi / est.distance_m == pytest.approx(math.exp(est.sigma))
    fresh = DeviceTable(prox, [], use_jit=False)
    _feed(fresh, "d", "rx", 0.0, 3.0)
    first = fresh.nearest("d", 0.0)
    assert first is not None and first.sigma > est.sigma * 1.5  # one sample: wide


def test_the_preferred_receiver_holds_within_the_margin() -> None:
    table = DeviceTable(EMA, [], use_jit=False)
    _feed(table, "d", "a", 0.0, 5.0)
    _feed(table, "d", "b", 0.0, 4.5)
    assert table.nearest("d", 0.0).receiver == "b"  # type: ignore[union-attr]
    held = table.nearest("d", 0.0, prefer="a", margin_db=4.0)
    assert held is not None and held.receiver == "a" and held.runner_up_m == pytest.approx(4.5)
    _feed(table, "d", "b", 1.0, 2.5)  # 6 dB closer now: b takes over
    moved = table.nearest("d", 1.0, prefer="a", margin_db=4.0)
    assert moved is not None and moved.receiver == "b"


def _cfg() -> AgentConfig:
    return AgentConfig.model_validate(
        {
            "gateway": {"id": "gw", "site": "s"},
            "source": {"kind": "replay", "path": "x.csv"},
            "proximity": {"filter": {"kind": "ema", "tau_s": 0.01}, "path_loss_exponent": 2.0},
            "presence": {"min_dwell_s": 0.0, "switch_margin_db": 4.0},
            "zones": [{"id": "za", "radius_m": 8.0}, {"id": "zb", "radius_m": 8.0}],
            "receivers": [{"id": "a", "zone": "za"}, {"id": "b", "zone": "zb"}],
        }
    )


@pytest.mark.parametrize("margin", [0.0, 4.0])
def test_receiver_hysteresis_stops_flapping_at_a_boundary(margin: float) -> None:
    cfg = _cfg()
    cfg = cfg.model_copy(
        update={"presence": cfg.presence.model_copy(update={"switch_margin_db": margin})}
    )
    table = DeviceTable(cfg.proximity, cfg.receivers, use_jit=False)
    engine = PresenceEngine(cfg)
    ref = DeviceRef("cart-1", DeviceClass.CART, registered=True, tx_power_1m=None)
    enters: list[str] = []
    for k in range(40):  # standing at the boundary: a and b trade places by ±1 dB
        t = k * 0.5
        wobble = 1.0 if k % 2 else -1.0
        table.update(
            [table.slot(ref.id, "a"), table.slot(ref.id, "b")],
            [t, t],
            [_rssi_at(6.0) + wobble, _rssi_at(6.0) - wobble],
            [-59.0, -59.0],
        )
        out: list[ContextEvent] = []
        engine.evaluate(ref, engine.locate(table, ref.id, t), t, t, out)
        enters += [e.body.zone for e in out if e.type == "enter"]
    if margin:
        assert len(enters) == 1
    else:
        assert len(enters) > 10


def test_confidence_follows_the_distance_uncertainty() -> None:
    engine = PresenceEngine(_cfg())
    sure = engine.confidence(Estimate("a", 1.0, -59.0, 9.0, 0.3, 0.3), "za")
    torn = engine.confidence(Estimate("a", 4.0, -71.0, 4.1, 0.3, 0.3), "za")
    outside = engine.confidence(Estimate("a", 12.0, -80.0, math.inf, 0.3, 0.0), "za")
    vague = engine.confidence(Estimate("a", 1.0, -59.0, 9.0, 2.0, 2.0), "za")
    assert sure > 0.99
    assert 0.4 < torn < 0.6  # two receivers equally near: a coin toss
    assert outside < 0.2  # beyond the zone's radius
    assert 0.5 < vague < sure  # the same distances, less certain


def test_presence_events_carry_the_distance_range() -> None:
    cfg = _cfg()
    table = DeviceTable(cfg.proximity, cfg.receivers, use_jit=False)
    engine = PresenceEngine(cfg)
    ref = DeviceRef("cart-1", DeviceClass.CART, registered=True, tx_power_1m=None)
    _feed(table, ref.id, "a", 0.0, 2.0)
    out: list[ContextEvent] = []
    engine.evaluate(ref, engine.locate(table, ref.id, 0.0), 0.0, 0.0, out)
    (enter,) = out
    lo, hi = enter.body.distance_range_m
    assert lo < enter.body.distance_m < hi
    assert 0.9 < enter.body.confidence <= 1.0
