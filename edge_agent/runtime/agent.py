"""Wires source → pipeline → outbox → publisher in one ``TaskGroup``; signals; health; sd_notify."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import os
import resource
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from edge_agent import __version__, topics
from edge_agent.config import AgentConfig
from edge_agent.contract import (
    HealthPayload,
    OutboxHealth,
    OutboxIncident,
    PrivacyHealth,
    PublisherHealth,
    StatusPayload,
    StatusState,
    rfc3339,
)
from edge_agent.errors import EdgeAgentError
from edge_agent.models import Advert, Consent, ContextEvent
from edge_agent.pipeline import kernels
from edge_agent.pipeline.identity import Identity
from edge_agent.pipeline.tick import Pipeline
from edge_agent.runtime.consent import load_consents
from edge_agent.runtime.outbox import Outbox, OutboxLimits
from edge_agent.runtime.publisher import Publisher
from edge_agent.runtime.sources import AdvertSink, AdvertSource

_LOGGER = logging.getLogger(__name__)
MAX_EMPTY_TICKS = 100
WATCHDOG_EVERY_S = 5.0
MAINTAIN_EVERY_S = 1.0
EXPIRE_EVERY_S = 60.0
CONTROL_TIMEOUT_S = 10.0
MAX_CONTROL_LINE = 64 * 1024


def config_hash(path: Path | None) -> str:
    """SHA-256 of the configuration file (``status.config_hash``)."""
    if path is None:
        return ""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sd_notify(message: str) -> None:
    """Tell systemd (``Type=notify``) about our state; a no-op outside systemd."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), addr)


class Agent:
    """The running service."""

    def __init__(
        self,
        cfg: AgentConfig,
        source: AdvertSource,
        *,
        config_file: Path | None = None,
        drain_timeout_s: float = 30.0,
        on_tick: Callable[[Agent, list[ContextEvent]], None] | None = None,
        day_keys: Callable[[float], bytes] | None = None,
    ) -> None:
        self.cfg = cfg
        self.source = source
        self.sink = AdvertSink(cfg.source.queue_size)
        self.consents: list[Consent] = load_consents(cfg.consent_path)
        self.pipeline = Pipeline(cfg, Identity(cfg, consents=self.consents, day_keys=day_keys))
        self.outbox = Outbox(
            cfg.outbox_path,
            cfg.gateway.id,
            cfg.topic_root,
            synchronous=cfg.outbox.synchronous,
            limits=OutboxLimits.from_config(cfg.outbox, cfg.privacy.retention_s),
        )
        self.publisher = Publisher(cfg, self.outbox, self._status_payload)
        self.started_wall = time.time()
        self._started = time.monotonic()
        self._config_hash = config_hash(config_file)
        self._drain_timeout = drain_timeout_s
        self._on_tick = on_tick
        self._stop = asyncio.Event()
        self._batch: list[Advert] = []
        self._tick_end: float | None = None
        self._source_done = False
        self._rate_mark = (time.monotonic(), 0, 0)
        self._control_n = 0
        self._expire_at = 0.0
        self.erasures = 0

    # ---------------------------------------------------------------- control

    def stop(self) -> None:
        """Ask the agent to stop: commit what it has, flush briefly, say offline."""
        self._stop.set()

    def _control_id(self, kind: str) -> str:
        """``<gateway>:<kind>:<start ms>-<n>``: unique even if the wall clock steps back."""
        self._control_n += 1
        return f"{self.cfg.gateway.id}:{kind}:{int(self.started_wall * 1000)}-{self._control_n}"

    def _incidents(self) -> list[OutboxIncident]:
        return [
            OutboxIncident(at=rfc3339(i.at), moved_to=i.moved_to, reason=i.reason)
            for i in self.outbox.incidents
        ]

    def _status_payload(self, state: StatusState) -> bytes:
        now = time.time()
        return (
            StatusPayload(
                v=1,
                id=self._control_id("status"),
                seq=self.outbox.last_seq,
                ts=rfc3339(now),
                type="status",
                state=state,
                version=__version__,
                started_at=rfc3339(self.started_wall),
                config_hash=self._config_hash,
                outbox_incidents=self._incidents(),
            )
            .model_dump_json()
            .encode()
        )

    def health_payload(self) -> HealthPayload:
        """The agent's counters now."""
        now = time.monotonic()
        mark_t, mark_adv, mark_pub = self._rate_mark
        adverts = self.pipeline.stats.adverts
        published = self.publisher.stats.published
        dt = max(now - mark_t, 1e-6)
        self._rate_mark = (now, adverts, published)
        d = self.pipeline.decode_stats
        box, pub, ps = self.outbox, self.publisher, self.publisher.stats
        usage = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.time()
        return HealthPayload(
            v=1,
            id=self._control_id("health"),
            seq=self.outbox.last_seq,
            ts=rfc3339(wall),
            type="health",
            uptime_s=round(now - self._started, 1),
            adverts_total=adverts,
            adverts_per_s=round((adverts - mark_adv) / dt, 1),
            queue_dropped=self.sink.dropped,
            decode={
                "frames": d.frames,
                "unknown": d.unknown,
                "malformed": dict(d.malformed),
                "rejected_rssi": self.pipeline.stats.rejected_rssi,
            },
            devices_tracked=self.pipeline.devices_tracked,
            outbox_depth=self.outbox.depth(),
            outbox_oldest_age_s=self.outbox.oldest_age(),
            published_total=published,
            publish_per_s=round((published - mark_pub) / dt, 1),
            reconnects=self.publisher.stats.reconnects,
            outbox=OutboxHealth(
                bytes=box.size_bytes,
                held=box.held,
                storage_ok=box.storage_ok,
                write_failures=box.write_failures,
                evicted=dict(box.evicted),
                incidents=self._incidents(),
            ),
            privacy=PrivacyHealth(
                key_rotations=self.pipeline.identity.stats.key_rotations,
                ignored_adverts=self.pipeline.identity.stats.ignored,
                count_only_adverts=self.pipeline.identity.stats.count_only,
                consents=len(self.consents),
                erasures=self.erasures,
            ),
            publisher=PublisherHealth(
                broker=pub.broker,
                connected=pub.connected,
                inflight=pub.inflight,
                connects=ps.connects,
                connect_failures=ps.connect_failures,
                silent_drops=ps.silent_drops,
                resent=ps.resent,
                rejected=ps.rejected,
            ),
            source=self.source.name,
            adapters=self.source.adapter_health(),
            cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
            rss_mb=round(usage.ru_maxrss / 1024.0, 1),
        )

    # ---------------------------------------------------------------- privacy

    def erase(self, device: str) -> dict[str, int | bool]:
        """Remove everything buffered and tracked for ``device`` (a wire id, an address or a
        beacon id), and clear its retained beacon health at the broker. Returns the counts."""
        ids = self.pipeline.identity.ids_for(device)
        wanted = [t for d in ids for t in topics.device_topics(d)]
        removed = self.outbox.erase(wanted)
        tracked = self.pipeline.erase(ids)
        cleared = all(
            self.publisher.publish_control(topics.beacon_health(d), b"", qos=1, retain=True)
            for d in ids
        )
        self.erasures += 1
        self.publisher.wake()
        _LOGGER.info(
            "erase: %s buffered event(s) removed, %s tracked device(s) forgotten", removed, tracked
        )
        return {
            "events_removed": removed,
            "devices_forgotten": tracked,
            "retained_cleared": cleared,
        }

    def reload_consents(self) -> dict[str, int | bool]:
        """Re-read the consent list; devices whose consent was revoked are erased."""
        new = load_consents(self.cfg.consent_path)
        kept = {c.id for c in new}
        revoked = [c for c in self.consents if c.id not in kept]
        self.consents = new
        self.pipeline.identity.set_consents(new)
        removed = 0
        for c in revoked:
            removed += int(self.erase(c.id)["events_removed"])
        _LOGGER.info("consent list reloaded: %s device(s), %s revoked", len(new), len(revoked))
        return {"consents": len(new), "revoked": len(revoked), "events_removed": removed}

    def control(self, request: dict[str, object]) -> dict[str, object]:
        """One command from the control socket (the MQTT command channel will call the same)."""
        op = request.get("op")
        if op == "reload_consents":
            return {"ok": True, **self.reload_consents()}
        if op == "erase" and isinstance(request.get("device"), str):
            return {"ok": True, **self.erase(str(request["device"]))}
        if op == "ping":
            return {"ok": True, "gateway": self.cfg.gateway.id}
        return {"ok": False, "error": f"unknown request {op!r}"}

    async def _control_server(self) -> None:
        path = self.cfg.control_socket
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        old = os.umask(0o177)  # the socket is the owner's only (root may always connect)
        try:
            server = await asyncio.start_unix_server(
                self._serve_control, path=str(path), limit=MAX_CONTROL_LINE
            )
        finally:
            os.umask(old)
        try:
            async with server:
                await server.serve_forever()
        finally:
            path.unlink(missing_ok=True)

    async def _serve_control(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            async with asyncio.timeout(CONTROL_TIMEOUT_S):
                line = await reader.readline()
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        raise ValueError("not an object")
                    reply = self.control(request)
                except (ValueError, EdgeAgentError) as err:
                    reply = {"ok": False, "error": str(err)}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (TimeoutError, OSError) as err:
            _LOGGER.warning("control socket: request failed: %s", err)
        finally:
            writer.close()

    # ------------------------------------------------------------------- run

    async def run(self) -> int:
        """Run until stopped (signal) or until a finite source is exhausted and drained."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        await loop.run_in_executor(None, kernels.warm_up)
        _LOGGER.info(
            "agent %s: starting (source %s, %s)",
            self.cfg.gateway.id,
            self.source.name,
            self.cfg.mqtt.urls[0] if len(self.cfg.mqtt.urls) == 1 else "several brokers",
        )
        try:
            async with asyncio.TaskGroup() as tg:
                publisher = tg.create_task(self.publisher.run(), name="publisher")
                health = tg.create_task(self._health_loop(), name="health")
                feed = tg.create_task(self._feed(), name="source")
                process = tg.create_task(self._process(), name="pipeline")
                stopper = tg.create_task(self._stop.wait(), name="stop")
                control = tg.create_task(self._control_server(), name="control")
                sd_notify("READY=1")
                await asyncio.wait({process, stopper}, return_when=asyncio.FIRST_COMPLETED)
                feed.cancel()
                stopping = self._stop.is_set()
                self._stop.set()
                await process
                if not self.publisher.connected and self._source_done and not stopping:
                    await self.publisher.wait_connected(self._drain_timeout)
                drained = await self.publisher.drain(2.0 if stopping else self._drain_timeout)
                if not drained:
                    _LOGGER.warning(
                        "outbox %s: %s event(s) left for the next start",
                        self.outbox.path,
                        self.outbox.depth(),
                    )
                await self.publisher.close()
                for task in (publisher, health, stopper, control):
                    task.cancel()
        finally:
            sd_notify("STOPPING=1")
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            self.outbox.close()
        _LOGGER.info("agent %s: stopped", self.cfg.gateway.id)
        return 0

    async def _feed(self) -> None:
        await self.source.run(self.sink)

    async def _health_loop(self) -> None:
        interval = self.cfg.health.interval_s
        while True:
            await asyncio.sleep(interval)
            payload = self.health_payload().model_dump_json().encode()
            self.publisher.publish_control(topics.HEALTH, payload, qos=0, retain=False)

    async def _process(self) -> None:
        """Queue → ticks of source time → pipeline → outbox (one transaction per tick)."""
        queue = self.sink.queue
        wait = min(self.cfg.pipeline.tick_s, 0.05)
        watchdog_at = 0.0
        maintain_at = time.monotonic() + MAINTAIN_EVERY_S
        while True:
            mono = time.monotonic()
            if mono >= watchdog_at:  # the pipeline is alive: tell systemd
                sd_notify("WATCHDOG=1")
                watchdog_at = mono + WATCHDOG_EVERY_S
            if mono >= maintain_at:
                self._maintain(mono)
                maintain_at = mono + MAINTAIN_EVERY_S
            if self._stop.is_set():
                while not queue.empty():
                    item = queue.get_nowait()
                    if item is not None:
                        self._add(item)
                self._flush(self._batch[-1].t if self._batch else self.source.now())
                return
            try:
                async with asyncio.timeout(wait):
                    item = await queue.get()
            except TimeoutError:
                item = None
            else:
                if item is None:
                    self._source_done = True
                    self._flush(self._batch[-1].t if self._batch else self.source.now())
                    return
                self._add(item)
                while not queue.empty():
                    nxt = queue.get_nowait()
                    if nxt is None:
                        self._source_done = True
                        self._flush(self._batch[-1].t if self._batch else self.source.now())
                        return
                    self._add(nxt)
            now = self.source.now()
            if math.isfinite(now):
                self._close_ticks(now)
            await asyncio.sleep(0)

    def _maintain(self, mono: float) -> None:
        """Outbox upkeep: held events retried each second, expiry and WAL once a minute."""
        box = self.outbox
        if mono >= self._expire_at:
            box.maintain()
            # Retention is kept to within a quarter of its span (at most a minute late).
            every = min(EXPIRE_EVERY_S, max(MAINTAIN_EVERY_S, self.cfg.privacy.retention_s / 4))
            self._expire_at = mono + every
        elif box.held or not box.storage_ok:
            box.append(())
        else:
            return
        self.publisher.wake()

    def _add(self, advert: Advert) -> None:
        tick = self.cfg.pipeline.tick_s
        if self._tick_end is None:
            self._tick_end = (math.floor(advert.t / tick) + 1) * tick
        if advert.t >= self._tick_end:
            self._close_ticks(advert.t)
        self._batch.append(advert)

    def _close_ticks(self, upto: float) -> None:
        """Process every tick that ends at or before ``upto``."""
        tick = self.cfg.pipeline.tick_s
        end = self._tick_end
        if end is None:
            return
        if (upto - end) / tick > MAX_EMPTY_TICKS:  # a long silence: one tick, then realign
            self._run_tick(end)
            end = (math.floor(upto / tick)) * tick
        while end <= upto:
            self._run_tick(end)
            end += tick
        self._tick_end = end

    def _flush(self, now: float) -> None:
        """Process what is left at the end (stop or end of source)."""
        if math.isfinite(now):
            self._close_ticks(now)
        if self._batch:
            last = self._batch[-1].t
            self._run_tick(max(now, last) if math.isfinite(now) else last)

    def _run_tick(self, now: float) -> None:
        batch, self._batch = self._batch, []
        events = self.pipeline.process(batch, now, self.source.wall_at(now))
        if events:
            self.outbox.append(events)
            self.publisher.wake()
        if self._on_tick is not None:
            self._on_tick(self, events)
