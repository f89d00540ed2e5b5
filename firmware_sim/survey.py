"""A site survey of the simulated store: a beacon walked at a steady pace along lines across
the whole floor, heard by every receiver through the store's own channel (the same
shadowing the shoppers' carts meet, fresh fading and loss), with the truth of where it was.

It is what a field engineer records before ``edge-agent calibrate --from … --radio-map``: a
capture with truth (the columns of the shared tracks) and the receivers' positions (JSON).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge_agent.config import AgentConfig, RadioMapConfig
from edge_agent.pipeline import floorplan
from edge_agent.tools.evaluation import Capture, true_distances
from edge_agent.tools.positioning import survey_map
from firmware_sim.store import ScenarioSpec, StoreSim, load_scenario

F64 = npt.NDArray[np.float64]

SURVEY_ADDRESS = "5E:ED:00:00:00:01"
"""The survey beacon's address in the capture."""


@dataclass(slots=True, frozen=True)
class SurveyWalk:
    """How the survey is walked."""

    spacing_m: float = 1.0
    """Distance between the lines walked (east–west, turning at the walls)."""
    speed_mps: float = 1.0
    """Walking pace."""
    interval_s: float = 0.3
    """The beacon's advertising interval."""
    tx_1m_dbm: float = -59.0
    """The beacon's true power at 1 m (the agent's default ``proximity.tx_power_1m_dbm``)."""
    wall_m: float = 0.5
    """How near the walls the lines run."""


def positions(spec: ScenarioSpec, walk: SurveyWalk) -> F64:
    """Where the beacon is at each advert, (n, 2): lines ``spacing_m`` apart, alternately
    west→east and east→west."""
    step = walk.speed_mps * walk.interval_s
    lo, hi = walk.wall_m, spec.width_m - walk.wall_m
    pts: list[F64] = []
    for k, y in enumerate(np.arange(walk.spacing_m / 2, spec.depth_m, walk.spacing_m)):
        xs = np.linspace(lo, hi, max(math.ceil((hi - lo) / step), 2))
        pts.append(np.column_stack([xs if k % 2 == 0 else xs[::-1], np.full(len(xs), y)]))
    return np.concatenate(pts) if pts else np.zeros((0, 2))


def survey(spec: ScenarioSpec, walk: SurveyWalk, seed: int | None = None) -> Capture:
    """The survey as the store's receivers hear it: one row per advert heard."""
    sim = StoreSim(spec, seed)  # the store's channel: its shadowing, for this seed
    rng = np.random.default_rng((spec.seed if seed is None else seed) + 1_000_003)
    xy = positions(spec, walk)
    rssi, heard = sim.channel.sample(xy, np.full(len(xy), walk.tx_1m_dbm), rng)
    k, r = np.nonzero(heard > 0)
    t = k * walk.interval_s
    z = sim.radio.tag_height_m
    truth = np.column_stack([xy[k], np.full(len(k), z)])
    return Capture("survey", t.astype(np.float64), r.astype(np.int64), tuple(sim.receivers),
                   rssi[k, r].astype(np.float64), truth)  # fmt: skip


def receiver_positions(spec: ScenarioSpec) -> dict[str, tuple[float, float, float]]:
    """Every receiver's position, at the scenario's receiver height."""
    z = spec.radio.receiver_height_m
    return {r.id: (r.x, r.y, z) for r in spec.receivers}


def write(cap: Capture, spec: ScenarioSpec, out: Path, receivers_out: Path) -> None:
    """The capture CSV (``t, receiver, address, rssi, truth_x, truth_y, truth_z``) and the
    receivers' positions JSON (``{"receivers": [{"id", "x", "y", "z"}]}``)."""
    with out.open("w", newline="", encoding="utf-8") as handle:
        w = csv.writer(handle)
        w.writerow(["t", "receiver", "address", "rssi", "truth_x", "truth_y", "truth_z"])
        for t, r, rssi, (x, y, z) in zip(
            cap.t.tolist(), cap.receiver.tolist(), cap.rssi.tolist(), cap.truth.tolist(),
            strict=True,
        ):  # fmt: skip
            w.writerow([f"{t:.3f}", cap.receivers[r], SURVEY_ADDRESS, int(rssi),
                        f"{x:.3f}", f"{y:.3f}", f"{z:.3f}"])  # fmt: skip
    rx = [{"id": k, "x": x, "y": y, "z": z} for k, (x, y, z) in receiver_positions(spec).items()]
    receivers_out.write_text(json.dumps({"receivers": rx}, indent=1) + "\n", encoding="utf-8")


def surveyed_config(
    scenario: str | Path, cfg: AgentConfig, walk: SurveyWalk, seed: int | None = None
) -> AgentConfig:
    """``cfg`` with the radio map of a survey of the store (the same shadowing, fresh
    fading), fitted against the model ``cfg`` already has (``calibrate --radio-map`` also
    refits that model; in the simulation the configured one is the true path loss)."""
    spec = load_scenario(scenario)
    cap = survey(spec, walk, seed)
    tx = cfg.proximity.tx_power_1m_dbm
    model = {rx: (tx - offset, n) for rx, (offset, n) in floorplan.exponents(cfg).items()}
    rmap = survey_map([(cap, true_distances(cap, receiver_positions(spec)))], model)
    calibration = cfg.calibration.model_copy(update={"radio_map": rmap})
    return cfg.model_copy(update={"calibration": calibration})


KNOWN_CELL_M = 0.25
"""Grid of the true shadowing map."""


def shadowing_known_config(
    scenario: str | Path, cfg: AgentConfig, seed: int | None = None
) -> AgentConfig:
    """``cfg`` with the store's true shadowing, for its receivers, as the radio map (the
    config's model is the simulation's path loss)."""
    spec = load_scenario(scenario)
    channel = StoreSim(spec, seed).channel
    nx, ny = (math.ceil(side / KNOWN_CELL_M) for side in (spec.width_m, spec.depth_m))
    ii, jj = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    xy = np.column_stack([ii.ravel(), jj.ravel()]) * KNOWN_CELL_M + KNOWN_CELL_M / 2
    shadow = channel.shadowing(xy.astype(np.float64))
    mine = {r.id for r in cfg.receivers}
    rmap = RadioMapConfig(
        x0=0.0,
        y0=0.0,
        cell_m=KNOWN_CELL_M,
        nx=nx,
        ny=ny,
        correction_db={
            r.id: shadow[:, j].tolist() for j, r in enumerate(spec.receivers) if r.id in mine
        },
    )
    calibration = cfg.calibration.model_copy(update={"radio_map": rmap})
    return cfg.model_copy(update={"calibration": calibration})
