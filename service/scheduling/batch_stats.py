"""Cumulative statistics of one model version's batches and requests, in Triton's terms."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, seconds: float, count: int = 1) -> None:
        self.count += count
        self.ns += int(seconds * 1e9)


@dataclass
class BatchStats:
    """Cumulative counters read by the v2 statistics route (and the batch times by the latency
    budget's ceiling).

    Request-level ``success``/``fail`` and ``compute_input``/``compute_output`` are recorded by
    the data plane (``service.dataplane.timing``); the rest by the batcher, once per batch run.
    """

    inference_count: int = 0  # rows
    execution_count: int = 0  # batches run
    last_inference_ms: int = 0
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)
    batches: dict[int, Duration] = field(default_factory=dict)

    def record_batch(self, rows: int, queue_seconds: list[float], compute_seconds: float) -> None:
        """A batch of ``rows`` rows from ``len(queue_seconds)`` items that waited that long."""
        items = len(queue_seconds)
        self.batches.setdefault(rows, Duration()).add(compute_seconds)
        self.execution_count += 1
        self.inference_count += rows
        self.last_inference_ms = int(time.time() * 1000)
        self.compute_infer.add(compute_seconds * items, items)
        self.queue.add(sum(queue_seconds), items)

    def best_rows_per_second(self) -> float | None:
        """Rows a second of the batch size that has run them fastest, on average over all its
        batches (one lucky batch does not count); None before the first batch."""
        rates = [rows * d.count * 1e9 / d.ns for rows, d in self.batches.items() if d.ns]
        return max(rates) if rates else None
