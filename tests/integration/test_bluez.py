"""``edge-agent run`` scanning through the real bleak BlueZ backend, against the virtual BlueZ on
a private dbus-daemon: events reach a real mosquitto, and the radio heals itself when BlueZ is
killed and restarted, when an adapter is unplugged and plugged back, and when one goes silent."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.contract import model_for
from edge_agent.tools.mosquitto import LocalMosquitto
from firmware_sim.dbus import PrivateBus
from tests.support.agent import ROOT_TOPIC, StderrTail, stop, wait_until
from tests.support.cli import run_cli, spawn_cli
from tests.support.configs import sim_config
from tests.support.mqtt_watch import Watcher
from tests.support.virtual_bluez import BluezProcess, bleak_edits, control

RESUME_LIMIT_S = 30.0


@pytest.fixture
def bus() -> Iterator[PrivateBus]:
    """A private dbus-daemon standing in for the system bus."""
    with PrivateBus() as b:
        yield b


class Run:
    """The agent scanning through bleak, the virtual BlueZ, and a watcher on the broker."""

    def __init__(
        self,
        tmp_path: Path,
        broker: LocalMosquitto,
        bus: PrivateBus,
        *bluez_args: str,
        adapters: str = "hci0,hci1",
        **edits: Any,
    ) -> None:
        self.bus = bus
        self.bluez = BluezProcess(bus, adapters, *bluez_args).start()
        cfg = sim_config(tmp_path, broker, speed=1.0, duration=None, edits=bleak_edits(**edits))
        self.watcher = Watcher(broker.host, broker.port, f"{ROOT_TOPIC}/#")
        self.agent = spawn_cli("run", "--config", str(cfg), env=bus.environ())
        self.stderr = StderrTail(self.agent)

    def health(self) -> dict[str, Any] | None:
        """The latest health message."""
        latest = [p for p in self.watcher.payloads() if p["type"] == "health"]
        return latest[-1] if latest else None

    def lane(self, receiver: str) -> dict[str, Any]:
        """A receiver's entry in the latest health (empty before the first)."""
        h = self.health()
        for lane in h["adapters"] if h else ():
            if lane["receiver"] == receiver:
                return dict(lane)
        return {}

    def until(self, test: Callable[[], bool], timeout: float, what: str) -> float:
        """Wait (returns when it held), failing with the agent's log."""
        try:
            return wait_until(test, timeout, what)
        except TimeoutError:
            pytest.fail(
                f"{what}: not within {timeout} s\nhealth: {self.health()}\n"
                f"agent log:\n{self.stderr.text()[-4000:]}"
            )

    def adverts(self, receiver: str) -> int:
        return int(self.lane(receiver).get("adverts", 0))

    def grows(self, receiver: str, timeout: float, what: str) -> float:
        """Wait until the receiver's advert count grows past what health shows now."""
        base = self.adverts(receiver)
        return self.until(lambda: self.adverts(receiver) > base + 5, timeout, what)

    def close(self) -> str:
        """Stop the agent (it must exit cleanly), the virtual BlueZ and the watcher."""
        try:
            assert self.agent.poll() is None, "the agent exited:\n" + self.stderr.text()[-3000:]
            stop(self.agent)
            return self.stderr.text()
        finally:
            if self.agent.poll() is None:
                self.agent.kill()
            self.bluez.stop()
            self.watcher.close()


@pytest.fixture
def run(tmp_path: Path, mosquitto: LocalMosquitto, bus: PrivateBus) -> Iterator[Callable[..., Run]]:
    runs: list[Run] = []

    def start(*bluez_args: str, **kwargs: Any) -> Run:
        r = Run(tmp_path, mosquitto, bus, *bluez_args, **kwargs)
        runs.append(r)
        return r

    yield start
    for r in runs:
        if r.agent.poll() is None:
            r.agent.kill()
            r.agent.wait()
        r.bluez.stop()


def scanning(r: Run, *receivers: str) -> Callable[[], bool]:
    return lambda: all(
        r.lane(x).get("state") == "scanning" and r.lane(x).get("adverts", 0) > 0 for x in receivers
    )


def test_events_reach_mosquitto_through_bleak_and_the_virtual_bluez(
    run: Callable[..., Run],
) -> None:
    r = run()
    r.until(scanning(r, "hci0", "hci1"), 30, "both adapters scanning with adverts")

    def entered(zone: str) -> bool:
        return any(p["type"] == "enter" and p.get("zone") == zone for p in r.watcher.payloads())

    r.until(lambda: entered("entrance") and entered("produce"), 60, "enter events in both zones")
    log = r.close()
    msgs = r.watcher.messages
    assert msgs
    for msg in msgs:
        if msg.payload:
            model_for(json.loads(msg.payload)["type"]).model_validate_json(msg.payload)
    lanes = {lane["receiver"]: lane for lane in r.health()["adapters"]}  # type: ignore[index]
    assert {lanes["hci0"]["mode"], lanes["hci1"]["mode"]} == {"active"}
    assert lanes["hci0"]["start_failures"] == lanes["hci0"]["watchdog_trips"] == 0
    assert "Traceback" not in log


def test_bluez_killed_and_restarted_scanning_resumes_without_a_process_restart(
    run: Callable[..., Run],
) -> None:
    r = run()
    r.until(scanning(r, "hci0", "hci1"), 30, "both adapters scanning with adverts")
    pid = r.agent.pid
    r.bluez.kill()
    r.until(
        lambda: (
            r.lane("hci0").get("bluez_restarts") == 1 and r.lane("hci0").get("state") == "waiting"
        ),
        15,
        "the agent noticing BlueZ is gone",
    )
    back = time.monotonic()
    r.bluez.start()
    resumed = max(
        r.grows("hci0", RESUME_LIMIT_S, "adverts on hci0 after the restart"),
        r.grows("hci1", RESUME_LIMIT_S, "adverts on hci1 after the restart"),
    )
    assert resumed - back <= RESUME_LIMIT_S
    print(f"scanning resumed {resumed - back:.1f} s after BlueZ came back")
    assert r.agent.poll() is None and r.agent.pid == pid
    log = r.close()
    assert "BlueZ went away" in log and "BlueZ restarted" in log


def test_hci0_unplugged_keeps_scanning_on_hci1_and_plugging_it_back_resumes_it(
    run: Callable[..., Run],
) -> None:
    r = run()
    r.until(scanning(r, "hci0", "hci1"), 30, "both adapters scanning with adverts")
    control(r.bus, "RemoveAdapter", "hci0")
    r.until(lambda: r.lane("hci0").get("state") == "waiting", 15, "hci0 waiting after unplug")
    assert r.lane("hci0")["adapter_lost"] == 1
    r.grows("hci1", 15, "hci1 still scanning without hci0")
    plugged = time.monotonic()
    control(r.bus, "AddAdapter", "hci0")
    resumed = r.grows("hci0", RESUME_LIMIT_S, "hci0 scanning again after it is plugged back")
    print(f"hci0 resumed {resumed - plugged:.1f} s after it was plugged back")
    assert r.lane("hci0")["state"] == "scanning"
    log = r.close()
    assert "adapter hci0 removed" in log and "adapter hci0 appeared" in log


def test_failover_moves_to_the_next_adapter_and_back(run: Callable[..., Run]) -> None:
    r = run(policy="failover")
    r.until(scanning(r, "hci0"), 30, "scanning on hci0")
    assert r.lane("hci0")["adapter"] == "hci0" and r.lane("hci1") == {}
    control(r.bus, "RemoveAdapter", "hci0")
    r.until(lambda: r.lane("hci0").get("adapter") == "hci1", 15, "failover to hci1")
    r.grows("hci0", 15, "adverts through hci1")
    control(r.bus, "AddAdapter", "hci0")
    r.until(lambda: r.lane("hci0").get("adapter") == "hci0", 15, "back on hci0")
    r.grows("hci0", 15, "adverts through hci0 again")
    assert r.lane("hci0")["failovers"] == 2
    r.close()


def test_failover_leaves_an_adapter_that_stays_silent_through_a_power_cycle(
    run: Callable[..., Run],
) -> None:
    r = run(policy="failover", watchdog_s=2.0)
    r.until(scanning(r, "hci0"), 30, "scanning on hci0")
    control(r.bus, "Break", "hci0")
    r.until(lambda: r.lane("hci0").get("adapter") == "hci1", 40, "failover to hci1")
    r.grows("hci0", 15, "adverts through hci1")
    lane = r.lane("hci0")
    assert (lane["restarts"], lane["power_cycles"], lane["failovers"]) == (1, 1, 1)
    time.sleep(4)  # two watchdog periods: no move back to the dead adapter
    lane = r.lane("hci0")
    assert lane["adapter"] == "hci1" and lane["failovers"] == 1
    assert "stays silent after a power cycle; scanning with hci1" in r.close()


def test_a_silent_adapter_is_restarted_then_power_cycled(run: Callable[..., Run]) -> None:
    """A jammed controller stays "discovering" but delivers nothing until it is reset: the
    watchdog restarts the scan (no help), then power-cycles the adapter, and adverts return."""
    r = run(watchdog_s=2.0)
    r.until(scanning(r, "hci0", "hci1"), 30, "both adapters scanning with adverts")
    control(r.bus, "Jam", "hci0")
    r.until(lambda: r.lane("hci0").get("power_cycles") == 1, 30, "a power cycle of hci0")
    r.grows("hci0", 15, "adverts on hci0 after the power cycle")
    lane = r.lane("hci0")
    assert lane["restarts"] == 1 and lane["watchdog_trips"] == 2
    assert r.lane("hci1")["watchdog_trips"] == 0
    log = r.close()
    assert "restarting the scan" in log and "power-cycling it" in log


def test_passive_scanning_and_its_fallback_to_active(run: Callable[..., Run]) -> None:
    r = run(mode="passive")
    r.until(scanning(r, "hci0", "hci1"), 30, "passive scanning with adverts")
    assert r.lane("hci0")["mode"] == "passive"
    r.close()
    r = run("--no-monitor", mode="passive")
    r.until(scanning(r, "hci0", "hci1"), 30, "scanning with adverts without a monitor")
    assert r.lane("hci0")["mode"] == "active (passive unsupported)"
    log = r.close()
    assert "falling back to active scanning" in log


def test_scan_and_record_through_bleak(tmp_path: Path, bus: PrivateBus) -> None:
    """The field tools use the same supervised scanner as the service."""
    bluez = BluezProcess(bus).start()
    try:
        cfg = sim_config(
            tmp_path, "mqtt://127.0.0.1:1", speed=1.0, duration=None, edits=bleak_edits()
        )
        scan = run_cli(
            "scan", "--config", str(cfg), "--json", "--duration", "4", timeout=60, env=bus.environ()
        )
        rows = json.loads(scan.stdout.splitlines()[-1])
        assert len(rows) > 5 and {r["receiver"] for r in rows} == {"hci0", "hci1"}
        rec = tmp_path / "rec.jsonl"
        run_cli(
            "record",
            str(rec),
            "--config",
            str(cfg),
            "--count",
            "200",
            timeout=60,
            env=bus.environ(),
        )
        lines = [json.loads(line) for line in rec.read_text().splitlines()]
        assert len(lines) == 200 and {x["receiver"] for x in lines} == {"hci0", "hci1"}
        assert any(x["mfr"] or x["svc"] for x in lines)
    finally:
        bluez.stop()


def test_a_hung_bluez_times_out_starts_and_recovers_when_it_answers_again(
    run: Callable[..., Run],
) -> None:
    """SIGSTOP the virtual BlueZ: calls to it hang. Stops and starts give up on their timeouts
    and back off (counted); after SIGCONT the scanner comes back by itself."""
    r = run(watchdog_s=2.0, start_timeout_s=2.0)
    r.until(scanning(r, "hci0", "hci1"), 30, "both adapters scanning with adverts")
    assert r.bluez.proc is not None
    r.bluez.proc.send_signal(signal.SIGSTOP)
    try:
        r.until(lambda: r.lane("hci0").get("start_failures", 0) >= 1, 40, "a start timing out")
        assert "start on hci0" in (r.lane("hci0")["last_error"] or "")
    finally:
        r.bluez.proc.send_signal(signal.SIGCONT)
    r.grows("hci0", RESUME_LIMIT_S, "adverts on hci0 once BlueZ answers again")
    r.until(lambda: r.lane("hci0").get("state") == "scanning", 30, "hci0 scanning")
    assert r.agent.poll() is None
    r.close()


def test_record_without_bluez_waits_and_ends_on_its_duration(
    tmp_path: Path, bus: PrivateBus
) -> None:
    cfg = sim_config(tmp_path, "mqtt://127.0.0.1:1", speed=1.0, duration=None, edits=bleak_edits())
    rec = tmp_path / "rec.jsonl"
    started = time.monotonic()
    proc = run_cli(
        "record", str(rec), "--config", str(cfg), "--duration", "2", timeout=60, env=bus.environ()
    )
    assert time.monotonic() - started < 20
    assert "recorded 0 adverts" in proc.stdout
    assert "waiting for hci0 (BlueZ is not running)" in proc.stderr


def test_scan_without_bluez_fails_and_says_why(tmp_path: Path, bus: PrivateBus) -> None:
    cfg = sim_config(tmp_path, "mqtt://127.0.0.1:1", speed=1.0, duration=None, edits=bleak_edits())
    proc = run_cli(
        "scan", "--config", str(cfg), "--json", "--duration", "2", env=bus.environ(), expect=1
    )
    assert "no advertisements heard: hci0 waiting (waiting for hci0: BlueZ is not running)" in (
        proc.stderr
    )
