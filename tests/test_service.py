"""The systemd unit and sd_notify: what the gateway's service manager relies on."""

from __future__ import annotations

import socket
from collections import defaultdict
from pathlib import Path

import pytest

from edge_agent.agent import sd_notify
from tests.conftest import ROOT


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
    assert svc["ExecStart"].endswith("edge-agent run --config /etc/edge-agent/agent.toml")
    assert "check-config" in svc["ExecStartPre"]
    assert svc["StateDirectory"] == "edge-agent"
    assert "NUMBA_CACHE_DIR" in svc["Environment"]
    assert svc["NoNewPrivileges"] == "yes" and svc["ProtectSystem"] == "strict"
    text = (ROOT / "systemd" / "edge-agent.service").read_text()
    assert "\nMemoryDenyWriteExecute=yes" not in text  # would break numba's JIT


def test_sd_notify_reaches_the_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        sd_notify("READY=1")
        assert server.recv(100) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    sd_notify("READY=1")  # a no-op outside systemd
