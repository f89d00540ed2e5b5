"""Address churn: phones rotate their address every ~15 minutes, so a busy store hears tens of
thousands of addresses an hour. The device table stays under ``pipeline.max_devices`` and
memory stays flat (the soak reports the slope)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.models import Advert
from edge_agent.pipeline.recent import Recent
from edge_agent.pipeline.tick import Pipeline
from tests.support.churn import churn, churn_soak, run_through
from tests.unit.test_pipeline import CONFIG


def test_the_table_stays_under_the_cap_through_address_churn(
    write_config: Callable[[str], Path],
) -> None:
    cap = 2000
    p = Pipeline(
        load_config(write_config(CONFIG), {"pipeline.max_devices": cap, "pipeline.tick_s": 0.5})
    )
    most = 0

    def check(_now: float) -> None:
        nonlocal most
        most = max(most, len(p._refs), p.devices_tracked)

    run_through(p, churn(10 / 60, 50_000, 30.0), check)  # 10 minutes at 50 000 addresses an hour
    assert most <= cap
    assert p.stats.evicted > 0 and p.stats.adverts > 50_000


@pytest.mark.soak
def test_memory_is_flat_through_three_hours_of_churn(write_config: Callable[[str], Path]) -> None:
    """`make soak`: three simulated hours."""
    assert churn_soak(write_config(CONFIG), 3.0)["slope_mb_h"] < 1.0


def test_the_resolution_cache_is_bounded_and_keeps_what_is_used() -> None:
    cache: Recent[str, int] = Recent(4)
    for i in range(100):
        cache[f"a{i}"] = i
        cache["kept"] = -1 if i == 0 else cache["kept"]  # used all along
    assert len(cache) <= 8
    assert cache["kept"] == -1 and cache["a99"] == 99
    with pytest.raises(KeyError):
        cache["a0"]
    cache.drop_if(lambda v: v < 0)
    with pytest.raises(KeyError):
        cache["kept"]


def _count_looks(p: Pipeline) -> list[float]:
    """The times the zone machine looks at a device from now on (one entry per look)."""
    looked: list[float] = []
    evaluate = p.presence.evaluate

    def counting(*args, **kw):  # type: ignore[no-untyped-def]
        looked.append(args[2])
        return evaluate(*args, **kw)

    p.presence.evaluate = counting  # type: ignore[method-assign]
    return looked


def test_devices_without_news_are_looked_at_only_when_a_timer_expires(
    write_config: Callable[[str], Path],
) -> None:
    """200 carts in a zone, then silence: no tick looks at them until a timer of theirs (an
    update due, their receiver ageing out) expires — then each leaves on time."""
    from edge_agent.models import IBeaconFrame
    from firmware_sim.encoders import encode_ibeacon
    from tests.support.ticks import run_ticks
    from tests.unit.test_pipeline import UUID

    p = Pipeline(load_config(write_config(CONFIG)))
    frames = [encode_ibeacon(IBeaconFrame(UUID, 1, 100 + c, -59)) for c in range(200)]
    heard = [
        Advert(
            f"C1:00:00:00:02:{c:02X}",
            -62,
            t,
            1.7e9 + t,
            "rx-a",
            "random",
            manufacturer_data={0x004C: frames[c]},
        )
        for t in (i * 1.0 for i in range(10))
        for c in range(200)
    ]
    looked = _count_looks(p)
    due = p.sensors._due
    beacons_looked: list[tuple[float, int]] = []

    def due_counting(now: float):  # type: ignore[no-untyped-def]
        found = due(now)
        beacons_looked.append((now, len(found)))
        return found

    p.sensors._due = due_counting  # type: ignore[method-assign]
    events = run_ticks(p, heard, 40.0)
    # beacon health: each cart reported when first heard, then nothing is due for 600 s
    assert sum(n for t, n in beacons_looked if t > 1.05) == 0
    # after the last adverts (9 s): looked at only when updates fall due (entered at 2.1 s:
    # 12.1 and 22.1 s) and when the receiver ages out (9 + 15 = 24 s), 200 each time
    after = Counter(round(t, 1) for t in looked if t > 10.05)
    assert set(after) <= {12.1, 22.1, 24.0, 24.1}, after
    assert after[12.1] == after[22.1] == 200
    exits = [e for e in events if e.type == "exit"]
    assert len(exits) == 200 and all(24.0 <= e.wall - 1.7e9 <= 24.2 for e in exits)


def test_on_a_floor_plan_a_device_is_looked_at_on_a_new_position_not_each_advert() -> None:
    """A cart heard by two receivers every tick (10 a second) for 5 s: fusion steps it every
    ``step_s`` (0.25 s), and the zone machine looks at it then (and when a timer of its
    expires), not at each of its 100 adverts."""
    from edge_agent.models import IBeaconFrame
    from firmware_sim.encoders import encode_ibeacon
    from firmware_sim.serve import CART_UUID
    from tests.support.paths import CONFIG_DIR
    from tests.support.ticks import run_ticks

    p = Pipeline(load_config(CONFIG_DIR / "agent.toml"))
    assert p.fusion is not None and p.cfg.fusion.step_s == 0.25
    frame = {0x004C: encode_ibeacon(IBeaconFrame(CART_UUID, 1, 7, -59))}
    heard = [
        Advert("C1:00:00:00:00:07", rssi, t, 1.7e9 + t, rx, "random", frame)
        for t in (i * 0.1 for i in range(50))
        for rx, rssi in (("rx-entrance", -62), ("rx-produce", -82))
    ]
    looked = _count_looks(p)
    events = run_ticks(p, heard, 5.0)
    assert any(e.type == "enter" for e in events)
    assert len(looked) <= 5.0 / 0.25 + 5, looked  # not 50 ticks' worth
