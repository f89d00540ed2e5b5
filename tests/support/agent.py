"""The agent as a process against a real mosquitto: start it, wait for it, check what reached
the broker against what it committed."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from edge_agent.contract import model_for
from edge_agent.tools.capacity import rss_mb as rss_mb  # the faults tests take it from here
from edge_agent.tools.mosquitto import LocalMosquitto
from tests.support.cli import run_cli, spawn_cli
from tests.support.configs import sim_config
from tests.support.mqtt_watch import Received, Watcher

ROOT_TOPIC = "retail/store-0042/gw-demo-01"
"""The shipped config's topic root."""


def run_agent(cfg: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``edge-agent run`` to its end (a finite source); asserts it exits 0."""
    return run_cli("run", "--config", str(cfg), *extra, timeout=timeout)


def start_agent(cfg: Path) -> subprocess.Popen[str]:
    """``edge-agent run`` in the background, to be signalled."""
    return spawn_cli("run", "--config", str(cfg))


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


def figure(name: str, **values: object) -> None:
    """One line of figures for the closing note."""
    print(f"\nFIGURE {name}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


def event_seqs(messages: list[Received]) -> Counter[int]:
    """How many times each event seq arrived (status and health left out)."""
    seqs: Counter[int] = Counter()
    for m in messages:
        data = json.loads(m.payload)
        if data["type"] not in ("status", "health"):
            seqs[data["seq"]] += 1
    return seqs


def assert_order_per_device(messages: list[Received]) -> None:
    """On every event topic (one device, one zone), first arrivals come in ``seq`` order."""
    seen: set[int] = set()
    last: dict[str, int] = {}
    for m in messages:
        data = json.loads(m.payload)
        if data["type"] in ("status", "health") or m.retain or data["seq"] in seen:
            continue
        seen.add(data["seq"])
        assert data["seq"] > last.get(m.topic, 0), (m.topic, last[m.topic], data["seq"])
        last[m.topic] = data["seq"]


def duplicates(seqs: Counter[int]) -> int:
    return sum(n - 1 for n in seqs.values())


def healths(messages: list[Received]) -> list[dict[str, Any]]:
    decoded = (json.loads(m.payload) for m in messages)
    return [p for p in decoded if p["type"] == "health"]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until true; returns the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(f"{what}: not within {timeout} s")


def wait_for_health(
    watcher: Watcher, test: Callable[[dict[str, Any]], bool], timeout: float
) -> None:
    """Until a ``health`` message passes ``test``."""

    def seen() -> bool:
        return any(p["type"] == "health" and test(p) for p in watcher.payloads())

    wait_until(seen, timeout, "a health message that passes the test")


def delivered_upto(watcher: Watcher, seq: int) -> bool:
    got = event_seqs(list(watcher.messages))
    return all(s in got for s in range(1, seq + 1))


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM, expect a clean exit; returns stderr."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    return err


@contextlib.contextmanager
def killed_at_exit(proc: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


class StderrTail:
    """Collects a process's stderr lines in a thread (so the pipe never fills)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stderr is not None
        self._stream = proc.stderr
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)
