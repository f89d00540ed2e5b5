"""What the outbox stores and how: its records (rows, limits, incidents) and the schema's
migrations (sqlite-utils), numbered by ``PRAGMA user_version``."""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils

from edge_agent.config import OutboxConfig

SCHEMA_VERSION = 2


@dataclass(slots=True, frozen=True)
class OutboxRow:
    """One stored event, ready to publish."""

    seq: int
    """Sequence number (also the primary key)."""
    topic: str
    """Full MQTT topic."""
    payload: bytes
    """JSON payload, envelope included."""
    qos: int
    """MQTT QoS."""
    retain: bool
    """Publish retained."""


@dataclass(slots=True, frozen=True)
class OutboxLimits:
    """How big and how old the outbox may grow (``[outbox]`` in the config)."""

    max_rows: int = 1_000_000
    """Rows kept at most; beyond, the lowest priority is evicted."""
    max_bytes: int = 256 * 1024 * 1024
    """Payload + topic bytes kept at most; beyond, the lowest priority is evicted."""
    ttl_s: float = 7 * 86_400.0
    """Rows older than this (wall clock at commit) are dropped."""
    memory_rows: int = 20_000
    """Events held in memory while the disk cannot be written."""
    wal_max_bytes: int = 16 * 1024 * 1024
    """The WAL is checkpointed and truncated to this size."""
    retention_s: float | None = None
    """Events about a device (``PERSONAL_TYPES``) older than this are dropped (privacy)."""
    max_page_count: int | None = None
    """Hard cap on the database file in pages (``PRAGMA max_page_count``); ``None``: no cap."""

    @classmethod
    def from_config(cls, cfg: OutboxConfig, retention_s: float | None = None) -> OutboxLimits:
        """The limits ``[outbox]`` sets (``retention_s`` from ``[privacy]``)."""
        return cls(
            max_rows=cfg.max_rows,
            max_bytes=int(cfg.max_mb * 1024 * 1024),
            ttl_s=cfg.ttl_s,
            memory_rows=cfg.memory_rows,
            wal_max_bytes=int(cfg.wal_max_mb * 1024 * 1024),
            retention_s=retention_s,
        )


@dataclass(slots=True, frozen=True)
class Incident:
    """A corrupt database moved aside."""

    at: float
    """Wall-clock epoch seconds."""
    moved_to: str
    """File name the corrupt database was moved to, beside the outbox."""
    reason: str
    """What SQLite said."""


def _migrate_1(db: sqlite_utils.Database) -> None:
    db.table("events").create(
        {
            "seq": int,
            "topic": str,
            "type": str,
            "payload": bytes,
            "qos": int,
            "retain": int,
            "priority": int,
            "created": float,
        },
        pk="seq",
        not_null={"topic", "type", "payload", "qos", "retain", "priority", "created"},
    )
    db.table("meta").create({"key": str, "value": str}, pk="key")


def _migrate_2(db: sqlite_utils.Database) -> None:
    events = db.table("events")
    events.add_column("size", int, not_null_default=0)
    db.execute("UPDATE events SET size = length(payload) + length(topic)")
    events.create_index(["priority", "seq"], index_name="events_eviction")


MIGRATIONS = [_migrate_1, _migrate_2]
