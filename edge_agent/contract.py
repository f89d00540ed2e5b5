"""The MQTT payload contract (v1): pydantic models, from which JSON Schema and AsyncAPI are made.

Every payload carries the envelope ``v``, ``id``, ``seq``, ``ts`` and ``type``. Context events
get ``seq`` from the outbox, gapless per gateway, and ``id = "<gateway>:<seq>"`` (a gap only after a
corrupt outbox was quarantined; an id never repeats); the control-plane messages ``status`` and
``health`` are not queued: they carry the outbox's last committed ``seq`` and
``id = "<gateway>:<type>:<start epoch ms>-<n>"``, unique even when the wall clock steps back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edge_agent import __version__, topics

CONTRACT_VERSION = 1
Band = Literal["immediate", "near", "far", "gone"]
StatusState = Literal["online", "offline"]
DeviceClassName = Literal["cart", "staff", "asset", "shopper", "sensor", "beacon", "unknown"]


def rfc3339(wall: float) -> str:
    """``2026-11-23T10:15:02.123Z`` from epoch seconds."""
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class Envelope(BaseModel):
    """Fields every payload carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = Field(description="Contract version.")
    id: str = Field(description="Unique per gateway; consumers drop duplicates by it.")
    seq: Annotated[int, Field(ge=0, description="Event sequence number, gapless per gateway.")]
    ts: str = Field(
        pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
        description="When it happened, RFC 3339 UTC with milliseconds.",
    )


class PresencePayload(Envelope):
    """``presence/{device}``: a device entered, is still in, or left a zone."""

    type: Literal["enter", "update", "exit"]
    device: str = Field(description="Device id: configured id, beacon id or pseudonym.")
    device_class: DeviceClassName
    zone: str
    band: Band = Field(description="Proximity band to the nearest receiver.")
    receiver: str | None = Field(description="Nearest receiver.")
    distance_m: float | None = Field(description="Estimated distance to it, metres.")
    distance_range_m: tuple[float, float] | None = Field(
        None,
        description="One standard deviation either side of distance_m (the filter's variance "
        "and the model's error at a place), metres. Added in v1 (additive).",
    )
    rssi: float | None = Field(description="Smoothed RSSI at it, dBm.")
    dwell_s: float = Field(ge=0, description="Time in the zone so far (0 on enter).")
    confidence: float = Field(
        ge=0,
        le=1,
        description="Probability that the device is in the zone: on a floor plan, the zone's "
        "probability under the fused position; without one, the probability, under the "
        "distance uncertainty, that the device is nearer to this receiver than to any other and "
        "within the zone's radius.",
    )
    x: float | None = Field(
        None,
        description="Fused position on the store's floor plan, metres east (null without a "
        "floor plan; on exit, the last position inside the zone). Added in v1 (additive).",
    )
    y: float | None = Field(
        None,
        description="Fused position on the store's floor plan, metres north. Added in v1 "
        "(additive).",
    )
    position_error_m: float | None = Field(
        None,
        ge=0,
        description="Spread of the fused position (root of the summed variances of x and y), "
        "metres. Added in v1 (additive).",
    )


class OccupancyPayload(Envelope):
    """``zone/{zone}/occupancy`` (retained): who is in a zone now."""

    type: Literal["occupancy"]
    zone: str
    counts: dict[DeviceClassName, int] = Field(
        description="Devices in the zone by class; a class with 1 to k-1 devices is left out "
        "and listed in fewer_than_k instead."
    )
    fewer_than_k: list[DeviceClassName] = Field(
        default_factory=list,
        description="Classes present with fewer than k devices (k-anonymity): at least one, "
        "exact number withheld.",
    )
    k: int = Field(1, ge=1, description="The k-anonymity threshold in force (1: off).")
    total: int | None = Field(
        ge=0,
        description="Devices in the zone; null when from 1 to k-1 (fewer than k), and when a "
        "class is withheld (total minus the counts would give it away).",
    )
    mean_dwell_s: float | None = Field(
        description="Mean time in the zone of those present; null when the total is, and when "
        "from 1 to k-1 devices changed since the last mean published (differencing the two "
        "would give their dwell away)."
    )
    window_s: float = Field(gt=0, description="Reporting interval.")


class MeasurementValue(BaseModel):
    """One typed measurement."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float | int | bool | str
    unit: str | None


class ReadingPayload(Envelope):
    """``sensor/{device}``: a sensor reading (on change beyond a deadband, or heartbeat)."""

    type: Literal["reading"]
    device: str
    device_class: DeviceClassName
    format: Literal["bthome", "ruuvi"]
    measurements: dict[str, MeasurementValue]
    rssi: float | None
    zone: str | None = Field(
        None, description="The zone a fixed sensor stands in. Added in v1 (additive)."
    )


class BeaconHealthPayload(Envelope):
    """``beacon/{device}/health`` (retained): battery and liveness of a registered beacon."""

    type: Literal["beacon_health"]
    device: str
    device_class: DeviceClassName
    battery_mv: int | None
    tx_power_dbm: int | None = Field(description="RSSI at 1 m the beacon advertises.")
    observed_interval_s: float | None = Field(description="Mean time between its adverts.")
    missing: bool = Field(description="Not heard for a whole reporting interval.")
    last_seen_s_ago: float = Field(ge=0)
    zone: str | None = Field(
        None, description="The zone a fixed beacon stands in. Added in v1 (additive)."
    )


class OutboxIncident(BaseModel):
    """A corrupt outbox database that was moved aside (kept for inspection) and started afresh."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: str = Field(description="When, RFC 3339 UTC.")
    moved_to: str = Field(description="File name it was moved to, beside the outbox.")
    reason: str = Field(description="What SQLite reported.")


class StatusPayload(Envelope):
    """``status`` (retained; the last will says ``offline``)."""

    type: Literal["status"]
    state: StatusState
    version: str
    started_at: str
    config_hash: str = Field(description="SHA-256 of the configuration file, hex.")
    outbox_incidents: list[OutboxIncident] = Field(
        default_factory=list, description="Corrupt outbox files quarantined since start."
    )


class OutboxHealth(BaseModel):
    """The outbox's side of ``health``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bytes: int = Field(ge=0, description="Payload and topic bytes stored.")
    held: int = Field(ge=0, description="Events held in memory because the disk is not writable.")
    storage_ok: bool = Field(description="False while commits fail (disk full, I/O error).")
    write_failures: int = Field(ge=0)
    evicted: dict[str, int] = Field(
        description="Events dropped, by reason:type (full, ttl, retention, disk_full, erased)."
    )
    incidents: list[OutboxIncident]


class PublisherHealth(BaseModel):
    """The publisher's side of ``health``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    broker: str | None = Field(description="host:port of the current or last broker.")
    connected: bool
    inflight: int = Field(ge=0)
    connects: int = Field(ge=0)
    connect_failures: int = Field(ge=0)
    silent_drops: int = Field(ge=0, description="Connections dropped for 1.5 x keepalive silence.")
    resent: int = Field(ge=0, description="Rows sent again after a lost connection.")
    rejected: int = Field(ge=0, description="Rows the broker refused (MQTT 5 reason code).")


class PrivacyHealth(BaseModel):
    """The identity stage's side of ``health`` (no device is named)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_rotations: int = Field(ge=0, description="Pseudonym keys replaced since start.")
    ignored_adverts: int = Field(ge=0, description="Adverts dropped by the ignore policy.")
    count_only_adverts: int = Field(ge=0, description="Adverts from count-only devices.")
    consents: int = Field(ge=0, description="Devices on the consent list.")
    erasures: int = Field(ge=0, description="Erase and revoke requests carried out.")


class AdapterHealth(BaseModel):
    """One receiver's radio in ``health`` (the ``bleak`` source)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    receiver: str = Field(description="Receiver id adverts carry (the first adapter in failover).")
    adapter: str | None = Field(description="Adapter scanning for it now, or last.")
    state: Literal["waiting", "starting", "scanning", "resting"] = Field(
        description="waiting for BlueZ or the adapter, starting, scanning, or resting after a "
        "failure (backoff)."
    )
    mode: str = Field(description="active, passive, or 'active (passive unsupported)'.")
    adverts: int = Field(ge=0)
    silent_s: float | None = Field(description="Seconds since the last advert (null: none yet).")
    starts: int = Field(ge=0)
    start_failures: int = Field(ge=0)
    watchdog_trips: int = Field(ge=0, description="Silences longer than source.watchdog_s.")
    restarts: int = Field(ge=0, description="Scan restarts (first rung of the ladder).")
    power_cycles: int = Field(ge=0, description="Adapter power cycles (second rung).")
    failovers: int = Field(ge=0, description="Moves to another adapter.")
    bluez_restarts: int = Field(ge=0, description="Times BlueZ went away while scanning.")
    adapter_lost: int = Field(ge=0, description="Times the adapter was removed or powered off.")
    last_error: str | None


class HealthPayload(Envelope):
    """``health``: the agent's own counters."""

    type: Literal["health"]
    uptime_s: float
    adverts_total: int
    adverts_per_s: float
    queue_dropped: int
    decode: dict[str, Any] = Field(description="frames, unknown, malformed by format:reason")
    devices_tracked: int
    outbox_depth: int
    outbox_oldest_age_s: float | None
    published_total: int
    publish_per_s: float
    reconnects: int
    outbox: OutboxHealth
    publisher: PublisherHealth
    privacy: PrivacyHealth | None = None
    source: str
    adapters: list[AdapterHealth] = Field(
        default_factory=list, description="The radio's lanes (empty for simulation and replay)."
    )
    cpu_s: float
    rss_mb: float
    warnings: list[str] = Field(
        default_factory=list,
        description="What works but is likely not meant: the configuration's warnings, and "
        "receivers heard that have no zone (their adverts give no presence). Added in v1 "
        "(additive).",
    )


EVENT_MODELS: dict[str, type[Envelope]] = {
    "enter": PresencePayload,
    "update": PresencePayload,
    "exit": PresencePayload,
    "occupancy": OccupancyPayload,
    "reading": ReadingPayload,
    "beacon_health": BeaconHealthPayload,
}
CONTROL_MODELS: dict[str, type[Envelope]] = {"status": StatusPayload, "health": HealthPayload}
_T = topics.TEMPLATES
TOPICS: dict[str, tuple[type[Envelope], bool, str]] = {
    _T["status"]: (StatusPayload, True, "Gateway online/offline (retained, last will)."),
    _T["health"]: (HealthPayload, False, "Periodic counters."),
    _T["presence"]: (PresencePayload, False, "Zone enter, update and exit."),
    _T["occupancy"]: (OccupancyPayload, True, "Zone occupancy (retained)."),
    _T["sensor"]: (ReadingPayload, False, "Sensor readings."),
    _T["beacon_health"]: (BeaconHealthPayload, True, "Beacon battery and liveness."),
}


def model_for(topic_type: str) -> type[Envelope]:
    """The payload model of a ``type``."""
    model = EVENT_MODELS.get(topic_type) or CONTROL_MODELS.get(topic_type)
    if model is None:
        raise KeyError(topic_type)
    return model


def json_schemas() -> dict[str, Any]:
    """JSON Schema of every payload, by model name."""
    models = {m.__name__: m for m in [*EVENT_MODELS.values(), *CONTROL_MODELS.values()]}
    return {name: m.model_json_schema() for name, m in sorted(models.items())}


def asyncapi() -> dict[str, Any]:
    """An AsyncAPI 3.0 document of the topic contract."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for topic, (model, retained, text) in TOPICS.items():
        key = topic.replace("/", "_").replace("{", "").replace("}", "")
        schemas[model.__name__] = model.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        params = {
            p.strip("{}"): {"description": p.strip("{}")} for p in topic.split("/") if "{" in p
        }
        channels[key] = {
            "address": "{prefix}/{site}/{gateway}/" + topic,
            "description": f"{text} Retained: {'yes' if retained else 'no'}.",
            "parameters": {"prefix": {}, "site": {}, "gateway": {}, **params},
            "messages": {
                model.__name__: {"payload": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
        operations[f"publish_{key}"] = {"action": "send", "channel": {"$ref": f"#/channels/{key}"}}
    for schema in list(schemas.values()):
        for name, sub in schema.pop("$defs", {}).items():
            schemas.setdefault(name, sub)
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Store edge agent", "version": f"{CONTRACT_VERSION}.0 ({__version__})"},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas},
    }
