"""firmware_sim: deterministic for a seed, realistic channel statistics, decodable frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import load_config
from edge_agent.errors import ScenarioError
from edge_agent.pipeline.decoders import DecodeStats, decode_advert
from firmware_sim.radio import Channel, RadioParams
from firmware_sim.store import StoreSim, load_scenario
from tests.support.paths import CONFIG_DIR

SCENARIO = CONFIG_DIR / "store-demo.toml"


def _run(seconds: float, seed: int | None = None) -> tuple[StoreSim, list]:
    sim = StoreSim(load_scenario(SCENARIO), seed)
    out = []
    t = 0.0
    while t < seconds:
        out += sim.step(t, t + 0.05, 1.7e9)
        t += 0.05
    return sim, out


def test_same_seed_same_store() -> None:
    _, a = _run(60.0)
    _, b = _run(60.0)
    assert a == b
    _, c = _run(60.0, seed=99)
    assert a != c


def test_every_firmware_frame_decodes() -> None:
    _, adverts = _run(120.0)
    stats = DecodeStats()
    kinds = {type(f).__name__ for a in adverts for f in decode_advert(a, stats)}
    assert kinds == {
        "IBeaconFrame",
        "EddystoneUIDFrame",
        "EddystoneTLMFrame",
        "BTHomeFrame",
        "RuuviFrame",
    }
    assert not stats.malformed
    assert stats.unknown > 0  # shoppers' phones
    assert all(-100 <= a.rssi <= 0 for a in adverts)
    assert [a.t for a in adverts] == sorted(a.t for a in adverts)


def test_truth_follows_shoppers_through_zones() -> None:
    sim = StoreSim(load_scenario(SCENARIO))
    zones_seen: dict[str, set[str | None]] = {}
    for t in range(0, 900, 5):
        sim.step(float(t), t + 5.0, 1.7e9)  # truth is recorded as time advances
        for tr in sim.truth(t + 5.0):
            zones_seen.setdefault(tr.device, set()).add(tr.zone)
    carts = {d: z for d, z in zones_seen.items() if d.startswith("cart-")}
    assert sum(len(z) >= 3 for z in carts.values()) >= 5  # carts went shopping
    assert {"entrance", "checkout"} <= set().union(*carts.values())


def test_channel_statistics() -> None:
    params = RadioParams(
        path_loss_exponent=2.0,
        shadowing_sigma_db=4.0,
        fading_sigma_db=5.0,
        packet_loss=0.1,
        sensitivity_dbm=-200.0,
        receiver_height_m=1.0,
        tag_height_m=1.0,
    )
    rng = np.random.default_rng(3)
    ch = Channel(params, np.array([[0.0, 0.0]]), rng)
    xy = np.tile([[10.0, 0.0]], (20000, 1))
    rssi, heard = ch.sample(xy, np.full(20000, -59.0), rng)
    mean = ch.mean_rssi(xy[:1], np.array([-59.0]))[0, 0]
    assert abs(rssi.std() - 5.0) < 0.2  # fast fading
    assert abs(heard.mean() - 0.9) < 0.01  # packet loss
    shadow = ch.shadowing(np.random.default_rng(4).uniform(0, 200, (5000, 2)))
    assert abs(shadow.std() - 4.0) < 0.6  # shadowing across the floor
    assert abs(mean - (-59.0 - 20.0 + ch.shadowing(xy[:1])[0, 0])) < 1e-9


def test_a_scenario_can_start_from_another(tmp_path: Path) -> None:
    dense = load_scenario(CONFIG_DIR / "store-dense.toml")
    demo = load_scenario(SCENARIO)
    assert len(dense.receivers) == 24 and len(demo.receivers) == 6
    assert dense.zones == demo.zones and dense.carts == demo.carts and dense.seed == demo.seed
    assert dense.name != demo.name
    # the dense store's agent: the same zones, a receiver of the plan for each of the scenario's
    cfg = load_config(CONFIG_DIR / "agent-dense.toml")
    assert [r.id for r in cfg.receivers] == [r.id for r in dense.receivers]
    assert {(r.x, r.y) for r in cfg.receivers} == {(r.x, r.y) for r in dense.receivers}
    assert cfg.source.scenario == CONFIG_DIR / "store-dense.toml"
    nested = tmp_path / "nested.toml"
    nested.write_text(f'base = "{CONFIG_DIR / "store-dense.toml"}"\n')
    with pytest.raises(ScenarioError, match="has a base of its own"):
        load_scenario(nested)
    nested.write_text("base = 3\n")
    with pytest.raises(ScenarioError, match="base: a scenario file's path"):
        load_scenario(nested)
    nested.write_text('base = "missing.toml"\n')
    with pytest.raises(ScenarioError, match=r"cannot read"):
        load_scenario(nested)
