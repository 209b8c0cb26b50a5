"""The BASELINES.md protocol: what each origin may train on, the windows it scores, and the
forecast loop shared by PyTorch and ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

from training import rolling_origin, series
from training.rolling_origin import HORIZON, ArBase


def test_training_part_ends_each_evaluated_series_before_its_origin() -> None:
    all_series = {"airline": np.arange(144.0), "nile": np.arange(100.0)}
    for origin in range(rolling_origin.ORIGINS):
        part = rolling_origin.training_part(all_series, origin)
        assert len(part["airline"]) == 144 - HORIZON * (origin + 1)
        assert len(part["nile"]) == 100  # not evaluated: all of it


@pytest.mark.parametrize(("origin", "year"), [(0, 1983), (1, 1982), (2, 1973), (4, 1949)])
def test_sunspot_series_end_at_the_earlier_of_their_two_origins(origin: int, year: int) -> None:
    """Annual sunspots are yearly means of the monthly counts: at origin 2 annual forecasts from
    1973 and monthly from 1981, so neither may hold 1973-1980 (nor annual 1981-1984)."""
    monthly = np.arange(2820.0)  # 1749-01 .. 1983-12
    annual = np.arange(309.0)  # 1700 .. 2008
    part = rolling_origin.training_part(
        {"sunspots_monthly": monthly, "sunspots_annual": annual}, origin
    )
    assert series.SAME_PHENOMENON["sunspots_monthly"] == (1749, 12)
    assert len(part["sunspots_monthly"]) == (year - 1749) * 12
    assert len(part["sunspots_annual"]) == year - 1700


def test_evaluate_series_scores_five_disjoint_windows_and_the_last_12_and_24() -> None:
    y = np.arange(100.0)
    seen: list[tuple[int, int, int]] = []

    def predict(origin: int, train: np.ndarray, steps: int) -> np.ndarray:
        seen.append((origin, len(train), steps))
        return train[-1] + 1.0 + np.arange(steps)  # the exact continuation

    result = rolling_origin.evaluate_series(predict, y, season=1)
    assert seen[:5] == [(k, 100 - 12 * (k + 1), 12) for k in range(5)]
    assert seen[5:] == [(1, 76, 24)]  # last-12 is origin 0's window, not forecast again
    assert result["mase"] == 0.0 and result["last24_mase"] == 0.0
    assert "coverage" not in result  # a point forecast has no interval

    def off_by_two(origin: int, train: np.ndarray, steps: int) -> np.ndarray:
        exact = train[-1] + 1.0 + np.arange(steps)
        return np.stack([exact + 1.0, exact + 2.0, exact + 3.0], 1)  # median 2 too high

    result = rolling_origin.evaluate_series(off_by_two, y, season=1)
    assert result["mae"] == pytest.approx(2.0)
    assert result["mase"] == pytest.approx(2.0)  # in-sample lag-1 naive MAE of a ramp is 1
    assert result["origin3_mase"] == pytest.approx(2.0)
    assert result["last12_mase"] == result["origin0_mase"]
    assert result["coverage"] == 0.0  # the truth is below the 0.1 quantile


def test_forecast_standardises_each_window_and_feeds_the_median_back() -> None:
    calls: list[np.ndarray] = []
    bases: list[np.ndarray] = []
    scales: list[np.ndarray] = []

    def run(z: np.ndarray, base: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """A model that forecasts 0, 1 and 2 standard deviations above the window's mean."""
        calls.append(z), bases.append(base), scales.append(scale)
        return np.ones((1, HORIZON, 3), np.float32) * np.array([0.0, 1.0, 2.0], np.float32)

    history = 100.0 + 10.0 * np.tile([-1.0, 1.0], 30)  # every 48-window: mean 100, std 10
    out = rolling_origin.forecast(run, history, window=48, steps=20, ar=ArBase(1024))
    assert out.shape == (20, 3)
    assert [c.shape for c in calls] == [(1, 48, 1), (1, 48, 1)]
    assert calls[0].dtype == bases[0].dtype == scales[0].dtype == np.float32
    # the AR(p) base continues the alternation exactly, in the window's units (-1, +1, ...)
    np.testing.assert_allclose(bases[0][0], np.tile([-1.0, 1.0], 6), atol=1e-5)
    assert scales[0].shape == (1, 1) and scales[0][0, 0] < 1e-5
    np.testing.assert_allclose(np.abs(calls[0]), 1.0, rtol=1e-6)  # standardised
    np.testing.assert_allclose(out[:12], np.tile([100.0, 110.0, 120.0], (12, 1)))
    # the second call's window ends with the first 12 medians (110, the window's highest value)
    np.testing.assert_allclose(calls[1][0, -12:, 0], calls[1].max())
    assert np.all(out[12:, 1] > 110.0)


def test_baselines_reproduce_baselines_md() -> None:
    """AR(p) by AIC and seasonal naive on airline: BASELINES.md's 0.65 and 1.33."""
    rows = rolling_origin.baselines({"airline": series.LOADERS["airline"]()})["airline"]
    assert rows["ar_p"]["mase"] == pytest.approx(0.65, abs=0.005)
    assert rows["seasonal_naive"]["mase"] == pytest.approx(1.33, abs=0.005)
    # AR(p)'s Gaussian 80 % interval: BASELINES.md notes that its 95 % one under-covers airline
    assert 0.0 < rows["ar_p"]["coverage"] < 0.8 and rows["ar_p"]["pinball"] > 0


def test_validation_scores_use_only_the_three_origins_before_the_test_windows() -> None:
    """Recipes are compared on origins 5-7, each against AR(p) on the same windows; no call may
    reach the test windows (the last 60 values)."""
    airline = series.LOADERS["airline"]()
    seen: list[tuple[int, int]] = []

    def exact(origin: int, train: np.ndarray, steps: int) -> np.ndarray:
        seen.append((origin, len(train)))
        end = len(train)
        return airline[end : end + steps] + 1.0  # one passenger (thousand) too many

    scores = rolling_origin.validation_scores(lambda _name: exact, {"airline": airline})
    assert seen == [(5, 72), (6, 60), (7, 48)]
    assert max(n + HORIZON for _, n in seen) <= len(airline) - 60
    row = scores["series"]["airline"]
    scales = [np.mean(np.abs(airline[12:n] - airline[: n - 12])) for _, n in seen]
    assert row["mase"] == pytest.approx(np.mean([1.0 / s for s in scales]))
    assert row["ratio"] == pytest.approx(row["mase"] / row["ar_p_mase"])
    assert scores["mean_ratio"] == pytest.approx(row["ratio"])
