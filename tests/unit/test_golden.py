"""The safety net: a fixed recording of the simulated store, replayed, gives byte-identical events.

The recording spans the daily key rotation (00:00 UTC), so the pseudonyms after it must be derived
from the recording too: two processes replay it to the same bytes.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

from edge_agent.config import load_config
from edge_agent.tools.replay import replay
from tests.support.cli import run_cli
from tests.support.paths import DATA

GOLDEN = DATA / "golden"
MIDNIGHT = 1772409600.0  # 2026-03-02T00:00:00Z, inside the recording


def _recording(tmp_path: Path) -> Path:
    rec = tmp_path / "store-midnight.jsonl"
    rec.write_bytes(gzip.decompress((GOLDEN / "store-midnight.jsonl.gz").read_bytes()))
    return rec


def test_replay_gives_the_golden_events_in_process(tmp_path: Path) -> None:
    rec = _recording(tmp_path)
    out = io.StringIO()
    replay(load_config(GOLDEN / "agent.toml"), rec, events=out)
    assert out.getvalue() == (GOLDEN / "events.jsonl").read_text(encoding="utf-8")


def test_replay_across_a_key_rotation_is_identical_in_another_process(tmp_path: Path) -> None:
    rec = _recording(tmp_path)
    out = tmp_path / "events.jsonl"
    run_cli("replay", str(rec), "-c", str(GOLDEN / "agent.toml"), "--events", str(out))
    assert out.read_bytes() == (GOLDEN / "events.jsonl").read_bytes()


def test_the_golden_events_span_the_rotation_with_pseudonyms_on_both_sides() -> None:
    events = [json.loads(line) for line in (GOLDEN / "events.jsonl").read_text().splitlines()]
    seen = [(e["wall"], e["type"], e["body"].get("device", "")) for e in events]
    before = {d for w, _, d in seen if w < MIDNIGHT and d.startswith("p-")}
    left = {d for w, kind, d in seen if w >= MIDNIGHT and kind == "exit" and d in before}
    after = {d for w, kind, d in seen if w >= MIDNIGHT and kind == "enter" and d.startswith("p-")}
    # At the rotation every pseudonymous device in a zone leaves under its old id, and comes
    # back under a new one that nothing links to the old.
    assert before and after and left
    assert not before & after
    assert {e["type"] for e in events} >= {"enter", "update", "exit", "occupancy", "reading"}
