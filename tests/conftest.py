"""Shared fixtures: a real mosquitto on a free loopback port, configs in temporary directories."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from edge_agent.tools.mosquitto import LocalMosquitto

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "config"
SHARED = ROOT.parent / "shared"

settings.register_profile(
    "ci", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=150, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def mosquitto() -> Iterator[LocalMosquitto]:
    """A private mosquitto, killed after the test."""
    with LocalMosquitto() as broker:
        yield broker


MINIMAL = """
[gateway]
id = "gw-test"
site = "site-1"
state_dir = "{state}"

[[zones]]
id = "a"
radius_m = 5.0

[[zones]]
id = "b"
radius_m = 5.0

[[receivers]]
id = "rx-a"
zone = "a"

[[receivers]]
id = "rx-b"
zone = "b"
"""


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a config file (``{state}`` becomes a temporary state dir) and return its path."""

    def write(text: str, name: str = "agent.toml") -> Path:
        path = tmp_path / name
        state = tmp_path / "state"
        path.write_text(textwrap.dedent(text).replace("{state}", str(state)), encoding="utf-8")
        return path

    return write


def record_store(rec: Path, duration: float, truth: Path | None = None) -> None:
    """The demo store recorded by ``firmware-sim run`` for ``duration`` simulated seconds
    (and its ground truth, when asked)."""
    from firmware_sim.cli import main as sim_main

    args = ["run", "--scenario", str(CONFIG_DIR / "store-demo.toml"), "--duration"]
    args += [f"{duration:g}", "--record", str(rec)]
    if truth is not None:
        args += ["--truth", str(truth)]
    assert sim_main(args) == 0
