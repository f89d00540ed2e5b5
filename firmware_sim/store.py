"""A store scenario from TOML: floor plan, zones, receivers, moving shoppers with carts, staff,
fixed sensors — seeded and deterministic, with ground truth (true position and zone over time).
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_agent import inputs
from edge_agent.errors import ScenarioError
from edge_agent.inputs import InputError
from edge_agent.models import Advert
from firmware_sim.devices import (
    DoorSensor,
    EddystoneBadge,
    Firmware,
    FridgeThermometer,
    IBeaconTag,
    Phone,
    RuuviTag,
    random_address,
)
from firmware_sim.incidents import IncidentSpec, away
from firmware_sim.radio import Channel, RadioParams


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ZoneSpec(_M):
    id: str
    x0: float
    y0: float
    x1: float
    y1: float
    visit: bool = True
    """Shoppers may choose it as a stop."""


class ReceiverSpec(_M):
    id: str
    x: float
    y: float


class RadioSpec(_M):
    path_loss_exponent: float = Field(2.2, ge=1.0, le=6.0)
    shadowing_sigma_db: float = Field(4.0, ge=0)
    shadowing_wavelength_m: float = Field(6.0, gt=0)
    fading_sigma_db: float = Field(5.0, ge=0)
    packet_loss: float = Field(0.10, ge=0, lt=1)
    sensitivity_dbm: float = -95.0
    receiver_height_m: float = 2.6
    tag_height_m: float = 1.0
    tx_spread_db: float = Field(1.5, ge=0)


class CartSpec(_M):
    count: int = Field(20, ge=0, le=5000)
    ibeacon_uuid: str
    major: int = 1
    id_format: str = "cart-{minor}"
    interval_s: float = Field(0.3, gt=0)
    tx_1m: int = -62
    corral_zone: str = "entrance"


class ShopperSpec(_M):
    arrival_per_min: float = Field(3.0, ge=0)
    max_in_store: int = Field(15, ge=0)
    stops_min: int = Field(2, ge=1)
    stops_max: int = Field(4, ge=1)
    dwell_median_s: float = Field(45.0, gt=0)
    checkout_zone: str = "checkout"
    checkout_s: float = Field(60.0, gt=0)
    walk_speed_mps: float = Field(1.1, gt=0)
    phone_share: float = Field(0.5, ge=0, le=1)
    phone_interval_s: float = Field(0.5, gt=0)


class StaffSpec(_M):
    id: str
    namespace: str
    instance: str
    interval_s: float = 0.5
    tx_1m: int = -60


class ThermometerSpec(_M):
    id: str
    address: str
    x: float
    y: float
    setpoint_c: float = 4.0
    interval_s: float = 2.0


class RuuviSpec(_M):
    id: str
    address: str
    x: float
    y: float
    base_c: float = 6.0
    interval_s: float = 1.285


class DoorSpec(_M):
    id: str
    address: str
    x: float
    y: float
    interval_s: float = 1.0


class ScenarioSpec(_M):
    name: str = "store"
    seed: int = 1
    width_m: float = Field(gt=0)
    depth_m: float = Field(gt=0)
    start_wall: float | None = None
    """Wall-clock epoch of simulated time 0; defaults to the real time at start."""
    radio: RadioSpec = RadioSpec()
    zones: list[ZoneSpec] = Field(min_length=1)
    receivers: list[ReceiverSpec] = Field(min_length=1)
    carts: CartSpec | None = None
    shoppers: ShopperSpec = ShopperSpec()
    staff: list[StaffSpec] = Field(default_factory=list)
    thermometers: list[ThermometerSpec] = Field(default_factory=list)
    ruuvi: list[RuuviSpec] = Field(default_factory=list)
    doors: list[DoorSpec] = Field(default_factory=list)
    incidents: list[IncidentSpec] = Field(default_factory=list)


def load_scenario(path: str | Path) -> ScenarioSpec:
    """Read and validate a scenario file. ``base = "other.toml"`` (relative to it) starts
    from another scenario: each top-level key given here replaces the base's."""
    path = Path(path)
    try:
        data = tomllib.loads(inputs.read_text(path))
        base = data.pop("base", None)
        if base is not None:
            if not isinstance(base, str):
                raise ScenarioError(str(path), "base: a scenario file's path")
            under = tomllib.loads(inputs.read_text(path.parent / base))
            if "base" in under:
                raise ScenarioError(str(path), f"base: {base} has a base of its own")
            data = {**under, **data}
        spec = ScenarioSpec.model_validate(data)
    except InputError as err:
        raise ScenarioError(str(path), err.reason) from None
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(str(path), f"not valid TOML: {err}") from err
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ScenarioError(str(path), f"{where}: {first['msg']}") from err
    zone_ids = {z.id for z in spec.zones}
    for name in ([spec.carts.corral_zone] if spec.carts else []) + [spec.shoppers.checkout_zone]:
        if name not in zone_ids:
            raise ScenarioError(str(path), f"zone {name!r} is not defined")
    devices = {s.id for s in spec.staff} | {t.id for t in spec.thermometers}
    devices |= {d.id for d in spec.doors}
    for i, inc in enumerate(spec.incidents):
        if inc.kind == "rush" and inc.zone not in zone_ids:
            raise ScenarioError(str(path), f"incidents.{i}.zone: {inc.zone!r} is not a zone")
        if inc.kind != "rush" and inc.device not in devices:
            raise ScenarioError(str(path), f"incidents.{i}.device: {inc.device!r} is not defined")
    return spec


@dataclass(slots=True)
class Path2D:
    """Piecewise-linear motion: waypoints ``(t, x, y)``; stands still after the last one."""

    points: list[tuple[float, float, float]]

    def at(self, t: float) -> tuple[float, float]:
        pts = self.points
        while len(pts) > 1 and pts[1][0] <= t:
            pts.pop(0)
        t0, x0, y0 = pts[0]
        if len(pts) == 1 or t <= t0:
            return x0, y0
        t1, x1, y1 = pts[1]
        f = (t - t0) / (t1 - t0) if t1 > t0 else 1.0
        return x0 + f * (x1 - x0), y0 + f * (y1 - y0)

    @property
    def end(self) -> float:
        return self.points[-1][0]


@dataclass(slots=True, frozen=True)
class Truth:
    """Ground truth of one device at one instant."""

    t: float
    device: str
    kind: str
    x: float
    y: float
    zone: str | None

    def to_json(self) -> str:
        """One line of the ground-truth log."""
        return json.dumps(
            {
                "t": self.t,
                "device": self.device,
                "kind": self.kind,
                "x": self.x,
                "y": self.y,
                "zone": self.zone,
            }
        )


STEP_S = 0.05
"""Virtual time simulated per step."""
TRUTH_EVERY_S = 1.0
"""Ground truth is recorded this often."""


def simulate(
    sim: StoreSim, duration_s: float | None, wall0: float
) -> Iterator[tuple[float, list[Advert], list[Truth]]]:
    """Step ``sim`` to ``duration_s`` (or forever): ``(t1, adverts, truth due)`` per step."""
    t = 0.0
    next_truth = 0.0
    while duration_s is None or t < duration_s:
        t1 = t + STEP_S if duration_s is None else min(t + STEP_S, duration_s)
        adverts = sim.step(t, t1, wall0)
        truth: list[Truth] = []
        while next_truth < t1:
            truth.extend(sim.truth(next_truth))
            next_truth += TRUTH_EVERY_S
        yield t1, adverts, truth
        t = t1


class StoreSim:
    """The simulated store. ``step(t0, t1)`` returns every advert heard in ``[t0, t1)``."""

    def __init__(self, spec: ScenarioSpec, seed: int | None = None) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(spec.seed if seed is None else seed)
        rng = self.rng
        self.radio = RadioParams(**spec.radio.model_dump(exclude={"tx_spread_db"}))
        self.receivers = [r.id for r in spec.receivers]
        self.channel = Channel(self.radio, np.array([[r.x, r.y] for r in spec.receivers]), rng)
        self.devices: list[Firmware] = []
        self.paths: dict[str, Path2D] = {}
        self._zones = spec.zones
        self._visit = [z for z in spec.zones if z.visit and z.id != spec.shoppers.checkout_zone]
        self._zone_by_id = {z.id: z for z in spec.zones}
        self.t = 0.0
        self._next_arrival = 0.0
        self._shoppers: list[tuple[float, IBeaconTag, Phone | None]] = []
        self._free_carts: list[IBeaconTag] = []
        self._phone_n = 0
        self._doors: list[DoorSensor] = []
        spread = spec.radio.tx_spread_db

        def offset() -> float:
            return float(rng.normal(0.0, spread))

        if spec.carts:
            c = spec.carts
            corral = self._zone_by_id[c.corral_zone]
            for n in range(1, c.count + 1):
                tag = IBeaconTag(
                    id=c.id_format.format(minor=n, major=c.major),
                    kind="cart",
                    address=random_address(rng, "static"),
                    address_type="random",
                    interval_s=c.interval_s,
                    tx_1m=c.tx_1m,
                    true_tx_offset_db=offset(),
                    next_t=float(rng.uniform(0, c.interval_s)),
                    uuid=c.ibeacon_uuid,
                    major=c.major,
                    minor=n,
                )
                self.devices.append(tag)
                self.paths[tag.id] = Path2D([(0.0, *self._point_in(corral, 1.0))])
                self._free_carts.append(tag)
        for s in spec.staff:
            badge = EddystoneBadge(
                id=s.id,
                kind="staff",
                address=random_address(rng, "static"),
                address_type="random",
                interval_s=s.interval_s,
                tx_1m=s.tx_1m,
                true_tx_offset_db=offset(),
                next_t=float(rng.uniform(0, s.interval_s)),
                namespace=s.namespace,
                instance=s.instance,
            )
            self.devices.append(badge)
            start = self._point_in(self._zones[int(rng.integers(len(self._zones)))], 1.0)
            self.paths[s.id] = Path2D([(0.0, *start)])
        for th in spec.thermometers:
            dev = FridgeThermometer(
                id=th.id,
                kind="sensor",
                address=th.address,
                address_type="public",
                interval_s=th.interval_s,
                tx_1m=-59,
                next_t=float(rng.uniform(0, th.interval_s)),
                setpoint_c=th.setpoint_c,
            )
            self.devices.append(dev)
            self.paths[th.id] = Path2D([(0.0, th.x, th.y)])
        for rv in spec.ruuvi:
            ruuvi = RuuviTag(
                id=rv.id,
                kind="sensor",
                address=rv.address,
                address_type="random",
                interval_s=rv.interval_s,
                tx_1m=-59,
                next_t=float(rng.uniform(0, rv.interval_s)),
                base_c=rv.base_c,
                mac=rv.address,
            )
            self.devices.append(ruuvi)
            self.paths[rv.id] = Path2D([(0.0, rv.x, rv.y)])
        for d in spec.doors:
            door = DoorSensor(
                id=d.id,
                kind="sensor",
                address=d.address,
                address_type="public",
                interval_s=d.interval_s,
                tx_1m=-59,
                next_t=float(rng.uniform(0, d.interval_s)),
            )
            self.devices.append(door)
            self._doors.append(door)
            self.paths[d.id] = Path2D([(0.0, d.x, d.y)])
        for fw in self.devices:
            fw.incidents = [i for i in spec.incidents if i.device == fw.id]
        self._rushes = sorted((i for i in spec.incidents if i.kind == "rush"), key=lambda i: i.at_s)
        self._rush_n = 0
        self._leaving: list[tuple[float, Firmware]] = []
        """Devices that leave the store (and the simulation) at a time: rush carts."""

    # ------------------------------------------------------------------ motion

    def _point_in(self, zone: ZoneSpec, margin: float) -> tuple[float, float]:
        m = min(margin, (zone.x1 - zone.x0) / 3, (zone.y1 - zone.y0) / 3)
        return (
            float(self.rng.uniform(zone.x0 + m, zone.x1 - m)),
            float(self.rng.uniform(zone.y0 + m, zone.y1 - m)),
        )

    def zone_at(self, x: float, y: float) -> str | None:
        """The zone containing a point (first match), or ``None``."""
        for z in self._zones:
            if z.x0 <= x < z.x1 and z.y0 <= y < z.y1:
                return z.id
        return None

    def _walk(
        self, pts: list[tuple[float, float, float]], to: tuple[float, float], speed: float
    ) -> None:
        t, x, y = pts[-1]
        pts.append((t + math.hypot(to[0] - x, to[1] - y) / speed, *to))

    def _dwell(self, pts: list[tuple[float, float, float]], zone: ZoneSpec, seconds: float) -> None:
        """Stay in a zone, browsing: a few short moves inside it."""
        end = pts[-1][0] + seconds
        while pts[-1][0] < end:
            pause = float(self.rng.uniform(5.0, 20.0))
            t, x, y = pts[-1]
            pts.append((min(t + pause, end), x, y))
            if pts[-1][0] < end:
                self._walk(pts, self._point_in(zone, 1.0), 0.6)

    def _trip(self, t0: float, start: tuple[float, float]) -> list[tuple[float, float, float]]:
        sh = self.spec.shoppers
        rng = self.rng
        pts = [(t0, *start)]
        stops = int(rng.integers(sh.stops_min, max(sh.stops_min, sh.stops_max) + 1))
        speed = float(rng.uniform(0.8, 1.2)) * sh.walk_speed_mps
        for _ in range(stops):
            zone = (
                self._visit[int(rng.integers(len(self._visit)))] if self._visit else self._zones[0]
            )
            self._walk(pts, self._point_in(zone, 1.0), speed)
            self._dwell(pts, zone, float(rng.lognormal(math.log(sh.dwell_median_s), 0.5)))
        checkout = self._zone_by_id[sh.checkout_zone]
        self._walk(pts, self._point_in(checkout, 1.0), speed)
        self._dwell(pts, checkout, sh.checkout_s * float(rng.uniform(0.5, 1.5)))
        return pts

    def _move_people(self, t: float) -> None:
        sh = self.spec.shoppers
        rng = self.rng
        while self._next_arrival <= t:
            arrive = self._next_arrival
            rate = sh.arrival_per_min / 60.0
            self._next_arrival += float(rng.exponential(1.0 / rate)) if rate > 0 else math.inf
            if not self._free_carts or len(self._shoppers) >= sh.max_in_store:
                continue
            cart = self._free_carts.pop(int(rng.integers(len(self._free_carts))))
            start = self.paths[cart.id].at(arrive)
            pts = self._trip(arrive, start)
            corral = self._zone_by_id[self.spec.carts.corral_zone] if self.spec.carts else None
            if corral is not None:
                self._walk(pts, self._point_in(corral, 1.0), sh.walk_speed_mps)
            self.paths[cart.id] = Path2D(list(pts))
            phone = None
            if rng.random() < sh.phone_share:
                self._phone_n += 1
                phone = Phone(
                    id=f"phone-{self._phone_n}",
                    kind="shopper",
                    address=random_address(rng, "resolvable"),
                    address_type="random",
                    interval_s=sh.phone_interval_s,
                    tx_1m=-56,
                    true_tx_offset_db=0.0,
                    next_t=arrive + float(rng.uniform(0, sh.phone_interval_s)),
                )
                self.devices.append(phone)
                self.paths[phone.id] = Path2D(list(pts))
            for door in self._doors:
                door.state["open_until"] = arrive + 3.0
            self._shoppers.append((pts[-1][0], cart, phone))
        while self._rushes and self._rushes[0].at_s <= t:
            self._rush(self._rushes.pop(0))
        for end, tag in [e for e in self._leaving if e[0] <= t]:
            self._leaving.remove((end, tag))
            self.devices.remove(tag)
            del self.paths[tag.id]
        for entry in [s for s in self._shoppers if s[0] <= t]:
            self._shoppers.remove(entry)
            _, cart, phone = entry
            self._free_carts.append(cart)
            if phone is not None:
                self.devices.remove(phone)
                del self.paths[phone.id]
            for door in self._doors:
                door.state["open_until"] = entry[0] + 3.0
        for badge in (d for d in self.devices if isinstance(d, EddystoneBadge)):
            path = self.paths[badge.id]
            if path.end <= t:
                pts = [path.points[-1]]
                zone = self._zones[int(rng.integers(len(self._zones)))]
                self._walk(pts, self._point_in(zone, 1.0), 1.2)
                self._dwell(pts, zone, float(rng.uniform(60.0, 240.0)))
                self.paths[badge.id] = Path2D(pts)

    def _rush(self, inc: IncidentSpec) -> None:
        """``count`` shoppers at once with carts from the car park (tagged like the store's,
        numbered after them), straight to ``inc.zone``; after ``duration_s`` they leave."""
        sh = self.spec.shoppers
        c = self.spec.carts
        zone = self._zone_by_id[inc.zone or sh.checkout_zone]
        door = self._zone_by_id[c.corral_zone if c else sh.checkout_zone]
        for _ in range(inc.count):
            self._rush_n += 1
            n = (c.count if c else 0) + self._rush_n
            tag = IBeaconTag(
                id=(c.id_format if c else "cart-{minor}").format(
                    minor=n, major=c.major if c else 1
                ),
                kind="cart",
                address=random_address(self.rng, "static"),
                address_type="random",
                interval_s=c.interval_s if c else 0.3,
                tx_1m=c.tx_1m if c else -62,
                true_tx_offset_db=float(self.rng.normal(0.0, self.spec.radio.tx_spread_db)),
                next_t=inc.at_s + float(self.rng.uniform(0, 0.3)),
                uuid=c.ibeacon_uuid if c else "",
                major=c.major if c else 1,
                minor=n,
            )
            start = (door.x0 + 0.5, float(self.rng.uniform(door.y0 + 1.0, door.y1 - 1.0)))
            pts = [(inc.at_s, *start)]
            self._walk(pts, self._point_in(zone, 1.0), sh.walk_speed_mps)
            pts.append((inc.at_s + inc.duration_s, *pts[-1][1:]))
            self._walk(pts, start, sh.walk_speed_mps)
            self.devices.append(tag)
            self.paths[tag.id] = Path2D(pts)
            self._leaving.append((pts[-1][0], tag))

    # ---------------------------------------------------------------- adverts

    def step(self, t0: float, t1: float, wall0: float) -> list[Advert]:
        """Every advert heard by any receiver in ``[t0, t1)``, sorted by time."""
        self._move_people(t1)
        firing: list[tuple[float, Firmware]] = []
        for dev in self.devices:
            if dev.next_t < t0:
                dev.next_t = t0 + (dev.next_t - t0) % dev.interval_s
            if dev.incidents and isinstance(dev, EddystoneBadge) and away(t0, dev.incidents):
                continue  # out of the store: nobody hears it
            while dev.next_t < t1:
                firing.append((dev.next_t, dev))
                dev.advance(self.rng)
        if not firing:
            self.t = t1
            return []
        firing.sort(key=lambda p: p[0])
        xy = np.array([self.paths[d.id].at(t) for t, d in firing])
        tx = np.array([d.tx_1m + d.true_tx_offset_db for _, d in firing])
        rssi, heard = self.channel.sample(xy, tx, self.rng)
        out: list[Advert] = []
        receivers = self.receivers
        for i, (t, dev) in enumerate(firing):
            row = heard[i]
            if not row.any():
                continue
            mfr, svc = dev.payload(t, self.rng)
            for r in np.flatnonzero(row):
                out.append(
                    Advert(
                        address=dev.address,
                        rssi=int(rssi[i, r]),
                        t=t,
                        wall=wall0 + t,
                        receiver=receivers[r],
                        address_type=dev.address_type,
                        manufacturer_data=mfr,
                        service_data=svc,
                    )
                )
        self.t = t1
        return out

    def truth(self, t: float) -> Iterator[Truth]:
        """Where every mobile device truly is at ``t`` (carts, staff, phones)."""
        for dev in self.devices:
            if dev.kind in ("cart", "staff", "shopper"):
                x, y = self.paths[dev.id].at(t)
                gone = bool(dev.incidents) and away(t, dev.incidents)
                zone = None if gone else self.zone_at(x, y)
                yield Truth(t, dev.id, dev.kind, round(x, 3), round(y, 3), zone)

    def mean_rssi(self, device: str, t: float) -> dict[str, float]:
        """The oracle: a device's true mean signal at each receiver (no fading)."""
        dev = next(d for d in self.devices if d.id == device)
        xy = np.array([self.paths[device].at(t)])
        mean = self.channel.mean_rssi(xy, np.array([dev.tx_1m + dev.true_tx_offset_db]))[0]
        return dict(zip(self.receivers, (float(v) for v in mean), strict=True))
