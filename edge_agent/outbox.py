"""SQLite outbox: every event is committed, one transaction per tick, before anyone sends it.

The outbox gives each event its gapless ``seq`` and ``id = "<gateway>:<seq>"`` in the same
transaction that stores it, so a crash can neither reuse nor skip a number. Rows are deleted only
when the broker has acknowledged them. Schema and migrations go through sqlite-utils; the hot
append is one prepared ``executemany``.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from edge_agent.contract import EVENT_MODELS, rfc3339
from edge_agent.errors import OutboxError
from edge_agent.models import ContextEvent

_LOGGER = logging.getLogger(__name__)
SCHEMA_VERSION = 1


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


MIGRATIONS = [_migrate_1]


class Outbox:
    """The durable queue between the pipeline and the publisher."""

    def __init__(self, path: Path, gateway: str, topic_root: str, synchronous: str = "NORMAL"):
        self.path = path
        self.gateway = gateway
        self.root = topic_root
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute("PRAGMA busy_timeout=5000")
            self.db = sqlite_utils.Database(conn)
            self._migrate()
            row = conn.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()
            top = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
        except sqlite3.Error as err:
            raise OutboxError(str(path), str(err)) from err
        self.last_seq = max(int(row[0]) if row else 0, top or 0)
        self.conn = conn
        self.closed = False
        self._depth_at_close = 0

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.db.conn:
                step(self.db)
                self.db.execute(f"PRAGMA user_version={number}")
            _LOGGER.info("outbox %s: migrated to schema %s", self.path, number)

    def append(self, events: Sequence[ContextEvent]) -> int:
        """Store events in one transaction; returns the last ``seq`` given."""
        if not events:
            return self.last_seq
        seq = self.last_seq
        rows = []
        created = time.time()
        gw = self.gateway
        for ev in events:
            seq += 1
            model = EVENT_MODELS[ev.type]
            payload = model.model_validate(
                {
                    "v": 1,
                    "id": f"{gw}:{seq}",
                    "seq": seq,
                    "ts": rfc3339(ev.wall),
                    "type": ev.type,
                    **ev.body,
                }
            ).model_dump_json()
            rows.append(
                (
                    seq,
                    f"{self.root}/{ev.topic}",
                    ev.type,
                    payload.encode(),
                    ev.qos,
                    int(ev.retain),
                    ev.priority,
                    created,
                )
            )
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(
                "INSERT INTO events (seq, topic, type, payload, qos, retain, priority, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self.conn.execute(
                "INSERT INTO meta (key, value) VALUES ('last_seq', ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (str(seq),),
            )
            self.conn.execute("COMMIT")
        except sqlite3.Error as err:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise OutboxError(str(self.path), str(err)) from err
        self.last_seq = seq
        return seq

    def pending(self, after: int, limit: int) -> list[OutboxRow]:
        """Up to ``limit`` rows with ``seq > after``, in order."""
        cur = self.conn.execute(
            "SELECT seq, topic, payload, qos, retain FROM events"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        )
        return [OutboxRow(s, t, bytes(p), q, bool(r)) for s, t, p, q, r in cur]

    def ack(self, seqs: Iterable[int]) -> None:
        """Delete acknowledged rows, in one transaction."""
        params = [(s,) for s in seqs]
        if not params:
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany("DELETE FROM events WHERE seq = ?", params)
            self.conn.execute("COMMIT")
        except sqlite3.Error as err:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise OutboxError(str(self.path), str(err)) from err

    def depth(self) -> int:
        """Rows waiting for an acknowledgement (as at closing, once closed)."""
        if self.closed:
            return self._depth_at_close
        return int(self.conn.execute("SELECT count(*) FROM events").fetchone()[0])

    def oldest_age(self, now: float | None = None) -> float | None:
        """Seconds since the oldest waiting row was stored."""
        oldest = self.conn.execute("SELECT min(created) FROM events").fetchone()[0]
        if oldest is None:
            return None
        return max(0.0, (now or time.time()) - float(oldest))

    def close(self) -> None:
        """Checkpoint the WAL and close."""
        self._depth_at_close = self.depth()
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as err:
            _LOGGER.warning("outbox %s: checkpoint on close failed: %s", self.path, err)
        self.conn.close()
        self.closed = True
