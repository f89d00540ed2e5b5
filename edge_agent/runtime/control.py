"""The local control socket's client side: ``consent`` and ``erase`` reach the running agent.

The agent listens on ``<state_dir>/control.sock`` (owner only). One JSON object per line each
way. When no agent runs, the commands act on the files directly (see ``cli``).
"""

from __future__ import annotations

import contextlib
import json
import socket
from pathlib import Path
from typing import Any

from edge_agent.errors import ControlError

TIMEOUT_S = 15.0


def request(
    path: Path, payload: dict[str, Any], timeout: float = TIMEOUT_S
) -> dict[str, Any] | None:
    """Send one request to the agent; its reply, or ``None`` when no agent listens there."""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except OSError as err:
        raise ControlError(str(path), f"cannot create a socket: {err}") from err
    with contextlib.closing(sock):
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return None  # no agent running (or a stale socket file)
        except PermissionError as err:
            raise ControlError(str(path), "permission denied (run as root)") from err
        except OSError as err:
            raise ControlError(str(path), f"cannot connect: {err}") from err
        try:
            sock.sendall(json.dumps(payload).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as err:
            raise ControlError(str(path), f"no reply: {err}") from err
    try:
        reply = json.loads(data)
    except json.JSONDecodeError as err:
        raise ControlError(str(path), f"unreadable reply {data[:80]!r}") from err
    if not isinstance(reply, dict):
        raise ControlError(str(path), f"unexpected reply {reply!r}")
    return reply
