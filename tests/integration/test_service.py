"""The systemd unit and sd_notify: what the gateway's service manager relies on."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from edge_agent.runtime.notify import sd_notify
from edge_agent.tools.mosquitto import free_port
from tests.support.agent import StderrTail, wait_until
from tests.support.cli import spawn_cli
from tests.support.configs import record_store, sim_config
from tests.support.paths import ROOT


def _service() -> dict[str, str]:
    """[Service] settings as systemd reads them: a repeated key accumulates."""
    values: dict[str, list[str]] = defaultdict(list)
    section = ""
    for line in (ROOT / "systemd" / "edge-agent.service").read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key].append(value)
    return {key: " ".join(v) for key, v in values.items()}


def test_unit_key_settings() -> None:
    svc = _service()
    assert svc["Type"] == "notify"
    assert int(svc["WatchdogSec"]) >= 15  # the pipeline pings every 5 s
    assert int(svc["TimeoutStartSec"]) >= 180  # a cold numba cache on a Pi
    assert svc["ExecStart"].endswith("edge-agent run --config /etc/edge-agent/agent.toml")
    assert "check-config" in svc["ExecStartPre"]
    assert svc["StateDirectory"] == "edge-agent"
    assert "NUMBA_CACHE_DIR" in svc["Environment"]
    assert svc["NoNewPrivileges"] == "yes" and svc["ProtectSystem"] == "strict"
    text = (ROOT / "systemd" / "edge-agent.service").read_text()
    assert "\nMemoryDenyWriteExecute=yes" not in text  # would break numba's JIT


def test_unit_hardening_settings() -> None:
    svc = _service()
    assert svc["DynamicUser"] == "yes" and "User" not in svc
    assert svc["CacheDirectory"] == "edge-agent"
    assert svc["Environment"].count("NUMBA_CACHE_DIR=/var/cache/edge-agent/") == 1
    # the password is optional: the unit loads no credential; the drop-in does, when wanted
    assert "LoadCredential" not in svc
    drop_in = (ROOT / "systemd" / "mqtt-password.conf").read_text()
    assert "\nLoadCredential=mqtt-password:/etc/edge-agent/mqtt-password\n" in drop_in
    assert svc["CapabilityBoundingSet"] == "" and svc["AmbientCapabilities"] == ""
    assert svc["RestrictAddressFamilies"].split() == ["AF_UNIX", "AF_INET", "AF_INET6"]
    assert svc["SystemCallFilter"].startswith("@system-service")
    for key in (
        "NoNewPrivileges",
        "PrivateTmp",
        "PrivateDevices",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectClock",
        "ProtectHostname",
        "RestrictNamespaces",
        "RestrictRealtime",
        "RestrictSUIDSGID",
        "LockPersonality",
    ):
        assert svc[key] == "yes", key
    assert svc["ProtectSystem"] == "strict" and svc["ProtectHome"] == "yes"
    assert svc["UMask"] == "0077"


def _unit_for_this_checkout(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's venv, so verify can find it."""
    exe = Path(sys.executable).parent / "edge-agent"
    text = (ROOT / "systemd" / "edge-agent.service").read_text()
    unit = tmp_path / "edge-agent.service"
    unit.write_text(text.replace("/opt/edge-agent/bin/edge-agent", str(exe)))
    return unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
def test_unit_exposure_score_and_verify(tmp_path: Path) -> None:
    unit = _unit_for_this_checkout(tmp_path)
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    m = re.search(r"Overall exposure level for edge-agent\.service: (\d+\.\d+)", result.stdout)
    assert m, result.stdout[-2000:] + result.stderr
    score = float(m.group(1))
    print(f"\nFIGURE systemd-analyze security --offline=yes: exposure {score}")
    assert score <= 1.5


def test_sd_notify_reaches_the_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        sd_notify("READY=1")
        assert server.recv(100) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    sd_notify("READY=1")  # a no-op outside systemd


def test_ready_then_watchdog_only_while_the_pipeline_runs(tmp_path: Path) -> None:
    """The agent under a fake ``NOTIFY_SOCKET`` with ``WatchdogSec=1``, replaying a recording at
    its own pace from a pipe: READY once the pipeline has run, WATCHDOG (with a STATUS line)
    every half second while adverts flow, none once the pipeline is stuck on a read that does
    not return (the writer holds back), and STOPPING at the end."""
    rec = tmp_path / "store.jsonl"
    record_store(rec, 30.0)
    lines = rec.read_text(encoding="utf-8").splitlines(keepends=True)
    t0 = json.loads(lines[0])["t"]
    head = [line for line in lines if json.loads(line)["t"] < t0 + 8.0]  # 8 s of adverts
    pipe = tmp_path / "live.jsonl"
    os.mkfifo(pipe)
    cfg = sim_config(
        tmp_path,
        f"mqtt://127.0.0.1:{free_port()}",
        speed=1,
        duration=None,
        edits={'kind = "sim"': f'kind = "replay"\npath = "{pipe}"'},
    )
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "1000000"}
    resume = threading.Event()

    def stream() -> None:
        with pipe.open("w", encoding="utf-8") as writer:
            writer.writelines(head)  # the pipe fills; the agent reads it at the recording's pace
            writer.flush()
            resume.wait(60)  # then nothing: the agent's read blocks
            writer.writelines(lines[len(head) :])

    notes: list[tuple[float, str]] = []  # (when, message), read all along
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(tmp_path / "notify"))
        server.settimeout(0.2)

        def listen() -> None:
            while not done.is_set():
                with contextlib.suppress(TimeoutError):
                    notes.append((time.monotonic(), server.recv(4096).decode()))

        done = threading.Event()
        listener = threading.Thread(target=listen)
        listener.start()
        proc = spawn_cli("run", "--config", str(cfg), "--drain-timeout", "1", env=env)
        tail = StderrTail(proc)
        streamer = threading.Thread(target=stream)
        streamer.start()
        try:
            wait_until(lambda: bool(notes), 60, "READY")  # after start-up (imports, numba)
            t_ready = notes[0][0]
            time.sleep(max(t_ready + 12.0 - time.monotonic(), 0))  # 8 s of adverts, then stuck
            t_resume = time.monotonic()
            resume.set()
            assert proc.wait(timeout=90) == 0, tail.text()
            time.sleep(0.5)
        finally:
            resume.set()
            done.set()
            streamer.join(30)
            listener.join(5)
            if proc.poll() is None:
                proc.kill()
    ready = notes[0][1]
    flowing = [m for t, m in notes if t_ready < t <= t_ready + 3.0]
    stalled = [m for t, m in notes if t_ready + 9.0 < t <= t_resume - 0.3]
    after = [m for t, m in notes if t > t_resume]
    assert ready.startswith("READY=1\nSTATUS=") and "adverts/s" in ready
    pings = [n for n in flowing if n.startswith("WATCHDOG=1")]
    assert len(pings) >= 4 and all("\nSTATUS=" in p and "outbox" in p for p in pings), flowing
    assert not [n for n in stalled if n.startswith("WATCHDOG=1")], [
        (round(t - t_ready, 2), m[:12]) for t, m in notes
    ]
    assert any(n.startswith("WATCHDOG=1") for n in after)  # moving again
    assert after[-1].startswith("STOPPING=1"), after[-3:]
