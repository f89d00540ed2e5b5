"""SQLite outbox: every event is committed, one transaction per tick, before anyone sends it.

The outbox gives each event its ``seq`` and ``id = "<gateway>:<seq>"`` in the same transaction that
stores it, so a crash can neither reuse nor skip a number. Rows are deleted only when the broker has
acknowledged them. Schema and migrations go through sqlite-utils; the hot append is one prepared
``executemany``.

What it promises when things go wrong:

- **Full** (``max_rows`` / ``max_bytes``): the lowest priority goes first — rate-limited
  ``update``s, then beacon health, then ``enter``/``exit``/occupancy, then readings, sensor alarms
  last — oldest first within a priority. Every eviction is counted as ``reason:type``.
- **Too old** (``ttl_s``, by the wall clock at commit): dropped and counted as ``ttl:type``.
- **Disk full or unwritable**: new events are held in memory (``memory_rows``, same eviction order,
  counted as ``disk_full:type``) and committed in order once a write succeeds again; acks that
  cannot be deleted are remembered so their rows are not sent again. Nothing raises.
- **Corrupt file**: moved aside as ``<name>.corrupt-<UTC time>`` (kept, never deleted), a fresh
  database is started and the incident is kept for ``status`` and ``health``. Ids never repeat:
  a side file ``<name>.seq`` reserves ``seq`` numbers in blocks, and a fresh database continues
  after the reservation (the only case where ``seq`` has a gap).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import sqlite_utils

from edge_agent import topics
from edge_agent.errors import OutboxError
from edge_agent.models import ContextEvent
from edge_agent.runtime.outbox_schema import (
    MIGRATIONS,
    Incident,
    OutboxLimits,
    OutboxRow,
)
from edge_agent.wire import event_payload

_LOGGER = logging.getLogger(__name__)
SEQ_BLOCK = 10_000
"""``seq`` numbers reserved at a time in the side file."""
RETRY_S = 1.0
"""While the disk cannot be written, a commit is retried at most this often."""
CORRUPT = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})
STATE_KEY = "pipeline_state"
"""The meta row holding the pipeline's state (moments under way, counts of the interval)."""
_Row = tuple[int, str, str, bytes, int, int, int, float, int]
PERSONAL_TYPES = ("enter", "update", "exit", "reading", "beacon_health", "moment")
"""Event types about one device, subject to ``retention_s`` (occupancy is an aggregate)."""


def _errorname(err: sqlite3.Error) -> str:
    return str(getattr(err, "sqlite_errorname", ""))


class Outbox:
    """The durable queue between the pipeline and the publisher."""

    def __init__(
        self,
        path: Path,
        gateway: str,
        topic_root: str,
        synchronous: str = "FULL",
        limits: OutboxLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.gateway = gateway
        self.root = topic_root
        self.synchronous = synchronous
        self.limits = limits or OutboxLimits()
        self._clock = clock
        self.evicted: Counter[str] = Counter()
        """Rows dropped, by ``reason:type`` (reasons: ``full``, ``ttl``, ``retention``,
        ``disk_full``, ``erased``)."""
        self.generation = 0
        """Bumped whenever rows are erased, so a reader drops what it read ahead."""
        self.incidents: list[Incident] = []
        """Corrupt databases moved aside since start."""
        self.write_failures = 0
        """Commits that failed (disk full, I/O error); their events were held in memory."""
        self.storage_ok = True
        """False while the last write failed."""
        self.closed = False
        self._held: deque[ContextEvent] = deque()
        self._held_state: str | None = None
        self._unacked: set[int] = set()
        self._seq_file = path.with_name(path.name + ".seq")
        self._reserved = 0
        self._retry_at = 0.0
        self.conn = self._open()

    # ------------------------------------------------------------------- open

    def _open(self) -> sqlite3.Connection:
        """Open (migrating), or quarantine a corrupt file and open a fresh one."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutboxError(str(self.path), f"cannot create its directory: {err}") from err
        try:
            return self._connect()
        except sqlite3.DatabaseError as err:
            if _errorname(err) not in CORRUPT and "malformed" not in str(err):
                raise OutboxError(str(self.path), str(err)) from err
            self._quarantine(str(err))
        try:
            return self._connect()
        except sqlite3.Error as err:
            raise OutboxError(str(self.path), str(err)) from err

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed: {check}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute(f"PRAGMA journal_size_limit={self.limits.wal_max_bytes}")
            # Deleted rows are zeroed inside b-tree pages (no extra I/O); erase() goes further.
            conn.execute("PRAGMA secure_delete=FAST")
            if self.limits.max_page_count is not None:
                conn.execute(f"PRAGMA max_page_count={self.limits.max_page_count}")
            self.db = sqlite_utils.Database(conn)
            self._migrate()
            meta = conn.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()
            rows, size, top = conn.execute(
                "SELECT count(*), total(size), max(seq) FROM events"
            ).fetchone()
        except BaseException:
            conn.close()
            raise
        self._rows, self._bytes = int(rows), int(size)
        self._reserved = self._read_reservation()
        # A fresh database (first start, or after a quarantine) continues after the reservation.
        self.last_seq = max(int(meta[0]) if meta else self._reserved, top or 0)
        return conn

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.db.conn:
                step(self.db)
                self.db.execute(f"PRAGMA user_version={number}")
            _LOGGER.info("outbox %s: migrated to schema %s", self.path, number)

    def _quarantine(self, reason: str) -> None:
        """Move the corrupt database (and its WAL) aside and remember the incident."""
        now = self._clock()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        try:
            self.path.rename(target)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    side.rename(target.with_name(target.name + suffix))
        except OSError as err:
            raise OutboxError(str(self.path), f"corrupt ({reason}); cannot move it: {err}") from err
        self.incidents.append(Incident(now, target.name, reason))
        _LOGGER.error(
            "outbox %s: corrupt (%s); moved to %s, starting a fresh one", self.path, reason, target
        )

    def _read_reservation(self) -> int:
        try:
            return int(self._seq_file.read_text(encoding="ascii").strip() or 0)
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as err:
            _LOGGER.warning("outbox %s: unreadable %s: %s", self.path, self._seq_file.name, err)
            return 0

    def _reserve(self, upto: int) -> None:
        """Make sure every seq up to ``upto`` is reserved in the side file (fsynced)."""
        if upto <= self._reserved:
            return
        mark = upto + SEQ_BLOCK
        tmp = self._seq_file.with_name(self._seq_file.name + ".tmp")
        with open(tmp, "w", encoding="ascii") as fh:
            fh.write(f"{mark}\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self._seq_file)
        self._reserved = mark

    # ----------------------------------------------------------------- writes

    def _rows_for(self, events: Iterable[ContextEvent], first: int) -> list[_Row]:
        rows: list[_Row] = []
        created = self._clock()
        gw = self.gateway
        seq = first - 1
        for ev in events:
            seq += 1
            payload = event_payload(gw, seq, ev)
            topic = topics.full(self.root, ev.topic)
            size = len(payload) + len(topic)
            rows.append(
                (seq, topic, ev.type, payload, ev.qos, int(ev.retain), ev.priority, created, size)
            )
        return rows

    def append(self, events: Sequence[ContextEvent], state: str | None = None) -> int:
        """Commit held and new events in one transaction; returns the last ``seq`` given.
        ``state`` (the pipeline's ``snapshot``: moments under way, this interval's counts) is
        committed in the same transaction, so that it always matches the events published.

        When the disk cannot be written the events are held in memory (bounded) and committed,
        in order, by a later call; nothing raises.
        """
        if state is not None:
            self._held_state = state
        if not events and not self._held and self._held_state is None:
            return self.last_seq
        self._held.extend(events)
        if not self.storage_ok and time.monotonic() < self._retry_at:
            self._trim_held()
            return self.last_seq
        batch = list(self._held)
        rows = self._rows_for(batch, self.last_seq + 1)
        try:
            self._commit(rows, self._held_state)
        except sqlite3.Error as err:
            if _errorname(err) in CORRUPT:
                self._replace_corrupt(str(err))
                return self.append(())
            self._write_failed("commit", err)
            self._trim_held()
            return self.last_seq
        self._held.clear()
        self._held_state = None
        if not rows:
            return self.last_seq
        self.last_seq = rows[-1][0]
        self._rows += len(rows)
        self._bytes += sum(r[8] for r in rows)
        if not self.storage_ok:
            self.storage_ok = True
            _LOGGER.warning(
                "outbox %s: writable again; %s held event(s) committed", self.path, len(rows)
            )
        self._evict_over_limits()
        return self.last_seq

    def _commit(self, rows: list[_Row], state: str | None = None) -> None:
        conn = self.conn
        if rows:
            try:
                self._reserve(rows[-1][0])
            except OSError as err:
                raise sqlite3.OperationalError(f"cannot reserve seq: {err}") from err
        upsert = (
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value"
        )
        try:
            conn.execute("BEGIN IMMEDIATE")
            if rows:
                conn.executemany(
                    "INSERT INTO events"
                    " (seq, topic, type, payload, qos, retain, priority, created, size)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                conn.execute(upsert, ("last_seq", str(rows[-1][0])))
            if state is not None:
                conn.execute(upsert, (STATE_KEY, state))
            conn.execute("COMMIT")
        except sqlite3.Error:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    def _write_failed(self, what: str, err: sqlite3.Error) -> None:
        self.write_failures += 1
        if self.storage_ok:
            _LOGGER.error(
                "outbox %s: %s failed (%s); holding events in memory until it can be written",
                self.path,
                what,
                err,
            )
        self.storage_ok = False
        self._retry_at = time.monotonic() + RETRY_S
        with contextlib.suppress(sqlite3.Error):  # a truncated WAL may be all the room we need
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _trim_held(self) -> None:
        """Keep at most ``memory_rows`` held events, evicting the lowest priority, oldest first."""
        excess = len(self._held) - self.limits.memory_rows
        if excess <= 0:
            return
        ranked = sorted(range(len(self._held)), key=lambda i: (self._held[i].priority, i))
        drop = set(ranked[:excess])
        for i in drop:
            self.evicted[f"disk_full:{self._held[i].type}"] += 1
        self._held = deque(ev for i, ev in enumerate(self._held) if i not in drop)

    def _evict_over_limits(self) -> None:
        rows_over = self._rows - self.limits.max_rows
        bytes_over = self._bytes - self.limits.max_bytes
        if rows_over <= 0 and bytes_over <= 0:
            return
        victims: list[int] = []
        freed = 0
        cur = self.conn.execute("SELECT seq, size FROM events ORDER BY priority, seq")
        for seq, size in cur:
            if len(victims) >= rows_over and freed >= bytes_over:
                break
            victims.append(seq)
            freed += size
        cur.close()
        self._delete(victims, "full")

    def _delete(self, seqs: list[int], reason: str | None) -> bool:
        """Delete rows in one transaction; count them by ``reason:type`` unless acknowledged."""
        if not seqs:
            return True
        conn = self.conn
        relax = self.synchronous != "NORMAL"
        try:
            # A delete lost to a power cut only brings a row back (sent again: at-least-once),
            # so deletes skip the fsync; the next commit of events syncs the WAL anyway.
            if relax:
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            gone = conn.execute(
                "DELETE FROM events WHERE seq IN (SELECT value FROM json_each(?))"
                " RETURNING type, size",
                (json.dumps(seqs),),
            ).fetchall()
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if _errorname(err) in CORRUPT:
                self._replace_corrupt(str(err))
                return True
            self._write_failed("delete", err)
            return False
        finally:
            if relax:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute(f"PRAGMA synchronous={self.synchronous}")
        self._rows -= len(gone)
        self._bytes -= sum(size for _, size in gone)
        if reason is not None:
            for kind, _ in gone:
                self.evicted[f"{reason}:{kind}"] += 1
            _LOGGER.debug("outbox %s: evicted %s row(s) (%s)", self.path, len(gone), reason)
        return True

    def ack(self, seqs: Iterable[int]) -> None:
        """Delete acknowledged rows in one transaction; remembered and retried if that fails."""
        todo = [*self._unacked, *seqs]
        if not todo:
            return
        if self._delete(todo, None):
            self._unacked.clear()
        else:
            self._unacked.update(todo)

    def expire(self) -> int:
        """Drop rows older than ``ttl_s``, and events about a device older than ``retention_s``;
        returns how many."""
        now = self._clock()
        n = self._drop_where("created < ?", [now - self.limits.ttl_s], "ttl")
        if self.limits.retention_s is not None:
            marks = ", ".join("?" for _ in PERSONAL_TYPES)
            n += self._drop_where(
                f"created < ? AND type IN ({marks})",
                [now - self.limits.retention_s, *PERSONAL_TYPES],
                "retention",
            )
        return n

    def _drop_where(self, where: str, args: list[object], reason: str) -> int:
        try:
            seqs = [s for (s,) in self.conn.execute(f"SELECT seq FROM events WHERE {where}", args)]
        except sqlite3.Error as err:
            _LOGGER.warning("outbox %s: %s scan failed: %s", self.path, reason, err)
            return 0
        if seqs:
            self._delete(seqs, reason)
        return len(seqs)

    def erase(self, device_topics: Iterable[str], subjects: Iterable[str] = ()) -> int:
        """Remove every buffered event on these topics (relative to the root), and every
        moment about one of ``subjects``, held ones too.

        The deleted rows' bytes are overwritten (``secure_delete``) and the WAL is truncated, so
        nothing of them is left in the files. Returns how many events went.
        """
        wanted = set(device_topics)
        about = set(subjects)
        before = len(self._held)
        self._held = deque(
            ev
            for ev in self._held
            if ev.topic not in wanted and getattr(ev.body, "subject", None) not in about
        )
        gone = before - len(self._held)
        full = json.dumps([topics.full(self.root, t) for t in wanted])
        conn = self.conn
        try:
            seqs = [
                s
                for (s,) in conn.execute(
                    "SELECT seq FROM events WHERE topic IN (SELECT value FROM json_each(?))"
                    " OR (type = 'moment' AND json_extract(payload, '$.subject')"
                    " IN (SELECT value FROM json_each(?)))",
                    (full, json.dumps(sorted(about))),
                )
            ]
            conn.execute("PRAGMA secure_delete=ON")
            try:
                if seqs and not self._delete(seqs, "erased"):
                    raise OutboxError(str(self.path), "cannot delete the erased events")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.execute("PRAGMA secure_delete=FAST")
        except sqlite3.Error as err:
            raise OutboxError(str(self.path), f"erase failed: {err}") from err
        self._unacked.difference_update(seqs)
        self.generation += 1
        return gone + len(seqs)

    def maintain(self) -> None:
        """Periodic upkeep: retry held events, expire old rows, keep the WAL bounded."""
        if self._held:
            self.append(())
        if self._unacked:
            self.ack(())
        self.expire()
        try:
            wal = self.path.with_name(self.path.name + "-wal")
            if wal.exists() and wal.stat().st_size > self.limits.wal_max_bytes:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except (OSError, sqlite3.Error) as err:
            _LOGGER.warning("outbox %s: checkpoint failed: %s", self.path, err)

    def _replace_corrupt(self, reason: str) -> None:
        """Corruption found while running: quarantine the file and carry on with a fresh one."""
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()
        self._quarantine(reason)
        self._unacked.clear()
        self.conn = self._open()

    # ------------------------------------------------------------------ reads

    def pending(self, after: int, limit: int) -> list[OutboxRow]:
        """Up to ``limit`` rows with ``seq > after``, in order (not those acked already)."""
        try:
            cur = self.conn.execute(
                "SELECT seq, topic, payload, qos, retain FROM events"
                " WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            )
            rows = [OutboxRow(s, t, p, q, bool(r)) for s, t, p, q, r in cur]
        except sqlite3.Error as err:
            if _errorname(err) in CORRUPT:
                self._replace_corrupt(str(err))
                return []
            raise OutboxError(str(self.path), str(err)) from err
        if self._unacked:
            rows = [r for r in rows if r.seq not in self._unacked]
        return rows

    def state(self) -> str | None:
        """The pipeline state last committed with the events (``append``'s ``state``)."""
        if self._held_state is not None:
            return self._held_state
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key=?", (STATE_KEY,)).fetchone()
        except sqlite3.Error:
            return None
        return str(row[0]) if row else None

    def depth(self) -> int:
        """Events waiting: committed and not acknowledged, plus those held in memory."""
        return self._rows - len(self._unacked) + len(self._held)

    @property
    def held(self) -> int:
        """Events held in memory because the disk could not be written."""
        return len(self._held)

    @property
    def size_bytes(self) -> int:
        """Payload and topic bytes stored."""
        return self._bytes

    def oldest_age(self, now: float | None = None) -> float | None:
        """Seconds since the oldest waiting row was committed (0 after a backward clock step)."""
        if self.closed:
            return None
        try:
            row = self.conn.execute("SELECT created FROM events ORDER BY seq LIMIT 1").fetchone()
        except sqlite3.Error:
            return None
        if row is None:
            return None
        return max(0.0, (now if now is not None else self._clock()) - float(row[0]))

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Try once more to commit held events, checkpoint the WAL and close."""
        if self.closed:
            return
        if self._held:
            self._retry_at = 0.0
            self.append(())
            if self._held:
                _LOGGER.error("outbox %s: %s held event(s) lost at exit", self.path, self.held)
                for ev in self._held:
                    self.evicted[f"disk_full:{ev.type}"] += 1
                self._held.clear()
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as err:
            _LOGGER.warning("outbox %s: checkpoint on close failed: %s", self.path, err)
        self.conn.close()
        self.closed = True
