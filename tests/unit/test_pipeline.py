"""The pure pipeline: enter after the minimum dwell, rate-limited updates, exit with dwell after
the debounce, occupancy, sensor deadband and heartbeat, malformed input counted and skipped."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from edge_agent.config import AgentConfig, load_config
from edge_agent.models import (
    Advert,
    BeaconHealthBody,
    BTHomeFrame,
    ContextEvent,
    IBeaconFrame,
    Measurement,
    OccupancyBody,
    PresenceBody,
    ReadingBody,
)
from edge_agent.pipeline.decoders.bthome import BTHOME_UUID
from edge_agent.pipeline.identity import Identity
from edge_agent.pipeline.proximity import band_for
from edge_agent.pipeline.tick import Pipeline
from firmware_sim.encoders import encode_bthome, encode_ibeacon
from tests.support.configs import MINIMAL
from tests.support.ticks import run_ticks

UUID = "2f234454-cf6d-4a0f-adf2-f4911ba9ffa6"
CART = encode_ibeacon(IBeaconFrame(UUID, 1, 7, -59))

CONFIG = (
    MINIMAL
    + f"""
[presence]
min_dwell_s = 2.0
exit_debounce_s = 5.0
update_interval_s = 10.0
occupancy_interval_s = 30.0

[proximity]
tx_power_1m_dbm = -59
path_loss_exponent = 2.0
gone_after_s = 15.0

[sensors]
heartbeat_s = 60.0

[[fleets]]
kind = "cart"
ibeacon_uuid = "{UUID}"
id_format = "cart-{{minor}}"

[[devices]]
id = "fridge-1"
kind = "sensor"
address = "A4:C1:38:00:00:01"
"""
)


def _cfg(write_config: Callable[[str], Path]) -> AgentConfig:
    return load_config(write_config(CONFIG))


def _cart(t: float, rx: str, rssi: int) -> Advert:
    return Advert(
        "C1:00:00:00:00:07", rssi, t, 1.7e9 + t, rx, "random", manufacturer_data={0x004C: CART}
    )


def _run(
    p: Pipeline, adverts: Iterable[Advert], until: float, tick: float = 0.1
) -> list[ContextEvent]:
    return run_ticks(p, adverts, until, tick=tick)


def test_enter_update_exit_with_dwell(write_config: Callable[[str], Path]) -> None:
    p = Pipeline(_cfg(write_config))
    # 0–40 s at 2 m from rx-a (−65 dBm ≈ 2 m), then silence
    adverts = [_cart(i * 0.25, "rx-a", -65) for i in range(160)]
    events = [e for e in _run(p, adverts, 70.0) if e.topic.startswith("presence/")]
    kinds = [(e.type, e.body.zone) for e in events]
    assert kinds[0] == ("enter", "a")
    assert kinds[-1] == ("exit", "a")
    # updates every 10 s while present: at 12, 22, 32, 42 and 52 s
    assert kinds[1:-1] == [("update", "a")] * 5
    enter, exit_ = events[0], events[-1]
    assert enter.body.device == "cart-7" and enter.body.device_class == "cart"
    assert 1.9 <= enter.wall - 1.7e9 <= 2.3  # min_dwell after the first sample
    assert enter.body.band == "near" and 1.5 < enter.body.distance_m < 2.5
    # gone_after_s (15 s) after the last advert at 39.75 s, then out
    assert 54.5 <= exit_.wall - 1.7e9 <= 55.2
    assert abs(exit_.body.dwell_s - (exit_.wall - enter.wall)) < 1e-6


def test_zone_change_needs_min_dwell(write_config: Callable[[str], Path]) -> None:
    p = Pipeline(_cfg(write_config))
    adverts = [_cart(i * 0.25, "rx-a", -62) for i in range(40)]  # 0–10 s near rx-a
    adverts += [_cart(10 + i * 0.25, "rx-a", -80) for i in range(40)]  # moving away from a …
    adverts += [_cart(10 + i * 0.25, "rx-b", -62) for i in range(40)]  # … towards b
    events = [e for e in _run(p, adverts, 20.0) if e.topic.startswith("presence/")]
    assert [(e.type, e.body.zone) for e in events] == [
        ("enter", "a"),
        ("exit", "a"),
        ("enter", "b"),
    ]
    change = events[2].wall - 1.7e9
    assert 12.0 <= change <= 15.0  # smoothing + 2 s minimum dwell after the crossing at 10 s


def test_occupancy_is_retained_and_counts_by_class(write_config: Callable[[str], Path]) -> None:
    p = Pipeline(load_config(write_config(CONFIG + "\n[privacy]\nk_anonymity = 1\n")))
    adverts = [_cart(i * 0.5, "rx-a", -62) for i in range(140)]
    occ = [e for e in _run(p, adverts, 65.0) if e.type == "occupancy"]
    assert [e.body.zone for e in occ] == ["a", "b", "a", "b"]
    assert all(e.retain for e in occ)
    last_a = occ[2].body
    assert last_a.counts["cart"] == 1 and last_a.total == 1 and last_a.window_s == 30.0
    assert last_a.fewer_than_k == () and last_a.k == 1
    assert occ[3].body.total == 0 and occ[3].body.mean_dwell_s is None


def test_occupancy_below_k_is_published_as_fewer_than_k(
    write_config: Callable[[str], Path],
) -> None:
    p = Pipeline(_cfg(write_config))  # default k = 3
    three = [
        Advert(
            f"C1:00:00:00:00:0{m}",
            -62,
            i * 0.5 + m * 0.01,
            1.7e9 + i * 0.5,
            "rx-a",
            "random",
            manufacturer_data={0x004C: encode_ibeacon(IBeaconFrame(UUID, 1, m, -59))},
        )
        for i in range(140)
        for m in (1, 2, 3)
    ]
    one_b = [_cart(i * 0.5 + 0.2, "rx-b", -62) for i in range(140)]
    events = _run(p, sorted(three + one_b, key=lambda a: a.t), 65.0)
    occ = {e.body.zone: e.body for e in events if e.type == "occupancy"}
    assert occ["a"].counts["cart"] == 3 and occ["a"].total == 3
    assert occ["a"].fewer_than_k == () and occ["a"].mean_dwell_s is not None
    b = occ["b"]
    assert "cart" not in b.counts and b.fewer_than_k == ("cart",) and b.k == 3
    assert b.total is None and b.mean_dwell_s is None
    assert b.counts["staff"] == 0  # zero singles nobody out: published as is


def _fridge(t: float, temp: float, packet: int) -> Advert:
    frame = BTHomeFrame(False, False, packet, (Measurement("temperature", temp, "°C", 0x02),))
    return Advert(
        "A4:C1:38:00:00:01",
        -70,
        t,
        1.7e9 + t,
        "rx-a",
        service_data={BTHOME_UUID: encode_bthome(frame)},
    )


def test_sensor_deadband_heartbeat_and_dedup(write_config: Callable[[str], Path]) -> None:
    p = Pipeline(_cfg(write_config))
    temps = [4.0, 4.1, 4.15, 4.5, 4.5] + [4.5] * 20
    adverts = [_fridge(i * 5.0, temp, i % 256) for i, temp in enumerate(temps)]
    adverts += [_fridge(i * 5.0 + 0.001, temp, i % 256) for i, temp in enumerate(temps)]  # 2nd rx
    readings = [e for e in _run(p, adverts, 125.0) if e.type == "reading"]
    values = [(round(e.wall - 1.7e9), e.body.measurements["temperature"].value) for e in readings]
    # 4.0 first; 4.1 and 4.15 within 0.2 °C of 4.0; 4.5 beyond it; then heartbeat after 60 s
    assert values == [(0, 4.0), (15, 4.5), (75, 4.5)]
    assert readings[0].body.device == "fridge-1" and readings[0].topic == "sensor/fridge-1"


def test_malformed_and_impossible_are_counted_and_skipped(
    write_config: Callable[[str], Path],
) -> None:
    p = Pipeline(_cfg(write_config))
    bad = [
        Advert(
            "C1:00:00:00:00:09", -60, 0.1, 0.1, "rx-a", manufacturer_data={0x004C: b"\x02\x15\x00"}
        ),
        Advert("C1:00:00:00:00:09", 12 + 100, 0.1, 0.1, "rx-a"),
        Advert("C1:00:00:00:00:09", -60, 0.1, 0.1, "rx-a", service_data={BTHOME_UUID: b"\x40\xff"}),
    ]
    p.process(bad, 0.2, 0.2)
    assert p.stats.rejected_rssi == 1
    assert p.decode_stats.malformed == {"ibeacon:length": 1, "bthome:unknown_object": 1}


def test_unregistered_devices_get_a_pseudonym(write_config: Callable[[str], Path]) -> None:
    cfg = _cfg(write_config)
    p = Pipeline(cfg, identity=Identity(cfg, key=b"\x01" * 32))
    adverts = [
        Advert("5A:11:22:33:44:55", -60, i * 0.2, 1.7e9 + i * 0.2, "rx-a") for i in range(30)
    ]
    events = _run(p, adverts, 6.0)
    enter = next(e for e in events if e.type == "enter")
    device = enter.body.device
    assert device.startswith("p-")
    for notation in ("5a:11:22:33:44:55", "5a1122334455", "5a-11-22-33-44-55", "5a11.2233.4455"):
        assert notation not in device.lower()
    assert device == p.identity.pseudonym("5a:11:22:33:44:55")  # case-insensitive, stable
    assert device != Identity(cfg, key=b"\x02" * 32).pseudonym("5A:11:22:33:44:55")


def test_band_hysteresis(write_config: Callable[[str], Path]) -> None:
    prox = _cfg(write_config).proximity  # immediate 0.5, near 3.0, far 8.0, hysteresis 0.5
    assert band_for(2.0, "gone", prox) == "near"
    assert band_for(3.2, "near", prox) == "near"  # inside the hysteresis
    assert band_for(3.6, "near", prox) == "far"
    assert band_for(2.8, "far", prox) == "far"
    assert band_for(2.4, "far", prox) == "near"
    assert band_for(8.4, "far", prox) == "far" and band_for(8.6, "far", prox) == "gone"


def test_an_exit_describes_the_zone_left_not_the_next(write_config: Callable[[str], Path]) -> None:
    """Moving from a to b: the exit from a names a's receiver, a distance and a confidence
    measured at a; the enter in b names b's."""
    p = Pipeline(_cfg(write_config))
    adverts = [_cart(i * 0.25, "rx-a", -62) for i in range(40)]
    adverts += [_cart(10 + i * 0.25, "rx-a", -80) for i in range(40)]
    adverts += [_cart(10 + i * 0.25, "rx-b", -62) for i in range(40)]
    events = [e for e in _run(p, adverts, 20.0) if isinstance(e.body, PresenceBody)]
    exit_ = next(e.body for e in events if e.type == "exit")
    enter_b = next(e.body for e in events if e.type == "enter" and e.body.zone == "b")
    assert exit_.zone == "a" and exit_.receiver == "rx-a" and exit_.band != "gone"
    assert exit_.distance_m is not None and exit_.distance_m < 2.0  # where it was while in a
    assert enter_b.receiver == "rx-b"


def test_sensors_and_fixed_devices_get_no_presence(write_config: Callable[[str], Path]) -> None:
    """A fridge thermometer heard near rx-a and rx-b in turn never enters a zone (a sensor does
    not move); a beacon fixed in zone b says b in its readings and health, and gets no presence
    either; a cart still does."""
    p = Pipeline(
        load_config(
            write_config(
                CONFIG
                + '\n[[devices]]\nid = "door-1"\nkind = "asset"\nbeacon = '
                + f'"ibeacon:{UUID}:9:9"\nzone = "b"\n'
            )
        )
    )
    adverts = [_fridge(i * 1.0, 4.0 + i * 0.01, i) for i in range(30)]
    adverts += [replace(a, receiver="rx-b", t=a.t + 0.5, wall=a.wall + 0.5) for a in adverts]
    door = {0x004C: encode_ibeacon(IBeaconFrame(UUID, 9, 9, -59))}
    adverts += [
        Advert("C1:00:00:00:00:99", -60, i * 0.5, 1.7e9 + i * 0.5, "rx-a", manufacturer_data=door)
        for i in range(60)
    ]
    adverts += [_cart(i * 0.25, "rx-a", -62) for i in range(120)]
    events = _run(p, adverts, 31.0)
    presence = {e.body.device for e in events if isinstance(e.body, PresenceBody)}
    assert presence == {"cart-7"}
    readings = [e.body for e in events if isinstance(e.body, ReadingBody)]
    assert readings and all(r.device == "fridge-1" and r.zone is None for r in readings)
    health = [e.body for e in events if isinstance(e.body, BeaconHealthBody)]
    assert {h.device: h.zone for h in health}.get("door-1") == "b"
    occupancy = [e.body for e in events if isinstance(e.body, OccupancyBody)]
    assert all("sensor" not in o.fewer_than_k and not o.counts.get("sensor") for o in occupancy)


def test_receivers_heard_without_a_zone_are_named(write_config: Callable[[str], Path]) -> None:
    """A receiver the config does not list gives no presence: the pipeline names it, and health
    says so in words that fit a config without a floor plan."""
    from edge_agent.runtime.health import Reporter

    p = Pipeline(_cfg(write_config))
    _run(p, [_cart(0.1, "rx-a", -60), _cart(0.2, "rx-z", -60)], 1.0)
    assert p.unzoned_receivers() == ["rx-z"]
    assert p.fusion is None
    text = Reporter.unzoned_warning(p, "rx-z")
    assert text == "receiver 'rx-z' is heard but has no zone: its adverts give no presence"
