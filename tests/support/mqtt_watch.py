"""A subscriber that records everything under a topic root (test helper)."""

from __future__ import annotations

import json
import ssl
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.contract_check import problem


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class Watcher:
    """Subscribes (QoS 1) before the agent starts; ``messages`` grows as they arrive."""

    def __init__(
        self,
        host: str,
        port: int,
        pattern: str,
        *,
        persistent: bool = False,
        tls: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
        contract: bool = True,
    ) -> None:
        """``persistent``: a session the broker keeps (with its own persistence, across restarts),
        so that nothing published while the watcher reconnects is missed. ``contract``: hold
        every message to the shipped producer schemas (off only where a test publishes its own
        probes)."""
        self._contract = contract
        self.messages: list[Received] = []
        self.invalid: list[str] = []
        """Messages that break the shipped producer schemas (``close`` fails on any)."""
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"watch-{time.time_ns()}",
            clean_session=not persistent,
        )
        self.client.reconnect_delay_set(1, 2)
        if tls is not None:
            self.client.tls_set_context(tls)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = lambda c, *_: c.subscribe(pattern, qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port, 30)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise TimeoutError("subscription not acknowledged")

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        wrong = problem(msg.topic, bytes(msg.payload)) if self._contract else None
        with self._lock:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain)))
            if wrong is not None:
                self.invalid.append(wrong)

    def settle(self, quiet_s: float = 1.0, timeout: float = 30.0) -> list[Received]:
        """Wait until nothing new arrived for ``quiet_s``; return a copy of what arrived."""
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            with self._lock:
                n = len(self.messages)
            if n == last:
                break
            last = n
            time.sleep(quiet_s)
        with self._lock:
            return list(self.messages)

    def payloads(self) -> list[dict[str, object]]:
        """Every payload so far, decoded."""
        with self._lock:
            return [json.loads(m.payload) for m in self.messages]

    def close(self) -> None:
        """Stop; every message received must have held to the contract."""
        self.client.loop_stop()
        self.client.disconnect()
        assert not self.invalid, f"messages that break the contract: {self.invalid[:5]}"
