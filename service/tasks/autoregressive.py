"""AR(p) with a constant, the order chosen by AIC: the base forecast a hybrid forecaster corrects.

It reproduces statsmodels' ``ar_select_order(y, maxlag, ic="aic", trend="c")`` followed by a fit
and a forecast (the baseline of ``../shared/data/series/BASELINES.md``) in plain numpy, so that
training and serving compute the same thing without statsmodels at serving time:

- every order 0..maxlag is scored on the same sample (the values after the first ``maxlag``);
  AIC up to a constant is ``nobs * log(rss / nobs) + 2 p``, ties going to the smaller order;
- the chosen order is then refitted on every value after its first ``p``.

OLS with a constant is affine-equivariant, so fitting on a standardised series gives the
standardised forecast: the service fits in the units of the model's input window.
"""

from __future__ import annotations

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
    y: np.ndarray, steps: int, max_order: int = MAX_ORDER
) -> tuple[np.ndarray, float]:
    """``forecast``, and the root mean square of the fit's one-step residuals: how far the
    series strays from what its AR(p) explains."""
    y = np.asarray(y, dtype=np.float64)
    order = select_order(y, max_order)
    coefficients = fit(y, order)
    residuals = y[order:] - lag_matrix(y, order) @ coefficients
    return _continue(y, coefficients, steps), float(np.sqrt(np.mean(residuals**2)))


def _continue(y: np.ndarray, coefficients: np.ndarray, steps: int) -> np.ndarray:
    constant, phi = coefficients[0], coefficients[1:]
    context = list(y[len(y) - len(phi) :]) if len(phi) else []
    out = np.empty(steps)
    for step in range(steps):
        out[step] = constant + sum(p * context[-k] for k, p in enumerate(phi, start=1))
        context.append(out[step])
    return out
