"""The one way the tests run ``edge-agent`` and ``firmware-sim``: as the processes a field
engineer starts, through ``python -m`` of this checkout."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping

TIMEOUT_S = 300.0


def run_cli(
    *args: str,
    expect: int | None = 0,
    timeout: float = TIMEOUT_S,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    program: str = "edge_agent",
) -> subprocess.CompletedProcess[str]:
    """Run a command to its end; with ``expect``, assert its exit code (stderr shown if not)."""
    proc = subprocess.run(
        [sys.executable, "-m", program, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else dict(env),
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if expect is not None:
        assert proc.returncode == expect, (
            f"exit {proc.returncode}, expected {expect}\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
        )
    return proc


def spawn_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    program: str = "edge_agent",
    stdout: int = subprocess.DEVNULL,
) -> subprocess.Popen[str]:
    """Start a command in the background (to be signalled, killed or waited for); its stderr
    is a pipe (read it, or ``StderrTail`` it, so it never fills)."""
    return subprocess.Popen(
        [sys.executable, "-m", program, *args],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=None if env is None else dict(env),
    )
