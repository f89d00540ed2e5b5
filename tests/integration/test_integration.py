"""The real agent process, the simulated store, a real mosquitto: nothing committed is lost."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

from edge_agent.tools.mosquitto import LocalMosquitto, free_port
from tests.support.agent import (
    ROOT_TOPIC,
    StderrTail,
    agent_under_way,
    check_messages,
    committed,
    killed_at_exit,
    run_agent,
    start_agent,
    stop,
    wait_for_health,
    wait_until,
)
from tests.support.cli import spawn_cli
from tests.support.configs import sim_config
from tests.support.mqtt_watch import Watcher


def test_ten_simulated_minutes_reach_the_broker_without_gaps(
    tmp_path: Path, mosquitto: LocalMosquitto
) -> None:
    prom = tmp_path / "edge_agent.prom"
    cfg = sim_config(
        tmp_path,
        mosquitto,
        speed=0,
        duration=600.0,
        edits={"\ninterval_s = 1.0": f'\ninterval_s = 1.0\nprometheus_textfile = "{prom}"'},
    )
    watcher = Watcher(mosquitto.host, mosquitto.port, f"{ROOT_TOPIC}/#")
    try:
        run_agent(cfg)
        messages = watcher.settle()
    finally:
        watcher.close()
    last_seq, depth = committed(tmp_path)
    assert depth == 0
    assert last_seq > 1000
    types = check_messages(messages, last_seq)
    expected = (
        "enter",
        "update",
        "exit",
        "occupancy",
        "reading",
        "beacon_health",
        "moment",
        "status",
        "health",
    )
    for kind in expected:
        assert types[kind] > 0, (kind, types)
    # the health counters as a node-exporter textfile, with the final figures
    samples = prom.read_text(encoding="utf-8").splitlines()
    sample = re.compile(r'^edge_agent_[a-z0-9_]+\{(?:[a-z]+="[^"]*",?)+\} -?[0-9.e+]+$')
    assert all(line.startswith("# TYPE edge_agent_") or sample.match(line) for line in samples)
    adverts = next(x for x in samples if x.startswith("edge_agent_adverts_total{"))
    assert int(adverts.rsplit(" ", 1)[1]) > 100_000
    assert 'edge_agent_outbox_depth{gateway="gw-demo-01"}' in prom.read_text()
    status = [json.loads(m.payload)["state"] for m in messages if m.topic.endswith("/status")]
    assert status == ["online", "offline"]  # a clean stop: no last will on top
    truth = [json.loads(line) for line in (tmp_path / "truth.jsonl").read_text().splitlines()]
    assert {t["t"] for t in truth} == set(map(float, range(600)))  # every second of the run
    assert {"cart-1", "staff-ana"} <= {t["device"] for t in truth}


def test_sigterm_commits_and_delivers_then_says_offline(
    tmp_path: Path, mosquitto: LocalMosquitto
) -> None:
    with agent_under_way(tmp_path, mosquitto, occupancy=6) as (_, watcher, proc):
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err[-3000:]
        messages = watcher.settle()
    last_seq, depth = committed(tmp_path)
    assert depth == 0 and last_seq > 0
    check_messages(messages, last_seq)
    status = [json.loads(m.payload)["state"] for m in messages if m.topic.endswith("/status")]
    assert status == ["online", "offline"]  # a clean stop: no last will on top
    assert "stopped" in err


def test_events_wait_in_the_outbox_until_a_broker_is_there(tmp_path: Path) -> None:
    """No broker during the run: everything stays committed; the next start delivers it."""
    broker = LocalMosquitto()  # not started yet: its port is closed
    cfg = sim_config(tmp_path, broker, speed=0, duration=60.0)
    run_agent(cfg, "--drain-timeout", "1")
    last_seq, depth = committed(tmp_path)
    assert depth == last_seq > 0
    cfg.write_text(cfg.read_text().replace("duration_s = 60.0", "duration_s = 0.5"))
    with broker:
        watcher = Watcher(broker.host, broker.port, f"{ROOT_TOPIC}/#")
        try:
            run_agent(cfg)
            messages = watcher.settle()
        finally:
            watcher.close()
    new_last, depth = committed(tmp_path)
    assert depth == 0
    check_messages(messages, new_last)


def test_sigkill_leaves_offline_will_and_loses_nothing_committed(
    tmp_path: Path, mosquitto: LocalMosquitto
) -> None:
    with agent_under_way(tmp_path, mosquitto, occupancy=12) as (cfg, watcher, proc):
        proc.kill()  # SIGKILL: no clean shutdown, so the broker sends the last will
        proc.communicate(timeout=10)
        first = watcher.settle()
        statuses = [json.loads(m.payload)["state"] for m in first if m.topic.endswith("/status")]
        assert statuses == ["online", "offline"]
        # The next start sends whatever was committed and not yet acknowledged.
        cfg.write_text(cfg.read_text().replace("speed = 20.0", "speed = 0\nduration_s = 0.5"))
        run_agent(cfg)
        messages = watcher.settle()
    last_seq, depth = committed(tmp_path)
    assert depth == 0
    check_messages(messages, last_seq)


def test_health_warns_of_receivers_heard_without_a_zone(
    tmp_path: Path, mosquitto: LocalMosquitto
) -> None:
    """rx-frozen is left out of [[receivers]]: what it hears places no one, and every health
    message says so (a gateway that publishes no presence must not look like an empty store)."""
    edits = {'[[receivers]]\nid = "rx-frozen"\nzone = "frozen"\nx = 30.0\ny = 18.0\nz = 2.6\n': ""}
    cfg = sim_config(tmp_path, mosquitto, speed=5.0, duration=None, edits=edits)
    watcher = Watcher(mosquitto.host, mosquitto.port, f"{ROOT_TOPIC}/health")
    proc = start_agent(cfg)
    try:
        wait_for_health(watcher, lambda h: any("rx-frozen" in w for w in h["warnings"]), 60)
    finally:
        stop(proc)
        watcher.close()
    warning = next(w for p in watcher.payloads() for w in p["warnings"] if "rx-frozen" in w)
    assert warning == (
        "receiver 'rx-frozen' is heard but is not on the floor plan: its adverts place no one"
    )


def test_run_warns_at_start_of_adapters_without_a_zone(tmp_path: Path) -> None:
    cfg = sim_config(
        tmp_path,
        f"mqtt://127.0.0.1:{free_port()}",
        speed=1.0,
        duration=None,
        edits={'kind = "sim"': 'kind = "bleak"', 'id = "hci0"': 'id = "hci9"'},
    )
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path / 'no-bus'}"}
    with killed_at_exit(spawn_cli("run", "--config", str(cfg), env=env)) as proc:
        tail = StderrTail(proc)
        wait_until(lambda: "no [[receivers]] entry is named 'hci0'" in tail.text(), 60, "warning")
    assert "WARNING" in tail.text()
