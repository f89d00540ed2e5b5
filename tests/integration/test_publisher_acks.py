"""The publisher against a real mosquitto: acknowledged rows are deleted in batches (one
transaction per ``ACK_EVERY_S`` on a live trickle, not one per PUBACK), never more than the
in-flight window sent and not yet deleted, and nothing acknowledged is left behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge_agent.config import load_config
from edge_agent.runtime.outbox import Outbox
from edge_agent.runtime.publisher import Publisher
from edge_agent.tools.mosquitto import LocalMosquitto
from tests.support.configs import MINIMAL
from tests.support.events import presence_event
from tests.support.mqtt_watch import Watcher


def test_acks_are_deleted_in_batches_within_the_window(
    tmp_path: Path, mosquitto: LocalMosquitto
) -> None:
    conf = tmp_path / "agent.toml"
    conf.write_text(
        MINIMAL.replace("{state}", str(tmp_path / "state"))
        + f'\n[mqtt]\nurls = ["{mosquitto.url}"]\ninflight = 20\n'
    )
    cfg = load_config(conf)
    watcher = Watcher(mosquitto.host, mosquitto.port, cfg.topic_root + "/presence/#")
    box = Outbox(tmp_path / "outbox.sqlite", cfg.gateway.id, cfg.topic_root)
    deletes: list[int] = []
    most_held = 0  # sent and not yet deleted: in flight, or acknowledged and waiting
    real_delete = box._delete

    def counting_delete(seqs: list[int], reason: str | None) -> bool:
        if reason is None:
            deletes.append(len(seqs))
        return real_delete(seqs, reason)

    box._delete = counting_delete  # type: ignore[method-assign]

    async def go() -> None:
        pub = Publisher(cfg, box, lambda _s: b"{}", ephemeral=True)

        async def watch() -> None:
            nonlocal most_held
            while True:
                most_held = max(most_held, len(pub._inflight) + len(pub._acked))
                await asyncio.sleep(0)

        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(pub.run())
            watching = tg.create_task(watch())
            assert await pub.wait_connected(10)
            for n in range(100):  # a live trickle: 100 events over about 1 s
                box.append([presence_event(f"cart-{n}", 1.7e9 + n, kind="update", zone="a")])
                pub.wake()
                await asyncio.sleep(0.01)
            for _ in range(200):  # a backlog: the window fills and acks free it at once
                box.append([presence_event("cart-x", 1.7e9, kind="update", zone="a")])
            pub.wake()
            assert await pub.drain(30)
            await pub.close()
            task.cancel()
            watching.cancel()

    asyncio.run(go())
    messages = watcher.settle()
    watcher.close()
    assert len(messages) == 300 and box.depth() == 0
    # the trickle (about 1 s): a delete per ACK_EVERY_S, not one per PUBACK (100); the backlog:
    # one each time the window of 20 fills (about 15)
    assert sum(deletes) == 300
    assert len(deletes) <= 40, deletes  # 1 s / ACK_EVERY_S + about 15, not 100 + 15
    assert 0 < most_held <= 20  # never more than the window sent and not deleted
    box.close()
