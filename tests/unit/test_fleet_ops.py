"""Fleet operations without a broker: the remote overlay and its rules, the command channel's
reading of requests, hot reload of the pipeline, update rate limits and the device cap."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.config import load_config, parse_config
from edge_agent.config.checks import check
from edge_agent.config.remote import CommandsConfig
from edge_agent.errors import CommandError, ConfigError
from edge_agent.models import Advert, IBeaconFrame, PresenceBody
from edge_agent.pipeline.reconfigure import reconfigured
from edge_agent.pipeline.tick import Pipeline
from edge_agent.runtime import remote_config
from edge_agent.runtime.commands import Command, CommandChannel
from edge_agent.runtime.publisher import Inbound
from edge_agent.runtime.remote_config import Overlay, Probation
from firmware_sim.encoders import encode_ibeacon
from tests.support.cli import run_cli
from tests.support.configs import MINIMAL
from tests.support.ticks import run_ticks
from tests.unit.test_pipeline import CONFIG, UUID, _cart

ROOT = "store/site-1/gw-test"

# ------------------------------------------------------------------ the overlay


def test_patched_sets_and_unsets_whole_subtrees() -> None:
    base = {"presence.update_interval_s": 20, "fusion.share": True, "fusion.step_s": 1.0}
    out = remote_config.patched(base, {"presence.min_dwell_s": 2}, ["fusion"])
    assert out == {"presence.update_interval_s": 20, "presence.min_dwell_s": 2}
    assert remote_config.patched(out, {"presence": {"x": 1}}, []) == {"presence": {"x": 1}}


@pytest.mark.parametrize(
    ("key", "code"),
    [
        ("gateway.id", "refused"),
        ("commands.enabled", "refused"),
        ("mqtt.password_file", "refused"),
        ("privacy.store_secret_credential", "refused"),
        ("mqtt.tls.ca_file", "refused"),
        ("calibration.file", "refused"),
        ("mqtt.password", "refused"),
        ("presence..x", "bad_request"),
    ],
)
def test_keys_a_remote_command_may_not_set(key: str, code: str) -> None:
    with pytest.raises(CommandError) as err:
        remote_config.check_remote_keys([key])
    assert err.value.code == code
    remote_config.check_remote_keys(["presence.update_interval_s", "receivers.r1.x"])


def test_the_overlay_applies_on_top_of_the_file_and_array_entries_go_by_id(
    write_config: Callable[[str], Path],
) -> None:
    path = write_config(MINIMAL)
    state = load_config(path).gateway.state_dir
    remote_config.write_overlay(state, Overlay({"receivers.rx-b.rssi_offset_db": 3.0}))
    assert (remote_config.path_for(state).stat().st_mode & 0o777) == 0o600
    cfg = check(path).config
    assert {r.id: r.rssi_offset_db for r in cfg.receivers} == {"rx-a": 0.0, "rx-b": 3.0}
    assert check(path, remote=False).config.receivers[1].rssi_offset_db == 0.0
    remote_config.write_overlay(state, Overlay({"receivers.rx-z.rssi_offset_db": 3.0}))
    with pytest.raises(ConfigError, match="no entry with id 'rx-z'"):
        check(path)
    remote_config.path_for(state).write_text("{not json")
    checked = check(path)  # unreadable: the file alone, with a warning
    assert any("not an overlay" in w.message for w in checked.warnings)


def test_an_unconfirmed_probation_is_undone_at_start(tmp_path: Path) -> None:
    probation = Probation({"presence.update_interval_s": 20}, 0.0, "req-1", "t/r", "0102")
    remote_config.write_overlay(tmp_path, Overlay({"mqtt.urls": ["mqtt://x:1"]}, probation))
    found = remote_config.recover(tmp_path)
    assert found is not None and found.request == "req-1" and found.correlation == "0102"
    after = remote_config.read_overlay(tmp_path)
    assert after.overrides == {"presence.update_interval_s": 20} and after.probation is None
    assert remote_config.recover(tmp_path) is None


def test_restart_keys_and_redaction(write_config: Callable[[str], Path]) -> None:
    path = write_config(MINIMAL)
    cfg = load_config(path)
    other = load_config(path, {"gateway.site": "site-2", "presence.min_dwell_s": 3.0})
    assert remote_config.needs_restart(cfg, other) == ["gateway"]
    assert remote_config.redacted(cfg)["gateway"]["id"] == "gw-test"
    shown = json.dumps(
        remote_config._redact({"x": {"api_token": "t0ps3cret", "u": ["mqtt://a:hunter2@h"]}}, "")
    )
    assert "hunter2" not in shown and "t0ps3cret" not in shown and "***@h" in shown


# --------------------------------------------------------------- the channel


class _Wire:
    """The publisher's side the channel uses: what it sends, and nothing else."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], bytes | None]] = []
        self.up = True

    def subscribe(self, *_a: object) -> None: ...
    def on_connect(self, *_a: object) -> None: ...

    def publish_reply(self, topic: str, payload: bytes, correlation: bytes | None = None) -> bool:
        if self.up:
            self.sent.append((topic, json.loads(payload), correlation))
        return self.up


def _channel(handlers: dict[str, Any] | None = None, **cfg: Any) -> tuple[CommandChannel, _Wire]:
    wire = _Wire()

    async def echo(c: Command) -> dict[str, Any]:
        return {"args": c.args}

    async def boom(_c: Command) -> dict[str, Any]:
        raise RuntimeError("secret detail")

    channel = CommandChannel(
        CommandsConfig(enabled=True, **cfg),
        ROOT,
        wire,  # type: ignore[arg-type]
        handlers or {"ping": echo, "flush": boom},
        lambda kind: f"gw-test:{kind}:1",
        lambda: 7,
    )
    return channel, wire


def _send(channel: CommandChannel, name: str, payload: bytes, **kw: Any) -> None:
    asyncio.run(channel.handle(Inbound(f"{ROOT}/cmd/{name}", payload, **kw)))


def test_every_request_gets_one_result_and_bad_ones_an_error() -> None:
    channel, wire = _channel(max_payload_bytes=1024)
    _send(channel, "ping", b'{"id": "a", "args": {"x": 1}, "added_later": true}')
    _send(channel, "ping", b"\xff not json")
    _send(channel, "ping", b'{"id": "b"' + b" " * 2000 + b"}")
    _send(channel, "ping", b'{"args": {}}')
    _send(channel, "ping", b'{"id": "a"}')
    _send(channel, "warp", b'{"id": "c"}')
    _send(channel, "flush", b'{"id": "d"}')
    results = [r for _t, r, _c in wire.sent]
    assert results[0]["ok"] and results[0]["result"] == {"args": {"x": 1}}
    codes = [r["error"]["code"] for r in results[1:]]
    assert codes == [
        "bad_request",
        "too_large",
        "bad_request",
        "replayed",
        "unknown_command",
        "failed",
    ]
    assert results[4]["request_id"] == "a" and results[5]["request_id"] == "c"
    assert "secret detail" not in json.dumps(results[6])
    assert all(t == f"{ROOT}/cmd/{r['command']}/result" for t, r, _c in wire.sent)
    assert channel.stats.ok == 1 and channel.stats.failed == 6


def test_results_honour_the_response_topic_and_wait_for_the_broker() -> None:
    channel, wire = _channel()
    _send(channel, "ping", b'{"id": "a"}', response_topic="fleet/r/1", correlation=b"\x09")
    _send(channel, "ping", b'{"id": "b"}', response_topic="fleet/+/bad")
    assert [(t, c) for t, _r, c in wire.sent] == [
        ("fleet/r/1", b"\x09"),
        (f"{ROOT}/cmd/ping/result", None),
    ]
    wire.up = False
    _send(channel, "ping", b'{"id": "c"}')
    assert len(wire.sent) == 2
    wire.up = True
    channel._flush_unsent()
    assert wire.sent[-1][1]["request_id"] == "c"


def test_the_replay_window_is_bounded_and_the_queue_drops_and_counts() -> None:
    channel, wire = _channel(replay_window=16, queue_size=8)
    for i in range(20):
        _send(channel, "ping", json.dumps({"id": f"r{i}"}).encode())
    _send(channel, "ping", b'{"id": "r0"}')  # forgotten: carried out again
    _send(channel, "ping", b'{"id": "r19"}')  # remembered
    assert [r["ok"] for _t, r, _c in wire.sent[-2:]] == [True, False]
    assert len(channel._seen) == 16
    for _ in range(10):
        channel.on_message(Inbound(f"{ROOT}/cmd/ping", b"{}"))
    channel.on_message(Inbound("store/site-1/gw-other/cmd/ping", b"{}"))  # not ours
    channel.on_message(Inbound(f"{ROOT}/cmd/ping/result", b"{}"))  # not a command
    assert channel.stats.received == 10 and channel.stats.dropped == 2


# ------------------------------------------------------------- hot reload


def _adverts(n_carts: int, until: float) -> list[Advert]:
    frames = [encode_ibeacon(IBeaconFrame(UUID, 1, 20 + c, -59)) for c in range(n_carts)]
    return [
        Advert(
            f"C1:00:00:00:01:{c:02X}",
            -62,
            t,
            1.7e9 + t,
            "rx-a",
            "random",
            manufacturer_data={0x004C: frames[c]},
        )
        for t in (i * 0.25 for i in range(int(until * 4)))
        for c in range(n_carts)
    ]


def test_a_reload_keeps_tracking_when_it_can_and_otherwise_exits_everyone_first(
    write_config: Callable[[str], Path],
) -> None:
    path = write_config(CONFIG)
    cfg = load_config(path)
    p = Pipeline(cfg)
    run_ticks(p, _adverts(3, 10.0), 10.0)
    assert len(p.presence.states) == 3
    key = p.identity.key_bytes()
    gentle = load_config(path, {"presence.update_interval_s": 30.0})
    q, events, kept = reconfigured(p, gentle, 10.0, 1.7e9 + 10.0)
    assert kept and not events and q.presence is p.presence and q.table is p.table
    assert q.cfg.presence.update_interval_s == 30.0 == q.presence._presence.update_interval_s
    assert q.identity is p.identity
    sharp = load_config(path, {"presence.min_dwell_s": 0.5, "privacy.k_anonymity": 1})
    r, events, kept = reconfigured(q, sharp, 10.0, 1.7e9 + 10.0)
    assert not kept
    assert sorted(e.type for e in events if e.topic.startswith("presence/")) == ["exit"] * 3
    assert r.identity.key_bytes() == key and not r.presence.states and not r.devices_tracked
    assert r.stats is p.stats  # counters go on
    more = run_ticks(r, [a for a in _adverts(3, 20.0) if a.t >= 10.0], 20.0, start=10.0)
    assert sum(e.type == "enter" for e in more) == 3  # the same carts, the same ids
    assert {e.body.device for e in events if isinstance(e.body, PresenceBody)} == {
        e.body.device for e in more if e.type == "enter" and isinstance(e.body, PresenceBody)
    }


def test_updates_wait_for_movement_and_are_counted(write_config: Callable[[str], Path]) -> None:
    def updates(**over: float) -> tuple[int, int]:
        p = Pipeline(load_config(write_config(CONFIG), over))
        events = run_ticks(p, [_cart(i * 0.25, "rx-a", -62) for i in range(240)], 60.0)
        return sum(e.type == "update" for e in events), p.presence.updates_suppressed

    assert updates() == (5, 0)
    assert updates(**{"presence.update_min_change_m": 5.0}) == (0, 5)
    assert updates(
        **{"presence.update_min_change_m": 5.0, "presence.update_heartbeat_s": 25.0}
    ) == (1, 4)  # enter at 2 s; checks at 12, 22, 32 (30 s ≥ 25: sent), 42, 52


def test_the_device_cap_evicts_the_least_recently_heard(
    write_config: Callable[[str], Path],
) -> None:
    p = Pipeline(load_config(write_config(CONFIG), {"pipeline.max_devices": 10}))
    flood = [
        Advert(
            f"5A:00:00:00:{i // 256:02X}:{i % 256:02X}",
            -70,
            i * 0.01,
            1.7e9 + i * 0.01,
            "rx-a",
            "random",
        )
        for i in range(500)
    ]
    carts = [_cart(i * 0.25, "rx-a", -62) for i in range(40)]
    events = run_ticks(p, [*flood, *carts], 10.0)
    assert len(p._refs) <= 10 and p.devices_tracked <= 10
    assert p.stats.evicted >= 490
    assert "cart-7" in p._refs  # heard all along: never the least recent
    assert any(e.type == "enter" for e in events)


def test_max_devices_is_bounded(write_config: Callable[[str], Path]) -> None:
    with pytest.raises(ConfigError, match="max_devices"):
        parse_config(MINIMAL.replace("{state}", "/tmp/x") + "[pipeline]\nmax_devices = 1\n")


def test_check_config_says_what_was_set_remotely(write_config: Callable[[str], Path]) -> None:
    path = write_config(MINIMAL)
    state = load_config(path).gateway.state_dir
    remote_config.write_overlay(state, Overlay({"presence.update_interval_s": 25.0}))
    out = run_cli("check-config", str(path)).stdout
    assert "set remotely" in out and "presence.update_interval_s" in out
    shown = json.loads(run_cli("get-config", "--config", str(path)).stdout)
    assert shown["presence"]["update_interval_s"] == 25.0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["ping", "flush", "set-config", "x", "erase"]),
    payload=st.one_of(
        st.binary(max_size=2048),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=8), inner, max_size=4)
            ),
            max_leaves=12,
        ).map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {"id": st.text(max_size=140), "args": st.dictionaries(st.text(), st.integers())}
        ).map(lambda v: json.dumps(v).encode()),
    ),
)
def test_any_payload_gets_exactly_one_result_and_never_an_exception(
    name: str, payload: bytes
) -> None:
    channel, wire = _channel(max_payload_bytes=1024)
    _send(channel, name, payload)
    assert len(wire.sent) == 1
    result = wire.sent[0][1]
    assert result["ok"] is (result["error"] is None)
