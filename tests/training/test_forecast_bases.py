"""The forecaster's base study: every candidate the service can compute, on one history."""

from __future__ import annotations

import numpy as np

from training import forecast_bases


def test_a_seasonal_history_gets_every_candidate_and_a_plain_one_ar_alone() -> None:
    t = np.arange(120)
    rng = np.random.default_rng(0)
    history = 100 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, t.size)
    bases = forecast_bases.candidates(history, 12, 12)
    assert len(bases) == 7
    assert all(f.shape == (12,) and np.isfinite(f).all() for f in bases.values())
    # the season carries on: a year on from the same month, plus a year of trend
    assert abs(bases["airline_exact"][3] - (history[-9] + 6)) < 5
    mean = (bases["airline_exact_log"] + bases["airline_exact_levels"]) / 2
    assert np.allclose(bases["mean_log_levels"], mean)
    assert set(forecast_bases.candidates(history, 1, 12)) == {"ar_box_cox"}
