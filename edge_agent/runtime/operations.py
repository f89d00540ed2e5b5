"""What each remote command does to the running agent, hot reload (SIGHUP and ``reload``),
and ``set-config``'s probation with its rollback.

``set-config`` takes ``{"set": {dotted key: value}, "unset": [dotted key]}`` — the same dotted
keys as ``agent.toml`` (``presence.update_interval_s``; an array entry by its id:
``receivers.r1.rssi_offset_db``) — validates the result as ``check-config`` would, refuses what a
running agent cannot take up, writes the overlay (``remote_config``) with the previous one kept,
applies it and answers ``applied`` with the new configuration hash. The agent must then be
healthy (``Agent.health_problem``) for ``HEALTHY_FOR_S`` before ``commands.rollback_after_s``
ends: ``confirmed``; otherwise the previous overlay comes back: ``rolled_back``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edge_agent import __version__
from edge_agent.config import AgentConfig
from edge_agent.config.checks import check
from edge_agent.errors import CommandError, ConfigError, ConsentError
from edge_agent.ids import looks_secret
from edge_agent.models import DeviceClass
from edge_agent.pipeline.tick import Pipeline
from edge_agent.runtime import remote_config
from edge_agent.runtime.commands import Command, CommandChannel, Handler, ResultState
from edge_agent.runtime.consent import add_consent, revoke_consent
from edge_agent.runtime.health import Reporter
from edge_agent.runtime.notify import sd_notify
from edge_agent.runtime.outbox import Outbox
from edge_agent.runtime.privacy import Rights
from edge_agent.runtime.publisher import Publisher
from edge_agent.runtime.remote_config import Overlay, Probation


class Runtime(Protocol):
    """What the operations need of the running agent (``runtime.agent.Agent``)."""

    cfg: AgentConfig
    config_file: Path | None
    overrides: dict[str, Any]
    reporter: Reporter
    pipeline: Pipeline
    rights: Rights
    outbox: Outbox
    publisher: Publisher
    started: float

    def status(self) -> dict[str, object]: ...
    def status_line(self) -> str: ...
    def apply(self, cfg: AgentConfig, overrides: dict[str, Any]) -> dict[str, Any]: ...
    def adverts_recently(self, within_s: float = 10.0) -> bool: ...
    def health_problem(self, adverts_before: int | None, devices_before: int) -> str | None: ...


_LOGGER = logging.getLogger(__name__)
HEALTHY_FOR_S = 3.0
"""A new configuration is confirmed once the agent has been healthy this long under it."""
CHECK_EVERY_S = 0.25
FLUSH_MAX_S = 25.0


@dataclass(slots=True)
class _Trial:
    """A ``set-config`` on probation."""

    command: Command
    probation: Probation
    hash_before: str
    adverts: int
    """Adverts processed when it was applied (they must keep coming, if they came)."""
    flowing: bool
    """Whether adverts were coming before."""
    devices: int
    """Devices tracked when it was applied."""
    healthy_since: float | None = None


class Operations:
    """The commands' handlers, and the one loop that reloads on SIGHUP and watches a probation."""

    def __init__(self, agent: Runtime) -> None:
        self.agent = agent
        self.channel: CommandChannel | None = None
        self._trial: _Trial | None = None
        self._hup = asyncio.Event()
        self._recovered: Probation | None = None

    def handlers(self) -> dict[str, Handler]:
        """Command name → handler."""
        return {
            "ping": self.ping,
            "status": self.status,
            "get-config": self.get_config,
            "set-config": self.set_config,
            "reload": self.reload_command,
            "erase": self.erase,
            "consent-add": self.consent_add,
            "consent-revoke": self.consent_revoke,
            "calibrate-offset": self.calibrate_offset,
            "flush": self.flush,
        }

    def recovered(self, probation: Probation | None) -> None:
        """A probation this start gave up (``remote_config.recover``): its request is told."""
        self._recovered = probation

    def request_reload(self) -> None:
        """SIGHUP: reload at the next turn of the loop (never inside a signal handler)."""
        self._hup.set()

    async def run(self) -> None:
        """Reload when asked; watch the probation; until cancelled."""
        if self._recovered is not None and self.channel is not None:
            self._report(self._recovered, "rolled_back", "the agent stopped before confirming")
            self._recovered = None
        while True:
            try:
                async with asyncio.timeout(CHECK_EVERY_S):
                    await self._hup.wait()
            except TimeoutError:
                pass
            if self._hup.is_set():
                self._hup.clear()
                try:
                    result = self.reload()
                    _LOGGER.info("reload: done (%s)", result)
                except CommandError as err:
                    _LOGGER.error("reload refused, the running configuration stays: %s", err)
                sd_notify(f"READY=1\nSTATUS={self.agent.status_line()}")
            if self._trial is not None:
                self._watch(self._trial)

    # ---------------------------------------------------------------- commands

    async def ping(self, _c: Command) -> dict[str, Any]:
        """Alive: who and which version."""
        return {
            "gateway": self.agent.cfg.gateway.id,
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.agent.started, 1),
        }

    async def status(self, _c: Command) -> dict[str, Any]:
        """Health and who is in each zone (counts)."""
        return self.agent.status()

    async def get_config(self, _c: Command) -> dict[str, Any]:
        """The configuration in effect, secrets hidden, with its hash and the remote overlay."""
        return {
            "config": remote_config.redacted(self.agent.cfg),
            "hash": self.agent.reporter.config_hash,
            "overrides": {
                k: ("***" if looks_secret(k) else v) for k, v in self.agent.overrides.items()
            },
        }

    async def set_config(self, c: Command) -> dict[str, Any]:
        """Validate, write, apply; probation follows (see the module)."""
        if self._trial is not None:
            raise CommandError("busy", "a set-config is on probation: wait for its outcome")
        set_ = c.args.get("set", {})
        unset = c.args.get("unset", [])
        if not isinstance(set_, dict) or not isinstance(unset, list) or not (set_ or unset):
            raise CommandError("bad_request", 'args: give "set" (an object) and/or "unset"')
        if not all(isinstance(k, str) for k in unset):
            raise CommandError("bad_request", "args.unset: dotted keys (strings)")
        remote_config.check_remote_keys([*set_, *unset])
        agent = self.agent
        overrides = remote_config.patched(agent.overrides, set_, unset)
        cfg = self._validated(overrides)
        until = time.time() + agent.cfg.commands.rollback_after_s
        corr = c.correlation.hex() if c.correlation is not None else None
        probation = Probation(dict(agent.overrides), until, c.request_id, c.reply_to, corr)
        remote_config.write_overlay(agent.cfg.gateway.state_dir, Overlay(overrides, probation))
        before = agent.reporter.config_hash
        adverts = agent.pipeline.stats.adverts
        flowing = agent.adverts_recently()
        devices = agent.pipeline.devices_tracked
        applied = agent.apply(cfg, overrides)
        self._trial = _Trial(c, probation, before, adverts, flowing, devices)
        return {
            "_state": "applied",
            "hash": agent.reporter.config_hash,
            "previous_hash": before,
            "rollback_after_s": agent.cfg.commands.rollback_after_s,
            **applied,
        }

    async def reload_command(self, _c: Command) -> dict[str, Any]:
        """Read ``agent.toml`` (and the overlay) again and take it up."""
        return self.reload()

    async def erase(self, c: Command) -> dict[str, Any]:
        """Erase one device (wire id, address or beacon id) everywhere."""
        device = _text(c.args, "device")
        return dict(self.agent.rights.erase(device))

    async def consent_add(self, c: Command) -> dict[str, Any]:
        """Record a consent (``match``: address or beacon id; ``id``; ``kind``)."""
        match, ident = _text(c.args, "match"), _text(c.args, "id")
        try:
            kind = DeviceClass(c.args.get("kind", "shopper"))
        except ValueError:
            raise CommandError("bad_request", "args.kind: not a device class") from None
        rights = self.agent.rights
        try:
            entry = add_consent(rights.consent_path, match, ident, kind)
        except ConsentError as err:
            raise CommandError("bad_request", err.reason) from None
        return {"id": entry.id, "kind": entry.kind.value, **rights.reload_consents()}

    async def consent_revoke(self, c: Command) -> dict[str, Any]:
        """Revoke a consent (``device``: its id, address or beacon id); erases the device."""
        device = _text(c.args, "device")
        rights = self.agent.rights
        try:
            gone = revoke_consent(rights.consent_path, device)
        except ConsentError as err:
            raise CommandError("bad_request", err.reason) from None
        if gone is None:
            raise CommandError("bad_request", f"no consent for {device!r}")
        return {"id": gone.id, **rights.reload_consents()}

    async def calibrate_offset(self, c: Command) -> dict[str, Any]:
        """A receiver's ``rssi_offset_db``, set as a ``set-config`` (same probation)."""
        receiver = _text(c.args, "receiver")
        offset = c.args.get("offset_db")
        if not isinstance(offset, int | float) or isinstance(offset, bool):
            raise CommandError("bad_request", "args.offset_db: a number of dB")
        cfg = self.agent.cfg
        if receiver not in {r.id for r in cfg.receivers}:
            raise CommandError("bad_request", f"no receiver {receiver!r} in the configuration")
        if receiver in cfg.calibration.by_receiver():
            raise CommandError(
                "refused", f"{receiver} has a fitted calibration: run edge-agent calibrate"
            )
        args = {"set": {f"receivers.{receiver}.rssi_offset_db": offset}}
        return await self.set_config(Command(c.name, c.request_id, args, c.reply_to, c.correlation))

    async def flush(self, c: Command) -> dict[str, Any]:
        """Publish what is buffered now; wait up to ``timeout_s`` (≤ 25) for the broker."""
        timeout = c.args.get("timeout_s", 10.0)
        if not isinstance(timeout, int | float) or not 0 < timeout <= FLUSH_MAX_S:
            raise CommandError("bad_request", f"args.timeout_s: a number in (0, {FLUSH_MAX_S:g}]")
        agent = self.agent
        before = agent.outbox.depth()
        drained = await agent.publisher.drain(float(timeout))
        return {"drained": drained, "outbox_before": before, "outbox_depth": agent.outbox.depth()}

    # ----------------------------------------------------------------- reload

    def reload(self) -> dict[str, Any]:
        """``agent.toml`` with the overlay, read again and taken up; ``CommandError`` (the
        running configuration stays) when it is invalid or needs a restart."""
        agent = self.agent
        if agent.config_file is None:
            raise CommandError("refused", "the agent was not started from a file")
        overlay = remote_config.current_overrides(agent.cfg.gateway.state_dir)
        cfg = self._validated(overlay)
        return agent.apply(cfg, overlay) | {"hash": agent.reporter.config_hash}

    def _validated(self, overrides: dict[str, Any]) -> AgentConfig:
        agent = self.agent
        assert agent.config_file is not None
        try:
            cfg = check(agent.config_file, overrides, secrets=True, remote=False).config
        except ConfigError as err:
            reasons = "; ".join(f"{i.path or 'file'}: {i.message}" for i in err.issues)
            raise CommandError("invalid_config", reasons) from None
        restart = remote_config.needs_restart(agent.cfg, cfg)
        if restart:
            raise CommandError("needs_restart", f"changes {', '.join(restart)}: restart instead")
        return cfg

    # -------------------------------------------------------------- probation

    def _watch(self, trial: _Trial) -> None:
        agent = self.agent
        problem = agent.health_problem(trial.adverts if trial.flowing else None, trial.devices)
        now = time.monotonic()
        if problem is None:
            trial.healthy_since = trial.healthy_since or now
            if now - trial.healthy_since >= HEALTHY_FOR_S:
                self._confirm(trial)
            return
        trial.healthy_since = None
        if time.time() >= trial.probation.until:
            self._roll_back(trial, problem)

    def _confirm(self, trial: _Trial) -> None:
        agent = self.agent
        self._trial = None
        remote_config.write_overlay(agent.cfg.gateway.state_dir, Overlay(dict(agent.overrides)))
        _LOGGER.info("set-config: confirmed")
        self._result(trial.command, "confirmed", {"hash": agent.reporter.config_hash})

    def _roll_back(self, trial: _Trial, problem: str) -> None:
        agent = self.agent
        self._trial = None
        previous = trial.probation.previous
        _LOGGER.warning("set-config: rolled back: %s", problem)
        remote_config.write_overlay(agent.cfg.gateway.state_dir, Overlay(previous))
        try:
            agent.apply(self._validated(previous), previous)
        except CommandError as err:  # agent.toml changed meanwhile: still the safer config
            _LOGGER.error("rollback: the previous configuration no longer loads: %s", err)
        self._result(
            trial.command, "rolled_back", {"reason": problem, "hash": agent.reporter.config_hash}
        )

    def _report(self, prob: Probation, state: ResultState, reason: str) -> None:
        corr = bytes.fromhex(prob.correlation) if prob.correlation else None
        reply_to = prob.reply_to or ""
        command = Command("set-config", prob.request, {}, reply_to, corr)
        result = {"reason": reason, "hash": self.agent.reporter.config_hash}
        self._result(command, state, result)

    def _result(self, command: Command, state: ResultState, result: dict[str, Any]) -> None:
        if self.channel is not None and command.reply_to:
            self.channel.result(command, state, result)


def _text(args: dict[str, Any], key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str) or not value or len(value) > 256:
        raise CommandError("bad_request", f"args.{key}: a non-empty string")
    return value
