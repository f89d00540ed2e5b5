"""``edge-agent scan``: runs the configured source and shows ``ScanView`` live (rich table), or
prints one JSON array per refresh with ``--json``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import signal
import sys
import time

from rich.console import Console
from rich.live import Live
from rich.table import Table

from edge_agent.config import AgentConfig
from edge_agent.models import Advert
from edge_agent.runtime.sources import AdvertSink, AdvertSource, source_error
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


async def scan(cfg: AgentConfig, source: AdvertSource, args: argparse.Namespace) -> int:
    """Collect adverts, refresh every ``--interval`` seconds, until ``--duration`` or a signal."""
    view = ScanView(cfg, show_addresses=args.show_addresses)
    sink = AdvertSink(cfg.source.queue_size)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    deadline = math.inf if args.duration is None else time.monotonic() + args.duration
    title = f"edge-agent scan ({source.name})"
    live: Live | None = None
    if not args.json:
        live = Live(console=Console(stderr=False), auto_refresh=False)
        live.start()
    try:
        async with asyncio.TaskGroup() as tg:
            feeder = tg.create_task(source.run(sink), name="source")
            ended = False
            while not stop.is_set() and not ended:
                wait = min(args.interval, deadline - time.monotonic())
                if wait > 0:
                    try:
                        async with asyncio.timeout(wait):
                            await stop.wait()
                    except TimeoutError:
                        pass
                batch: list[Advert] = []
                while not sink.queue.empty():
                    advert = sink.queue.get_nowait()
                    if advert is None:
                        ended = True
                        break
                    batch.append(advert)
                view.observe(batch)
                rows = view.rows(source.now() if not ended else _last(batch, source), args.sort)
                if live is not None:
                    live.update(render(rows, view, args.limit, title), refresh=True)
                else:
                    print(json.dumps([row_json(r) for r in rows]), flush=True)
                if time.monotonic() >= deadline:
                    break
            feeder.cancel()
    except BaseExceptionGroup as group:
        raise source_error(group) from None
    finally:
        if live is not None:
            live.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if view.decode_stats.malformed:
        print(f"malformed adverts skipped: {dict(view.decode_stats.malformed)}", file=sys.stderr)
    return 0


def _last(batch: list[Advert], source: AdvertSource) -> float:
    now = source.now()
    if math.isfinite(now):
        return now
    return batch[-1].t if batch else 0.0


def run_scan(cfg: AgentConfig, source: AdvertSource, args: argparse.Namespace) -> int:
    """Entry point of the command."""
    return asyncio.run(scan(cfg, source, args))
