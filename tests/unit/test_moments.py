"""Moments that matter: each trigger against scripted zone changes, readings and sightings;
hot (named devices) against cold (counts only); a moment under way survives a restart; bad
rules name their key."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.config import AgentConfig, load_config
from edge_agent.errors import ConfigError
from edge_agent.models import ContextEvent, DeviceClass, MomentBody, MomentCountBody
from edge_agent.pipeline.identity import DeviceRef
from edge_agent.pipeline.moments import MomentEngine
from edge_agent.pipeline.zones import ZoneChange
from tests.support.configs import MINIMAL

WALL0 = 1_800_000_000.0  # a pinned epoch, a whole number of 15-minute intervals
BADGE = DeviceRef("staff-ana", DeviceClass.STAFF, True, None)
ALICE = DeviceRef("loyal-alice", DeviceClass.SHOPPER, True, None, consented=True)
ANON = [DeviceRef(f"p-{i:04x}", DeviceClass.SHOPPER, False, None) for i in range(6)]
FREEZER = DeviceRef("freezer-1", DeviceClass.SENSOR, True, None, presence=False)

RULES = """
[[devices]]
id = "staff-ana"
kind = "staff"
beacon = "eddystone:edd1ebeac04e5defa017:000000000001"

[[devices]]
id = "freezer-1"
kind = "sensor"
address = "A4:C1:38:00:00:03"

[[moments]]
name = "lingers-at-a"
trigger = "dwell"
zone = "a"
min_s = 30
classes = ["shopper"]

[[moments]]
name = "a-then-b"
trigger = "sequence"
zones = ["a", "b"]
within_s = 120

[[moments]]
name = "queue-at-b"
trigger = "crowd"
zone = "b"
at_least = 3
for_s = 10

[[moments]]
name = "freezer-warm"
trigger = "sensor"
devices = ["freezer-1"]
measurement = "temperature"
above = -15.0
for_s = 60

[[moments]]
name = "badge-left"
trigger = "absence"
devices = ["staff-ana"]
for_s = 60
"""


@pytest.fixture
def cfg(write_config: Callable[[str], Path]) -> AgentConfig:
    return load_config(write_config(MINIMAL + RULES))


class Run:
    """An engine driven tick by tick (0.5 s) with scripted news."""

    def __init__(self, engine: MomentEngine) -> None:
        self.engine = engine
        self.t = 0.0
        self.out: list[ContextEvent] = []
        self.pending: list[ZoneChange] = []

    def enter(self, ref: DeviceRef, zone: str) -> None:
        self.pending.append(ZoneChange(ref, "enter", zone, self.t, self.t))

    def exit(self, ref: DeviceRef, zone: str, since: float) -> None:
        self.pending.append(ZoneChange(ref, "exit", zone, self.t, since))

    def until(self, t: float, each: Callable[[float], None] | None = None) -> None:
        while self.t < t - 1e-9:
            self.t = round(self.t + 0.5, 6)
            if each is not None:
                each(self.t)
            changes, self.pending = self.pending, []
            self.engine.step(changes, self.t, WALL0 + self.t, self.out)

    def moments(self, name: str | None = None) -> list[MomentBody]:
        return [
            e.body
            for e in self.out
            if isinstance(e.body, MomentBody) and (name is None or e.body.name == name)
        ]


def test_dwell_fires_once_per_visit_for_a_named_device_only(cfg: AgentConfig) -> None:
    run = Run(MomentEngine(cfg))
    run.until(1)
    run.enter(ALICE, "a")
    run.enter(ANON[0], "a")
    run.until(40)
    (m,) = run.moments("lingers-at-a")
    assert (m.subject, m.subject_class, m.zone, m.state) == (
        "loyal-alice",
        "shopper",
        "a",
        "instant",
    )
    assert m.facts["dwell_s"] == 30.0 and m.started == WALL0 + 1.0
    run.exit(ALICE, "a", 1.0)
    run.until(45)
    run.enter(ALICE, "a")  # a new visit, but within rate_limit_s of the last moment
    run.until(100)
    assert len(run.moments("lingers-at-a")) == 1
    # a visit shorter than min_s gives nothing
    run2 = Run(MomentEngine(cfg))
    run2.enter(ALICE, "a")
    run2.until(20)
    run2.exit(ALICE, "a", 0.0)
    run2.until(80)
    assert not run2.moments("lingers-at-a")


def test_a_consented_rule_names_consented_shoppers_only_and_counts_the_rest(
    write_config: Callable[[str], Path],
) -> None:
    rule = (
        '[[moments]]\nname = "loyal"\ntrigger = "dwell"\nzone = "a"\nmin_s = 10\nconsented = true\n'
    )
    run = Run(MomentEngine(load_config(write_config(MINIMAL + rule))))
    cart = DeviceRef("cart-1", DeviceClass.CART, True, None)  # registered by the config
    for ref in (ALICE, cart, *ANON[:3]):
        run.enter(ref, "a")
    run.until(900.5)
    assert [m.subject for m in run.moments("loyal")] == ["loyal-alice"]
    (count,) = [e.body for e in run.out if isinstance(e.body, MomentCountBody)]
    assert count.count == 3


def test_a_short_absence_from_the_zone_is_the_same_visit(cfg: AgentConfig) -> None:
    run = Run(MomentEngine(cfg))
    run.enter(ALICE, "a")
    run.until(20)
    run.exit(ALICE, "a", 0.0)  # 8 s at the zone's edge, outside it: within max_gap_s (15)
    run.until(28)
    run.enter(ALICE, "a")
    run.until(29)
    run.exit(ALICE, "a", 28.0)  # away when the dwell comes due: it fires on coming back
    run.until(35)
    run.enter(ALICE, "a")
    run.until(40)
    (m,) = run.moments("lingers-at-a")
    assert m.started == WALL0 and m.facts["dwell_s"] == 35.5
    run.exit(ALICE, "a", 0.0)
    run.until(70)  # away for longer than max_gap_s: the next entry is a new visit
    run.enter(ALICE, "a")
    run.until(80)
    assert len(run.moments("lingers-at-a")) == 1  # and it has not lasted min_s yet


def test_anonymous_shoppers_are_only_counted_per_interval_k_anonymously(
    cfg: AgentConfig,
) -> None:
    run = Run(MomentEngine(cfg))
    for ref in ANON[:4]:
        run.enter(ref, "a")
    run.until(900.5)  # past the first interval's end
    assert not run.moments("lingers-at-a")
    counts = [e.body for e in run.out if isinstance(e.body, MomentCountBody)]
    dwell = next(c for c in counts if c.name == "lingers-at-a")
    assert (dwell.count, dwell.fewer_than_k, dwell.interval_start) == (4, False, WALL0)
    run.enter(ANON[4], "a")  # one in the next interval: withheld (k = 3)
    run.until(1800.5)
    dwell2 = [e.body for e in run.out if isinstance(e.body, MomentCountBody)][-2]
    assert dwell2.name == "lingers-at-a" and (dwell2.count, dwell2.fewer_than_k) == (None, True)
    text = json.dumps([str(e.body) for e in run.out])
    assert not any(ref.id in text for ref in ANON)


def test_sequence_in_order_within_the_window(cfg: AgentConfig) -> None:
    run = Run(MomentEngine(cfg))
    run.enter(BADGE, "a")
    run.until(10)
    run.enter(BADGE, "b")  # a then b within 120 s
    run.until(20)
    run.enter(ALICE, "b")  # b then a: not the order
    run.until(30)
    run.enter(ALICE, "a")
    run.until(200)
    run.enter(ALICE, "b")  # a at 30, b at 200: too late
    run.until(210)
    got = run.moments("a-then-b")
    assert [(m.subject, m.zone) for m in got] == [("staff-ana", "b")]
    assert got[0].facts["zones"] == "a,b" and got[0].started == WALL0 + 0.0


def test_crowd_starts_after_holding_and_ends_once(cfg: AgentConfig) -> None:
    run = Run(MomentEngine(cfg))
    for ref in ANON[:3]:
        run.enter(ref, "b")
    run.until(9.5)
    assert not run.moments("queue-at-b")
    run.until(12)
    (start,) = run.moments("queue-at-b")
    assert (start.state, start.subject, start.zone, start.facts["count"]) == ("start", None, "b", 3)
    assert start.started == WALL0 + 0.5
    run.exit(ANON[0], "b", 0.0)
    run.until(20)
    run.enter(ANON[0], "b")  # back within clear_s (15 s): the queue goes on
    run.until(40)
    assert len(run.moments("queue-at-b")) == 1
    run.exit(ANON[0], "b", 20.0)
    run.until(55)
    assert len(run.moments("queue-at-b")) == 1
    run.until(60)
    end = run.moments("queue-at-b")[-1]
    assert end.state == "end" and end.duration_s == 55.0 and end.facts["count"] == 2
    assert len(run.moments("queue-at-b")) == 2


def test_a_sensor_beyond_its_threshold_for_long_enough_and_its_recovery(
    cfg: AgentConfig,
) -> None:
    engine = MomentEngine(cfg)
    run = Run(engine)

    def temps(t: float) -> None:
        if t % 2 == 0:  # a reading every 2 s: -18, warming past -15 at t = 100, back at 300
            value = -18.0 if t < 100 else -12.0 if t < 300 else -18.5
            engine.reading(FREEZER, {"temperature": value, "battery": 90}, t)

    run.until(400, temps)
    got = run.moments("freezer-warm")
    assert [m.state for m in got] == ["start", "end"]
    assert got[0].subject == "freezer-1" and got[0].started == WALL0 + 100
    assert got[0].facts == {"value": -12.0, "threshold": -15.0}
    assert run.out[[e.body for e in run.out].index(got[0])].wall == WALL0 + 160
    assert got[1].duration_s == 200.0


def test_absence_of_a_registered_badge_and_its_return(cfg: AgentConfig) -> None:
    engine = MomentEngine(cfg)
    run = Run(engine)

    def badge(t: float) -> None:
        if t <= 10 or t >= 200:
            engine.heard(BADGE, t)

    run.until(250, badge)
    got = run.moments("badge-left")
    assert [m.state for m in got] == ["start", "end"]
    assert got[0].subject == "staff-ana" and got[0].started == WALL0 + 10
    assert run.out[[e.body for e in run.out].index(got[0])].wall == pytest.approx(WALL0 + 70.5)
    assert got[1].duration_s == pytest.approx(190.0, abs=0.6)


def test_a_moment_under_way_ends_once_after_a_restart(cfg: AgentConfig) -> None:
    run = Run(MomentEngine(cfg))
    for ref in ANON[:3]:
        run.enter(ref, "b")
    run.until(15)
    assert [m.state for m in run.moments("queue-at-b")] == ["start"]
    snap = json.loads(json.dumps(run.engine.snapshot()))  # through JSON, as it is stored
    # the agent restarts: a new engine, a new source clock; the queue is still there
    again = Run(MomentEngine(cfg))
    again.t = 5000.0
    again.engine.restore(snap)
    for ref in ANON[:3]:
        again.enter(ref, "b")
    again.until(5030)
    assert not again.moments()  # no second start
    again.exit(ANON[0], "b", 5000.0)
    again.until(5050)
    (end,) = again.moments("queue-at-b")
    assert end.state == "end" and end.started == WALL0 + 0.5


def test_forget_erases_a_subject(cfg: AgentConfig) -> None:
    engine = MomentEngine(cfg)
    run = Run(engine)
    run.enter(ALICE, "a")
    run.until(5)
    engine.forget({"loyal-alice"})
    run.until(60)
    assert not run.moments()


@pytest.mark.parametrize(
    ("rule", "key", "why"),
    [
        ('trigger = "dwell"\nzone = "nowhere"\nmin_s = 5', "moments[0].zone", "no such zone"),
        (
            'trigger = "dwell"\nzone = "a"\nmin_s = 5\nclasses = ["wizard"]',
            "moments[0].classes[0]",
            "must be one of",
        ),
        ('trigger = "crowd"\nzone = "a"\nat_least = "many"', "moments[0].at_least", "integer"),
        ('trigger = "sequence"\nzones = ["a"]\nwithin_s = 60', "moments[0].zones", "at least 2"),
        (
            'trigger = "absence"\ndevices = ["ghost"]\nfor_s = 60',
            "moments[0].devices[0]",
            "not a registered",
        ),
        (
            'trigger = "sensor"\nmeasurement = "temperature"\nfor_s = 5',
            "moments[0]",
            "exactly one of above",
        ),
        ('trigger = "teleport"', "moments[0]", "'dwell', 'sequence'"),
        (
            'trigger = "dwell"\nzone = "a"\nmin_s = 5\nat_least = 3',
            "moments[0].at_least",
            "unknown",
        ),
    ],
)
def test_bad_rules_name_their_key(
    write_config: Callable[[str], Path], rule: str, key: str, why: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(MINIMAL + f'\n[[moments]]\nname = "m"\n{rule}\n'))
    text = str(info.value)
    assert f"{key} = " in text and why in text, text
