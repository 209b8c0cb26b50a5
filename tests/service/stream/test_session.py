"""The stream session's pipeline on the tiny detector, without a transport."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio import CapacityLimiter

from service.config import Settings
from service.dataplane import predict
from service.repository.model_version import load_version
from service.scheduling.pixel_budget import RELEASE_OVER_PIXELS, PixelBudget
from service.stream import session as session_module
from service.stream.framing import FramePayload
from service.stream.session import StreamSession
from service.stream.slots import LatestSlot, MovingMean
from service.stream.tracking import SmoothingConfig
from tests.images import encode, solid_rgb

pytestmark = pytest.mark.anyio
FRAME = encode(solid_rgb(64, 48, (220, 0, 0)), "JPEG", quality=90)


def _session(tiny_repo: Path) -> tuple[StreamSession, list[dict[str, Any]]]:
    """A session on the tiny detector whose messages land in the returned list."""
    model = load_version(
        "tiny-detector", 1, tiny_repo / "tiny-detector" / "1", Settings(intra_op_threads=1)
    )
    results: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        results.append(message)

    async def close(code: int, reason: str) -> None:
        pass

    stream = StreamSession(
        model,
        SmoothingConfig(min_hits=1),
        0.45,
        10,
        50_000_000,
        send,
        close,
        CapacityLimiter(2),
        PixelBudget(50_000_000, 50_000_000, RELEASE_OVER_PIXELS),
    )
    return stream, results


async def test_latest_slot_keeps_the_newest_item_and_returns_the_replaced_one() -> None:
    slot: LatestSlot[int] = LatestSlot()
    assert slot.put(1) is None
    assert slot.put(2) == 1
    assert await slot.get() == 2
    waiter = asyncio.create_task(slot.get())
    await asyncio.sleep(0)
    assert not waiter.done()  # empty: get waits for the next item
    slot.put(3)
    assert await waiter == 3


def test_moving_mean_starts_at_the_first_value_then_follows_slowly() -> None:
    mean = MovingMean(weight=0.5)
    mean.add(4.0)
    assert mean.value == 4.0
    mean.add(2.0)
    assert mean.value == 3.0


async def test_a_burst_decodes_only_frames_that_are_inferred(
    tiny_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[int] = []

    def counting_prepare(*args: Any) -> Any:
        decoded.append(1)
        return predict.prepare_batch(*args)

    async def slow_infer(*args: Any) -> Any:
        await asyncio.sleep(0.03)  # inference much slower than decoding, as on a real model
        return await predict.infer(*args)

    monkeypatch.setattr(session_module, "prepare_batch", counting_prepare)
    monkeypatch.setattr(session_module, "infer", slow_infer)
    stream, results = _session(tiny_repo)
    stream.start()
    try:
        for index in range(20):
            stream.offer(FramePayload(FRAME, index))
            await asyncio.sleep(0.005)
        while not results or results[-1].get("frame_id") != 19:
            await asyncio.sleep(0.01)
    finally:
        await stream.stop()
    frames = stream.report()["frames"]
    assert frames["dropped"] > 0
    assert frames["processed"] + frames["dropped"] == 20
    # No decoded frame was thrown away: every decode was inferred and answered.
    assert len(decoded) == frames["processed"] == len(results)


async def test_an_inference_ending_sooner_than_estimated_starts_the_next_decode(
    tiny_repo: Path,
) -> None:
    stream, results = _session(tiny_repo)
    stream._infer_time.add(5.0)  # a wildly pessimistic estimate (say, a slow first inference)
    stream.start()
    try:
        stream.offer(FramePayload(FRAME, 0))
        await asyncio.sleep(0.1)  # frame 0 decoded and in inference (or done)
        stream.offer(FramePayload(FRAME, 1))
        with anyio.fail_after(2):  # not the 5 s the estimate would make the decoder wait
            while len(results) < 2:
                await asyncio.sleep(0.01)
    finally:
        await stream.stop()
    assert [r["frame_id"] for r in results] == [0, 1]


async def test_frames_count_as_live_work_from_arrival_to_answer(tiny_repo: Path) -> None:
    stream, results = _session(tiny_repo)
    live = stream.live
    stream.offer(FramePayload(FRAME, 0))
    stream.offer(FramePayload(FRAME, 1))  # replaces frame 0: still one frame waiting
    assert live.in_flight == 1
    stream.start()
    try:
        with anyio.fail_after(5):
            while not results:
                await asyncio.sleep(0.005)
        assert live.in_flight == 0 and results[0]["frame_id"] == 1
        stream.offer(FramePayload(b"not an image", 2))  # an error answers it too
        with anyio.fail_after(5):
            while len(results) < 2:
                await asyncio.sleep(0.005)
        assert results[1]["type"] == "error" and live.in_flight == 0
        stream.offer(FramePayload(FRAME, 3))
    finally:
        await stream.stop()
    assert live.in_flight == 0  # a frame left unanswered at the end is no longer waited for
