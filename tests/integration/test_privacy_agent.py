"""Privacy through the real agent process: no simulated address anywhere (outbox file, log, MQTT)
across a day boundary; consent, erasure and retention take effect in the running agent."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from edge_agent.tools.mosquitto import LocalMosquitto, free_port
from firmware_sim.store import StoreSim, load_scenario, simulate
from tests.support.agent import (
    ROOT_TOPIC,
    StderrTail,
    check_messages,
    committed,
    run_agent,
    wait_for_health,
    wait_until,
)
from tests.support.cli import run_cli, spawn_cli
from tests.support.configs import sim_config
from tests.support.mqtt_watch import Watcher
from tests.support.paths import CONFIG_DIR

MIDNIGHT = datetime(2026, 11, 24, tzinfo=UTC).timestamp()
REGISTERED = "# Registered devices keep these ids."


def notations(address: str) -> list[bytes]:
    """An address in every common spelling (lower case; haystacks are lowered too)."""
    octets = address.lower().split(":")
    rev = octets[::-1]
    plain = "".join(octets)
    out = {
        ":".join(octets),
        "-".join(octets),
        plain,
        f"{plain[0:4]}.{plain[4:8]}.{plain[8:12]}",  # Cisco style
        " ".join(octets),
        ":".join(rev),  # byte order as on the air (little-endian)
        "".join(rev),
    }
    raw = bytes.fromhex(plain)
    return [s.encode() for s in out] + [raw, raw[::-1]]


def address_hits(addresses: Iterable[str], haystacks: dict[str, bytes]) -> list[str]:
    """``where: notation`` for every address found in any haystack."""
    lowered = {name: data.lower() for name, data in haystacks.items()}
    hits = []
    for address in addresses:
        for needle in notations(address):
            for name, data in lowered.items():
                # raw bytes are matched as they are (lowering may have changed them)
                target = haystacks[name] if len(needle) == 6 else data
                if needle in target:
                    hits.append(f"{name}: {needle!r}")
    return hits


def _day_config(tmp_path: Path, broker: str, duration: float, start_wall: float) -> Path:
    tmp_path.mkdir(exist_ok=True)
    scenario = tmp_path / "store.toml"
    text = (CONFIG_DIR / "store-demo.toml").read_text(encoding="utf-8")
    scenario.write_text(text.replace("seed = 7\n", f"seed = 7\nstart_wall = {start_wall}\n", 1))
    cfg = sim_config(
        tmp_path,
        broker,
        speed=0,
        duration=duration,
        edits={'scenario = "store-demo.toml"': f'scenario = "{scenario}"'},
    )
    text = cfg.read_text(encoding="utf-8")
    cfg.write_text(text[: text.index(REGISTERED)], encoding="utf-8")  # sensors unregistered
    return cfg


def test_no_address_leaves_and_pseudonyms_change_at_midnight(tmp_path: Path) -> None:
    start, duration = MIDNIGHT - 90.0, 180.0
    dead = f"mqtt://127.0.0.1:{free_port()}"  # first run: nothing is delivered, all is kept
    cfg = _day_config(tmp_path, dead, duration, start)
    first = run_agent(cfg, "--log-level", "DEBUG", "--drain-timeout", "1")
    last_seq, depth = committed(tmp_path)
    assert depth == last_seq > 500
    state = tmp_path / "state"
    files = {p.name: p.read_bytes() for p in state.iterdir() if p.is_file()}
    assert "outbox.sqlite" in files

    with LocalMosquitto() as broker:  # second run: a moment of the store, and the backlog sent
        watcher = Watcher(broker.host, broker.port, "#")
        try:
            cfg2 = _day_config(tmp_path / "second", broker.url, 0.5, start)
            cfg2.write_text(
                cfg2.read_text().replace(str(tmp_path / "second" / "state"), str(state))
            )
            second = run_agent(cfg2, "--log-level", "DEBUG")
            got = watcher.settle()
        finally:
            watcher.close()
    check_messages([m for m in got if m.topic.startswith(ROOT_TOPIC)], committed(tmp_path)[0])

    spec = load_scenario(tmp_path / "store.toml")
    addresses = {
        a.address for _, adverts, _ in simulate(StoreSim(spec), duration, start) for a in adverts
    }
    assert len(addresses) > 30  # carts, badges, sensors and every shopper's phone
    haystacks = {
        **{f"state/{name}": data for name, data in files.items()},
        "log, first run": (first.stdout + first.stderr).encode(),
        "log, second run": (second.stdout + second.stderr).encode(),
        "mqtt": b"\n".join(m.topic.encode() + b" " + m.payload for m in got),
    }
    hits = address_hits(addresses, haystacks)
    print(
        f"\nFIGURE privacy scan: {len(addresses)} addresses x {len(notations(min(addresses)))}"
        f" notations in {sum(map(len, haystacks.values())):,} bytes: {len(hits)} hits"
    )
    assert hits == []

    # the anonymous aggregates of the interval that ended at midnight hold no id of any kind
    ids = {
        json.loads(m.payload)["device"]
        for m in got
        if m.payload and "device" in json.loads(m.payload)
    }
    aggregates = [m for m in got if m.payload and json.loads(m.payload)["type"] == "aggregate"]
    assert {json.loads(m.payload)["kind"] for m in aggregates} == {
        "flow",
        "dwell",
        "visits",
        "visit_length",
    }
    assert ids and not [i for i in ids for m in aggregates if i.encode() in m.payload]
    assert not [m for m in got if b'"subject":"p-' in m.payload]  # no pseudonym in a moment

    before: dict[str, set[str]] = {"reading": set(), "enter": set()}
    after: dict[str, set[str]] = {"reading": set(), "enter": set()}
    for m in got:
        data = json.loads(m.payload) if m.payload else {}
        if data.get("type") not in before or data["seq"] > last_seq:
            continue
        ts = datetime.fromisoformat(data["ts"].replace("Z", "+00:00")).timestamp()
        if data["device"].startswith("p-"):
            (before if ts < MIDNIGHT else after)[data["type"]].add(data["device"])
    # five unregistered sensors: one pseudonym each before midnight, a new one each after
    assert len(before["reading"]) == len(after["reading"]) == 5, (before, after)
    assert before["reading"].isdisjoint(after["reading"])
    assert before["enter"] and after["enter"] and before["enter"].isdisjoint(after["enter"])


def _outbox_rows(tmp_path: Path, device: str) -> list[tuple[int, float]]:
    conn = sqlite3.connect(tmp_path / "state" / "outbox.sqlite", timeout=10)
    try:
        return conn.execute(
            "SELECT seq, created FROM events WHERE topic LIKE ?", (f"%/{device}%",)
        ).fetchall()
    finally:
        conn.close()


def _cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if args[0] == "erase":
        return run_cli(*args, "--config", str(cfg), timeout=60)
    return run_cli(args[0], "--config", str(cfg), *args[1:], timeout=60)


def _running_agent(cfg: Path) -> tuple[subprocess.Popen[str], StderrTail]:
    proc = spawn_cli("run", "--config", str(cfg))
    tail = StderrTail(proc)
    sock = cfg.parent / "state" / "control.sock"
    wait_until(sock.exists, 60, "control socket")
    return proc, tail


def test_consent_and_revoke_in_the_running_agent(tmp_path: Path) -> None:
    """A store sensor (public address, unregistered: pseudonymous) is consented under a stable
    id while the agent runs (as an asset, so that it is located too), then revoked: its buffered
    events go with it."""
    dead = f"mqtt://127.0.0.1:{free_port()}"
    # a pinned midday start: no key rotation can fall inside the test, whenever it runs
    cfg = _day_config(tmp_path, dead, 100_000.0, 1_772_442_000.0)  # 2026-03-02 09:00 UTC
    cfg.write_text(cfg.read_text().replace("speed = 0", "speed = 5"))
    proc, tail = _running_agent(cfg)
    try:
        out = _cli(cfg, "consent", "add", "a4:c1:38:00:00:01", "--id", "fridge-consented",
                   "--kind", "asset").stdout  # fmt: skip
        assert "applied by the running agent" in out
        wait_until(lambda: len(_outbox_rows(tmp_path, "fridge-consented")) >= 2, 60, "rows")
        listed = _cli(cfg, "consent", "list").stdout
        assert "fridge-consented" in listed and "A4:C1:38" not in listed.upper()
        out = _cli(cfg, "consent", "revoke", "fridge-consented").stdout
        assert "consent revoked: fridge-consented;" in out
        removed = int(out.split("; ")[1].split()[0])
        assert removed >= 2
        time.sleep(2.0)  # the device goes on advertising: now under a pseudonym again
        assert _outbox_rows(tmp_path, "fridge-consented") == []
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(30)
    print(f"\nFIGURE consent revoke: {removed} buffered events removed, agent kept running")
    assert "revoked" in tail.text()


def test_erase_live_then_offline_leaves_no_trace(tmp_path: Path) -> None:
    dead = f"mqtt://127.0.0.1:{free_port()}"
    cfg = sim_config(tmp_path, dead, speed=5.0, duration=None)
    proc, tail = _running_agent(cfg)
    try:
        wait_until(lambda: len(_outbox_rows(tmp_path, "staff-ana")) >= 1, 60, "rows")
        erased_at = time.time()
        out = _cli(cfg, "erase", "staff-ana").stdout
        assert out.startswith("erased: ") and "1 tracked device(s) forgotten" in out
        assert int(out.split()[1]) >= 1
        assert [r for r in _outbox_rows(tmp_path, "staff-ana") if r[1] <= erased_at] == []
    finally:
        proc.terminate()
        proc.wait(30)
    assert proc.returncode == 0, tail.text()[-2000:]
    # no agent now: erase works on the file itself, and leaves no byte of the device behind
    assert _outbox_rows(tmp_path, "staff-ana") or _outbox_rows(tmp_path, "staff-ben")
    for device in ("staff-ana", "staff-ben"):
        out = _cli(cfg, "erase", device).stdout
        assert out.startswith("erased (no agent running): ")
    state = tmp_path / "state"
    for path in state.glob("outbox.sqlite*"):
        data = path.read_bytes()
        assert b"staff-ana" not in data and b"staff-ben" not in data, path.name
    assert b"staff-cem" in (state / "outbox.sqlite").read_bytes()  # the others are kept


def test_retention_drops_old_personal_events_and_counts_them(tmp_path: Path) -> None:
    port = free_port()
    cfg = sim_config(tmp_path, f"mqtt://127.0.0.1:{port}", speed=10.0, duration=None,
                     edits={"retention_s = 86400.0": "retention_s = 4.0"})  # fmt: skip
    proc, tail = _running_agent(cfg)
    try:
        time.sleep(12.0)  # broker down: everything is buffered, the old gets dropped

        def oldest(where: str) -> float:
            conn = sqlite3.connect(tmp_path / "state" / "outbox.sqlite", timeout=10)
            try:
                return float(conn.execute(f"SELECT min(created) FROM events {where}").fetchone()[0])
            finally:
                conn.close()

        now = time.time()
        personal = now - oldest("WHERE type != 'occupancy'")
        aggregate = now - oldest("WHERE type = 'occupancy'")
        assert personal <= 4.0 + 4.0 / 4 + 1.5, personal  # retention, its check interval, slack
        assert aggregate >= 7.0  # zone occupancy is not about anyone: kept
        with LocalMosquitto(port=port) as broker:
            watcher = Watcher(broker.host, broker.port, f"{ROOT_TOPIC}/health")
            try:
                wait_for_health(watcher, lambda h: bool(h["outbox"]["evicted"]), 60)
                evicted = json.loads(watcher.messages[-1].payload)["outbox"]["evicted"]
            finally:
                watcher.close()
    finally:
        proc.terminate()
        proc.wait(30)
    dropped = {k: v for k, v in evicted.items() if k.startswith("retention:")}
    print(f"\nFIGURE retention 4 s: oldest personal event {personal:.1f} s, dropped {dropped}")
    personal_types = ("enter", "update", "exit", "reading", "beacon_health", "moment")
    assert dropped and set(dropped) <= {f"retention:{t}" for t in personal_types}
    assert tail.text().count("Traceback") == 0
