"""``edge-agent scan``: runs the configured source and shows ``ScanView`` live (rich table), or
prints one JSON array per refresh with ``--json``."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from edge_agent.config import AgentConfig
from edge_agent.models import Advert
from edge_agent.runtime.sources import AdvertSource, SourceFeed
from edge_agent.tools import floorview
from edge_agent.tools.scanview import ScanRow, ScanView

WIDE = 110
"""From this many columns on, the table also shows the smoothed RSSI and the decoded frames."""


def render(rows: list[ScanRow], view: ScanView, limit: int, title: str, width: int) -> Table:
    """The table of the field engineer's terminal, fitted to ``width`` columns: ids and the
    figures are never wrapped or cut; the decoded summary takes what is left, the smoothed RSSI
    only on a wide terminal."""
    wide = width >= WIDE
    names = ["id", "kind", "rx", "rssi", *(["smoothed"] if wide else []), "distance", "band"]
    names += ["seen", *(["address"] if view.show_addresses else [])]
    cells = [_cells(r, wide, view.show_addresses) for r in rows[:limit]]
    widths = [max([len(name), *(len(c[i]) for c in cells)]) for i, name in enumerate(names)]
    left = width - sum(widths) - len(names) - 1  # one space between columns
    table = Table(
        title=title,
        caption=f"{view.adverts} adverts, {len(rows)} devices",
        box=box.SIMPLE_HEAD if wide else None,
        pad_edge=False,
        collapse_padding=True,
    )
    for name, w in zip(names, widths, strict=True):
        right = name in ("rssi", "smoothed", "distance", "seen")
        table.add_column(name, justify="right" if right else "left", no_wrap=True, min_width=w)
    summaries = [r.summary for r in rows[:limit]]
    if left >= 8:
        table.add_column("decoded", no_wrap=True, overflow="ellipsis", max_width=left)
        cells = [[*c, text] for c, text in zip(cells, summaries, strict=True)]
    for row in cells:
        table.add_row(*row)
    return table


def floor(view: ScanView, rows: list[ScanRow], width: int) -> list[Text]:
    """The floor plan with every device placed, above the table (none without a plan)."""
    fusion = view.fusion
    if fusion is None:
        return []
    dots = [(r.x, r.y, r.kind) for r in rows if r.x is not None and r.y is not None]
    lines = floorview.draw(fusion.plan, floorview.zone_of_cells(fusion.plan), dots, min(width, 96))
    return [Text("\n".join(lines)), Text(floorview.legend(fusion.plan), style="dim")]


def _cells(r: ScanRow, wide: bool, addresses: bool) -> list[str]:
    return [
        r.id,
        r.kind,
        r.receiver,
        str(r.rssi),
        *(["" if math.isnan(r.rssi_smoothed) else f"{r.rssi_smoothed:.1f}"] if wide else []),
        "" if math.isinf(r.distance_m) else f"{r.distance_m:.1f} m",
        r.band,
        f"{r.last_seen_s:.0f} s",
        *([r.address or ""] if addresses else []),
    ]


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
                    width = live.console.width
                    table = render(rows, view, opts.limit, title, width)
                    live.update(Group(*floor(view, rows, width), table), refresh=True)
                else:
                    print(json.dumps([row_json(r) for r in rows]), flush=True)
                if mono >= deadline:
                    break
    finally:
        if live is not None:
            live.stop()
    if view.decode_stats.malformed:
        print(f"malformed adverts skipped: {dict(view.decode_stats.malformed)}", file=sys.stderr)
    if view.adverts == 0 and not feed.stopped:
        print(f"no advertisements heard: {why_silent(source)}", file=sys.stderr)
        return 1
    return 0


def why_silent(source: AdvertSource) -> str:
    """What each radio lane was doing, for a scan that heard nothing."""
    lanes = source.adapter_health()
    if not lanes:
        return f"the source ({source.name}) gave none"
    return "; ".join(
        f"{lane.receiver} {lane.state}" + (f" ({lane.last_error})" if lane.last_error else "")
        for lane in lanes
    )


def _now(batch: list[Advert], source: AdvertSource) -> float:
    now = source.now()
    if math.isfinite(now):
        return now
    return batch[-1].t if batch else 0.0
