"""sd_notify: tell systemd (``Type=notify``) that we are ready, alive, or stopping, and how we
are (``STATUS=``, the line ``systemctl status`` shows)."""

from __future__ import annotations

import contextlib
import os
import socket


def sd_notify(message: str) -> None:
    """Send ``message`` (``READY=1``, ``WATCHDOG=1`` …) to ``$NOTIFY_SOCKET``; a no-op outside
    systemd, never an error, and never a wait (a full socket drops the message)."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)  # a manager that does not read must never stop the agent
        sock.sendto(message.encode(), addr)


def watchdog_interval(default: float) -> float:
    """How often to tell systemd we are alive: half of ``$WATCHDOG_USEC`` when systemd set it
    for this process (``WatchdogSec=``), else ``default``."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0 or (pid and pid != str(os.getpid())):
        return default
    return min(default, int(usec) / 2e6)
