"""The pure pipeline: adverts of one tick in, context events out. No I/O.

decode → identity → device table (numba kernels, once per tick) → zones and sensors; and the
``Ticker``, the one loop that cuts a stream of adverts into those ticks (the agent, replay,
store scoring and the tests all use it).
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from edge_agent.config import AgentConfig
from edge_agent.models import (
    SENSOR_FRAMES,
    Advert,
    ContextEvent,
    SampleEstimate,
)
from edge_agent.pipeline import floorplan
from edge_agent.pipeline.aggregates import AggregateEngine
from edge_agent.pipeline.chatter import Chatter
from edge_agent.pipeline.decoders import (
    FRAME_CACHE_SIZE,
    BindKeys,
    DecodeStats,
    FrameCache,
    decode_advert,
)
from edge_agent.pipeline.fusion import FusionEngine, Position
from edge_agent.pipeline.fusion_feed import FusionFeed
from edge_agent.pipeline.identity import DeviceRef, Identity
from edge_agent.pipeline.kernels import valid_rssi
from edge_agent.pipeline.moments import MomentEngine
from edge_agent.pipeline.proximity import DeviceTable, stated_tx
from edge_agent.pipeline.sensors import SensorTracker, frame_measurements
from edge_agent.pipeline.timers import Timers
from edge_agent.pipeline.zones import PresenceEngine

T = TypeVar("T")


class Ticker(Generic[T]):
    """Cuts a stream of items in time order into ticks of ``tick_s`` and hands each tick's items
    to ``run(items, tick_end)``.

    An item at ``t`` belongs to the tick that ends after ``t``. Ticks end at ``start + k·tick_s``
    (``start``: the first item's time when not given; with ``align``, 0, so that ticks end at
    whole multiples of ``tick_s`` — the gateways of a store then tick at the same instants),
    also those no item falls in, so that timers advance through a silence. With
    ``max_catch_up``, a silence longer than that many ticks (a clock jump) runs one tick and
    then realigns, rather than every tick between.
    """

    def __init__(
        self,
        tick_s: float,
        run: Callable[[list[T], float], None],
        *,
        start: float | None = None,
        max_catch_up: int | None = None,
        align: bool = False,
    ) -> None:
        self.tick_s = tick_s
        self._run = run
        self._origin = 0.0 if align else start
        self._align = align
        self._k = 1
        self._max = max_catch_up
        self._batch: list[T] = []
        self._last = -math.inf

    @property
    def tick_end(self) -> float | None:
        """When the open tick ends (``None`` before the first item, without ``start``)."""
        return None if self._origin is None else self._origin + self._k * self.tick_s

    def add(self, item: T, t: float) -> None:
        """One item at time ``t`` (not earlier than the previous one's)."""
        if self._origin is None:
            self._origin = t
        elif self._align:  # the first item: the tick that holds it
            self._align = False
            self._k = math.floor(t / self.tick_s) + 1
        end = self.tick_end
        if end is not None and t >= end:
            self.close(t)
        self._batch.append(item)
        self._last = t

    def close(self, upto: float) -> None:
        """Run every tick that ends at or before ``upto``."""
        origin, tick = self._origin, self.tick_s
        if origin is None or not origin + self._k * tick <= upto:
            return
        behind = math.floor((upto - origin) / tick) - self._k  # whole ticks past this one
        if self._max is not None and behind > self._max:
            self._tick(origin + self._k * tick)
            self._k += behind
        while origin + self._k * tick <= upto:
            self._tick(origin + self._k * tick)
            self._k += 1

    def flush(self, at: float) -> None:
        """The end of the stream at ``at``: close the ticks before it, then run what is left
        at ``at`` (or at the last item's time, if later)."""
        if math.isfinite(at):
            self.close(at)
        if self._batch:
            self._tick(max(at, self._last) if math.isfinite(at) else self._last)

    def _tick(self, end: float) -> None:
        batch, self._batch = self._batch, []
        self._run(batch, end)


@dataclass(slots=True)
class PipelineStats:
    """Counters of the pure stages (the decode stage keeps its own)."""

    adverts: int = 0
    """Adverts processed."""
    rejected_rssi: int = 0
    """Adverts with an impossible RSSI, skipped."""
    ticks: int = 0
    """Ticks processed."""
    events: int = 0
    """Events produced."""
    forgotten: int = 0
    """Devices dropped from the table after being gone."""
    evicted: int = 0
    """Devices forgotten early because ``pipeline.max_devices`` were tracked."""


class Pipeline:
    """Everything between the source queue and the outbox."""

    def __init__(
        self,
        cfg: AgentConfig,
        identity: Identity | None = None,
        use_jit: bool | None = None,
        bthome_keys: BindKeys | None = None,
    ) -> None:
        self.cfg = cfg
        self.bthome_keys = bthome_keys
        """Bind keys of encrypted BTHome devices (read by the runtime, never by the pipeline)."""
        self.identity = identity or Identity(cfg)
        self.table = DeviceTable(
            cfg.proximity, cfg.receivers, use_jit=use_jit, calibration=cfg.calibration
        )
        plan = floorplan.build(cfg)
        self.fusion = FusionEngine(plan, cfg.fusion, use_jit=use_jit) if plan else None
        """On a floor plan: every receiver fused into one position per device."""
        self.feed = FusionFeed(cfg, self.fusion, self.identity) if self.fusion else None
        """What goes into fusion, and when (with the store's other gateways' summaries)."""
        self.presence = PresenceEngine(cfg, self.fusion)
        self.sensors = SensorTracker(cfg)
        self.moments = MomentEngine(cfg, self.fusion.plan.zones if self.fusion else ())
        """The rules of ``[[moments]]``, after the zones."""
        self.aggregates = AggregateEngine(cfg)
        """Anonymous journey figures per interval."""
        self.decode_stats = DecodeStats()
        self.frame_cache = FrameCache(max(FRAME_CACHE_SIZE, cfg.pipeline.max_devices))
        """Frames decoded lately, by payload bytes (a generation holds every device tracked)."""
        self.chatter = Chatter(cfg.pipeline.drop)
        """Advertisers dropped before any work (counted in ``decode_stats.dropped``)."""
        self.stats = PipelineStats()
        self._refs: dict[str, DeviceRef] = {}
        self._forget_after = max(cfg.proximity.gone_after_s * 4, 60.0)
        self._timers = Timers()
        """When devices without news must be looked at."""
        self._next_sweep = 0.0
        self.fused: list[str] = []
        """The devices fusion placed anew in the latest tick."""
        self.sample_log: list[SampleEstimate] | None = None
        """When a list, every published device's sample is appended (``replay --estimates``)."""

    def process(self, adverts: list[Advert], now: float, wall: float) -> list[ContextEvent]:
        """One tick: every advert received before ``now`` (source clock), then timers at ``now``.

        When the pseudonym key's day ends inside the tick, the tick is cut there: the adverts
        before the boundary are processed under the old key, then the key is replaced and
        every pseudonymous device leaves, then the rest follow under the new key.
        """
        out: list[ContextEvent] = []
        identity = self.identity
        until = identity.key_until
        if adverts and max(adverts[0].wall, adverts[-1].wall) >= until:
            cut = next(i for i, a in enumerate(adverts) if a.wall >= until)
            boundary = adverts[cut]
            if cut:
                self._tick(adverts[:cut], boundary.t, boundary.wall, out)
            if identity.tick(boundary.wall):
                self._new_key_day(boundary.t, boundary.wall, out)
            adverts = adverts[cut:]
        self._tick(adverts, now, wall, out)
        if identity.tick(wall):  # a quiet tick across the boundary, or the clock stepped back
            self._new_key_day(now, wall, out)
        self.stats.ticks += 1
        self.stats.events += len(out)
        return out

    def _tick(
        self, adverts: list[Advert], now: float, wall: float, out: list[ContextEvent]
    ) -> None:
        touched: dict[str, None] = {}  # insertion order: events come out in the same order
        log = self.sample_log
        logged: list[tuple[int, Advert, str]] = []
        identity = self.identity
        table = self.table
        dstats = self.decode_stats
        keys = self.bthome_keys
        moments = self.moments
        sensed, watched = moments.sensed, moments.watched
        feed = self.feed
        default_tx = self.cfg.proximity.tx_power_1m_dbm
        chatter = self.chatter if self.chatter else None
        frame_cache = self.frame_cache
        for adv in adverts:
            if chatter is not None and (rule := chatter.match(adv)) is not None:
                dstats.dropped[rule] += 1
                continue
            if not valid_rssi(adv.rssi):
                self.stats.rejected_rssi += 1
                continue
            frames = decode_advert(adv, dstats, keys, frame_cache)
            ref = identity.resolve(adv, frames)
            if ref is None:  # policy: ignore
                continue
            self._refs[ref.id] = ref
            if ref.publish:
                for frame in frames:
                    if ref.registered or isinstance(frame, SENSOR_FRAMES):
                        self.sensors.observe(ref, frame, adv.rssi, adv.t, adv.wall, out)
                    if sensed and isinstance(frame, SENSOR_FRAMES):
                        values = frame_measurements(frame)
                        moments.reading(ref, {k: v for k, (v, _) in values.items()}, adv.t)
            if ref.id in watched:
                moments.heard(ref, adv.t)
            tx = stated_tx(ref, frames)
            i = table.add(ref, adv, tx)
            if log is not None and ref.publish:
                logged.append((i, adv, ref.id))
            if ref.presence:  # sensors and fixed devices are heard, not located
                if feed is not None:  # on a floor plan, news comes from fusion (below)
                    feed.local(ref, adv.receiver, adv.rssi, default_tx if tx is None else tx)
                else:
                    touched[ref.id] = None
        self.stats.adverts += len(adverts)
        per_sample = table.flush(per_sample=log is not None)
        if log is not None and per_sample is not None:
            smoothed, dist = per_sample
            log.extend(
                SampleEstimate(a.t, a.receiver, d, a.rssi, float(smoothed[i]), float(dist[i]))
                for i, a, d in logged
            )
        presence = self.presence
        if feed is not None:
            self.fused = feed.step(now)
            # On a floor plan a device's zone follows its fused position: the news is a new
            # position (an advert between two steps changes nothing the zone machine decides
            # on; its timers see to the rest).
            for device in self.fused:
                if device not in self._refs:
                    self._refs[device] = feed.refs[device]  # heard by another gateway only
                touched[device] = None
        counting = bool(moments.follower)
        for device in touched:
            pos = self._position(device, now)
            ref = self._refs[device]
            presence.evaluate(ref, presence.locate(table, device, now), now, wall, out, pos)
            if counting:
                moments.placed(ref, pos)
        for device in touched:
            self._schedule(device, now)
        # A device without news changes only when a timer of its expires (a receiver or its
        # position ages out, a dwell, debounce or update falls due): looked at then, in the
        # order of the zone machine's devices, and not every tick.
        due = self._due(now, touched)
        if due:
            for device in [d for d in presence.states if d in due]:
                st = presence.states[device]
                pos = self._position(device, now)
                presence.evaluate(st.ref, presence.locate(table, device, now), now, wall, out, pos)
                if counting:
                    moments.placed(st.ref, pos)
                self._schedule(device, now)
        presence.occupancy(now, wall, out)
        changes = presence.take_changes()
        moments.step(changes, now, wall, out)
        self.aggregates.step(changes, now, wall, out)
        self.sensors.beacon_health(now, wall, out)
        if now >= self._next_sweep:
            self._sweep(now)
        if len(self._refs) > self.cfg.pipeline.max_devices:
            self._evict(now, wall, out)

    def _schedule(self, device: str, now: float) -> None:
        """When the device must next be looked at without news (nothing: it is in no zone
        and about to enter none)."""
        st = self.presence.states.get(device)
        if st is None or (st.zone is None and st.pending is None):
            return
        p = self.cfg.presence
        at = self.table.expires_at(device, now)
        if self.fusion is not None:
            pos = self.fusion.position(device)
            if pos is not None:
                at = min(at, pos.t + self.cfg.proximity.gone_after_s)
        if st.zone is not None:
            at = min(at, st.last_update + p.update_interval_s)
        if st.pending != st.zone:
            held = p.min_dwell_s if st.pending is not None else p.exit_debounce_s
            at = min(at, st.pending_since + held)
        self._timers.schedule(device, max(at, math.nextafter(now, math.inf)))  # now: next tick

    def _due(self, now: float, touched: dict[str, None]) -> set[str]:
        """The devices whose timers expire by ``now`` and that had no news this tick."""
        due: set[str] = set()
        for device in self._timers.due(now):
            if device in touched:
                self._schedule(device, now)
            elif device in self.presence.states:
                due.add(device)
        return due

    def _position(self, device: str, now: float) -> Position | None:
        """A device's fused position, unless it is older than ``gone_after_s``."""
        if self.fusion is None:
            return None
        pos = self.fusion.position(device)
        if pos is None or now - pos.t > self.cfg.proximity.gone_after_s:
            return None
        return pos

    def _last_heard(self, device: str) -> float:
        remote = self.feed.remote_seen.get(device, -math.inf) if self.feed else -math.inf
        return max(self.table.last_seen(device), remote)

    def _sweep(self, now: float) -> None:
        """Forget devices gone for long, so memory follows the devices present."""
        self._next_sweep = now + 10.0
        horizon = now - self._forget_after
        for device in list(self._refs):
            st = self.presence.states.get(device)
            if st is not None and st.zone is not None:
                continue
            if self._last_heard(device) < horizon:
                self._forget(device, now)
                self.stats.forgotten += 1

    def _evict(self, now: float, wall: float, out: list[ContextEvent]) -> None:
        """More than ``max_devices`` tracked (an address flood, a crowd of rotating phones):
        the least recently heard go — down to nine tenths of the cap, so that this runs
        seldom — and one in a zone leaves it (``exit``)."""
        cap = self.cfg.pipeline.max_devices
        excess = len(self._refs) - cap * 9 // 10
        for device in heapq.nsmallest(excess, self._refs, key=self._last_heard):
            self.presence.close(device, now, wall, out)
            self._forget(device, None)
            self.stats.evicted += 1

    def _forget(self, device: str, now: float | None) -> None:
        """Forget a device's signal, sensor, fusion and presence state (``now``: it left)."""
        self.table.forget(device)
        if self.fusion is not None and self.feed is not None:
            self.fusion.forget(device)
            self.feed.forget(device)
        self.presence.drop(device, now)
        self.sensors.forget(device)
        del self._refs[device]
        self._timers.cancel(device)

    def close_all(self, now: float, wall: float, out: list[ContextEvent]) -> None:
        """Every device leaves (``exit`` from its zone) and is forgotten, and moments and
        aggregates take note: tracking is to start afresh (a reload)."""
        for device in list(self.presence.states):
            self.presence.close(device, now, wall, out)
        changes = self.presence.take_changes()
        self.moments.step(changes, now, wall, out)
        self.aggregates.step(changes, now, wall, out)
        for device in list(self._refs):
            self._drop(device)

    def adopt_devices(self, old: Pipeline) -> None:
        """Take over ``old``'s tracked devices (a reload that kept their tracking)."""
        self._refs = old._refs
        self._next_sweep = old._next_sweep
        self._timers = old._timers
        self.fused = old.fused

    def _new_key_day(self, now: float, wall: float, out: list[ContextEvent]) -> None:
        """The pseudonym key was replaced: every device known by a pseudonym leaves (``exit``
        under its old id) and is forgotten, so nothing links it to its new pseudonym."""
        for device, ref in list(self._refs.items()):
            if ref.registered:
                continue
            self.presence.close(device, now, wall, out)
            self._drop(device)

    def _drop(self, device: str) -> None:
        """Forget a device's signal, sensor and beacon state (not its presence)."""
        self.table.forget(device)
        if self.fusion is not None and self.feed is not None:
            self.fusion.forget(device)
            self.feed.forget(device)
        self.sensors.erase(device)
        self._refs.pop(device, None)
        self._timers.cancel(device)

    def erase(self, devices: set[str]) -> int:
        """Forget everything tracked about these wire ids; how many were known."""
        found = 0
        for device in devices:
            found += device in self._refs or device in self.presence.states
            self.presence.drop(device)
            self._drop(device)
        self.moments.forget(devices)
        self.aggregates.forget(devices)
        self.identity.forget(devices)
        return found

    @property
    def state_dirty(self) -> bool:
        """Whether what ``snapshot`` holds changed since it was last taken."""
        return self.moments.dirty or self.aggregates.dirty

    def snapshot(self) -> str:
        """What must survive a restart (moments under way, the interval's counts), as JSON:
        the runtime commits it with the events of the same tick."""
        return json.dumps(
            {"moments": self.moments.snapshot(), "aggregates": self.aggregates.snapshot()},
            separators=(",", ":"),
        )

    def restore(self, snapshot: str | None) -> bool:
        """Take up a previous run's ``snapshot``; an unreadable one is ignored (False)."""
        if not snapshot:
            return False
        try:
            state = json.loads(snapshot)
            self.moments.restore(state.get("moments") or {})
            self.aggregates.restore(state.get("aggregates") or {})
        except (ValueError, TypeError, AttributeError, KeyError):
            return False
        return True

    def published(self, device: str) -> bool:
        """Whether a tracked device is published under its id (not only counted)."""
        ref = self._refs.get(device)
        return ref is not None and ref.publish

    def unzoned_receivers(self) -> list[str]:
        """Receivers heard that have no zone: their adverts give no presence."""
        return sorted(self.table.receivers_heard - self.presence.zoned_receivers)

    @property
    def devices_tracked(self) -> int:
        """Devices currently in the table."""
        return self.table.devices
