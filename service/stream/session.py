"""One video session: latest-frame-wins slots, a decode stage and an inference stage.

    receive ──► [slot: 1 frame] ──► decode (thread) ──► [slot: 1 tensor] ──► infer + track ──► send

Each slot holds one item; a newer one replaces it and the replaced frame counts as dropped, so
latency stays bounded at any input rate and no queue grows. The two stages overlap, just in
time: while a frame is inferred, the decoder waits until it can just finish the next one as
inference ends, then takes the newest frame. Decoding earlier would hand inference a staler
frame, and decoding frames that are replaced before inference takes them steals CPU from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from anyio import CapacityLimiter, to_thread

from service.dataplane.imaging import open_image
from service.dataplane.predict import infer, prepare_batch
from service.dataplane.tasks.geometry import Placement
from service.dataplane.timing import StageTimer, complete
from service.errors import PolypServeError
from service.repository.model_version import ModelVersion
from service.scheduling.pixel_budget import PixelBudget
from service.scheduling.priority import LiveWork
from service.stream.frame_results import FrameTracker
from service.stream.framing import FramePayload
from service.stream.params import StreamOptions
from service.stream.report import SessionStats
from service.stream.slots import LatestSlot, MovingMean
from service.stream.tracking import SmoothingConfig

logger = logging.getLogger(__name__)
# Seconds a frame waits for room in the decoded-pixel budget before it is an error.
FRAME_BUDGET_WAIT_S = 1.0
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Frame:
    payload: FramePayload
    index: int
    received: float  # perf_counter seconds


@dataclass(frozen=True)
class DecodedFrame:
    frame: Frame
    batch: np.ndarray
    placement: Placement
    timer: StageTimer
    decoded: float


class StreamSession:
    def __init__(
        self,
        model: ModelVersion,
        smoothing: SmoothingConfig,
        iou_threshold: float,
        max_detections: int,
        max_pixels: int,
        send: Send,
        close: Callable[[int, str], Awaitable[None]],
        decoders: CapacityLimiter,
        pixels: PixelBudget,
        live: LiveWork | None = None,
    ) -> None:
        self.model = model
        assert model.manifest is not None
        self.frames = FrameTracker(
            model.manifest, StreamOptions(smoothing, iou_threshold, max_detections)
        )
        self.max_pixels = max_pixels
        self._send = send
        self._close = close
        self.decoders = decoders
        self.pixels = pixels
        self._frames: LatestSlot[Frame] = LatestSlot()
        self._decoded: LatestSlot[DecodedFrame] = LatestSlot()
        self._decoded_taken = asyncio.Event()
        self._decoded_taken.set()
        self._infer_started = 0.0
        self._infer_idle = asyncio.Event()
        self._infer_idle.set()
        self._decode_time, self._infer_time = MovingMean(), MovingMean()
        self.stats = SessionStats()
        self._tasks: list[asyncio.Task[None]] = []
        # Frames between arrival and answer (a replaced one passes its place on), counted in
        # the process's live work too: background jobs wait while there are any.
        self.live = live or LiveWork()
        self._pending = 0

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._decode_stage()),
            asyncio.create_task(self._infer_stage()),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.live.add(-self._pending)
        self._pending = 0

    async def close(self, code: int, reason: str) -> None:
        """Stop taking frames, send the report and a close frame (the server going away)."""
        await self.stop()
        with contextlib.suppress(Exception):  # the client may already be gone
            await self._close(code, reason)

    def offer(self, payload: FramePayload) -> None:
        """A frame arrived: it takes the slot, and a frame still waiting there is dropped."""
        frame = Frame(payload, self.stats.received, time.perf_counter())
        self.stats.received += 1
        if self._frames.put(frame) is not None:
            self.stats.count_drop()
        else:
            self._pending += 1
            self.live.add(1)

    def _answered(self) -> None:
        self._pending -= 1
        self.live.add(-1)

    async def _decode_stage(self) -> None:
        while True:
            await self._decoded_taken.wait()
            ready_at = self._infer_started + self._infer_time.value - self._decode_time.value
            if (wait := ready_at - time.perf_counter()) > 0:
                # An estimate: an inference that ends sooner starts the decoding at once.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._infer_idle.wait()
            frame = await self._frames.get()
            started = time.perf_counter()
            timer = StageTimer()
            timer.stages["queue"] = (started - frame.received) * 1000.0
            try:
                image = open_image(frame.payload.image, max_pixels=self.max_pixels)
                # the latest frame wins: one that waits long for the budget is stale anyway
                async with self.pixels.hold(image.width * image.height, FRAME_BUDGET_WAIT_S):
                    batch, (placement,) = await to_thread.run_sync(
                        prepare_batch, self.model, [image], timer, limiter=self.decoders
                    )
            except Exception as exc:
                await self._frame_failed(frame, exc)
                continue
            decoded = DecodedFrame(frame, batch, placement, timer, time.perf_counter())
            self._decode_time.add(decoded.decoded - started)
            self._decoded_taken.clear()
            self._decoded.put(decoded)  # empty: the inference stage took the previous one

    async def _infer_stage(self) -> None:
        assert self.model.manifest is not None
        input_name = self.model.manifest.inputs[0].name
        while True:
            self._infer_idle.set()
            item = await self._decoded.get()
            self._infer_idle.clear()
            self._infer_started = time.perf_counter()
            self._decoded_taken.set()
            timer = item.timer
            timer.stages["queue"] += (time.perf_counter() - item.decoded) * 1000.0
            try:
                outputs = await infer(self.model, {input_name: item.batch}, timer)
                with timer.stage("postprocess"):
                    tracked = self.frames.track(item.frame.index, outputs, item.placement)
                    result = {
                        "type": "result",
                        **self._echo(item.frame),
                        **tracked,
                        "dropped": self.stats.take_dropped_since_result(),
                    }
            except Exception as exc:
                await self._frame_failed(item.frame, exc)
                continue
            self._infer_time.add(time.perf_counter() - self._infer_started)
            self._infer_idle.set()
            total_ms = (time.perf_counter() - item.frame.received) * 1000.0
            result["timing_ms"] = {**complete(self.model, timer), "total": round(total_ms, 3)}
            self.stats.record_result(total_ms, bool(result["tracks"]))
            self._answered()
            await self._send(result)

    async def _frame_failed(self, frame: Frame, exc: Exception) -> None:
        """One frame failed: tell the client and go on with the next one."""
        self.stats.errors += 1
        self._answered()
        if isinstance(exc, PolypServeError):
            await self._send({"type": "error", **self._echo(frame), **exc.to_dict()})
            return
        logger.exception("stream frame %s failed", frame.index)
        await self._send({"type": "error", **self._echo(frame), "error": "internal error"})

    @staticmethod
    def _echo(frame: Frame) -> dict[str, Any]:
        return {
            "frame_index": frame.index,
            "frame_id": frame.payload.frame_id,
            "timestamp": frame.payload.timestamp,
        }

    def report(self) -> dict[str, Any]:
        return self.stats.report(self.frames.all_tracks())
