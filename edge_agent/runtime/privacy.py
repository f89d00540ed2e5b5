"""The data subject's rights in the running agent: erasure of a device, and the consent list
re-read (a revoked consent erases the device). Called from the control socket (and, later, the
MQTT command channel)."""

from __future__ import annotations

import logging
from pathlib import Path

from edge_agent import topics
from edge_agent.models import Consent
from edge_agent.pipeline.tick import Pipeline
from edge_agent.runtime.consent import load_consents
from edge_agent.runtime.health import PrivacyCounters
from edge_agent.runtime.outbox import Outbox
from edge_agent.runtime.publisher import Publisher

_LOGGER = logging.getLogger(__name__)


class Rights:
    """Carries out erasure and consent changes across the pipeline, the outbox and the broker."""

    def __init__(
        self, consent_path: Path, pipeline: Pipeline, outbox: Outbox, publisher: Publisher
    ) -> None:
        self.consent_path = consent_path
        self.pipeline = pipeline
        self.outbox = outbox
        self.publisher = publisher
        self.consents: list[Consent] = load_consents(consent_path)
        self.counters = PrivacyCounters(consents=len(self.consents))
        pipeline.identity.set_consents(self.consents)

    def erase(self, device: str) -> dict[str, int | bool]:
        """Remove everything buffered and tracked for ``device`` (a wire id, an address or a
        beacon id), and clear its retained beacon health at the broker. Returns the counts."""
        ids = self.pipeline.identity.ids_for(device)
        removed = self.outbox.erase([t for d in ids for t in topics.device_topics(d)], ids)
        tracked = self.pipeline.erase(ids)
        cleared = all(
            self.publisher.publish_control(topics.beacon_health(d), b"", qos=1, retain=True)
            for d in ids
        )
        self.counters.erasures += 1
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
        new = load_consents(self.consent_path)
        kept = {c.id for c in new}
        revoked = [c for c in self.consents if c.id not in kept]
        self.consents = new
        self.counters.consents = len(new)
        self.pipeline.identity.set_consents(new)
        removed = 0
        for c in revoked:
            removed += int(self.erase(c.id)["events_removed"])
        _LOGGER.info("consent list reloaded: %s device(s), %s revoked", len(new), len(revoked))
        return {"consents": len(new), "revoked": len(revoked), "events_removed": removed}
