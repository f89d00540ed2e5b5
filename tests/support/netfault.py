"""A loopback TCP proxy between the agent and the broker that can go silent (test helper).

Modes, switched at any time for every open and future connection:

- ``forward``: bytes flow both ways.
- ``silent``: a partition that nobody announces: bytes in both directions are read and dropped,
  no connection is closed, no RST is sent.
- ``drop_replies``: the agent's bytes reach the broker, the broker's (PUBACKs, PINGRESPs,
  CONNACKs) are dropped.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Literal

from edge_agent.tools.mosquitto import free_port

Mode = Literal["forward", "silent", "drop_replies"]


class Proxy:
    """``with Proxy(host, port) as proxy:`` listens on ``proxy.port`` and forwards to the broker."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.mode: Mode = "forward"
        self.accepted: list[float] = []
        """Monotonic times connections were accepted."""
        self.client_closed: list[float] = []
        """Monotonic times the agent closed a connection."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def __enter__(self) -> Proxy:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        fut.result(5)
        return self

    def __exit__(self, *_: object) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def set_mode(self, mode: Mode) -> float:
        """Switch mode; returns the monotonic time of the switch."""
        self.mode = mode
        return time.monotonic()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(time.monotonic())
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        down = asyncio.ensure_future(self._pipe(up_reader, writer, upstream=False))
        try:
            await self._pipe(reader, up_writer, upstream=True)
        except asyncio.CancelledError:
            pass  # the proxy is closing
        finally:
            self.client_closed.append(time.monotonic())
            down.cancel()
            up_writer.close()
            writer.close()

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        while True:
            try:
                data = await src.read(65536)
            except OSError:
                return
            if not data:
                return
            if self.mode == "silent" or (self.mode == "drop_replies" and not upstream):
                continue
            dst.write(data)
            try:
                await dst.drain()
            except OSError:
                return
