"""The MQTT command channel: ``{root}/cmd/{name}`` in, ``{root}/cmd/{name}/result`` out.

paho's callback only queues (bounded; what does not fit is dropped and counted). One task
takes each request in turn: it must be a JSON object ``{"id": …, "args": {…}}`` no larger than
``commands.max_payload_bytes``; an id seen among the last ``commands.replay_window`` is refused
as replayed. Every request that is read gets exactly one result (``set-config`` a second one
when its probation ends); an unknown command or a bad payload gets an error result, never an
exception. Results go to the request's MQTT 5 response topic with its correlation data when it
gave them, else to ``cmd/{name}/result``; while the broker is away they wait (a few) for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from edge_agent import topics
from edge_agent.config.remote import CommandsConfig
from edge_agent.contract import (
    COMMANDS,
    CommandFailure,
    CommandRequest,
    CommandResultPayload,
    rfc3339,
)
from edge_agent.errors import CommandError
from edge_agent.runtime.publisher import Inbound, Publisher

_LOGGER = logging.getLogger(__name__)
TIMEOUT_S = 30.0
"""A command that takes longer gets a ``timeout`` error (what it did stays done)."""
RETRY_S = 0.05
UNSENT = 64
"""Results kept for the broker's return; older ones are dropped (counted)."""
ResultState = Literal["done", "applied", "confirmed", "rolled_back", "error"]


@dataclass(slots=True, frozen=True)
class Command:
    """One request, read and checked."""

    name: str
    """The command (the topic's last segment)."""
    request_id: str | None
    """Its id (``None`` only when the payload could not be read)."""
    args: dict[str, Any]
    """Its arguments."""
    reply_to: str
    """The absolute topic its results go to."""
    correlation: bytes | None
    """MQTT 5 correlation data to send back."""


@dataclass(slots=True)
class CommandStats:
    """Counters of the command channel (``health.commands``)."""

    received: int = 0
    """Requests that arrived on the gateway's command topics."""
    ok: int = 0
    """Carried out."""
    failed: int = 0
    """Answered with an error (bad, unknown, replayed, refused or failed)."""
    dropped: int = 0
    """Not read: the queue was full."""
    results_unsent: int = 0
    """Results dropped because the broker stayed away."""
    rolled_back: int = 0
    """``set-config`` changes rolled back (the agent was not healthy in time)."""


Handler = Callable[[Command], Awaitable[dict[str, Any]]]
"""Carries out one command: its result, or ``CommandError``."""


class CommandChannel:
    """Receives commands, hands each to its handler, publishes the results."""

    def __init__(
        self,
        cfg: CommandsConfig,
        topic_root: str,
        publisher: Publisher,
        handlers: dict[str, Handler],
        next_id: Callable[[str], str],
        last_seq: Callable[[], int],
    ) -> None:
        self.cfg = cfg
        self.root = topic_root
        self.publisher = publisher
        self.handlers = handlers
        self.stats = CommandStats()
        self._next_id = next_id
        self._last_seq = last_seq
        self._queue: asyncio.Queue[Inbound] = asyncio.Queue(cfg.queue_size)
        self._seen: OrderedDict[str | None, None] = OrderedDict()
        self._unsent: deque[tuple[str, bytes, bytes | None]] = deque()
        publisher.subscribe(topics.full(topic_root, topics.COMMANDS), self.on_message)
        publisher.on_connect(self._flush_unsent)

    # ---------------------------------------------------------------- inbound

    def on_message(self, message: Inbound) -> None:
        """paho's callback: queue a request on one of our command topics."""
        if topics.command_name(self.root, message.topic) is None:
            return
        self.stats.received += 1
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.stats.dropped += 1

    async def run(self) -> None:
        """Carry out the queued commands one at a time, until cancelled. Results not yet sent
        (the broker away, or paho's window full in a flood) go first: while they wait, so do
        the commands, and a flood fills the queue and is dropped there."""
        while True:
            self._flush_unsent()
            if self._unsent:
                await asyncio.sleep(RETRY_S)
                continue
            try:
                async with asyncio.timeout(RETRY_S * 10):
                    message = await self._queue.get()
            except TimeoutError:
                continue
            await self.handle(message)

    async def handle(self, message: Inbound) -> None:
        """One request from the wire to its result."""
        name = topics.command_name(self.root, message.topic) or "?"
        reply_to = self._reply_topic(name, message.response_topic)
        bare = Command(name, None, {}, reply_to, message.correlation)
        try:
            command = self._read(name, message, reply_to)
        except CommandError as err:
            self.result(bare, "error", error=err)
            return
        handler = self.handlers.get(name)
        try:
            self._first_time(command)
            if handler is None:
                known = ", ".join(COMMANDS)
                raise CommandError("unknown_command", f"{name!r} is not a command ({known})")
            async with asyncio.timeout(TIMEOUT_S):
                result = await handler(command)
        except TimeoutError:
            self.result(command, "error", error=CommandError("timeout", f"over {TIMEOUT_S:g} s"))
        except CommandError as err:
            self.result(command, "error", error=err)
        except Exception as err:  # a command must never take the agent down
            _LOGGER.exception("command %s failed", name)
            self.result(command, "error", error=CommandError("failed", type(err).__name__))
        else:
            state = result.pop("_state", "done")
            self.result(command, state, result)

    def _reply_topic(self, name: str, response_topic: str | None) -> str:
        if response_topic and not any(c in response_topic for c in "+#\0"):
            return response_topic
        segment = name if name != "?" and "/" not in name else "unknown"
        return topics.full(self.root, topics.command_result(segment))

    def _read(self, name: str, message: Inbound, reply_to: str) -> Command:
        if len(message.payload) > self.cfg.max_payload_bytes:
            raise CommandError("too_large", f"over {self.cfg.max_payload_bytes} bytes")
        try:
            request = CommandRequest.model_validate_json(message.payload)
        except ValidationError as err:
            first = err.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "payload"
            raise CommandError("bad_request", f"{where}: {first['msg']}") from None
        return Command(name, request.id, dict(request.args), reply_to, message.correlation)

    def _first_time(self, command: Command) -> None:
        """``replayed`` when the request id was seen among the last ``replay_window``."""
        rid = command.request_id
        if rid in self._seen:
            raise CommandError("replayed", f"request id {rid!r} was seen already")
        self._seen[rid] = None
        while len(self._seen) > self.cfg.replay_window:
            self._seen.popitem(last=False)

    # --------------------------------------------------------------- outbound

    def result(
        self,
        command: Command,
        state: ResultState,
        result: dict[str, Any] | None = None,
        *,
        error: CommandError | None = None,
    ) -> None:
        """Publish one result of ``command`` (now, or when the broker is back)."""
        ok = error is None
        if state == "rolled_back":
            self.stats.rolled_back += 1
        if state in ("done", "applied"):
            self.stats.ok += 1
        elif state == "error":
            self.stats.failed += 1
        payload = CommandResultPayload(
            v=1,
            id=self._next_id("cmd"),
            seq=self._last_seq(),
            ts=rfc3339(time.time()),
            type="command_result",
            command=command.name,
            request_id=command.request_id,
            ok=ok,
            state=state,
            result=_jsonable(result) if ok else None,
            error=CommandFailure.model_validate({"code": error.code, "message": error.reason})
            if error is not None
            else None,
        )
        body = payload.model_dump_json().encode()
        if not self.publisher.publish_reply(command.reply_to, body, command.correlation):
            if len(self._unsent) >= UNSENT:
                self._unsent.popleft()
                self.stats.results_unsent += 1
            self._unsent.append((command.reply_to, body, command.correlation))

    def _flush_unsent(self) -> None:
        while self._unsent:
            topic, body, correlation = self._unsent[0]
            if not self.publisher.publish_reply(topic, body, correlation):
                return
            self._unsent.popleft()


def _jsonable(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """A result as plain JSON values (what a handler returns is its own business)."""
    if result is None:
        return None
    out: dict[str, Any] = json.loads(json.dumps(result, default=str))
    return out
