"""Dynamic batching: one queue per model version, gathered into one ``session.run``.

A request first passes admission (``service.scheduling.admission``: a place, and the latency
budget), then adds items (feeds whose leading axis is their row count) to the queue. A worker
takes the first item, waits up to ``max_queue_delay_ms`` for more with the same trailing
shapes, up to ``max_batch_size`` rows, runs them as one batch in a thread, and hands each item
its rows of the outputs. While a batch runs, the next one gathers, so batches grow with load by
themselves. An item whose deadline passes before its batch starts is dropped and its caller
answered 504. A request alone with an idle model skips the queue: ``run_alone`` runs its
decoding, inference and post-processing together in the inference thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from service.errors import DeadlineExceededError, OverloadedError
from service.scheduling.admission import Admission
from service.scheduling.batch_stats import BatchStats

Feeds = dict[str, np.ndarray]
RunBatch = Callable[[Feeds], list[np.ndarray]]
T = TypeVar("T")


@dataclass(frozen=True)
class BatchingConfig:
    max_batch_size: int = 8
    max_queue_delay_ms: float = 0.0
    max_queue_size: int = 64
    # Refuse at admission when the expected latency is over this (0: no budget), but only
    # once pipeline_width requests (as many as can be worked on without queueing) are in.
    latency_budget_ms: float = 0.0
    pipeline_width: int = 1
    timeout_ms: float = 10_000.0
    # Batches of one model that may run at once (Triton's instance count).
    instances: int = 1


@dataclass
class _Item:
    feeds: Feeds
    rows: int
    signature: tuple[tuple[str, tuple[int, ...], str], ...]
    enqueued: float
    deadline: float
    future: asyncio.Future[list[np.ndarray]]


class Batcher:
    def __init__(self, run_batch: RunBatch, config: BatchingConfig, batchable: bool) -> None:
        self._run_batch = run_batch
        self.config = config
        # A graph without a dynamic batch axis runs one item at a time.
        self.batchable = batchable
        self._max_rows = config.max_batch_size if batchable else 1
        self._queue: deque[_Item] = deque()
        self._wakeup: asyncio.Event | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._executor = ThreadPoolExecutor(config.instances, thread_name_prefix="infer")
        self._running = 0
        self.stats = BatchStats()
        # Taken by each HTTP request before its body is read (service.api.deps); its closing
        # flag is the batcher's too.
        self.admission = Admission(
            config.max_queue_size,
            config.latency_budget_ms,
            config.pipeline_width,
            ceiling=self.inference_ceiling,
        )
        # Called once per batch with (rows, each item's queue seconds, compute seconds).
        self.observers: list[Callable[[int, list[float], float], None]] = []

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def infer(self, feeds: Feeds) -> list[np.ndarray]:
        """Run ``feeds`` (leading axis = rows) in some batch; returns this item's outputs."""
        # The queue needs no bound of its own: admission bounds the requests, and each stream
        # session (their number capped) has at most one frame in it.
        if self.admission.closing:
            raise OverloadedError("the model is shutting down", retry_after_s=1)
        self._ensure_workers()
        rows = next(iter(feeds.values())).shape[0]
        now = time.perf_counter()
        loop = asyncio.get_running_loop()
        item = _Item(
            feeds,
            rows,
            _signature(feeds),
            now,
            now + self.config.timeout_ms / 1000.0,
            loop.create_future(),
        )
        self._queue.append(item)
        assert self._wakeup is not None
        self._wakeup.set()
        try:
            # Cancelling this wait (deadline, or the client gone) cancels the item's future,
            # and a batch never runs a cancelled item. asyncio.timeout rather than wait_for,
            # which would cost every request a task of its own.
            async with asyncio.timeout(self.config.timeout_ms / 1000.0):
                return await item.future
        except TimeoutError:
            raise DeadlineExceededError(
                f"inference did not finish within {self.config.timeout_ms:g} ms"
            ) from None

    def inference_ceiling(self) -> float | None:
        """Requests a second the model's instances could complete at most (each holds a row or
        more): its instances times their best rows a second. None before the first batch."""
        best = self.stats.best_rows_per_second()
        return best * self.config.instances if best else None

    @property
    def idle(self) -> bool:
        """The caller (holding an admission place) is the only request in, nothing is queued
        and an instance is free: it would find no batch to join."""
        # Only then: with others in, the event loop is busy too, and work that crosses the GIL
        # as often as decoding does would wait for it each time while holding the instance, so
        # every request queued behind it would wait as well (the tail latency under overload).
        return (
            self.admission.admitted <= 1
            and not self._queue
            and self._running < self.config.instances
        )

    async def run_alone(self, work: Callable[[RunBatch], T]) -> T:
        """Run ``work`` at once in an inference thread; it calls the model (the function it is
        given) once, for at most ``max_batch_size`` rows. For a request alone with an idle model
        (``idle``): its decoding, inference and post-processing then cost one thread round trip
        instead of three, and batches that come meanwhile wait for the instance as they would
        for a running batch."""
        if self.admission.closing:
            raise OverloadedError("the model is shutting down", retry_after_s=1)
        loop = asyncio.get_running_loop()
        ran: list[tuple[int, float, float]] = []

        def run(feeds: Feeds) -> list[np.ndarray]:
            started = time.perf_counter()
            outputs = self._run_batch(feeds)
            ran.append((next(iter(feeds.values())).shape[0], started, time.perf_counter()))
            return outputs

        self._running += 1
        # Counted as running until the thread returns, even when the caller stops waiting.
        # In the caller's context, so that its log lines keep the request's id.
        submitted = self._executor.submit(contextvars.copy_context().run, work, run)
        submitted.add_done_callback(lambda _: loop.call_soon_threadsafe(self._ran_alone, ran))
        try:
            async with asyncio.timeout(self.config.timeout_ms / 1000.0):
                return await asyncio.wrap_future(submitted)
        except TimeoutError:
            raise DeadlineExceededError(
                f"inference did not finish within {self.config.timeout_ms:g} ms"
            ) from None

    def _ran_alone(self, ran: list[tuple[int, float, float]]) -> None:
        self._running -= 1
        for rows, started, finished in ran:
            self._record(rows, [0.0], started, finished)

    async def close(self) -> None:
        """Refuse new items, finish the queued ones, stop the workers."""
        self.admission.closing = True
        while self._queue or self._running:
            await asyncio.sleep(0.005)
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._executor.shutdown(wait=True)

    def _ensure_workers(self) -> None:
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._work()) for _ in range(self.config.instances)
            ]

    async def _work(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            first = self._queue[0]
            if self.config.max_queue_delay_ms > 0 and self._rows_waiting(first) < self._max_rows:
                await asyncio.sleep(self.config.max_queue_delay_ms / 1000.0)
            batch = self._take_batch()
            if not batch:
                continue
            started = time.perf_counter()
            self._running += 1
            feeds = {
                name: np.concatenate([item.feeds[name] for item in batch])
                if len(batch) > 1
                else batch[0].feeds[name]
                for name in batch[0].feeds
            }
            try:
                outputs = await loop.run_in_executor(self._executor, self._run_batch, feeds)
            except Exception as exc:
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
            else:
                self._deliver(batch, outputs, started)
            finally:
                self._running -= 1

    def _rows_waiting(self, first: _Item) -> int:
        return sum(item.rows for item in self._queue if item.signature == first.signature)

    def _take_batch(self) -> list[_Item]:
        """Pop the items of the next batch: same signature as the first live one, FIFO."""
        now = time.perf_counter()
        batch: list[_Item] = []
        rows = 0
        kept: deque[_Item] = deque()
        while self._queue:
            item = self._queue.popleft()
            if item.future.done():  # cancelled by its caller's deadline: never run it
                continue
            if now > item.deadline:
                item.future.set_exception(DeadlineExceededError("the deadline passed in queue"))
                continue
            fits = not batch or (
                item.signature == batch[0].signature and rows + item.rows <= self._max_rows
            )
            if fits:
                batch.append(item)
                rows += item.rows
            else:
                kept.append(item)
        self._queue.extendleft(reversed(kept))
        return batch

    def _deliver(self, batch: list[_Item], outputs: list[np.ndarray], started: float) -> None:
        rows = sum(item.rows for item in batch)
        queue_seconds = [started - item.enqueued for item in batch]
        self._record(rows, queue_seconds, started, time.perf_counter())
        offset = 0
        for item in batch:
            if not item.future.done():
                item.future.set_result([out[offset : offset + item.rows] for out in outputs])
            offset += item.rows

    def _record(
        self, rows: int, queue_seconds: list[float], started: float, finished: float
    ) -> None:
        self.stats.record_batch(rows, queue_seconds, finished - started)
        for observe in self.observers:
            observe(rows, queue_seconds, finished - started)


def _signature(feeds: Feeds) -> tuple[tuple[str, tuple[int, ...], str], ...]:
    return tuple(sorted((name, value.shape[1:], value.dtype.str) for name, value in feeds.items()))
