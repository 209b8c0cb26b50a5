from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from service.dataplane.tasks.forecasting import (
    fill_missing,
    future_timestamps,
    standardise_window,
    unstandardise,
)
from service.errors import InvalidParameterError


def test_fill_missing_policies() -> None:
    values = [1.0, None, 3.0, None, None, 6.0]
    filled, count = fill_missing(values, "interpolate")
    np.testing.assert_allclose(filled, [1, 2, 3, 4, 5, 6])
    assert count == 3
    filled, _ = fill_missing(values, "ffill")
    np.testing.assert_allclose(filled, [1, 1, 3, 3, 3, 6])
    with pytest.raises(InvalidParameterError, match="3 missing"):
        fill_missing(values, "error")


@pytest.mark.parametrize(
    ("values", "policy"),
    [
        ([None, 1.0], "ffill"),
        ([None, 1.0], "interpolate"),
        ([1.0, None], "interpolate"),
        ([None, None], "ffill"),
    ],
)
def test_gaps_that_cannot_be_closed_are_errors(values: list[float | None], policy: str) -> None:
    with pytest.raises(InvalidParameterError):
        fill_missing(values, policy)  # type: ignore[arg-type]


def test_standardise_round_trip_and_flat_window() -> None:
    window = np.array([10.0, 12.0, 14.0])
    scaled, mean, std = standardise_window(window, 1e-6)
    np.testing.assert_allclose(scaled.mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(unstandardise(scaled, mean, std), window)
    flat, _, std = standardise_window(np.full(5, 7.0), 1e-6)
    assert std == 1e-6 and (flat == 0).all()


def test_future_timestamps_fixed_and_calendar_steps() -> None:
    start = datetime(2024, 1, 31)
    assert future_timestamps(start, "D", 3, 2) == ["2024-02-03T00:00:00", "2024-02-04T00:00:00"]
    # Month steps clamp to the month's last day.
    assert future_timestamps(start, "MS", 1, 2) == ["2024-02-29T00:00:00", "2024-03-31T00:00:00"]
    assert future_timestamps(start, "YS", 1, 1) == ["2025-01-31T00:00:00"]
    with pytest.raises(InvalidParameterError, match="unknown freq"):
        future_timestamps(start, "fortnight", 1, 1)
