"""The evaluation protocol of ``../shared/data/series/BASELINES.md``: rolling origins, what a model
may train on at each, recursive forecasts, errors in original units, and the classical baselines.

Rolling-5: horizon 12, origins k = 0..4; origin k trains on ``y[:n - 12 (k + 1)]`` and forecasts
the next 12 values, so the last 60 values are covered by five non-overlapping windows. Origins
5-7 (``VALIDATION_ORIGINS``), under the same rules, are where recipes are compared.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from service.dataplane.tasks import autoregressive, seasonal
from service.dataplane.tasks.forecasting import ar_base
from training import metrics, series

HORIZON = 12
ORIGINS = 5
# The 36 values before the test windows: recipe choices are scored here, never on origins 0-4.
VALIDATION_ORIGINS = (5, 6, 7)
# the quantiles a forecast of [steps, 3] holds, for its pinball loss and interval coverage
QUANTILES = (0.1, 0.5, 0.9)

# one model call: a standardised window [1, window, 1], the AR(p) forecast from it in the same
# units [1, HORIZON] and its residual scale [1, 1], all float32 -> quantiles [1, HORIZON, Q]
Runner = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
# (origin, training part, steps) -> forecast [steps] or quantiles [steps, Q]
Predictor = Callable[[int, np.ndarray, int], np.ndarray]
# a series' name -> how a model forecasts it (the base depends on the series' frequency)
PredictorOf = Callable[[str], Predictor]
EPS = 1e-6


def cut(n: int, origin: int) -> int:
    """Length of the training part of a series of ``n`` values at rolling origin ``origin``."""
    return n - HORIZON * (origin + 1)


def training_part(all_series: dict[str, np.ndarray], origin: int) -> dict[str, np.ndarray]:
    """Every series as a model may see it when forecasting from ``origin``: each evaluated series
    ends before its origin, and series of one phenomenon all end at the earliest of their
    origins' dates, so that none reveals another's evaluation window."""
    ends = {name: cut(len(y), origin) for name, y in all_series.items() if name in series.EVALUATED}
    shared = {k: v for k, v in series.SAME_PHENOMENON.items() if k in ends}
    if shared:
        year = min(start + ends[name] / per_year for name, (start, per_year) in shared.items())
        for name, (start, per_year) in shared.items():
            ends[name] = min(ends[name], int((year - start) * per_year))
    return {name: y[: ends.get(name, len(y))] for name, y in all_series.items()}


def standardise(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[N, W] -> standardised [N, W], mean [N, 1], std [N, 1] (population std floored at EPS):
    the manifest's ``window_standard``, as the service computes it."""
    mean = windows.mean(1, keepdims=True)
    std = np.maximum(windows.std(1, keepdims=True), EPS)
    return (windows - mean) / std, mean, std


class ModelInputs(NamedTuple):
    """What a hybrid model reads to forecast the values after a history, and how to map its
    output back: ``series`` [window] standardised, ``base`` [HORIZON] and ``scale`` in the same
    units (the service's ``base`` and ``base_scale``), and the window's ``mean`` and ``std``."""

    series: np.ndarray
    base: np.ndarray
    scale: float
    mean: float
    std: float


class ArBase(NamedTuple):
    """How a hybrid's base is fitted: on at most the ``history`` latest values; the airline
    model for a series whose frequency has a season length in ``season_lengths`` and whose
    season is strong, its coefficients by ``seasonal_fit``, otherwise AR(p) on levels or one of
    the Box-Cox ``powers`` (the manifest's ``base_history``, ``base_seasonal_periods``,
    ``base_seasonal_fit`` and ``base_powers``)."""

    history: int  # 0: no base (zeros and a unit scale), for the LSTM alone
    powers: tuple[float, ...] = ()
    season_lengths: tuple[tuple[str, int], ...] = ()
    seasonal_fit: seasonal.Criterion = "conditional"

    def period(self, name: str) -> int:
        """The season length the base tries for the series ``name``; 0 for none."""
        return dict(self.season_lengths).get(series.FREQUENCIES.get(name, ""), 0)


def model_inputs(history: np.ndarray, window: int, ar: ArBase, period: int = 0) -> ModelInputs:
    """The last ``window`` values of ``history`` standardised, and the base forecast from it
    with its residual scale, in that window's units: what the service feeds for a posted
    ``history`` (``period``: the season length its freq maps to)."""
    z, mean, std = standardise(history[None, -window:])
    if ar.history == 0:  # no base: the LSTM alone, in the ablation
        return ModelInputs(z[0], np.zeros(HORIZON), 1.0, mean.item(), std.item())
    base, scale = ar_base(
        history,
        mean.item(),
        std.item(),
        HORIZON,
        ar.history,
        autoregressive.MAX_ORDER,
        ar.powers,
        period,
        ar.seasonal_fit,
    )
    return ModelInputs(z[0], base, scale, mean.item(), std.item())


def forecast(
    run: Runner, history: np.ndarray, window: int, steps: int, ar: ArBase, period: int = 0
) -> np.ndarray:
    """Quantile forecasts [steps, Q] in original units; recursive on the median past HORIZON."""
    context = np.asarray(history, np.float64)
    chunks: list[np.ndarray] = []
    while sum(len(c) for c in chunks) < steps:
        x = model_inputs(context, window, ar, period)
        inputs = (x.series[None, :, None], x.base[None], np.array([[x.scale]]))
        chunk = run(*(v.astype(np.float32) for v in inputs))[0]
        chunk = chunk * x.std + x.mean
        chunks.append(chunk)
        context = np.concatenate([context, chunk[:, chunk.shape[1] // 2]])
    return np.concatenate(chunks)[:steps]


def ar_forecast(train: np.ndarray, steps: int, quantiles: bool = False) -> np.ndarray:
    """AR(p) on levels with a constant, p chosen by AIC (statsmodels), as BASELINES.md; with
    ``quantiles``, [steps, 3]: its Gaussian 0.1, 0.5 and 0.9 quantiles."""
    from statsmodels.tsa.ar_model import ar_select_order

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # maxlag 36 (a quarter of very short series) reproduces BASELINES.md's AR(p) rows exactly
        maxlag = min(36, len(train) // 4)
        selection = ar_select_order(train, maxlag=maxlag, ic="aic", trend="c")
        fitted = selection.model.fit()
        prediction = fitted.get_prediction(start=len(train), end=len(train) + steps - 1)
        mean = np.asarray(prediction.predicted_mean)
        if not quantiles:
            return mean
        interval = np.asarray(prediction.conf_int(alpha=0.2))  # the central 80 %
    return np.stack([interval[:, 0], mean, interval[:, 1]], axis=1)


def naive_forecast(train: np.ndarray, steps: int, season: int) -> np.ndarray:
    return np.resize(train[-season:], steps)


def errors(pred: np.ndarray, train: np.ndarray, truth: np.ndarray, season: int) -> dict:
    """Errors of a point forecast [steps] or of the median of quantiles [steps, Q], in original
    units; the MASE scale is the in-sample seasonal naive of ``train``."""
    median = pred[:, pred.shape[1] // 2] if pred.ndim == 2 else pred
    return metrics.forecast_errors(truth, median, metrics.mase_scale(train, season))


def origin_window(y: np.ndarray, origin: int) -> tuple[np.ndarray, np.ndarray]:
    """The training part and the 12 values that ``origin`` forecasts."""
    end = cut(len(y), origin)
    return y[:end], y[end : end + HORIZON]


def evaluate_series(predict: Predictor, y: np.ndarray, season: int, smape: bool = True) -> dict:
    """Rolling-5 means and each origin's MASE, then last-12 and last-24 MASE (origin 0's window is
    the last 12 values; origin 1 forecasts the last 24), and the coverage of the outer quantiles
    when the forecast has them, with their mean pinball loss (``QUANTILES``, original units). MASE
    scale: the in-sample seasonal naive of each training part."""
    rows, covered, pinball = [], [], []
    for origin in range(ORIGINS):
        train, truth = origin_window(y, origin)
        pred = predict(origin, train, HORIZON)
        rows.append(errors(pred, train, truth, season))
        if pred.ndim == 2 and pred.shape[1] == len(QUANTILES):
            covered.append(np.mean((truth >= pred[:, 0]) & (truth <= pred[:, -1])))
            pinball.append(
                np.mean([metrics.pinball(truth, pred[:, i], q) for i, q in enumerate(QUANTILES)])
            )
    result = {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}
    result.update({f"origin{k}_mase": r["mase"] for k, r in enumerate(rows)})
    result["last12_mase"] = rows[0]["mase"]
    train, truth = y[: -2 * HORIZON], y[-2 * HORIZON :]
    result["last24_mase"] = errors(predict(1, train, 2 * HORIZON), train, truth, season)["mase"]
    if covered:
        result["coverage"] = float(np.mean(covered))
        result["pinball"] = float(np.mean(pinball))
    if not smape:
        result.pop("smape")
    return result


def evaluate(predictor_of: PredictorOf, evaluated: dict[str, np.ndarray]) -> dict[str, dict]:
    """``{name}_rolling5`` rows for the ``evaluated`` series (name -> all its values; sMAPE left
    out for sunspots, whose values near zero make it meaningless)."""
    return {
        f"{name}_rolling5": evaluate_series(
            predictor_of(name), y, series.EVALUATED[name], smape=not name.startswith("sunspots")
        )
        for name, y in evaluated.items()
    }


def baselines(evaluated: dict[str, np.ndarray]) -> dict[str, dict[str, dict]]:
    """Seasonal naive (naive for sunspots) and AR(p), on the same protocol."""
    out = {}
    for name, y in evaluated.items():
        season, smape = series.EVALUATED[name], not name.startswith("sunspots")
        out[name] = {
            "seasonal_naive" if season > 1 else "naive": evaluate_series(
                lambda _o, t, s, season=season: naive_forecast(t, s, season), y, season, smape
            ),
            "ar_p": evaluate_series(lambda _o, t, s: ar_forecast(t, s, True), y, season, smape),
        }
    return out


def validation_scores(
    predictor_of: PredictorOf, evaluated: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Per ``evaluated`` series, the mean MASE over ``VALIDATION_ORIGINS`` of the model and of
    AR(p) and their ratio; ``mean_ratio``, the ratios' mean, is the score a recipe is chosen by."""
    rows = {}
    for name, y in evaluated.items():
        season, model, ar, predict = series.EVALUATED[name], [], [], predictor_of(name)
        for origin in VALIDATION_ORIGINS:
            train, truth = origin_window(y, origin)
            model.append(errors(predict(origin, train, HORIZON), train, truth, season)["mase"])
            ar.append(errors(ar_forecast(train, HORIZON), train, truth, season)["mase"])
        mase, ar_mase = float(np.mean(model)), float(np.mean(ar))
        rows[name] = {"mase": mase, "ar_p_mase": ar_mase, "ratio": mase / ar_mase}
    return {"series": rows, "mean_ratio": float(np.mean([r["ratio"] for r in rows.values()]))}
