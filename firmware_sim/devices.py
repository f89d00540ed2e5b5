"""Simulated firmware: advertising interval with jitter, frames, counters, battery, drift."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edge_agent.models import (
    BTHomeFrame,
    EddystoneTLMFrame,
    EddystoneUIDFrame,
    IBeaconFrame,
    Measurement,
    RuuviFrame,
)
from edge_agent.pipeline.decoders.bthome import BTHOME_UUID
from edge_agent.pipeline.decoders.eddystone import EDDYSTONE_UUID
from edge_agent.pipeline.decoders.ibeacon import APPLE_COMPANY_ID
from edge_agent.pipeline.decoders.ruuvi import RUUVI_COMPANY_ID
from firmware_sim.encoders import (
    encode_bthome,
    encode_eddystone_tlm,
    encode_eddystone_uid,
    encode_ibeacon,
    encode_ruuvi,
)
from firmware_sim.incidents import IncidentSpec, forced_open, warm_offset

ADV_DELAY_MAX_S = 0.010  # BLE adds 0–10 ms of random delay to every advertising event
Payload = tuple[dict[int, bytes], dict[str, bytes]]


def random_address(rng: np.random.Generator, kind: str) -> str:
    """A Bluetooth address of the given kind: ``public``, ``static`` or ``resolvable``."""
    raw = bytearray(rng.integers(0, 256, 6, dtype=np.uint8).tobytes())
    if kind == "static":
        raw[0] |= 0xC0
    elif kind == "resolvable":
        raw[0] = (raw[0] & 0x3F) | 0x40
    else:
        raw[0] &= 0x3F
    return ":".join(f"{b:02X}" for b in raw)


@dataclass(slots=True)
class Firmware:
    """One advertiser: ``payload(t)`` builds what it sends at ``t``; ``advance`` plans the next."""

    id: str
    """The id the agent is expected to give it (ground truth), or a label for anonymous ones."""
    kind: str
    """Device class (cart, staff, sensor, shopper …)."""
    address: str
    """Its Bluetooth address."""
    address_type: str
    """``public`` or ``random`` as BlueZ would report it."""
    interval_s: float
    """Advertising interval."""
    tx_1m: int
    """RSSI at 1 m it advertises (its calibration)."""
    true_tx_offset_db: float = 0.0
    """How far its real output differs from what it advertises."""
    next_t: float = 0.0
    """Time of its next advertising event."""
    sent: int = 0
    """Advertising events so far (frame counter)."""
    battery_mv: float = 3000.0
    """Battery voltage; drains over time."""
    drain_mv_per_h: float = 0.5
    """Battery drain."""
    active: bool = True
    """False while it is off (a phone that left)."""
    state: dict[str, float] = field(default_factory=dict)
    """Firmware-specific values (sensor readings, door state, packet id)."""
    incidents: list[IncidentSpec] = field(default_factory=list)
    """The scenario's incidents about this device (``firmware_sim.incidents``)."""
    readings: list[tuple[float, float]] = field(default_factory=list)
    """What it measured, ``(t, value)`` (thermometers: temperature; doors: 1 open, 0 shut):
    the truth of a sensor incident. Kept only when it has incidents."""

    def advance(self, rng: np.random.Generator) -> None:
        """Schedule the next advertising event."""
        self.sent += 1
        self.next_t += self.interval_s + rng.uniform(0.0, ADV_DELAY_MAX_S)

    def payload(self, t: float, rng: np.random.Generator) -> Payload:
        """Manufacturer data and service data of the packet sent at ``t``."""
        raise NotImplementedError


@dataclass(slots=True)
class IBeaconTag(Firmware):
    """A cart or asset tag sending one fixed iBeacon frame."""

    uuid: str = ""
    major: int = 0
    minor: int = 0
    _cached: bytes = b""

    def payload(self, t: float, rng: np.random.Generator) -> Payload:
        if not self._cached:
            frame = IBeaconFrame(self.uuid, self.major, self.minor, self.tx_1m)
            self._cached = encode_ibeacon(frame)
        return {APPLE_COMPANY_ID: self._cached}, {}


@dataclass(slots=True)
class EddystoneBadge(Firmware):
    """A staff badge: Eddystone-UID, with a TLM frame every fourth packet."""

    namespace: str = ""
    instance: str = ""

    def payload(self, t: float, rng: np.random.Generator) -> Payload:
        if self.sent % 4 == 3:
            self.battery_mv = max(2000.0, 3000.0 - self.drain_mv_per_h * t / 3600.0)
            frame = EddystoneTLMFrame(
                battery_mv=round(self.battery_mv),
                temperature_c=round(21.0 + 2.0 * math.sin(t / 900.0), 2),
                adv_count=self.sent,
                uptime_s=round(t + 3600.0, 1),
            )
            return {}, {EDDYSTONE_UUID: encode_eddystone_tlm(frame)}
        uid = EddystoneUIDFrame(self.namespace, self.instance, self.tx_1m + 41)
        return {}, {EDDYSTONE_UUID: encode_eddystone_uid(uid)}


@dataclass(slots=True)
class FridgeThermometer(Firmware):
    """A BTHome v2 thermometer: temperature with compressor cycles and drift, humidity, battery."""

    setpoint_c: float = 4.0
    measure_every_s: float = 10.0

    def payload(self, t: float, rng: np.random.Generator) -> Payload:
        s = self.state
        if t >= s.get("next_measure", 0.0):
            s["next_measure"] = t + self.measure_every_s
            s["drift"] = float(np.clip(s.get("drift", 0.0) + rng.normal(0, 0.05), -1.5, 1.5))
            s["packet"] = (s.get("packet", 0.0) + 1) % 256
            cycle = 0.8 * math.sin(2 * math.pi * t / 1200.0)
            warm = warm_offset(t, self.setpoint_c, self.incidents)
            s["temp"] = round(self.setpoint_c + cycle + s["drift"] + warm, 2)
            if self.incidents:
                self.readings.append((t, s["temp"]))
            s["hum"] = round(
                float(np.clip(55 + 8 * math.sin(t / 700.0) + rng.normal(0, 0.5), 0, 100)), 2
            )
            self.battery_mv = max(2000.0, 3000.0 - self.drain_mv_per_h * t / 3600.0)
        pct = round(min(100.0, max(0.0, (self.battery_mv - 2000.0) / 10.0)))
        frame = BTHomeFrame(
            encrypted=False,
            trigger_based=False,
            packet_id=int(s["packet"]),
            measurements=(
                Measurement("battery", pct, "%", 0x01),
                Measurement("temperature", s["temp"], "°C", 0x02),
                Measurement("humidity", s["hum"], "%", 0x03),
            ),
        )
        return {}, {BTHOME_UUID: encode_bthome(frame)}


@dataclass(slots=True)
class DoorSensor(Firmware):
    """A BTHome v2 door contact; the store opens it (``open_until``) when people pass."""

    def payload(self, t: float, rng: np.random.Generator) -> Payload:
        s = self.state
        is_open = t < s.get("open_until", -1.0) or forced_open(t, self.incidents)
        if bool(s.get("open", 0.0)) != is_open:
            s["open"] = 1.0 if is_open else 0.0
            s["packet"] = (s.get("packet", 0.0) + 1) % 256
            if self.incidents:
                self.readings.append((t, s["open"]))
        frame = BTHomeFrame(
            encrypted=False,
            trigger_based=True,
            packet_id=int(s.get("packet", 0.0)),
            measurements=(
                Measurement("battery", 87, "%", 0x01),
                Measurement("door", is_open, None, 0x1A),
            ),
        )
        return {}, {BTHOME_UUID: encode_bthome(frame)}


@dataclass(slots=True)
class RuuviTag(Firmware):
    """A RuuviTag (data format 5) in a chiller: temperature, humidity, pressure, motion."""

    base_c: float = 6.0
    mac: str = ""

    def payload(self, t: float, rng: np.random.Generator) -> Payload:
        s = self.state
        s["drift"] = float(np.clip(s.get("drift", 0.0) + rng.normal(0, 0.01), -1.0, 1.0))
        frame = RuuviFrame(
            temperature_c=round(
                round((self.base_c + s["drift"] + 0.5 * math.sin(t / 600.0)) / 0.005) * 0.005, 3
            ),
            humidity_pct=round(round((60 + 5 * math.sin(t / 900.0)) / 0.0025) * 0.0025, 4),
            pressure_pa=101325 + round(50 * math.sin(t / 3600.0)),
            accel_mg=(int(rng.integers(-8, 9)), int(rng.integers(-8, 9)), 1000),
            battery_mv=round(self.battery_mv),
            tx_power=4,
            movement_counter=0,
            sequence=self.sent % 65535,
            mac=self.mac,
        )
        return {RUUVI_COMPANY_ID: encode_ruuvi(frame)}, {}


@dataclass(slots=True)
class Phone(Firmware):
    """A shopper's phone: Apple "nearby" messages from a resolvable private address."""

    def payload(self, t: float, rng: np.random.Generator) -> Payload:
        return {APPLE_COMPANY_ID: bytes([0x10, 0x05, 0x01, 0x1C, 0x6E, 0x1F, 0x59])}, {}
