"""The sections of ``agent.toml`` as pydantic models: types, bounds and rules within a section.

Pure: nothing here reads a file or the environment (``edge_agent.config.checks`` does, as a
separate step), so the pipeline can take its settings from here without doing I/O.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edge_agent import topics
from edge_agent.config.base import Segment, _Section
from edge_agent.config.floor import (
    CalibrationConfig,
    FusionConfig,
    ReceiverConfig,
    ZoneConfig,
)
from edge_agent.config.moments import AggregatesConfig, MomentRule
from edge_agent.config.remote import CommandsConfig, HomeAssistantConfig
from edge_agent.ids import (
    BEACON_PATTERN,
    ENV_PATTERN,
    MAC_PATTERN,
    PATTERN_MESSAGES,
    SEGMENT_PATTERN,
    TIME_PATTERN,
    UUID_PATTERN,
)
from edge_agent.models import DeviceClass


def _resolve_path(value: Path | None, info: ValidationInfo) -> Path | None:
    """Relative paths are relative to the directory of the config file."""
    if value is None or value.is_absolute():
        return value
    base = (info.context or {}).get("base_dir")
    return Path(base) / value if base else value


ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]


class GatewayConfig(_Section):
    """``[gateway]``: who this gateway is."""

    id: Segment
    """Gateway id, unique in the fleet; the last topic segment of the root."""
    site: Segment
    """Store (site) id; the middle topic segment of the root."""
    state_dir: ConfigPath = Path("/var/lib/edge-agent")
    """Where the outbox lives (systemd ``StateDirectory``)."""


class SourceConfig(_Section):
    """``[source]``: where advertisements come from."""

    kind: Literal["bleak", "sim", "replay"] = "bleak"
    """``bleak`` (the radio), ``sim`` (the simulated store) or ``replay`` (a recording)."""
    adapters: list[Annotated[str, Field(pattern=r"^hci\d{1,2}$")]] = Field(
        default_factory=lambda: ["hci0"], min_length=1
    )
    """Bluetooth adapters to scan with (``bleak``)."""
    scanning_mode: Literal["active", "passive"] = "active"
    """Active or passive scanning (``bleak``); passive falls back to active, with a warning,
    when BlueZ has no advertisement monitor."""
    adapter_policy: Literal["all", "failover"] = "all"
    """``all``: every adapter scans as its own receiver. ``failover``: one receiver (named after
    the first adapter) scans with the first adapter present and moves down the list when it
    fails, back to the first when it returns (``bleak``)."""
    watchdog_s: float = Field(30.0, ge=1, le=3600)
    """Restart a scanner that has been silent this long while adverts are expected (``bleak``)."""
    start_timeout_s: float = Field(10.0, gt=0, le=120)
    """Give up on a scanner start after this long and try again with backoff (``bleak``)."""
    restart_backoff_max_s: float = Field(60.0, ge=1, le=3600)
    """Longest wait between failed starts, and between tries on a dead adapter (``bleak``)."""
    scenario: ConfigPath | None = None
    """Store scenario TOML (``sim``)."""
    path: ConfigPath | None = None
    """Recording JSONL or capture CSV (``replay``)."""
    speed: float = Field(1.0, ge=0, le=10_000)
    """Virtual time per real second for ``sim`` and ``replay``; 0 = as fast as possible."""
    duration_s: float | None = Field(None, gt=0)
    """Stop after this much source time (``sim``); the agent then drains and exits."""
    seed: int | None = None
    """Override the scenario's random seed (``sim``)."""
    truth_log: ConfigPath | None = None
    """Write the simulated ground truth here as JSONL: each device, every second (``sim``)."""
    queue_size: int = Field(20_000, ge=100, le=1_000_000)
    """Bound of the queue between the source and the pipeline; overflow is dropped and counted."""


class MqttTlsConfig(_Section):
    """``[mqtt.tls]``: how ``mqtts://`` connections are secured. The broker's certificate is
    always verified and its name always checked against the URL host (or ``server_name``)."""

    ca_file: ConfigPath | None = None
    """CA bundle (PEM) that signed the broker's certificate; default: the system's CAs."""
    cert_file: ConfigPath | None = None
    """Client certificate (PEM) for mutual TLS."""
    key_file: ConfigPath | None = None
    """Private key (PEM) of the client certificate; may be a credential path."""
    key_credential: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] | None = None
    """Name of a systemd credential holding the private key instead of ``key_file``."""
    server_name: str | None = Field(None, min_length=1, max_length=253)
    """Name expected in the broker's certificate when it differs from the URL host."""
    min_version: Literal["1.2", "1.3"] = "1.2"
    """Oldest TLS version accepted."""


def broker_address(url: str) -> tuple[str, int, bool]:
    """Host, port and whether TLS is used, of a broker URL as ``mqtt.urls`` holds it (the port
    defaults to 1883, or 8883 for ``mqtts://``)."""
    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    return parts.hostname or "localhost", parts.port or (8883 if tls else 1883), tls


class MqttConfig(_Section):
    """``[mqtt]``: the broker and the topic root."""

    urls: list[str] = Field(default_factory=lambda: ["mqtt://127.0.0.1:1883"], min_length=1)
    """Broker URLs, ``mqtt://host:port`` or ``mqtts://host:port``; tried in order."""
    prefix: Segment = "retail"
    """First topic segment."""
    client_id: str | None = Field(None, min_length=1, max_length=128)
    """MQTT client id; defaults to ``edge-agent-<gateway.id>``."""
    protocol: Literal["3.1.1", "5"] = "5"
    """MQTT protocol version."""
    keepalive_s: int = Field(15, ge=5, le=600)
    """Keepalive; a silent broker is noticed after about 1.5 × this."""
    connect_timeout_s: float = Field(10.0, gt=0, le=120)
    """How long one connection attempt may take."""
    username: str | None = None
    """User name, if the broker wants one."""
    password_file: ConfigPath | None = None
    """File holding the password (systemd ``LoadCredential``). Never put it inline."""
    password_env: Annotated[str, Field(pattern=ENV_PATTERN)] | None = None
    """Environment variable holding the password."""
    password_credential: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] | None = None
    """Name of a systemd credential holding the password (``LoadCredential=NAME:PATH``); read
    from ``$CREDENTIALS_DIRECTORY/NAME``."""
    tls: MqttTlsConfig = MqttTlsConfig()
    """TLS settings for ``mqtts://`` URLs."""
    inflight: int = Field(100, ge=1, le=65_535)
    """Unacknowledged QoS 1 publishes allowed at once. paho's own queue
    (``max_queued_messages``) is set to the same number: the outbox is the queue, so paho never
    holds more than one window and never drops a publish silently."""

    @field_validator("urls")
    @classmethod
    def _check_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
                raise ValueError(
                    f"{url!r} is not of the form mqtt://host:port or mqtts://host:port"
                )
            try:
                parts.port  # noqa: B018 - raises on a bad port
            except ValueError as err:
                raise ValueError(f"{url!r} has an invalid port") from err
            if parts.username is not None or parts.password is not None:
                # Never echo the URL: it holds a secret.
                raise ValueError(
                    "must not carry credentials; use mqtt.username with password_file, "
                    "password_credential or password_env"
                )
        return urls

    @property
    def uses_tls(self) -> bool:
        """True when any broker URL is ``mqtts://``."""
        return any(u.startswith("mqtts://") for u in self.urls)


class OutboxConfig(_Section):
    """``[outbox]``: the durable queue between the pipeline and the broker."""

    path: Path = Path("outbox.sqlite")
    """Database file; relative paths are inside ``gateway.state_dir``."""
    synchronous: Literal["NORMAL", "FULL"] = "FULL"
    """SQLite ``synchronous`` level (WAL mode). ``FULL`` survives power loss with at most the
    tick being committed lost; ``NORMAL`` survives a crash of the agent, but a power cut may lose
    the commits since the last checkpoint. See the figures in the README."""
    max_rows: int = Field(1_000_000, ge=1_000)
    """Rows kept at most; beyond, the lowest priority is evicted first."""
    max_mb: float = Field(256.0, ge=1.0)
    """Megabytes of payload kept at most; beyond, the lowest priority is evicted first."""
    ttl_s: float = Field(7 * 86_400.0, ge=60.0)
    """Events older than this (by the wall clock when committed) are dropped."""
    memory_rows: int = Field(20_000, ge=100, le=1_000_000)
    """Events held in memory while the disk cannot be written (disk full)."""
    wal_max_mb: float = Field(16.0, ge=1.0)
    """The write-ahead log is checkpointed and truncated back to this size."""


DropRule = Literal[
    "apple_continuity", "microsoft_cdp", "exposure_notification", "tile", "fast_pair"
]
"""A rule of ``pipeline/chatter.py`` (the test there keeps the two lists equal)."""


def _default_drop() -> list[DropRule]:
    return ["microsoft_cdp", "exposure_notification", "tile", "fast_pair"]


class PipelineConfig(_Section):
    """``[pipeline]``: batching, and what is dropped before any work."""

    tick_s: float = Field(0.1, ge=0.01, le=5)
    """Adverts are processed, and events committed, once per tick of source time."""
    drop: list[DropRule] = Field(default_factory=_default_drop)
    """Chatty advertisers dropped before any work (``pipeline/chatter.py``); Apple Continuity
    (phones) only when named: it is how shoppers without an app are counted."""
    max_devices: int = Field(20_000, ge=10, le=1_000_000)
    """Devices tracked at most: past it, the least recently heard are forgotten (one in a
    zone leaves it with an ``exit``), counted in ``health.devices_evicted``."""


class FilterConfig(_Section):
    """``[proximity.filter]`` (every device) and ``[proximity.filters.<class>]`` (one class):
    how RSSI is smoothed before the distance model."""

    kind: Literal["kalman", "ema", "one_euro", "median"] = "kalman"
    """``kalman`` (level and trend, time-aware, outliers gated), ``ema`` (time constant
    ``tau_s``), ``one_euro`` (adaptive low-pass) or ``median`` (of the last ``window_s``)."""
    q: float = Field(0.3, gt=0, le=100)
    """Kalman: process noise, dB²/s³ (higher follows movement faster)."""
    r: float = Field(36.0, gt=0, le=1000)
    """Kalman: measurement noise, dB² (fast fading of a retail floor is 4–8 dB)."""
    gate: float = Field(2.5, ge=1, le=10)
    """Kalman: samples further than this many standard deviations from the prediction are
    outliers (three in a row restart the filter at the new level)."""
    trend_tau_s: float = Field(3.0, gt=0)
    """Kalman: the trend fades with this time constant, seconds (``inf``: it never does), so
    a device that stops moving is not extrapolated onwards."""
    tau_s: float = Field(2.0, gt=0, le=120)
    """EMA: time constant, seconds."""
    min_cutoff_hz: float = Field(0.1, gt=0, le=10)
    """1-Euro: cutoff at rest, Hz."""
    beta: float = Field(0.05, ge=0, le=10)
    """1-Euro: how much the cutoff rises with the signal's speed."""
    d_cutoff_hz: float = Field(1.0, gt=0, le=10)
    """1-Euro: cutoff of the speed estimate, Hz."""
    window_s: float = Field(15.0, gt=0, le=120)
    """Median: window, seconds (at most 32 samples per receiver)."""


class ProximityConfig(_Section):
    """``[proximity]``: RSSI smoothing and the log-distance model."""

    filter: FilterConfig = FilterConfig()
    """The smoothing filter of every device class without its own."""
    filters: dict[DeviceClass, FilterConfig] = Field(default_factory=dict)
    """Per device class (``cart``, ``staff`` …): a filter of its own."""

    tx_power_1m_dbm: int = Field(-59, ge=-110, le=10)
    """RSSI at 1 m when the frame does not carry it."""
    path_loss_exponent: float = Field(2.0, ge=1.0, le=6.0)
    """``n`` in ``rssi = P1m - 10 n log10(d)``."""
    smoothing_tau_s: float | None = Field(None, gt=0, le=120)
    """Deprecated: ``filter.kind = "ema"`` with ``filter.tau_s``; when set, it means that."""
    immediate_m: float = Field(0.5, gt=0)
    """Band ``immediate`` up to this distance."""
    near_m: float = Field(3.0, gt=0)
    """Band ``near`` up to this distance."""
    far_m: float = Field(8.0, gt=0)
    """Band ``far`` up to this distance; beyond it, ``gone``."""
    hysteresis_m: float = Field(0.5, ge=0)
    """A band is left only this far past its edge."""
    gone_after_s: float = Field(15.0, gt=0)
    """A receiver's estimate is dropped after this long without an advert."""
    shadowing_db: float = Field(4.0, ge=0, le=20)
    """Spread of the model's error at a place (shelves, bodies, antenna pattern), dB: with the
    filter's own variance it makes each distance's uncertainty (4 dB is a typical store)."""
    max_speed_mps: float = Field(5.0, gt=0, le=100)
    """Speed gate: a distance estimate moves at most this fast (m/s); a jump beyond it (a
    filter restart, a reflection) is followed at this speed, not in one step."""

    def filter_for(self, kind: DeviceClass) -> FilterConfig:
        """The filter of a device class."""
        found = self.filters.get(kind)
        if found is not None:
            return found
        if self.smoothing_tau_s is not None and "filter" not in self.model_fields_set:
            return FilterConfig(kind="ema", tau_s=self.smoothing_tau_s)
        return self.filter


class PresenceConfig(_Section):
    """``[presence]``: the zone state machine."""

    min_dwell_s: float = Field(1.0, ge=0)
    """A zone must be the best for this long before ``enter``."""
    switch_margin_db: float = Field(4.0, ge=0, le=30)
    """Receiver hysteresis: another receiver takes over from the one a device's zone was
    decided on only when it is this much closer, in dB of path loss."""
    exit_debounce_s: float = Field(5.0, ge=0)
    """A device must be out of its zone this long before ``exit``."""
    update_interval_s: float = Field(10.0, gt=0)
    """At most one ``update`` per device per this interval."""
    update_min_change_m: float = Field(0.0, ge=0, le=100)
    """An ``update`` only when the device moved at least this far since the last event it
    was in (fused position on a floor plan, else its distance to the nearest receiver) or its
    band changed; 0: every ``update_interval_s``. Skipped ones are counted in
    ``health.updates_suppressed``."""
    update_heartbeat_s: float = Field(300.0, gt=0)
    """With ``update_min_change_m``, an ``update`` at least this often all the same."""
    occupancy_interval_s: float = Field(30.0, gt=0)
    """How often each zone's retained ``occupancy`` is published."""


class SensorsConfig(_Section):
    """``[sensors]``: readings from BTHome, Ruuvi and beacon telemetry."""

    heartbeat_s: float = Field(300.0, gt=0)
    """A reading is published at least this often, changed or not."""
    deadband: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {
            "temperature": 0.2,
            "humidity": 1.0,
            "pressure": 0.5,
            "voltage": 0.05,
            "battery": 5.0,
            "acceleration_x": 100.0,
            "acceleration_y": 100.0,
            "acceleration_z": 100.0,
        }
    )
    """A measurement is published early only when it moved more than this (its own unit)."""
    beacon_health_interval_s: float = Field(600.0, gt=0)
    """How often a beacon's retained ``beacon_health`` is refreshed."""
    bthome_keys_file: ConfigPath | None = None
    """Bind keys of encrypted BTHome devices: a 0600 file, one device per line,
    ``AA:BB:CC:DD:EE:FF 32-hex-digit-key`` (``#`` starts a comment). Never inline here."""
    bthome_keys_credential: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] | None = None
    """The same file as a systemd credential (``LoadCredential=bthome-keys:/etc/…``)."""

    @model_validator(mode="before")
    @classmethod
    def _no_inline_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("bthome_keys", "bind_keys", "bindkeys"):
                if key in data:
                    raise ValueError(
                        f"sensors.{key}: bind keys are never written in the config; put them "
                        "in a 0600 file named by sensors.bthome_keys_file, or a systemd "
                        "credential named by sensors.bthome_keys_credential"
                    )
        return data


Policy = Literal["track", "pseudonymous", "count_only", "ignore"]


class PolicyConfig(_Section):
    """``[privacy.policy]``: what is done with unregistered devices, by address class."""

    public: Policy = "pseudonymous"
    """Public (IEEE-assigned) addresses: fixed for the device's life."""
    random_static: Policy = "pseudonymous"
    """Random static addresses: fixed until the device is reset."""
    resolvable: Policy = "count_only"
    """Resolvable private addresses (phones): rotate every few minutes."""
    non_resolvable: Policy = "count_only"
    """Non-resolvable private addresses."""


class PrivacyConfig(_Section):
    """``[privacy]``: pseudonyms, consent, retention and k-anonymity.

    Policies: ``track`` publishes a device under its own broadcast id where it has one (a
    beacon id), else under its daily pseudonym; ``pseudonymous`` always under the daily
    pseudonym; ``count_only`` only in zone occupancy counts; ``ignore`` drops its adverts.
    Registered devices (``[[devices]]``, ``[[fleets]]``, the consent list) keep their ids."""

    policy: PolicyConfig = PolicyConfig()
    """Policy per address class."""
    rotate_at: Annotated[str, Field(pattern=TIME_PATTERN)] = "00:00"
    """Local time (``HH:MM``) at which the pseudonym key is replaced each day."""
    timezone: str = "UTC"
    """IANA time zone of ``rotate_at`` (e.g. ``Europe/Berlin``)."""
    consent_file: Path | None = None
    """Consent list (JSON, written by ``edge-agent consent``); relative paths are inside
    ``gateway.state_dir``; default ``consent.json`` there."""
    retention_s: float = Field(86_400.0, ge=1.0)
    """Buffered events about a device (presence, readings, beacon health) older than this are
    dropped from the outbox and counted as ``retention``."""
    k_anonymity: int = Field(3, ge=1, le=100)
    """Occupancy counts from 1 to k-1 are published as "fewer than k" (1 turns this off)."""
    store_secret_file: ConfigPath | None = None
    """The store's pseudonym secret (a 0600 file of at least 16 bytes, the same on every
    gateway of the store): each day's key is derived from it and the date, so the store's
    gateways give a device the same pseudonym that day, and no one else can. Unset (and no
    credential): each gateway draws its own random key every day."""
    store_secret_credential: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] | None = None
    """The same secret as a systemd credential (``LoadCredential=store-secret:/etc/…``)."""

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError("is not a known IANA time zone (e.g. 'Europe/Berlin')") from err
        return value


class HealthConfig(_Section):
    """``[health]``: self-reporting."""

    interval_s: float = Field(30.0, ge=1)
    """How often ``health`` is published (wall-clock seconds)."""
    prometheus_textfile: ConfigPath | None = None
    """Also write the health counters here, in Prometheus' text format, every interval
    (node_exporter's textfile collector: a ``.prom`` file in its directory)."""

    @field_validator("prometheus_textfile")
    @classmethod
    def _prom_suffix(cls, value: Path | None) -> Path | None:
        if value is not None and value.suffix != ".prom":
            raise ValueError("must end in .prom (node_exporter's textfile collector reads those)")
        return value


class DeviceConfig(_Section):
    """``[[devices]]``: a registered device that keeps its configured id."""

    id: Segment
    """Id used on the wire."""
    kind: DeviceClass
    """What it is: cart, staff, asset, shopper, sensor or beacon."""
    address: Annotated[str, Field(pattern=MAC_PATTERN)] | None = None
    """Match by Bluetooth address (sensors with a public or static address)."""
    beacon: Annotated[str, Field(pattern=BEACON_PATTERN)] | None = None
    """Match by beacon id."""
    tx_power_1m_dbm: int | None = Field(None, ge=-110, le=10)
    """Override the RSSI at 1 m for this device."""
    zone: Segment | None = None
    """Fixed in this zone (a fridge, a door contact): it gets no presence events, and its
    readings and beacon health say the zone."""
    presence: bool | None = None
    """Publish its presence (zone enter, update, exit)? Default: yes, except for sensors and
    fixed devices."""

    @property
    def tracks_presence(self) -> bool:
        """Whether the zone machine follows it."""
        if self.presence is not None:
            return self.presence
        return self.kind is not DeviceClass.SENSOR and self.zone is None


class FleetConfig(_Section):
    """``[[fleets]]``: many iBeacons of one kind under one UUID (e.g. every cart tag)."""

    kind: DeviceClass
    """What every beacon of the fleet is."""
    ibeacon_uuid: Annotated[str, Field(pattern=UUID_PATTERN)]
    """Their shared proximity UUID."""
    id_format: str = Field("{kind}-{major}-{minor}", min_length=1)
    """Device id template; placeholders ``{kind}``, ``{major}``, ``{minor}``."""

    @field_validator("id_format")
    @classmethod
    def _check_format(cls, value: str) -> str:
        try:
            sample = value.format(kind="cart", major=1, minor=2)
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError("may use only {kind}, {major} and {minor}") from err
        if not re.match(SEGMENT_PATTERN, sample):
            raise ValueError(PATTERN_MESSAGES[SEGMENT_PATTERN].replace("must be", "must give"))
        return value


class AgentConfig(_Section):
    """The whole ``agent.toml``."""

    gateway: GatewayConfig
    source: SourceConfig = SourceConfig()
    mqtt: MqttConfig = MqttConfig()
    outbox: OutboxConfig = OutboxConfig()
    pipeline: PipelineConfig = PipelineConfig()
    proximity: ProximityConfig = ProximityConfig()
    presence: PresenceConfig = PresenceConfig()
    sensors: SensorsConfig = SensorsConfig()
    health: HealthConfig = HealthConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    receivers: list[ReceiverConfig] = Field(default_factory=list)
    calibration: CalibrationConfig = CalibrationConfig()
    zones: list[ZoneConfig] = Field(default_factory=list)
    fusion: FusionConfig = FusionConfig()
    devices: list[DeviceConfig] = Field(default_factory=list)
    fleets: list[FleetConfig] = Field(default_factory=list)
    moments: list[MomentRule] = Field(default_factory=list)
    aggregates: AggregatesConfig = AggregatesConfig()
    commands: CommandsConfig = CommandsConfig()
    homeassistant: HomeAssistantConfig = HomeAssistantConfig()

    @property
    def floor_plan(self) -> bool:
        """Whether receivers have positions: zones then come from fusion on the plan."""
        return any(r.x is not None or r.y is not None for r in self.receivers)

    @property
    def outbox_path(self) -> Path:
        """The outbox file, resolved against ``gateway.state_dir``."""
        return self.gateway.state_dir / self.outbox.path

    @property
    def consent_path(self) -> Path:
        """The consent list, resolved against ``gateway.state_dir``."""
        return self.gateway.state_dir / (self.privacy.consent_file or Path("consent.json"))

    @property
    def control_socket(self) -> Path:
        """The local control socket (``consent``, ``erase``), in ``gateway.state_dir``."""
        return self.gateway.state_dir / "control.sock"

    @property
    def topic_root(self) -> str:
        """``{prefix}/{site}/{gateway}``."""
        return topics.root(self.mqtt.prefix, self.gateway.site, self.gateway.id)

    @property
    def client_id(self) -> str:
        """The MQTT client id."""
        return self.mqtt.client_id or f"edge-agent-{self.gateway.id}"
