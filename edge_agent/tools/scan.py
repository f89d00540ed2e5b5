"""``edge-agent scan``: runs the configured source and shows ``ScanView`` live (rich table), or
prints one JSON array per refresh with ``--json``."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.table import Table

from edge_agent.config import AgentConfig
from edge_agent.models import Advert
from edge_agent.runtime.sources import AdvertSource, SourceFeed
from edge_agent.tools.scanview import ScanRow, ScanView


def render(rows: list[ScanRow], view: ScanView, limit: int, title: str) -> Table:
    """The table of the field engineer's terminal."""
    table = Table(title=title, caption=f"{view.adverts} adverts, {len(rows)} devices")
    for name, justify in (
        ("id", "left"),
        ("kind", "left"),
        ("decoded", "left"),
        ("rx", "left"),
        ("rssi", "right"),
        ("smoothed", "right"),
        ("distance", "right"),
        ("band", "left"),
        ("seen", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    if view.show_addresses:
        table.add_column("address")
    for r in rows[:limit]:
        cells = [
            r.id,
            r.kind,
            r.summary[:48],
            r.receiver,
            str(r.rssi),
            "" if math.isnan(r.rssi_smoothed) else f"{r.rssi_smoothed:.1f}",
            "" if math.isinf(r.distance_m) else f"{r.distance_m:.1f} m",
            r.band,
            f"{r.last_seen_s:.0f} s",
        ]
        if view.show_addresses:
            cells.append(r.address or "")
        table.add_row(*cells)
    return table


def row_json(row: ScanRow) -> dict[str, object]:
    """A row for ``--json`` (no NaN/inf: JSON has none)."""
    d = dataclasses.asdict(row)
    for key in ("rssi_smoothed", "distance_m"):
        if not math.isfinite(d[key]):
            d[key] = None
    if d["address"] is None:
        del d["address"]
    return d


@dataclass(slots=True, frozen=True)
class ScanOptions:
    """How ``edge-agent scan`` shows what it hears."""

    json: bool = False
    """One JSON array of devices per refresh instead of the table."""
    sort: str = "distance"
    """Row order (``SORT_KEYS``)."""
    interval_s: float = 1.0
    """Refresh every this many seconds."""
    duration_s: float | None = None
    """Stop after this many seconds (``None``: at a signal)."""
    limit: int = 40
    """Rows shown in the table."""
    show_addresses: bool = False
    """Also show raw addresses and local names."""


async def scan(cfg: AgentConfig, source: AdvertSource, opts: ScanOptions) -> int:
    """Collect adverts, refresh every ``interval_s``, until ``duration_s``, the source's end or
    a signal."""
    view = ScanView(cfg, show_addresses=opts.show_addresses)
    deadline = math.inf if opts.duration_s is None else time.monotonic() + opts.duration_s
    title = f"edge-agent scan ({source.name})"
    live: Live | None = None
    if not opts.json:
        live = Live(console=Console(stderr=False), auto_refresh=False)
        live.start()
    last: list[Advert] = []
    shown_at = time.monotonic()
    try:
        async with SourceFeed(source, cfg.source.queue_size) as feed:
            async for batch in feed.batches(min(opts.interval_s, 0.25)):
                view.observe(batch)
                last = batch or last
                mono = time.monotonic()
                if mono - shown_at < opts.interval_s and mono < deadline and not feed.ended:
                    continue
                shown_at = mono
                rows = view.rows(_now(last, source), opts.sort)
                if live is not None:
                    live.update(render(rows, view, opts.limit, title), refresh=True)
                else:
                    print(json.dumps([row_json(r) for r in rows]), flush=True)
                if mono >= deadline:
                    break
    finally:
        if live is not None:
            live.stop()
    if view.decode_stats.malformed:
        print(f"malformed adverts skipped: {dict(view.decode_stats.malformed)}", file=sys.stderr)
    return 0


def _now(batch: list[Advert], source: AdvertSource) -> float:
    now = source.now()
    if math.isfinite(now):
        return now
    return batch[-1].t if batch else 0.0
