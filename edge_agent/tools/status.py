"""``edge-agent status``: the running agent's state from its control socket — and, when it is
not running, why (its last exit, a quarantined outbox, the configuration)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from edge_agent.config import AgentConfig
from edge_agent.runtime.control import request
from edge_agent.runtime.lifecycle import read_last_run

NOT_RUNNING = 3
"""The exit code when no agent runs (as ``systemctl status`` says it)."""


def gather(cfg: AgentConfig) -> tuple[bool, dict[str, Any]]:
    """Whether the agent runs, and what there is to say about it."""
    reply = request(cfg.control_socket, {"op": "status"}, timeout=10.0)
    if reply is not None and reply.get("ok"):
        return True, {k: v for k, v in reply.items() if k != "ok"}
    facts: dict[str, Any] = {"running": False, "gateway": cfg.gateway.id}
    facts["last_run"] = read_last_run(cfg.gateway.state_dir)
    facts["quarantined_outboxes"] = sorted(
        p.name for p in _glob(cfg.outbox_path.parent, f"{cfg.outbox_path.name}.corrupt-*")
    )
    return False, facts


def _glob(directory: Path, pattern: str) -> list[Path]:
    try:
        return list(directory.glob(pattern))
    except OSError:
        return []


def render(running: bool, facts: dict[str, Any]) -> str:
    """The status for a person."""
    if not running:
        last = facts.get("last_run") or {}
        lines = [f"edge-agent {facts['gateway']}: not running"]
        if last.get("state") == "running":
            lines.append(
                f"  it started at {last.get('started_at')} (pid {last.get('pid')}) and ended "
                "without saying why: killed, or the machine lost power (journalctl -u "
                "edge-agent says more)"
            )
        elif last:
            lines.append(
                f"  last run: {last.get('started_at')} to {last.get('ended_at')}, {last.get('how')}"
            )
        else:
            lines.append("  it has not run with this state directory")
        for name in facts.get("quarantined_outboxes", []):
            lines.append(f"  a corrupt outbox was set aside: {name}")
        return "\n".join(lines)
    h = facts["health"]
    lines = [
        f"edge-agent {facts['gateway']} {facts['version']}: running for "
        f"{_span(h['uptime_s'])}, source {h['source']}",
        f"  adverts {h['adverts_total']} ({h['adverts_per_s']}/s), devices tracked "
        f"{h['devices_tracked']}, queue drops {h['queue_dropped']}",
        f"  outbox {h['outbox_depth']} waiting"
        + (f", oldest {h['outbox_oldest_age_s']:.0f} s" if h["outbox_oldest_age_s"] else ""),
        f"  broker {h['publisher']['broker']}: "
        + ("connected" if h["publisher"]["connected"] else "NOT connected")
        + f", {h['published_total']} published, {h['reconnects']} reconnects",
    ]
    for lane in h["adapters"]:
        lines.append(
            f"  radio {lane['receiver']}: {lane['state']} on {lane['adapter']} "
            f"({lane['mode']}), {lane['adverts']} adverts"
            + (f", last error: {lane['last_error']}" if lane["last_error"] else "")
        )
    zones = facts.get("zones", {})
    if zones:
        lines.append("  zones: " + ", ".join(f"{z} {n}" for z, n in zones.items()))
    for warning in h.get("warnings", []):
        lines.append(f"  warning: {warning}")
    return "\n".join(lines)


def _span(seconds: float) -> str:
    return (
        time.strftime("%H:%M:%S", time.gmtime(seconds))
        if seconds < 86_400
        else (f"{seconds / 86_400:.1f} days")
    )


def as_json(running: bool, facts: dict[str, Any]) -> str:
    """The status for a program."""
    return json.dumps({"running": running, **facts}, indent=2, default=str)
