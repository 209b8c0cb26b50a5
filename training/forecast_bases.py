"""The forecaster's candidate bases on long runs of validation origins, all before the test
windows: which base a version should serve, judged on more windows than the recipe's origins 5-7.

    python -m training.forecast_bases

Mean MASE (original units, the protocol's scale) over origins 5-20 for CO2 and monthly
sunspots, 5-11 for annual sunspots and 5-7 for airline (its 144 values allow no more), of each
base the service can compute: AR(p) with the Box-Cox powers, the airline model by each
criterion and power, and equal-weight combinations. Nothing here reads origins 0-4.
"""

from __future__ import annotations

import json

import numpy as np

from service.dataplane.tasks import autoregressive, seasonal
from training import metrics, rolling_origin, series

ORIGINS = {
    "airline": range(5, 8),
    "co2_monthly": range(5, 21),
    "sunspots_monthly": range(5, 21),
    "sunspots_annual": range(5, 12),
}
HISTORY, POWERS = 3072, (0.5, 0.0)  # the shipped manifest's base_history and base_powers


def candidates(history: np.ndarray, period: int, steps: int) -> dict[str, np.ndarray]:
    """Each candidate base's forecast of ``steps`` values after ``history``."""
    ar, _ = autoregressive.forecast_and_scale(history, steps, autoregressive.MAX_ORDER, POWERS)
    bases = {"ar_box_cox": ar}
    if period > 1:
        exact, _ = seasonal.forecast_and_scale(history, period, steps, "exact")
        levels = seasonal.fit(history, period, steps, 1.0, "exact").forecast
        logged = seasonal.fit(history, period, steps, 0.0, "exact").forecast
        bases |= {
            "airline_exact": exact,  # version 3's: the log unless its forecast strays
            "airline_exact_levels": levels,
            "airline_exact_log": logged,
            "airline_conditional": seasonal.forecast_and_scale(history, period, steps)[0],
            "mean_airline_exact_ar": (exact + ar) / 2,
            "mean_log_levels": (logged + levels) / 2,
        }
    return bases


def main() -> None:
    evaluated = series.load_all(extra=False)
    for name, origins in ORIGINS.items():
        y, season = evaluated[name], series.EVALUATED[name]
        scores: dict[str, list[float]] = {}
        for origin in origins:
            train, truth = rolling_origin.origin_window(y, origin)
            scale = metrics.mase_scale(train, season)
            for base, forecast in candidates(train[-HISTORY:], season, len(truth)).items():
                scores.setdefault(base, []).append(float(np.mean(np.abs(forecast - truth)) / scale))
        means = {base: round(float(np.mean(values)), 4) for base, values in scores.items()}
        print(name, f"origins {origins.start}-{origins.stop - 1}:", json.dumps(means), flush=True)


if __name__ == "__main__":
    main()
