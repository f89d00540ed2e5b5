"""When things without news must next be looked at: the one timer mechanism of the pipeline
(the zone machine's devices, beacon health). Pure: no I/O."""

from __future__ import annotations

import heapq


class Timers:
    """Keys due at times, in a heap, with one live entry per key: a later time than the one
    queued waits for that one (the owner looks a time too many, which changes nothing, and
    schedules again), an earlier one is queued at once, so news never costs a push."""

    __slots__ = ("_heap", "_live")

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._live: dict[str, float] = {}

    def schedule(self, key: str, at: float) -> None:
        """``key`` must be looked at by ``at``."""
        queued = self._live.get(key)
        if queued is None or at < queued:
            self._live[key] = at
            heapq.heappush(self._heap, (at, key))

    def cancel(self, key: str) -> None:
        """``key`` is gone: its entry is dropped when it comes up."""
        self._live.pop(key, None)

    def due(self, now: float) -> list[str]:
        """The keys whose time came by ``now``, earliest first; each must be scheduled again
        if it is still to be looked at."""
        out: list[str] = []
        heap, live = self._heap, self._live
        while heap and heap[0][0] <= now:
            at, key = heapq.heappop(heap)
            if live.get(key) == at:  # else superseded by an earlier one, or cancelled
                del live[key]
                out.append(key)
        return out
