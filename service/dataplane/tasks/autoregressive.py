"""AR(p) with a constant, the order chosen by AIC: the base forecast a hybrid forecaster corrects.

It reproduces statsmodels' ``ar_select_order(y, maxlag, ic="aic", trend="c")`` followed by a fit
and a forecast (the baseline of ``../shared/data/series/BASELINES.md``) in plain numpy, so that
training and serving compute the same thing without statsmodels at serving time:

- every order 0..maxlag is scored on the same sample (the values after the first ``maxlag``);
  AIC up to a constant is ``nobs * log(rss / nobs) + 2 p``, ties going to the smaller order;
- the chosen order is then refitted on every value after its first ``p``.

OLS with a constant is affine-equivariant, and a power of the series keeps it equivariant to
scaling, so fitting the history divided by the model's window std gives the forecast in that
std's units: the service fits there, then subtracts the window's mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

MAX_ORDER = 36  # statsmodels' maxlag in BASELINES.md, capped at a quarter of the series


def max_lag(length: int, max_order: int = MAX_ORDER) -> int:
    return min(max_order, length // 4)


def lag_matrix(y: np.ndarray, lags: int) -> np.ndarray:
    """Rows ``[1, y[t-1], ..., y[t-lags]]`` for t = lags .. len(y) - 1."""
    rows = len(y) - lags
    columns = [np.ones(rows)] + [y[lags - k : lags - k + rows] for k in range(1, lags + 1)]
    return np.stack(columns, axis=1)


def select_order(y: np.ndarray, max_order: int = MAX_ORDER) -> int:
    """The AIC-best number of lags on the common sample."""
    lags = max_lag(len(y), max_order)
    if lags == 0:
        return 0
    x, target = lag_matrix(y, lags), y[lags:]
    q, r = np.linalg.qr(x)
    projected = q.T @ target
    # residual sum of squares of each nested model: what the dropped columns would have explained
    # plus what no column explains, accumulated from the last column backwards
    full_rss = float(np.sum((target - q @ projected) ** 2))
    explained_later = np.concatenate([np.cumsum(projected[::-1] ** 2)[::-1][1:], [0.0]])
    rss = full_rss + explained_later
    # a column that adds nothing (a flat or perfectly linear series) must not win by rounding
    rank_ok = np.abs(np.diag(r)) > 1e-10 * max(1.0, float(np.abs(np.diag(r)).max()))
    with np.errstate(divide="ignore"):
        aic = len(target) * np.log(np.maximum(rss, 0.0) / len(target)) + 2.0 * np.arange(lags + 1)
    aic[1:][~rank_ok[1:]] = np.inf
    aic[np.isnan(aic)] = np.inf
    if np.all(np.isinf(aic)):
        return 0
    return int(np.argmin(aic))


def fit(y: np.ndarray, order: int) -> np.ndarray:
    """``[constant, phi_1, ..., phi_order]`` by least squares on every value after the first
    ``order``."""
    coefficients: np.ndarray = np.linalg.lstsq(lag_matrix(y, order), y[order:], rcond=None)[0]
    return coefficients


def forecast(y: np.ndarray, steps: int, max_order: int = MAX_ORDER) -> np.ndarray:
    """The next ``steps`` values of ``y`` by the AIC-chosen AR(p), each fed back for the next."""
    return forecast_and_scale(y, steps, max_order)[0]


def forecast_and_scale(
    y: np.ndarray, steps: int, max_order: int = MAX_ORDER, powers: Sequence[float] = ()
) -> tuple[np.ndarray, float]:
    """``forecast``, and the root mean square of the fit's one-step residuals: how far the
    series strays from what its AR(p) explains.

    With Box-Cox ``powers`` (0 is the log), the AR(p) is also fitted to each power of the series
    that its values admit. One replaces the fit on levels when its one-step predictions, mapped
    back, have a lower mean absolute error on the common sample (MASE is a mean absolute error,
    and a likelihood cannot compare powers of a series with zeros), and its forecast stays
    within the history's range widened by that range on either side: mapped back, an unstable
    fit grows like a square or an exponential, far beyond anything the series did. Forecast and
    scale are in the series' own units.
    """
    y = np.asarray(y, dtype=np.float64)
    best = _fit_power(y, 1.0, steps, max_order)
    for power in powers:
        if power == 1.0 or not admits(y, power):
            continue
        candidate = _fit_power(y, power, steps, max_order)
        if candidate.error < best.error and stays_near(y, candidate.forecast):
            best = candidate
    return best.forecast, best.scale


def stays_near(y: np.ndarray, forecast: np.ndarray) -> bool:
    """Whether ``forecast`` stays within ``y``'s range widened by that range on either side:
    mapped back from a power, an unstable fit grows far beyond anything the series did."""
    low, high = y.min(), y.max()
    return bool(np.all((forecast >= 2 * low - high) & (forecast <= 2 * high - low)))


class _PowerFit(NamedTuple):
    error: float  # one-step mean absolute error on the values after the first max_lag
    forecast: np.ndarray
    scale: float  # root mean square of the one-step residuals


def _fit_power(y: np.ndarray, power: float, steps: int, max_order: int) -> _PowerFit:
    z = box_cox(y, power)
    order = select_order(z, max_order)
    coefficients = fit(z, order)
    residuals = y[order:] - inverse_box_cox(lag_matrix(z, order) @ coefficients, power)
    common = residuals[max_lag(len(y), max_order) - order :]
    return _PowerFit(
        error=float(np.mean(np.abs(common))),
        forecast=inverse_box_cox(_continue(z, coefficients, steps), power),
        scale=float(np.sqrt(np.mean(residuals**2))),
    )


def admits(y: np.ndarray, power: float) -> bool:
    """Whether ``y`` has a real Box-Cox ``power``: the log needs positive values, a fractional
    power values that are not negative."""
    return power == 1.0 or (bool(y.min() > 0) if power == 0.0 else bool(y.min() >= 0))


def box_cox(y: np.ndarray, power: float) -> np.ndarray:
    if power == 1.0:
        return y
    return np.log(y) if power == 0.0 else y**power


def inverse_box_cox(z: np.ndarray, power: float) -> np.ndarray:
    if power == 1.0:
        return z
    # a fractional power's fit may predict below zero, where the series cannot go
    levels: np.ndarray = np.exp(z) if power == 0.0 else np.maximum(z, 0.0) ** (1.0 / power)
    return levels


def _continue(y: np.ndarray, coefficients: np.ndarray, steps: int) -> np.ndarray:
    constant, phi = coefficients[0], coefficients[1:]
    context = list(y[len(y) - len(phi) :]) if len(phi) else []
    out = np.empty(steps)
    for step in range(steps):
        out[step] = constant + sum(p * context[-k] for k, p in enumerate(phi, start=1))
        context.append(out[step])
    return out
