"""The airline model's exact likelihood and forecast, against the Gaussian formulas written out
with the process's full covariance matrix."""

from __future__ import annotations

import numpy as np
import pytest

from service.dataplane.tasks import seasonal, seasonal_likelihood
from tests.service.dataplane.tasks.test_seasonal import airline_series


def covariance(theta: float, seasonal_theta: float, period: int, n: int) -> np.ndarray:
    """Cov(w) [n, n] of the differenced airline model, unit innovation variance: w = C e over
    the n + period + 1 innovations from period + 1 before the first w."""
    lags = np.zeros(period + 2)
    lags[[0, 1, period, period + 1]] = 1.0, -theta, -seasonal_theta, theta * seasonal_theta
    c = np.zeros((n, n + period + 1))
    for t in range(n):
        c[t, t : t + period + 2] = lags[::-1]
    covariance_matrix: np.ndarray = c @ c.T
    return covariance_matrix


def differenced(n: int, seed: int) -> np.ndarray:
    y = airline_series(0.4, 0.6, n + 13, seed)
    return np.diff(y[12:] - y[:-12])


@pytest.mark.parametrize("n", [5, 40, 90])
def test_the_filter_gives_the_exact_gaussian_deviance(n: int) -> None:
    w = differenced(n, seed=n)
    pairs = [(0.4, 0.6), (-0.3, 0.9), (0.8, -0.2)]
    theta, seasonal_theta = (np.array(p) for p in zip(*pairs, strict=True))
    got = seasonal_likelihood.deviance(w, theta, seasonal_theta, 12)
    for k, (a, b) in enumerate(pairs):
        gamma = covariance(a, b, 12, n)
        sigma2 = w @ np.linalg.solve(gamma, w) / n
        expected = n * np.log(sigma2) + np.linalg.slogdet(gamma)[1]
        assert got[k] == pytest.approx(expected, rel=1e-9)


def test_the_forecast_is_the_best_linear_predictor() -> None:
    """For known coefficients, the forecast of w is Cov(future, past) Cov(past)^-1 w."""
    n, steps, theta, seasonal_theta = 60, 12, 0.4, 0.85
    y = airline_series(theta, seasonal_theta, n + 13, seed=3)
    z, w = y, np.diff(y[12:] - y[:-12])
    gamma = covariance(theta, seasonal_theta, 12, len(w) + steps)
    past = slice(0, len(w))
    w_future = gamma[len(w) :, past] @ np.linalg.solve(gamma[past, past], w)
    expected = list(z)
    for value in w_future:  # undo both differences
        expected.append(value + expected[-1] + expected[-12] - expected[-13])

    filtered = seasonal_likelihood.kalman(w, np.array([theta]), np.array([seasonal_theta]), 12)
    got = seasonal._continue(z, filtered.last[0][::-1], theta, seasonal_theta, 12, steps)
    np.testing.assert_allclose(got, expected[len(z) :], rtol=0, atol=1e-9)


def test_the_criterion_changes_only_the_seasonal_base() -> None:
    t = np.arange(120, dtype=np.float64)
    y = 50.0 + 0.3 * t + 5.0 * np.sin(2 * np.pi * t / 12)
    for criterion in ("conditional", "exact"):  # a fixed season is carried forward by either
        fitted = seasonal.fit(y, 12, 12, 1.0, criterion)
        future = np.arange(120, 132)
        expected = 50.0 + 0.3 * future + 5.0 * np.sin(2 * np.pi * future / 12)
        np.testing.assert_allclose(fitted.forecast, expected, atol=1e-6)
    noisy = airline_series(0.4, 0.9, 200, seed=7)
    conditional = seasonal.fit(noisy, 12, 12, 1.0, "conditional")
    exact = seasonal.fit(noisy, 12, 12, 1.0, "exact")
    assert not np.allclose(conditional.forecast, exact.forecast)
