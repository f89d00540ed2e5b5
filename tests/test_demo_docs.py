"""The demo shows the store and delivers to a broker; the README says what is true."""

from __future__ import annotations

import re
import subprocess
import sys

from edge_agent.cli import build_parser
from tests.conftest import ROOT


def test_demo_runs_and_messages_arrive_at_the_broker() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_agent",
            "demo",
            "--config",
            str(ROOT / "config/agent.toml"),
            "--duration",
            "6",
            "--speed",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert "local mosquitto on mqtt://127.0.0.1:" in out
    assert "Zones" in out and "Latest events" in out
    m = re.search(
        r"^demo done: adverts \d+, events committed (\d+), published (\d+), "
        r"received at broker (\d+)",
        out,
        re.M,
    )
    assert m, out[-2000:]
    committed, published, received = map(int, m.groups())
    assert committed > 0 and published == committed and received >= committed
    assert re.search(r"zone match vs truth \d+\.\d%", out)


def test_readme_opens_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    code = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", text, re.S)
    assert code and code[0].split() == ["make", "demo"]
    assert code[1].split() == ["make", "test"]


def test_every_command_in_the_readme_exists() -> None:
    text = (ROOT / "README.md").read_text()
    commands = set(re.findall(r"edge-agent ([a-z][a-z-]+)", text))
    known = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert commands and commands <= known, commands - known
