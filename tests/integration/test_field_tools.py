"""``edge-agent record``, ``replay`` and ``scan``: the field engineer's tools, run as commands."""

from __future__ import annotations

import csv
import json
import math
import re
import stat
import subprocess
from pathlib import Path

import pytest

from edge_agent.config import load_config, read_calibration
from edge_agent.contract import model_for
from edge_agent.runtime.sources.replay import read_adverts
from edge_agent.tools.mosquitto import LocalMosquitto
from edge_agent.tools.record import registered_addresses
from tests.support.agent import ROOT_TOPIC
from tests.support.cli import run_cli, spawn_cli
from tests.support.configs import record_store, sim_config
from tests.support.mqtt_watch import Watcher
from tests.support.paths import TRACKS

MAC = re.compile(r"[0-9A-F]{2}(:[0-9A-F]{2}){5}", re.IGNORECASE)


def fast_sim(tmp_path: Path) -> Path:
    """The shipped config on the simulated store, as fast as the CPU allows."""
    return sim_config(tmp_path, "mqtt://127.0.0.1:1", speed=0.0, duration=None)


def test_replay_of_a_shared_track_writes_the_estimates_file(tmp_path: Path) -> None:
    track = TRACKS / "straight_01.csv"
    out = tmp_path / "out.jsonl"
    run_cli("replay", str(track), "--estimates", str(out))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    samples = [x for x in lines if "receiver" in x]
    fused = [x for x in lines if "nearest_receiver" in x]
    assert len(samples) == len(list(read_adverts(track)))
    assert set(samples[0]) == {
        "t",
        "receiver",
        "device",
        "rssi",
        "rssi_smoothed",
        "distance_m",
        "band",
    }
    assert {s["band"] for s in samples} <= {"immediate", "near", "far", "gone"}
    assert all(s["distance_m"] > 0 for s in samples)
    assert fused == []  # no receiver positions: no floor plan, nothing fused
    assert not MAC.search(out.read_text()), "an address leaked into the estimates"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    with_positions = tmp_path / "xy.jsonl"
    run_cli(
        "replay",
        str(track),
        "--estimates",
        str(with_positions),
        "--receivers",
        str(TRACKS / "receivers.json"),
    )
    xy = [json.loads(line) for line in with_positions.read_text().splitlines()]
    fused = [p for p in xy if "nearest_receiver" in p]
    # the positions make a floor plan: fused lines from the engine, a few per second
    assert set(fused[0]) == {"t", "device", "nearest_receiver", "x", "y", "error_m"}
    assert len(fused) > 100 and all(f["device"] == samples[0]["device"] for f in fused)
    assert all(-1.5 <= f["x"] <= 19.5 and -1.5 <= f["y"] <= 19.5 for f in fused)
    truth = {round(float(r["t"]), 1): float(r["truth_x"]) for r in csv.DictReader(track.open())}
    late = [f for f in fused if f["t"] - fused[0]["t"] > 10]
    err = [abs(f["x"] - truth.get(round(f["t"] - 0.1, 1), f["x"])) for f in late]
    assert sum(err) / len(err) < 3.0  # the track walks along x: fusion follows it


def test_record_pseudonymises_addresses_and_replay_twice_gives_identical_events(
    tmp_path: Path,
) -> None:
    cfg = fast_sim(tmp_path)
    rec = tmp_path / "rec.jsonl"
    out = run_cli("record", str(rec), "--config", str(cfg), "--duration", "120").stdout
    assert "pseudonymised" in out
    assert stat.S_IMODE(rec.stat().st_mode) == 0o600
    raw = tmp_path / "raw.jsonl"
    record_store(raw, 120)
    real = {a.address for a in read_adverts(raw)}
    recorded = list(read_adverts(rec))
    assert len(recorded) > 1000
    masked = {a.address for a in recorded}
    registered = registered_addresses(load_config(cfg))
    assert registered, "the shipped config registers sensors by address"
    assert real & masked == registered & real, "an unregistered address is in the recording"
    assert len(masked) == len(real)
    # The class of a random address survives (the identity stage classifies by it).
    assert {int(a.address[:2], 16) >> 6 for a in recorded if a.address_type == "random"} == {
        int(a.address[:2], 16) >> 6 for a in read_adverts(raw) if a.address_type == "random"
    }

    first, second = tmp_path / "e1.jsonl", tmp_path / "e2.jsonl"
    run_cli("replay", str(rec), "--config", str(cfg), "--events", str(first))
    run_cli("replay", str(rec), "--config", str(cfg), "--events", str(second))
    events = first.read_text().splitlines()
    assert {json.loads(e)["type"] for e in events} >= {"enter", "exit", "reading", "occupancy"}
    assert first.read_bytes() == second.read_bytes()

    kept = tmp_path / "kept.jsonl"
    run_cli("record", str(kept), "--config", str(cfg), "--count", "500", "--raw-addresses")
    assert {a.address for a in read_adverts(kept)} <= real


def test_replay_can_publish(tmp_path: Path, mosquitto: LocalMosquitto) -> None:
    rec = tmp_path / "rec.jsonl"
    record_store(rec, 60)
    cfg = sim_config(tmp_path, mosquitto, speed=0.0, duration=None)
    watcher = Watcher(mosquitto.host, mosquitto.port, f"{ROOT_TOPIC}-replay/#")
    try:
        run_cli("replay", str(rec), "--config", str(cfg), "--publish")
        msgs = watcher.settle()
    finally:
        watcher.close()
    types = set()
    for msg in msgs:
        if msg.payload:
            payload = json.loads(msg.payload)
            model_for(payload["type"]).model_validate(payload)
            types.add(payload["type"])
    assert {"enter", "occupancy", "status"} <= types
    # It published as a gateway of its own, from a state directory of its own, and left no
    # retained status behind when it ended.
    assert not (tmp_path / "state").exists()
    late = Watcher(mosquitto.host, mosquitto.port, f"{ROOT_TOPIC}-replay/status")
    try:
        assert [m for m in late.settle() if m.retain and m.payload] == []
    finally:
        late.close()


def test_scan_json_names_devices_as_the_privacy_policy_does(tmp_path: Path) -> None:
    cfg = fast_sim(tmp_path)
    # a refresh every 0.5 s: read them until the store has filled the table (on a busy host
    # the simulated store may take a while to get going), then stop the scan
    proc = spawn_cli(
        "scan", "--config", str(cfg), "--json", "--duration", "120", "--interval", "0.5",
        stdout=subprocess.PIPE,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if len(lines) >= 2 and len(json.loads(line)) > 10:
                break
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    out = "".join(lines)
    rows = json.loads(lines[-1])
    assert len(lines) >= 2 and len(rows) > 10, out[-2000:]
    assert not MAC.search(out), "scan showed an address without --show-addresses"
    kinds = {r["kind"] for r in rows}
    assert {"cart", "staff", "sensor"} <= kinds
    assert {r["band"] for r in rows} <= {"immediate", "near", "far", "gone"}
    assert any(r["summary"].startswith("iBeacon") for r in rows)
    assert any("temperature" in r["summary"] for r in rows)
    # nearest first; a device no receiver heard lately (in JSON: null) has no distance: last
    distances = [math.inf if r["distance_m"] is None else r["distance_m"] for r in rows]
    assert distances == sorted(distances)
    assert all(r["band"] == "gone" for r in rows if r["distance_m"] is None)
    # the shipped config has a floor plan: carts are placed on it, in its zones; sensors are
    # heard, not placed
    carts = [r for r in rows if r["kind"] == "cart" and r["x"] is not None]
    assert carts and all(-1 <= r["x"] <= 37 and -1 <= r["y"] <= 25 for r in carts)
    assert {r["zone"] for r in carts} - {None} <= {"entrance", "produce", "checkout", "dairy",
                                                  "bakery", "frozen"}  # fmt: skip
    assert all(r["x"] is None for r in rows if r["kind"] == "sensor")
    shown = run_cli(
        "scan", "--config", str(cfg), "--json", "--duration", "1", "--show-addresses"
    ).stdout
    assert all(MAC.fullmatch(r["address"]) for r in json.loads(shown.splitlines()[-1]))


@pytest.mark.parametrize("sort", ["rssi", "id", "last"])
def test_scan_sorts(tmp_path: Path, sort: str) -> None:
    cfg = fast_sim(tmp_path)
    out = run_cli("scan", "--config", str(cfg), "--json", "--duration", "1", "--sort", sort)
    rows = json.loads(out.stdout.splitlines()[-1])
    key = {
        "rssi": lambda r: -r["rssi_smoothed"],
        "id": lambda r: r["id"],
        "last": lambda r: r["last_seen_s"],
    }[sort]
    assert [key(r) for r in rows] == sorted(key(r) for r in rows)


def test_replay_of_a_bad_file_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("t,receiver,address,rssi\n1.0,rx,AA:BB:CC:DD:EE:FF,-60\n2.0,rx,AA:BB,oops\n")
    proc = run_cli("replay", str(bad), expect=1)
    assert "line 3" in proc.stderr and "Traceback" not in proc.stderr


def test_calibrate_interactive_on_the_command_line(tmp_path: Path) -> None:
    """The field session through the command: prompts on stdout, Enter per distance on stdin,
    the simulated store as the radio (staff-ana stays where she is, so only the flow and the
    file are checked here; the fit itself is in test_calibrate)."""
    cfg = sim_config(tmp_path, "mqtt://127.0.0.1:1", speed=5.0, duration=None)
    out = tmp_path / "cal.toml"
    base = ["calibrate", "--interactive", "-c", str(cfg)]
    proc = run_cli(
        *base, "--device", "staff-ana", "--distances", "1,2", "--seconds", "2", "--out",
        str(out), input="\n\n", timeout=120,
    )  # fmt: skip
    assert proc.stdout.count("press Enter") == 2 and "adverts, median" in proc.stdout
    assert out.read_text().count("[[calibration.receivers]]") == 1
    (fitted,) = read_calibration(out).receivers  # the agent reads what it wrote
    assert fitted.id.startswith("rx-")
    bad = run_cli(*base, "--device", "staff-ana", "--distances", "1,x", "--out", str(out), expect=1)
    assert "not a number" in bad.stderr
