"""The seasonal base: Box and Jenkins' "airline model", ARIMA(0,1,1)(0,1,1) with period m, for
series whose season is strong; the base a hybrid forecaster corrects in place of AR(p).

A long AR on levels cannot carry a slowly drifting season forward as a seasonal difference does:
on the validation origins of the evaluation protocol (``training.rolling_origin``, origins 5-40)
statsmodels' fit of this model scored CO2's MASE 0.386 against AR(p)'s 0.486, and airline's 0.452
against 0.844; this fit, 0.402 and 0.542. It is that model in numpy, so that training and serving
compute the same thing:

- the series (or a Box-Cox power of it) is differenced once and once at lag m, giving w;
- the two moving-average coefficients minimise the conditional sum of squares of the residuals
  ``e[t] = w[t] + theta e[t-1] + Theta e[t-m] - theta Theta e[t-m-1]`` (residuals before the
  sample are 0, so the first m + 1 are transients and are left out of the sum), on a grid of
  invertible values and then a finer grid around the best;
- the forecast sets future residuals to 0 and undoes both differences.

Whether the season is strong is Wang, Smith and Hyndman's seasonal strength, 1 - var(remainder) /
var(season + remainder), from a classical decomposition; 0.64 is the threshold R's
``forecast::nsdiffs`` uses to take a seasonal difference.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from service.dataplane.tasks.autoregressive import admits, box_cox, inverse_box_cox, stays_near

STRENGTH_THRESHOLD = 0.64
_COARSE = np.round(np.arange(-0.9, 0.91, 0.1), 2)
_FINE = np.round(np.arange(-0.1, 0.101, 0.02), 2)


def seasonal_strength(y: np.ndarray, period: int) -> float:
    """1 - var(remainder) / var(detrended) of a classical additive decomposition (a centred
    moving average of 2 x ``period``); 0 when the series has under three full seasons."""
    if period <= 1 or len(y) < 3 * period:
        return 0.0
    kernel = np.full(period + 1, 1.0 / period)
    kernel[0] = kernel[-1] = 0.5 / period
    trend = np.convolve(y, kernel, mode="valid")
    half = period // 2
    detrended = y[half : len(y) - half] - trend
    phase = (np.arange(len(detrended)) + half) % period
    means = np.array([detrended[phase == p].mean() for p in range(period)])
    remainder = detrended - (means - means.mean())[phase]
    spread = float(np.var(detrended))
    return max(0.0, 1.0 - float(np.var(remainder)) / spread) if spread > 0 else 0.0


def is_seasonal(y: np.ndarray, period: int) -> bool:
    return seasonal_strength(y, period) >= STRENGTH_THRESHOLD


class SeasonalFit(NamedTuple):
    forecast: np.ndarray
    scale: float  # root mean square of the one-step residuals, in the series' units


def forecast_and_scale(y: np.ndarray, period: int, steps: int) -> tuple[np.ndarray, float]:
    """The airline model's forecast and the root mean square of its one-step residuals, in the
    series' units. It is fitted to the log of a positive series (a season whose swing grows with
    the level, as airline passengers'; on the validation origins the log scored as well as the
    levels on CO2 and better on airline) and to the levels otherwise, or when the log's forecast
    leaves the history's range widened by that range on either side."""
    y = np.asarray(y, dtype=np.float64)
    if admits(y, 0.0):
        logged = fit(y, period, steps, 0.0)
        if stays_near(y, logged.forecast):
            return logged.forecast, logged.scale
    levels = fit(y, period, steps, 1.0)
    return levels.forecast, levels.scale


def fit(y: np.ndarray, period: int, steps: int, power: float = 1.0) -> SeasonalFit:
    z = box_cox(y, power)
    w = np.diff(z[period:] - z[:-period])
    theta, seasonal = _estimate(w, period)
    e = _residuals(w, np.array([theta]), np.array([seasonal]), period)[:, 0]
    # one step ahead, z[t] was predicted as z[t] - e[t]; the first period + 1 values have none
    z_seen = z[period + 1 :]
    one_step = y[period + 1 :] - inverse_box_cox(z_seen - e, power)
    future = _continue(z, e, theta, seasonal, period, steps)
    return SeasonalFit(
        forecast=inverse_box_cox(future, power),
        scale=float(np.sqrt(np.mean(one_step**2))),
    )


def _residuals(w: np.ndarray, theta: np.ndarray, seasonal: np.ndarray, period: int) -> np.ndarray:
    """Residuals [len(w), K] for K pairs of coefficients at once."""
    e = np.zeros((len(w), len(theta)))
    product = theta * seasonal
    for t in range(len(w)):
        value = w[t] + theta * e[t - 1] if t >= 1 else np.full(len(theta), w[t])
        if t >= period:
            value = value + seasonal * e[t - period]
        if t >= period + 1:
            value = value - product * e[t - period - 1]
        e[t] = value
    return e


def _estimate(w: np.ndarray, period: int) -> tuple[float, float]:
    """The (theta, Theta) of least conditional sum of squares: a grid, then a finer one."""
    best = (0.0, 0.0)
    for grid, around in ((_COARSE, (0.0, 0.0)), (_FINE, None)):
        centre = around if around is not None else best
        a, b = np.meshgrid(
            np.clip(centre[0] + grid, -0.99, 0.99),
            np.clip(centre[1] + grid, -0.99, 0.99),
            indexing="ij",
        )
        theta, seasonal = a.ravel(), b.ravel()
        with np.errstate(over="ignore", invalid="ignore"):
            sse = np.sum(_residuals(w, theta, seasonal, period)[period + 1 :] ** 2, axis=0)
        sse[~np.isfinite(sse)] = np.inf
        k = int(np.argmin(sse))
        best = (float(theta[k]), float(seasonal[k]))
    return best


def _continue(
    z: np.ndarray, e: np.ndarray, theta: float, seasonal: float, period: int, steps: int
) -> np.ndarray:
    """Forecast ``steps`` values of z with future residuals 0, undoing both differences."""
    e = np.concatenate([e, np.zeros(steps)])
    history = list(z)
    n = len(e) - steps
    for h in range(steps):
        t = n + h
        w = -theta * e[t - 1] - seasonal * e[t - period] + theta * seasonal * e[t - period - 1]
        # z[t] - z[t-1] - z[t-m] + z[t-m-1] = w[t]
        history.append(w + history[-1] + history[-period] - history[-period - 1])
    return np.asarray(history[len(z) :])
