"""``edge-agent calibrate`` fits receivers from captures with truth; ``agent.toml`` includes the
file it writes; ``replay --calibration`` applies it and its estimates score on a held-out track."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import load_config
from edge_agent.errors import ConfigError
from edge_agent.tools import evaluation as ev
from tests.support.cli import run_cli
from tests.support.paths import CONFIG_DIR, TRACKS

RECEIVERS = TRACKS / "receivers.json"


def test_calibrate_then_replay_a_held_out_track_with_it(tmp_path: Path) -> None:
    cal = tmp_path / "calibration.toml"
    fit_on = [str(TRACKS / f"{n}.csv") for n in ("straight_01", "rectangular_without_rotation")]
    run_cli("calibrate", "--from", *fit_on, "--receivers", str(RECEIVERS), "--out", str(cal))
    text = cal.read_text()
    assert text.count("[[calibration.receivers]]") == 12

    held_out = TRACKS / "zigzagging_without_rotation.csv"
    with_cal, without = tmp_path / "with.jsonl", tmp_path / "without.jsonl"
    base = ["replay", str(held_out), "--receivers", str(RECEIVERS)]
    run_cli(*base, "--calibration", str(cal), "--estimates", str(with_cal))
    run_cli(*base, "--estimates", str(without))

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


# ------------------------------------------------------------------------------- interactive

CONFIG = CONFIG_DIR / "agent.toml"
CART_UUID = "2f234454-cf6d-4a0f-adf2-f4911ba9ffa6"


class HeldBeacon:
    """A cart tag (real iBeacon bytes) the test holds at ``distance`` from ``hci0``; ``hci1``
    is 5 m further. The radio: the receiver's own offset and exponent, 3 dB fading."""

    name = "held-beacon"

    def __init__(self, offset_db: float, exponent: float) -> None:
        self.distance = 1.0
        self.offset_db = offset_db
        self.exponent = exponent
        self.rng = np.random.default_rng(5)
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def wall_at(self, t: float) -> float:
        return 1.7e9 + t

    def adapter_health(self) -> list[object]:
        return []

    async def run(self, sink: object) -> None:
        import asyncio

        from edge_agent.models import Advert, IBeaconFrame
        from edge_agent.runtime.sources import AdvertSink
        from firmware_sim.encoders import encode_ibeacon

        assert isinstance(sink, AdvertSink)
        payload = encode_ibeacon(IBeaconFrame(CART_UUID, 1, 7, -62))
        while True:
            for rx, d in (("hci0", self.distance), ("hci1", self.distance + 5.0)):
                rssi = -62 + self.offset_db - 10 * self.exponent * np.log10(d)
                rssi += self.rng.normal(0.0, 3.0)
                sink.offer(
                    Advert("C0:00:00:00:00:07", round(rssi), self.t, self.wall_at(self.t), rx,
                           "random", {0x004C: payload})
                )  # fmt: skip
            self.t += 0.02
            await asyncio.sleep(0.002)


def test_interactive_calibration_fits_the_receiver_held_against() -> None:
    import asyncio

    from edge_agent.tools.calibrate import interactive

    cfg = load_config(CONFIG)
    beacon = HeldBeacon(offset_db=-6.0, exponent=2.6)
    prompts: list[str] = []
    said: list[str] = []

    async def ask(prompt: str) -> str:
        prompts.append(prompt)
        beacon.distance = float(prompt.split(" at ")[1].split(" m")[0])
        return "\n"

    (fit,) = asyncio.run(
        interactive(cfg, beacon, "cart-7", [1.0, 2.0, 4.0, 8.0], 0.4, ask, said.append)  # type: ignore[arg-type]
    )
    assert len(prompts) == 4 and len(said) == 4 and "hci0" in said[0]
    assert fit.calibration.id == "hci0"  # the loudest at the first distance
    assert fit.calibration.path_loss_exponent == pytest.approx(2.6, abs=0.3)
    assert fit.calibration.rssi_offset_db == pytest.approx(6.0, abs=1.5)
    assert fit.notes == () and fit.residual < 3.0 and fit.span_m == (1.0, 8.0)


def test_interactive_calibration_stops_on_q_and_keeps_the_default_exponent() -> None:
    import asyncio

    from edge_agent.tools.calibrate import interactive

    cfg = load_config(CONFIG)
    beacon = HeldBeacon(offset_db=4.0, exponent=3.0)
    answers = iter(["\n", "q\n"])

    async def ask(prompt: str) -> str:
        return next(answers)

    (fit,) = asyncio.run(
        interactive(cfg, beacon, "cart-7", [1.0, 2.0], 0.3, ask, lambda _: None)  # type: ignore[arg-type]
    )
    assert fit.calibration.path_loss_exponent == cfg.proximity.path_loss_exponent  # one distance
    assert fit.calibration.rssi_offset_db == pytest.approx(-4.0, abs=1.5)
    assert fit.notes and "one distance only" in fit.notes[0]


def test_interactive_calibration_of_a_device_never_heard_fails_clearly() -> None:
    import asyncio

    from edge_agent.errors import CalibrationError
    from edge_agent.tools.calibrate import interactive

    async def ask(prompt: str) -> str:
        return "\n"

    with pytest.raises(CalibrationError, match="cart-99: the device was not heard"):
        asyncio.run(
            interactive(load_config(CONFIG), HeldBeacon(0.0, 2.0), "cart-99", [1.0], 0.2, ask,
                        lambda _: None)  # type: ignore[arg-type]
        )  # fmt: skip


def test_calibrate_needs_either_captures_or_interactive(tmp_path: Path) -> None:
    out = str(tmp_path / "c.toml")
    run_cli("calibrate", "--out", out, expect=2)
    run_cli("calibrate", "--interactive", "--out", out, expect=2)
    run_cli("calibrate", "--from", "x.csv", "--out", out, expect=2)


def test_a_fit_from_too_few_adverts_is_refused_and_a_clamped_one_is_said() -> None:
    from edge_agent.errors import CalibrationError
    from edge_agent.tools.calibrate import Step, fit_steps

    one_each = [Step(d, (-60 - round(10 * np.log10(d)),), -59.0) for d in (1.0, 2.0, 4.0)]
    with pytest.raises(CalibrationError, match="at 1 m it heard 1 advert"):
        fit_steps("hci0", one_each, 2.0)
    flat = [Step(d, (-60,) * 10, -59.0) for d in (1.0, 2.0, 4.0, 8.0)]  # no fall with distance
    fit = fit_steps("hci0", flat, 2.0)
    assert fit.calibration.path_loss_exponent == 1.0
    assert "outside 1–6: 1 is written" in fit.notes[0]


def test_calibrate_from_captures_says_how_good_each_fit_is(tmp_path: Path) -> None:
    out = tmp_path / "site.toml"
    fit_on = [str(TRACKS / f"{n}.csv") for n in ("straight_01", "rectangular_without_rotation")]
    said = run_cli("calibrate", "--from", *fit_on, "--receivers", str(RECEIVERS), "--out", str(out))
    lines = said.stdout.splitlines()
    fits = [line for line in lines if line.startswith("sensor")]
    assert len(fits) == 12 and all("samples" in f and "residual" in f for f in fits)
    text = out.read_text()
    assert 'file = "site.toml"' in text and str(TRACKS / "straight_01.csv") in text
    clamped = [line for line in lines if "edge of the search" in line]
    assert text.count("edge of the search") == len(clamped)  # every warning also in the file
    for chunk in text.split("\n\n"):  # a receiver: its comments, then its table
        if "path_loss_exponent" in chunk:
            exponent = float(chunk.split("path_loss_exponent = ")[1].split()[0])
            if exponent in (1.2, 5.0):  # at an edge: never written without saying so
                assert "edge of the search" in chunk, chunk
