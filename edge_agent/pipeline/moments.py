"""Moments that matter: the rules of ``[[moments]]`` over zone changes, occupancy, sensor values
and sightings, evaluated once per tick after the zones.

Hot and cold: a moment about one device fires only for devices the store knows by name (a
consented shopper, a registered badge, cart or sensor); for everyone else a dwell or sequence
rule only counts, and the count is published per interval (``moment/{name}/count``, k-anonymous).

Dwell and sequence moments are instants (once per visit; ``rate_limit_s`` per subject). Crowd,
sensor and absence moments hold: a ``start`` once the condition has held ``for_s``, one ``end``
when it stops. Which of those are under way is part of ``snapshot`` (kept by the runtime with
the events, in one transaction), so one that began before a restart ends after it, once.

The work per tick follows the news, not the devices tracked: dwells wait in a heap of due
times, sequences advance on zone changes, crowds read per-zone counts kept from the changes.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_agent import topics
from edge_agent.config import AgentConfig
from edge_agent.config.moments import (
    AbsenceRule,
    CrowdRule,
    DwellRule,
    MomentRule,
    SensorRule,
    SequenceRule,
    fleet_pattern,
)
from edge_agent.models import ContextEvent, DeviceClass, MomentBody, MomentCountBody, Priority
from edge_agent.pipeline.fusion import Position
from edge_agent.pipeline.identity import DeviceRef
from edge_agent.pipeline.zone_follow import ZoneFollower
from edge_agent.pipeline.zones import ZoneChange

Value = float | int | bool | str
Facts = dict[str, Value]
RECHECK_S = 0.5
"""A dwell that came due while its device seemed to be leaving is looked at again this soon."""
SEEN_GAP_S = 2.0
"""A watched device unheard for longer than this is away (since it was last heard)."""


def applies(rule: MomentRule, ref: DeviceRef) -> bool:
    """Whether ``rule`` is about devices like ``ref`` (its classes, devices, consent)."""
    if rule.classes and ref.kind not in rule.classes:
        return False
    if rule.consented and ref.registered and not ref.consented:
        return False  # a configured cart or badge; anonymous devices are still counted
    return not rule.devices or ref.id in rule.devices


def identified(ref: DeviceRef) -> bool:
    """A device moments may name: consented or registered, and published."""
    return ref.registered and ref.publish


@dataclass(slots=True)
class _Held:
    """A condition under way: ``start`` once it held ``for_s``, ``end`` when it stops."""

    since: float | None = None
    """When the condition began to hold (source clock); ``None`` while it does not."""
    active: bool = False
    """The start was published and its end is owed."""
    clear_since: float | None = None
    """When the condition stopped holding (``None`` while it holds): a dip shorter than
    ``clear_s`` neither ends a moment nor restarts the wait for one."""
    started_wall: float = 0.0
    """Wall clock of ``since`` for the published start."""
    ref: DeviceRef | None = None
    """The subject (``None`` for a place)."""
    zone: str | None = None
    """Where."""
    facts: Facts = field(default_factory=dict)
    """What started it."""


class MomentEngine:
    """Every ``[[moments]]`` rule of one gateway."""

    def __init__(self, cfg: AgentConfig, plan_zones: tuple[str, ...] = ()) -> None:
        self.rules = list(cfg.moments)
        self._k = cfg.privacy.k_anonymity
        self._interval = cfg.aggregates.interval_s
        self._dwell = [(i, r) for i, r in enumerate(self.rules) if isinstance(r, DwellRule)]
        self._sequence = [(i, r) for i, r in enumerate(self.rules) if isinstance(r, SequenceRule)]
        self._crowd = [(i, r) for i, r in enumerate(self.rules) if isinstance(r, CrowdRule)]
        self._sensor = [(i, r) for i, r in enumerate(self.rules) if isinstance(r, SensorRule)]
        self._absence = [(i, r) for i, r in enumerate(self.rules) if isinstance(r, AbsenceRule)]
        self.watched = frozenset(d for _, r in self._absence for d in r.devices)
        """Devices whose sightings ``heard`` must be told of (absence rules)."""
        self._named = {d: DeviceRef(d, _kind_of(cfg, d), True, None) for d in self.watched}
        """Watched devices as moments name them before they are first heard."""
        self.sensed = frozenset(r.measurement for _, r in self._sensor)
        """Measurements ``reading`` must be told of."""
        self._visits: dict[tuple[int, str], float] = {}
        """Per dwell rule and device: when its visit began."""
        self._away: dict[tuple[int, str], float] = {}
        """When a visiting device left the zone (it may come back within ``max_gap_s``)."""
        self._done: set[tuple[int, str]] = set()
        """Visits whose dwell moment (or count) was given."""
        self._due: list[tuple[float, int, str, float]] = []
        self._refs: dict[str, DeviceRef] = {}
        self._progress: dict[tuple[int, str], tuple[int, float]] = {}
        self._zone_counts: dict[str, Counter[str]] = {}
        followed = {r.zone for _, r in self._crowd} | {r.zone for _, r in self._dwell}
        self.follower = ZoneFollower(plan_zones, followed)
        """On a floor plan, moments read fused positions (``placed``): a crowd is the number of
        devices more likely in its zone than not, which follows the devices without the zone
        machine's hysteresis and delay; a dwell fires only while its device is more likely in
        the zone than not."""
        self._zone_of: dict[str, str] = {}
        self._values: dict[tuple[str, str], tuple[Value, float]] = {}
        self._seen: dict[str, float] = {}
        self._held: dict[tuple[int, str], _Held] = {}
        self._fired: dict[tuple[int, str], float] = {}
        self._counts: Counter[int] = Counter()
        self._interval_start: float | None = None
        self._restored: dict[str, Any] | None = None
        self._started_at: float | None = None
        self.dirty = False
        """Something ``snapshot`` holds changed since the runtime last saved it."""

    # ------------------------------------------------------------------------------- input

    def heard(self, ref: DeviceRef, now: float) -> None:
        """A watched device (``watched``) was heard."""
        self._seen[ref.id] = now
        self._refs[ref.id] = ref

    def reading(self, ref: DeviceRef, values: Mapping[str, Value], now: float) -> None:
        """A sensor's decoded values (every frame, before any deadband)."""
        if not ref.registered:
            return
        self._refs[ref.id] = ref
        for name in self.sensed.intersection(values):
            self._values[(ref.id, name)] = (values[name], now)

    def placed(self, ref: DeviceRef, pos: Position | None) -> None:
        """A device's latest fused position (``None``: it is no longer placed)."""
        self.follower.placed(ref, pos)

    def _probability(self, device: str, zone: str) -> float:
        """How likely the device is in ``zone`` by its latest fused position (1 without a
        floor plan: the zone machine's word is all there is)."""
        if not self.follower.follows(zone):
            return 1.0
        return self.follower.probability(device, zone)

    def _crowd_count(self, rule: CrowdRule) -> float:
        """Devices of the rule's classes in its zone: from positions on a floor plan, from the
        zone machine without one."""
        classes = [c.value for c in rule.classes]
        if self.follower.follows(rule.zone):
            return self.follower.count(rule.zone, classes)
        counts = self._zone_counts.get(rule.zone, Counter())
        return sum(counts[c] for c in classes) if classes else sum(counts.values())

    def forget(self, devices: set[str]) -> None:
        """Erase what the engine holds about these devices (the right to erasure)."""
        for store in (self._visits, self._away, self._progress, self._held, self._fired):
            for key in [k for k in store if k[1] in devices]:
                del store[key]
        self._done = {k for k in self._done if k[1] not in devices}
        for device in devices:
            self.follower.unplace(device)
            ref = self._refs.pop(device, None)
            self._seen.pop(device, None)
            zone = self._zone_of.pop(device, None)
            counts = self._zone_counts.get(zone or "")
            if ref is not None and counts is not None and counts[ref.kind.value] > 0:
                counts[ref.kind.value] -= 1
        for sensed in [k for k in self._values if k[0] in devices]:
            del self._values[sensed]
        self.dirty = True

    # -------------------------------------------------------------------------------- tick

    def step(
        self, changes: list[ZoneChange], now: float, wall: float, out: list[ContextEvent]
    ) -> None:
        """One tick: the zone changes since the last, then every rule at ``now``."""
        if self._started_at is None:
            self._started_at = now
            self._restore(now, wall)
        for ch in changes:
            self._change(ch, now, wall, out)
        self._due_dwells(now, wall, out)
        for i, crowd in self._crowd:
            n = self._crowd_count(crowd)
            self._hold(
                i,
                crowd,
                crowd.zone,
                None,
                n >= crowd.at_least,
                now,
                now,
                wall,
                out,
                {"count": n, "at_least": crowd.at_least},
            )
        for i, sensor in self._sensor:
            for (device, name), (value, t) in list(self._values.items()):
                if name != sensor.measurement:
                    continue
                ref = self._refs.get(device)
                if ref is None or not applies(sensor, ref):
                    continue
                held = now - t <= sensor.stale_s and beyond(sensor, value)
                facts: Facts = {"value": value, "threshold": _threshold(sensor)}
                self._hold(i, sensor, device, ref, held, now, now, wall, out, facts)
        for i, absence in self._absence:
            for device in absence.devices:
                self._absent(i, absence, device, now, wall, out)
        self._roll_interval(wall, out)

    def _change(self, ch: ZoneChange, now: float, wall: float, out: list[ContextEvent]) -> None:
        ref = ch.ref
        device = ref.id
        if ch.kind == "enter" and ch.zone is not None:
            self._refs[device] = ref
            self._zone_of[device] = ch.zone
            self._zone_counts.setdefault(ch.zone, Counter())[ref.kind.value] += 1
            for i, rule in self._dwell:
                if rule.zone == ch.zone and applies(rule, ref):
                    self._visit(i, rule, device, ch.t)
            for i, seq in self._sequence:
                if applies(seq, ref):
                    self._advance(i, seq, ref, ch, now, wall, out)
        elif ch.kind == "exit" and ch.zone is not None:
            if self._zone_of.get(device) == ch.zone:
                del self._zone_of[device]
            counts = self._zone_counts.get(ch.zone)
            if counts is not None and counts[ref.kind.value] > 0:
                counts[ref.kind.value] -= 1
            for i, rule in self._dwell:
                if rule.zone == ch.zone and (i, device) in self._visits:
                    self._away[(i, device)] = ch.t
        elif ch.kind == "gone":
            for i, _ in self._dwell:
                self._visits.pop((i, device), None)
                self._away.pop((i, device), None)
                self._done.discard((i, device))
            for i, _ in self._sequence:
                self._progress.pop((i, device), None)
            if device not in self.watched:
                self._refs.pop(device, None)

    def _visit(self, i: int, rule: DwellRule, device: str, t: float) -> None:
        """A device entered a dwell rule's zone: a new visit, or the same one back from a
        short absence."""
        key = (i, device)
        left = self._away.pop(key, None)
        start = self._visits.get(key)
        if start is not None and left is not None and t - left <= rule.max_gap_s:
            if key not in self._done:  # its dwell may have come due while it was away
                heapq.heappush(self._due, (max(t, start + rule.min_s), i, device, start))
            return
        self._visits[key] = t
        self._done.discard(key)
        heapq.heappush(self._due, (t + rule.min_s, i, device, t))

    def _due_dwells(self, now: float, wall: float, out: list[ContextEvent]) -> None:
        due = self._due
        while due and due[0][0] <= now:
            _, i, device, start = heapq.heappop(due)
            key = (i, device)
            if self._visits.get(key) != start or key in self._done or key in self._away:
                continue  # another visit by now, given already, or away (due again if back)
            rule = self.rules[i]
            assert isinstance(rule, DwellRule)
            if self._probability(device, rule.zone) < 0.5:  # about to leave: look again
                heapq.heappush(due, (now + RECHECK_S, i, device, start))
                continue
            self._done.add(key)
            ref = self._refs.get(device)
            if ref is None:
                continue
            facts: Facts = {"dwell_s": round(now - start, 1), "min_s": rule.min_s}
            self._instant(i, rule, ref, rule.zone, start, now, wall, facts, out)

    def _advance(
        self,
        i: int,
        rule: SequenceRule,
        ref: DeviceRef,
        ch: ZoneChange,
        now: float,
        wall: float,
        out: list[ContextEvent],
    ) -> None:
        key = (i, ref.id)
        step, t0 = self._progress.get(key, (0, ch.t))
        if step and ch.t - t0 > rule.within_s:
            step, t0 = 0, ch.t
        if ch.zone == rule.zones[step]:
            step += 1
            t0 = ch.t if step == 1 else t0
        elif ch.zone == rule.zones[0]:
            step, t0 = 1, ch.t
        if step == len(rule.zones):
            self._progress.pop(key, None)
            facts: Facts = {"zones": ",".join(rule.zones), "within_s": rule.within_s}
            self._instant(i, rule, ref, rule.zones[-1], t0, now, wall, facts, out)
        elif step:
            self._progress[key] = (step, t0)

    def _instant(
        self,
        i: int,
        rule: DwellRule | SequenceRule,
        ref: DeviceRef,
        zone: str,
        since: float,
        now: float,
        wall: float,
        facts: Facts,
        out: list[ContextEvent],
    ) -> None:
        """A dwell or sequence met: a moment for a named device, a count for anyone else."""
        if not identified(ref):
            self._counts[i] += 1
            self.dirty = True
            return
        key = (i, ref.id)
        last = self._fired.get(key)
        if last is not None and now - last < rule.rate_limit_s:
            return
        self._fired[key] = now
        out.append(
            self._event(rule, "instant", ref, zone, wall - (now - since), now - since, facts, wall)
        )

    def _hold(
        self,
        i: int,
        rule: CrowdRule | SensorRule | AbsenceRule,
        key: str,
        ref: DeviceRef | None,
        cond: bool,
        since: float,
        now: float,
        wall: float,
        out: list[ContextEvent],
        facts: Facts,
        zone: str | None = None,
    ) -> None:
        """Advance one held condition: ``since`` is when it began, if it holds now."""
        h = self._held.get((i, key))
        if h is None:
            if not cond:
                return
            h = self._held[(i, key)] = _Held()
        if cond:
            h.clear_since = None
            if h.since is None:
                h.since = since
            if not h.active and now - h.since >= rule.for_s:
                h.active = True
                h.started_wall = wall - (now - h.since)
                h.ref, h.facts = ref, facts
                h.zone = zone if zone is not None else getattr(rule, "zone", None)
                self.dirty = True
                out.append(
                    self._event(
                        rule, "start", ref, h.zone, h.started_wall, now - h.since, facts, wall
                    )
                )
            return
        if h.clear_since is None:
            h.clear_since = now
        if now - h.clear_since < rule.clear_s:
            return  # a dip shorter than clear_s: neither an end nor a new beginning
        if h.active:
            out.append(
                self._event(
                    rule,
                    "end",
                    h.ref,
                    h.zone,
                    h.started_wall,
                    wall - h.started_wall,
                    {**h.facts, **facts},
                    wall,
                )
            )
            self.dirty = True
        del self._held[(i, key)]

    def _absent(
        self,
        i: int,
        rule: AbsenceRule,
        device: str,
        now: float,
        wall: float,
        out: list[ContextEvent],
    ) -> None:
        """Away from the store since it was last heard (or the agent started), or away from
        its zone since now (the zone machine already waited out its exit)."""
        ref = self._refs.get(device) or self._named[device]
        if rule.zone is None:
            seen = self._seen.get(device, self._started_at or now)
            away = now - seen
            self._hold(
                i, rule, device, ref, away > SEEN_GAP_S, seen, now, wall, out, {"for_s": rule.for_s}
            )
        else:
            away_from_zone = self._zone_of.get(device) != rule.zone
            self._hold(
                i,
                rule,
                device,
                ref,
                away_from_zone,
                now,
                now,
                wall,
                out,
                {"for_s": rule.for_s},
                rule.zone,
            )

    def _event(
        self,
        rule: MomentRule,
        state: str,
        ref: DeviceRef | None,
        zone: str | None,
        started: float,
        duration: float,
        facts: Facts,
        wall: float,
    ) -> ContextEvent:
        return ContextEvent(
            topic=topics.moment(rule.name),
            type="moment",
            wall=wall,
            body=MomentBody(
                name=rule.name,
                trigger=rule.trigger,
                state=state,
                subject=ref.id if ref is not None and identified(ref) else None,
                subject_class=ref.kind.value if ref is not None and identified(ref) else None,
                zone=zone,
                started=started,
                duration_s=round(max(duration, 0.0), 1),
                facts=facts,
            ),
            priority=Priority.ALARM,
        )

    # ---------------------------------------------------------------------------- counts

    def _roll_interval(self, wall: float, out: list[ContextEvent]) -> None:
        start = math.floor(wall / self._interval) * self._interval
        if self._interval_start is None:
            self._interval_start = start
        if start <= self._interval_start:
            return
        counted: list[tuple[int, DwellRule | SequenceRule]] = [*self._dwell, *self._sequence]
        for i, rule in counted:
            n = self._counts[i]
            withheld = 0 < n < self._k
            out.append(
                ContextEvent(
                    topic=topics.moment_count(rule.name),
                    type="moment_count",
                    wall=self._interval_start + self._interval,
                    body=MomentCountBody(
                        name=rule.name,
                        trigger=rule.trigger,
                        zone=rule.zone if isinstance(rule, DwellRule) else rule.zones[-1],
                        count=None if withheld else n,
                        fewer_than_k=withheld,
                        k=self._k,
                        interval_start=self._interval_start,
                        interval_s=self._interval,
                    ),
                    priority=Priority.READING,
                )
            )
        self._counts.clear()
        self._interval_start = start
        self.dirty = True

    # ------------------------------------------------------------------------ persistence

    def snapshot(self) -> dict[str, Any]:
        """What must survive a restart: moments under way (their end is owed) and this
        interval's counts. Plain JSON values; wall-clock times."""
        self.dirty = False
        return {
            "held": [
                {
                    "rule": self.rules[i].name,
                    "key": key,
                    "started": h.started_wall,
                    "zone": h.zone,
                    "subject": h.ref.id if h.ref is not None else None,
                    "class": h.ref.kind.value if h.ref is not None else None,
                    "facts": h.facts,
                }
                for (i, key), h in self._held.items()
                if h.active
            ],
            "counts": {self.rules[i].name: n for i, n in self._counts.items()},
            "interval_start": self._interval_start,
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Take up a ``snapshot`` of a previous run (applied at the first ``step``)."""
        self._restored = dict(snapshot)

    def _restore(self, now: float, wall: float) -> None:
        snap, self._restored = self._restored, None
        if not snap:
            return
        index = {r.name: i for i, r in enumerate(self.rules)}
        for item in snap.get("held", []):
            i = index.get(item.get("rule"))
            if i is None:  # the rule is gone from the config: nothing will end it
                continue
            subject = item.get("subject")
            ref = (
                DeviceRef(subject, DeviceClass(item.get("class") or "unknown"), True, None)
                if subject
                else None
            )
            started = float(item.get("started", wall))
            self._held[(i, str(item.get("key")))] = _Held(
                since=now - (wall - started),
                active=True,
                started_wall=started,
                ref=ref,
                zone=item.get("zone"),
                facts=dict(item.get("facts") or {}),
            )
        if snap.get("interval_start") is not None:
            self._interval_start = float(snap["interval_start"])
            for name, n in (snap.get("counts") or {}).items():
                if name in index:
                    self._counts[index[name]] = int(n)


def _kind_of(cfg: AgentConfig, device: str) -> DeviceClass:
    """The class of a registered device id: its ``[[devices]]`` entry, or the fleet whose
    ``id_format`` gives it."""
    for dev in cfg.devices:
        if dev.id == device:
            return dev.kind
    for fleet in cfg.fleets:
        if fleet_pattern(fleet.id_format, fleet.kind.value).fullmatch(device):
            return fleet.kind
    return DeviceClass.ASSET


def beyond(rule: SensorRule, value: Value) -> bool:
    """Whether a sensor's value meets the rule's ``above``, ``below`` or ``equals``."""
    if rule.equals is not None:
        return value == rule.equals
    if isinstance(value, bool | str):
        return False
    if rule.above is not None:
        return value > rule.above
    return rule.below is not None and value < rule.below


def _threshold(rule: SensorRule) -> Value:
    for t in (rule.above, rule.below, rule.equals):
        if t is not None:
            return t
    return ""
