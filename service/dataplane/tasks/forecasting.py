"""Forecasting pre- and post-processing: gap handling, window standardisation, timestamps."""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

import numpy as np

from service.dataplane.tasks import autoregressive, seasonal
from service.errors import InvalidParameterError

MissingPolicy = Literal["error", "interpolate", "ffill"]
Frequency = Literal["s", "min", "h", "D", "W", "MS", "QS", "YS"]

_FIXED_STEPS = {
    "s": timedelta(seconds=1),
    "min": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "D": timedelta(days=1),
    "W": timedelta(weeks=1),
}
_MONTH_STEPS = {"MS": 1, "QS": 3, "YS": 12}
FREQUENCIES = (*_FIXED_STEPS, *_MONTH_STEPS)


def fill_missing(
    values: list[float | None], policy: MissingPolicy, name: str = "series"
) -> tuple[np.ndarray, int]:
    """The series as float64 with gaps filled by ``policy``, and how many values were filled;
    errors name the series by ``name`` ("series 2").

    A gap that the policy cannot close (any gap under ``error``, a leading gap under ``ffill``,
    a gap at either end under ``interpolate``) is an error: a gap is never closed silently.
    """
    series = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    missing = np.isnan(series)
    count = int(missing.sum())
    if count == 0:
        return series, 0
    if policy == "error":
        raise InvalidParameterError(
            f"{name} has {count} missing value{'' if count == 1 else 's'}; "
            "set missing to 'interpolate' or 'ffill'"
        )
    known = np.flatnonzero(~missing)
    if known.size == 0:
        raise InvalidParameterError(f"{name} has no values")
    if policy == "ffill":
        if missing[0]:
            raise InvalidParameterError(f"{name} starts with a gap that 'ffill' cannot fill")
        last_known = np.maximum.accumulate(np.where(missing, 0, np.arange(series.size)))
        return series[last_known], count
    if missing[0] or missing[-1]:
        raise InvalidParameterError(f"{name}: 'interpolate' cannot fill a gap at the start or end")
    filled = series.copy()
    filled[missing] = np.interp(np.flatnonzero(missing), known, series[known])
    return filled, count


def standardise_window(window: np.ndarray, std_floor: float) -> tuple[np.ndarray, float, float]:
    """A window scaled by its own mean and std (floored), and those two numbers."""
    mean = float(window.mean())
    std = max(float(window.std()), std_floor)
    return (window - mean) / std, mean, std


def ar_base(
    values: np.ndarray,
    mean: float,
    std: float,
    horizon: int,
    history: int,
    max_order: int,
    powers: Sequence[float] = (),
    period: int = 0,
    seasonal_fit: seasonal.Criterion = "conditional",
) -> tuple[np.ndarray, float]:
    """A hybrid model's base: the forecast from the last ``history`` values and the scale of its
    one-step residuals, in the units of the standardised window (``mean`` and ``std`` are the
    window's). A series with a strong season of ``period`` steps gets the airline model
    (``service.dataplane.tasks.seasonal``, its coefficients by ``seasonal_fit``); any other the
    AR(p), on levels or one of the Box-Cox ``powers``. The fit runs on the values over ``std``,
    which a power admits as it admits the values, and is shifted by the mean after."""
    scaled = values[-history:] / std
    if period > 1 and seasonal.is_seasonal(scaled, period):
        forecast, scale = seasonal.forecast_and_scale(scaled, period, horizon, seasonal_fit)
    else:
        forecast, scale = autoregressive.forecast_and_scale(scaled, horizon, max_order, powers)
    return forecast - mean / std, scale


def unstandardise(forecast: np.ndarray, mean: float, std: float) -> np.ndarray:
    """The inverse of ``standardise_window``."""
    return forecast * std + mean


def future_timestamps(start: datetime, freq: str, observed: int, horizon: int) -> list[str]:
    """ISO timestamps of the ``horizon`` steps after ``observed`` values starting at ``start``.

    Python's calendar ends with year 9999: a series whose forecast would run past it has no
    timestamps to give, which is the client's to fix (422), not a failure of the service's.
    """
    try:
        if freq in _FIXED_STEPS:
            step = _FIXED_STEPS[freq]
            return [(start + step * (observed + k)).isoformat() for k in range(horizon)]
        if freq in _MONTH_STEPS:
            months = _MONTH_STEPS[freq]
            return [_add_months(start, months * (observed + k)).isoformat() for k in range(horizon)]
    except (OverflowError, ValueError):
        raise InvalidParameterError(
            f"the forecast's timestamps run past {datetime.max.year} (start {start.isoformat()}, "
            f"{observed} values and {horizon} steps of '{freq}')"
        ) from None
    raise InvalidParameterError(f"unknown freq '{freq}'", supported=list(FREQUENCIES))


def _add_months(moment: datetime, months: int) -> datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)
