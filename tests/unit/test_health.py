"""The health payload's rates: since the previous periodic health, whatever status asked."""

from __future__ import annotations

from pathlib import Path

from edge_agent.config import parse_config
from edge_agent.models import Advert
from edge_agent.pipeline.tick import Pipeline
from edge_agent.runtime.health import PrivacyCounters, Reporter
from edge_agent.runtime.outbox import Outbox
from edge_agent.runtime.publisher import Publisher
from edge_agent.runtime.sources import AdvertSink
from edge_agent.runtime.sources.replay import ReplaySource
from tests.support.configs import MINIMAL


def test_a_status_look_does_not_move_the_rate_window(tmp_path: Path) -> None:
    cfg = parse_config(MINIMAL.replace("{state}", str(tmp_path)))
    pipeline = Pipeline(cfg)
    with Outbox(tmp_path / "o.sqlite", "gw", "r") as outbox:
        publisher = Publisher(cfg, outbox, lambda _: b"")
        parts = (pipeline, outbox, publisher, ReplaySource(tmp_path / "x.jsonl"), AdvertSink(10))
        reporter = Reporter("gw")
        reporter.health(*parts, PrivacyCounters())
        adverts = [Advert("C4:00:00:00:00:01", -60, i * 0.1, i * 0.1, "rx-a") for i in range(50)]
        pipeline.process(adverts, 5.0, 5.0)
        looked = reporter.health(*parts, PrivacyCounters(), mark=False)
        periodic = reporter.health(*parts, PrivacyCounters())
        assert looked.adverts_per_s > 0 and periodic.adverts_per_s > 0  # the look took none
        assert reporter.health(*parts, PrivacyCounters()).adverts_per_s == 0  # marked: reset
