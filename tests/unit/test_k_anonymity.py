"""Zone occupancy is k-anonymous against the subtraction attacks: across classes (total minus
the published counts), across intervals (differencing two mean dwells), across zones."""

from __future__ import annotations

import itertools
from pathlib import Path

from edge_agent.config import parse_config
from edge_agent.models import ContextEvent, DeviceClass, OccupancyBody
from edge_agent.pipeline.identity import DeviceRef
from edge_agent.pipeline.zones import DeviceState, PresenceEngine
from tests.support.configs import MINIMAL

K = 3


def _engine(tmp_path: Path) -> PresenceEngine:
    text = MINIMAL.replace("{state}", str(tmp_path)) + f"\n[privacy]\nk_anonymity = {K}\n"
    return PresenceEngine(parse_config(text))


def _enter(engine: PresenceEngine, device: str, kind: DeviceClass, zone: str, at: float) -> None:
    ref = DeviceRef(device, kind, registered=False, tx_power_1m=None)
    engine.states[device] = DeviceState(ref, zone=zone, entered_at=at)


def _publish(engine: PresenceEngine, now: float) -> dict[str, OccupancyBody]:
    out: list[ContextEvent] = []
    engine.occupancy(now - 30.0, now, out)  # the first call only arms the interval
    engine.occupancy(now, now, out)
    bodies = [e.body for e in out if isinstance(e.body, OccupancyBody)]
    return {b.zone: b for b in bodies}


def test_no_total_beside_a_withheld_class(tmp_path: Path) -> None:
    """Four carts and one staff badge: the staff count is withheld, and so is the total that
    would give it away (total - carts = staff)."""
    engine = _engine(tmp_path)
    for i in range(4):
        _enter(engine, f"cart-{i}", DeviceClass.CART, "a", 0.0)
    _enter(engine, "staff-1", DeviceClass.STAFF, "a", 0.0)
    a = _publish(engine, 100.0)["a"]
    assert a.counts["cart"] == 4 and "staff" not in a.counts and a.fewer_than_k == ("staff",)
    assert a.total is None and a.mean_dwell_s is None  # the attack has nothing to subtract from


def test_the_subtraction_attack_fails_for_every_mix_of_classes(tmp_path: Path) -> None:
    """Every mix of up to five carts, staff and shoppers: whenever a class is withheld, nothing
    is published that its count could be recovered from (total - the published counts)."""
    for carts, staff, shoppers in itertools.product(range(6), repeat=3):
        engine = _engine(tmp_path)
        for kind, n in ((DeviceClass.CART, carts), (DeviceClass.STAFF, staff),
                        (DeviceClass.SHOPPER, shoppers)):  # fmt: skip
            for i in range(n):
                _enter(engine, f"{kind.value}-{i}", kind, "a", 0.0)
        body = _publish(engine, 60.0)["a"]
        mix = (carts, staff, shoppers)
        assert all(n == 0 or n >= K for n in body.counts.values()), mix
        if body.fewer_than_k:
            assert body.total is None and body.mean_dwell_s is None, mix
        elif body.total is not None:
            assert body.total == sum(body.counts.values()) == carts + staff + shoppers, mix


def test_mean_dwell_is_not_published_when_fewer_than_k_devices_changed(tmp_path: Path) -> None:
    """Five shoppers; one leaves. Were both means published, 5·m1 - 4·(m2 - 30 s) would be the
    leaver's dwell. The second mean is held back until k devices have changed."""
    engine = _engine(tmp_path)
    for i in range(5):
        _enter(engine, f"p-{i}", DeviceClass.SHOPPER, "a", float(10 * i))
    first = _publish(engine, 100.0)["a"]
    assert first.total == 5 and first.mean_dwell_s is not None
    del engine.states["p-0"]  # one leaves
    second = _publish(engine, 130.0)["a"]
    assert second.total == 4 and second.mean_dwell_s is None
    _enter(engine, "p-9", DeviceClass.SHOPPER, "a", 130.0)  # one comes: still 2 changes
    third = _publish(engine, 160.0)["a"]
    assert third.mean_dwell_s is None
    _enter(engine, "p-8", DeviceClass.SHOPPER, "a", 160.0)  # a third change: k reached
    fourth = _publish(engine, 190.0)["a"]
    assert fourth.total == 6 and fourth.mean_dwell_s is not None
    same = _publish(engine, 220.0)["a"]  # nobody changed: the mean only ages, nothing new
    assert same.mean_dwell_s == fourth.mean_dwell_s + 30.0


def test_forgetting_a_device_still_counts_as_a_change(tmp_path: Path) -> None:
    """A device erased (or forgotten at the key rotation) leaves no id behind, yet its going
    cannot be used to difference two means either."""
    engine = _engine(tmp_path)
    for i in range(4):
        _enter(engine, f"p-{i}", DeviceClass.SHOPPER, "a", 0.0)
    assert _publish(engine, 100.0)["a"].mean_dwell_s is not None
    engine.drop("p-0")
    assert all("p-0" not in ids for ids in engine._mean_over.values())
    assert _publish(engine, 130.0)["a"].mean_dwell_s is None


def test_no_figure_spans_zones(tmp_path: Path) -> None:
    """Occupancy is per zone only: there is no store total to subtract zones from."""
    engine = _engine(tmp_path)
    _enter(engine, "cart-1", DeviceClass.CART, "a", 0.0)
    for i in range(3):
        _enter(engine, f"cart-b{i}", DeviceClass.CART, "b", 0.0)
    bodies = _publish(engine, 50.0)
    assert set(bodies) == {"a", "b"}
    assert bodies["a"].total is None and bodies["a"].fewer_than_k == ("cart",)
    assert bodies["b"].total == 3
