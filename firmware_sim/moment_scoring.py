"""Moments and aggregates of the agent against the simulated store's ground truth
(``edge-agent eval --moments``).

The whole pipeline (decoders, identity, fusion, zones, moments, aggregates) runs over the store
tick by tick; truth is where every mobile device was each second and what each sensor measured.

- **Dwell**: a truth dwell is a visit of a named device (a cart, a badge) to the rule's zone of
  at least ``min_s``, visits counted once the zone held ``presence.min_dwell_s`` and merged
  across gaps up to the rule's ``max_gap_s`` (the rule's own definition of one visit). A
  moment matches one when it is about the same device and zone and fires during the visit
  (up to ``TOLERANCE_S`` after its end): detection precision and recall over the run; how
  early or late each matched moment fired against the truth's ``start + min_s`` is reported
  beside them (median and 90th percentile of its size).
- **Incidents**: each scripted incident has the rule that must see it; the truth starts when
  the condition has held ``for_s`` (the sensor's own readings, the carts in the zone, the
  badge gone) and ends when it stops. The agent must start within ``DELAY_S`` after the truth
  and end within ``DELAY_S`` of it. Any other start is a false start.
- **Flow**: the flow matrix summed over the agent's published aggregates, against the truth's
  zone-to-zone transitions of the same classes, a visit being, for both, a stay of at least
  ``aggregates.min_visit_s``: total variation distance.
- **Privacy**: no moment names a pseudonymous device; no aggregate holds an id.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.config import AgentConfig
from edge_agent.config.moments import AbsenceRule, CrowdRule, DwellRule, SensorRule
from edge_agent.models import AggregateBody, ContextEvent, MomentBody, body_fields
from edge_agent.pipeline.aggregates import OUTSIDE
from edge_agent.pipeline.moments import beyond
from edge_agent.pipeline.tick import Pipeline, Ticker
from firmware_sim.incidents import IncidentSpec
from firmware_sim.store import StoreSim, Truth, load_scenario, simulate

WALL0 = 1_800_000_000.0
"""Wall clock of simulated time 0: a whole number of aggregate intervals."""
TOLERANCE_S = 10.0
"""A dwell moment may fire this much after the visit's end (the zone machine's exit delay)."""
MERGE_S = 5.0
"""Truth visits to one zone less than this apart are one visit."""
DELAY_S = 5.0
"""An incident's moment must start and end within this of the truth."""
TARGET_DWELL = 0.9
"""Dwell precision and recall (at least)."""
TARGET_TVD = 0.1
"""Flow matrix total variation distance (at most)."""


@dataclass(slots=True)
class MomentRun:
    """What the agent published and what truly happened."""

    moments: list[tuple[float, MomentBody]]
    """Every moment, with its simulated time."""
    aggregates: list[AggregateBody]
    """Every aggregate published."""
    truth: list[Truth]
    """Where every mobile device was, each second."""
    sim: StoreSim
    """The store at the end (sensor readings, incidents)."""
    duration_s: float
    """Simulated time."""
    published_ids: set[str]
    """Every device id the agent published anything under (for the privacy scan)."""
    anonymous_ids: set[str]
    """Every pseudonym the agent published (presence of unnamed devices)."""


def run_moments(
    scenario: str | Path,
    cfg: AgentConfig,
    duration_s: float,
    seed: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> MomentRun:
    """The store through the whole pipeline, keeping moments, aggregates and truth."""
    sim = StoreSim(load_scenario(scenario), seed)
    pipeline = Pipeline(cfg)
    moments: list[tuple[float, MomentBody]] = []
    aggregates: list[AggregateBody] = []
    published: set[str] = set()
    anonymous: set[str] = set()
    truth: list[Truth] = []

    def tick(batch: list, end: float) -> None:  # type: ignore[type-arg]
        for ev in pipeline.process(batch, end, WALL0 + end):
            _collect(ev, end, moments, aggregates, published, anonymous)

    ticker: Ticker = Ticker(cfg.pipeline.tick_s, tick, start=0.0)  # type: ignore[type-arg]
    next_note = 600.0
    for t1, adverts, tr in simulate(sim, duration_s, WALL0):
        truth += tr
        for a in adverts:
            ticker.add(a, a.t)
        ticker.close(t1)
        if progress is not None and t1 >= next_note:
            progress(f"  {t1:.0f} s of {duration_s:.0f} simulated")
            next_note += 600.0
    ticker.flush(duration_s + cfg.pipeline.tick_s)
    return MomentRun(moments, aggregates, truth, sim, duration_s, published, anonymous)


def _collect(
    ev: ContextEvent,
    t: float,
    moments: list[tuple[float, MomentBody]],
    aggregates: list[AggregateBody],
    published: set[str],
    anonymous: set[str],
) -> None:
    body = ev.body
    if isinstance(body, MomentBody):
        moments.append((t, body))
    elif isinstance(body, AggregateBody):
        aggregates.append(body)
    device = getattr(body, "device", None)
    if isinstance(device, str):
        published.add(device)
        if device.startswith("p-"):
            anonymous.add(device)


# ----------------------------------------------------------------------------------- truth


def visits(
    run: MomentRun, min_hold_s: float, merge_s: float = MERGE_S
) -> dict[str, list[tuple[str, float, float]]]:
    """Per device: its visits ``(zone, start, end)``, a zone counted once it held
    ``min_hold_s``, visits to one zone under ``merge_s`` apart merged."""
    rows: dict[str, list[Truth]] = defaultdict(list)
    for tr in run.truth:
        rows[tr.device].append(tr)
    out: dict[str, list[tuple[str, float, float]]] = {}
    for device, trs in rows.items():
        runs: list[tuple[str | None, float, float]] = []
        for tr in sorted(trs, key=lambda r: r.t):
            if runs and runs[-1][0] == tr.zone and tr.t - runs[-1][2] <= 1.5:
                runs[-1] = (tr.zone, runs[-1][1], tr.t)
            else:
                runs.append((tr.zone, tr.t, tr.t))
        kept: list[tuple[str, float, float]] = []
        for zone, a, b in runs:
            if zone is None or b - a + 1.0 < min_hold_s:
                continue
            if kept and kept[-1][0] == zone and a - kept[-1][2] <= merge_s:
                kept[-1] = (zone, kept[-1][1], b)
            else:
                kept.append((zone, a, b))
        out[device] = kept
    return out


@dataclass(slots=True, frozen=True)
class Interval:
    """When an incident's moment truly started and ended (simulated seconds)."""

    rule: str
    """The rule that must see it."""
    subject: str | None
    """The device it is about, or ``None`` for a place."""
    start: float
    """When the condition had held ``for_s``."""
    end: float
    """When it stopped holding."""


def incident_truth(run: MomentRun, cfg: AgentConfig) -> list[Interval]:
    """The truth of every scripted incident, by the rule of ``cfg`` that must see it."""
    out: list[Interval] = []
    for inc in run.sim.spec.incidents:
        for rule in cfg.moments:
            got = _truth_of(run, inc, rule)
            if got is not None:
                out.append(got)
    return out


def _truth_of(run: MomentRun, inc: IncidentSpec, rule: object) -> Interval | None:
    if inc.kind in ("warm", "door_open") and isinstance(rule, SensorRule):
        if inc.device not in rule.devices:
            return None
        fw = next(d for d in run.sim.devices if d.id == inc.device)
        return _held(rule.name, inc.device, list(fw.readings), rule, inc, run.duration_s)
    if inc.kind == "rush" and isinstance(rule, CrowdRule) and rule.zone == inc.zone:
        per_s: Counter[float] = Counter()
        for tr in run.truth:
            if tr.zone == rule.zone and (not rule.classes or tr.kind in rule.classes):
                per_s[tr.t] += 1
        series = [(t, float(per_s.get(t, 0))) for t in sorted({tr.t for tr in run.truth})]
        cond = [(t, n >= rule.at_least) for t, n in series]
        return _first_interval(
            rule.name, None, cond, rule.for_s, rule.clear_s, inc.at_s, run.duration_s
        )
    if inc.kind == "badge_leaves" and isinstance(rule, AbsenceRule):
        if inc.device not in rule.devices:
            return None
        back = inc.at_s + inc.duration_s + rule.clear_s
        return Interval(rule.name, inc.device, inc.at_s + rule.for_s, back)
    return None


def _held(
    name: str,
    device: str | None,
    readings: list[tuple[float, float]],
    rule: SensorRule,
    inc: IncidentSpec,
    until: float,
) -> Interval | None:
    cond = [(t, beyond(rule, v)) for t, v in readings]  # the agent's own test of a value
    return _first_interval(name, device, cond, rule.for_s, rule.clear_s, inc.at_s, until)


def _first_interval(
    name: str,
    subject: str | None,
    cond: list[tuple[float, bool]],
    for_s: float,
    clear_s: float,
    after: float,
    until: float,
) -> Interval | None:
    """The first moment from about ``after`` on: ``cond`` is a step function (each value
    holds until the next); it starts once true for ``for_s`` and ends once false for
    ``clear_s`` (a shorter false stretch breaks neither the wait nor the moment)."""
    runs: list[tuple[bool, float, float]] = []
    for k, (t, ok) in enumerate(cond):
        end = cond[k + 1][0] if k + 1 < len(cond) else until
        if runs and runs[-1][0] == ok:
            runs[-1] = (ok, runs[-1][1], end)
        else:
            runs.append((ok, t, end))
    start: float | None = None
    since: float | None = None  # a false stretch shorter than clear_s does not break a true one
    for ok, a, b in runs:
        if b < after - 60.0:
            continue
        if ok:
            since = a if since is None else since
            if start is None and b - since >= for_s:
                start = since + for_s
        elif b - a >= clear_s:
            if start is not None:
                return Interval(name, subject, start, a + clear_s)
            since = None
    return None if start is None else Interval(name, subject, start, until)


# ---------------------------------------------------------------------------------- scores


@dataclass(slots=True, frozen=True)
class MomentScore:
    """The figures of ``eval --moments``."""

    dwell_precision: float
    dwell_recall: float
    dwell_moments: int
    dwell_truths: int
    dwell_timing_s: tuple[float, float]
    """Median and 90th percentile of how far from ``start + min_s`` matched dwells fired."""
    incidents: list[tuple[Interval, float | None, float | None]]
    """Each incident's truth, and the agent's start and end delay (``None``: missed)."""
    false_starts: list[tuple[float, str, str | None]]
    """Starts matching no incident: time, rule, subject."""
    flow_tvd: float
    flow_transitions: tuple[int, int]
    """Transitions counted by the agent (published cells) and by the truth."""
    privacy_leaks: list[str]


def score(run: MomentRun, cfg: AgentConfig) -> MomentScore:
    """Every figure of the run."""
    named = {tr.device: tr.kind for tr in run.truth if tr.kind in ("cart", "staff")}
    hits = fired = truths = found = 0
    timing: list[float] = []
    for rule in cfg.moments:
        if not isinstance(rule, DwellRule):
            continue
        all_visits = visits(run, cfg.presence.min_dwell_s, rule.max_gap_s)
        mine = [(t, m) for t, m in run.moments if m.name == rule.name]
        want = [
            (device, a, b)
            for device, vs in all_visits.items()
            if device in named
            and (not rule.classes or named[device] in rule.classes)
            and (not rule.devices or device in rule.devices)
            for zone, a, b in vs
            if zone == rule.zone and b - a + 1.0 >= rule.min_s
        ]
        used: set[int] = set()
        for t, m in mine:
            fired += 1
            for k, (device, a, b) in enumerate(want):
                if k not in used and device == m.subject and a <= t <= b + TOLERANCE_S:
                    used.add(k)
                    hits += 1
                    timing.append(t - (a + rule.min_s))
                    break
        truths += len(want)
        found += len(used)
    incidents = []
    matched_starts: set[int] = set()
    starts = [(k, t, m) for k, (t, m) in enumerate(run.moments) if m.state == "start"]
    ends = [(t, m) for t, m in run.moments if m.state == "end"]
    for iv in incident_truth(run, cfg):
        start = next(
            (
                (k, t)
                for k, t, m in starts
                if m.name == iv.rule
                and m.subject == iv.subject
                and t >= iv.start - 60.0
                and k not in matched_starts
            ),
            None,
        )
        end = None
        if start is not None:
            matched_starts.add(start[0])
            end = next(
                (
                    t
                    for t, m in ends
                    if m.name == iv.rule and m.subject == iv.subject and t >= start[1]
                ),
                None,
            )
        incidents.append(
            (
                iv,
                None if start is None else start[1] - iv.start,
                None if end is None else end - iv.end,
            )
        )
    false = [(t, m.name, m.subject) for k, t, m in starts if k not in matched_starts]
    tvd, counts = _flow_tvd(run, cfg, visits(run, cfg.aggregates.min_visit_s))
    return MomentScore(
        hits / fired if fired else 1.0,
        found / truths if truths else 1.0,
        fired,
        truths,
        _spread(timing),
        incidents,
        false,
        tvd,
        counts,
        _leaks(run),
    )


def _spread(values: list[float]) -> tuple[float, float]:
    if not values:
        return (math.nan, math.nan)
    size = sorted(abs(v) for v in values)
    return (float(np.median(size)), float(np.percentile(size, 90)))


def _flow_tvd(
    run: MomentRun, cfg: AgentConfig, all_visits: dict[str, list[tuple[str, float, float]]]
) -> tuple[float, tuple[int, int]]:
    classes = {c.value for c in cfg.aggregates.classes}
    kinds = {tr.device: tr.kind for tr in run.truth}
    last_seen = {tr.device: tr.t for tr in run.truth}
    truth: Counter[tuple[str, str]] = Counter()
    # the agent's counts are of whole intervals: the truth is taken over the same span
    span = max((a.interval_start + a.interval_s - WALL0 for a in run.aggregates), default=0.0)
    for device, vs in all_visits.items():
        kind = kinds.get(device, "")
        if kind not in classes and not (kind == "shopper" and "unknown" in classes):
            continue
        before = OUTSIDE
        for zone, a, _ in vs:
            if a >= span:
                break
            if zone != before:
                truth[(before, zone)] += 1
            before = zone
        if before != OUTSIDE and last_seen[device] < min(span, run.duration_s) - 90.0:
            truth[(before, OUTSIDE)] += 1
    mine: Counter[tuple[str, str]] = Counter()
    for agg in run.aggregates:
        if agg.kind == "flow":
            for cell in agg.cells:
                mine[(cell.labels["from"], cell.labels["to"])] += cell.count
    n_mine, n_truth = sum(mine.values()), sum(truth.values())
    if not n_mine or not n_truth:
        return 1.0, (n_mine, n_truth)
    keys = set(mine) | set(truth)
    tvd = 0.5 * sum(abs(mine[k] / n_mine - truth[k] / n_truth) for k in keys)
    return tvd, (n_mine, n_truth)


def _leaks(run: MomentRun) -> list[str]:
    out = []
    for _, m in run.moments:
        if m.subject is not None and (m.subject in run.anonymous_ids or m.subject.startswith("p-")):
            out.append(f"moment {m.name} names pseudonym {m.subject}")
    ids = run.published_ids | {tr.device for tr in run.truth}
    for agg in run.aggregates:
        text = json.dumps(body_fields(agg))
        out += [f"aggregate {agg.kind} holds id {i}" for i in ids if f'"{i}"' in text]
    return out


def report(s: MomentScore) -> tuple[str, list[str]]:
    """The table and the pass/FAIL lines."""
    lines = [
        "moments against the simulated store's truth",
        f"dwell: precision {s.dwell_precision:.3f} ({s.dwell_moments} moments), "
        f"recall {s.dwell_recall:.3f} ({s.dwell_truths} truth dwells); fired "
        f"{s.dwell_timing_s[0]:.1f} s from the truth's start + min_s (median, p90 "
        f"{s.dwell_timing_s[1]:.1f} s)",
        f"{'incident':<34}{'truth start':>12}{'truth end':>11}{'start delay':>13}{'end delay':>11}",
    ]
    for iv, d0, d1 in s.incidents:
        who = f"{iv.rule}" + (f" ({iv.subject})" if iv.subject else "")
        start = "missed" if d0 is None else f"{d0:+.1f} s"
        end = "missed" if d1 is None else f"{d1:+.1f} s"
        lines.append(f"{who:<34}{iv.start:>12.0f}{iv.end:>11.0f}{start:>13}{end:>11}")
    lines.append(
        f"false starts: {len(s.false_starts)}"
        + "".join(f"\n  {t:.0f} s {name} {subj or ''}" for t, name, subj in s.false_starts[:10])
    )
    lines.append(
        f"flow matrix: total variation distance {s.flow_tvd:.3f} "
        f"(transitions: agent {s.flow_transitions[0]}, truth {s.flow_transitions[1]})"
    )
    verdict = []

    def check(ok: bool, text: str) -> None:
        verdict.append(f"{'pass' if ok else 'FAIL'}: {text}")

    check(
        s.dwell_precision >= TARGET_DWELL,
        f"dwell precision {s.dwell_precision:.3f} (target ≥ {TARGET_DWELL})",
    )
    check(
        s.dwell_recall >= TARGET_DWELL,
        f"dwell recall {s.dwell_recall:.3f} (target ≥ {TARGET_DWELL})",
    )
    for iv, d0, d1 in s.incidents:
        ok = d0 is not None and d1 is not None and -DELAY_S <= d0 <= DELAY_S and abs(d1) <= DELAY_S
        check(ok, f"{iv.rule} starts and ends within {DELAY_S:g} s of the truth")
    check(not s.false_starts, f"no false start ({len(s.false_starts)})")
    check(s.flow_tvd <= TARGET_TVD, f"flow matrix TVD {s.flow_tvd:.3f} (target ≤ {TARGET_TVD})")
    check(
        not s.privacy_leaks,
        "no pseudonym in a moment, no id in an aggregate"
        + "".join(f"\n  {x}" for x in s.privacy_leaks[:5]),
    )
    return "\n".join(lines), verdict
