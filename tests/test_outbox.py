"""The outbox: gapless seq across restarts, ack deletes, payloads valid, schema migrated."""

from __future__ import annotations

import json
from pathlib import Path

from edge_agent.contract import PresencePayload
from edge_agent.models import ContextEvent
from edge_agent.outbox import SCHEMA_VERSION, Outbox


def _event(n: int) -> ContextEvent:
    return ContextEvent(
        topic=f"presence/cart-{n}",
        type="enter",
        wall=1.7e9 + n,
        body={
            "device": f"cart-{n}",
            "device_class": "cart",
            "zone": "a",
            "band": "near",
            "receiver": "rx-a",
            "distance_m": 2.0,
            "rssi": -65.0,
            "dwell_s": 0.0,
            "confidence": 0.5,
        },
    )


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
