"""``agent.toml``: its sections (pydantic models), loading with errors a field engineer can act
on, and — in ``checks``, imported on its own — the step that looks at the files and variables it
names. Importing this package reads nothing."""

from edge_agent.config.floor import (
    CalibrationConfig,
    FusionConfig,
    RadioMapConfig,
    ReceiverCalibration,
    ReceiverConfig,
    ZoneConfig,
)
from edge_agent.config.loading import load_config, parse_config, read_calibration
from edge_agent.config.sections import (
    AgentConfig,
    DeviceConfig,
    FilterConfig,
    FleetConfig,
    GatewayConfig,
    HealthConfig,
    MqttConfig,
    MqttTlsConfig,
    OutboxConfig,
    PipelineConfig,
    PresenceConfig,
    PrivacyConfig,
    ProximityConfig,
    SensorsConfig,
    SourceConfig,
)

__all__ = [
    "AgentConfig",
    "CalibrationConfig",
    "DeviceConfig",
    "FilterConfig",
    "FleetConfig",
    "FusionConfig",
    "GatewayConfig",
    "HealthConfig",
    "MqttConfig",
    "MqttTlsConfig",
    "OutboxConfig",
    "PipelineConfig",
    "PresenceConfig",
    "PrivacyConfig",
    "ProximityConfig",
    "RadioMapConfig",
    "ReceiverCalibration",
    "ReceiverConfig",
    "SensorsConfig",
    "SourceConfig",
    "ZoneConfig",
    "load_config",
    "parse_config",
    "read_calibration",
]
