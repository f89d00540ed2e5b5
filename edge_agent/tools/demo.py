"""``edge-agent demo``: the simulated store through the real agent into a broker, watched live,
with how well the estimated zones match the simulator's ground truth."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from edge_agent.config.checks import load_checked
from edge_agent.config.sections import broker_address
from edge_agent.errors import ConfigError, EdgeAgentError, PublishError
from edge_agent.models import ContextEvent, MomentBody, PresenceBody, ReadingBody
from edge_agent.runtime.agent import Agent
from edge_agent.tools import floorview
from edge_agent.tools.mosquitto import LocalMosquitto
from edge_agent.tools.sources import make_source

TRACKED = ("cart", "staff")


class Subscriber:
    """Counts what really arrives at the broker under the gateway's root."""

    def __init__(self, url: str, root: str) -> None:
        host, port, _ = broker_address(url)
        self.received = 0
        self.by_type: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"demo-watch-{time.time_ns()}"
        )
        self._client.on_connect = lambda c, *_: c.subscribe(f"{root}/#", qos=1)
        self._client.on_message = self._on_message
        try:
            self._client.connect(host, port, 30)
        except (OSError, ValueError) as err:
            raise PublishError(url, f"cannot connect: {err}") from None
        self._client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received += 1
            self.by_type[msg.topic.rsplit("/", 2)[-2] if "/" in msg.topic else msg.topic] += 1

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@dataclass
class View:
    """What the live view shows, updated from the agent's tick callback."""

    latest: collections.deque[ContextEvent] = field(
        default_factory=lambda: collections.deque(maxlen=12)
    )
    moments: collections.deque[ContextEvent] = field(
        default_factory=lambda: collections.deque(maxlen=8)
    )
    fresh: list[ContextEvent] = field(default_factory=list)
    """Moments not yet printed (the plain, non-terminal output prints each as it fires)."""
    events: int = 0
    truth_checked: int = 0
    truth_matched: int = 0
    next_truth: float = 30.0
    started: float = field(default_factory=time.monotonic)

    @property
    def accuracy(self) -> float | None:
        return self.truth_matched / self.truth_checked if self.truth_checked else None


def _on_tick(view: View, agent: Agent, events: list[ContextEvent]) -> None:
    view.events += len(events)
    view.latest.extend(e for e in events if e.type in ("enter", "exit", "reading"))
    moments = [e for e in events if e.type == "moment"]
    view.moments.extend(moments)
    view.fresh.extend(moments)
    source: Any = agent.source
    now = source.now()
    if now < view.next_truth:
        return
    view.next_truth = now + 1.0
    states = agent.pipeline.presence.states
    for truth in source.sim.truth(now):
        if truth.kind not in TRACKED:
            continue
        st = states.get(truth.device)
        view.truth_checked += 1
        view.truth_matched += int((st.zone if st else None) == truth.zone)


def _render(agent: Agent, view: View, sub: Subscriber) -> Group:
    source: Any = agent.source
    elapsed = max(time.monotonic() - view.started, 1e-6)
    h = agent.pipeline.stats
    acc = view.accuracy
    head = Table.grid(padding=(0, 3))
    head.add_row(
        f"[b]sim time[/b] {source.now():7.1f} s",
        f"[b]adverts/s[/b] {h.adverts / elapsed:8.0f}",
        f"[b]outbox depth[/b] {agent.outbox.depth():5d}",
        f"[b]published/s[/b] {agent.publisher.stats.published / elapsed:6.1f}",
        f"[b]at broker[/b] {sub.received:6d}",
        f"[b]zone match vs truth[/b] {'—' if acc is None else f'{acc:.1%}'}",
    )
    zones = Table(title="Zones", expand=True)
    for col in ("zone", "carts", "staff", "shoppers/unknown", "other", "total", "mean dwell s"):
        zones.add_column(col, justify="right" if col != "zone" else "left")
    presence = agent.pipeline.presence
    for zone in agent.cfg.zones:
        inside = presence.in_zone(zone.id)
        kinds = collections.Counter(s.ref.kind.value for s in inside)
        dwell = [source.now() - s.entered_at for s in inside]
        people = kinds["unknown"] + kinds["shopper"]
        zones.add_row(
            zone.id,
            str(kinds["cart"]),
            str(kinds["staff"]),
            str(people),
            str(len(inside) - kinds["cart"] - kinds["staff"] - people),
            str(len(inside)),
            f"{sum(dwell) / len(dwell):.0f}" if dwell else "—",
        )
    latest = Table(title="Latest events", expand=True)
    for col in ("time", "type", "device", "detail"):
        latest.add_column(col)
    for ev in reversed(view.latest):
        b = ev.body
        if isinstance(b, ReadingBody):
            detail = ", ".join(
                f"{k}={v.value}{v.unit or ''}" for k, v in list(b.measurements.items())[:3]
            )
        elif isinstance(b, PresenceBody):
            detail = f"{b.zone} {b.band} {b.distance_m} m dwell {b.dwell_s:.0f} s"
        else:
            continue
        latest.add_row(time.strftime("%H:%M:%S", time.gmtime(ev.wall)), ev.type, b.device, detail)
    floor = floor_map(agent)
    moments = Table(title="Moments that matter (moment/{name})", expand=True)
    for col in ("time", "moment", "state", "subject", "zone", "facts"):
        moments.add_column(col)
    for ev in reversed(view.moments):
        m = ev.body
        assert isinstance(m, MomentBody)
        moments.add_row(*moment_cells(ev, m))
    return Group(head, *floor, zones, moments, latest)


def moment_cells(ev: ContextEvent, m: MomentBody) -> tuple[str, ...]:
    """A moment as the demo shows it: time, name, state, subject, zone, facts."""
    facts = ", ".join(f"{k}={v}" for k, v in list(m.facts.items())[:3])
    when = time.strftime("%H:%M:%S", time.gmtime(ev.wall))
    return (when, m.name, m.state, m.subject or "—", m.zone or "—", facts)


def floor_map(agent: Agent, width: int = 72) -> list[Text]:
    """The floor plan with every device the agent places (none without a plan)."""
    fusion = agent.pipeline.fusion
    if fusion is None:
        return []
    dots = []
    for device, st in agent.pipeline.presence.states.items():
        pos = fusion.position(device)
        if pos is not None:
            dots.append((pos.x, pos.y, st.ref.kind.value))
    lines = floorview.draw(fusion.plan, floorview.zone_of_cells(fusion.plan), dots, width)
    return [Text("\n".join(lines)), Text(floorview.legend(fusion.plan), style="dim")]


def _summary(agent: Agent, view: View, sub: Subscriber) -> str:
    acc = view.accuracy
    return (
        f"adverts {agent.pipeline.stats.adverts}, events committed {agent.outbox.last_seq}, "
        f"published {agent.publisher.stats.published}, received at broker {sub.received}, "
        f"zone match vs truth {'—' if acc is None else f'{acc:.1%}'}"
    )


async def _run(
    agent: Agent, view: View, sub: Subscriber, console: Console, duration: float | None
) -> int:
    task = asyncio.create_task(agent.run())
    deadline: float | None = None  # counted from when the store is up (start-up may be slow)
    last_line = 0.0
    live = (
        Live(_render(agent, view, sub), console=console, refresh_per_second=4, transient=False)
        if console.is_terminal
        else None
    )
    with live if live is not None else contextlib.nullcontext():
        while not task.done():
            await asyncio.sleep(0.25)
            if live is not None:
                live.update(_render(agent, view, sub))
            else:
                for ev in view.fresh:  # each moment on its own line as it fires
                    assert isinstance(ev.body, MomentBody)
                    console.print("moment: " + "  ".join(moment_cells(ev, ev.body)), soft_wrap=True)
                if time.monotonic() - last_line >= 5.0:
                    last_line = time.monotonic()
                    console.print(_summary(agent, view, sub), soft_wrap=True)
            view.fresh.clear()
            if duration is not None and deadline is None and agent.ready:
                deadline = time.monotonic() + duration
            if deadline is not None and time.monotonic() >= deadline:
                agent.stop()
                deadline = math.inf
    rc = await task
    if live is None:
        console.print(_render(agent, view, sub))
    await asyncio.sleep(0.5)  # let the subscriber see the last acknowledgements
    console.print(f"[b]demo done:[/b] {_summary(agent, view, sub)}", soft_wrap=True)
    return rc


def run_demo(
    config: str,
    *,
    duration_s: float | None = None,
    store_time_s: float | None = None,
    speed: float = 5.0,
    broker_url: str | None = None,
    scenario: str | None = None,
    seed: int | None = None,
) -> int:
    """Start a broker (unless ``broker_url``), run the simulated store of ``config`` (or
    ``scenario``) through the agent, show it; stop ``duration_s`` real seconds after the store
    is up, or after ``store_time_s`` simulated seconds (the same store whatever the load)."""
    console = Console()
    broker: LocalMosquitto | None = None
    state = tempfile.TemporaryDirectory(prefix="edge-agent-demo-")
    try:
        if broker_url is None:
            broker = LocalMosquitto()
            broker.start()
            url = broker.url
            console.print(f"local mosquitto on {url}")
        else:
            url = broker_url
        overrides: dict[str, Any] = {
            "source.kind": "sim",
            "source.speed": speed,
            "gateway.state_dir": state.name,
            "mqtt.urls": [url],
        }
        if scenario:
            overrides["source.scenario"] = scenario
        if seed is not None:
            overrides["source.seed"] = seed
        if store_time_s is not None:
            overrides["source.duration_s"] = store_time_s
        try:
            cfg = load_checked(config, overrides, secrets=broker_url is not None)
        except ConfigError as err:
            console.print(str(err), markup=False, soft_wrap=True)
            return 2
        # Never the real gateway's ids or retained status: the demo is "<gateway>-demo", and
        # its retained status is cleared when it ends.
        gateway = cfg.gateway.model_copy(update={"id": cfg.gateway.id[:59] + "-demo"})
        cfg = cfg.model_copy(update={"gateway": gateway})
        view = View()
        agent = Agent(
            cfg,
            make_source(cfg),
            drain_timeout_s=10.0,
            on_tick=lambda a, evs: _on_tick(view, a, evs),
            ephemeral=True,
        )
        sub = Subscriber(url, cfg.topic_root)
        try:
            return asyncio.run(_run(agent, view, sub, console, duration_s))
        finally:
            sub.close()
    except EdgeAgentError as err:
        console.print(f"[red]error:[/red] {err}", soft_wrap=True)
        return 1
    finally:
        if broker is not None:
            broker.stop()
        state.cleanup()
