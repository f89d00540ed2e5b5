"""The control-plane payloads: ``status`` (retained, with the last will) and ``health`` (the
counters of every part), assembled from the parts that keep them."""

from __future__ import annotations

import resource
import time
from dataclasses import asdict, dataclass

from edge_agent import __version__
from edge_agent.contract import (
    CommandHealth,
    HealthPayload,
    OutboxHealth,
    OutboxIncident,
    PrivacyHealth,
    PublisherHealth,
    StatusPayload,
    StatusState,
    StoreHealth,
    rfc3339,
)
from edge_agent.pipeline.tick import Pipeline
from edge_agent.runtime.commands import CommandStats
from edge_agent.runtime.outbox import Outbox
from edge_agent.runtime.publisher import Publisher
from edge_agent.runtime.sources import AdvertSink, AdvertSource
from edge_agent.runtime.store_share import ShareStats


@dataclass(slots=True)
class PrivacyCounters:
    """What the agent itself counts for ``health.privacy``."""

    consents: int = 0
    """Devices on the consent list."""
    erasures: int = 0
    """Erase and revoke requests carried out."""


class Reporter:
    """Makes ``status`` and ``health`` payloads; ids ``<gateway>:<type>:<start ms>-<n>`` are
    unique even when the wall clock steps back."""

    def __init__(self, gateway: str, config_hash: str = "") -> None:
        self.gateway = gateway
        self.started_wall = time.time()
        self._started = time.monotonic()
        self.config_hash = config_hash
        """``status.config_hash``: of the configuration in effect (a reload changes it)."""
        self._n = 0
        self._rate_mark = (self._started, 0, 0)

    def next_id(self, kind: str) -> str:
        """A new control-plane message id ``<gateway>:<kind>:<start ms>-<n>``."""
        return self._id(kind)

    def _id(self, kind: str) -> str:
        self._n += 1
        return f"{self.gateway}:{kind}:{int(self.started_wall * 1000)}-{self._n}"

    @staticmethod
    def _incidents(outbox: Outbox) -> list[OutboxIncident]:
        return [
            OutboxIncident(at=rfc3339(i.at), moved_to=i.moved_to, reason=i.reason)
            for i in outbox.incidents
        ]

    def status(self, state: StatusState, outbox: Outbox) -> bytes:
        """The retained ``status`` payload."""
        return (
            StatusPayload(
                v=1,
                id=self._id("status"),
                seq=outbox.last_seq,
                ts=rfc3339(time.time()),
                type="status",
                state=state,
                version=__version__,
                started_at=rfc3339(self.started_wall),
                config_hash=self.config_hash,
                outbox_incidents=self._incidents(outbox),
            )
            .model_dump_json()
            .encode()
        )

    @staticmethod
    def unzoned_warning(pipeline: Pipeline, receiver: str) -> str:
        """What ``health.warnings`` says of a receiver heard that the config does not list."""
        if pipeline.fusion is not None:
            return (
                f"receiver {receiver!r} is heard but is not on the floor plan: its adverts "
                "place no one"
            )
        return f"receiver {receiver!r} is heard but has no zone: its adverts give no presence"

    def health(
        self,
        pipeline: Pipeline,
        outbox: Outbox,
        publisher: Publisher,
        source: AdvertSource,
        sink: AdvertSink,
        privacy: PrivacyCounters,
        warnings: list[str] | None = None,
        *,
        share: ShareStats | None = None,
        commands: CommandStats | None = None,
        reloads: int = 0,
        mark: bool = True,
    ) -> HealthPayload:
        """Every part's counters now; rates since the previous marked call (the periodic
        ``health``; a ``status`` request looks without moving the mark)."""
        now = time.monotonic()
        mark_t, mark_adv, mark_pub = self._rate_mark
        adverts = pipeline.stats.adverts
        ps = publisher.stats
        dt = max(now - mark_t, 1e-6)
        if mark:
            self._rate_mark = (now, adverts, ps.published)
        d = pipeline.decode_stats
        usage = resource.getrusage(resource.RUSAGE_SELF)
        ids = pipeline.identity.stats
        feed = pipeline.feed
        return HealthPayload(
            v=1,
            id=self._id("health"),
            seq=outbox.last_seq,
            ts=rfc3339(time.time()),
            type="health",
            uptime_s=round(now - self._started, 1),
            adverts_total=adverts,
            adverts_per_s=round((adverts - mark_adv) / dt, 1),
            queue_dropped=sink.dropped,
            decode={
                "frames": d.frames,
                "unknown": d.unknown,
                "malformed": dict(d.malformed),
                "partial": dict(d.partial),
                "dropped": dict(d.dropped),
                "rejected_rssi": pipeline.stats.rejected_rssi,
                **(
                    {"bthome_encrypted": asdict(pipeline.bthome_keys.stats)}
                    if pipeline.bthome_keys is not None
                    else {}
                ),
            },
            devices_tracked=pipeline.devices_tracked,
            devices_evicted=pipeline.stats.evicted,
            updates_suppressed=pipeline.presence.updates_suppressed,
            outbox_depth=outbox.depth(),
            outbox_oldest_age_s=outbox.oldest_age(),
            published_total=ps.published,
            publish_per_s=round((ps.published - mark_pub) / dt, 1),
            reconnects=ps.reconnects,
            outbox=OutboxHealth(
                bytes=outbox.size_bytes,
                held=outbox.held,
                storage_ok=outbox.storage_ok,
                write_failures=outbox.write_failures,
                evicted=dict(outbox.evicted),
                incidents=self._incidents(outbox),
            ),
            store=None
            if share is None
            else StoreHealth(
                summaries_sent=share.sent,
                summaries_send_failed=share.send_failed,
                summaries_received=share.received,
                summaries_dropped=share.dropped,
                summaries_invalid=share.invalid,
                summaries_skipped=feed.skipped if feed else 0,
                remote_samples=feed.remote_samples if feed else 0,
                devices_deferred=feed.collector.deferred if feed and feed.collector else 0,
            ),
            privacy=PrivacyHealth(
                key_rotations=ids.key_rotations,
                ignored_adverts=ids.ignored,
                count_only_adverts=ids.count_only,
                consents=privacy.consents,
                erasures=privacy.erasures,
            ),
            publisher=PublisherHealth(
                broker=publisher.broker,
                connected=publisher.connected,
                inflight=publisher.inflight,
                connects=ps.connects,
                connect_failures=ps.connect_failures,
                silent_drops=ps.silent_drops,
                resent=ps.resent,
                rejected=ps.rejected,
            ),
            commands=None
            if commands is None
            else CommandHealth(
                received=commands.received,
                ok=commands.ok,
                failed=commands.failed,
                dropped=commands.dropped,
                rolled_back=commands.rolled_back,
                reloads=reloads,
            ),
            source=source.name,
            adapters=source.adapter_health(),
            cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
            rss_mb=round(usage.ru_maxrss / 1024.0, 1),
            warnings=[
                *(warnings or ()),
                *(self.unzoned_warning(pipeline, r) for r in pipeline.unzoned_receivers()),
            ],
        )
