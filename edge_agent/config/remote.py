"""``[commands]`` and ``[homeassistant]``: what the fleet and integrators reach over MQTT.

The command channel changes the running agent (its configuration, consents, erasure), so it is
off unless asked for; the broker's ACL confines who may publish to a gateway's ``cmd/#``
(``config/mosquitto.acl``). Home Assistant discovery is off unless asked for, and never
announces a shopper.
"""

from __future__ import annotations

from pydantic import Field

from edge_agent.config.base import _Section


class CommandsConfig(_Section):
    """``[commands]``: remote commands on ``cmd/{name}``, results on ``cmd/{name}/result``."""

    enabled: bool = False
    """Subscribe to the gateway's own ``cmd/+`` and carry out what arrives there."""
    rollback_after_s: float = Field(60.0, ge=1, le=3600)
    """After ``set-config``, the agent must be healthy (pipeline turning, broker connected,
    adverts flowing when they flowed before) for this long, else the previous configuration
    comes back by itself, also after a crash in between."""
    replay_window: int = Field(1024, ge=16, le=100_000)
    """Request ids remembered: one seen again among the latest this many gets an error."""
    queue_size: int = Field(256, ge=8, le=10_000)
    """Commands waiting to be carried out; more are dropped and counted."""
    max_payload_bytes: int = Field(256 * 1024, ge=1024, le=4 * 1024 * 1024)
    """A larger command is refused unread."""


class HomeAssistantConfig(_Section):
    """``[homeassistant]``: MQTT discovery (device-based), for sensors, beacon batteries and
    zone occupancy — never for shoppers."""

    discovery: bool = False
    """Publish retained discovery configs, and again whenever Home Assistant comes online."""
    prefix: str = Field("homeassistant", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
    """Home Assistant's discovery prefix."""
    birth_topic: str = Field("homeassistant/status", min_length=1)
    """Home Assistant's birth and last-will topic (``online``: publish the configs again)."""
