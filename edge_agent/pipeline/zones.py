"""Zone state machine per device (enter / update / exit with dwell) and per-zone occupancy."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from edge_agent import topics
from edge_agent.config import AgentConfig
from edge_agent.models import ContextEvent, DeviceClass, OccupancyBody, PresenceBody, Priority
from edge_agent.pipeline.fusion import FusionEngine, Position
from edge_agent.pipeline.identity import DeviceRef
from edge_agent.pipeline.proximity import DeviceTable, Estimate, band_for


@dataclass(slots=True)
class DeviceState:
    """Mutable per-device state of the zone machine (owned by ``PresenceEngine``)."""

    ref: DeviceRef
    zone: str | None = None
    entered_at: float = 0.0
    pending: str | None = None
    pending_since: float = 0.0
    last_update: float = 0.0
    band: str = "gone"
    last: Estimate | None = None
    anchor: str | None = None
    """Receiver the current zone was decided on (receiver hysteresis keeps it)."""
    in_zone: Estimate | None = None
    """The last estimate that placed the device in its zone (an ``exit`` reports it)."""
    in_zone_band: str = "gone"
    """The band of that estimate."""
    position: Position | None = None
    """The latest fused position (floor plan only)."""
    in_zone_position: Position | None = None
    """The last fused position that placed the device in its zone."""
    sent_at: float = 0.0
    """When its last ``enter`` or ``update`` was made."""
    sent_where: tuple[float, float, str] | None = None
    """Where that event put it: ``(x, y, band)`` on a floor plan, else ``(distance, 0, band)``."""


@dataclass(slots=True, frozen=True)
class ZoneChange:
    """One device entering or leaving a zone, or leaving the store: what moments and
    aggregates are made of (every device, published or only counted)."""

    ref: DeviceRef
    """The device."""
    kind: str
    """``enter``, ``exit`` or ``gone`` (forgotten: it left the store, or its pseudonym ended)."""
    zone: str | None
    """The zone entered or left (``None`` for ``gone``)."""
    t: float
    """When, source clock."""
    since: float
    """On ``exit``: when the device entered the zone (its dwell is ``t - since``); else ``t``."""


class PresenceEngine:
    """Turns per-device estimates into presence events and zone occupancy."""

    def __init__(self, cfg: AgentConfig, fusion: FusionEngine | None = None) -> None:
        self.cfg = cfg
        self.fusion = fusion
        """On a floor plan: zones come from fused positions (``evaluate``'s ``pos``)."""
        self._enter_p = cfg.fusion.enter_probability
        self._exit_p = cfg.fusion.exit_probability
        self._zone_index = (
            {z: i for i, z in enumerate(fusion.plan.zones)} if fusion is not None else {}
        )
        self._presence = cfg.presence
        self._prox = cfg.proximity
        self._zone_of_receiver = {r.id: r.zone for r in cfg.receivers}
        self.zoned_receivers = frozenset(self._zone_of_receiver)
        """Receivers that have a zone."""
        self._radius = {z.id: z.radius_m for z in cfg.zones}
        self._zones = [z.id for z in cfg.zones]
        self._k = cfg.privacy.k_anonymity
        self.states: dict[str, DeviceState] = {}
        self.changes: list[ZoneChange] = []
        """Zone changes since the pipeline last took them (``take_changes``)."""
        self._next_occupancy: float | None = None
        self._mean_over: dict[str, frozenset[str]] = {}
        self._unlinked = 0
        """Per zone: the devices the last published mean dwell was taken over."""
        self.updates_suppressed = 0
        """``update`` events not made: the device had not moved ``update_min_change_m``."""

    def reconfigure(self, cfg: AgentConfig) -> None:
        """Take up a new configuration whose tracking settings are the same (a reload): the
        rate limits and the occupancy interval may have changed."""
        self.cfg = cfg
        self._presence = cfg.presence
        self._k = cfg.privacy.k_anonymity

    def in_zone(self, zone: str) -> list[DeviceState]:
        """Devices currently in ``zone``."""
        return [s for s in self.states.values() if s.zone == zone]

    def locate(self, table: DeviceTable, device: str, now: float) -> Estimate | None:
        """The device's estimate from ``table``, keeping the receiver its zone was decided on
        until another is closer by ``presence.switch_margin_db``."""
        st = self.states.get(device)
        anchor = st.anchor if st is not None and st.zone is not None else None
        return table.nearest(device, now, anchor, self._presence.switch_margin_db)

    def confidence(self, est: Estimate, zone: str) -> float:
        """Probability, under the distance uncertainty, that the device is nearer to the
        estimate's receiver than to the runner-up and within the zone's radius."""
        d = max(est.distance_m, 1e-3)
        sigma = max(est.sigma, 1e-6)
        inside = _phi((math.log(self._radius[zone]) - math.log(d)) / sigma)
        if math.isinf(est.runner_up_m):
            return inside
        spread = math.hypot(sigma, est.runner_up_sigma)
        nearer = _phi((math.log(max(est.runner_up_m, 1e-3)) - math.log(d)) / spread)
        return inside * nearer

    def _candidate(self, st: DeviceState, est: Estimate | None) -> str | None:
        if est is None:
            return None
        zone = self._zone_of_receiver.get(est.receiver)
        if zone is None:
            return None
        limit = self._radius[zone] + (self._prox.hysteresis_m if zone == st.zone else 0.0)
        return zone if est.distance_m <= limit else None

    def _fused_candidate(self, st: DeviceState, pos: Position | None) -> str | None:
        """The zone a fused position puts the device in: its current zone while that keeps
        ``exit_probability``, else the most probable zone if it reaches
        ``enter_probability``."""
        if pos is None or not pos.zones:
            return None
        probs = pos.zones
        if st.zone is not None:
            i = self._zone_index.get(st.zone)
            if i is not None and probs[i] >= self._exit_p:
                return st.zone
        best = max(range(len(probs)), key=probs.__getitem__)
        return (
            self.fusion.plan.zones[best] if self.fusion and probs[best] >= self._enter_p else None
        )

    def evaluate(
        self,
        ref: DeviceRef,
        est: Estimate | None,
        now: float,
        wall: float,
        out: list[ContextEvent],
        pos: Position | None = None,
    ) -> None:
        """Advance one device's machine to ``now``; append the events it produces to ``out``.
        On a floor plan, ``pos`` (its fused position, ``None`` once it is not heard) decides
        the zone and ``est`` only describes the nearest receiver."""
        st = self.states.get(ref.id)
        fused = self.fusion is not None
        heard = pos is not None if fused else est is not None
        if st is None:
            if not heard:
                return
            st = self.states[ref.id] = DeviceState(ref)
        if est is not None:
            st.last = est
            st.band = band_for(est.distance_m, st.band, self._prox)
        else:
            st.band = "gone"
        st.position = pos
        cand = self._fused_candidate(st, pos) if fused else self._candidate(st, est)
        if cand == st.zone:
            st.pending = cand
            st.pending_since = now
            if heard and cand is not None:
                st.anchor = est.receiver if est is not None else None
                st.in_zone, st.in_zone_band = est, st.band
                st.in_zone_position = pos
            if st.zone is not None and now - st.last_update >= self._presence.update_interval_s:
                st.last_update = now
                if self._changed(st, now):
                    self._emit(out, "update", st, st.zone, now, wall)
                else:
                    self.updates_suppressed += 1
            return
        if cand != st.pending:
            st.pending = cand
            st.pending_since = now
        held = now - st.pending_since
        if st.zone is not None:
            # Leaving for another zone needs the new zone to hold for min_dwell; leaving for
            # nowhere needs the exit debounce; a device no receiver hears any more has already
            # waited gone_after_s.
            limit = (
                self._presence.min_dwell_s if cand is not None else self._presence.exit_debounce_s
            )
            if heard and held < limit:
                return
            self._emit(out, "exit", st, st.zone, now, wall)
            self.changes.append(ZoneChange(st.ref, "exit", st.zone, now, st.entered_at))
            st.zone = None
        if cand is not None and held >= self._presence.min_dwell_s:
            st.zone = cand
            st.anchor = est.receiver if est is not None else None
            st.in_zone, st.in_zone_band = est, st.band
            st.in_zone_position = pos
            st.entered_at = now
            st.last_update = now
            self._emit(out, "enter", st, cand, now, wall)
            self.changes.append(ZoneChange(st.ref, "enter", cand, now, now))

    def _changed(self, st: DeviceState, now: float) -> bool:
        """Whether an ``update`` is worth sending: the device moved ``update_min_change_m``
        or changed band since its last event, or ``update_heartbeat_s`` passed."""
        p = self._presence
        last = st.sent_where
        if p.update_min_change_m <= 0 or last is None or now - st.sent_at >= p.update_heartbeat_s:
            return True
        here = self._where(st)
        if here is None or here[2] != last[2]:
            return True
        return math.hypot(here[0] - last[0], here[1] - last[1]) >= p.update_min_change_m

    @staticmethod
    def _where(st: DeviceState) -> tuple[float, float, str] | None:
        if st.position is not None:
            return (st.position.x, st.position.y, st.band)
        if st.last is not None:
            return (st.last.distance_m, 0.0, st.band)
        return None

    def close(self, device: str, now: float, wall: float, out: list[ContextEvent]) -> None:
        """End a device's presence now (``exit`` if it is in a zone) and forget it."""
        st = self.states.pop(device, None)
        if st is not None:
            if st.zone is not None:
                self._emit(out, "exit", st, st.zone, now, wall)
                self.changes.append(ZoneChange(st.ref, "exit", st.zone, now, st.entered_at))
            self.changes.append(ZoneChange(st.ref, "gone", None, now, now))
        self._unlink(device)

    def drop(self, device: str, now: float | None = None) -> None:
        """Forget a device that is in no zone (at ``now``: it left; without: it was erased,
        and nothing about it is handed on)."""
        st = self.states.pop(device, None)
        if st is not None and now is not None:
            self.changes.append(ZoneChange(st.ref, "gone", None, now, now))
        self._unlink(device)

    def take_changes(self) -> list[ZoneChange]:
        """The zone changes since the last call (the pipeline hands them on each tick)."""
        changes, self.changes = self.changes, []
        return changes

    def _unlink(self, device: str) -> None:
        """A forgotten device's id leaves the sets the dwell means were taken over; a
        placeholder keeps its place, so that its going still counts as a change."""
        for zone, ids in self._mean_over.items():
            if device in ids:
                self._unlinked += 1
                self._mean_over[zone] = (ids - {device}) | {f"\x00forgotten-{self._unlinked}"}

    def _emit(
        self,
        out: list[ContextEvent],
        kind: str,
        st: DeviceState,
        zone: str,
        now: float,
        wall: float,
    ) -> None:
        """Publish a presence event, unless the device is only counted (``count_only``)."""
        if kind != "exit":
            st.sent_at, st.sent_where = now, self._where(st)
        if st.ref.publish:
            out.append(self._event(kind, st, zone, now, wall))

    def _event(
        self, kind: str, st: DeviceState, zone: str, now: float, wall: float
    ) -> ContextEvent:
        # an exit describes the zone left: where the device last was in it, not where it went
        est, band = (st.in_zone, st.in_zone_band) if kind == "exit" else (st.last, st.band)
        pos = st.in_zone_position if kind == "exit" else st.position
        distance = rssi = None
        receiver = None
        spread: tuple[float, float] | None = None
        confidence = 0.0
        x = y = error = None
        if est is not None:
            distance = round(est.distance_m, 2)
            rssi = round(est.rssi, 1)
            receiver = est.receiver
            lo, hi = est.distance_range_m
            spread = (round(lo, 2), round(hi, 2))
            confidence = round(self.confidence(est, zone), 3)
        if pos is not None and self.fusion is not None:
            # the nearest receiver, its distance and the band follow the fused position
            receiver = pos.nearest
            d = self.fusion.distance(pos, receiver)
            distance = round(d, 2)
            spread = (round(max(d - pos.error_m, 0.0), 2), round(d + pos.error_m, 2))
            band = band_for(d, band, self._prox)
            rssi = round(est.rssi, 1) if est is not None and est.receiver == receiver else rssi
            i = self._zone_index.get(zone)
            confidence = round(pos.zones[i], 3) if i is not None else 0.0
            x, y, error = round(pos.x, 2), round(pos.y, 2), round(pos.error_m, 2)
        return ContextEvent(
            topic=topics.presence(st.ref.id),
            type=kind,
            wall=wall,
            body=PresenceBody(
                device=st.ref.id,
                device_class=st.ref.kind.value,
                zone=zone,
                band=band,
                receiver=receiver,
                distance_m=distance,
                distance_range_m=spread,
                rssi=rssi,
                dwell_s=round(now - st.entered_at, 3) if kind != "enter" else 0.0,
                confidence=confidence,
                x=x,
                y=y,
                position_error_m=error,
            ),
            priority=Priority.UPDATE if kind == "update" else Priority.PRESENCE,
        )

    def occupancy(self, now: float, wall: float, out: list[ContextEvent]) -> None:
        """Every ``occupancy_interval_s``: a retained count per zone, by device class."""
        interval = self._presence.occupancy_interval_s
        if self._next_occupancy is None:
            self._next_occupancy = now + interval
            return
        if now < self._next_occupancy:
            return
        self._next_occupancy = max(self._next_occupancy + interval, now)
        counts: dict[str, Counter[str]] = {z: Counter() for z in self._zones}
        dwell: dict[str, list[float]] = {z: [] for z in self._zones}
        members: dict[str, set[str]] = {z: set() for z in self._zones}
        for st in self.states.values():
            if st.zone is not None and st.zone in counts:
                counts[st.zone][st.ref.kind.value] += 1
                dwell[st.zone].append(now - st.entered_at)
                members[st.zone].add(st.ref.id)
        k = self._k
        for zone in self._zones:
            d = dwell[zone]
            total = sum(counts[zone].values())
            # k-anonymity: a count from 1 to k-1 could single a person out; say "fewer than k".
            exact = {c.value: n for c in DeviceClass if not 0 < (n := counts[zone][c.value]) < k}
            hidden = tuple(c.value for c in DeviceClass if 0 < counts[zone][c.value] < k)
            # Across classes: a total beside a withheld class gives it away by subtraction.
            shown = total if not hidden and not 0 < total < k else None
            # Across intervals: a mean over devices that differ from those of the last mean
            # published by 1 to k-1 gives their dwell away by differencing the two means.
            last = self._mean_over.get(zone)
            changed = len(members[zone] ^ last) if last is not None else 0
            mean = None
            if d and shown is not None and not 0 < changed < k:
                mean = round(sum(d) / len(d), 1)
                self._mean_over[zone] = frozenset(members[zone])
            out.append(
                ContextEvent(
                    topic=topics.occupancy(zone),
                    type="occupancy",
                    wall=wall,
                    body=OccupancyBody(
                        zone=zone,
                        counts=exact,
                        fewer_than_k=hidden,
                        k=k,
                        total=shown,
                        mean_dwell_s=mean,
                        window_s=interval,
                    ),
                    retain=True,
                    priority=Priority.PRESENCE,
                )
            )


def _phi(z: float) -> float:
    """Standard normal CDF."""
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
