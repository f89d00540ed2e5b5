"""The outbox: gapless seq, limits and eviction by priority, TTL, disk full, corruption, WAL."""

from __future__ import annotations

import json
from pathlib import Path

import sqlite_utils

from edge_agent.contract import PresencePayload
from edge_agent.models import ContextEvent, MomentBody, Priority
from edge_agent.runtime.outbox import Outbox
from edge_agent.runtime.outbox_schema import SCHEMA_VERSION, OutboxLimits, _migrate_1
from tests.support.events import presence_event


def _event(n: int) -> ContextEvent:
    return presence_event(f"cart-{n}", 1.7e9 + n)


def test_seq_is_gapless_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path, "gw-1", "retail/s/gw-1")
    assert box.append([_event(1), _event(2)]) == 2
    box.ack([1, 2])
    box.close()
    box = Outbox(path, "gw-1", "retail/s/gw-1")  # every row acked: seq still continues
    assert box.append([_event(3)]) == 3
    rows = box.pending(0, 10)
    assert [r.seq for r in rows] == [3]
    payload = PresencePayload.model_validate_json(rows[0].payload)
    assert (payload.id, payload.seq, payload.ts) == ("gw-1:3", 3, "2023-11-14T22:13:23.000Z")
    assert rows[0].topic == "retail/s/gw-1/presence/cart-3"
    assert box.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert box.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_pending_after_and_ack(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", "gw-1", "r")
    box.append([_event(i) for i in range(10)])
    assert [r.seq for r in box.pending(4, 3)] == [5, 6, 7]
    box.ack([5, 6, 7])
    assert box.depth() == 7
    assert [r.seq for r in box.pending(0, 100)] == [1, 2, 3, 4, 8, 9, 10]
    assert box.oldest_age() is not None
    assert json.loads(box.pending(0, 1)[0].payload)["v"] == 1


def _typed(n: int, kind: str, priority: int) -> ContextEvent:
    base = _event(n)
    return ContextEvent(
        topic=base.topic, type=kind, wall=base.wall, body=base.body, priority=priority
    )


def _types(box: Outbox) -> list[str]:
    return [json.loads(r.payload)["type"] for r in box.pending(0, 10_000)]


def test_full_outbox_evicts_updates_first_then_oldest(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", "gw", "r", limits=OutboxLimits(max_rows=10))
    box.append([_typed(i, "enter", 2) for i in range(6)])
    box.append([_typed(i, "update", 0) for i in range(6)])  # 12 rows: two updates must go
    assert box.depth() == 10
    assert box.evicted == {"full:update": 2}
    assert _types(box) == ["enter"] * 6 + ["update"] * 4
    assert [r.seq for r in box.pending(0, 100)][6:] == [9, 10, 11, 12]  # the oldest went
    box.append([_typed(i, "enter", 2) for i in range(8)])  # now every update goes, then enters
    assert box.evicted == {"full:update": 6, "full:enter": 4}
    assert _types(box) == ["enter"] * 10
    assert box.depth() == 10


def test_byte_limit_evicts_lowest_priority(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", "gw", "r", limits=OutboxLimits(max_bytes=1800))
    box.append([_typed(i, "update", 0) for i in range(5)])
    box.append([_typed(i, "exit", 2) for i in range(5)])
    assert box.size_bytes <= 1800
    assert set(box.evicted) == {"full:update"}
    assert "exit" in _types(box)
    assert box.size_bytes == box.conn.execute("SELECT total(size) FROM events").fetchone()[0]


def test_ttl_drops_old_rows_by_commit_time(tmp_path: Path) -> None:
    now = [1000.0]
    box = Outbox(
        tmp_path / "o.sqlite", "gw", "r", limits=OutboxLimits(ttl_s=60), clock=lambda: now[0]
    )
    box.append([_event(1), _event(2)])
    now[0] += 30
    box.append([_event(3)])
    now[0] += 40  # the first two are 70 s old, the third 40 s
    assert box.expire() == 2
    assert [r.seq for r in box.pending(0, 10)] == [3]
    assert box.evicted == {"ttl:enter": 2}
    assert box.oldest_age() == 40.0
    now[0] -= 3600  # the clock steps back: ages are never negative, nothing expires
    assert box.oldest_age() == 0.0
    assert box.expire() == 0


def test_disk_full_holds_events_in_memory_and_commits_them_in_order_later(
    tmp_path: Path,
) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path, "gw", "r", limits=OutboxLimits(memory_rows=100, max_page_count=20))
    n = 0
    while box.storage_ok:  # fill the capped file: the commit that does not fit is held
        box.append([_typed(n, "enter", 2) for n in range(n, n + 20)])
        n += 20
        assert n < 10_000
    committed = box.last_seq
    assert box.held == 20 and box.write_failures == 1
    box.append([_typed(i, "update", 0) for i in range(50)])  # within the retry pause: held
    box.append([_typed(i, "exit", 2) for i in range(50)])  # now 120 held: 20 updates evicted
    assert box.held == 100
    assert box.evicted == {"disk_full:update": 20}
    assert box.depth() == committed + 100
    box.ack(range(1, 4))  # deleting may fail too: remembered, and not sent again
    assert all(r.seq > 3 for r in box.pending(0, 10))
    box.conn.execute("PRAGMA max_page_count=100000")  # space returns
    box._retry_at = 0.0  # skip the one-second retry pause
    box.maintain()
    assert box.storage_ok and box.held == 0
    rows = box.pending(0, 100_000)
    assert rows[0].seq == 4
    types = [json.loads(r.payload)["type"] for r in rows]
    assert types[-100:] == ["enter"] * 20 + ["update"] * 30 + ["exit"] * 50
    assert [r.seq for r in rows] == list(range(4, box.last_seq + 1))  # gapless, in order


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[4096 : 4096 * 3] = b"\xa5" * (4096 * 2)  # trash pages 2 and 3 (schema and tables)
    path.write_bytes(bytes(data))


def test_corrupt_database_is_quarantined_and_seq_never_repeats(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path, "gw", "r")
    box.append([_event(i) for i in range(200)])
    box.close()
    _corrupt(path)
    box = Outbox(path, "gw", "r")
    assert len(box.incidents) == 1
    moved = tmp_path / box.incidents[0].moved_to
    assert moved.exists() and moved.name.startswith("o.sqlite.corrupt-")
    assert box.depth() == 0
    # The new file continues after the seq reservation: no id is ever handed out twice.
    assert box.append([_event(1)]) > 200
    assert box.pending(0, 1)[0].seq == box.last_seq


def test_garbage_file_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    path.write_bytes(b"this is not a database" * 300)
    box = Outbox(path, "gw", "r")
    assert box.incidents and "not a database" in box.incidents[0].reason
    assert box.append([_event(1)]) == 1


def test_wal_stays_bounded(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path, "gw", "r", limits=OutboxLimits(wal_max_bytes=1024 * 1024))
    for i in range(300):
        box.append([_event(j) for j in range(20)])
        box.ack(range(i * 20 + 1, i * 20 + 21))
    box.maintain()
    assert (tmp_path / "o.sqlite-wal").stat().st_size <= 1024 * 1024
    assert box.depth() == 0


def test_version_1_database_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    db = sqlite_utils.Database(path)
    _migrate_1(db)
    db.execute("PRAGMA user_version=1")
    db["events"].insert(
        {
            "seq": 7,
            "topic": "r/x",
            "type": "enter",
            "payload": b"{}",
            "qos": 1,
            "retain": 0,
            "priority": 2,
            "created": 1.0,
        }
    )
    db["meta"].insert({"key": "last_seq", "value": "7"})
    db.close()
    box = Outbox(path, "gw", "r")
    assert box.depth() == 1 and box.size_bytes == 5 and box.last_seq == 7
    assert box.append([_event(1)]) == 8


def test_corruption_met_while_running_is_quarantined_too(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path, "gw", "r")
    box.append([_event(i) for i in range(300)])
    box.close()
    box = Outbox(path, "gw", "r")
    box.conn.execute("PRAGMA cache_size=1")  # so that the next read goes to the file
    box.conn.execute("PRAGMA mmap_size=0")
    data = bytearray(path.read_bytes())
    data[4096 * 3 : 4096 * 8] = b"\xa5" * (4096 * 5)  # table pages, under the open connection
    path.write_bytes(bytes(data))
    assert box.pending(0, 1000) == []  # corruption met: moved aside, fresh start
    assert len(box.incidents) == 1 and (tmp_path / box.incidents[0].moved_to).exists()
    assert box.append([_event(1)]) > 300


def _moment(subject: str | None, wall: float) -> ContextEvent:
    body = MomentBody(
        "queue",
        "crowd",
        "start",
        subject,
        "shopper" if subject else None,
        "b",
        wall - 30,
        30.0,
        {"count": 4},
    )
    return ContextEvent("moment/queue", "moment", wall, body, priority=Priority.ALARM)


def test_the_pipeline_state_is_committed_with_the_events_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path, "gw", "r")
    assert box.state() is None
    box.append([_moment(None, 1.7e9)], '{"moments":{"held":[1]}}')
    box.append((), '{"moments":{"held":[]}}')  # a state alone is committed too
    assert box.last_seq == 1
    box.close()
    box = Outbox(path, "gw", "r")
    assert box.state() == '{"moments":{"held":[]}}'
    payload = json.loads(box.pending(0, 10)[0].payload)
    assert payload["started"] == "2023-11-14T22:12:50.000Z" and payload["state"] == "start"


def test_erasure_removes_the_moments_about_a_subject(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", "gw", "r")
    box.append([_moment("loyal-alice", 1.7e9), _moment(None, 1.7e9 + 1), _event(1)])
    assert box.erase([], ["loyal-alice"]) == 1
    kinds = [(r.seq, json.loads(r.payload).get("subject")) for r in box.pending(0, 10)]
    assert kinds == [(2, None), (3, None)]
