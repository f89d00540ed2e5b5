"""``edge-agent calibrate`` fits receivers from captures with truth; ``agent.toml`` includes the
file it writes; ``replay --calibration`` applies it and its estimates score on a held-out track."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_agent import evaluation as ev
from edge_agent.cli import main
from edge_agent.config import load_config
from edge_agent.errors import ConfigError

TRACKS = Path(__file__).resolve().parents[2] / "shared" / "data" / "ble-rssi-tracks"
RECEIVERS = TRACKS / "receivers.json"


def test_calibrate_then_replay_a_held_out_track_with_it(tmp_path: Path) -> None:
    cal = tmp_path / "calibration.toml"
    fit_on = [str(TRACKS / f"{n}.csv") for n in ("straight_01", "rectangular_without_rotation")]
    assert (
        main(["calibrate", "--from", *fit_on, "--receivers", str(RECEIVERS), "--out", str(cal)])
        == 0
    )
    text = cal.read_text()
    assert text.count("[[calibration.receivers]]") == 12

    held_out = TRACKS / "zigzagging_without_rotation.csv"
    with_cal, without = tmp_path / "with.jsonl", tmp_path / "without.jsonl"
    base = ["replay", str(held_out), "--receivers", str(RECEIVERS)]
    assert main([*base, "--calibration", str(cal), "--estimates", str(with_cal)]) == 0
    assert main([*base, "--estimates", str(without)]) == 0

    cap = ev.load_capture(held_out)
    truth = ev.true_distances(cap, ev.load_positions(RECEIVERS))
    near = truth < ev.NEAR_M

    def mae(path: Path) -> float:
        rows = [json.loads(x) for x in path.read_text().splitlines()]
        est = np.array([r["distance_m"] for r in rows if "receiver" in r])
        assert len(est) == len(truth)
        return float(np.abs(est[near] - truth[near]).mean())

    calibrated, uncalibrated = mae(with_cal), mae(without)
    print(f"held-out distance MAE: {calibrated:.2f} m calibrated, {uncalibrated:.2f} m not")
    assert calibrated <= 1.5 < uncalibrated


def test_agent_toml_includes_a_calibration_file(tmp_path: Path, write_config: object) -> None:
    cal = tmp_path / "cal.toml"
    cal.write_text(
        '[[calibration.receivers]]\nid = "rx-a"\nrssi_offset_db = -6.5\npath_loss_exponent = 3.1\n'
    )
    cfg_path = write_config(  # type: ignore[operator]
        '[gateway]\nid = "gw"\nsite = "s"\nstate_dir = "{state}"\n'
        '[[zones]]\nid = "a"\n[[receivers]]\nid = "rx-a"\nzone = "a"\n'
        '[calibration]\nfile = "cal.toml"\n'
        '[[calibration.receivers]]\nid = "rx-b"\nrssi_offset_db = 1.0\npath_loss_exponent = 2.0\n'
    )
    (cfg_path.parent / "cal.toml").write_text(cal.read_text())
    cfg = load_config(cfg_path)
    assert cfg.calibration.by_receiver()["rx-a"].path_loss_exponent == 3.1
    assert set(cfg.calibration.by_receiver()) == {"rx-a", "rx-b"}

    (cfg_path.parent / "cal.toml").write_text(
        '[[calibration.receivers]]\nid = "rx-a"\nrssi_offset_db = -6.5\npath_loss_exponent = 9\n'
    )
    with pytest.raises(ConfigError) as err:
        load_config(cfg_path)
    assert "cal.toml" in str(err.value) and "path_loss_exponent" in str(err.value)
    (cfg_path.parent / "cal.toml").unlink()
    with pytest.raises(ConfigError, match=r"calibration\.file"):
        load_config(cfg_path)
