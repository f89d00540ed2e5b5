"""A recording from firmware-sim replays through the same pipeline, identically every time."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.models import body_fields
from edge_agent.pipeline.identity import Identity
from edge_agent.pipeline.tick import Pipeline
from edge_agent.runtime.sources import AdvertSink
from edge_agent.runtime.sources.replay import ReplaySource, read_adverts
from tests.support.configs import record_store
from tests.support.paths import CONFIG_DIR, TRACKS
from tests.support.ticks import run_ticks


def _events(path: Path) -> list[tuple[str, str, str]]:
    cfg = load_config(CONFIG_DIR / "agent.toml")
    pipeline = Pipeline(cfg, identity=Identity(cfg, key=b"k" * 32))
    adverts = list(read_adverts(path))
    out = run_ticks(pipeline, adverts, adverts[-1].t)
    return [(e.topic, e.type, json.dumps(body_fields(e.body), sort_keys=True)) for e in out]


def test_record_then_replay_twice_gives_identical_events(tmp_path: Path) -> None:
    rec, truth = tmp_path / "rec.jsonl", tmp_path / "truth.jsonl"
    record_store(rec, 90, truth)
    first = _events(rec)
    assert {t for _, t, _ in first} >= {"enter", "reading"}
    assert first == _events(rec)
    assert len(truth.read_text().splitlines()) > 90


def test_replay_source_feeds_everything_then_ends(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    record_store(rec, 5)
    n = len(rec.read_text().splitlines())

    async def feed() -> int:
        sink = AdvertSink(100)
        source = ReplaySource(rec, speed=0)
        task = asyncio.create_task(source.run(sink))
        got = 0
        while await sink.queue.get() is not None:
            got += 1
        await task
        return got

    assert asyncio.run(feed()) == n


def test_capture_csv_replays() -> None:
    track = TRACKS / "straight_01.csv"
    if not track.exists():
        pytest.skip("../shared/data is not beside this checkout")
    adverts = list(read_adverts(track))
    assert len(adverts) == len(track.read_text().splitlines()) - 1
    assert adverts[0].receiver == "sensor10" and adverts[0].rssi == -87
