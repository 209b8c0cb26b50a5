"""Process lifecycle: draining on SIGTERM before uvicorn's own shutdown.

On the first SIGTERM the process turns *draining*: readiness answers 503 at once so a load
balancer stops sending, while requests (new ones too) are still served for ``grace_s``. Then
stream sessions get a report and a close frame with a reason, and uvicorn shuts down, letting
requests in flight finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import FrameType

import uvicorn

logger = logging.getLogger(__name__)

DrainHook = Callable[[], Awaitable[None]]


class Lifecycle:
    def __init__(self) -> None:
        self.draining = False
        self.hooks: list[DrainHook] = []

    async def run_hooks(self) -> None:
        for hook in list(self.hooks):
            try:
                await hook()
            except Exception:
                logger.exception("a drain hook failed")


# One per process: signals are per process too.
LIFECYCLE = Lifecycle()


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first SIGTERM/SIGINT drains for ``grace_s`` before exiting."""

    def __init__(self, config: uvicorn.Config, grace_s: float) -> None:
        super().__init__(config)
        self.grace_s = grace_s
        self._drain_task: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if LIFECYCLE.draining or self.grace_s <= 0:
            super().handle_exit(sig, frame)  # a second signal: stop now
            return
        LIFECYCLE.draining = True
        logger.info("signal %s: draining for %.1f s, readiness now 503", sig, self.grace_s)
        loop = asyncio.get_event_loop()
        loop.call_soon_threadsafe(self._start_drain, sig, frame)

    def _start_drain(self, sig: int, frame: FrameType | None) -> None:
        self._drain_task = asyncio.ensure_future(self._drain(sig, frame))

    async def _drain(self, sig: int, frame: FrameType | None) -> None:
        await asyncio.sleep(self.grace_s)
        await LIFECYCLE.run_hooks()
        super().handle_exit(sig, frame)
        # uvicorn re-raises captured signals after shutdown, so the exit status would say
        # "killed"; a completed drain is a clean exit, status 0.
        self._captured_signals.clear()
