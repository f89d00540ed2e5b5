"""The real agent process, the simulated store, a real mosquitto: nothing committed is lost."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

from edge_agent.contract import model_for
from edge_agent.tools.mosquitto import LocalMosquitto
from tests.conftest import CONFIG_DIR
from tests.mqtt_watch import Received, Watcher

ROOT_TOPIC = "retail/store-0042/gw-demo-01"


def sim_config(
    tmp_path: Path,
    broker: LocalMosquitto | str,
    *,
    speed: float,
    duration: float | None,
    edits: Mapping[str, str] | None = None,
) -> Path:
    """The shipped example config, pointed at the simulated store, a temp dir and the broker
    (a URL, or a TOML list of them); ``edits`` are further replacements in the file's text."""
    if isinstance(broker, LocalMosquitto):
        broker = broker.url
    urls = broker if broker.startswith("[") else f'["{broker}"]'
    text = (CONFIG_DIR / "agent.toml").read_text(encoding="utf-8")
    replacements = {
        'state_dir = "/var/lib/edge-agent"': f'state_dir = "{tmp_path / "state"}"',
        'kind = "bleak"': 'kind = "sim"',
        'scenario = "store-demo.toml"': f'scenario = "{CONFIG_DIR / "store-demo.toml"}"',
        "speed = 1.0": f"speed = {speed}",
        "# duration_s = 600.0": f"duration_s = {duration}" if duration else "",
        'urls = ["mqtt://127.0.0.1:1883"]': f"urls = {urls}",
        "\ninterval_s = 30.0": "\ninterval_s = 1.0",  # [health], so that it is exercised
        "queue_size = 20000": f'queue_size = 20000\ntruth_log = "{tmp_path / "truth.jsonl"}"',
        **(edits or {}),
    }
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


def run_agent(cfg: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``edge-agent run`` to its end (a finite source); asserts it exits 0."""
    proc = subprocess.run(
        [sys.executable, "-m", "edge_agent", "run", "--config", str(cfg), *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def start_agent(cfg: Path) -> subprocess.Popen[str]:
    """``edge-agent run`` in the background, to be signalled."""
    return subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "run", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def committed(tmp_path: Path) -> tuple[int, int]:
    """(last seq committed, rows still waiting) from the outbox (the agent may be running)."""
    conn = sqlite3.connect(tmp_path / "state" / "outbox.sqlite", timeout=10)
    try:
        last = int(conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()[0])
        depth = int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        conn.close()
    return last, depth


def check_messages(messages: list[Received], last_seq: int) -> Counter[str]:
    """Every event seq 1..last_seq arrived; every payload validates; returns counts by type."""
    seqs: Counter[int] = Counter()
    types: Counter[str] = Counter()
    for msg in messages:
        assert msg.topic.startswith(ROOT_TOPIC + "/"), msg.topic
        data = json.loads(msg.payload)
        model = model_for(data["type"])
        model.model_validate(data)  # the contract
        types[data["type"]] += 1
        if data["type"] not in ("status", "health"):
            assert data["id"] == f"gw-demo-01:{data['seq']}"
            seqs[data["seq"]] += 1
    missing = set(range(1, last_seq + 1)) - set(seqs)
    assert not missing, f"{len(missing)} committed events never arrived, e.g. {sorted(missing)[:5]}"
    assert max(seqs) == last_seq
    return types


def wait_for_occupancy(watcher: Watcher, count: int, timeout: float = 60.0) -> None:
    """Until ``count`` occupancy messages arrived (the agent is well under way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(m.topic.endswith("/occupancy") for m in list(watcher.messages)) >= count:
            return
        time.sleep(0.2)
    raise TimeoutError(f"fewer than {count} occupancy messages in {timeout} s")


@contextlib.contextmanager
def agent_under_way(
    tmp_path: Path, broker: LocalMosquitto, occupancy: int
) -> Iterator[tuple[Path, Watcher, subprocess.Popen[str]]]:
    """An endless simulated run, started once the watcher listens and left once ``occupancy``
    messages arrived; the process is killed and the watcher closed whatever the test did."""
    cfg = sim_config(tmp_path, broker, speed=20.0, duration=None)
    watcher = Watcher(broker.host, broker.port, f"{ROOT_TOPIC}/#")
    proc = start_agent(cfg)
    try:
        wait_for_occupancy(watcher, occupancy)
        yield cfg, watcher, proc
    finally:
        proc.kill()
        proc.communicate()
        watcher.close()


def test_ten_simulated_minutes_reach_the_broker_without_gaps(
    tmp_path: Path, mosquitto: LocalMosquitto
) -> None:
    cfg = sim_config(tmp_path, mosquitto, speed=0, duration=600.0)
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
        "status",
        "health",
    )
    for kind in expected:
        assert types[kind] > 0, (kind, types)
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
