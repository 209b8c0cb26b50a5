"""Per-request stage timings, and recording a served request in its model's statistics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from service.repository.model_version import ModelVersion


@dataclass
class StageTimer:
    """Milliseconds spent per stage, summed over a request."""

    stages: dict[str, float] = field(default_factory=dict)
    _start: float = field(default_factory=time.perf_counter)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        begin = time.perf_counter()
        try:
            yield
        finally:
            elapsed = (time.perf_counter() - begin) * 1000.0
            self.stages[name] = self.stages.get(name, 0.0) + elapsed

    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def report(self) -> dict[str, float]:
        total = self.elapsed() * 1000.0
        return {**{k: round(v, 3) for k, v in self.stages.items()}, "total": round(total, 3)}


_INPUT_STAGES = ("decode", "preprocess")
_OUTPUT_STAGES = ("postprocess", "encode")


def complete(model: ModelVersion, timer: StageTimer) -> dict[str, float]:
    """Record a served request in the model's statistics; returns its timings."""
    if model.batcher is not None:
        stats = model.batcher.stats
        stats.success.add(timer.elapsed())
        stats.compute_input.add(sum(timer.stages.get(s, 0.0) for s in _INPUT_STAGES) / 1000)
        stats.compute_output.add(sum(timer.stages.get(s, 0.0) for s in _OUTPUT_STAGES) / 1000)
    return timer.report()
