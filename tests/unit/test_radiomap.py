"""The radio map: a site survey's shadowing per receiver and place (``pipeline.radiomap``),
written by ``calibrate --radio-map``, read from the calibration, added to fusion's model."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import load_config
from edge_agent.config.loading import read_calibration
from edge_agent.errors import ConfigError
from edge_agent.pipeline import floorplan, radiomap
from edge_agent.tools import evaluation as ev
from edge_agent.tools import positioning
from edge_agent.tools.calibrate import fit_captures, fit_radio_map, to_toml
from firmware_sim import survey
from firmware_sim.store import StoreSim, load_scenario
from tests.support.cli import run_cli
from tests.support.paths import CONFIG_DIR, TRACKS

WriteConfig = Callable[..., Path]


def _field(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return 4.0 * np.sin(0.9 * x) * np.cos(0.7 * y)


def test_a_survey_of_a_planted_field_finds_it_and_nothing_where_it_did_not_go() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 12, 20_000), rng.uniform(0, 8, 20_000)
    rx = rng.integers(0, 2, len(x))
    residual = _field(x, y) * (rx == 0) + rng.normal(0, 5, len(x))  # "b" has no shadowing
    rmap = radiomap.fit(x, y, rx, residual, ["a", "b"])
    cx, cy = (g.ravel() for g in np.meshgrid(np.arange(1, 11, 0.5), np.arange(1, 7, 0.5)))
    a = radiomap.correction(rmap, "a", cx, cy)
    assert np.corrcoef(a, _field(cx, cy))[0, 1] > 0.85
    assert np.std(a - _field(cx, cy)) < 0.5 * np.std(_field(cx, cy))
    assert np.abs(radiomap.correction(rmap, "b", cx, cy)).mean() < 0.4
    # beyond the survey: outside the map, an unknown receiver, cells far from any sample
    far = np.array([-50.0, 100.0])
    assert not radiomap.correction(rmap, "a", far, far).any()
    assert not radiomap.correction(rmap, "c", cx, cy).any()
    corner = radiomap.correction(rmap, "a", np.array([12.0 + 1.9]), np.array([8.0 + 1.9]))
    assert abs(corner[0]) < 0.3


def test_few_samples_make_a_small_correction() -> None:
    x = np.array([5.0, 5.0, 5.0])
    rmap = radiomap.fit(x, x, np.zeros(3, dtype=np.int64), np.full(3, 10.0), ["a"])
    (c,) = radiomap.correction(rmap, "a", np.array([5.0]), np.array([5.0]))
    assert 0.0 < c < 10.0 * 3 / (3 + radiomap.PRIOR_SAMPLES) + 0.1
    with pytest.raises(ValueError, match="no survey sample"):
        radiomap.fit(np.array([math.nan]), x[:1], np.zeros(1, np.int64), x[:1], ["a"])


def _plan_config(write_config: WriteConfig, calibration: str = "") -> Path:
    return write_config(
        '[gateway]\nid = "gw"\nsite = "s"\nstate_dir = "{state}"\n'
        '[[zones]]\nid = "a"\nrect = [0.0, 0.0, 10.0, 10.0]\n'
        '[[receivers]]\nid = "rx-a"\nx = 2.0\ny = 2.0\n'
        '[[receivers]]\nid = "rx-b"\nx = 8.0\ny = 8.0\n' + calibration
    )


MAP = (
    "[calibration.radio_map]\nx0 = 0.0\ny0 = 0.0\ncell_m = 5.0\nnx = 2\nny = 2\n"
    "[calibration.radio_map.correction_db]\n"
)


def test_fusion_expects_what_the_map_says(write_config: WriteConfig) -> None:
    plain = floorplan.build(load_config(_plan_config(write_config)))
    cfg = load_config(_plan_config(write_config, MAP + '"rx-a" = [1.0, -2.0, 3.0, -4.0]\n'))
    mapped = floorplan.build(cfg)
    assert plain is not None and mapped is not None
    diff = (mapped.gain - plain.gain).astype(np.float64)
    west, south = plain.cx < 5.0, plain.cy < 5.0
    inside = (plain.cx > 0) & (plain.cx < 10) & (plain.cy > 0) & (plain.cy < 10)
    expected = inside * np.select(
        [west & south, west & ~south, ~west & south], [1.0, -2.0, 3.0], default=-4.0
    )
    assert inside.any() and (~inside).any()  # the plan's margin is beyond the map
    assert np.allclose(diff[0], expected, atol=1e-4)
    assert not diff[1].any()  # rx-b: not in the map


@pytest.mark.parametrize(
    ("table", "key", "why"),
    [
        ('"rx-a" = [1.0, 2.0]\n', "calibration.radio_map", "2 values, nx × ny = 4"),
        ('"rx-a" = [1.0, 2.0, nan, 0.0]\n', "calibration.radio_map", "within ±40 dB"),
        ('"rx-a" = [1.0, 2.0, 99.0, 0.0]\n', "calibration.radio_map", "within ±40 dB"),
        ('"rx-z" = [1.0, 2.0, 3.0, 0.0]\n', "correction_db.rx-z", "not a receiver of the plan"),
    ],
)
def test_a_bad_map_names_its_key(write_config: WriteConfig, table: str, key: str, why: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_plan_config(write_config, MAP + table))
    assert key in str(err.value) and why in str(err.value)


def test_a_map_needs_a_floor_plan_and_a_sane_size(write_config: WriteConfig) -> None:
    no_plan = write_config(
        '[gateway]\nid = "gw"\nsite = "s"\nstate_dir = "{state}"\n'
        '[[zones]]\nid = "a"\n[[receivers]]\nid = "rx-a"\nzone = "a"\n'
        + MAP
        + '"rx-a" = [1.0, 2.0, 3.0, 0.0]\n'
    )
    with pytest.raises(ConfigError, match="needs a floor plan"):
        load_config(no_plan)
    huge = MAP.replace("nx = 2\nny = 2", "nx = 4000\nny = 4000")
    with pytest.raises(ConfigError, match="at most 1,000,000"):
        load_config(_plan_config(write_config, huge))


def test_calibrate_writes_the_map_and_the_config_includes_it(
    tmp_path: Path, write_config: WriteConfig
) -> None:
    positions = ev.load_positions(TRACKS / "receivers.json")
    captures = [ev.load_capture(TRACKS / "straight_01.csv")]
    fits = fit_captures(load_config(CONFIG_DIR / "agent.toml").proximity, captures, positions)
    rmap = fit_radio_map(captures, positions, fits, -59)
    assert set(rmap.correction_db) == set(captures[0].receivers)
    cal = tmp_path / "cal.toml"
    cal.write_text(to_toml(fits, "test", -59, cal.name, rmap))
    assert read_calibration(cal).radio_map == rmap
    rx = "".join(
        f'[[receivers]]\nid = "{r}"\nx = {x}\ny = {y}\nz = {z}\n'
        for r, (x, y, z) in positions.items()
    )
    cfg_path = write_config(
        '[gateway]\nid = "gw"\nsite = "s"\nstate_dir = "{state}"\n'
        '[[zones]]\nid = "a"\nrect = [0.0, 0.0, 18.0, 18.0]\n'
        f'{rx}[calibration]\nfile = "{cal}"\n'
    )
    assert load_config(cfg_path).calibration.radio_map == rmap


def test_the_survey_of_the_demo_store_finds_its_shadowing(tmp_path: Path) -> None:
    spec = load_scenario(CONFIG_DIR / "store-demo.toml")
    cap = survey.survey(spec, survey.SurveyWalk(spacing_m=1.0))
    xy = cap.truth[:, :2]
    assert xy[:, 0].min() < 1.0 and xy[:, 0].max() > spec.width_m - 1.0
    assert xy[:, 1].min() < 1.0 and xy[:, 1].max() > spec.depth_m - 1.0
    positions = survey.receiver_positions(spec)
    model = {"*": (-59.0, spec.radio.path_loss_exponent)}
    rmap = positioning.survey_map([(cap, ev.true_distances(cap, positions))], model)
    assert rmap is not None
    channel = StoreSim(spec).channel
    cx, cy = (g.ravel() for g in np.meshgrid(np.arange(1, 35, 0.5), np.arange(1, 23, 0.5)))
    shadow = channel.shadowing(np.column_stack([cx, cy]))
    for j, r in enumerate(spec.receivers):
        near = np.hypot(cx - r.x, cy - r.y) < 10.0
        found = radiomap.correction(rmap, r.id, cx[near], cy[near])
        assert np.corrcoef(found, shadow[near, j])[0, 1] > 0.6, r.id
    # the command writes what calibrate reads
    out, rx = tmp_path / "survey.csv", tmp_path / "rx.json"
    said = run_cli(
        "survey", "--scenario", str(CONFIG_DIR / "store-demo.toml"), "--spacing", "3",
        "--out", str(out), "--receivers-out", str(rx), program="firmware_sim.cli",
    ).stdout  # fmt: skip
    assert "minute walk" in said and out.exists() and rx.exists()
    cal = tmp_path / "cal.toml"
    run_cli("calibrate", "--from", str(out), "--receivers", str(rx), "--radio-map",
            "--out", str(cal))  # fmt: skip
    assert read_calibration(cal).radio_map is not None
    run_cli("calibrate", "--radio-map", "--interactive", "--out", str(cal), expect=2)
    run_cli("survey", "--scenario", "x", "--spacing", "0", "--out", str(out),
            "--receivers-out", str(rx), program="firmware_sim.cli", expect=2)  # fmt: skip


def test_a_map_of_the_other_tracks_places_the_beacon_better() -> None:
    """The shared tracks, each scored with the calibration and the radio map of the others."""
    tracks = sorted(TRACKS.glob("*.csv"))
    positions = ev.load_positions(TRACKS / "receivers.json")
    cfg = load_config(CONFIG_DIR / "agent.toml")
    scores = positioning.score_methods(
        [ev.load_capture(t) for t in tracks], positions, cfg.proximity, cfg.fusion
    )
    pooled = {s.method: s for s in scores if s.track == "all"}
    mapped, plain = pooled[positioning.OURS], pooled[positioning.NO_MAP]
    print(f"median {mapped.median_m:.2f} m with the map, {plain.median_m:.2f} m without")
    assert mapped.median_m < plain.median_m and mapped.p90_m <= plain.p90_m


def test_another_gateways_receiver_is_mapped_by_its_plan_name(write_config: WriteConfig) -> None:
    from edge_agent.runtime import remote_config

    remote = '[[receivers]]\nid = "hci0"\ngateway = "gw-b"\nx = 5.0\ny = 5.0\n'
    cfg = load_config(
        _plan_config(write_config, remote + MAP + '"gw-b/hci0" = [1.0, 1.0, 1.0, 1.0]\n')
    )
    plan, plain = floorplan.build(cfg), floorplan.build(load_config(_plan_config(write_config)))
    assert plan is not None and plain is not None
    row = plan.receiver_index("gw-b/hci0")
    inside = (plan.cx > 0) & (plan.cx < 10) & (plan.cy > 0) & (plan.cy < 10)
    assert np.allclose(plan.gain[row][inside] - _model(plan, row)[inside], 1.0, atol=1e-4)
    assert np.allclose(plan.gain[:2], plain.gain[:2])  # this gateway's own: no map for them
    # get-config says how big the map is rather than listing it
    shown = remote_config.redacted(cfg)["calibration"]["radio_map"]["correction_db"]
    assert shown == {"gw-b/hci0": "4 values"}


def _model(plan: floorplan.FloorPlan, row: int) -> np.ndarray:
    """The log-distance model of one receiver of the plan, without any map."""
    x, y, z = plan.receiver_xyz[row]
    d = np.sqrt((plan.cx - x) ** 2 + (plan.cy - y) ** 2 + (z - 1.2) ** 2)
    return -10.0 * 2.0 * np.log10(np.maximum(d, 0.1))
