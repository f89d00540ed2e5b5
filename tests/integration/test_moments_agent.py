"""Moments through the real agent process: one that began before a restart ends after it, once;
its start and state are committed together."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

from edge_agent.tools.mosquitto import free_port
from tests.support.agent import run_agent
from tests.support.configs import sim_config
from tests.support.paths import CONFIG_DIR

START = 1_772_442_000.0  # 2026-03-02 09:00 UTC: no pseudonym key rotation inside the test
DOOR = """
[[incidents]]
kind = "door_open"
device = "door-entrance"
at_s = 0.0
duration_s = 60.0
"""


def _config(tmp_path: Path, start_wall: float, duration: float) -> Path:
    text = (CONFIG_DIR / "store-demo.toml").read_text(encoding="utf-8")
    text = re.sub(r"\n\[\[incidents\]\].*", "", text, flags=re.S) + DOOR
    scenario = tmp_path / f"store-{start_wall:.0f}.toml"
    scenario.write_text(text.replace("seed = 7\n", f"seed = 7\nstart_wall = {start_wall}\n", 1))
    dead = f"mqtt://127.0.0.1:{free_port()}"  # nothing delivered: every event stays in the outbox
    return sim_config(
        tmp_path,
        dead,
        speed=0,
        duration=duration,
        edits={
            'scenario = "store-demo.toml"': f'scenario = "{scenario}"',
            "equals = true\nfor_s = 120": "equals = true\nfor_s = 10",
        },
    )


def _door_moments(tmp_path: Path) -> list[dict[str, object]]:
    conn = sqlite3.connect(tmp_path / "state" / "outbox.sqlite", timeout=10)
    try:
        rows = conn.execute(
            "SELECT payload FROM events WHERE type = 'moment' ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()
    return [m for m in (json.loads(r[0]) for r in rows) if m["name"] == "door-left-open"]


def test_a_moment_under_way_at_a_restart_ends_once_after_it(tmp_path: Path) -> None:
    run_agent(_config(tmp_path, START, 25.0), "--drain-timeout", "1")
    first = _door_moments(tmp_path)
    assert [m["state"] for m in first] == ["start"]
    assert first[0]["subject"] == "door-entrance"
    # the agent comes back 25 s later; the door is still open (the store starts again with it
    # open): no second start, and one end when it shuts
    run_agent(_config(tmp_path, START + 25.0, 75.0), "--drain-timeout", "1")
    moments = _door_moments(tmp_path)
    assert [m["state"] for m in moments] == ["start", "end"]
    assert moments[1]["started"] == moments[0]["started"]
    assert moments[1]["duration_s"] > 60.0  # from the first run's start to the door shutting
