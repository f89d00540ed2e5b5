"""The local control socket: the running agent's server, and the client that ``consent`` and
``erase`` use to reach it.

The agent listens on ``<state_dir>/control.sock`` (owner only). One JSON object per line each
way. When no agent runs, the commands act on the files directly (see ``cli``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent.errors import ControlError, EdgeAgentError

_LOGGER = logging.getLogger(__name__)
TIMEOUT_S = 15.0
SERVER_TIMEOUT_S = 10.0
"""How long one connection may take to send its request and read the reply."""
MAX_LINE = 64 * 1024
"""Longest request accepted."""

Handler = Callable[[dict[str, object]], dict[str, object]]
"""Answers one request (``{"op": …}``) with a reply (``{"ok": …}``)."""


async def serve(path: Path, handler: Handler) -> None:
    """Answer requests on the socket at ``path`` until cancelled (the file is removed then)."""
    _prepare(path)
    old = os.umask(0o177)  # the socket is the owner's only (root may always connect)
    try:
        server = await asyncio.start_unix_server(
            lambda r, w: _answer(handler, r, w), path=str(path), limit=MAX_LINE
        )
    finally:
        os.umask(old)
    try:
        async with server:
            await server.serve_forever()
    finally:
        _remove(path)


def _prepare(path: Path) -> None:
    """Its directory made, a stale socket file of an earlier run removed (local and quick)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove(path)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


async def _answer(
    handler: Handler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        async with asyncio.timeout(SERVER_TIMEOUT_S):
            line = await reader.readline()
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("not an object")
                reply = handler(request)
            except (ValueError, EdgeAgentError) as err:
                reply = {"ok": False, "error": str(err)}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
    except (TimeoutError, OSError) as err:
        _LOGGER.warning("control socket: request failed: %s", err)
    finally:
        writer.close()


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
