"""Every MQTT topic the agent publishes, built here and nowhere else (DESIGN §3).

Event topics are relative to the gateway's root ``{prefix}/{site}/{gateway}``; the outbox and the
publisher put the root in front (``full``). ``TEMPLATES`` lists them for the contract documents.
"""

from __future__ import annotations

STATUS = "status"
"""Retained online/offline, with the last will."""
HEALTH = "health"
"""Periodic counters."""

TEMPLATES = {
    "status": STATUS,
    "health": HEALTH,
    "presence": "presence/{device}",
    "occupancy": "zone/{zone}/occupancy",
    "sensor": "sensor/{device}",
    "beacon_health": "beacon/{device}/health",
    "moment": "moment/{name}",
    "moment_count": "moment/{name}/count",
    "aggregate": "aggregate/{kind}",
    "rssi_summary": "{prefix}/{site}/rssi/{gateway}",
    "command": "cmd/{name}",
    "command_result": "cmd/{name}/result",
}
"""Topic of each kind of message, with its placeholders (for the contract documents)."""


def root(prefix: str, site: str, gateway: str) -> str:
    """``{prefix}/{site}/{gateway}``: the root of one gateway's topics."""
    return f"{prefix}/{site}/{gateway}"


def full(topic_root: str, topic: str) -> str:
    """A topic relative to the root, made absolute."""
    return f"{topic_root}/{topic}"


def presence(device: str) -> str:
    """Zone enter, update and exit of one device."""
    return f"presence/{device}"


def occupancy(zone: str) -> str:
    """A zone's retained occupancy."""
    return f"zone/{zone}/occupancy"


def sensor(device: str) -> str:
    """One sensor's readings."""
    return f"sensor/{device}"


def beacon_health(device: str) -> str:
    """One beacon's retained battery and liveness."""
    return f"beacon/{device}/health"


def moment(name: str) -> str:
    """One moment rule's moments."""
    return f"moment/{name}"


def moment_count(name: str) -> str:
    """One moment rule's anonymous counts per interval."""
    return f"moment/{name}/count"


def aggregate(kind: str) -> str:
    """One kind of anonymous aggregate per interval."""
    return f"aggregate/{kind}"


COMMANDS = "cmd/+"
"""The filter of the gateway's command topics (relative to its root)."""


def command_name(topic_root: str, topic: str) -> str | None:
    """The command a topic names, when it is one of this gateway's command topics."""
    prefix = f"{topic_root}/cmd/"
    if not topic.startswith(prefix):
        return None
    name = topic[len(prefix) :]
    return name if name and "/" not in name else None


def command_result(name: str) -> str:
    """Where a command's results go (without an MQTT 5 response topic)."""
    return f"cmd/{name}/result"


def device_topics(device: str) -> list[str]:
    """Every topic that carries events about one device (erasure clears them all)."""
    return [presence(device), sensor(device), beacon_health(device)]


RSSI_SEGMENT = "rssi"
"""The store-internal segment under which gateways share signal summaries."""


def rssi_summary(prefix: str, site: str, gateway: str) -> str:
    """``{prefix}/{site}/rssi/{gateway}``: one gateway's per-receiver summaries for the store's
    other gateways (absolute: it is under the store's root, not the gateway's)."""
    return f"{prefix}/{site}/{RSSI_SEGMENT}/{gateway}"


def rssi_summaries(prefix: str, site: str) -> str:
    """The filter that receives every gateway's summaries of one store."""
    return f"{prefix}/{site}/{RSSI_SEGMENT}/+"


def summary_sender(topic: str) -> str | None:
    """The gateway a summary topic comes from (``None`` when it is not one)."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[2] != RSSI_SEGMENT or not parts[3]:
        return None
    return parts[3]
