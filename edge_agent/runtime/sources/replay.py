"""Replay of a recording (JSONL, raw payloads in hex) or a capture CSV (RSSI only)."""

from __future__ import annotations

import asyncio
import csv
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from edge_agent import inputs
from edge_agent.contract import AdapterHealth
from edge_agent.errors import SourceError
from edge_agent.inputs import InputError
from edge_agent.models import Advert
from edge_agent.runtime.sources import AdvertSink


def advert_to_json(advert: Advert) -> str:
    """One recording line."""
    return json.dumps(
        {
            "t": advert.t,
            "wall": advert.wall,
            "receiver": advert.receiver,
            "address": advert.address,
            "address_type": advert.address_type,
            "rssi": advert.rssi,
            "mfr": {str(k): v.hex() for k, v in advert.manufacturer_data.items()},
            "svc": {k: v.hex() for k, v in advert.service_data.items()},
            "uuids": list(advert.service_uuids),
            "name": advert.local_name,
            "tx_power": advert.tx_power,
        },
        separators=(",", ":"),
    )


def advert_from_json(line: str) -> Advert:
    """Parse one recording line (raises ``ValueError``/``KeyError`` on a bad one)."""
    d = json.loads(line)
    return Advert(
        address=str(d["address"]),
        rssi=int(d["rssi"]),
        t=float(d["t"]),
        wall=float(d.get("wall", d["t"])),
        receiver=str(d["receiver"]),
        address_type=str(d.get("address_type", "public")),
        manufacturer_data={int(k): bytes.fromhex(v) for k, v in d.get("mfr", {}).items()},
        service_data={str(k): bytes.fromhex(v) for k, v in d.get("svc", {}).items()},
        service_uuids=tuple(d.get("uuids", ())),
        local_name=d.get("name"),
        tx_power=d.get("tx_power"),
    )


def read_adverts(path: Path) -> Iterator[Advert]:
    """Adverts of a recording (``.jsonl``) or a capture CSV (``.csv``), in file order."""
    source = f"replay:{path}"
    if path.suffix.lower() == ".csv":
        for lineno, row in capture_rows(path, CSV_COLUMNS, source):
            try:
                t = float(row["t"])
                yield Advert(
                    address=str(row["address"]),
                    rssi=round(float(row["rssi"])),
                    t=t,
                    wall=t,
                    receiver=str(row["receiver"]),
                )
            except BAD_LINE as err:
                raise SourceError(source, f"line {lineno}: {_why(err)}") from None
        return
    for lineno, line in _lines(path, source):
        if not line.strip():
            continue
        try:
            yield advert_from_json(line)
        except BAD_LINE as err:
            raise SourceError(source, f"line {lineno}: {_why(err)}") from None


def _lines(path: Path, source: str) -> Iterator[tuple[int, str]]:
    """(number, text) of every line, bounded and decoded (``SourceError`` naming the file)."""
    try:
        handle = path.open("rb")
    except OSError as err:
        raise SourceError(source, err.strerror or str(err)) from err
    with handle:
        try:
            yield from inputs.lines(handle)
        except InputError as err:
            raise SourceError(source, err.reason) from None
        except OSError as err:
            raise SourceError(source, err.strerror or str(err)) from err


def capture_rows(
    path: Path, columns: Sequence[str], source: str
) -> Iterator[tuple[int, dict[str, str]]]:
    """The rows of a capture CSV (DESIGN §4) with their line numbers; ``SourceError`` naming
    the line when the header lacks one of ``columns`` or a line is not CSV text."""
    reader = csv.DictReader(line for _, line in _lines(path, source))
    try:
        missing = [c for c in columns if c not in (reader.fieldnames or ())]
        if missing:
            raise SourceError(
                source,
                f"line 1: the header has no column {', '.join(missing)} (a capture "
                f"starts with {','.join(columns)})",
            )
        for row in reader:
            yield reader.line_num, row
    except csv.Error as err:
        raise SourceError(source, f"line {reader.line_num}: {_why(err)}") from None


BAD_LINE = (
    KeyError,
    TypeError,
    ValueError,
    AttributeError,
    ArithmeticError,
    RecursionError,
    csv.Error,
)
"""What a line that is not an advert raises while it is parsed."""


def _why(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}" if isinstance(err, KeyError) else str(err)
    return text[:200]


CSV_COLUMNS = ("t", "receiver", "address", "rssi")
"""The columns a capture must have (DESIGN §4)."""


class ReplaySource:
    """Feeds a file through the pipeline on its own timeline, as fast as possible or paced."""

    def __init__(self, path: Path, speed: float = 0.0) -> None:
        self.name = "replay"
        self.live = False
        self.path = path
        self.speed = speed
        self._now = -float("inf")
        self._offset = 0.0

    def now(self) -> float:
        """Time of the last advert handed over."""
        return self._now

    def wall_at(self, t: float) -> float:
        """Recordings carry wall time; the source clock is the recorded ``t``."""
        return t + self._offset

    def adapter_health(self) -> list[AdapterHealth]:
        """No radio here."""
        return []

    async def run(self, sink: AdvertSink) -> None:
        """Hand every advert over, then end."""
        start_real = time.monotonic()
        first: float | None = None
        for n, advert in enumerate(read_adverts(self.path)):
            if first is None:
                first = advert.t
                self._offset = advert.wall - advert.t
            if self.speed > 0:
                due = start_real + (advert.t - first) / self.speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif n % 1000 == 0:
                await asyncio.sleep(0)
            await sink.put(advert)
            self._now = max(self._now, advert.t)
        self._now = float("inf")
        await sink.end()
