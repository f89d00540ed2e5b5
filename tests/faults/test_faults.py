"""Faults, each against the real agent process and a real mosquitto: nothing committed is lost.

Every test prints a ``FIGURE`` line (delivered / lost / duplicated / time to recover); run with
``-s`` to see them. The long variants are marked ``soak`` (``make soak``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import subprocess
import sys
import time
from glob import glob
from pathlib import Path

import pytest

from edge_agent.tools.mosquitto import LocalMosquitto
from tests.support.agent import (
    ROOT_TOPIC,
    StderrTail,
    assert_order_per_device,
    check_messages,
    committed,
    delivered_upto,
    duplicates,
    event_seqs,
    figure,
    healths,
    killed_at_exit,
    rss_mb,
    run_agent,
    start_agent,
    stop,
    wait_for_health,
    wait_for_occupancy,
    wait_until,
)
from tests.support.cli import spawn_cli
from tests.support.configs import sim_config
from tests.support.mqtt_watch import Watcher
from tests.support.netfault import Proxy

INFLIGHT = 100  # mqtt.inflight of the shipped config


# --------------------------------------------------------------------------- SIGKILL


@pytest.mark.parametrize("kills", [20, pytest.param(200, marks=pytest.mark.soak)])
def test_sigkill_at_random_points_loses_nothing(
    tmp_path: Path, mosquitto: LocalMosquitto, kills: int
) -> None:
    cfg = sim_config(tmp_path, mosquitto, speed=20.0, duration=None)
    watcher = Watcher(mosquitto.host, mosquitto.port, f"{ROOT_TOPIC}/#")
    rng = random.Random(kills)
    starts: list[int] = []  # where each start begins in the watcher's messages
    try:
        for _ in range(kills):
            starts.append(len(watcher.messages))
            proc = start_agent(cfg)
            time.sleep(rng.uniform(0.3, 4.0))  # start-up, first commits, mid-stream…
            proc.kill()
            proc.communicate(timeout=30)
        cfg.write_text(cfg.read_text().replace("speed = 20.0", "speed = 0\nduration_s = 0.5"))
        t0 = time.monotonic()
        starts.append(len(watcher.messages))
        run_agent(cfg)  # the next start delivers what the last kill left
        recover = time.monotonic() - t0
        messages = watcher.settle()
    finally:
        watcher.close()
    last_seq, depth = committed(tmp_path)
    seqs = event_seqs(messages)
    dup = duplicates(seqs)
    lost = len(set(range(1, last_seq + 1)) - set(seqs))
    # Duplicates after each kill: what the next start sent again.
    bounds = [*starts, len(messages)]
    seen: set[int] = set()
    per_start = []
    for begin, end in itertools.pairwise(bounds):
        again = 0
        for seq in event_seqs(messages[begin:end]).elements():
            again += seq in seen
            seen.add(seq)
        per_start.append(again)
    per_kill = per_start[1:]
    figure(
        "sigkill",
        kills=kills,
        committed=last_seq,
        delivered=len(seqs),
        lost=lost,
        duplicated=dup,
        dup_per_kill_mean=round(dup / kills, 1),
        dup_per_kill_max=max(per_kill),
        allowed_per_kill=INFLIGHT,
        last_start_to_drained_s=round(recover, 2),
    )
    assert depth == 0 and last_seq > kills
    check_messages(messages, last_seq)
    assert_order_per_device(messages)
    assert max(per_kill) <= INFLIGHT
    assert sum(per_start) == dup


# ------------------------------------------------------------------ broker stopped


@pytest.mark.parametrize("outage_s", [20.0, pytest.param(180.0, marks=pytest.mark.soak)])
def test_broker_stopped_while_events_keep_coming(tmp_path: Path, outage_s: float) -> None:
    """MQTT 3.1.1 here (the other tests use 5). About 50 events/s (the store at 10× speed)."""
    broker = LocalMosquitto(persistence=True)  # the watcher's session survives the restart
    broker.start()
    cfg = sim_config(
        tmp_path, broker, speed=10.0, duration=None, edits={'protocol = "5"': 'protocol = "3.1.1"'}
    )
    watcher = Watcher(broker.host, broker.port, f"{ROOT_TOPIC}/#", persistent=True)
    try:
        with killed_at_exit(start_agent(cfg)) as proc:
            wait_for_occupancy(watcher, 6)
            broker.halt()
            time.sleep(3.0)
            rss0, seq0, t0 = rss_mb(proc.pid), committed(tmp_path)[0], time.monotonic()
            samples = []
            while time.monotonic() - t0 < outage_s - 3.0:
                time.sleep(1.0)
                samples.append(rss_mb(proc.pid))
            seq1, backlog = committed(tmp_path)
            rate = (seq1 - seq0) / (time.monotonic() - t0)
            broker.start()
            t_back = time.monotonic()
            t_done = wait_until(lambda: delivered_upto(watcher, seq1), 120, "backlog drained")
            stop(proc)
        messages = watcher.settle()
    finally:
        watcher.close()
        broker.stop()
    last_seq, depth = committed(tmp_path)
    seqs = event_seqs(messages)
    figure(
        "broker_stopped",
        outage_s=outage_s,
        events_per_s=round(rate, 1),
        backlog=backlog,
        committed=last_seq,
        lost=len(set(range(1, last_seq + 1)) - set(seqs)),
        duplicated=duplicates(seqs),
        restart_to_backlog_delivered_s=round(t_done - t_back, 2),
        rss_mb_first=round(rss0, 1),
        rss_mb_max=round(max(samples), 1),
    )
    assert rate >= 30, rate
    assert depth == 0
    check_messages(messages, last_seq)
    assert_order_per_device(messages)
    assert max(samples) - rss0 < 10.0, (rss0, samples)  # memory flat: the backlog is on disk


def test_failover_to_the_next_broker(tmp_path: Path) -> None:
    with LocalMosquitto() as first, LocalMosquitto() as second:
        urls = f'["{first.url}", "{second.url}"]'
        cfg = sim_config(tmp_path, urls, speed=10.0, duration=None)
        watchers = [Watcher(b.host, b.port, f"{ROOT_TOPIC}/#") for b in (first, second)]
        try:
            with killed_at_exit(start_agent(cfg)) as proc:
                wait_for_occupancy(watchers[0], 4)
                first.halt()
                t0 = time.monotonic()
                wait_for_occupancy(watchers[1], 2)
                failover = time.monotonic() - t0
                stop(proc)
            messages = [m for w in watchers for m in w.settle()]
        finally:
            for w in watchers:
                w.close()
    last_seq, depth = committed(tmp_path)
    figure("failover", committed=last_seq, to_second_broker_s=round(failover, 2))
    assert depth == 0
    check_messages(messages, last_seq)


# ----------------------------------------------------------------- partitions


@pytest.mark.parametrize("mode", ["silent", "drop_replies"])
def test_partition_is_noticed_within_1_5_keepalive_and_nothing_is_lost(
    tmp_path: Path, mosquitto: LocalMosquitto, mode: str
) -> None:
    """``silent``: a partition nobody announces; ``drop_replies``: PUBACKs (and all other broker
    bytes) are lost while the agent's publishes still reach the broker."""
    keepalive = 5
    with Proxy(mosquitto.host, mosquitto.port) as proxy:
        cfg = sim_config(
            tmp_path,
            proxy.url,
            speed=10.0,
            duration=None,
            edits={
                "keepalive_s = 15": f"keepalive_s = {keepalive}",
                "connect_timeout_s = 10.0": "connect_timeout_s = 2.0",
            },
        )
        watcher = Watcher(mosquitto.host, mosquitto.port, f"{ROOT_TOPIC}/#")
        try:
            with killed_at_exit(start_agent(cfg)) as proc:
                wait_for_occupancy(watcher, 6)
                closed = len(proxy.client_closed)
                t0 = proxy.set_mode(mode)  # type: ignore[arg-type]
                noticed_at = wait_until(
                    lambda: len(proxy.client_closed) > closed, 4 * keepalive, "agent noticed"
                )
                time.sleep(3.0)  # reconnect attempts into the partition time out
                t_heal = proxy.set_mode("forward")
                seq_heal = committed(tmp_path)[0]
                t_done = wait_until(lambda: delivered_upto(watcher, seq_heal), 60, "caught up")
                wait_for_health(watcher, lambda h: h["publisher"]["silent_drops"] > 0, 10)
                stop(proc)
            messages = watcher.settle()
        finally:
            watcher.close()
    last_seq, depth = committed(tmp_path)
    seqs = event_seqs(messages)
    noticed = noticed_at - t0
    last_health = max(healths(messages), key=lambda h: h["uptime_s"])["publisher"]
    figure(
        f"partition_{mode}",
        keepalive_s=keepalive,
        noticed_s=round(noticed, 2),
        limit_s=1.5 * keepalive,
        committed=last_seq,
        lost=len(set(range(1, last_seq + 1)) - set(seqs)),
        duplicated=duplicates(seqs),
        heal_to_caught_up_s=round(t_done - t_heal, 2),
        silent_drops=last_health["silent_drops"],
        resent=last_health["resent"],
    )
    assert noticed <= 1.5 * keepalive
    assert depth == 0
    check_messages(messages, last_seq)
    assert_order_per_device(messages)
    assert duplicates(seqs) <= last_health["resent"]


# -------------------------------------------------------------------- disk full


def test_disk_full_holds_events_counts_drops_and_recovers(tmp_path: Path) -> None:
    """The state directory is a 6 MiB tmpfs in a private mount namespace (``unshare -rm``).
    With the broker down the backlog grows; the test fills the tmpfs to the last byte through
    ``/proc/<pid>/root``, lets the memory hold overflow, then frees the space and restarts the
    broker."""
    state = tmp_path / "state"
    state.mkdir()
    broker = LocalMosquitto(persistence=True)
    broker.start()
    cfg = sim_config(
        tmp_path,
        broker,
        speed=10.0,
        duration=None,
        edits={"memory_rows = 20000": "memory_rows = 200"},
    )
    watcher = Watcher(broker.host, broker.port, f"{ROOT_TOPIC}/#", persistent=True)
    script = (
        f'mount -t tmpfs -o size=6m tmpfs "{state}" && '
        f'exec "{sys.executable}" -m edge_agent run --config "{cfg}"'
    )
    proc = subprocess.Popen(
        ["unshare", "-rm", "sh", "-c", script],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    tail = StderrTail(proc)
    try:
        with killed_at_exit(proc):
            try:
                wait_for_occupancy(watcher, 4)
            except TimeoutError as err:
                raise AssertionError(tail.text()[-3000:]) from err
            broker.halt()
            inside = Path(f"/proc/{proc.pid}/root") / str(state).lstrip("/")
            filler = inside / "filler"
            with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as fh:
                while fh.write(b"\0" * 65536):  # until ENOSPC: not one byte left
                    pass
            t_fill = time.monotonic()
            t_full = wait_until(
                lambda: "holding events in memory" in tail.text(), 90, "a commit failed"
            )
            time.sleep(8.0)  # 400 events at 50/s: more than memory_rows, so drops
            assert proc.poll() is None, "the agent died on a full disk"
            filler.unlink()
            t_free = time.monotonic()
            wait_until(lambda: "writable again" in tail.text(), 30, "the outbox recovered")
            t_ok = time.monotonic()
            broker.start()
            wait_for_health(watcher, lambda h: h["outbox"]["write_failures"] > 0, 60)
            # The envelope of health carries the last committed seq.
            seq_now = max(int(h["seq"]) for h in healths(watcher.settle(0.2, 1.0)))
            wait_until(lambda: delivered_upto(watcher, seq_now), 60, "backlog delivered")
            stop(proc)
        messages = watcher.settle()
    finally:
        watcher.close()
        broker.stop()
    last = healths(messages)[-1]["outbox"]
    evicted = last["evicted"]
    seqs = event_seqs(messages)
    figure(
        "disk_full",
        fill_to_first_failure_s=round(t_full - t_fill, 1),
        full_for_s=round(t_free - t_full, 1),
        free_to_recovered_s=round(t_ok - t_free, 2),
        write_failures=last["write_failures"],
        evicted=evicted,
        delivered=len(seqs),
        lost_committed=len(set(range(1, max(seqs) + 1)) - set(seqs)),
        duplicated=duplicates(seqs),
    )
    assert "Traceback" not in tail.text()
    assert last["storage_ok"] and last["held"] == 0
    assert evicted and all(k.startswith("disk_full:") for k in evicted), evicted
    assert "disk_full:update" in evicted  # the lowest priority went first
    # Every event that was committed (before, and after recovery) was delivered, gapless.
    assert set(range(1, max(seqs) + 1)) <= set(seqs)


# -------------------------------------------------------------------- corruption


def test_corrupt_database_is_quarantined_and_reported(tmp_path: Path) -> None:
    with LocalMosquitto() as broker:
        cfg = sim_config(tmp_path, broker, speed=0, duration=20.0)
        run_agent(cfg)
        first_last, _ = committed(tmp_path)
        cfg.write_text(cfg.read_text().replace("speed = 0", "speed = 10"))  # long enough for health
        db = tmp_path / "state" / "outbox.sqlite"
        data = bytearray(db.read_bytes())
        data[0:4096] = b"\xa5" * 4096  # the header page: "file is not a database"
        db.write_bytes(bytes(data))
        watcher = Watcher(broker.host, broker.port, f"{ROOT_TOPIC}/#")
        try:
            proc = run_agent(cfg)
            messages = watcher.settle()
        finally:
            watcher.close()
    moved = sorted(p.name for p in (tmp_path / "state").glob("outbox.sqlite.corrupt-*"))
    status = [  # this run's, not the retained one the watcher got on subscribing
        json.loads(m.payload) for m in messages if m.topic.endswith("/status") and not m.retain
    ]
    assert status[0]["state"] == "online"
    incidents = status[0]["outbox_incidents"]
    assert len(moved) == 1 and incidents[0]["moved_to"] == moved[0]
    assert healths(messages)[0]["outbox"]["incidents"] == incidents
    assert "corrupt" in proc.stderr
    seqs = event_seqs([m for m in messages if not m.retain])  # this run's
    last_seq, depth = committed(tmp_path)
    assert depth == 0
    assert min(seqs) > first_last  # ids never repeat across the quarantine
    assert set(range(min(seqs), last_seq + 1)) <= set(seqs)
    figure("corrupt", moved_to=moved[0], seq_before=first_last, seq_after_start=min(seqs))


# -------------------------------------------------------------------- clock steps


def _libfaketime() -> str:
    found = glob("/usr/lib/*/faketime/libfaketime.so.1") + glob(
        "/usr/lib/faketime/libfaketime.so.1"
    )
    if not found:
        pytest.fail("libfaketime is missing; `make setup` installs it (apt-get install faketime)")
    return found[0]


def test_wall_clock_steps_lose_and_merge_nothing(tmp_path: Path, mosquitto: LocalMosquitto) -> None:
    """libfaketime moves the agent's wall clock +1 h, then −1 h below the truth, mid-run
    (monotonic time is left alone, as with an NTP step)."""
    clock = tmp_path / "faketime"
    clock.write_text("+0\n")
    cfg = sim_config(tmp_path, mosquitto, speed=5.0, duration=None)
    env = {
        **os.environ,
        "LD_PRELOAD": _libfaketime(),
        "FAKETIME_TIMESTAMP_FILE": str(clock),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    watcher = Watcher(mosquitto.host, mosquitto.port, f"{ROOT_TOPIC}/#")
    try:
        proc = spawn_cli("run", "--config", str(cfg), env=env)
        with killed_at_exit(proc):
            wait_for_occupancy(watcher, 6)
            for step in ("+1h", "-1h", "+0"):
                clock.write_text(step + "\n")
                time.sleep(4.0)
            stop(proc)
        messages = watcher.settle()
    finally:
        watcher.close()
    last_seq, depth = committed(tmp_path)
    assert depth == 0
    check_messages(messages, last_seq)
    payloads = [json.loads(m.payload) for m in messages]
    by_id: dict[str, set[bytes]] = {}
    for m, p in zip(messages, payloads, strict=True):
        by_id.setdefault(p["id"], set()).add(m.payload)
    # A redelivery repeats a message byte for byte; two different messages never share an id.
    merged = {i: len(v) for i, v in by_id.items() if len(v) > 1}
    assert not merged, merged
    h = healths(messages)
    assert len(h) >= 10
    assert all(x["outbox"]["evicted"] == {} for x in h)  # the +1 h step expired nothing
    assert all((x["outbox_oldest_age_s"] or 0) < 600 for x in h)
    dwell = [p["dwell_s"] for p in payloads if p["type"] in ("update", "exit")]
    assert dwell and max(dwell) < 3600  # dwell runs on monotonic time
    figure(
        "clock_step",
        committed=last_seq,
        health=len(h),
        distinct_ids=len(by_id),
        max_dwell_s=max(dwell),
    )
