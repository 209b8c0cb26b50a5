from __future__ import annotations

import numpy as np
import pytest

from service.tasks import autoregressive
from service.tasks.forecasting import ar_base, standardise_window
from training import series
from training.rolling_origin import ORIGINS, ar_forecast, origin_window


@pytest.mark.parametrize("name", list(series.EVALUATED))
def test_it_reproduces_statsmodels_ar_select_order_on_the_evaluated_series(name: str) -> None:
    """The hybrid forecaster's base is BASELINES.md's AR(p), computed without statsmodels."""
    y = series.LOADERS[name]()
    for origin in range(ORIGINS):
        train, _ = origin_window(y, origin)
        expected = ar_forecast(train, 12)  # statsmodels
        np.testing.assert_allclose(autoregressive.forecast(train, 12), expected, rtol=1e-9)


def test_order_is_chosen_by_aic_on_a_known_process() -> None:
    rng = np.random.default_rng(0)
    y = np.zeros(2000)
    for t in range(2, len(y)):
        y[t] = 5.0 + 0.6 * y[t - 1] - 0.3 * y[t - 2] + rng.standard_normal()
    assert autoregressive.select_order(y) == 2
    constant, phi_1, phi_2 = autoregressive.fit(y, 2)
    assert (constant, phi_1, phi_2) == pytest.approx((5.0, 0.6, -0.3), abs=0.1)


def test_max_lag_is_a_quarter_of_the_series_at_most() -> None:
    assert autoregressive.max_lag(48) == 12
    assert autoregressive.max_lag(1000) == autoregressive.MAX_ORDER
    assert autoregressive.max_lag(1000, max_order=5) == 5


def _continued(rule, length: int = 60, steps: int = 6) -> tuple[np.ndarray, np.ndarray]:
    values = np.array([rule(t) for t in range(length + steps)], dtype=np.float64)
    return values[:length], values[length:]


@pytest.mark.parametrize(
    "rule",
    [lambda t: 7.0, lambda t: 3.0 + 0.5 * t, lambda t: 1.0 + t % 3],
    ids=["flat", "line", "period-3"],
)
def test_degenerate_series_get_their_exact_continuation(rule) -> None:
    """Series a few lags explain exactly must not break the fit (rank-deficient lag matrices)."""
    y, expected = _continued(rule)
    np.testing.assert_allclose(autoregressive.forecast(y, 6), expected, atol=1e-6)


def test_the_base_is_fitted_in_the_windows_units() -> None:
    """Affine equivariance: fitting the standardised history gives the standardised forecast,
    and a residual scale divided by the window's std."""
    y = series.LOADERS["airline"]()
    _, mean, std = standardise_window(y[-48:], 1e-6)
    base, scale = ar_base(y, mean, std, horizon=12, history=1024, max_order=36)
    expected, expected_scale = autoregressive.forecast_and_scale(y, 12)
    np.testing.assert_allclose(base * std + mean, expected, rtol=1e-9)
    assert scale * std == pytest.approx(expected_scale, rel=1e-9)
    # only the last ``history`` values are used
    short, _ = ar_base(y, mean, std, horizon=12, history=60, max_order=36)
    np.testing.assert_allclose(short * std + mean, autoregressive.forecast(y[-60:], 12), rtol=1e-9)


def test_the_scale_is_the_fits_one_step_residual_rms() -> None:
    rng = np.random.default_rng(1)
    y = np.zeros(3000)
    for t in range(1, len(y)):
        y[t] = 0.8 * y[t - 1] + 2.0 * rng.standard_normal()
    _, scale = autoregressive.forecast_and_scale(y, 12)
    assert scale == pytest.approx(2.0, rel=0.05)
