"""The exact Gaussian likelihood of the airline model's differenced series, by a Kalman filter.

After both differences, the airline model ARIMA(0,1,1)(0,1,1) with period m is the moving average
``w[t] = e[t] - theta e[t-1] - Theta e[t-m] + theta Theta e[t-m-1]`` of white noise e. A
conditional sum of squares sets the m + 1 innovations before the sample to 0; when Theta is near
1, as in most seasonal series, their error decays by only a factor Theta a season, so the fit and
the forecast's last residuals stay off for years. The Kalman filter treats those innovations as
unknowns instead: its state is the last m + 1 innovations, starting at mean 0 and unit
variance, and it gives the exact one-step innovations ``v`` with their variances ``f``, and at
the end the best estimate of the innovations that the forecast continues from.

The variance of e is concentrated out: -2 log L = n log(mean(v^2 / f)) + sum(log f), up to a
constant. Filters for K coefficient pairs run at once, so a grid is searched in one pass.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Filtered(NamedTuple):
    innovations: np.ndarray  # [n, K] one-step prediction errors of w
    variances: np.ndarray  # [n, K] their variances, in units of the innovation variance
    last: np.ndarray  # [K, m + 2] estimates of e[n-1], e[n-2], ..., e[n-m-2] after all of w


def kalman(w: np.ndarray, theta: np.ndarray, seasonal: np.ndarray, period: int) -> Filtered:
    """Filter ``w`` (at least one value) for K pairs (``theta``, ``seasonal``) of coefficients."""
    k, q = len(theta), period + 1
    lags = np.array([0, period - 1, period])  # state positions of e[t-1], e[t-m], e[t-m-1]
    coefficients = np.stack([-theta, -seasonal, theta * seasonal], 1)  # [K, 3]
    mean = np.zeros((k, q))  # e[t-1] .. e[t-q], given w before t
    cov = np.broadcast_to(np.eye(q), (k, q, q)).copy()
    innovations, variances = np.empty((len(w), k)), np.empty((len(w), k))
    for t in range(len(w)):
        cov_w = np.einsum("kij,kj->ki", cov[:, :, lags], coefficients)  # Cov(state, w[t])
        f = 1.0 + np.einsum("kj,kj->k", cov_w[:, lags], coefficients)
        v = w[t] - np.einsum("kj,kj->k", mean[:, lags], coefficients)
        innovations[t], variances[t] = v, f
        gain = cov_w / f[:, None]
        # e[t] enters the state with mean v / f (its covariance with w[t] is 1)
        updated = np.concatenate([(v / f)[:, None], mean + gain * v[:, None]], 1)
        if t == len(w) - 1:
            return Filtered(innovations, variances, updated)
        mean = updated[:, :q]
        new = np.empty_like(cov)
        new[:, 0, 0] = 1.0 - 1.0 / f
        new[:, 0, 1:] = new[:, 1:, 0] = -gain[:, :-1]
        new[:, 1:, 1:] = cov[:, :-1, :-1] - gain[:, :-1, None] * cov_w[:, None, :-1]
        cov = new
    raise ValueError("the differenced series is empty")


def deviance(w: np.ndarray, theta: np.ndarray, seasonal: np.ndarray, period: int) -> np.ndarray:
    """-2 log L [K] with the innovation variance concentrated out (up to a constant)."""
    filtered = kalman(w, theta, seasonal, period)
    v, f = filtered.innovations, filtered.variances
    deviances: np.ndarray = len(w) * np.log(np.mean(v**2 / f, axis=0)) + np.sum(np.log(f), axis=0)
    return deviances
