"""Scoring on the simulated store, where the truth is complete: distance error, zone accuracy,
false zone changes and zone-entry delay, for the agent's filter, the peers' filters and an oracle
that knows each device's true mean signal (path loss and shadowing, no fading).

Every filter feeds the same distance model (the config's ``[proximity]``, the frame's stated
power at 1 m) and the agent's own zone machine (``PresenceEngine``), ticked every
``pipeline.tick_s``; only the smoothed RSSI differs. Static shadowing is a floor no
single-receiver filter can beat, which is why the oracle is the yardstick.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.config import AgentConfig
from edge_agent.errors import ScenarioError
from edge_agent.models import ContextEvent, DeviceClass, PresenceBody
from edge_agent.pipeline import floorplan, kernels
from edge_agent.pipeline.fusion import FusionEngine, Position
from edge_agent.pipeline.fusion_feed import FusionFeed
from edge_agent.pipeline.identity import DeviceRef, Identity
from edge_agent.pipeline.proximity import DeviceTable, Estimate
from edge_agent.pipeline.tick import Ticker
from edge_agent.pipeline.zones import PresenceEngine
from edge_agent.tools.evaluation import NEAR_M, Filter
from firmware_sim.devices import Firmware
from firmware_sim.store import StoreSim, Truth, load_scenario, simulate
from firmware_sim.survey import SurveyWalk, shadowing_known_config, surveyed_config

ORACLE = "oracle (true mean signal)"
"""The oracle through today's single-receiver zone machine."""
FUSED_ORACLE = "oracle, fused"
"""The oracle's true mean signals through the fusion engine."""
FUSED = "ours (fused)"
"""The agent as configured on a floor plan: every receiver's samples fused."""
MOBILE = ("cart", "staff", "shopper")
MATCH_WINDOW_S = 3.0
"""An estimated zone change within this of a true one into the same zone is not false."""
ENTRY_HORIZON_S = 30.0
"""A true zone entry not followed by an estimated one within this counts as missed."""


@dataclass(slots=True, frozen=True)
class StoreRun:
    """What the simulated store produced, as arrays (mobile devices only)."""

    devices: list[str]
    """Device ids (index = device number)."""
    kinds: list[str]
    """Their classes."""
    receivers: list[str]
    """Receiver ids."""
    slot: np.ndarray
    """Per advert: device * receivers + receiver."""
    t: np.ndarray
    """Per advert: time, s."""
    rssi: np.ndarray
    """Per advert: RSSI heard, dBm."""
    tx_1m: np.ndarray
    """Per advert: power at 1 m the frame states, dBm."""
    oracle: np.ndarray
    """Per advert: the true mean signal (no fading), dBm."""
    true_m: np.ndarray
    """Per advert: true 3-D distance to the receiver, m."""
    truth: list[Truth]
    """Where every mobile device was, every second."""
    duration_s: float
    """Simulated time."""
    truth_gain: np.ndarray
    """Per ``truth`` row and receiver: the true mean signal there less the stated power at
    1 m, dB (the floor of any zone decision)."""

    @property
    def slot_classes(self) -> list[DeviceClass]:
        """The device class of every slot (``slot`` numbers them device by device)."""
        return [DeviceClass(k) for k in self.kinds for _ in self.receivers]


def run_store(scenario: str | Path, duration_s: float, seed: int | None = None) -> StoreRun:
    """Simulate and keep what scoring needs."""
    sim = StoreSim(load_scenario(scenario), seed)
    mobile: list[Firmware] = []
    index: dict[str, int] = {}
    rx_index = {r: j for j, r in enumerate(sim.receivers)}
    n_rx = len(sim.receivers)
    rows: list[tuple[int, float, float, float, float, float]] = []
    truth: list[Truth] = []
    truth_gain: list[np.ndarray] = []
    for _, adverts, tr in simulate(sim, duration_s, 0.0):
        truth += tr
        for t in tr:  # the floor: each receiver's true mean signal at the true position
            fw = next(d for d in sim.devices if d.id == t.device)
            mean = sim.channel.mean_rssi(
                np.array([[t.x, t.y]]), np.array([fw.tx_1m + fw.true_tx_offset_db])
            )
            truth_gain.append(mean[0] - fw.tx_1m)
        by_dev: dict[int, list[int]] = {}
        for k, a in enumerate(adverts):
            i = index.get(a.address)
            if i is None and a.address not in index:
                dev = next((d for d in sim.devices if d.address == a.address), None)
                if dev is not None and dev.kind in MOBILE:  # shoppers' phones come and go
                    mobile.append(dev)
                    index[a.address] = i = len(mobile) - 1
            if i is not None:
                by_dev.setdefault(i, []).append(k)
        for i, ks in by_dev.items():
            dev = mobile[i]
            ts = np.array([adverts[k].t for k in ks])
            xy = np.array([sim.paths[dev.id].at(t) for t in ts])
            mean = sim.channel.mean_rssi(xy, np.full(len(ks), dev.tx_1m + dev.true_tx_offset_db))
            dist = sim.channel.distance(xy)
            for row, k in enumerate(ks):
                a = adverts[k]
                j = rx_index[a.receiver]
                rows.append((i * n_rx + j, a.t, a.rssi, dev.tx_1m, mean[row, j], dist[row, j]))
    arr = np.array(rows, dtype=np.float64).reshape(-1, 6)
    return StoreRun(
        [d.id for d in mobile],
        [d.kind for d in mobile],
        list(sim.receivers),
        arr[:, 0].astype(np.int64),
        arr[:, 1].copy(),
        arr[:, 2].copy(),
        arr[:, 3].copy(),
        arr[:, 4].copy(),
        arr[:, 5].copy(),
        truth,
        duration_s,
        np.array(truth_gain).reshape(len(truth), len(sim.receivers)),
    )


@dataclass(slots=True, frozen=True)
class StoreScore:
    """One way of deciding zones on the simulated store."""

    filter: str
    """Name: a filter through the single-receiver zone machine, or fused."""
    distance_mae_m: float
    """Distance error over adverts truly under ``NEAR_M`` (single receiver; NaN fused)."""
    zone_accuracy: float
    """Share of device-seconds whose estimated zone is the true one."""
    false_changes_per_hour: float
    """Estimated zone entries no true entry explains, per device-hour."""
    entry_delay_p50_s: float
    """Median delay from a true zone entry to the estimated one."""
    entry_delay_p90_s: float
    """90th percentile of that delay."""
    missed_entries: float
    """Share of true zone entries with no estimated entry within ``ENTRY_HORIZON_S``."""
    position_m: float = math.nan
    """Median position error over device-seconds (fused only), metres."""


def score(run: StoreRun, cfg: AgentConfig, name: str, smoothed: np.ndarray) -> StoreScore:
    """Distance and zone figures for one smoothed-RSSI series (single-receiver machine)."""
    n = cfg.proximity.path_loss_exponent
    dist = kernels.distance(smoothed, run.tx_1m, n)
    near = (run.true_m < NEAR_M) & np.isfinite(dist)
    mae = float(np.abs(dist[near] - run.true_m[near]).mean())
    zones_at, entries = _zones(run, cfg, smoothed)
    return StoreScore(name, mae, *_zone_figures(run, zones_at, entries))


def score_fused(run: StoreRun, cfg: AgentConfig, name: str, rssi: np.ndarray) -> StoreScore:
    """Zone and position figures of the fusion engine over every receiver's ``rssi``."""
    zones_at, entries, position = _fused_zones(run, cfg, rssi)
    return StoreScore(name, math.nan, *_zone_figures(run, zones_at, entries), position)


def _zones(
    run: StoreRun, cfg: AgentConfig, smoothed: np.ndarray
) -> tuple[dict[tuple[int, int], str | None], list[tuple[int, float, str]]]:
    """Tick the agent's own device table (distance model, uncertainty, speed gate) and zone
    machine over the smoothed RSSI: the estimated zone of every device at every whole second,
    and every estimated entry (device, time, zone)."""
    cfg = cfg.model_copy(update={"receivers": [r.model_copy(update={"x": None, "y": None})
                                               for r in cfg.receivers]})  # fmt: skip
    engine = PresenceEngine(cfg)
    table = DeviceTable(cfg.proximity, cfg.receivers, capacity=len(run.devices) * 8)
    refs = _refs(run)
    slot_of = np.array(
        [table.slot(ref.id, rx, ref.kind) for ref in refs for rx in run.receivers],
        dtype=np.int64,
    )

    def feed(idx: np.ndarray, now: float) -> None:
        table.set_levels(
            list(slot_of[run.slot[idx]]),
            list(run.t[idx]),
            list(smoothed[idx]),
            list(run.tx_1m[idx]),
        )

    def locate(ref: DeviceRef, now: float) -> tuple[Estimate | None, Position | None]:
        if (
            table.last_seen(ref.id) < now - cfg.proximity.gone_after_s
            and ref.id not in engine.states
        ):
            return None, None
        return engine.locate(table, ref.id, now), None

    return _tick_zones(run, cfg, engine, refs, np.isfinite(smoothed), feed, locate)


def _fused_zones(
    run: StoreRun, cfg: AgentConfig, rssi: np.ndarray
) -> tuple[dict[tuple[int, int], str | None], list[tuple[int, float, str]], float]:
    """The agent's fusion engine and zone machine over every receiver's samples ``rssi``
    (heard, or the oracle's true mean): zones and entries as ``_zones``, and the median
    position error over the devices' whole seconds."""
    plan = floorplan.build(cfg)
    if plan is None:
        raise ScenarioError("eval --store", "fused scoring needs receivers with x and y")
    fusion = FusionEngine(plan, cfg.fusion, capacity=len(run.devices) + 1)
    engine = PresenceEngine(cfg, fusion)
    refs = _refs(run)
    n_rx = len(run.receivers)
    fusion_feed = FusionFeed(cfg, fusion, Identity(cfg), share=False)  # the agent's own input
    gone = cfg.proximity.gone_after_s
    truth = {(tr.device, round(tr.t)): (tr.x, tr.y) for tr in run.truth}
    errors: list[float] = []

    def feed(idx: np.ndarray, now: float) -> None:
        for i in idx.tolist():
            d, r = divmod(int(run.slot[i]), n_rx)
            fusion_feed.local(refs[d], run.receivers[r], float(rssi[i]), float(run.tx_1m[i]))
        fusion_feed.step(now)

    def locate(ref: DeviceRef, now: float) -> tuple[Estimate | None, Position | None]:
        pos = fusion.position(ref.id)
        if pos is None or now - pos.t > gone:
            return None, None
        second = round(now)
        if abs(now - second) < 1e-6 and (ref.id, second) in truth:
            tx, ty = truth[(ref.id, second)]
            errors.append(math.hypot(pos.x - tx, pos.y - ty))
        return None, pos

    zones_at, entries = _tick_zones(run, cfg, engine, refs, np.isfinite(rssi), feed, locate)
    return zones_at, entries, float(np.median(errors)) if errors else math.nan


def _refs(run: StoreRun) -> list[DeviceRef]:
    return [
        DeviceRef(d, DeviceClass(k), registered=True, tx_power_1m=None)
        for d, k in zip(run.devices, run.kinds, strict=True)
    ]


def _tick_zones(
    run: StoreRun,
    cfg: AgentConfig,
    engine: PresenceEngine,
    refs: list[DeviceRef],
    usable: np.ndarray,
    feed: Callable[[np.ndarray, float], None],
    locate: Callable[[DeviceRef, float], tuple[Estimate | None, Position | None]],
) -> tuple[dict[tuple[int, int], str | None], list[tuple[int, float, str]]]:
    """The one tick loop of store scoring: ``feed`` a tick's adverts (indices into ``run``),
    then advance every device's zone machine with what ``locate`` says; the zone of every
    device at every whole second, and every entry (device, time, zone)."""
    zones_at: dict[tuple[int, int], str | None] = {}
    entries: list[tuple[int, float, str]] = []
    out: list[ContextEvent] = []
    next_second = [0]

    def run_tick(batch: list[int], now: float) -> None:
        if batch:
            feed(np.asarray(batch, dtype=np.int64), now)
        for dev, ref in enumerate(refs):
            est, pos = locate(ref, now)
            if est is None and pos is None and ref.id not in engine.states:
                continue
            out.clear()
            engine.evaluate(ref, est, now, now, out, pos)
            entries.extend(
                (dev, now, e.body.zone)
                for e in out
                if isinstance(e.body, PresenceBody) and e.type == "enter"
            )
        while next_second[0] <= now:
            for dev, ref in enumerate(refs):
                st = engine.states.get(ref.id)
                zones_at[(dev, next_second[0])] = st.zone if st else None
            next_second[0] += 1

    tick = cfg.pipeline.tick_s
    ticker: Ticker[int] = Ticker(tick, run_tick, start=0.0)
    order = np.argsort(run.t, kind="stable")
    for i in order[usable[order]]:
        ticker.add(int(i), float(run.t[i]))
    ticker.close(run.duration_s + tick / 2)  # through the tick that covers the end
    return zones_at, entries


def _zone_figures(
    run: StoreRun,
    zones_at: dict[tuple[int, int], str | None],
    entries: list[tuple[int, float, str]],
) -> tuple[float, float, float, float, float]:
    index = {d: i for i, d in enumerate(run.devices)}
    true_zone: dict[tuple[int, int], str | None] = {}
    for tr in run.truth:
        if tr.device in index:  # a device never heard is not scored
            true_zone[(index[tr.device], round(tr.t))] = tr.zone
    hits = [zones_at.get(key) == z for key, z in true_zone.items()]
    accuracy = float(np.mean(hits)) if hits else math.nan
    # true entries: the zone differs from the second before
    true_entries = [
        (dev, sec, z)
        for (dev, sec), z in true_zone.items()
        if z is not None and sec > 0 and true_zone.get((dev, sec - 1), z) != z
    ]
    false = 0
    for dev, t, z in entries:
        lo, hi = math.floor(t - MATCH_WINDOW_S), math.ceil(t + MATCH_WINDOW_S)
        if not any(true_zone.get((dev, s)) == z for s in range(lo, hi + 1)):
            false += 1
    hours = len(run.devices) * run.duration_s / 3600.0
    delays: list[float] = []
    missed = 0
    for dev, sec, z in true_entries:
        later = [
            t
            for d, t, zz in entries
            if d == dev and zz == z and sec - 2 <= t <= sec + ENTRY_HORIZON_S
        ]
        if later:
            delays.append(min(later) - sec)
        else:
            missed += 1
    p50 = float(np.percentile(delays, 50)) if delays else math.nan
    p90 = float(np.percentile(delays, 90)) if delays else math.nan
    return accuracy, false / hours, p50, p90, missed / max(len(true_entries), 1)


FLOOR_FUSED = "floor: true signal, true spot, fused"
"""Zone accuracy of the plan's most probable zone from every receiver's true mean signal at the
device's true position, second by second: no delay, no fading."""
FLOOR_STRONGEST = "floor: true signal, true spot, strongest"
"""The same for the zone of the strongest receiver."""


def floors(run: StoreRun, cfg: AgentConfig) -> list[StoreScore]:
    """Where any zone decision's accuracy ends, second by second with no delay: the zone the
    plan's model finds most probable (σ = ``proximity.shadowing_db``) and the zone of the
    strongest receiver, from each receiver's true mean signal at the device's true position.
    Static shadowing puts signals where the model does not expect them; nothing that listens
    to the radio alone does better."""
    plan = floorplan.build(cfg)
    if plan is None:
        return []
    rows = np.array([plan.receiver_index(r) for r in run.receivers], dtype=np.int64)
    sim_zone = {z: i for i, z in enumerate(plan.zones)}
    sigma = max(cfg.proximity.shadowing_db, 0.5)
    zone_of_rx = [_zone_at(plan, *plan.receiver_xyz[r, :2]) for r in rows]
    fused_hits = strongest_hits = 0
    scored = 0
    for tr, gain in zip(run.truth, run.truth_gain, strict=True):
        if tr.device not in run.devices or tr.zone not in sim_zone:
            continue
        e = (gain[:, None] - plan.gain[rows]) / sigma
        weight = np.exp(-0.5 * (e * e).sum(axis=0) + 0.5 * (e * e).sum(axis=0).min())
        probs = [
            weight[plan.zone_cells[plan.zone_starts[z] : plan.zone_starts[z + 1]]].sum()
            for z in range(len(plan.zones))
        ]
        fused_hits += plan.zones[int(np.argmax(probs))] == tr.zone
        strongest_hits += zone_of_rx[int(np.argmax(gain))] == tr.zone
        scored += 1
    nan = math.nan
    return [
        StoreScore(FLOOR_STRONGEST, nan, strongest_hits / max(scored, 1), nan, nan, nan, nan),
        StoreScore(FLOOR_FUSED, nan, fused_hits / max(scored, 1), nan, nan, nan, nan),
    ]


def _zone_at(plan: floorplan.FloorPlan, x: float, y: float) -> str | None:
    c = int(np.argmin((plan.cx - x) ** 2 + (plan.cy - y) ** 2))
    for z in range(len(plan.zones)):
        if c in plan.zone_cells[plan.zone_starts[z] : plan.zone_starts[z + 1]]:
            return plan.zones[z]
    return None


SURVEY = SurveyWalk()
"""The site survey of the surveyed rows: lines 1 m apart at 1 m/s (14 minutes on the demo
store)."""
SURVEYED = "ours (fused, survey's radio map)"
"""The agent fused with the radio map of a site survey of the store (``firmware_sim.survey``,
as ``calibrate --radio-map`` fits it)."""
SURVEYED_ORACLE = "oracle, fused, survey's radio map"
"""The oracle's true mean signals through that fusion."""


KNOWN = "ours (fused, shadowing known)"
"""The agent fused with the store's true shadowing as its radio map: what a perfect survey
would give."""
KNOWN_ORACLE = "oracle, fused, shadowing known"
"""The oracle's true mean signals through that fusion: only its dynamics (motion model,
hysteresis, dwell) stand between it and the truth."""


def score_store(
    run: StoreRun,
    cfg: AgentConfig,
    filters: dict[str, Filter],
    progress: Callable[[str], None] | None = None,
    scenario: str | Path | None = None,
    seed: int | None = None,
) -> list[StoreScore]:
    """The oracle through the single-receiver machine, then (on a floor plan) the oracle and
    the agent fused, as configured and (given the ``scenario``) surveyed, then every filter
    through the single-receiver machine (``progress`` is told which, as each begins)."""
    n_slots = len(run.devices) * len(run.receivers)
    jobs: list[tuple[str, Callable[[], StoreScore]]] = [
        (ORACLE, lambda: score(run, cfg, ORACLE, run.oracle))
    ]
    if cfg.floor_plan:
        jobs += [
            (FUSED_ORACLE, lambda: score_fused(run, cfg, FUSED_ORACLE, run.oracle)),
            (FUSED, lambda: score_fused(run, cfg, FUSED, run.rssi)),
        ]
        if scenario is not None:
            surveyed = surveyed_config(scenario, cfg, SURVEY, seed)
            known = shadowing_known_config(scenario, cfg, seed)
            jobs += [
                (SURVEYED_ORACLE, lambda: score_fused(run, surveyed, SURVEYED_ORACLE, run.oracle)),
                (SURVEYED, lambda: score_fused(run, surveyed, SURVEYED, run.rssi)),
                (KNOWN_ORACLE, lambda: score_fused(run, known, KNOWN_ORACLE, run.oracle)),
                (KNOWN, lambda: score_fused(run, known, KNOWN, run.rssi)),
            ]
    for name, fn in filters.items():
        label = f"{name} (single receiver)" if name == "ours" else name
        jobs.append((label, _filter_job(run, cfg, label, fn, n_slots)))
    out: list[StoreScore] = []
    for k, (name, job) in enumerate(jobs):
        if progress is not None:
            progress(f"scoring {name} ({k + 1} of {len(jobs)})")
        out.append(job())
    return out + floors(run, cfg)


def _filter_job(
    run: StoreRun, cfg: AgentConfig, label: str, fn: Filter, n_slots: int
) -> Callable[[], StoreScore]:
    return lambda: score(run, cfg, label, fn(run.slot, run.t, run.rssi, n_slots))


def report(scores: list[StoreScore]) -> str:
    """The table ``edge-agent eval --store`` prints."""
    width = max(len(s.filter) for s in scores) + 2
    lines = [
        f"{'zones decided by':<{width}}{'position':>10}{'dist MAE':>10}{'zone acc':>10}"
        f"{'false/h':>9}{'entry p50':>11}{'entry p90':>11}{'missed':>8}"
    ]
    for s in scores:
        pos = f"{s.position_m:>9.2f}m" if math.isfinite(s.position_m) else f"{'–':>10}"
        mae = f"{s.distance_mae_m:>9.2f}m" if math.isfinite(s.distance_mae_m) else f"{'–':>10}"
        if not math.isfinite(s.false_changes_per_hour):  # a floor: accuracy only
            lines.append(f"{s.filter:<{width}}{'–':>10}{'–':>10}{100 * s.zone_accuracy:>9.1f}%")
            continue
        lines.append(
            f"{s.filter:<{width}}{pos}{mae}{100 * s.zone_accuracy:>9.1f}%"
            f"{s.false_changes_per_hour:>9.2f}{s.entry_delay_p50_s:>10.1f}s"
            f"{s.entry_delay_p90_s:>10.1f}s{100 * s.missed_entries:>7.0f}%"
        )
    return "\n".join(lines)


TARGET_ACCURACY = 0.93
"""DESIGN §5: zone accuracy of the fused zones, at least."""
TARGET_FALSE_PER_HOUR = 2.0
"""... false zone changes per device-hour, at most."""
TARGET_ENTRY_P50_S = 3.0
"""... median zone-entry delay, at most."""


def verdict(scores: list[StoreScore], mine: str = FUSED) -> list[str]:
    """The store targets (DESIGN §5): one ``pass``/``FAIL`` line per target, and per figure
    one line saying whether it beats the single-receiver oracle and every baseline."""
    by = {s.filter: s for s in scores}
    if mine not in by:
        return [f"FAIL: no {mine!r} row: the config has no floor plan (receivers with x, y)"]
    me = by[mine]
    ours = {mine, FUSED_ORACLE, SURVEYED, SURVEYED_ORACLE, KNOWN, KNOWN_ORACLE, FLOOR_FUSED}
    rest = [s for s in scores if s.filter not in ours | {FLOOR_STRONGEST}]
    checks: list[tuple[str, bool, str, Callable[[StoreScore], float], bool]] = [
        (
            "zone accuracy",
            me.zone_accuracy >= TARGET_ACCURACY,
            f"{100 * me.zone_accuracy:.1f} % (target ≥ {100 * TARGET_ACCURACY:g} %)",
            lambda s: s.zone_accuracy,
            True,
        ),
        (
            "false zone changes",
            me.false_changes_per_hour <= TARGET_FALSE_PER_HOUR,
            f"{me.false_changes_per_hour:.1f} per device-hour (target ≤ {TARGET_FALSE_PER_HOUR:g})",
            lambda s: s.false_changes_per_hour,
            False,
        ),
        (
            "zone-entry delay p50",
            me.entry_delay_p50_s <= TARGET_ENTRY_P50_S,
            f"{me.entry_delay_p50_s:.1f} s (target ≤ {TARGET_ENTRY_P50_S:g} s)",
            lambda s: s.entry_delay_p50_s,
            False,
        ),
    ]
    lines: list[str] = []
    for name, ok, text, key, higher in checks:
        mine_v = key(me)
        beaten = [s.filter for s in rest if (key(s) >= mine_v if higher else key(s) <= mine_v)]
        lines.append(f"{'pass' if ok else 'FAIL'}: {name} {text}")
        if name != "zone-entry delay p50":
            lines.append(
                f"{'pass' if not beaten else 'FAIL'}: {name} better than the single-receiver "
                "oracle and every baseline" + (f" (not: {', '.join(beaten)})" if beaten else "")
            )
    return lines
