from __future__ import annotations

from service.scheduling.batch_stats import BatchStats


def test_a_batch_counts_its_rows_once_and_its_items_time_each() -> None:
    stats = BatchStats()
    stats.record_batch(5, [0.001, 0.002, 0.003], 0.010)
    stats.record_batch(1, [0.0], 0.004)
    assert (stats.execution_count, stats.inference_count) == (2, 6)
    assert {rows: (d.count, d.ns) for rows, d in stats.batches.items()} == {
        5: (1, 10_000_000),
        1: (1, 4_000_000),
    }
    # Triton's compute_infer and queue are per request: each item of a batch spent its time.
    assert (stats.compute_infer.count, stats.compute_infer.ns) == (4, 34_000_000)
    assert (stats.queue.count, stats.queue.ns) == (4, 6_000_000)
    assert stats.last_inference_ms > 0
