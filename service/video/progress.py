"""A job's progress as clients see it: frames done of the total (when the header says it),
the speed over the last few seconds, and the time left at that speed."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from service.schemas import VideoJobProgress

# The speed (and so the ETA) is measured over this window: a job yielding to a burst of live
# traffic slows down, and its ETA should say so soon, but not jump with every frame.
FPS_WINDOW_S = 5.0


class Progress:
    def __init__(self, total: int | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.done = total, 0
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque([(clock(), 0)])

    def tick(self) -> None:
        self.done += 1

    def snapshot(self) -> VideoJobProgress:
        moment = self._clock()
        self._samples.append((moment, self.done))
        while len(self._samples) > 2 and moment - self._samples[0][0] > FPS_WINDOW_S:
            self._samples.popleft()
        since, then = self._samples[0]
        elapsed = moment - since
        fps = (self.done - then) / elapsed if elapsed > 0 else None
        total = max(self.total, self.done) if self.total else None
        return VideoJobProgress(
            frames_done=self.done,
            frames_total=total,
            percent=round(100 * self.done / total, 1) if total else None,
            fps=round(fps, 2) if fps is not None else None,
            eta_s=round((total - self.done) / fps, 1) if total and fps else None,
        )
