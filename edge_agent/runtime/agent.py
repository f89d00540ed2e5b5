"""The running service, wired: source → pipeline → outbox → publisher, with the health loop and
the control socket, in one ``TaskGroup``. Wiring only: each part lives in its own module."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent import __version__, topics
from edge_agent.config import AgentConfig
from edge_agent.contract import HealthPayload
from edge_agent.models import Advert, ContextEvent
from edge_agent.pipeline import kernels
from edge_agent.pipeline.decoders import BindKeys
from edge_agent.pipeline.identity import Identity, store_day_keys
from edge_agent.pipeline.reconfigure import reconfigured
from edge_agent.pipeline.tick import Pipeline, Ticker
from edge_agent.runtime import control, lifecycle, remote_config
from edge_agent.runtime.commands import CommandChannel
from edge_agent.runtime.health import Reporter
from edge_agent.runtime.homeassistant import Discovery
from edge_agent.runtime.metrics import prometheus_text, write_textfile
from edge_agent.runtime.notify import sd_notify, watchdog_interval
from edge_agent.runtime.operations import Operations
from edge_agent.runtime.outbox import Outbox
from edge_agent.runtime.outbox_schema import OutboxLimits
from edge_agent.runtime.privacy import Rights
from edge_agent.runtime.publisher import Publisher
from edge_agent.runtime.remote_config import Probation
from edge_agent.runtime.secrets import bthome_keys, store_secret
from edge_agent.runtime.sources import AdvertSource, SourceFeed, source_error
from edge_agent.runtime.store_share import StoreShare

_LOGGER = logging.getLogger(__name__)
MAX_EMPTY_TICKS = 100
"""A silence longer than this many ticks (the clock jumped) runs one tick, then realigns."""
WATCHDOG_EVERY_S = 5.0
MAINTAIN_EVERY_S = 1.0
MAX_STALL_S = 5.0
"""The pipeline loop turns at least every 50 ms; a longer stall than this is unhealthy."""
STATE_EVERY_S = 5.0
"""The pipeline's state (aggregate counts) is committed at least this often when it changed."""
EXPIRE_EVERY_S = 60.0


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
        warnings: list[str] | None = None,
        ephemeral: bool = False,
        overrides: dict[str, Any] | None = None,
        recovered: Probation | None = None,
    ) -> None:
        self.cfg = cfg
        self.source = source
        self.feed = SourceFeed(source, cfg.source.queue_size)
        if day_keys is None:  # a store secret makes the store's gateways agree on pseudonyms
            secret = store_secret(cfg.privacy)
            day_keys = store_day_keys(secret) if secret is not None else None
        bind_keys = bthome_keys(cfg.sensors)
        self.pipeline = Pipeline(
            cfg,
            Identity(cfg, day_keys=day_keys),
            bthome_keys=BindKeys(bind_keys) if bind_keys else None,
        )
        self.outbox = Outbox(
            cfg.outbox_path,
            cfg.gateway.id,
            cfg.topic_root,
            synchronous=cfg.outbox.synchronous,
            limits=OutboxLimits.from_config(cfg.outbox, cfg.privacy.retention_s),
        )
        if not self.pipeline.restore(self.outbox.state()):
            _LOGGER.debug("no pipeline state to take up (first start, or unreadable)")
        self._state_at = 0.0
        self.config_file = config_file
        self.overrides: dict[str, Any] = dict(overrides or {})
        """The remote overlay in effect (``set-config``), dotted key → value."""
        self.reporter = Reporter(
            cfg.gateway.id, remote_config.config_hash(config_file, overrides or {})
        )
        self.started = time.monotonic()
        self.publisher = Publisher(
            cfg, self.outbox, lambda s: self.reporter.status(s, self.outbox), ephemeral=ephemeral
        )
        self.rights = Rights(cfg.consent_path, self.pipeline, self.outbox, self.publisher)
        self.share = (
            StoreShare(cfg, self.pipeline, self.publisher)
            if self.pipeline.feed is not None and self.pipeline.feed.collector is not None
            else None
        )
        """Summaries exchanged with the store's other gateways (a floor plan with
        ``fusion.share``)."""
        self._ticker: Ticker[Advert] = Ticker(
            cfg.pipeline.tick_s, self._run_tick, max_catch_up=MAX_EMPTY_TICKS, align=True
        )
        self.warnings = list(warnings or ())
        """The configuration's warnings, repeated in every ``health``."""
        self._drain_timeout = drain_timeout_s
        self.on_tick = on_tick
        """Called after every tick with the events it made (the demo, replay --publish)."""
        self._expire_at = 0.0
        self._turned = time.monotonic()
        self.ready = False
        """The pipeline has run its first tick (systemd was told READY)."""
        self.reloads = 0
        """Configurations taken up without a restart."""
        self._heard_at = -math.inf
        self.ops = Operations(self)
        """Remote commands, hot reload and ``set-config``'s probation."""
        self.ops.recovered(recovered)
        self.commands = (
            CommandChannel(
                cfg.commands,
                cfg.topic_root,
                self.publisher,
                self.ops.handlers(),
                self.reporter.next_id,
                lambda: self.outbox.last_seq,
            )
            if cfg.commands.enabled
            else None
        )
        self.ops.channel = self.commands
        self.discovery = Discovery(cfg, self.publisher) if cfg.homeassistant.discovery else None
        """Home Assistant discovery, when asked for."""

    def stop(self) -> None:
        """Ask the agent to stop: commit what it has, flush briefly, say offline."""
        self.feed.stop()

    # ---------------------------------------------------------------- control

    def control(self, request: dict[str, object]) -> dict[str, object]:
        """One command from the control socket (the MQTT command channel will call the same)."""
        op = request.get("op")
        if op == "reload_consents":
            return {"ok": True, **self.rights.reload_consents()}
        if op == "erase" and isinstance(request.get("device"), str):
            return {"ok": True, **self.rights.erase(str(request["device"]))}
        if op == "ping":
            return {"ok": True, "gateway": self.cfg.gateway.id}
        if op == "status":
            return {"ok": True, **self.status()}
        return {"ok": False, "error": f"unknown request {op!r}"}

    # ---------------------------------------------------------------- reload

    def apply(self, cfg: AgentConfig, overrides: dict[str, Any]) -> dict[str, Any]:
        """Take up a new configuration between two ticks (``reload``, ``set-config``): the
        outbox and its buffered events stay; tracked devices stay when their settings did
        (``pipeline.reconfigure``); the broker connection is made again when its settings
        changed. The caller has validated ``cfg`` and checked that it needs no restart."""
        now = self.source.now()
        now = now if math.isfinite(now) else self._ticker.tick_end or 0.0
        wall = self.source.wall_at(now)
        old = self.pipeline
        new, events, kept = reconfigured(old, cfg, now, wall)
        self.pipeline = new
        self.rights.pipeline = new
        new.identity.set_consents(self.rights.consents)
        if self.share is not None:
            self.share.pipeline = new
        if events:
            self.outbox.append(events, new.snapshot())
            self.publisher.wake()
        reconnect = self.publisher.reconfigure(cfg)
        if cfg.log_level != self.cfg.log_level:  # else a --log-level given at start stays
            logging.getLogger("edge_agent").setLevel(cfg.log_level)
        self.cfg = cfg
        self.overrides = dict(overrides)
        self.reporter.config_hash = remote_config.config_hash(self.config_file, overrides)
        self.reloads += 1
        _LOGGER.info(
            "configuration applied: tracked devices %s, broker %s",
            "kept" if kept else "started afresh",
            "reconnecting" if reconnect else "unchanged",
        )
        return {"devices_kept": kept, "reconnect": reconnect, "exits": len(events)}

    def adverts_recently(self, within_s: float = 10.0) -> bool:
        """Whether an advert was processed in the last ``within_s`` seconds."""
        return time.monotonic() - self._heard_at <= within_s

    def health_problem(self, adverts_before: int | None, devices_before: int) -> str | None:
        """Why the agent is not healthy now (``None``: it is): the pipeline loop stalled, the
        broker not connected, no advert processed since ``adverts_before`` (when given), or
        no device tracked when ``devices_before`` were."""
        if time.monotonic() - self._turned > MAX_STALL_S:
            return "the pipeline is not turning"
        if not self.publisher.connected:
            return "not connected to the broker"
        if adverts_before is not None and self.pipeline.stats.adverts <= adverts_before:
            return "no advert processed since the change"
        if devices_before and not self.pipeline.devices_tracked:
            return "no device tracked since the change"
        return None

    # ------------------------------------------------------------------- run

    async def run(self) -> int:
        """Run until stopped (signal, ``stop()``) or until a finite source is exhausted and
        drained."""
        _LOGGER.info(
            "agent %s: starting (source %s, %s)",
            self.cfg.gateway.id,
            self.source.name,
            self.cfg.mqtt.urls[0] if len(self.cfg.mqtt.urls) == 1 else "several brokers",
        )
        run = lifecycle.record_start(self.cfg.gateway.state_dir)
        how = "failed"
        try:
            with self.outbox:
                async with self.publisher, asyncio.TaskGroup() as tg:
                    others = [
                        tg.create_task(self.publisher.run(), name="publisher"),
                        tg.create_task(self._health_loop(), name="health"),
                        tg.create_task(
                            control.serve(self.cfg.control_socket, self.control), name="control"
                        ),
                        tg.create_task(self.ops.run(), name="operations"),
                    ]
                    if self.commands is not None:
                        others.append(tg.create_task(self.commands.run(), name="commands"))
                    await self._process()
                    await self._drain()
                    for task in others:
                        task.cancel()
            how = "stopped" if self.feed.stopped else "its source ended"
        except BaseExceptionGroup as group:
            err = source_error(group)
            how = f"failed: {err}"
            raise err from None
        finally:
            sd_notify("STOPPING=1")
            lifecycle.record_end(self.cfg.gateway.state_dir, run, how)
        _LOGGER.info("agent %s: stopped", self.cfg.gateway.id)
        return 0

    async def _drain(self) -> None:
        """After the source: publish what is committed (briefly when stopped), then say
        offline and disconnect."""
        stopping = self.feed.stopped
        if not self.publisher.connected and self.feed.ended and not stopping:
            await self.publisher.wait_connected(self._drain_timeout)
        if not await self.publisher.drain(2.0 if stopping else self._drain_timeout):
            _LOGGER.warning(
                "outbox %s: %s event(s) left for the next start",
                self.outbox.path,
                self.outbox.depth(),
            )
        await self.publisher.close()

    def health(self, *, mark: bool = True) -> HealthPayload:
        """Every part's counters now (``mark``: rates start again from here)."""
        return self.reporter.health(
            self.pipeline,
            self.outbox,
            self.publisher,
            self.source,
            self.feed.sink,
            self.rights.counters,
            self.warnings,
            share=self.share.stats if self.share is not None else None,
            commands=self.commands.stats if self.commands is not None else None,
            reloads=self.reloads,
            mark=mark,
        )

    def status_line(self) -> str:
        """One line for ``systemctl status``: rates, devices, outbox, broker."""
        h = self.health(mark=False)
        broker = "connected" if self.publisher.connected else "not connected"
        return (
            f"{h.adverts_per_s:.0f} adverts/s, {h.devices_tracked} devices, outbox "
            f"{h.outbox_depth}, broker {broker}"
        )

    def status(self) -> dict[str, object]:
        """For ``edge-agent status`` (local, owner only): health and who is in each zone."""
        zones = dict.fromkeys((z.id for z in self.cfg.zones), 0)
        for st in self.pipeline.presence.states.values():
            if st.zone in zones:
                zones[st.zone] += 1
        return {
            "gateway": self.cfg.gateway.id,
            "version": __version__,
            "health": self.health(mark=False).model_dump(mode="json"),
            "zones": zones,
        }

    async def _health_loop(self) -> None:
        interval = self.cfg.health.interval_s
        while True:
            await asyncio.sleep(interval)
            health = self.health()
            payload = health.model_dump_json().encode()
            self.publisher.publish_control(topics.HEALTH, payload, qos=0, retain=False)
            self._write_metrics(health)

    def _write_metrics(self, health: HealthPayload) -> None:
        """The health counters as a node-exporter textfile, when configured."""
        path = self.cfg.health.prometheus_textfile
        if path is None:
            return
        try:
            write_textfile(path, prometheus_text(health, self.cfg.gateway.id))
        except OSError as err:
            _LOGGER.warning("prometheus textfile %s: cannot write: %s", path, err)

    async def _process(self) -> None:
        """Source batches → ticks of source time → pipeline → outbox (one transaction per
        tick), until the source ends or the agent is stopped."""
        ticker = self._ticker
        watchdog_at = 0.0
        every = watchdog_interval(WATCHDOG_EVERY_S)
        ready = False
        maintain_at = time.monotonic() + MAINTAIN_EVERY_S
        async with self.feed as feed:  # from here on, SIGTERM and SIGINT stop it cleanly
            await asyncio.get_running_loop().run_in_executor(None, kernels.warm_up)
            loop = asyncio.get_running_loop()
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
                loop.add_signal_handler(signal.SIGHUP, self._sighup)
            tick_s = self.cfg.pipeline.tick_s

            def rest_of_tick() -> float:  # the radio: one wake-up a tick, at its end
                end = ticker.tick_end
                return 0.0 if end is None else min(end - self.source.now(), tick_s)

            gather = rest_of_tick if self.source.live else None
            async for batch in feed.batches(min(tick_s, 0.05), gather):
                mono = self._turned = time.monotonic()
                if batch:
                    self._heard_at = mono
                if ready and mono >= watchdog_at:  # the pipeline is alive: tell systemd, and how
                    sd_notify(f"WATCHDOG=1\nSTATUS={self.status_line()}")
                    watchdog_at = mono + every
                if mono >= maintain_at:
                    self._maintain(mono)
                    maintain_at = mono + MAINTAIN_EVERY_S
                for advert in batch:
                    ticker.add(advert, advert.t)
                now = self.source.now()
                if math.isfinite(now):
                    ticker.close(now)
                if not ready:  # the pipeline has run: systemd may start what depends on us
                    ready = self.ready = True
                    sd_notify(f"READY=1\nSTATUS={self.status_line()}")
                    watchdog_at = mono + every
                await asyncio.sleep(0)
        ticker.flush(self.source.now())
        self.outbox.append((), self.pipeline.snapshot())  # the counts of the interval so far
        self._write_metrics(self.health(mark=False))

    def _sighup(self) -> None:
        """systemd's ``ExecReload`` (``kill -HUP``): reload, telling systemd while it does."""
        sd_notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
        self.ops.request_reload()

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

    def _run_tick(self, batch: list[Advert], now: float) -> None:
        wall = self.source.wall_at(now)
        share = self.share
        if share is not None:
            share.before_tick(now, wall)
        pipeline = self.pipeline
        events = pipeline.process(batch, now, wall)
        if share is not None:
            share.after_tick(now, wall)
        # the pipeline's state goes with the events of its tick (a moment that started is
        # under way in the same transaction), and otherwise every STATE_EVERY_S at most
        state = None
        if pipeline.state_dirty and (events or now >= self._state_at):
            state = pipeline.snapshot()
            self._state_at = now + STATE_EVERY_S
        if events or state is not None:
            self.outbox.append(events, state)
        if events:
            self.publisher.wake()
            if self.discovery is not None:
                self.discovery.observe(events)
        if self.on_tick is not None:
            self.on_tick(self, events)
