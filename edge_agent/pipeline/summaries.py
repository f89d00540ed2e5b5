"""Signal summaries shared between the gateways of one store (DESIGN §2, "other gateways").

Every gateway fuses every receiver of the store: each sends, every ``fusion.step_s``, what its
own receivers heard of each device since its previous summary (mean and variance of RSSI less
the device's power at 1 m, with the receiver's calibration applied, and the number of samples),
and fuses what the others send as if its own receivers had heard it (``fusion_feed``). There is
no election: a gateway that fails only takes its receivers out of the others' picture, and
nothing has to notice it or hand over.

Pure: records in, records out; the agent publishes and receives them (QoS 0, bounded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from edge_agent.pipeline.identity import DeviceRef


@dataclass(slots=True, frozen=True)
class ReceiverSummary:
    """What one receiver heard of one device since the previous summary."""

    receiver: str
    """The receiver's id on its own gateway."""
    mean: float
    """Mean of RSSI (calibration applied) less the device's power at 1 m, dB."""
    variance: float
    """Variance of those samples, dB²."""
    count: int
    """Samples."""


@dataclass(slots=True, frozen=True)
class DeviceSummary:
    """One device in a summary."""

    device: str
    """Wire id (pseudonym, beacon or configured id); never a raw address."""
    device_class: str
    """``DeviceClass`` value."""
    publish: bool
    """False for devices that are only counted."""
    receivers: tuple[ReceiverSummary, ...]
    """Per receiver of the sender."""


class SummaryCollector:
    """Accumulates this gateway's samples per (device, receiver) between summaries."""

    def __init__(self, max_devices: int) -> None:
        self.max_devices = max_devices
        self._acc: dict[str, tuple[DeviceRef, dict[str, list[float]]]] = {}
        self.deferred = 0
        """Devices left for a later summary because one was full."""

    def add(self, ref: DeviceRef, receiver: str, value: float) -> None:
        """One sample: ``value`` = RSSI (calibrated) less the device's power at 1 m."""
        entry = self._acc.get(ref.id)
        if entry is None:
            entry = self._acc[ref.id] = (ref, {})
        acc = entry[1].get(receiver)
        if acc is None:
            entry[1][receiver] = [value, value * value, 1.0]
        else:
            acc[0] += value
            acc[1] += value * value
            acc[2] += 1.0

    def forget(self, device: str) -> None:
        """Drop what was gathered about a device (erasure, a new key day)."""
        self._acc.pop(device, None)

    def take(self) -> list[DeviceSummary]:
        """Everything gathered since the previous summary, at most ``max_devices`` devices
        (the rest wait for the next one)."""
        out: list[DeviceSummary] = []
        for device in list(self._acc)[: self.max_devices]:
            ref, per_rx = self._acc.pop(device)
            rxs = []
            for receiver, (total, squares, n) in per_rx.items():
                mean = total / n
                rxs.append(
                    ReceiverSummary(
                        receiver,
                        round(mean, 2),
                        round(max(squares / n - mean * mean, 0.0), 2),
                        int(n),
                    )
                )
            out.append(DeviceSummary(device, ref.kind.value, ref.publish, tuple(rxs)))
        self.deferred += len(self._acc)
        return out


def encode(gateway: str, wall: float, step: int, devices: list[DeviceSummary]) -> bytes:
    """The wire form (``contract.RssiSummaryPayload``), compact JSON."""
    body = {
        "v": 1,
        "type": "rssi_summary",
        "gateway": gateway,
        "ts": round(wall, 3),
        "step": step,
        "devices": [
            {
                "id": d.device,
                "cls": d.device_class,
                "publish": d.publish,
                "rx": [[r.receiver, r.mean, r.variance, r.count] for r in d.receivers],
            }
            for d in devices
        ],
    }
    return json.dumps(body, separators=(",", ":")).encode()
