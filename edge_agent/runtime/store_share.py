"""Sharing with the store's other gateways (``pipeline.summaries``): this gateway's signal
summaries out (QoS 0, ``{prefix}/{site}/rssi/{gateway}``), theirs in.

Received summaries only wait in a bounded queue until the next tick (drops counted); each is
decoded and fused there. Nothing is stored: a summary is worth something for a second.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from edge_agent import topics
from edge_agent.config import AgentConfig
from edge_agent.contract import decode_summary
from edge_agent.pipeline import summaries
from edge_agent.pipeline.tick import Pipeline
from edge_agent.runtime.publisher import Inbound, Publisher

_LOGGER = logging.getLogger(__name__)
INBOX = 256
"""Summaries waiting for the next tick, at most (the rest are dropped and counted)."""


@dataclass(slots=True)
class ShareStats:
    """Counters of the sharing (``health.store``)."""

    sent: int = 0
    """Summaries published."""
    send_failed: int = 0
    """Summaries not published (broker unreachable): that moment is lost, nothing waits."""
    received: int = 0
    """Summaries received from the store's other gateways."""
    dropped: int = 0
    """Received summaries dropped because the queue was full."""
    invalid: int = 0
    """Received messages that were not summaries (too large, malformed)."""
    samples_fused: int = 0
    """Samples of other gateways' receivers received for fusion."""


class StoreShare:
    """Publishes this gateway's summaries and queues the others'."""

    def __init__(self, cfg: AgentConfig, pipeline: Pipeline, publisher: Publisher) -> None:
        self.cfg = cfg
        self.pipeline = pipeline
        self.publisher = publisher
        self.stats = ShareStats()
        self._inbox: deque[bytes] = deque()
        m, g = cfg.mqtt, cfg.gateway
        self.topic = topics.rssi_summary(m.prefix, g.site, g.id)
        publisher.subscribe(topics.rssi_summaries(m.prefix, g.site), self.on_message)

    def on_message(self, message: Inbound) -> None:
        """paho's callback: queue another gateway's summary (never our own)."""
        if topics.summary_sender(message.topic) in (None, self.cfg.gateway.id):
            return
        if len(self._inbox) >= INBOX:
            self.stats.dropped += 1
            return
        self._inbox.append(message.payload)

    def before_tick(self, now: float, wall: float) -> None:
        """Fuse every summary received since the previous tick."""
        while self._inbox:
            summary = decode_summary(self._inbox.popleft())
            if summary is None:
                self.stats.invalid += 1
                continue
            self.stats.received += 1
            feed = self.pipeline.feed
            if feed is not None:
                self.stats.samples_fused += feed.remote(summary, now, wall)

    def after_tick(self, now: float, wall: float) -> None:
        """Publish this gateway's summary when one is due."""
        feed = self.pipeline.feed
        step, devices = feed.outgoing() if feed is not None else (0, [])
        if not devices:
            return
        payload = summaries.encode(self.cfg.gateway.id, wall, step, devices)
        if self.publisher.publish_direct(self.topic, payload, qos=0, retain=False):
            self.stats.sent += 1
        else:
            self.stats.send_failed += 1
