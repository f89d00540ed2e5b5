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

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from edge_agent.ids import SEGMENT_PATTERN

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


def _as_rfc3339(value: object) -> object:
    """Epoch seconds from an event body, as the RFC 3339 text the payload carries."""
    return rfc3339(float(value)) if isinstance(value, int | float) else value


Rfc3339 = Annotated[
    str,
    BeforeValidator(_as_rfc3339),
    Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"),
]
MomentTrigger = Literal["dwell", "sequence", "crowd", "sensor", "absence"]


class MomentPayload(Envelope):
    """``moment/{name}``: a moment that matters (a rule of ``[[moments]]`` fired)."""

    type: Literal["moment"]
    name: str = Field(description="The rule's name.")
    trigger: MomentTrigger
    state: Literal["instant", "start", "end"] = Field(
        description="instant (dwell, sequence: fires once); start and end (crowd, sensor, "
        "absence: a condition that holds for a while; every start gets one end, also across a "
        "restart of the agent)."
    )
    subject: str | None = Field(
        description="The device it is about: only a consented shopper or a registered device "
        "(a badge, a cart, a sensor); null for a place (a crowd). Never a pseudonym."
    )
    subject_class: DeviceClassName | None
    zone: str | None
    started: Rfc3339 = Field(description="When the condition began to hold, RFC 3339 UTC.")
    duration_s: float = Field(
        ge=0, description="How long it held: until it fired, or on end, in all."
    )
    facts: dict[str, float | int | str | bool] = Field(
        description="What triggered it: dwell_s, count, value, threshold, zones (a sequence, "
        "comma-separated), min_s, for_s …"
    )


class MomentCountPayload(Envelope):
    """``moment/{name}/count``: how many anonymous devices met a dwell or sequence rule in
    one interval (moments about one shopper are only for those who consented)."""

    type: Literal["moment_count"]
    name: str
    trigger: Literal["dwell", "sequence"]
    zone: str | None
    count: int | None = Field(ge=0, description="Null when from 1 to k-1 (fewer_than_k).")
    fewer_than_k: bool
    k: int = Field(ge=1)
    interval_start: Rfc3339
    interval_s: float = Field(gt=0)


class AggregateCell(BaseModel):
    """One cell: labels (zones and bins, never an id) and a count of at least k."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    labels: dict[str, str]
    count: int = Field(ge=1)


class AggregatePayload(Envelope):
    """``aggregate/{kind}``: anonymous figures of one interval, for everyone (cold data, for
    keeping): ``flow`` (zone-to-zone transitions, ``from``/``to``, ``outside`` for the store's
    edge), ``dwell`` (time in a zone, ``zone``/``bin``), ``visits`` (``zone``) and
    ``visit_length`` (time in the store, ``bin``). Bins are ``lo-hi`` seconds (``lo+`` the
    last). Cells under k are withheld and counted in ``suppressed``."""

    type: Literal["aggregate"]
    kind: Literal["flow", "dwell", "visits", "visit_length"]
    cells: list[AggregateCell]
    suppressed: int = Field(ge=0)
    k: int = Field(ge=1)
    interval_start: Rfc3339
    interval_s: float = Field(gt=0)
    observed_s: float = Field(
        ge=0,
        description="How much of the interval the agent saw: less in its first interval after "
        "a start (devices already in the store then count as arrivals from outside).",
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


class StoreHealth(BaseModel):
    """Fusion across the store's gateways (a floor plan with ``fusion.share``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    summaries_sent: int = Field(ge=0, description="Signal summaries published.")
    summaries_send_failed: int = Field(ge=0, description="Summaries not published (offline).")
    summaries_received: int = Field(ge=0, description="Summaries received from other gateways.")
    summaries_dropped: int = Field(ge=0, description="Received while the queue was full.")
    summaries_invalid: int = Field(ge=0, description="Received messages that were not summaries.")
    summaries_skipped: int = Field(
        ge=0, description="Summaries not fused: too near a pseudonym key change."
    )
    remote_samples: int = Field(ge=0, description="Other gateways' samples fused.")
    devices_deferred: int = Field(
        ge=0, description="Devices held for a later summary because one was full."
    )


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


class CommandHealth(BaseModel):
    """The command channel's side of ``health`` (``[commands] enabled``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    received: int = Field(ge=0, description="Requests on the gateway's command topics.")
    ok: int = Field(ge=0, description="Carried out.")
    failed: int = Field(ge=0, description="Answered with an error.")
    dropped: int = Field(ge=0, description="Not read: the command queue was full.")
    rolled_back: int = Field(ge=0, description="set-config changes rolled back.")
    reloads: int = Field(ge=0, description="Configurations taken up without a restart.")


class HealthPayload(Envelope):
    """``health``: the agent's own counters."""

    type: Literal["health"]
    uptime_s: float
    adverts_total: int
    adverts_per_s: float
    queue_dropped: int
    decode: dict[str, Any] = Field(description="frames, unknown, malformed by format:reason")
    devices_tracked: int
    devices_evicted: int = Field(
        0,
        description="Devices forgotten early because pipeline.max_devices were tracked. Added "
        "in v1 (additive).",
    )
    updates_suppressed: int = Field(
        0,
        description="update events not made: the device had not moved "
        "presence.update_min_change_m. Added in v1 (additive).",
    )
    outbox_depth: int
    outbox_oldest_age_s: float | None
    published_total: int
    publish_per_s: float
    reconnects: int
    outbox: OutboxHealth
    publisher: PublisherHealth
    privacy: PrivacyHealth | None = None
    store: StoreHealth | None = Field(
        None,
        description="Fusion across the store's gateways; null without. Added in v1 (additive).",
    )
    commands: CommandHealth | None = Field(
        None, description="The command channel; null when off. Added in v1 (additive)."
    )
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


COMMANDS = (
    "ping",
    "status",
    "get-config",
    "set-config",
    "reload",
    "erase",
    "consent-add",
    "consent-revoke",
    "calibrate-offset",
    "flush",
)
"""The commands of ``cmd/{name}``."""
CommandName = Literal[
    "ping",
    "status",
    "get-config",
    "set-config",
    "reload",
    "erase",
    "consent-add",
    "consent-revoke",
    "calibrate-offset",
    "flush",
]


class CommandRequest(BaseModel):
    """``cmd/{name}`` (to the gateway, QoS 1, never retained): one command. MQTT 5 response
    topic and correlation data are honoured when present. Fields it does not know are ignored
    (a newer fleet tool may send more)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[!-~]+$",
        description="Request id, unique per request: a repeated one gets a 'replayed' error.",
    )
    args: dict[str, Any] = Field(
        default_factory=dict,
        description="The command's arguments (see each command in README).",
    )


class CommandFailure(BaseModel):
    """Why a command was refused or failed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Literal[
        "bad_request",
        "unknown_command",
        "replayed",
        "too_large",
        "refused",
        "invalid_config",
        "needs_restart",
        "busy",
        "failed",
        "timeout",
    ]
    message: str


class CommandResultPayload(Envelope):
    """``cmd/{name}/result`` (or the request's MQTT 5 response topic; QoS 1, not retained):
    the outcome of one command. ``set-config`` answers twice: ``applied``, then ``confirmed``
    or ``rolled_back``."""

    type: Literal["command_result"]
    command: str = Field(description="The command's name, as the topic gave it.")
    request_id: str | None = Field(description="The request's id (null: it had none).")
    ok: bool
    state: Literal["done", "applied", "confirmed", "rolled_back", "error"]
    result: dict[str, Any] | None = Field(description="What the command returns (ok only).")
    error: CommandFailure | None = Field(description="Why it failed (not ok only).")


SUMMARY_MAX_BYTES = 4 * 1024 * 1024
"""A signal summary larger than this is dropped unread."""


class SummaryDevice(BaseModel):
    """One device in a signal summary: what each of the sender's receivers heard of it."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    id: str = Field(
        pattern=SEGMENT_PATTERN, description="Wire id (pseudonym, beacon or configured id)."
    )
    cls: DeviceClassName = Field(description="Device class.")
    publish: bool = Field(description="Whether its presence is published (false: counted only).")
    rx: list[tuple[str, float, float, int]] = Field(
        max_length=256,
        description="Per receiver of the sender: [receiver id, mean of RSSI less the device's "
        "power at 1 m (dB, the receiver's calibration applied), variance of those samples (dB²), "
        "samples].",
    )


class RssiSummaryPayload(BaseModel):
    """``{prefix}/{site}/rssi/{gateway}`` (QoS 0, not retained, store-internal): what one
    gateway's receivers heard since its previous summary, for the store's other gateways to
    fuse. Carries no raw address."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    v: Literal[1]
    type: Literal["rssi_summary"]
    gateway: str = Field(pattern=SEGMENT_PATTERN, description="The sender.")
    ts: float = Field(description="Sender's wall clock when sent, epoch seconds.")
    step: int = Field(
        description="The sender's fusion step (its clock over fusion.step_s) the summary ends: "
        "receivers fuse it at their next step, together with their own of the same step."
    )
    devices: list[SummaryDevice] = Field(max_length=100_000)


def decode_summary(payload: bytes) -> RssiSummaryPayload | None:
    """A summary from the wire, or ``None`` when it is too large or not one."""
    if len(payload) > SUMMARY_MAX_BYTES:
        return None
    try:
        return RssiSummaryPayload.model_validate_json(payload)
    except ValueError:
        return None


EVENT_MODELS: dict[str, type[Envelope]] = {
    "enter": PresencePayload,
    "update": PresencePayload,
    "exit": PresencePayload,
    "occupancy": OccupancyPayload,
    "reading": ReadingPayload,
    "beacon_health": BeaconHealthPayload,
    "moment": MomentPayload,
    "moment_count": MomentCountPayload,
    "aggregate": AggregatePayload,
}
CONTROL_MODELS: dict[str, type[Envelope]] = {
    "status": StatusPayload,
    "health": HealthPayload,
    "command_result": CommandResultPayload,
}


def model_for(topic_type: str) -> type[Envelope]:
    """The payload model of a ``type``."""
    model = EVENT_MODELS.get(topic_type) or CONTROL_MODELS.get(topic_type)
    if model is None:
        raise KeyError(topic_type)
    return model
