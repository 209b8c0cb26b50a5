"""Building blocks of a stream session: a queue of depth one where the newest item wins, and
a moving mean of a stage's duration (from which the decode stage times its start)."""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """A queue of depth one where the newest item wins."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._ready = asyncio.Event()

    def put(self, item: T) -> T | None:
        """Store ``item``; returns the item it replaced, if any."""
        replaced, self._item = self._item, item
        self._ready.set()
        return replaced

    async def get(self) -> T:
        while self._item is None:
            self._ready.clear()
            await self._ready.wait()
        item, self._item = self._item, None
        return item


class MovingMean:
    """Exponentially weighted mean of a stage's duration, in seconds."""

    def __init__(self, weight: float = 0.2) -> None:
        self.weight = weight
        self.value = 0.0

    def add(self, seconds: float) -> None:
        self.value += self.weight * (seconds - self.value) if self.value else seconds
