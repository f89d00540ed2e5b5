"""Where advertisements come from: the ``AdvertSource`` protocol, the sink sources feed, and
``SourceFeed``, the one way to consume a source (run, record, scan and calibrate use it)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from edge_agent.errors import EdgeAgentError
from edge_agent.models import Advert

if TYPE_CHECKING:
    from edge_agent.contract import AdapterHealth


class AdvertSink:
    """The bounded queue between a source and the pipeline.

    Live sources (the radio) call ``offer``, which never blocks and counts what is dropped;
    virtual sources (simulation, replay) ``await put`` and are slowed down instead.
    """

    END: Advert | None = None

    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[Advert | None] = asyncio.Queue(maxsize)
        self.dropped = 0
        self.received = 0

    def offer(self, advert: Advert) -> bool:
        """Enqueue without waiting; a full queue drops the advert and counts it."""
        try:
            self.queue.put_nowait(advert)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        self.received += 1
        return True

    async def put(self, advert: Advert) -> None:
        """Enqueue, waiting for room (virtual sources only)."""
        await self.queue.put(advert)
        self.received += 1

    async def end(self) -> None:
        """Mark the end of a finite source."""
        await self.queue.put(self.END)


class AdvertSource(Protocol):
    """Anything that can feed adverts: the radio, the simulated store, a recording."""

    name: str
    """Short name for logs and ``health`` (``bleak:hci0``, ``sim``, ``replay``)."""
    live: bool
    """True for the radio: adverts come when they come and are never waited for (``offer``);
    False for virtual sources, which wait for room in the queue."""

    def now(self) -> float:
        """Current time on the source's monotonic clock (virtual for simulation and replay).

        Every advert with ``t`` earlier than this has already been handed to the sink.
        """
        ...

    def wall_at(self, t: float) -> float:
        """Wall-clock epoch seconds for a time on the source's clock."""
        ...

    async def run(self, sink: AdvertSink) -> None:
        """Feed the sink until cancelled, or until a finite source ends (then ``sink.end()``)."""
        ...

    def adapter_health(self) -> list[AdapterHealth]:
        """State and counters of each radio (empty for virtual sources)."""
        ...


def source_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """What a task group's failure was, for a command to report plainly: the first
    ``EdgeAgentError`` in it, else its only exception, else the group itself."""
    for err in group.exceptions:
        if isinstance(err, EdgeAgentError):
            return err
        if isinstance(err, BaseExceptionGroup):
            inner = source_error(err)
            if inner is not err:
                return inner
    if len(group.exceptions) == 1 and not isinstance(group.exceptions[0], BaseExceptionGroup):
        return group.exceptions[0]
    return group


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SourceFeed:
    """Runs a source and hands out what it delivers, batch by batch, until the source ends,
    SIGINT or SIGTERM arrives (with ``signals``), or ``stop()`` is called.

    An async context manager: the source runs in a task group of its own while the block runs,
    and a source that fails ends the block with its error (``source_error``).
    """

    def __init__(self, source: AdvertSource, queue_size: int, *, signals: bool = True) -> None:
        self.source = source
        self.sink = AdvertSink(queue_size)
        self.ended = False
        """True once the source said it has nothing more."""
        self._stop = asyncio.Event()
        self._signals = signals
        self._group: asyncio.TaskGroup | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def stopped(self) -> bool:
        """True once ``stop()`` was called (or a signal came)."""
        return self._stop.is_set()

    def stop(self) -> None:
        """End the batches (what is queued by then is still handed out)."""
        self._stop.set()

    async def __aenter__(self) -> SourceFeed:
        if self._signals:
            loop = asyncio.get_running_loop()
            for sig in STOP_SIGNALS:
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self.stop)
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._task = self._group.create_task(self.source.run(self.sink), name="source")
        return self

    async def __aexit__(
        self,
        et: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._group is not None and self._task is not None
        self._task.cancel()
        try:
            await self._group.__aexit__(et, exc, tb)
        except BaseExceptionGroup as group:
            raise source_error(group) from None
        finally:
            if self._signals:
                loop = asyncio.get_running_loop()
                for sig in STOP_SIGNALS:
                    with contextlib.suppress(NotImplementedError, RuntimeError):
                        loop.remove_signal_handler(sig)

    async def batches(
        self, timeout: float | None = None, gather: Callable[[], float] | None = None
    ) -> AsyncIterator[list[Advert]]:
        """What the source delivered since the previous batch: waits for an advert (at most
        ``timeout`` seconds, then an empty batch), then — with ``gather`` — waits the seconds
        it says more (the rest of the tick that advert falls in: one wake-up a tick, not one
        per advert), then takes everything queued. Ends after the source's end, or after
        ``stop()`` with what was queued by then."""
        queue = self.sink.queue
        while not self.ended:
            if self.stopped:
                batch = self._drain([])
                if batch:
                    yield batch
                return
            try:
                async with asyncio.timeout(timeout):
                    first = await queue.get()
            except TimeoutError:
                yield []
                continue
            if first is None:
                self.ended = True
                return
            if gather is not None and (wait := gather()) > 0 and not self.stopped:
                await asyncio.sleep(wait)
            yield self._drain([first])

    def _drain(self, batch: list[Advert]) -> list[Advert]:
        queue = self.sink.queue
        while not queue.empty():
            item = queue.get_nowait()
            if item is None:
                self.ended = True
                break
            batch.append(item)
        return batch
