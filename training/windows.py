"""Training and validation windows cut from the real series for the forecaster, standardised
per window, with each window's AR(p) base forecast as the service computes it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from service.dataplane.tasks import autoregressive, forecasting, seasonal
from training import rolling_origin, series
from training.rolling_origin import HORIZON, standardise


def ar_bases(y: np.ndarray, window: int, ar: rolling_origin.ArBase, period: int = 0) -> np.ndarray:
    """For each row of ``windows_of(y, window)``, the standardised base forecast [HORIZON] from
    the values up to the end of its input window and its residual scale (one more column), as
    the service computes them for a series whose freq maps to ``period``."""
    ends = range(window, len(y) - HORIZON + 1)
    inputs = [rolling_origin.model_inputs(y[:end], window, ar, period) for end in ends]
    return np.array([[*x.base, x.scale] for x in inputs]).reshape(-1, HORIZON + 1)


def cached_bases(
    all_series: dict[str, np.ndarray],
    window: int,
    ar: rolling_origin.ArBase,
    cache_dir: Path,
    dry_run: bool = False,
) -> dict[str, np.ndarray]:
    """Every series' ``ar_bases``. They take about 20 minutes on 2 cores (R's tree rings alone:
    7 900 fits on 3 072 values), so they are kept in ``cache_dir`` under a key of everything
    they depend on: the series, the window, the base's settings and the code that computes it
    (a dry run reads the cache but does not write it)."""
    digest = hashlib.sha256(repr((window, ar)).encode())
    for module in (autoregressive, seasonal, forecasting):
        digest.update(Path(module.__file__ or "").read_bytes())
    for name, y in all_series.items():
        digest.update(name.encode() + np.ascontiguousarray(y, np.float64).tobytes())
    cache = cache_dir / f"bases-{digest.hexdigest()[:16]}.npz"
    if cache.is_file():
        with np.load(cache) as kept:
            return {name: kept[name] for name in all_series}
    bases = {
        name: ar_bases(y, window, ar, ar.period(name))
        for name, y in tqdm(all_series.items(), desc="bases", disable=dry_run)
    }
    if not dry_run:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **bases)
    return bases


def windows_of(y: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (input, target) pair of ``window`` then HORIZON consecutive values."""
    if len(y) < window + HORIZON:
        return np.zeros((0, window)), np.zeros((0, HORIZON))
    w = np.lib.stride_tricks.sliding_window_view(y, window + HORIZON)
    return w[:, :window], w[:, window:]


def min_length(window: int) -> int:
    """Values a series needs to give its validation window and at least one training window
    whose targets do not overlap it."""
    return window + 2 * HORIZON


@dataclass
class WindowSets:
    """Standardised training windows of all series, stacked, with each series' slice; and one
    validation window per series: its last, whose targets no training window overlaps."""

    x: torch.Tensor  # [N, window]
    base: torch.Tensor  # [N, HORIZON + 1] the AR(p) forecasts and scales, standardised like x
    target: torch.Tensor  # [N, HORIZON]
    start: torch.Tensor  # [S] first row of each series
    count: torch.Tensor  # [S] rows of each series
    weight: torch.Tensor  # [S] sampling weight of each series
    val_x: torch.Tensor
    val_base: torch.Tensor
    val_target: torch.Tensor

    @classmethod
    def build(
        cls,
        parts: dict[str, np.ndarray],
        bases: dict[str, np.ndarray],
        window: int,
        evaluated_weight: float,
    ):
        """``bases``: each series' ``ar_bases`` over its whole length; a part is a prefix."""
        xs, bs, ts, counts, weights = [], [], [], [], []
        for name, y in parts.items():
            if len(y) < min_length(window):
                continue
            x, t = windows_of(y, window)
            z, mean, std = standardise(x)
            xs.append(z), ts.append((t - mean) / std), counts.append(len(x) - HORIZON)
            bs.append(bases[name][: len(x)])
            weights.append(evaluated_weight if name in series.EVALUATED else 1.0)
        count = torch.tensor(counts)
        # per series: training windows, then HORIZON - 1 windows left out because their targets
        # overlap the validation window's, then the validation window
        per_series = [len(x) for x in xs]

        def split(arrays: list) -> tuple[torch.Tensor, torch.Tensor]:
            rows = torch.tensor(np.concatenate(arrays), dtype=torch.float32)
            of_series = torch.split(rows, per_series)
            training = torch.cat([r[:-HORIZON] for r in of_series])
            return training, torch.stack([r[-1] for r in of_series])

        (x, val_x), (b, val_b), (t, val_t) = split(xs), split(bs), split(ts)
        return cls(
            x,
            b,
            t,
            torch.cumsum(count, 0) - count,
            count,
            torch.tensor(weights),
            val_x,
            val_b,
            val_t,
        )

    def sample(self, size: int, generator: torch.Generator):
        """A series by weight (so long series don't drown short ones), then one of its windows."""
        which = torch.multinomial(self.weight, size, replacement=True, generator=generator)
        offset = (torch.rand(size, generator=generator) * self.count[which]).long()
        rows = self.start[which] + offset
        return self.x[rows], self.base[rows], self.target[rows]
