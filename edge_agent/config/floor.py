"""The store's floor in ``agent.toml``: receivers (where they are), their calibration, zones
(radius around a receiver, or shapes on the floor plan) and ``[fusion]``, the engine that turns
every receiver's signal into one position per device."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from edge_agent import geometry
from edge_agent.config.base import Segment, _Section
from edge_agent.ids import RECEIVER_PATTERN


class ReceiverConfig(_Section):
    """``[[receivers]]``: a radio, where it stands and (without a floor plan) the zone it
    watches."""

    id: Annotated[str, Field(pattern=RECEIVER_PATTERN)]
    """Receiver id as adverts report it: the adapter (``hci0``) or a remote receiver's id."""
    zone: Segment | None = None
    """Zone this receiver covers (one of ``zones``); needed without a floor plan."""
    rssi_offset_db: float = Field(0.0, ge=-30, le=30)
    """Added to every RSSI this receiver reports (antenna and enclosure calibration)."""
    x: float | None = Field(None, ge=-10_000, le=10_000)
    """Position on the floor plan, metres (east). Giving any receiver a position turns the
    floor plan on: then every receiver needs one."""
    y: float | None = Field(None, ge=-10_000, le=10_000)
    """Position on the floor plan, metres (north)."""
    z: float = Field(2.5, ge=-10, le=100)
    """Height above the floor, metres."""
    gateway: Segment | None = None
    """The gateway whose radio this is, when it is another gateway's of the same store (its
    summaries arrive over MQTT); unset: this gateway's own, or unknown."""

    @property
    def placed(self) -> bool:
        """Whether the receiver has a position on the plan."""
        return self.x is not None and self.y is not None

    def key(self, own_gateway: str) -> str:
        """The receiver's name on the floor plan: its id for this gateway's own radios, and
        ``gateway/id`` for another gateway's (every gateway has an ``hci0``)."""
        if self.gateway is None or self.gateway == own_gateway:
            return self.id
        return remote_key(self.gateway, self.id)


def remote_key(gateway: str, receiver: str) -> str:
    """The plan's name for another gateway's receiver."""
    return f"{gateway}/{receiver}"


class ReceiverCalibration(_Section):
    """One receiver's fitted model, as ``edge-agent calibrate`` writes it."""

    id: Annotated[str, Field(pattern=RECEIVER_PATTERN)]
    """Receiver id."""
    rssi_offset_db: float = Field(ge=-40, le=40)
    """Added to the receiver's RSSI, so that a beacon's stated power at 1 m holds for it."""
    path_loss_exponent: float = Field(ge=1.0, le=6.0)
    """The receiver's own ``n`` in ``rssi = P1m - 10 n log10(d)``."""
    mean_offset_db: float | None = Field(None, ge=-40, le=40)
    """The mean-signal model over every distance heard (least squares), which fusion uses:
    its offset. Unset: fusion uses ``rssi_offset_db`` (fitted for distances near the
    receiver)."""
    mean_exponent: float | None = Field(None, ge=1.0, le=6.0)
    """The mean-signal model's exponent."""


PLAN_NAME_PATTERN = r"^([a-z0-9][a-z0-9_-]{0,63}/)?[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
"""A receiver's name on the floor plan: ``id``, or ``gateway/id`` (``ReceiverConfig.key``)."""
MAP_SIDE_CELLS = 4000
"""A radio map's side, cells at most."""
MAP_MAX_CELLS = 1_000_000
"""A radio map's cells at most."""
MAP_MAX_DB = 40.0
"""A radio map's correction at most, dB either way (NaN is refused too)."""


class RadioMapConfig(_Section):
    """``[calibration.radio_map]``: a site survey's corrections to the mean-signal model, per
    receiver and place, as ``edge-agent calibrate --radio-map`` writes them (fusion adds them
    to the signal it expects from each cell of the floor plan)."""

    x0: float = Field(ge=-10_000, le=10_000)
    """West edge of the map's grid, metres."""
    y0: float = Field(ge=-10_000, le=10_000)
    """South edge, metres."""
    cell_m: float = Field(gt=0.05, le=10)
    """Cell size, metres."""
    nx: int = Field(ge=1, le=MAP_SIDE_CELLS)
    """Cells west to east."""
    ny: int = Field(ge=1, le=MAP_SIDE_CELLS)
    """Cells south to north (cell ``(i, j)`` is value ``i * ny + j``)."""
    length_m: float = Field(0.7, gt=0, le=20)
    """How far one survey sample spoke for when it was fitted, metres (for the record)."""
    correction_db: dict[Annotated[str, Field(pattern=PLAN_NAME_PATTERN)], list[float]] = Field(
        default_factory=dict
    )
    """Receiver (its name on the plan: its id, or ``gateway/id`` for another gateway's radio)
    → the survey's mean signal less the model's in every cell, dB. On a store of several
    gateways that share (``fusion.share``), give each gateway the map of every receiver of the
    store, so that they fuse alike."""

    @model_validator(mode="after")
    def _check(self) -> RadioMapConfig:
        cells = self.nx * self.ny
        if cells > MAP_MAX_CELLS:
            raise ValueError(f"nx × ny = {cells:,} cells: at most {MAP_MAX_CELLS:,}")
        for name, values in self.correction_db.items():
            if len(values) != cells:
                raise ValueError(
                    f"correction_db.{name}: {len(values)} values, nx × ny = {cells} expected"
                )
            bad = next((v for v in values if not -MAP_MAX_DB <= v <= MAP_MAX_DB), None)
            if bad is not None:
                raise ValueError(f"correction_db.{name}: {bad} dB is not within ±{MAP_MAX_DB:g} dB")
        return self


class CalibrationConfig(_Section):
    """``[calibration]``: per-receiver models fitted by ``edge-agent calibrate``, from
    ``file`` (the TOML it writes, relative to this file) and/or inline ``[[calibration.receivers]]``
    (inline entries win). A receiver here overrides its ``rssi_offset_db`` and the global
    ``proximity.path_loss_exponent``."""

    file: str | None = None
    """Calibration TOML to include."""
    receivers: list[ReceiverCalibration] = Field(default_factory=list)
    """The fitted receivers."""
    radio_map: RadioMapConfig | None = None
    """A site survey's corrections (``edge-agent calibrate --radio-map``); fusion only."""

    def by_receiver(self) -> dict[str, ReceiverCalibration]:
        """Receiver id → its calibration (the last entry for an id wins)."""
        return {r.id: r for r in self.receivers}


Corner = tuple[float, float]


class ZoneConfig(_Section):
    """``[[zones]]``: a named area of the store: a shape on the floor plan (``rect`` or
    ``polygon``), or without a plan the area within ``radius_m`` of its receivers."""

    id: Segment
    """Zone id; a topic segment."""
    name: str = ""
    """Human-readable name."""
    radius_m: float = Field(4.0, gt=0, le=100)
    """Without a floor plan: a device is in this zone when its nearest receiver is this
    zone's and closer than this."""
    rect: tuple[float, float, float, float] | None = None
    """Floor plan: ``[x0, y0, x1, y1]``, metres (shorthand for a rectangular polygon)."""
    polygon: list[Corner] | None = Field(None, max_length=256)
    """Floor plan: corners ``[[x, y], …]`` in order, metres; a simple polygon."""
    overlap: bool = False
    """May share area with other zones that allow it too (a promotion area inside an aisle);
    a device may then be in both."""

    @field_validator("rect")
    @classmethod
    def _check_rect(
        cls, value: tuple[float, float, float, float] | None
    ) -> tuple[float, float, float, float] | None:
        if value is not None and not (value[0] < value[2] and value[1] < value[3]):
            raise ValueError("must be [x0, y0, x1, y1] with x0 < x1 and y0 < y1")
        return value

    @field_validator("polygon")
    @classmethod
    def _check_polygon(cls, value: list[Corner] | None) -> list[Corner] | None:
        if value is not None:
            problem = geometry.simple_problem(value)
            if problem is not None:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _one_shape(self) -> ZoneConfig:
        if self.rect is not None and self.polygon is not None:
            raise ValueError("give either rect or polygon, not both")
        return self

    @property
    def shape(self) -> list[Corner] | None:
        """The zone's polygon on the floor plan (``None`` without one)."""
        if self.rect is not None:
            return geometry.rectangle(*self.rect)
        return list(self.polygon) if self.polygon is not None else None


class FusionConfig(_Section):
    """``[fusion]``: one position per device from every receiver that hears it (a Bayes
    filter over a grid on the floor plan), and zones from where it probably is. Used when the
    receivers have positions; without them, zones follow the nearest receiver."""

    floor: tuple[float, float, float, float] | None = None
    """``[x0, y0, x1, y1]`` of the floor, metres. Default: the zones' extent."""
    grid_m: float = Field(1.0, ge=0.1, le=5.0)
    """Size of a grid cell, metres (cost and memory grow with the number of cells)."""
    tag_height_m: float = Field(1.2, ge=0, le=10)
    """Height of the tags followed (a cart handle, a pocket, a badge), metres."""
    step_s: float = Field(0.25, ge=0.05, le=10)
    """A device's position is updated at most this often, with what its receivers heard in
    between (not at all while nothing is heard)."""
    speed_mps: float = Field(1.0, gt=0, le=20)
    """Motion model: how far a device strays in a second (one standard deviation of a random
    walk), metres (a shopper's pace)."""
    sigma_db: float = Field(6.0, gt=0, le=30)
    """Spread of one advert's RSSI around the calibrated model (shadowing and fading), dB."""
    weak_tail_sigmas: float = Field(1.5, ge=0.5, le=10)
    """Heavy tails: a sample weaker than the model by more than this many ``sigma_db`` counts
    no more against a place than one at this many (bodies and shelves in the way)."""
    strong_tail_sigmas: float = Field(4.0, ge=0.5, le=10)
    """The same for a sample stronger than the model (rarer: nothing makes a signal much
    stronger than its path allows, so it says more about where the device is not)."""
    evidence_weight: float = Field(0.5, gt=0, le=1)
    """How much one step's samples count (1: as independent evidence; less, because the
    errors of consecutive samples at one place are alike)."""
    enter_probability: float = Field(0.5, gt=0, lt=1)
    """A device enters a zone when the zone's probability holds above this for
    ``presence.min_dwell_s``."""
    exit_probability: float = Field(0.2, gt=0, lt=1)
    """... and leaves it when the probability falls below this (hysteresis)."""
    share: bool = False
    """Exchange per-receiver signal summaries with the store's other gateways over MQTT
    (``{prefix}/{site}/rssi/{gateway}``), so that each fuses every receiver of the store. Set it
    on every gateway of a store with several (with the same floor plan, and the same
    ``privacy.store_secret_*`` so that they name devices alike); it delays positions by one
    ``step_s``, so that they all step on the same evidence."""
    share_max_devices: int = Field(2000, ge=1, le=100_000)
    """At most this many devices per summary message (the rest wait for the next step)."""

    @model_validator(mode="after")
    def _check(self) -> FusionConfig:
        f = self.floor
        if f is not None and not (f[0] < f[2] and f[1] < f[3]):
            raise ValueError("floor must be [x0, y0, x1, y1] with x0 < x1 and y0 < y1")
        if self.exit_probability >= self.enter_probability:
            raise ValueError("exit_probability must be below enter_probability (hysteresis)")
        return self
