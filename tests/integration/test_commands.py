"""Remote commands and hot reload through the real agent process and a real mosquitto: every
command, a set-config that breaks the agent and is rolled back by itself, a flood of bad
commands, SIGHUP reloads (a good one and a refused one) — and the event stream stays gapless."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.tools.mosquitto import LocalMosquitto, free_port
from tests.support.agent import (
    ROOT_TOPIC,
    committed,
    event_seqs,
    start_agent,
    wait_for_occupancy,
    wait_until,
)
from tests.support.configs import sim_config
from tests.support.mqtt_watch import Watcher


class Fleet:
    """The fleet manager's side: an MQTT 5 client that sends commands and collects results."""

    def __init__(self, broker: LocalMosquitto) -> None:
        self.results: list[tuple[str, dict[str, Any], bytes | None]] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"fleet-{time.time_ns()}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.on_connect = lambda c, *_: c.subscribe(
            [(f"{ROOT_TOPIC}/cmd/+/result", 1), ("fleet/replies/#", 1)]
        )
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, 30)
        self.client.loop_start()
        assert ready.wait(10)

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        corr = getattr(msg.properties, "CorrelationData", None)
        with self._lock:
            self.results.append((msg.topic, json.loads(msg.payload), corr))

    def send(
        self,
        name: str,
        request_id: str | None,
        args: dict[str, Any] | None = None,
        *,
        raw: bytes | None = None,
        reply_to: str | None = None,
        correlation: bytes | None = None,
        qos: int = 1,
    ) -> None:
        props = None
        if reply_to is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = reply_to
            if correlation is not None:
                props.CorrelationData = correlation
        payload = raw if raw is not None else json.dumps({"id": request_id, "args": args or {}})
        info = self.client.publish(f"{ROOT_TOPIC}/cmd/{name}", payload, qos=qos, properties=props)
        if qos:
            info.wait_for_publish(10)

    def result(self, request_id: str, state: str | None = None, timeout: float = 30.0) -> dict:  # type: ignore[type-arg]
        """The result of ``request_id`` (in ``state``, when given), once it arrives."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for _topic, data, _corr in self.results:
                    if data.get("request_id") == request_id and state in (None, data["state"]):
                        return data
            time.sleep(0.05)
        raise TimeoutError(f"no result for {request_id} ({state}) in {timeout} s")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def fleet(mosquitto: LocalMosquitto) -> Iterator[Fleet]:
    f = Fleet(mosquitto)
    yield f
    f.close()


def _agent(tmp_path: Path, broker: LocalMosquitto) -> Path:
    return sim_config(
        tmp_path,
        broker,
        speed=20.0,
        duration=None,
        edits={"rollback_after_s = 60.0": "rollback_after_s = 4.0"},  # a short probation
    )


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    return err


def _gapless(tmp_path: Path, watcher: Watcher) -> int:
    last, depth = committed(tmp_path)
    assert depth == 0
    seqs = event_seqs([m for m in watcher.settle() if "/cmd/" not in m.topic and m.payload])
    missing = set(range(1, last + 1)) - set(seqs)
    assert not missing, f"{len(missing)} events never arrived, e.g. {sorted(missing)[:5]}"
    return last


def test_every_command_over_the_broker_with_a_rollback_and_a_flood(
    tmp_path: Path, mosquitto: LocalMosquitto, fleet: Fleet
) -> None:
    cfg = _agent(tmp_path, mosquitto)
    watcher = Watcher(mosquitto.host, mosquitto.port, f"{ROOT_TOPIC}/#")
    proc = start_agent(cfg)
    try:
        wait_for_occupancy(watcher, 2)
        # ping, answered on the MQTT 5 response topic with the correlation data
        fleet.send("ping", "p-1", reply_to="fleet/replies/a", correlation=b"\x01\x02")
        ping = fleet.result("p-1")
        assert ping["ok"] and ping["result"]["gateway"] == "gw-demo-01"
        assert any(t == "fleet/replies/a" and c == b"\x01\x02" for t, d, c in fleet.results)
        fleet.send("status", "s-1")
        assert fleet.result("s-1")["result"]["health"]["commands"]["received"] >= 2
        fleet.send("get-config", "g-1")
        got = fleet.result("g-1")["result"]
        assert got["config"]["gateway"]["id"] == "gw-demo-01" and len(got["hash"]) == 64
        # set-config: applied, then confirmed once healthy; tracked devices kept
        fleet.send("set-config", "c-1", {"set": {"presence.update_interval_s": 20}})
        applied = fleet.result("c-1", "applied")
        assert applied["result"]["devices_kept"] is True
        assert applied["result"]["hash"] != applied["result"]["previous_hash"] == got["hash"]
        assert fleet.result("c-1", "confirmed")["result"]["hash"] == applied["result"]["hash"]
        overlay = json.loads((tmp_path / "state" / "remote-config.json").read_text())
        assert overlay == {
            "v": 1,
            "overrides": {"presence.update_interval_s": 20},
            "probation": None,
        }
        # refused: a key that needs a restart, one that names a file, an invalid value
        fleet.send("set-config", "c-2", {"set": {"gateway.id": "gw-other"}})
        assert fleet.result("c-2")["error"]["code"] == "refused"
        fleet.send("set-config", "c-3", {"set": {"presence.update_interval_s": -1}})
        bad = fleet.result("c-3")["error"]
        assert bad["code"] == "invalid_config" and "presence.update_interval_s" in bad["message"]
        fleet.send("calibrate-offset", "o-1", {"receiver": "rx-produce", "offset_db": 2.5})
        assert fleet.result("o-1", "confirmed")["ok"]
        fleet.send("reload", "r-1")
        assert fleet.result("r-1")["result"]["devices_kept"] is True
        # consents and erasure
        fleet.send(
            "consent-add", "k-1", {"match": "AA:BB:CC:DD:EE:01", "id": "loyal-1", "kind": "shopper"}
        )
        assert fleet.result("k-1")["result"]["consents"] == 1
        fleet.send("consent-revoke", "k-2", {"device": "loyal-1"})
        assert fleet.result("k-2")["result"]["revoked"] == 1
        fleet.send("erase", "e-1", {"device": "cart-07"})
        assert "events_removed" in fleet.result("e-1")["result"]
        fleet.send("flush", "f-1", {"timeout_s": 10})
        assert fleet.result("f-1")["result"]["drained"] is True
        # errors, never a crash: unknown, unreadable, replayed
        fleet.send("fly", "u-1")
        assert fleet.result("u-1")["error"]["code"] == "unknown_command"
        fleet.send("ping", "p-1")
        wait_until(
            lambda: len([d for _t, d, _c in fleet.results if d.get("request_id") == "p-1"]) == 2,
            30,
            "the replayed ping's answer",
        )
        replayed = [d for _t, d, _c in fleet.results if d.get("request_id") == "p-1"]
        assert replayed[1]["error"]["code"] == "replayed"
        # a set-config that breaks the agent (a broker that is not there): rolled back by itself
        dead = f"mqtt://127.0.0.1:{free_port()}"
        fleet.send("set-config", "c-9", {"set": {"mqtt.urls": [dead]}})
        back = fleet.result("c-9", "rolled_back", timeout=60)
        assert "broker" in back["result"]["reason"]
        assert fleet.result("c-9", "applied")["ok"]
        assert back["result"]["hash"] == fleet.result("r-1")["result"]["hash"]
        overlay = json.loads((tmp_path / "state" / "remote-config.json").read_text())
        assert "mqtt.urls" not in overlay["overrides"] and overlay["probation"] is None
        # a flood of 1 000 bad commands: the agent stays healthy and answers
        bad_payloads = [b"", b"\xff\xfe", b"[1]", b'{"id": ""}', b"{" * 5000, b"x" * 300_000]
        for i in range(1000):
            kind = i % 4
            if kind == 0:
                fleet.send("ping", None, raw=bad_payloads[i % len(bad_payloads)], qos=0)
            elif kind == 1:
                fleet.send(f"nope-{i % 7}", f"flood-{i}", qos=0)
            elif kind == 2:
                fleet.send("ping", "p-1", qos=0)  # replayed
            else:
                fleet.send("erase", f"flood-{i}", {"device": 7}, qos=0)
        # what did not fit the queue was dropped: the fleet asks again until it is answered
        answered = None
        for n in range(30):
            fleet.send("ping", f"after-flood-{n}")
            try:
                answered = fleet.result(f"after-flood-{n}", timeout=2.0)
                break
            except TimeoutError:
                continue
        assert answered is not None and answered["ok"]
        fleet.send("status", "s-2")
        counters = fleet.result("s-2", timeout=60)["result"]["health"]["commands"]
        assert counters["received"] >= 1000 and counters["rolled_back"] == 1
        assert counters["failed"] + counters["dropped"] >= 1000
        assert proc.poll() is None
    finally:
        err = _stop(proc) if proc.poll() is None else proc.communicate()[1]
        watcher.close()
    assert "Traceback" not in err, err[-3000:]
    _gapless(tmp_path, watcher)


def test_sighup_reloads_during_the_stream_and_refuses_an_invalid_file(
    tmp_path: Path, mosquitto: LocalMosquitto
) -> None:
    cfg = _agent(tmp_path, mosquitto)
    watcher = Watcher(mosquitto.host, mosquitto.port, f"{ROOT_TOPIC}/#")
    proc = start_agent(cfg)
    good = cfg.read_text()
    try:
        wait_for_occupancy(watcher, 2)
        cfg.write_text(good.replace("update_interval_s = 10.0", "update_interval_s = 15.0"))
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: _reloads(watcher) >= 1, 30, "a health that counts the reload")
        cfg.write_text(good.replace("update_interval_s = 10.0", "update_interval_s = -3"))
        proc.send_signal(signal.SIGHUP)
        n = len(watcher.messages)
        wait_until(lambda: len(watcher.messages) > n + 50, 60, "events after the bad reload")
        assert proc.poll() is None
        assert _reloads(watcher) == 1
        # zones changed: tracking starts afresh, every device in a zone leaves first
        cfg.write_text(
            good.replace("update_interval_s = 10.0", "update_interval_s = 15.0").replace(
                "min_dwell_s = 1.0", "min_dwell_s = 2.0"
            )
        )
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: _reloads(watcher) >= 2, 30, "the second reload")
    finally:
        err = _stop(proc) if proc.poll() is None else proc.communicate()[1]
        watcher.close()
    assert "reload refused" in err and "presence.update_interval_s" in err, err[-3000:]
    assert "Traceback" not in err
    _gapless(tmp_path, watcher)


def _reloads(watcher: Watcher) -> int:
    found = 0
    for m in list(watcher.messages):
        if m.topic.endswith("/health") and m.payload:
            commands = json.loads(m.payload).get("commands")
            if commands:
                found = max(found, commands["reloads"])
    return found


def test_a_set_config_the_agent_never_confirmed_is_undone_at_the_next_start(
    tmp_path: Path, mosquitto: LocalMosquitto, fleet: Fleet
) -> None:
    """SIGKILL during the probation (a change that crashes the agent): the next start puts the
    previous configuration back before anything else and tells the request so."""
    cfg = _agent(tmp_path, mosquitto)
    watcher = Watcher(mosquitto.host, mosquitto.port, f"{ROOT_TOPIC}/#")
    proc = start_agent(cfg)
    try:
        wait_for_occupancy(watcher, 1)
        fleet.send("set-config", "c-kill", {"set": {"presence.exit_debounce_s": 9}})
        assert fleet.result("c-kill", "applied")["ok"]
        proc.kill()
        proc.communicate()
        pending = json.loads((tmp_path / "state" / "remote-config.json").read_text())
        assert pending["probation"]["request"] == "c-kill"
        proc = start_agent(cfg)
        undone = fleet.result("c-kill", "rolled_back", timeout=60)
        assert "stopped before confirming" in undone["result"]["reason"]
        overlay = json.loads((tmp_path / "state" / "remote-config.json").read_text())
        assert overlay["overrides"] == {} and overlay["probation"] is None
        fleet.send("get-config", "g-after")
        config = fleet.result("g-after")["result"]["config"]
        assert config["presence"]["exit_debounce_s"] == 5.0
    finally:
        if proc.poll() is None:
            _stop(proc)
        watcher.close()
