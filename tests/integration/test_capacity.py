"""``edge-agent bench``: the capacity check a field engineer runs on the gateway, as a process."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from edge_agent.config import load_config
from edge_agent.models import BTHomeFrame, IBeaconFrame
from edge_agent.pipeline.decoders import DecodeStats, decode_advert
from edge_agent.tools.capacity import SyntheticStore
from tests.support.cli import run_cli
from tests.support.configs import MINIMAL
from tests.support.paths import CONFIG_DIR


def test_bench_measures_every_stage_and_says_so(tmp_path: Path) -> None:
    """The shipped config (fusion on), a small store: every stage has a rate, the publish
    stage through a private mosquitto; the table says the same."""
    conf = tmp_path / "agent.toml"
    conf.write_text(
        (CONFIG_DIR / "agent.toml")
        .read_text()
        .replace('state_dir = "/var/lib/edge-agent"', f'state_dir = "{tmp_path}"')
    )
    args = ("bench", "-c", str(conf), "--devices", "100", "--seconds", "3")
    report = json.loads(run_cli(*args, "--json").stdout)
    assert report["fusion"] and report["devices"] == 100
    for stage in ("decode_per_s", "pipeline_per_s", "outbox_per_s", "publish_per_s"):
        assert report[stage] > 0, stage
    assert report["events_per_advert"] > 0 and report["synchronous"] == "FULL"
    assert "private mosquitto" in report["broker"]
    assert not list(tmp_path.glob("edge-agent-bench-*"))  # its scratch files went
    table = run_cli(*args, "--broker", "none").stdout
    for word in ("decode", "pipeline (all stages)", "outbox (FULL)", "µs/advert"):
        assert word in table, table
    assert re.search(r"publish \(QoS 1, acked\) +not measured", table), table


def test_bench_refuses_bad_flags_and_configs_before_measuring(tmp_path: Path) -> None:
    bad = run_cli("bench", "-c", str(CONFIG_DIR / "agent.toml"), "--seconds", "-1", expect=2)
    assert "--seconds" in bad.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text('[gateway]\nid = "gw"\nsite = "s"\n[pipeline]\ntick_s = "fast"\n')
    assert "pipeline.tick_s" in run_cli("bench", "-c", str(broken), expect=2).stderr


def test_the_synthetic_store_fits_the_config_with_or_without_a_floor_plan(
    write_config: Callable[[str], Path],
) -> None:
    """Receivers with positions: each device heard by one of the two nearest; without: around
    the configured receivers. Beacons and sensors both decode; every device is heard."""
    for cfg in (load_config(CONFIG_DIR / "agent.toml"), load_config(write_config(MINIMAL))):
        store = SyntheticStore(cfg, 50)
        ticks = list(store.ticks(0, store.per_tick))
        adverts = [a for batch, _ in ticks for a in batch]
        assert len({a.address for a in adverts}) == 50
        assert {a.receiver for a in adverts} <= {r.id for r in cfg.receivers}
        stats = DecodeStats()
        kinds = {type(f) for a in adverts for f in decode_advert(a, stats)}
        assert kinds == {IBeaconFrame, BTHomeFrame} and not stats.malformed
