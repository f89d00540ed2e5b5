"""Privacy in the pure stages: address classes and policies, daily key rotation, consent, erasure,
and the consent list file."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from edge_agent.config import AgentConfig, load_config
from edge_agent.config.checks import load_checked
from edge_agent.errors import ConfigError, ConsentError
from edge_agent.models import Advert, ContextEvent, DeviceClass, IBeaconFrame
from edge_agent.pipeline.identity import AddressClass, Identity, address_class, next_rotation
from edge_agent.pipeline.tick import Pipeline
from edge_agent.runtime.consent import add_consent, load_consents, revoke_consent
from firmware_sim.encoders import encode_ibeacon
from tests.support.configs import MINIMAL
from tests.support.ticks import run_ticks

UUID = "11111111-2222-3333-4444-555555555555"
BERLIN = ZoneInfo("Europe/Berlin")


def _cfg(write_config: Callable[[str], Path], extra: str = "") -> AgentConfig:
    return load_config(write_config(MINIMAL + "\n[privacy]\nk_anonymity = 1\n" + extra))


def _wall(text: str, tz: ZoneInfo = BERLIN) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def _run(p: Pipeline, adverts: list[Advert], start: float, seconds: float) -> list[ContextEvent]:
    """Ticks of 0.1 s from ``start`` (wall) for ``seconds``; adverts carry wall == t."""
    return run_ticks(p, adverts, start + seconds, start=start, wall_offset=0.0)


def _adv(address: str, t: float, kind: str = "random", rssi: int = -60, **kw: object) -> Advert:
    return Advert(address, rssi, t, t, "rx-a", kind, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("address", "kind", "expected"),
    [
        ("00:1A:7D:DA:71:13", "public", AddressClass.PUBLIC),
        ("C4:11:22:33:44:55", "random", AddressClass.RANDOM_STATIC),
        ("FF:11:22:33:44:55", "random", AddressClass.RANDOM_STATIC),
        ("4A:11:22:33:44:55", "random", AddressClass.RESOLVABLE),
        ("7F:11:22:33:44:55", "random", AddressClass.RESOLVABLE),
        ("3A:11:22:33:44:55", "random", AddressClass.NON_RESOLVABLE),
        ("8A:11:22:33:44:55", "random", AddressClass.NON_RESOLVABLE),  # reserved 0b10: strictest
        ("4A:11:22:33:44:55", "public", AddressClass.PUBLIC),  # BlueZ's word decides first
    ],
)
def test_address_classes(address: str, kind: str, expected: AddressClass) -> None:
    assert address_class(address, kind) == expected


def test_policies_by_address_class(write_config: Callable[[str], Path]) -> None:
    cfg = _cfg(
        write_config,
        'policy = { public = "ignore", random_static = "pseudonymous", '
        'resolvable = "count_only", non_resolvable = "count_only" }\n',
    )
    p = Pipeline(cfg)
    t0 = _wall("2026-11-23T10:00:00")
    adverts = [
        _adv(a, t0 + i * 0.2, kind)
        for i in range(200)
        for a, kind in (
            ("00:1A:7D:DA:71:13", "public"),
            ("C4:11:22:33:44:55", "random"),
            ("4A:11:22:33:44:55", "random"),
            ("4B:11:22:33:44:55", "random"),
            ("4C:11:22:33:44:55", "random"),
        )
    ]
    events = _run(p, adverts, t0, 40.0)
    devices = {e.body.device for e in events if e.type == "enter"}
    assert len(devices) == 1 and next(iter(devices)).startswith("p-")  # only the static one
    occ = [e.body for e in events if e.type == "occupancy" and e.body.zone == "a"][-1]
    assert occ.counts["unknown"] == 4  # the three phones are counted, never published
    st = p.identity.stats
    assert st.ignored == 200 and st.count_only == 600


def test_beacons_track_versus_pseudonymous(write_config: Callable[[str], Path]) -> None:
    frame = {0x004C: encode_ibeacon(IBeaconFrame(UUID, 7, 9, -59))}
    t0 = _wall("2026-11-23T10:00:00")
    ids = []
    for policy in ("track", "pseudonymous"):
        cfg = _cfg(write_config, f'policy = {{ random_static = "{policy}" }}\n')
        p = Pipeline(cfg)
        adverts = [
            _adv("C4:11:22:33:44:55", t0 + i * 0.2, manufacturer_data=frame) for i in range(40)
        ]
        events = _run(p, adverts, t0, 8.0)
        ids.append(next(e.body.device for e in events if e.type == "enter"))
    assert ids[0] == f"ibeacon-{UUID}-7-9"
    assert ids[1].startswith("p-") and UUID not in ids[1]


def test_key_rotates_at_the_configured_local_time(write_config: Callable[[str], Path]) -> None:
    cfg = _cfg(write_config, 'rotate_at = "04:00"\ntimezone = "Europe/Berlin"\n')
    p = Pipeline(cfg)
    start = _wall("2026-11-24T03:59:00")
    adverts = [_adv("C4:11:22:33:44:55", start + i * 0.5) for i in range(240)]  # two minutes
    events = _run(p, adverts, start, 120.0)
    boundary = _wall("2026-11-24T04:00:00")
    before = {e.body.device for e in events if e.wall < boundary and hasattr(e.body, "device")}
    after = {
        e.body.device for e in events if e.wall >= boundary + 0.1 and hasattr(e.body, "device")
    }
    assert len(before) == 1 and len(after) == 1 and before.isdisjoint(after)
    old = next(iter(before))
    # at the boundary the old pseudonym leaves, and its state is gone
    exits = [e for e in events if e.type == "exit" and e.body.device == old]
    assert len(exits) == 1 and abs(exits[0].wall - boundary) <= 0.1
    assert old not in p.presence.states and p.identity.stats.key_rotations == 1


def test_old_key_is_overwritten(write_config: Callable[[str], Path]) -> None:
    ident = Identity(_cfg(write_config))
    t = _wall("2026-11-23T23:59:59", ZoneInfo("UTC"))
    ident.tick(t)
    held = ident._key  # the very buffer in use
    first = ident.pseudonym("C4:11:22:33:44:55")
    assert ident.tick(t + 2.0)  # past midnight UTC
    assert bytes(held) == bytes(len(held)) and ident._key is not held
    assert ident.pseudonym("C4:11:22:33:44:55") != first


def test_a_backward_clock_step_over_a_boundary_also_rotates(
    write_config: Callable[[str], Path],
) -> None:
    ident = Identity(_cfg(write_config))
    t = _wall("2026-11-23T00:00:30", ZoneInfo("UTC"))
    assert not ident.tick(t)
    assert not ident.tick(t + 3600)
    assert ident.tick(t - 60)  # back into yesterday: a new key, never yesterday's


def test_rotation_follows_daylight_saving(write_config: Callable[[str], Path]) -> None:
    spring = next_rotation(_wall("2026-03-27T05:00:00"), "04:00", BERLIN)
    following = next_rotation(spring, "04:00", BERLIN)
    assert datetime.fromtimestamp(following, BERLIN).hour == 4
    assert following - spring == 23 * 3600  # the night the clocks go forward
    assert datetime.fromtimestamp(spring, UTC).hour == 3  # 04:00 CET


def test_consented_device_keeps_a_stable_id_until_revoked(
    write_config: Callable[[str], Path],
) -> None:
    cfg = _cfg(write_config)
    path = cfg.consent_path
    add_consent(path, "4a-11-22-33-44-55", "app-0042", DeviceClass.SHOPPER)
    p = Pipeline(cfg, Identity(cfg, consents=load_consents(path)))
    t0 = _wall("2026-11-23T10:00:00")
    adverts = [_adv("4A:11:22:33:44:55", t0 + i * 0.2) for i in range(50)]  # an RPA: count_only
    events = _run(p, adverts, t0, 10.0)
    enter = next(e for e in events if e.type == "enter")
    assert enter.body.device == "app-0042" and enter.body.device_class == "shopper"
    assert revoke_consent(path, "app-0042") is not None
    p.identity.set_consents(load_consents(path))
    assert p.erase({"app-0042"}) == 1
    later = _run(p, [_adv("4A:11:22:33:44:55", t0 + 20 + i * 0.2) for i in range(50)], t0 + 20, 10)
    assert not [e for e in later if e.type != "occupancy"]  # counted only again


def test_erase_forgets_tracking_state(write_config: Callable[[str], Path]) -> None:
    cfg = _cfg(write_config)
    p = Pipeline(cfg)
    t0 = _wall("2026-11-23T10:00:00")
    events = _run(p, [_adv("C4:11:22:33:44:55", t0 + i * 0.2) for i in range(50)], t0, 10.0)
    device = next(e.body.device for e in events if e.type == "enter")
    ids = p.identity.ids_for("c4:11:22:33:44:55")
    assert device in ids  # found by its address too
    # the ids become topics (erase clears retained ones): the address itself is never among them
    assert all(":" not in i and "c411" not in i.replace("-", "").lower() for i in ids), ids
    assert p.erase(p.identity.ids_for("C4:11:22:33:44:55")) == 1
    assert device not in p.presence.states and p.devices_tracked == 0


def test_consent_file_errors_name_the_problem(write_config: Callable[[str], Path]) -> None:
    cfg = _cfg(write_config)
    path = cfg.consent_path
    with pytest.raises(ConsentError, match="neither a Bluetooth address"):
        add_consent(path, "not-an-address", "app-1", DeviceClass.SHOPPER)
    with pytest.raises(ConsentError, match="must be a topic segment"):
        add_consent(path, "4A:11:22:33:44:55", "App 1", DeviceClass.SHOPPER)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"v": 1, "devices": [{"match": "zz", "id": "a"}]}))
    with pytest.raises(ConsentError, match=r"devices\[0\]"):
        load_consents(path)
    with pytest.raises(ConfigError, match=r"privacy\.consent_file"):
        load_checked(write_config(MINIMAL))


def test_consent_file_is_written_atomically_and_privately(
    write_config: Callable[[str], Path],
) -> None:
    path = _cfg(write_config).consent_path
    add_consent(path, "4A:11:22:33:44:55", "app-1", DeviceClass.SHOPPER)
    add_consent(path, "ibeacon:" + UUID + ":1:2", "app-2", DeviceClass.SHOPPER)
    add_consent(path, "4a:11:22:33:44:55", "app-3", DeviceClass.SHOPPER)  # replaces app-1
    assert [c.id for c in load_consents(path)] == ["app-2", "app-3"]
    assert path.stat().st_mode & 0o777 == 0o600
    assert not list(path.parent.glob(".consent-*"))
    assert revoke_consent(path, "4A:11:22:33:44:55") is not None  # by address
    assert revoke_consent(path, "app-3") is None
