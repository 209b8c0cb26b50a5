"""The decoded-pixel budget: how many image pixels may be decoded at once, per request and in
the whole process.

An image's memory grows with its pixels, not its bytes: a flat-colour PNG of 40 M pixels is
116 KB on the wire and about 160 MB decoded. The per-image pixel limit alone let one client
hold gigabytes with a few such images in one request, or a few requests at once. A request
states its pixels (from the image headers, before any decoding), is refused (413) when they are
over the per-request budget, and otherwise waits for room in the process budget until its
deadline (then 503 with ``Retry-After``). After a large request the freed memory goes back to
the system (``service.server.memory.release_freed``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread

from service.errors import OverloadedError, PayloadTooLargeError
from service.server.memory import release_freed

# A request of more pixels than a 4K frame gives its freed memory back when it ends; smaller
# ones leave it to the allocator, which reuses it for the next frame (service.server.memory).
RELEASE_OVER_PIXELS = 3840 * 2160
RELEASE_DELAY_S = 0.5


class PixelBudget:
    def __init__(self, per_request: int, total: int, release_over: int) -> None:
        self.per_request = per_request
        self.total = total
        self.release_over = release_over  # pixels past which a request's memory is given back
        self.in_use = 0
        self._changed = asyncio.Condition()
        self._large_since_release = False
        self._release: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def hold(self, pixels: int, timeout_s: float) -> AsyncIterator[None]:
        """Hold ``pixels`` of the budget while the images are decoded and processed."""
        if pixels > self.per_request:
            raise PayloadTooLargeError(
                f"the request's images have {pixels} pixels together, over the limit of "
                f"{self.per_request} (POLYPSERVE_MAX_REQUEST_PIXELS)",
                limit=self.per_request,
            )
        needed = min(pixels, self.total)
        async with self._changed:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._changed.wait_for(lambda: self.in_use + needed <= self.total)
            except TimeoutError:
                raise OverloadedError(
                    f"images of {self.in_use} pixels are being decoded; this request's {pixels} "
                    f"do not fit the budget of {self.total} (POLYPSERVE_MAX_DECODED_PIXELS)"
                ) from None
            self.in_use += needed
        try:
            yield
        finally:
            async with self._changed:
                self.in_use -= needed
                self._changed.notify_all()
            self._large_since_release |= pixels > self.release_over
            if self._large_since_release and self._release is None:
                self._release = asyncio.create_task(self._release_when_idle())

    async def _release_when_idle(self) -> None:
        """Once no image is being decoded and the last answers have gone out, give the freed
        memory back; while requests keep coming, the allocator keeps it for them."""
        try:
            while True:
                await asyncio.sleep(RELEASE_DELAY_S)
                if self.in_use == 0:
                    self._large_since_release = False
                    await to_thread.run_sync(release_freed)
                    return
        finally:
            self._release = None
