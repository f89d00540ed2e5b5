"""Two gateways of one store, each scanning half of the simulated store's receivers through bleak
and its own virtual BlueZ, sharing signal summaries over one mosquitto: they fuse every receiver
into one picture (the same zone for a device, the same pseudonym for a shopper), change
pseudonyms together at the day boundary, and one carries on alone when the other is killed."""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edge_agent.contract import model_for
from edge_agent.tools.mosquitto import LocalMosquitto
from firmware_sim.dbus import PrivateBus
from tests.support.agent import StderrTail, wait_until
from tests.support.cli import spawn_cli
from tests.support.configs import sim_config
from tests.support.mqtt_watch import Watcher
from tests.support.virtual_bluez import BluezProcess

SITE = "store-0042"
HALVES = {
    "gw-a": ("rx-entrance", "rx-produce", "rx-checkout"),
    "gw-b": ("rx-dairy", "rx-bakery", "rx-frozen"),
}
AT = {
    "rx-entrance": (6.0, 6.0),
    "rx-produce": (18.0, 6.0),
    "rx-checkout": (30.0, 6.0),
    "rx-dairy": (6.0, 18.0),
    "rx-bakery": (18.0, 18.0),
    "rx-frozen": (30.0, 18.0),
}
ADAPTERS = ("hci0", "hci1", "hci2")
AGREEMENT = 0.97
"""Share of zone-seconds on which the two gateways must agree (the issue's figure)."""
WINDOW_S = 20.0
"""Seconds of the store over which the gateways' zones are compared."""


def gateway_config(
    tmp_path: Path, broker: LocalMosquitto, gateway: str, secret: Path, rotate_at: str
) -> Path:
    """The shipped config as one gateway of the store: its adapters hear its half of the
    receivers; the other half are the other gateway's, on the same floor plan."""
    base = tmp_path / gateway
    base.mkdir()
    other = next(g for g in HALVES if g != gateway)
    receivers = ""
    for gw, names in ((gateway, HALVES[gateway]), (other, HALVES[other])):
        for adapter, name in zip(ADAPTERS, names, strict=True):
            x, y = AT[name]
            owner = f'gateway = "{gw}"\n' if gw != gateway else ""
            receivers += f'\n[[receivers]]\nid = "{adapter}"\n{owner}x = {x}\ny = {y}\nz = 2.6\n'
    edits = {
        'kind = "sim"': 'kind = "bleak"',
        'adapters = ["hci0"]': f"adapters = {json.dumps(list(ADAPTERS))}",
        'id = "gw-demo-01"': f'id = "{gateway}"',
        'rotate_at = "00:00"': f'rotate_at = "{rotate_at}"\nstore_secret_file = "{secret}"',
        # shoppers' phones are published under their pseudonym (they are only counted by default)
        'resolvable = "count_only"': 'resolvable = "pseudonymous"',
        "share = false": "share = true",
    }
    text = sim_config(base, broker, speed=1.0, duration=None, edits=edits).read_text("utf-8")
    start = text.index('[[receivers]]\nid = "hci0"')
    end = text.index("# Per-receiver calibration")
    text = text[:start] + receivers + "\n" + text[end:]
    path = base / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


class Gateway:
    """One gateway: its virtual BlueZ, its agent."""

    def __init__(
        self,
        tmp_path: Path,
        broker: LocalMosquitto,
        gateway: str,
        secret: Path,
        rotate_at: str,
        start_at: float,
    ) -> None:
        self.name = gateway
        self.bus = PrivateBus().__enter__()
        self.bluez = BluezProcess(
            self.bus,
            ",".join(ADAPTERS),
            "--receivers",
            ",".join(HALVES[gateway]),
            "--start-at",
            f"{start_at:.3f}",
        ).start()
        cfg = gateway_config(tmp_path, broker, gateway, secret, rotate_at)
        self.agent = spawn_cli("run", "--config", str(cfg), env=self.bus.environ())
        self.stderr = StderrTail(self.agent)

    def close(self) -> None:
        if self.agent.poll() is None:
            self.agent.kill()
            self.agent.wait()
        self.bluez.stop()
        self.bus.__exit__(None, None, None)


@pytest.fixture
def store(
    tmp_path: Path, mosquitto: LocalMosquitto
) -> Iterator[tuple[dict[str, Gateway], Watcher, datetime]]:
    secret = tmp_path / "store-secret"
    secret.write_bytes(b"0123456789abcdef-the-store-secret")
    secret.chmod(0o600)
    # the key day ends 45 s from now (UTC, to the second): both gateways rotate their
    # pseudonyms there while the test watches
    boundary = (datetime.now(UTC) + timedelta(seconds=45)).replace(microsecond=0)
    rotate_at = boundary.strftime("%H:%M:%S")
    watcher = Watcher(mosquitto.host, mosquitto.port, f"retail/{SITE}/#")
    start_at = time.time() + 3.0
    gateways: dict[str, Gateway] = {}
    try:
        for name in HALVES:
            gateways[name] = Gateway(tmp_path, mosquitto, name, secret, rotate_at, start_at)
        yield gateways, watcher, boundary
    finally:
        for gw in gateways.values():
            gw.close()
        watcher.close()


def presence(watcher: Watcher, gateway: str) -> list[dict[str, Any]]:
    """A gateway's presence events (validated against the contract), in arrival order."""
    out = []
    for msg in list(watcher.messages):
        if msg.topic.startswith(f"retail/{SITE}/{gateway}/presence/"):
            data = json.loads(msg.payload)
            model_for(data["type"]).model_validate(data)
            out.append(data)
    return out


def zone_seconds(
    events: list[dict[str, Any]], since: float, until: float
) -> dict[tuple[str, int], str]:
    """Per (device, whole second in [since, until)): the zone its events put it in."""
    spans: dict[str, list[tuple[float, str | None]]] = defaultdict(list)
    for e in events:
        t = datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp()
        spans[e["device"]].append((t, e["zone"] if e["type"] != "exit" else None))
    out = {}
    for device, changes in spans.items():
        changes.sort(key=lambda c: c[0])
        k, zone = 0, None
        for second in range(int(since), int(until)):
            while k < len(changes) and changes[k][0] <= second:
                zone = changes[k][1]
                k += 1
            if zone is not None:
                out[(device, second)] = zone
    return out


def remote_samples(watcher: Watcher) -> dict[str, int]:
    """Per gateway: the other gateways' samples it says (health) it fused so far."""
    out: dict[str, int] = defaultdict(int)
    for m in list(watcher.messages):
        if m.topic.endswith("/health"):
            gateway = m.topic.split("/")[2]
            store = json.loads(m.payload).get("store") or {}
            out[gateway] = max(out[gateway], int(store.get("remote_samples", 0)))
    return out


def pseudonyms(events: list[dict[str, Any]], since: float, until: float) -> set[str]:
    """Pseudonymous devices with an event in [since, until)."""
    out = set()
    for e in events:
        t = datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp()
        if e["device"].startswith("p-") and since <= t < until:
            out.add(e["device"])
    return out


def test_two_gateways_fuse_one_store(store: tuple[dict[str, Gateway], Watcher, datetime]) -> None:
    gateways, watcher, boundary_dt = store
    boundary = boundary_dt.timestamp()

    wait_until(
        lambda: all(remote_samples(watcher)[g] > 100 for g in HALVES),
        60,
        "each gateway fusing the other's summaries",
    )
    # half a minute of the store through both, then compare the zones they published
    t0 = time.time() + 3
    t1 = min(t0 + WINDOW_S, boundary - 3)
    wait_until(lambda: time.time() > t1 + 2, WINDOW_S + 10, "the comparison window")
    ev_a, ev_b = presence(watcher, "gw-a"), presence(watcher, "gw-b")
    za, zb = zone_seconds(ev_a, t0, t1), zone_seconds(ev_b, t0, t1)
    keys = set(za) | set(zb)
    assert len(keys) > 100, f"too few zone-seconds to compare: {len(keys)}"
    agree = sum(za.get(k) == zb.get(k) for k in keys) / len(keys)
    assert agree >= AGREEMENT, f"the gateways agree on {agree:.1%} of {len(keys)} zone-seconds"
    before_a, before_b = pseudonyms(ev_a, 0, boundary - 2), pseudonyms(ev_b, 0, boundary - 2)
    assert before_a & before_b, "no shopper under the same pseudonym on both gateways"

    # the day ends: both replace the key, and agree on the new pseudonyms
    wait_until(lambda: time.time() > boundary + 10, 200, "10 s past the key day's end")
    ev_a, ev_b = presence(watcher, "gw-a"), presence(watcher, "gw-b")
    after_a = pseudonyms(ev_a, boundary + 2, math.inf)
    after_b = pseudonyms(ev_b, boundary + 2, math.inf)
    assert after_a & after_b, "no shopper under the same new pseudonym on both gateways"
    assert not (after_a | after_b) & (before_a | before_b), "a pseudonym outlived its day"

    # gw-b dies: gw-a goes on placing devices from its own receivers
    gateways["gw-b"].agent.kill()
    killed = time.time()
    wait_until(
        lambda: any(
            e["type"] in ("enter", "exit")
            and datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp() > killed + 2
            for e in presence(watcher, "gw-a")
        ),
        60,
        "gw-a publishing zone changes after gw-b was killed",
    )
    assert gateways["gw-a"].agent.poll() is None, gateways["gw-a"].stderr.text()[-3000:]
