"""Fixtures for every test: a real mosquitto on a free loopback port, configs in temporary
directories, hypothesis profiles. Helpers are in ``tests/support``."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from edge_agent.tools.mosquitto import LocalMosquitto

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


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a config file (``{state}`` becomes a temporary state dir) and return its path."""

    def write(text: str, name: str = "agent.toml") -> Path:
        path = tmp_path / name
        state = tmp_path / "state"
        path.write_text(textwrap.dedent(text).replace("{state}", str(state)), encoding="utf-8")
        return path

    return write


SLOW_FIRST = (
    "tests/faults/",
    "tests/integration/test_install.py",
    "tests/integration/test_store_gateways.py",
    "test_fuzz_",
)
"""Started first, so that parallel workers are not left waiting on one long test at the end."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long tests first (a stable sort: the rest keep their order)."""
    items.sort(key=lambda item: not any(s in item.nodeid for s in SLOW_FIRST))
