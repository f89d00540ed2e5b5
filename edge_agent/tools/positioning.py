"""Scoring of positions on captures with truth (DESIGN §5, fused position): the agent's fusion
against the ways peers and textbooks place a device.

At every instant (every 0.5 s, once every receiver of the capture has been heard) each method
gives a position and a nearest receiver; the figures are the median and 90th percentile of the
distance to the true position, and the share of instants whose nearest receiver is the truly
nearest. Calibration is fitted on the other captures (leave one out): the mean-signal model
(least squares over every distance) for fusion, the distance calibration of each filter for
the methods that use distances. Truth is used for nothing else.

Methods:

- **ours (fusion)**: the agent's own pipeline (``Pipeline`` with the floor plan), adverts in;
- **strongest receiver (raw)**: the position of the receiver whose latest RSSI is strongest;
- **<filter> + nearest receiver**: each peer filter's smoothed RSSI, calibrated to distance,
  and the position of the receiver it puts nearest (ESPresense, room-assistant, AltBeacon);
- **1/d² centroid**: today's fused line (our filter's distances, inverse-square weights);
- **trilateration (least squares)**: the point whose distances to the receivers best match
  our filter's distances, each instant on its own (no motion model).

The two distance methods get the mean-signal calibration too (with the distance calibration,
fitted near the receivers, they do far worse: the strongest baselines are the honest ones).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_agent.config import (
    AgentConfig,
    FusionConfig,
    GatewayConfig,
    PrivacyConfig,
    ProximityConfig,
    RadioMapConfig,
    ReceiverCalibration,
    ReceiverConfig,
)
from edge_agent.config.sections import PolicyConfig
from edge_agent.models import Advert
from edge_agent.pipeline import floorplan, kernels, radiomap
from edge_agent.pipeline.tick import Pipeline, Ticker
from edge_agent.tools import evaluation as ev

F64 = ev.F64
EVERY_S = 0.5
"""Instants are this far apart."""
HEARD_S = 15.0
"""A receiver's latest sample counts for this long (``proximity.gone_after_s``)."""
CAPTURE_ADDRESS = "C0:FF:EE:00:00:01"
"""The address a capture's beacon is given in the pipeline (one beacon per capture)."""
TARGETS = {"median_m": 1.3, "p90_m": 3.0, "nearest": 0.65}
"""DESIGN §5: median and p90 position error (at most), nearest-receiver share (at least)."""
OURS = "ours (fusion)"
"""Fusion calibrated on the other tracks: the mean-signal model and their radio map."""
NO_MAP = "ours (fusion, no radio map)"
"""Fusion with the mean-signal model only."""


@dataclass(slots=True, frozen=True)
class PositionScore:
    """One method on one capture (or ``all``)."""

    method: str
    """Method name."""
    track: str
    """Capture scored, or ``all``."""
    median_m: float
    """Median distance to the true position, metres."""
    p90_m: float
    """90th percentile of it."""
    nearest: float
    """Share of instants whose nearest receiver is the truly nearest."""
    instants: int
    """Instants scored."""


# ------------------------------------------------------------------------------ calibration


NEAR_FIT_M = 8.0
"""The mean-signal fit weighs samples under this distance 10 times more than those beyond:
a device is placed by the receivers near it, where the model must hold best."""


def fit_mean_model(
    parts: Sequence[tuple[ev.Capture, F64]], min_samples: int = 30
) -> dict[str, tuple[float, float]]:
    """Per receiver (and ``*`` for all together): RSSI at 1 m and exponent of the mean signal,
    weighted least squares of every valid raw sample on ``log10(distance)`` (``NEAR_FIT_M``);
    the exponent is held to ``1.2–5`` (then the offset is refitted)."""
    xs: dict[str, list[F64]] = {}
    ys: dict[str, list[F64]] = {}
    ws: dict[str, list[F64]] = {}
    for cap, dist in parts:
        ok = (cap.rssi < 0) & (cap.rssi >= -127)
        for i, name in enumerate(cap.receivers):
            m = ok & (cap.receiver == i)
            xs.setdefault(name, []).append(np.log10(np.maximum(dist[m], 0.1)))
            ys.setdefault(name, []).append(cap.rssi[m])
            ws.setdefault(name, []).append(np.where(dist[m] < NEAR_FIT_M, 1.0, 0.1))

    def fit(x: F64, y: F64, w: F64) -> tuple[float, float]:
        root = np.sqrt(w)
        design = np.column_stack([np.ones_like(x), -10.0 * x]) * root[:, None]
        (_, n), *_ = np.linalg.lstsq(design, y * root, rcond=None)
        n = min(max(float(n), 1.2), 5.0)
        return float(np.average(y + 10.0 * n * x, weights=w)), n

    out: dict[str, tuple[float, float]] = {}
    for name in xs:
        x, y, w = (np.concatenate(v[name]) for v in (xs, ys, ws))
        if len(x) >= min_samples:
            out[name] = fit(x, y, w)
    out["*"] = fit(*(np.concatenate([np.concatenate(a) for a in v.values()]) for v in (xs, ys, ws)))
    return out


def survey_map(
    parts: Sequence[tuple[ev.Capture, F64]], model: dict[str, tuple[float, float]]
) -> RadioMapConfig | None:
    """The radio map of captures with truth (and each sample's true distance): every valid
    raw sample against its receiver's mean-signal ``model`` (RSSI at 1 m, exponent; ``*``
    for receivers without one of their own), at its true position; ``None`` without one."""
    xs: list[F64] = []
    ys: list[F64] = []
    rxs: list[ev.I64] = []
    res: list[F64] = []
    names = sorted({n for cap, _ in parts for n in cap.receivers})
    for cap, dist in parts:
        ok = kernels.valid_rssi(cap.rssi)
        for i, name in enumerate(cap.receivers):
            fitted = model.get(name, model.get("*"))
            if fitted is None:
                continue
            at_1m, n = fitted
            m = ok & (cap.receiver == i)
            xs.append(cap.truth[m, 0])
            ys.append(cap.truth[m, 1])
            rxs.append(np.full(int(m.sum()), names.index(name), dtype=np.int64))
            res.append(cap.rssi[m] - at_1m - floorplan.path_gain(dist[m], n))
    if not xs or not sum(len(x) for x in xs):
        return None
    return radiomap.fit(
        np.concatenate(xs), np.concatenate(ys), np.concatenate(rxs), np.concatenate(res), names
    )


def agent_config(
    positions: dict[str, tuple[float, float, float]],
    receivers: Sequence[str],
    mean_model: dict[str, tuple[float, float]],
    distance_cal: dict[str, tuple[float, float]],
    prox: ProximityConfig,
    fusion: FusionConfig,
    rmap: RadioMapConfig | None = None,
) -> AgentConfig:
    """The agent's config for a capture: its receivers on the plan, calibrated (both models,
    and the radio map ``rmap``), every device followed."""
    tx = prox.tx_power_1m_dbm
    cal = []
    for name in receivers:
        at_1m, n = distance_cal.get(name, distance_cal["*"])
        m_at_1m, m_n = mean_model.get(name, mean_model["*"])
        cal.append(
            ReceiverCalibration(
                id=name,
                rssi_offset_db=round(tx - at_1m, 3),
                path_loss_exponent=n,
                mean_offset_db=round(tx - m_at_1m, 3),
                mean_exponent=round(m_n, 4),
            )
        )
    everything = PolicyConfig(
        public="track", random_static="track", resolvable="track", non_resolvable="track"
    )
    return AgentConfig.model_validate(
        {
            "gateway": GatewayConfig(id="eval", site="eval", state_dir="/nonexistent"),
            "proximity": prox,
            "fusion": fusion,
            "privacy": PrivacyConfig(policy=everything),
            "receivers": [
                ReceiverConfig(id=r, x=positions[r][0], y=positions[r][1], z=positions[r][2])
                for r in receivers
            ],
            "calibration": {"receivers": cal, "radio_map": rmap},
        }
    )


# ---------------------------------------------------------------------------------- methods


def instants(cap: ev.Capture) -> F64:
    """Every ``EVERY_S`` from the moment every receiver has been heard."""
    firsts = [cap.t[cap.receiver == i].min() for i in range(len(cap.receivers))]
    return np.arange(max(firsts), cap.t[-1], EVERY_S)


def _latest(cap: ev.Capture, values: F64, times: F64) -> F64:
    """Per instant and receiver: the latest finite value at or before it within
    ``HEARD_S`` (NaN otherwise), shape (instants, receivers)."""
    out = np.full((len(times), len(cap.receivers)), np.nan)
    for i in range(len(cap.receivers)):
        m = (cap.receiver == i) & np.isfinite(values)
        t, v = cap.t[m], values[m]
        k = np.searchsorted(t, times, side="right") - 1
        ok = (k >= 0) & (times - t[np.maximum(k, 0)] <= HEARD_S)
        out[ok, i] = v[k[ok]]
    return out


def _pick(score: F64, lowest: bool) -> ev.I64:
    """Per instant, the receiver with the lowest (distances) or highest (RSSI) score."""
    filled = np.where(np.isfinite(score), score, np.inf if lowest else -np.inf)
    k = np.argmin(filled, axis=1) if lowest else np.argmax(filled, axis=1)
    return np.asarray(k, dtype=np.int64)


def centroid(dist: F64, rx_xy: F64) -> F64:
    """Inverse-square-distance weighted centroid of the receivers, per instant."""
    w = np.where(np.isfinite(dist), 1.0 / np.maximum(dist, 0.1) ** 2, 0.0)
    total = np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    return np.asarray((w @ rx_xy) / total)


def trilaterate(dist: F64, rx_xyz: F64, tag_z: float, grid: F64) -> F64:
    """Least squares of ``|p - r_i| - d_i`` over the points of ``grid`` (n, 2), per instant:
    a search, not Gauss-Newton, so that no instant diverges."""
    dz2 = (rx_xyz[:, 2] - tag_z) ** 2
    geo = np.sqrt(
        (grid[:, None, 0] - rx_xyz[None, :, 0]) ** 2
        + (grid[:, None, 1] - rx_xyz[None, :, 1]) ** 2
        + dz2[None, :]
    )  # (points, receivers)
    out = np.empty((len(dist), 2))
    for k, d in enumerate(dist):
        ok = np.isfinite(d)
        cost = ((geo[:, ok] - d[ok][None, :]) ** 2).sum(axis=1)
        out[k] = grid[int(np.argmin(cost))]
    return out


def fused(cap: ev.Capture, cfg: AgentConfig, times: F64) -> tuple[F64, list[str]]:
    """The agent's pipeline over the capture: its fused position and nearest receiver at
    every instant (NaN before its first step)."""
    pipeline = Pipeline(cfg)
    fusion = pipeline.fusion
    assert fusion is not None
    xy = np.full((len(times), 2), np.nan)
    near = [""] * len(times)
    cursor = [0]

    tick = cfg.pipeline.tick_s

    def run(batch: list[Advert], end: float) -> None:
        # instants before this tick see what the ticks before it concluded (no look-ahead)
        while cursor[0] < len(times) and times[cursor[0]] <= end - tick:
            placed = fusion.placed
            pos = fusion.position(placed[0]) if placed else None
            if pos is not None:
                xy[cursor[0]] = (pos.x, pos.y)
                near[cursor[0]] = pos.nearest
            cursor[0] += 1
        pipeline.process(batch, end, end)

    ticker: Ticker[Advert] = Ticker(cfg.pipeline.tick_s, run, start=float(cap.t[0]))
    for t, rx, rssi in zip(cap.t, cap.receiver, cap.rssi, strict=True):
        advert = Advert(CAPTURE_ADDRESS, round(float(rssi)), float(t), float(t), cap.receivers[rx])
        ticker.add(advert, float(t))
    ticker.flush(float(cap.t[-1]))
    return xy, near


def score_methods(
    captures: Sequence[ev.Capture],
    positions: dict[str, tuple[float, float, float]],
    prox: ProximityConfig | None = None,
    fusion: FusionConfig | None = None,
) -> list[PositionScore]:
    """Every method on every capture, calibrated on the others, then ``all`` (the instants
    of every capture pooled)."""
    prox = prox or ProximityConfig()
    fusion = fusion or FusionConfig()
    filters = {"ours": ev.ours(prox), **dict(list(ev.baselines().items())[1:])}
    dist_true = [ev.true_distances(c, positions) for c in captures]
    smoothed = {
        name: [fn(c.receiver, c.t, c.rssi, len(c.receivers)) for c in captures]
        for name, fn in filters.items()
    }
    errors: dict[str, list[F64]] = {}
    hits: dict[str, list[F64]] = {}
    scores: list[PositionScore] = []
    for k, cap in enumerate(captures):
        others = [j for j in range(len(captures)) if j != k] or [k]
        times = instants(cap)
        rx_xyz = np.array([positions[n] for n in cap.receivers])
        rx_xy = rx_xyz[:, :2]
        truth = cap.truth[np.maximum(np.searchsorted(cap.t, times, side="right") - 1, 0)]
        true_near = np.argmin(
            np.linalg.norm(truth[:, None, :] - rx_xyz[None, :, :], axis=2), axis=1
        )
        mean_model = fit_mean_model([(captures[j], dist_true[j]) for j in others])
        results: dict[str, tuple[F64, ev.I64]] = {}
        cals: dict[str, dict[str, tuple[float, float]]] = {}
        for name in filters:
            cals[name] = ev.fit_calibration(
                [(captures[j], smoothed[name][j], dist_true[j]) for j in others]
            )
        # the map never learns from the scored track, even when it is the only one (``others``
        # then falls back to it for the models)
        rmap = survey_map([(captures[j], dist_true[j]) for j in others if j != k], mean_model)
        for method, with_map in ((OURS, rmap), (NO_MAP, None)):
            cfg = agent_config(
                positions, cap.receivers, mean_model, cals["ours"], prox, fusion, with_map
            )
            xy, near_names = fused(cap, cfg, times)
            near_idx = np.array(
                [cap.receivers.index(n) if n else -1 for n in near_names], dtype=np.int64
            )
            results[method] = (xy, near_idx)
        raw_latest = _latest(cap, np.where(kernels.valid_rssi(cap.rssi), cap.rssi, np.nan), times)
        k_raw = _pick(raw_latest, lowest=False)
        results["strongest receiver (raw RSSI)"] = (rx_xy[k_raw], k_raw)
        for name in filters:
            dist = _latest(cap, ev.estimate_distance(cap, smoothed[name][k], cals[name]), times)
            k_near = _pick(dist, lowest=True)
            label = "ours (filter)" if name == "ours" else name
            results[f"{label} + nearest receiver"] = (rx_xy[k_near], k_near)
            if name == "ours":
                # the distance methods get the calibration fusion gets (the mean-signal model
                # over every distance): with the distance calibration, fitted near the
                # receivers, they place devices twice as far off
                model = np.array([mean_model.get(n, mean_model["*"]) for n in cap.receivers])
                dist = _latest(
                    cap,
                    kernels.distance(
                        smoothed[name][k], model[cap.receiver, 0], model[cap.receiver, 1]
                    ),
                    times,
                )
                c_xy = centroid(dist, rx_xy)
                results["1/d² centroid (today)"] = (c_xy, _nearest_to(c_xy, rx_xyz, fusion))
                grid = _grid(rx_xy, 0.25)
                t_xy = trilaterate(dist, rx_xyz, fusion.tag_height_m, grid)
                results["trilateration (least squares)"] = (
                    t_xy,
                    _nearest_to(t_xy, rx_xyz, fusion),
                )
        for method, (xy_m, k_m) in results.items():
            err = np.linalg.norm(xy_m - truth[:, :2], axis=1)
            err = np.where(np.isfinite(err), err, np.inf)  # no estimate yet: a miss
            hit = (k_m == true_near).astype(np.float64)
            errors.setdefault(method, []).append(err)
            hits.setdefault(method, []).append(hit)
            scores.append(_score(method, cap.name, err, hit))
    for method in errors:
        scores.append(
            _score(method, "all", np.concatenate(errors[method]), np.concatenate(hits[method]))
        )
    return scores


def _score(method: str, track: str, err: F64, hit: F64) -> PositionScore:
    return PositionScore(
        method,
        track,
        float(np.median(err)),
        float(np.percentile(err, 90)),
        float(hit.mean()) if len(hit) else math.nan,
        len(err),
    )


def _grid(rx_xy: F64, step: float) -> F64:
    lo = rx_xy.min(axis=0) - 1.0
    hi = rx_xy.max(axis=0) + 1.0
    xs = np.arange(lo[0], hi[0] + 1e-9, step)
    ys = np.arange(lo[1], hi[1] + 1e-9, step)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    return np.column_stack([gx.ravel(), gy.ravel()])


def _nearest_to(xy: F64, rx_xyz: F64, fusion: FusionConfig) -> ev.I64:
    """The receiver nearest to each position (at tag height)."""
    dz2 = (rx_xyz[:, 2] - fusion.tag_height_m) ** 2
    d2 = ((xy[:, None, :] - rx_xyz[None, :, :2]) ** 2).sum(axis=2) + dz2[None, :]
    return np.asarray(np.argmin(d2, axis=1), dtype=np.int64)


def report(scores: Sequence[PositionScore]) -> str:
    """The table ``edge-agent eval`` prints for positions."""
    tracks = list(dict.fromkeys(s.track for s in scores))
    methods = list(dict.fromkeys(s.method for s in scores))
    width = max(len(m) for m in methods) + 2
    head = f"{'method':<{width}}" + "".join(f"{t[:20]:>22}" for t in tracks)
    lines = [
        "position error median / p90 (m) and truly-nearest receiver share, every "
        f"{EVERY_S:g} s once every receiver is heard; calibration fitted on the other tracks",
        head,
    ]
    by = {(s.method, s.track): s for s in scores}
    for m in methods:
        cells = []
        for t in tracks:
            s = by[(m, t)]
            cells.append(f"{s.median_m:5.2f} /{s.p90_m:5.2f} {100 * s.nearest:4.0f}%".rjust(22))
        lines.append(f"{m:<{width}}" + "".join(cells))
    return "\n".join(lines)


def verdict(scores: Sequence[PositionScore]) -> list[str]:
    """pass/FAIL lines: each target, and each figure better than every baseline."""
    pooled = {s.method: s for s in scores if s.track == "all"}
    me = pooled[OURS]
    rest = [s for m, s in pooled.items() if m not in (OURS, NO_MAP)]
    lines = []
    for key, label, higher in (
        ("median_m", "median position error", False),
        ("p90_m", "p90 position error", False),
        ("nearest", "nearest receiver", True),
    ):
        mine = getattr(me, key)
        target = TARGETS[key]
        ok = mine >= target if higher else mine <= target
        lines.append(
            f"{'pass' if ok else 'FAIL'}: {label} {_shown(mine, higher)} (target "
            f"{'≥' if higher else '≤'} {_shown(target, higher)})"
        )
        beaten = [
            s.method
            for s in rest
            if (getattr(s, key) >= mine if higher else getattr(s, key) <= mine)
        ]
        best = (max if higher else min)(rest, key=lambda s: getattr(s, key))
        lines.append(
            f"{'pass' if not beaten else 'FAIL'}: {label} better than every baseline "
            f"(best baseline: {best.method} {_shown(getattr(best, key), higher)})"
        )
    return lines


def _shown(value: float, share: bool) -> str:
    return f"{100 * value:.0f}%" if share else f"{value:.2f} m"
