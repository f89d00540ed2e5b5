"""sd_notify: tell systemd (``Type=notify``) that we are ready, alive, or stopping."""

from __future__ import annotations

import contextlib
import os
import socket


def sd_notify(message: str) -> None:
    """Send ``message`` (``READY=1``, ``WATCHDOG=1`` …) to ``$NOTIFY_SOCKET``; a no-op outside
    systemd, and never an error."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), addr)
