from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from service.errors import DeadlineExceededError, OverloadedError
from service.logs import REQUEST_ID
from service.scheduling.batching import Batcher, BatchingConfig, RunBatch

pytestmark = pytest.mark.anyio


class RecordingModel:
    """Doubles its input; records each batch's row count; optionally slow."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.batches: list[int] = []
        self.seen: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        time.sleep(self.seconds)
        with self.lock:
            self.batches.append(feeds["x"].shape[0])
            self.seen.extend(feeds["x"][:, 0].tolist())
        return [feeds["x"] * 2]


def _item(value: float, rows: int = 1, width: int = 3) -> dict[str, np.ndarray]:
    return {"x": np.full((rows, width), value, np.float32)}


async def test_concurrent_requests_share_batches_and_get_their_own_rows() -> None:
    model = RecordingModel(seconds=0.05)
    batcher = Batcher(model, BatchingConfig(max_batch_size=8), batchable=True)
    results = await asyncio.gather(*(batcher.infer(_item(i)) for i in range(9)))
    for i, (out,) in enumerate(results):
        np.testing.assert_array_equal(out, np.full((1, 3), 2 * i))
    # All nine queue before the worker wakes: a full batch, then the rest.
    assert model.batches == [8, 1]
    stats = batcher.stats
    assert (stats.execution_count, stats.inference_count, stats.queue.count) == (2, 9, 9)
    assert {size: d.count for size, d in stats.batches.items()} == {8: 1, 1: 1}
    # Arriving while a batch runs, items gather for the next one.
    model.batches.clear()
    first = asyncio.create_task(batcher.infer(_item(0)))
    await asyncio.sleep(0.01)
    await asyncio.gather(first, *(batcher.infer(_item(i)) for i in range(5)))
    assert model.batches == [1, 5]
    await batcher.close()


async def test_queue_delay_gathers_a_batch() -> None:
    model = RecordingModel()
    batcher = Batcher(model, BatchingConfig(max_batch_size=4, max_queue_delay_ms=50), True)

    async def later(value: float) -> None:
        await asyncio.sleep(0.01)
        await batcher.infer(_item(value))

    await asyncio.gather(batcher.infer(_item(0)), later(1), later(2))
    assert model.batches == [3]
    await batcher.close()


async def test_multi_row_items_are_split_out_again_and_never_exceed_the_batch() -> None:
    model = RecordingModel(seconds=0.02)
    batcher = Batcher(model, BatchingConfig(max_batch_size=4), batchable=True)
    results = await asyncio.gather(*(batcher.infer(_item(i, rows=3)) for i in range(4)))
    assert [out.shape[0] for (out,) in results] == [3, 3, 3, 3]
    assert max(model.batches) <= 4
    await batcher.close()


async def test_different_shapes_never_share_a_batch() -> None:
    model = RecordingModel(seconds=0.02)
    batcher = Batcher(model, BatchingConfig(max_batch_size=8), batchable=True)
    await asyncio.gather(*(batcher.infer(_item(i, width=3 + i % 2)) for i in range(6)))
    assert model.batches == [3, 3]
    assert model.seen == [0, 2, 4, 1, 3, 5]  # FIFO within each shape
    await batcher.close()


async def test_unbatchable_graphs_run_one_item_at_a_time() -> None:
    model = RecordingModel(seconds=0.01)
    batcher = Batcher(model, BatchingConfig(max_batch_size=8), batchable=False)
    await asyncio.gather(*(batcher.infer(_item(i)) for i in range(4)))
    assert model.batches == [1, 1, 1, 1]
    await batcher.close()


async def test_admission_follows_the_config_and_closes_with_the_batcher() -> None:
    config = BatchingConfig(max_queue_size=2, latency_budget_ms=50, instances=1, pipeline_width=3)
    batcher = Batcher(RecordingModel(), config, batchable=True)
    admission = batcher.admission
    assert (admission.max_requests, admission.latency_budget_s, admission.min_admitted) == (
        2,
        0.05,
        3,
    )
    with admission.hold():
        (out,) = await batcher.infer(_item(1))
    assert out[0, 0] == 2
    await batcher.close()
    with pytest.raises(OverloadedError, match="shutting down"), admission.hold():
        pass


async def test_the_ceiling_is_the_best_batch_sizes_rows_per_second_times_the_instances() -> None:
    batcher = Batcher(RecordingModel(seconds=0.02), BatchingConfig(instances=2), batchable=True)
    assert batcher.inference_ceiling() is None and batcher.admission.expected_latency_s() is None
    await batcher.infer(_item(0))  # one row in about 20 ms
    await asyncio.gather(*(batcher.infer(_item(i)) for i in range(4)))  # four in about 20 ms
    alone, together = (batcher.stats.batches[n] for n in (1, 4))
    best = 4 * together.count * 1e9 / together.ns
    assert best > 1e9 / alone.ns  # batching made the rows cheaper: the ceiling is the batch's
    assert batcher.inference_ceiling() == pytest.approx(2 * best)
    assert batcher.admission.expected_latency_s() == pytest.approx(1 / (2 * best))
    await batcher.close()


async def test_deadline_answers_504_and_drops_work_not_started() -> None:
    model = RecordingModel(seconds=0.2)
    batcher = Batcher(model, BatchingConfig(max_batch_size=1, timeout_ms=100), True)
    first = asyncio.create_task(batcher.infer(_item(1)))
    await asyncio.sleep(0.01)
    with pytest.raises(DeadlineExceededError):
        await batcher.infer(_item(2))
    with pytest.raises(DeadlineExceededError):
        await first  # started, but finished past its deadline
    await asyncio.sleep(0.3)
    assert model.seen == [1.0]  # item 2 never ran
    await batcher.close()


async def test_a_failing_batch_fails_its_items_and_the_batcher_goes_on() -> None:
    calls = 0

    def flaky(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return [feeds["x"]]

    batcher = Batcher(flaky, BatchingConfig(), batchable=True)
    with pytest.raises(RuntimeError, match="boom"):
        await batcher.infer(_item(1))
    (out,) = await batcher.infer(_item(2))
    assert out[0, 0] == 2 and batcher.stats.execution_count == 1
    await batcher.close()


async def test_close_finishes_queued_work_then_refuses() -> None:
    model = RecordingModel(seconds=0.02)
    batcher = Batcher(model, BatchingConfig(max_batch_size=1), batchable=True)
    pending = [asyncio.create_task(batcher.infer(_item(i))) for i in range(3)]
    await asyncio.sleep(0)
    await batcher.close()
    assert all(task.done() and not task.exception() for task in pending)
    with pytest.raises(OverloadedError):
        await batcher.infer(_item(5))


async def test_an_idle_model_runs_work_at_once_in_its_inference_thread() -> None:
    model = RecordingModel()
    batcher = Batcher(model, BatchingConfig(), batchable=True)
    assert batcher.idle
    threads: list[str] = []

    def work(run: RunBatch) -> float:
        threads.append(f"{threading.current_thread().name} {REQUEST_ID.get()}")
        (out,) = run(_item(3, rows=2))
        return float(out.sum())

    REQUEST_ID.set("r-1")
    assert await batcher.run_alone(work) == 36.0
    # In the inference thread, in the caller's context (its log lines keep the request id).
    assert threads[0].startswith("infer") and threads[0].endswith(" r-1")
    assert model.batches == [2]
    stats = batcher.stats
    # Counted as a batch of its rows that waited for nothing.
    assert (stats.execution_count, stats.inference_count, stats.queue.count) == (1, 2, 1)
    assert stats.queue.ns == 0 and {n: d.count for n, d in stats.batches.items()} == {2: 1}
    with batcher.admission.hold():
        assert batcher.idle  # the caller alone
        with batcher.admission.hold():
            assert not batcher.idle  # another request is in
    await batcher.close()


async def test_batches_wait_for_work_running_alone_and_close_waits_for_both() -> None:
    model = RecordingModel(seconds=0.05)
    batcher = Batcher(model, BatchingConfig(max_batch_size=8), batchable=True)
    alone = asyncio.create_task(batcher.run_alone(lambda run: run(_item(1))))
    await asyncio.sleep(0.01)
    assert not batcher.idle
    queued = [asyncio.create_task(batcher.infer(_item(i))) for i in (2, 3)]
    await asyncio.sleep(0.01)
    await batcher.close()
    assert alone.done() and all(task.done() for task in queued)
    assert model.batches == [1, 2] and model.seen == [1.0, 2.0, 3.0]
    with pytest.raises(OverloadedError, match="shutting down"):
        await batcher.run_alone(lambda run: run(_item(4)))


async def test_work_running_alone_past_its_deadline_answers_504() -> None:
    batcher = Batcher(RecordingModel(seconds=0.2), BatchingConfig(timeout_ms=50), True)
    with pytest.raises(DeadlineExceededError):
        await batcher.run_alone(lambda run: run(_item(1)))
    assert not batcher.idle  # the thread still runs: nothing else may start on it
    await batcher.close()
    assert batcher.idle
