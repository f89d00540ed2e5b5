"""paho-mqtt 2.x on the asyncio loop: QoS 1 from the outbox with a bounded in-flight window.

A fresh paho client per connection: paho re-sends its own unacknowledged messages on reconnect
(paho issue #698), and the outbox re-sends every unacknowledged row on a new connection, so reusing
the client would publish those rows twice. Rows are deleted only on PUBACK, so at most one window
(``mqtt.inflight``) is sent twice after a connection is lost.

A silent broker (a partition, PUBACKs lost) is noticed when nothing at all has come in for
``1.5 × keepalive``: paho sends PINGREQ once a keepalive passes without traffic, so a live broker
always answers well within that time. Reconnects back off exponentially with full jitter and try
the next broker URL after a failed attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent import topics
from edge_agent.config import AgentConfig
from edge_agent.config.sections import broker_address
from edge_agent.contract import StatusState
from edge_agent.errors import PublishError
from edge_agent.runtime.outbox import Outbox
from edge_agent.runtime.outbox_schema import OutboxRow
from edge_agent.runtime.secrets import mqtt_password
from edge_agent.runtime.tls import client_context, explain

_LOGGER = logging.getLogger(__name__)
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 10.0
SILENCE_KEEPALIVES = 1.5
"""A connection with nothing received for this many keepalives is dead."""


def backoff_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before reconnect ``attempt`` (1, 2, …): exponential, jittered, capped.

    The delay is uniform in ``[d/2, d]`` with ``d = min(BACKOFF_MAX_S, BACKOFF_MIN_S · 2^attempt)``,
    so a fleet of gateways that lost the same broker does not come back in step.
    """
    d = min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** min(max(attempt, 0), 16))
    return (rng or random).uniform(d / 2, d)


@dataclass(slots=True, frozen=True)
class Inbound:
    """A message received on a subscription."""

    topic: str
    """Its topic."""
    payload: bytes
    """Its payload (the handler bounds what it reads)."""
    response_topic: str | None = None
    """MQTT 5 response topic, when the sender gave one."""
    correlation: bytes | None = None
    """MQTT 5 correlation data, when the sender gave it."""


@dataclass(slots=True)
class PublisherStats:
    """Counters of the publisher (reported in ``health``)."""

    published: int = 0
    """Rows acknowledged by the broker and deleted."""
    rejected: int = 0
    """Rows the broker refused with a failure reason code (deleted, logged)."""
    connects: int = 0
    """Successful connections."""
    reconnects: int = 0
    """Connections after the first."""
    control_sent: int = 0
    """``status`` and ``health`` messages sent."""
    connect_failures: int = 0
    """Connection attempts that failed (refused, unreachable, no CONNACK)."""
    silent_drops: int = 0
    """Connections given up because nothing came in for ``1.5 × keepalive``."""
    resent: int = 0
    """Rows in flight when a connection was lost: sent again, so possibly duplicated."""


def _forget(loop: asyncio.AbstractEventLoop, sock: Any, *, close: bool = False) -> None:
    """Stop watching a paho socket (it may be closed already); close it if asked."""
    if sock is None:
        return
    with contextlib.suppress(ValueError, OSError):
        loop.remove_reader(sock)
        loop.remove_writer(sock)
    if close:
        with contextlib.suppress(OSError):
            sock.close()


ACK_EVERY_S = 0.2
"""Acknowledged rows are deleted in one transaction at most this often (sooner when the
in-flight window needs their room): one small transaction per acknowledgement cost more CPU
than everything else the publisher does for that message."""


class Publisher:
    """Sends outbox rows to the broker; owns the connection and its reconnect loop."""

    def __init__(
        self,
        cfg: AgentConfig,
        outbox: Outbox,
        status: Callable[[StatusState], bytes],
        *,
        ephemeral: bool = False,
    ) -> None:
        self.cfg = cfg
        self.ephemeral = ephemeral
        """A gateway for a while only (the demo, a published replay): on a clean close its
        retained ``status`` is cleared rather than left saying ``offline`` for ever."""
        self.outbox = outbox
        self._status = status
        self.stats = PublisherStats()
        self._wake = asyncio.Event()
        self._connected = asyncio.Event()
        self._client: mqtt.Client | None = None
        self._inflight: dict[int, int] = {}
        self._acked: list[int] = []
        self._rejected: list[int] = []
        self._last_sent = 0
        self._closing = False
        self._lost = asyncio.Event()
        self._last_in = 0.0
        self.broker: str | None = None
        self._subscriptions: dict[str, Callable[[Inbound], None]] = {}
        self._on_connect: list[Callable[[], None]] = []
        self._tls = client_context(cfg.mqtt.tls) if cfg.mqtt.uses_tls else None
        self._mutual = cfg.mqtt.tls.cert_file is not None
        self._restart = False
        self._restarted = asyncio.Event()

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ public

    @property
    def connected(self) -> bool:
        """True while a session with the broker is up."""
        return self._connected.is_set()

    @property
    def inflight(self) -> int:
        """Publishes awaiting their PUBACK."""
        return len(self._inflight)

    def wake(self) -> None:
        """New rows were committed."""
        self._wake.set()

    async def run(self) -> None:
        """Connect, publish, reconnect with jittered exponential backoff, forever."""
        attempt = 0
        index = 0
        while not self._closing:
            if self._restart:  # new broker settings: start from their first URL
                self._restart = False
                self._restarted.clear()
                attempt = index = 0
            urls = self.cfg.mqtt.urls
            url = urls[index % len(urls)]
            connects = self.stats.connects
            try:
                await self._session(url)
            except PublishError as err:
                _LOGGER.warning("%s", err)
            if self._closing:
                return
            if self._restart:
                continue
            if self.stats.connects > connects:
                attempt = 0  # it was up: come back to the same broker first
            else:
                self.stats.connect_failures += 1
                index += 1  # failover: the next URL
            attempt += 1
            with contextlib.suppress(TimeoutError):  # new broker settings cut the wait short
                async with asyncio.timeout(backoff_delay(attempt)):
                    await self._restarted.wait()

    async def drain(self, timeout: float) -> bool:
        """Wait until every committed row is acknowledged; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._connected.is_set() and not self._inflight and self.outbox.depth() == 0:
                return True
            self._wake.set()
            await asyncio.sleep(0.05)
        return False

    async def wait_connected(self, timeout: float) -> bool:
        """Wait for a session with the broker; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Publish ``offline`` (retained; ``ephemeral``: clear it) and disconnect cleanly."""
        self._closing = True
        client = self._client
        if client is None or not self._connected.is_set():
            return
        last = b"" if self.ephemeral else self._status("offline")
        info = client.publish(self._status_topic, last, qos=1, retain=True)
        try:
            async with asyncio.timeout(2.0):
                while not info.is_published() and self._connected.is_set():  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        except TimeoutError:
            _LOGGER.warning("broker %s: offline status not acknowledged", self.broker)
        client.disconnect()
        try:  # let paho write DISCONNECT, so the broker does not fire the last will
            async with asyncio.timeout(2.0):
                await self._lost.wait()
        except TimeoutError:
            _LOGGER.warning("broker %s: clean disconnect not completed", self.broker)
        self._wake.set()

    def publish_control(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        """Send a control-plane message directly (not queued); False when offline."""
        if self.publish_direct(topics.full(self.cfg.topic_root, topic), payload, qos, retain):
            self.stats.control_sent += 1
            return True
        return False

    def publish_direct(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        """Send a message to an absolute topic now, outside the outbox; False when offline
        or paho refused it."""
        client = self._client
        if client is None or not self._connected.is_set():
            return False
        info = client.publish(topic, payload, qos=qos, retain=retain)
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def publish_reply(self, topic: str, payload: bytes, correlation: bytes | None = None) -> bool:
        """Send a reply (QoS 1, not retained) to an absolute topic now, with MQTT 5 correlation
        data when given (and the connection is MQTT 5); False when offline."""
        client = self._client
        if client is None or not self._connected.is_set():
            return False
        props = None
        if correlation is not None and self.cfg.mqtt.protocol == "5":
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.CorrelationData = correlation
        info = client.publish(topic, payload, qos=1, retain=False, properties=props)
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def on_connect(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the event loop each time a session begins (it must not block)."""
        self._on_connect.append(callback)

    def reconfigure(self, cfg: AgentConfig) -> bool:
        """Take up a new configuration (a reload). When the broker settings changed, the
        current session ends cleanly (``offline`` said to the broker it leaves) and the next
        one uses them. True when it reconnects."""
        old, self.cfg = self.cfg.mqtt, cfg
        if cfg.mqtt == old:
            return False
        self._tls = client_context(cfg.mqtt.tls) if cfg.mqtt.uses_tls else None
        self._mutual = cfg.mqtt.tls.cert_file is not None
        self._restart = True
        self._restarted.set()
        client = self._client
        if client is not None and self._connected.is_set():
            client.publish(self._status_topic, self._status("offline"), qos=1, retain=True)
            client.disconnect()
            self._connected.clear()  # what is sent from here on waits for the next session
        self._wake.set()
        return True

    def subscribe(self, topic_filter: str, handler: Callable[[Inbound], None]) -> None:
        """Receive messages on ``topic_filter`` (QoS 0) on every connection from now on;
        ``handler`` runs on the event loop and must only queue."""
        self._subscriptions[topic_filter] = handler
        client = self._client
        if client is not None and self._connected.is_set():
            client.subscribe(topic_filter, qos=0)

    # ----------------------------------------------------------------- session

    @property
    def _status_topic(self) -> str:
        return topics.full(self.cfg.topic_root, topics.STATUS)

    def _new_client(self) -> mqtt.Client:
        m = self.cfg.mqtt
        v5 = m.protocol == "5"
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.cfg.client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else True,
        )
        client.max_inflight_messages_set(m.inflight)
        client.max_queued_messages_set(m.inflight)  # the outbox is the queue
        client.connect_timeout = m.connect_timeout_s
        client.will_set(self._status_topic, self._status("offline"), qos=1, retain=True)
        if m.username:
            client.username_pw_set(m.username, mqtt_password(m))
        return client

    async def _session(self, url: str) -> None:
        """One connection: connect, publish until it is lost (or we close), clean up."""
        link = await self._connect(url)
        self._up(link)
        misc = asyncio.create_task(self._misc_loop(link.client, link.lost))
        try:
            await self._pump(link.client, link.lost)
        finally:
            misc.cancel()
            self._down(link)
        if not self._closing:
            raise PublishError(self.broker or url, "connection lost")

    async def _connect(self, url: str) -> _Link:
        """A fresh client connected to ``url`` and its CONNACK accepted, or ``PublishError``."""
        loop = asyncio.get_running_loop()
        host, port, tls = broker_address(url)
        self.broker = f"{host}:{port}"
        client = self._new_client()
        if tls:
            assert self._tls is not None
            client.tls_set_context(self._tls)
        self._inflight.clear()
        self._acked.clear()
        self._last_sent = 0
        link = _Link(self, client, loop, tls)
        self._lost = link.lost
        timeout = self.cfg.mqtt.connect_timeout_s
        try:
            async with asyncio.timeout(timeout):
                await loop.run_in_executor(
                    None, lambda: client.connect(host, port, self.cfg.mqtt.keepalive_s)
                )
                rc = await link.connack
        except (OSError, PublishError) as err:  # TimeoutError and ssl.SSLError are OSErrors
            if isinstance(err, TimeoutError):
                client.disconnect()
            _forget(loop, client.socket(), close=True)
            if isinstance(err, PublishError):
                raise
            raise self._connect_error(err, timeout) from err
        if rc.is_failure:
            client.disconnect()
            hint = ""
            if rc.value in (0x86, 0x87, 4, 5):  # bad user name or password / not authorized
                hint = "; check mqtt.username and the password (file, credential or variable)"
            raise PublishError(self.broker, f"connection refused: {rc}{hint}")
        return link

    def _up(self, link: _Link) -> None:
        """A session began: count it, say ``online`` (retained)."""
        self._client = link.client
        self._last_in = time.monotonic()
        self._connected.set()
        self.stats.connects += 1
        if self.stats.connects > 1:
            self.stats.reconnects += 1
        _LOGGER.info("broker %s: connected", self.broker)
        link.client.publish(self._status_topic, self._status("online"), qos=1, retain=True)
        for topic_filter in self._subscriptions:
            link.client.subscribe(topic_filter, qos=0)
        for callback in self._on_connect:
            callback()

    def _down(self, link: _Link) -> None:
        """A session ended: keep the acks that came, count what was in flight as resent."""
        self._connected.clear()
        self._flush_acks()
        self.stats.resent += len(self._inflight)
        self._inflight.clear()
        _forget(link.loop, link.client.socket())
        if not link.lost.is_set():
            link.client.disconnect()

    def _connect_error(self, err: OSError, timeout: float) -> PublishError:
        """A failed connection attempt in words that say what to check."""
        broker = self.broker or "?"
        if isinstance(err, TimeoutError):
            return PublishError(broker, f"no CONNACK within {timeout:g} s")
        if isinstance(err, ssl.SSLError):
            return PublishError(broker, explain(err, self._mutual))
        return PublishError(broker, f"cannot connect: {err}")

    async def _misc_loop(self, client: mqtt.Client, lost: asyncio.Event) -> None:
        """paho's keepalive (PINGREQ) and our own check that the broker still talks to us."""
        keepalive = self.cfg.mqtt.keepalive_s
        every = min(0.5, keepalive / 10)
        limit = SILENCE_KEEPALIVES * keepalive - every  # so that it is noticed within 1.5 ×
        while not lost.is_set():
            ok = client.loop_misc() == MQTTErrorCode.MQTT_ERR_SUCCESS
            silent = time.monotonic() - self._last_in
            if not ok:  # paho gave up on the connection (its own keepalive, or closed)
                if silent >= keepalive:
                    self.stats.silent_drops += 1
                lost.set()
                self._wake.set()
                return
            if silent > limit:
                self.stats.silent_drops += 1
                _LOGGER.warning(
                    "broker %s: nothing received for %.1f s (keepalive %s s); reconnecting",
                    self.broker,
                    silent,
                    keepalive,
                )
                lost.set()
                self._wake.set()
                _forget(asyncio.get_running_loop(), client.socket(), close=True)
                return
            await asyncio.sleep(every)

    def _flush_acks(self) -> None:
        if self._acked:
            acked, self._acked = self._acked, []
            self.outbox.ack(acked)
            self.stats.published += len(acked)
        if self._rejected:
            rejected, self._rejected = self._rejected, []
            _LOGGER.warning("broker %s: refused %s message(s)", self.broker, len(rejected))
            self.outbox.ack(rejected)
            self.stats.rejected += len(rejected)

    async def _pump(self, client: mqtt.Client, lost: asyncio.Event) -> None:
        """Outbox rows, in ``seq`` order, into a window of ``inflight`` unacknowledged publishes."""
        window = self.cfg.mqtt.inflight
        chunk = max(4 * window, 512)
        queue: deque[OutboxRow] = deque()
        inflight = self._inflight
        generation = self.outbox.generation
        ack_due = time.monotonic() + ACK_EVERY_S
        try:
            while not lost.is_set() and not self._closing:
                self._wake.clear()
                if self.outbox.generation != generation:  # rows were erased: read them again
                    generation = self.outbox.generation
                    queue.clear()
                # Acknowledged rows are deleted in one transaction every ACK_EVERY_S, or at once
                # when the window needs their room: at most ``window`` rows are ever sent and not
                # yet deleted, so at most that many can be sent a second time after a crash or a
                # lost connection. (Holding acks back stalls no window: their room is freed the
                # moment it is wanted.)
                acked = len(self._acked) + len(self._rejected)
                if acked and (acked + len(inflight) >= window or time.monotonic() >= ack_due):
                    self._flush_acks()
                    ack_due, acked = time.monotonic() + ACK_EVERY_S, 0
                room = window - len(inflight) - acked
                while room > 0:
                    if not queue:
                        queue.extend(self.outbox.pending(self._last_sent, chunk))
                        if not queue:
                            break
                    row = queue[0]
                    info = client.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
                    if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                        # Not sent (queue full or connection gone): retried on the next pass.
                        _LOGGER.debug("broker %s: publish rc %s", self.broker, info.rc)
                        break
                    queue.popleft()
                    if row.qos == 0:
                        self._acked.append(row.seq)
                    else:
                        inflight[info.mid] = row.seq
                    self._last_sent = row.seq
                    room -= 1
                held = self._acked or self._rejected
                wait = max(0.0, ack_due - time.monotonic()) if held else 1.0
                try:
                    async with asyncio.timeout(min(wait, 1.0)):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            self._flush_acks()  # what the broker acknowledged goes, however the session ends


class _Link:
    """One connection's paho callbacks, brought onto the asyncio loop: paho's socket is watched
    by the loop (``loop_read``/``loop_write``), never by a thread of paho's."""

    def __init__(
        self, publisher: Publisher, client: mqtt.Client, loop: asyncio.AbstractEventLoop, tls: bool
    ) -> None:
        self.publisher = publisher
        self.client = client
        self.loop = loop
        self.tls = tls
        self.connack: asyncio.Future[ReasonCode] = loop.create_future()
        self.errors: list[str] = []
        self.lost = asyncio.Event()
        self._thread = threading.get_ident()
        client.on_connect = self.on_connect
        client.on_disconnect = self.on_disconnect
        client.on_log = self.on_log
        client.on_publish = self.on_publish
        client.on_message = self.on_message
        client.on_socket_open = self.on_socket_open
        client.on_socket_close = self.on_socket_close
        client.on_socket_register_write = self.on_register_write
        client.on_socket_unregister_write = self.on_unregister_write

    def on_connect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if not self.connack.done():
            self.connack.set_result(rc)

    def on_log(self, _c: Any, _u: Any, level: int, buf: str) -> None:
        if level == mqtt.MQTT_LOG_ERR:
            self.errors.append(buf)

    def on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        p = self.publisher
        if not self.connack.done():  # closed before CONNACK: say why (a TLS alert, usually)
            why = self.errors[-1] if self.errors else f"closed before CONNACK ({rc})"
            reason = explain(why, p._mutual) if self.tls else why
            self.connack.set_exception(PublishError(p.broker or "?", reason))
        self.lost.set()
        p._connected.clear()
        p._wake.set()

    def on_publish(self, _c: Any, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        p = self.publisher
        seq = p._inflight.pop(mid, None)
        if seq is None:
            return
        (p._rejected if rc.is_failure else p._acked).append(seq)
        p._wake.set()

    def on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        subs = self.publisher._subscriptions
        props = getattr(message, "properties", None)
        response = getattr(props, "ResponseTopic", None)
        correlation = getattr(props, "CorrelationData", None)
        inbound = Inbound(
            message.topic,
            bytes(message.payload),
            response if isinstance(response, str) and response else None,
            bytes(correlation) if isinstance(correlation, bytes | bytearray) else None,
        )
        for topic_filter, handler in subs.items():
            if mqtt.topic_matches_sub(topic_filter, message.topic):
                handler(inbound)

    def _soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """On the loop's thread (every publish): at once. paho may also call back from the
        connecting thread, or from ``__del__`` after the loop ended."""
        if threading.get_ident() == self._thread:
            _quietly(fn, *args)
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(_quietly, fn, *args)

    def on_readable(self) -> None:
        self.publisher._last_in = time.monotonic()
        self.client.loop_read()

    def on_socket_open(self, _c: mqtt.Client, _u: Any, sock: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._soon(self.loop.add_reader, sock, self.on_readable)

    def on_socket_close(self, _c: mqtt.Client, _u: Any, sock: Any) -> None:
        self._soon(self.loop.remove_reader, sock)
        self._soon(self.loop.remove_writer, sock)

    def on_register_write(self, c: mqtt.Client, _u: Any, sock: Any) -> None:
        self._soon(self.loop.add_writer, sock, c.loop_write)

    def on_unregister_write(self, _c: mqtt.Client, _u: Any, sock: Any) -> None:
        self._soon(self.loop.remove_writer, sock)


def _quietly(fn: Callable[..., Any], *args: Any) -> None:
    with contextlib.suppress(ValueError, OSError):  # the socket may be closed already
        fn(*args)
