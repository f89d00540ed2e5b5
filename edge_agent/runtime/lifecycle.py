"""What the agent leaves in its state directory about its own runs (``last-run.json``), so that
``edge-agent status`` can say why it is not running."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from edge_agent.contract import rfc3339
from edge_agent.runtime.files import replace_atomically

FILE = "last-run.json"


def record_start(state_dir: Path) -> dict[str, Any]:
    """The run began: the file says so until ``record_end`` rewrites it."""
    run = {"state": "running", "pid": os.getpid(), "started_at": rfc3339(time.time())}
    _write(state_dir, run)
    return run


def record_end(state_dir: Path, run: dict[str, Any], how: str) -> None:
    """The run ended ``how`` (stopped, the source ended, failed: …)."""
    _write(state_dir, {**run, "state": "ended", "ended_at": rfc3339(time.time()), "how": how})


def read_last_run(state_dir: Path) -> dict[str, Any] | None:
    """What the last run left (``None``: nothing, or unreadable)."""
    try:
        data = json.loads((state_dir / FILE).read_text(encoding="utf-8")[:65536])
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write(state_dir: Path, data: dict[str, Any]) -> None:
    path = state_dir / FILE
    with contextlib.suppress(OSError):  # a status aid: never a reason to fail
        replace_atomically(path, (json.dumps(data) + "\n").encode())
