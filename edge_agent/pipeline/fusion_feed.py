"""What goes into fusion, and when: this gateway's samples and, on a store of several gateways,
the others' summaries (``pipeline.summaries``).

Alone (``fusion.share`` off), every sample is fused at the device's next step. Shared, the store's
gateways step every device at the same instants — the whole multiples of ``fusion.step_s`` of
their (aligned) tick clocks — on the same evidence: at step ``k`` each fuses its own summary of
step ``k-1`` (held back one step) and the others' summaries of step ``k-1`` (which arrived during
the step). Their pictures then differ only where a summary came late or their clocks differ, so
two gateways publish the same zone changes at the same times.
"""

from __future__ import annotations

import math

from edge_agent.config import AgentConfig
from edge_agent.config.floor import remote_key
from edge_agent.contract import RssiSummaryPayload
from edge_agent.models import DeviceClass
from edge_agent.pipeline import floorplan
from edge_agent.pipeline.fusion import FusionEngine
from edge_agent.pipeline.identity import DeviceRef, Identity
from edge_agent.pipeline.summaries import DeviceSummary, ReceiverSummary, SummaryCollector

NOT_ON_PLAN = (-1, 0.0)
"""A receiver that is not on the floor plan: fusion skips its samples."""
SUMMARY_SKEW_S = 2.0
"""How far apart the clocks of one store's gateways may be."""


class FusionFeed:
    """Feeds one ``FusionEngine`` and says which devices it updated."""

    def __init__(
        self,
        cfg: AgentConfig,
        fusion: FusionEngine,
        identity: Identity,
        *,
        share: bool | None = None,
    ) -> None:
        """``share``: exchange summaries with the store's other gateways (default:
        ``fusion.share``; a tool that only looks, like ``scan``, says False)."""
        self.cfg = cfg
        self.fusion = fusion
        self.identity = identity
        model = floorplan.exponents(cfg)
        self._rx = {
            r: (i, model.get(r, (0.0, 0.0))[0]) for i, r in enumerate(fusion.plan.receivers)
        }
        shared = cfg.fusion.share if share is None else share
        self.collector = SummaryCollector(cfg.fusion.share_max_devices) if shared else None
        """This gateway's samples, summarised for the store's other gateways (shared only)."""
        self._step = -1
        self._held: list[DeviceSummary] = []
        self._outgoing: list[DeviceSummary] = []
        self._remote: list[tuple[int, str, DeviceSummary]] = []
        self.refs: dict[str, DeviceRef] = {}
        """Devices first heard through another gateway's summary (taken by the pipeline)."""
        self.remote_seen: dict[str, float] = {}
        """When another gateway last told of each device."""
        self.remote_samples = 0
        """Samples of other gateways fused."""
        self.skipped = 0
        """Summaries not fused: too near a pseudonym key change."""

    def local(self, ref: DeviceRef, receiver: str, rssi: float, tx: float) -> None:
        """One advert heard by this gateway's ``receiver``, from a device whose power at 1 m
        is ``tx``."""
        rx, offset = self._rx.get(receiver, NOT_ON_PLAN)
        if rx < 0:
            return
        value = rssi + offset - tx
        if self.collector is None:
            self.fusion.observe(ref.id, rx, value)
        else:
            self.collector.add(ref, receiver, value)

    def remote(self, summary: RssiSummaryPayload, now: float, wall: float) -> int:
        """Another gateway's summary, fused at this gateway's step after the one it was made
        at; the samples it holds for the plan. Summaries from either side of a pseudonym key
        change are skipped (they would name devices by another day's pseudonym)."""
        if self.collector is None or summary.gateway == self.cfg.gateway.id:
            return 0
        ident = self.identity
        lo, hi = ident.key_since + SUMMARY_SKEW_S, ident.key_until - SUMMARY_SKEW_S
        if not (lo <= wall < hi and lo <= summary.ts < hi):
            self.skipped += 1
            return 0
        used = 0
        for dev in summary.devices:
            receivers = tuple(
                r for r in dev.rx if remote_key(summary.gateway, r[0]) in self._rx and r[3] > 0
            )
            if not receivers:
                continue
            used += sum(int(r[3]) for r in receivers)
            rxs = tuple(_receiver(r) for r in receivers)
            self._remote.append(
                (summary.step, summary.gateway, DeviceSummary(dev.id, dev.cls, dev.publish, rxs))
            )
            self.remote_seen[dev.id] = now
        return used

    def step(self, now: float) -> list[str]:
        """Run fusion for ``now`` (a tick's end); the devices whose position is new."""
        fusion = self.fusion
        if self.collector is None:
            return fusion.step(now)
        k = math.floor(now / self.cfg.fusion.step_s + 1e-9)
        if k <= self._step:
            return []
        self._step = k
        for summary in self._held:
            self._observe(summary, None)
        keep = []
        for step, gateway, summary in self._remote:
            if step == k:  # made at the same step as ours: it waits with ours for the next
                keep.append((step, gateway, summary))
            else:
                self._observe(summary, gateway)
        self._remote = keep
        self._held = self.collector.take()
        self._outgoing = list(self._held)
        return fusion.step(now, every=True)

    def _observe(self, summary: DeviceSummary, gateway: str | None) -> None:
        if gateway is not None and summary.device not in self.refs:
            self.refs[summary.device] = DeviceRef(
                summary.device,
                DeviceClass(summary.device_class),
                False,
                None,
                publish=summary.publish,
            )
        for r in summary.receivers:
            key = r.receiver if gateway is None else remote_key(gateway, r.receiver)
            rx, _ = self._rx.get(key, NOT_ON_PLAN)
            self.fusion.observe(summary.device, rx, r.mean, r.count)
            if gateway is not None:
                self.remote_samples += r.count

    def outgoing(self) -> tuple[int, list[DeviceSummary]]:
        """This gateway's summary made at the latest step (once), and that step."""
        out, self._outgoing = self._outgoing, []
        return self._step, out

    def forget(self, device: str) -> None:
        """Drop everything held about a device."""
        self.refs.pop(device, None)
        self.remote_seen.pop(device, None)
        if self.collector is not None:
            self.collector.forget(device)
        self._held = [s for s in self._held if s.device != device]
        self._remote = [r for r in self._remote if r[2].device != device]


def _receiver(r: tuple[str, float, float, int]) -> ReceiverSummary:
    return ReceiverSummary(r[0], r[1], r[2], r[3])
