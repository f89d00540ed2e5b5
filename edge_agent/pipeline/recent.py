"""A bounded map of what was used lately: the identity stage's resolutions, the decode
stage's frames by payload bytes."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    """A map that keeps what was used lately, bounded whatever is put in it: two generations of
    at most ``size`` entries; a hit in the older moves to the younger; when the younger is
    full it becomes the older and the older is dropped. Memory follows the devices heard in
    the last generation or two (address churn), never every address ever heard."""

    __slots__ = ("_old", "_size", "_young")

    def __init__(self, size: int) -> None:
        self._size = size
        self._young: dict[K, V] = {}
        self._old: dict[K, V] = {}

    def __getitem__(self, key: K) -> V:
        try:
            return self._young[key]
        except KeyError:
            value = self._old.pop(key)  # KeyError: not known
            self[key] = value
            return value

    def get(self, key: K, default: V) -> V:
        """The value, or ``default`` when not known (no exception: the hot path's miss)."""
        value = self._young.get(key, default)
        if value is default and key in self._old:
            value = self[key]
        return value

    def __setitem__(self, key: K, value: V) -> None:
        if len(self._young) >= self._size:
            self._old, self._young = self._young, {}
        self._young[key] = value

    def __len__(self) -> int:
        return len(self._young) + len(self._old)

    def clear(self) -> None:
        """Forget everything."""
        self._young.clear()
        self._old.clear()

    def drop_if(self, doomed: Callable[[V], bool]) -> None:
        """Forget every entry whose value is ``doomed``."""
        for gen in (self._young, self._old):
            for key in [k for k, v in gen.items() if doomed(v)]:
                del gen[key]
