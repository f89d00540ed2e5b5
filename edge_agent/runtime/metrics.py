"""The health counters in Prometheus' text format, as a node-exporter textfile
(``[health] prometheus_textfile``): scraped where node_exporter already runs, no port opened.

Every number of the ``health`` payload becomes a gauge named by its path
(``edge_agent_outbox_bytes``); a table of numbers keyed by names that are not identifiers
(``decode.malformed``: ``bthome:truncated`` …) becomes one metric with a ``key`` label, and the
per-receiver list one metric per field with a ``receiver`` label. Booleans are 0 or 1; text is
left out (except as labels), so nothing but counters leaves: health names no device.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from edge_agent.contract import HealthPayload
from edge_agent.runtime.files import replace_atomically

PREFIX = "edge_agent"
_NAME = re.compile(r"[^a-zA-Z0-9_]")
_SKIP = frozenset({"v", "id", "seq", "ts", "type"})
"""Envelope fields: not measurements."""


def prometheus_text(payload: HealthPayload, gateway: str) -> str:
    """The text exposition of one ``health`` payload (every line labelled with the gateway)."""
    data = payload.model_dump(mode="json")
    lines: list[str] = []
    seen: set[str] = set()
    for name, labels, value in _samples(data, PREFIX, {"gateway": gateway}):
        if name not in seen:
            seen.add(name)
            lines.append(f"# TYPE {name} gauge")
        lines.append(f"{name}{_labels(labels)} {_number(value)}")
    return "\n".join(lines) + "\n"


def _samples(
    data: Any, name: str, labels: dict[str, str]
) -> Iterator[tuple[str, dict[str, str], float]]:
    if isinstance(data, bool):
        yield name, labels, float(data)
    elif isinstance(data, int | float):
        if math.isfinite(data):
            yield name, labels, float(data)
    elif isinstance(data, Mapping):
        keyed = any(not str(k).isidentifier() for k in data)
        for key, value in data.items():
            if name == PREFIX and key in _SKIP:
                continue
            if keyed:
                yield from _samples(value, name, {**labels, "key": str(key)})
            else:
                yield from _samples(value, f"{name}_{_NAME.sub('_', str(key))}", labels)
    elif isinstance(data, list):
        for item in data:
            if isinstance(item, Mapping) and isinstance(item.get("receiver"), str):
                rest = {k: v for k, v in item.items() if k != "receiver"}
                yield from _samples(rest, name, {**labels, "receiver": item["receiver"]})


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    esc = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in sorted(labels.items())
    )
    return "{" + esc.replace("\n", "\\n") + "}"


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def write_textfile(path: Path, text: str) -> None:
    """Replace ``path`` atomically (node_exporter must never read half a file)."""
    replace_atomically(path, text.encode("utf-8"), mode=0o644)
