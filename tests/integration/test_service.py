"""The systemd unit and sd_notify: what the gateway's service manager relies on."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from edge_agent.runtime.notify import sd_notify
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
