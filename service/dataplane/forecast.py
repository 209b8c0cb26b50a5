"""The forecasting data plane: checks requests against the model's limits, runs one batch."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from service.dataplane.tasks.forecasting import (
    ar_base,
    fill_missing,
    future_timestamps,
    standardise_window,
    unstandardise,
)
from service.errors import DeadlineExceededError, InvalidParameterError
from service.repository.manifest import ForecastingDecoding
from service.schemas import ForecastRequest, SeriesForecast

# Finite values can still overflow float64 once summed or scaled back (e.g. 1e308); the reply
# would then hold nulls where the schema promises numbers.
_TOO_LARGE = "series {index}: {what} overflows float64; rescale the series (e.g. to other units)"


def forecast_limits(decoding: ForecastingDecoding) -> dict[str, object]:
    """What the model serves; published in its metadata and quoted in every 422."""
    return {
        "min_length": decoding.window,
        "max_horizon": decoding.horizon,
        "quantiles": list(decoding.quantiles),
    }


@dataclass(frozen=True)
class PreparedSeries:
    batch: np.ndarray  # (N, window, 1) float32, normalised
    # a hybrid model's AR(p) forecasts (N, horizon) and their residual scales (N, 1), float32,
    # by the graph input names its manifest gives; empty for other models
    base_feeds: dict[str, np.ndarray]
    scales: list[tuple[float, float]]  # (mean, std) per series
    filled: list[int]
    quantile_columns: list[tuple[float, int]]


def prepare_series(
    decoding: ForecastingDecoding,
    request: ForecastRequest,
    max_length: int,
    deadline: float = math.inf,
) -> PreparedSeries:
    """Check the request against the model's limits, fill gaps, cut and scale the windows;
    past the ``deadline`` (``time.monotonic()``) the work stops with a 504."""
    limits = forecast_limits(decoding)
    if request.horizon > decoding.horizon:
        raise InvalidParameterError(
            f"horizon {request.horizon} is over the {decoding.horizon} this model serves", **limits
        )
    columns = _quantile_columns(decoding, request.quantiles, limits)
    windows, bases, base_scales, scales, filled = [], [], [], [], []
    for index, series in enumerate(request.series):
        if time.monotonic() > deadline:
            raise DeadlineExceededError(
                f"the deadline passed while preparing series {index} of {len(request.series)}"
            )
        if len(series.values) > max_length:
            raise InvalidParameterError(
                f"series {index} has {len(series.values)} values, over the limit {max_length}"
            )
        values, count = fill_missing(series.values, series.missing, f"series {index}")
        if not np.isfinite(values).all():
            raise InvalidParameterError(f"series {index} has non-finite values")
        if values.size < decoding.window:
            raise InvalidParameterError(
                f"series {index} has {values.size} values; this model needs at least "
                f"{decoding.window}",
                **limits,
            )
        window = values[-decoding.window :]
        mean, std = 0.0, 1.0
        if decoding.normalisation == "window_standard":
            with np.errstate(over="ignore", invalid="ignore"):
                window, mean, std = standardise_window(window, decoding.std_floor)
            if not np.isfinite([mean, std]).all():
                raise InvalidParameterError(
                    _TOO_LARGE.format(index=index, what="its window's mean or spread")
                )
        if decoding.base == "ar_aic":
            period = decoding.base_seasonal_periods.get(series.freq or "", 0)
            base, base_scale = _checked_ar_base(decoding, values, mean, std, period, index)
            bases.append(base)
            base_scales.append([base_scale])
        windows.append(window)
        scales.append((mean, std))
        filled.append(count)
    batch = np.asarray(windows, dtype=np.float32)[:, :, None]
    base_feeds = {}
    if decoding.base == "ar_aic":
        base_feeds = {
            decoding.base_input: np.asarray(bases, dtype=np.float32),
            decoding.base_scale_input: np.asarray(base_scales, dtype=np.float32),
        }
    return PreparedSeries(batch, base_feeds, scales, filled, columns)


def _checked_ar_base(
    decoding: ForecastingDecoding,
    values: np.ndarray,
    mean: float,
    std: float,
    period: int,
    index: int,
) -> tuple[np.ndarray, float]:
    """The hybrid model's base and scale; a 422 when a history far off its window's scale
    overflows the fit."""
    try:
        with np.errstate(all="ignore"):
            base, scale = ar_base(
                values,
                mean,
                std,
                decoding.horizon,
                decoding.base_history,
                decoding.base_max_order,
                decoding.base_powers,
                period,
                decoding.base_seasonal_fit,
            )
    except np.linalg.LinAlgError:  # least squares on values that overflowed
        base, scale = np.full(decoding.horizon, np.nan), np.nan
    if not (np.isfinite(base).all() and np.isfinite(scale)):
        raise InvalidParameterError(
            _TOO_LARGE.format(index=index, what="its autoregressive base forecast")
        )
    return base, scale


def finish_forecast(
    decoding: ForecastingDecoding,
    request: ForecastRequest,
    prepared: PreparedSeries,
    raw: np.ndarray,
) -> list[SeriesForecast]:
    """Map the (N, horizon, Q) model output back to each series' units and timestamps."""
    median = _median_column(decoding)
    results = []
    for index, series in enumerate(request.series):
        mean, std = prepared.scales[index]
        with np.errstate(over="ignore", invalid="ignore"):
            paths = unstandardise(raw[index, : request.horizon, :].astype(np.float64), mean, std)
        if not np.isfinite(paths).all():
            raise InvalidParameterError(_TOO_LARGE.format(index=index, what="its forecast"))
        # Quantile crossing would give intervals that contradict themselves.
        paths = np.sort(paths, axis=1)
        timestamps = None
        if series.start is not None and series.freq is not None:
            timestamps = future_timestamps(
                series.start, series.freq, len(series.values), request.horizon
            )
        results.append(
            SeriesForecast(
                id=series.id,
                forecast=[round(float(v), 6) for v in paths[:, median]],
                quantiles={
                    f"{q:g}": [round(float(v), 6) for v in paths[:, column]]
                    for q, column in prepared.quantile_columns
                },
                timestamps=timestamps,
                filled_values=prepared.filled[index],
            )
        )
    return results


def _quantile_columns(
    decoding: ForecastingDecoding, wanted: list[float] | None, limits: dict[str, object]
) -> list[tuple[float, int]]:
    served = list(decoding.quantiles)
    if wanted is None:
        return list(zip(served, range(len(served)), strict=True))
    columns = []
    for q in wanted:
        matches = [i for i, s in enumerate(served) if abs(s - q) < 1e-9]
        if not matches:
            raise InvalidParameterError(f"quantile {q} is not served by this model", **limits)
        columns.append((q, matches[0]))
    return columns


def _median_column(decoding: ForecastingDecoding) -> int:
    served = np.asarray(decoding.quantiles)
    return int(np.argmin(np.abs(served - 0.5)))
