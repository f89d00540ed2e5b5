"""Sensor readings (deadband + heartbeat) and beacon health (battery, tx, interval, missing)."""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent import topics
from edge_agent.config import AgentConfig
from edge_agent.models import (
    SENSOR_FRAMES,
    BeaconHealthBody,
    BTHomeFrame,
    ContextEvent,
    EddystoneTLMFrame,
    Frame,
    MeasurementValue,
    Priority,
    ReadingBody,
    RuuviFrame,
)
from edge_agent.pipeline.identity import DeviceRef
from edge_agent.pipeline.proximity import tx_power_1m
from edge_agent.pipeline.timers import Timers

Values = dict[str, tuple[float | int | bool | str, str | None]]


def _has_state(values: Values) -> bool:
    """True when a reading carries a binary state or an event (a door, a button, an alarm)."""
    return any(isinstance(v, bool | str) for v, _ in values.values())


def frame_measurements(frame: BTHomeFrame | RuuviFrame) -> Values:
    """Name → (value, unit) of a sensor frame; the first of repeated names wins."""
    out: Values = {}
    if isinstance(frame, BTHomeFrame):
        for m in frame.measurements:
            out.setdefault(m.name, (m.value, m.unit))
        return out
    if frame.temperature_c is not None:
        out["temperature"] = (frame.temperature_c, "°C")
    if frame.humidity_pct is not None:
        out["humidity"] = (frame.humidity_pct, "%")
    if frame.pressure_pa is not None:
        out["pressure"] = (round(frame.pressure_pa / 100.0, 2), "hPa")
    for axis, value in zip("xyz", frame.accel_mg, strict=True):
        if value is not None:
            out[f"acceleration_{axis}"] = (value, "mg")
    if frame.battery_mv is not None:
        out["voltage"] = (round(frame.battery_mv / 1000.0, 3), "V")
    if frame.movement_counter is not None:
        out["movement_counter"] = (frame.movement_counter, None)
    return out


@dataclass(slots=True)
class _Reading:
    sent: Values
    sent_at: float
    packet_id: int | None


@dataclass(slots=True)
class _Beacon:
    ref: DeviceRef
    first_seen: float
    last_seen: float
    frames: int = 0
    battery_mv: int | None = None
    tx_power: int | None = None
    next_report: float = 0.0
    missing: bool = False
    order: int = 0
    """When it was first heard among the beacons (reports of one tick go out in this order)."""


class SensorTracker:
    """Readings for sensor frames and health for beacons, each with their own pacing."""

    def __init__(self, cfg: AgentConfig) -> None:
        self._cfg = cfg.sensors
        self._readings: dict[str, _Reading] = {}
        self._beacons: dict[str, _Beacon] = {}
        self._made = 0
        self._timers = Timers()
        """When each beacon must next be looked at."""

    def _changed(self, new: Values, old: Values) -> bool:
        if new.keys() != old.keys():
            return True
        deadband = self._cfg.deadband
        for name, (value, _unit) in new.items():
            prev = old[name][0]
            if isinstance(value, bool | str) or isinstance(prev, bool | str):
                if value != prev:
                    return True
            elif abs(value - prev) > deadband.get(name, 0.0):
                return True
        return False

    def observe(
        self,
        ref: DeviceRef,
        frame: Frame,
        rssi: float,
        now: float,
        wall: float,
        out: list[ContextEvent],
    ) -> None:
        """One decoded frame of a device."""
        if isinstance(frame, SENSOR_FRAMES):  # encrypted without a key: no values
            self._reading(ref, frame, rssi, now, wall, out)
        else:
            self._beacon(ref, frame, now)

    def _reading(
        self,
        ref: DeviceRef,
        frame: BTHomeFrame | RuuviFrame,
        rssi: float,
        now: float,
        wall: float,
        out: list[ContextEvent],
    ) -> None:
        values = frame_measurements(frame)
        if not values:
            return
        packet_id = frame.packet_id if isinstance(frame, BTHomeFrame) else frame.sequence
        prev = self._readings.get(ref.id)
        trigger_based = isinstance(frame, BTHomeFrame) and frame.trigger_based
        if prev is not None:
            if packet_id is not None and packet_id == prev.packet_id:
                return  # the same packet heard by another receiver, or repeated
            due = now - prev.sent_at >= self._cfg.heartbeat_s
            if not (trigger_based or due or self._changed(values, prev.sent)):
                prev.packet_id = packet_id
                return
        self._readings[ref.id] = _Reading(values, now, packet_id)
        out.append(
            ContextEvent(
                topic=topics.sensor(ref.id),
                type="reading",
                wall=wall,
                body=ReadingBody(
                    device=ref.id,
                    device_class=ref.kind.value,
                    format=frame.kind.value,
                    measurements={k: MeasurementValue(v, u) for k, (v, u) in values.items()},
                    rssi=round(rssi, 1),
                    zone=ref.zone,
                ),
                priority=Priority.ALARM
                if trigger_based or _has_state(values)
                else Priority.READING,
            )
        )

    def _beacon(self, ref: DeviceRef, frame: Frame, now: float) -> None:
        b = self._beacons.get(ref.id)
        if b is None:
            self._made += 1
            b = self._beacons[ref.id] = _Beacon(ref, now, now, next_report=now, order=self._made)
            self._schedule(b)
        if b.frames and abs(now - b.last_seen) < 0.02:
            pass  # the same advertisement heard by another receiver
        else:
            b.frames += 1
        b.last_seen = max(b.last_seen, now)
        b.missing = False
        if isinstance(frame, EddystoneTLMFrame):
            b.battery_mv = frame.battery_mv
        tx = tx_power_1m(frame)
        if tx is not None:
            b.tx_power = tx

    def _schedule(self, b: _Beacon) -> None:
        """When the beacon must next be looked at: its report falls due, or it goes silent (a
        time already past: the next tick). News of a beacon only ever moves its times later."""
        at = b.next_report
        if not b.missing:
            at = min(at, b.last_seen + self._cfg.beacon_health_interval_s)
        self._timers.schedule(b.ref.id, at)

    def _due(self, now: float) -> list[_Beacon]:
        """The beacons whose timers expired by ``now``, in the order they were first heard."""
        beacons = self._beacons
        due = [beacons[k] for k in self._timers.due(now) if k in beacons]
        due.sort(key=lambda b: b.order)
        return due

    def beacon_health(self, now: float, wall: float, out: list[ContextEvent]) -> None:
        """Retained health of each beacon every ``beacon_health_interval_s`` and when it goes;
        a beacon is looked at only when one of those falls due, not every tick."""
        interval = self._cfg.beacon_health_interval_s
        for b in self._due(now):
            silent = now - b.last_seen
            gone = silent > interval
            if now < b.next_report and not (gone and not b.missing):
                self._schedule(b)
                continue
            b.missing = gone
            b.next_report = now + interval
            span = b.last_seen - b.first_seen
            out.append(
                ContextEvent(
                    topic=topics.beacon_health(b.ref.id),
                    type="beacon_health",
                    wall=wall,
                    body=BeaconHealthBody(
                        device=b.ref.id,
                        device_class=b.ref.kind.value,
                        battery_mv=b.battery_mv,
                        tx_power_dbm=b.tx_power,
                        observed_interval_s=round(span / (b.frames - 1), 3)
                        if b.frames > 1 and span > 0
                        else None,
                        missing=gone,
                        last_seen_s_ago=round(max(silent, 0.0), 1),
                        zone=b.ref.zone,
                    ),
                    retain=True,
                    priority=Priority.HEALTH,
                )
            )
            b.first_seen = b.last_seen
            b.frames = 1 if not gone else 0
            self._schedule(b)

    def forget(self, device: str) -> None:
        """Drop the last reading kept for a device (beacon health keeps registered beacons)."""
        self._readings.pop(device, None)

    def erase(self, device: str) -> None:
        """Drop everything kept about a device, beacon health included (erasure, revocation)."""
        self._readings.pop(device, None)
        self._beacons.pop(device, None)
        self._timers.cancel(device)
