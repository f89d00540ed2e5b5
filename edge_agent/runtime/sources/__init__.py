"""Where advertisements come from: the ``AdvertSource`` protocol and the sink sources feed."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

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
    """The first ``EdgeAgentError`` out of a task group's failure (else the group itself), so
    that commands can report a failed source plainly."""
    from edge_agent.errors import EdgeAgentError

    for err in group.exceptions:
        if isinstance(err, EdgeAgentError):
            return err
        if isinstance(err, BaseExceptionGroup):
            inner = source_error(err)
            if inner is not err:
                return inner
    return group
