"""``edge-agent scan``: what the radio hears now, device by device, for field engineers.

Pure: adverts in, rows out. Devices are named as the privacy policy names them on the wire
(configured id, beacon id or pseudonym); count-only devices appear as ``(count only)`` rows
without an id. Raw addresses and local names are shown only with ``show_addresses``.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.config import AgentConfig
from edge_agent.models import (
    Advert,
    AltBeaconFrame,
    BTHomeFrame,
    EddystoneEIDFrame,
    EddystoneTLMFrame,
    EddystoneUIDFrame,
    EddystoneURLFrame,
    Frame,
    IBeaconFrame,
    RuuviFrame,
)
from edge_agent.pipeline import floorplan
from edge_agent.pipeline.decoders import DecodeStats, decode_advert
from edge_agent.pipeline.fusion import FusionEngine
from edge_agent.pipeline.fusion_feed import FusionFeed
from edge_agent.pipeline.identity import Identity
from edge_agent.pipeline.proximity import DeviceTable, band_for, stated_tx

SORT_KEYS = ("distance", "rssi", "id", "last")
MAX_ADDRESSES = 100_000
"""Addresses remembered for merging rows (a crowd of rotating phones is forgotten, not kept)."""


@dataclass(slots=True, frozen=True)
class ScanRow:
    """One device as ``scan`` shows it."""

    id: str
    """Wire id (or ``(count only)``)."""
    kind: str
    """Device class (``cart``, ``staff``, ``shopper`` …)."""
    summary: str
    """What its last frames said, decoded."""
    receiver: str
    """Receiver that heard it last."""
    rssi: int
    """Last raw RSSI, dBm."""
    rssi_smoothed: float
    """Smoothed RSSI at its nearest receiver, dBm."""
    distance_m: float
    """Distance to its nearest receiver, metres."""
    band: str
    """``immediate``, ``near``, ``far`` or ``gone``."""
    last_seen_s: float
    """Seconds since it was last heard."""
    address: str | None = None
    """Raw address, only with ``--show-addresses``."""
    x: float | None = None
    """Fused position on the floor plan, metres (``None`` without a plan)."""
    y: float | None = None
    """Fused position on the floor plan, metres."""
    zone: str | None = None
    """The plan's most probable zone at that position."""


@dataclass(slots=True)
class _Seen:
    kind: str
    publish: bool
    summary: str = ""
    receiver: str = ""
    rssi: int = 0
    t: float = 0.0
    band: str = ""
    address: str | None = None


def summarise(frames: list[Frame]) -> str:
    """Decoded frames in a few words."""
    parts: list[str] = []
    for f in frames:
        if isinstance(f, IBeaconFrame):
            parts.append(f"iBeacon {f.major}/{f.minor} tx {f.tx_power} dBm")
        elif isinstance(f, AltBeaconFrame):
            parts.append(f"AltBeacon tx {f.tx_power} dBm")
        elif isinstance(f, EddystoneUIDFrame):
            parts.append(f"Eddystone-UID tx {f.tx_power} dBm")
        elif isinstance(f, EddystoneURLFrame):
            parts.append(f"Eddystone-URL {f.url}")
        elif isinstance(f, EddystoneTLMFrame):
            battery = f" {f.battery_mv} mV" if f.battery_mv is not None else ""
            parts.append(f"Eddystone-TLM{battery}")
        elif isinstance(f, EddystoneEIDFrame):
            parts.append("Eddystone-EID")
        elif isinstance(f, BTHomeFrame):
            if f.encrypted:
                parts.append("BTHome (encrypted)")
            else:
                values = ", ".join(
                    f"{m.name} {m.value}{' ' + m.unit if m.unit else ''}" for m in f.measurements
                )
                parts.append(f"BTHome {values}".strip())
        elif isinstance(f, RuuviFrame):
            bits = [
                f"{f.temperature_c:.1f} °C" if f.temperature_c is not None else "",
                f"{f.humidity_pct:.0f} %" if f.humidity_pct is not None else "",
                f"{f.pressure_pa / 100:.0f} hPa" if f.pressure_pa is not None else "",
            ]
            parts.append("Ruuvi " + " ".join(b for b in bits if b))
    return "; ".join(parts)


class ScanView:
    """Keeps the latest of every device heard; ``rows`` gives the table."""

    def __init__(
        self, cfg: AgentConfig, *, show_addresses: bool = False, identity: Identity | None = None
    ) -> None:
        self.cfg = cfg
        self.show_addresses = show_addresses
        self.identity = identity or Identity(cfg)
        self.table = DeviceTable(cfg.proximity, cfg.receivers, calibration=cfg.calibration)
        plan = floorplan.build(cfg)
        self.fusion = FusionEngine(plan, cfg.fusion) if plan is not None else None
        """On a floor plan: where each device is (the map above the table)."""
        self._feed = (
            FusionFeed(cfg, self.fusion, self.identity, share=False) if self.fusion else None
        )
        self.decode_stats = DecodeStats()
        self.adverts = 0
        self._seen: dict[str, _Seen] = {}
        self._row_of_address: dict[str, str] = {}
        """Which row an address last fed: a beacon's telemetry heard before its id frame got a
        pseudonym row of its own, dropped once the id frame names the beacon."""

    def observe(self, adverts: list[Advert]) -> None:
        """One batch of adverts."""
        for adv in adverts:
            frames = decode_advert(adv, self.decode_stats)
            ref = self.identity.resolve(adv, frames)
            if ref is None:
                continue
            self.adverts += 1
            earlier = self._row_of_address.get(adv.address)
            if earlier is not None and earlier != ref.id and earlier.startswith("p-"):
                self._seen.pop(earlier, None)
                self.table.forget(earlier)
            if len(self._row_of_address) > MAX_ADDRESSES:
                self._row_of_address.clear()
            self._row_of_address[adv.address] = ref.id
            seen = self._seen.get(ref.id)
            if seen is None:
                seen = self._seen[ref.id] = _Seen(ref.kind.value, ref.publish)
            summary = summarise(frames)
            if summary:
                seen.summary = summary
            seen.receiver, seen.rssi, seen.t = adv.receiver, adv.rssi, adv.t
            if self.show_addresses:
                seen.address = adv.address
                if adv.local_name:
                    seen.summary = seen.summary or f"name {adv.local_name!r}"
            tx = stated_tx(ref, frames)
            self.table.add(ref, adv, tx)
            if self._feed is not None and ref.presence:
                power = self.cfg.proximity.tx_power_1m_dbm if tx is None else tx
                self._feed.local(ref, adv.receiver, adv.rssi, power)
        self.table.flush()

    def rows(
        self, now: float, sort: str = "distance", forget_after_s: float = 60.0
    ) -> list[ScanRow]:
        """Devices heard within ``forget_after_s``, sorted by ``sort`` (see ``SORT_KEYS``)."""
        out: list[ScanRow] = []
        fusion = self.fusion
        if self._feed is not None:
            self._feed.step(now)
        for device, seen in list(self._seen.items()):
            if now - seen.t > forget_after_s:
                del self._seen[device]
                self.table.forget(device)
                if fusion is not None:
                    fusion.forget(device)
                continue
            pos = fusion.position(device) if fusion is not None else None
            zone = None
            if pos is not None and fusion is not None and pos.zones:
                best = max(range(len(pos.zones)), key=pos.zones.__getitem__)
                zone = fusion.plan.zones[best] if pos.zones[best] >= 0.5 else None
            est = self.table.nearest(device, now)
            distance = est.distance_m if est else float("inf")
            seen.band = band_for(distance, seen.band, self.cfg.proximity)
            if est is not None and seen.band == "gone":
                seen.band = "far"  # heard lately: beyond far_m, but not gone
            out.append(
                ScanRow(
                    id=device if seen.publish else "(count only)",
                    kind=seen.kind,
                    summary=seen.summary,
                    receiver=est.receiver if est else seen.receiver,
                    rssi=seen.rssi,
                    rssi_smoothed=round(est.rssi, 1) if est else float("nan"),
                    distance_m=round(distance, 2),
                    band=seen.band,
                    last_seen_s=round(max(now - seen.t, 0.0), 1),
                    address=seen.address,
                    x=round(pos.x, 1) if pos is not None else None,
                    y=round(pos.y, 1) if pos is not None else None,
                    zone=zone,
                )
            )
        key = {
            "distance": lambda r: (r.distance_m, r.id),
            "rssi": lambda r: (
                -r.rssi_smoothed if r.rssi_smoothed == r.rssi_smoothed else 999,
                r.id,
            ),
            "id": lambda r: (r.id, r.receiver),
            "last": lambda r: (r.last_seen_s, r.id),
        }[sort]
        out.sort(key=key)
        return out
