"""The figures ``make bench`` measures: each benchmark ``record``s its own into
``.cache/bench/results.json``; ``python -m tests.support.bench_report`` then rewrites README's
*Benchmarks* section from them (between its two markers), with the machine they ran on."""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent.tools import capacity
from tests.support.paths import ROOT

REPO = ROOT
RESULTS = REPO / ".cache" / "bench" / "results.json"
README = REPO / "README.md"
BEGIN = "<!-- bench:begin (make bench writes this section) -->"
END = "<!-- bench:end -->"


def machine() -> str:
    """The CPU and cores (``edge-agent bench``'s words), the OS, Python and the date."""
    return (
        f"{capacity.machine()}, {platform.system()} {platform.release()}, "
        f"Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}"
    )


def record(key: str, figures: dict[str, Any]) -> None:
    """Keep one benchmark's figures (replacing that benchmark's earlier ones)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[key] = figures
    data["machine"] = machine()
    RESULTS.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")


def _get(data: dict[str, Any], *path: str) -> Any:
    for p in path:
        if not isinstance(data, dict) or p not in data:
            return None
        data = data[p]
    return data


Check = tuple[str, str, Callable[[dict[str, Any]], float | None], Callable[[float], bool], str]
"""(figure, target, how to read it, whether it passes, format)."""


def _ratio(rate: str) -> Callable[[dict[str, Any]], float | None]:
    def read(d: dict[str, Any]) -> float | None:
        theirs = _get(d, f"radio_{rate}", "Theengs Gateway", "cpu_us")
        ours = _get(d, f"radio_{rate}", "edge-agent", "cpu_us")
        return None if theirs is None or ours is None else theirs / ours

    return read


def _scale_ratio(d: dict[str, Any]) -> float | None:
    small, big = _get(d, "scale", "1000", "cpu_us"), _get(d, "scale", "100000", "cpu_us")
    return None if small is None or big is None else big / small


CHECKS: list[Check] = [
    ("whole agent, 1 000 adverts/s", "≤ 50 µs/advert",
     lambda d: _get(d, "radio_1000", "edge-agent", "cpu_us"), lambda v: v <= 50, "{:.1f} µs"),
    ("whole agent, 2 000 adverts/s", "≤ 50 µs/advert",
     lambda d: _get(d, "radio_2000", "edge-agent", "cpu_us"), lambda v: v <= 50, "{:.1f} µs"),
    ("Theengs Gateway ÷ agent, 1 000/s", "≥ 20×", _ratio("1000"), lambda v: v >= 20, "{:.1f}×"),
    ("Theengs Gateway ÷ agent, 2 000/s", "≥ 20×", _ratio("2000"), lambda v: v >= 20, "{:.1f}×"),
    ("CPU/advert at 100 k ÷ at 1 k devices", "≤ 1.5", _scale_ratio, lambda v: v <= 1.5,
     "{:.2f}"),
    ("RSS at 10 k devices", "≤ 150 MB", lambda d: _get(d, "scale", "10000", "rss_mb"),
     lambda v: v <= 150, "{:.0f} MB"),
    ("RSS slope, churn soak", "< 1 MB/h", lambda d: _get(d, "churn", "slope_mb_h"),
     lambda v: v < 1, "{:+.2f} MB/h"),
    ("decode", "≥ 1 M adverts/s", lambda d: _get(d, "decode", "ours"), lambda v: v >= 1e6,
     "{:,.0f}/s"),
    ("pure pipeline", "≥ 100 k adverts/s", lambda d: _get(d, "pipeline", "rate"),
     lambda v: v >= 1e5, "{:,.0f}/s"),
    ("advert → broker p50, 5 000/s, tick_s 0.02", "≤ 20 ms",
     lambda d: (_get(d, "latency_5000", "latency_ms") or [None, None])[0], lambda v: v <= 20,
     "{:.1f} ms"),
    ("advert → broker p99, 5 000/s, tick_s 0.02", "≤ 50 ms",
     lambda d: (_get(d, "latency_5000", "latency_ms") or [None, None])[1], lambda v: v <= 50,
     "{:.1f} ms"),
    ("warm start", "≤ 3 s", lambda d: _get(d, "start_up", "warm_s"), lambda v: v <= 3,
     "{:.2f} s"),
]  # fmt: skip

ORDER = [
    "radio_1000", "radio_2000", "latency_1000", "latency_5000", "start_up", "scale", "churn",
    "decode", "pipeline", "cost_model", "fusion_100", "fusion_1000", "kernels_1000",
    "kernels_10000", "kalman", "outbox", "drain",
]  # fmt: skip


def _lines(value: Any) -> list[str]:
    if isinstance(value, dict):
        out = [value["line"]] if isinstance(value.get("line"), str) else []
        for v in value.values():
            if isinstance(v, dict):
                out += _lines(v)
        return out
    return []


def render(data: dict[str, Any]) -> str:
    rows = ["| figure | target | measured | |", "|---|---|---|---|"]
    for name, target, read, ok, fmt in CHECKS:
        value = read(data)
        shown = "not measured" if value is None else fmt.format(value)
        verdict = "" if value is None else ("pass" if ok(value) else "**FAIL**")
        rows.append(f"| {name} | {target} | {shown} | {verdict} |")
    details = []
    for key in ORDER + sorted(k for k in data if k not in ORDER and k != "machine"):
        details += [f"- {line}" for line in _lines(data.get(key))]
    return "\n".join(
        [
            BEGIN,
            f"Measured by `make bench` on {data.get('machine', 'an unknown machine')}.",
            "",
            *rows,
            "",
            *details,
            END,
        ]
    )


def regenerate(readme: Path = README, results: Path = RESULTS) -> bool:
    """Rewrite the section between the markers; False when there is nothing to write."""
    if not results.exists():
        return False
    text = readme.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    section = render(json.loads(results.read_text(encoding="utf-8")))
    readme.write_text(text[:start] + section + text[end:], encoding="utf-8")
    return True


if __name__ == "__main__":
    print("README updated" if regenerate() else f"no results at {RESULTS}")
