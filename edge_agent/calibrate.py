"""``edge-agent calibrate``: per-receiver RSSI offset and path-loss exponent fitted from captures
with truth, written as TOML that ``agent.toml`` includes (``[calibration] file = …``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edge_agent import evaluation as ev
from edge_agent.config import ProximityConfig, ReceiverCalibration


def fit_captures(
    prox: ProximityConfig,
    captures: Sequence[ev.Capture],
    positions: dict[str, tuple[float, float, float]],
) -> list[ReceiverCalibration]:
    """Smooth each capture with the agent's filter, then fit every receiver heard under 6 m
    often enough (the others get the fit of all receivers together)."""
    smooth = ev.ours(prox)
    parts = [
        (c, smooth(c.receiver, c.t, c.rssi, len(c.receivers)), ev.true_distances(c, positions))
        for c in captures
    ]
    fitted = ev.fit_calibration(parts)
    names = sorted({n for c in captures for n in c.receivers})
    tx = prox.tx_power_1m_dbm
    out = []
    for name in names:
        at_1m, n = fitted.get(name, fitted["*"])
        out.append(
            ReceiverCalibration(
                id=name,
                rssi_offset_db=round(max(-40.0, min(40.0, tx - at_1m)), 2),
                path_loss_exponent=round(n, 3),
            )
        )
    return out


def to_toml(receivers: Sequence[ReceiverCalibration], sources: Sequence[Path], tx: int) -> str:
    """The file ``calibrate --out`` writes."""
    lines = [
        "# Written by edge-agent calibrate from: " + ", ".join(p.name for p in sources),
        f"# Offsets assume beacons that state {tx} dBm at 1 m (proximity.tx_power_1m_dbm).",
        '# Include it from agent.toml:  [calibration]  file = "calibration.toml"',
        "",
    ]
    for r in receivers:
        lines += [
            "[[calibration.receivers]]",
            f'id = "{r.id}"',
            f"rssi_offset_db = {r.rssi_offset_db}",
            f"path_loss_exponent = {r.path_loss_exponent}",
            "",
        ]
    return "\n".join(lines)
