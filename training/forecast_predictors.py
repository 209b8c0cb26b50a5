"""How a forecaster is run under the evaluation protocol: a trained ensemble, an exported graph or
the base alone, each as a ``rolling_origin.PredictorOf`` (a series' name -> its forecasts from
each origin, with the base its frequency gets)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from training import rolling_origin
from training.rolling_origin import HORIZON


def torch_runner(model: nn.Module) -> rolling_origin.Runner:
    def run(*inputs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(*(torch.from_numpy(x) for x in inputs)).numpy()

    return run


def session_runner(session) -> rolling_origin.Runner:
    names = [tensor.name for tensor in session.get_inputs()]  # series, base, base_scale
    return lambda *inputs: session.run(None, dict(zip(names, inputs, strict=True)))[0]


def last12_mase(
    run: rolling_origin.Runner,
    y: np.ndarray,
    window: int,
    ar: rolling_origin.ArBase,
    season: int,
    period: int = 0,
) -> float:
    """MASE of the forecast of ``y``'s last 12 values from the rest (origin 0)."""
    train, truth = rolling_origin.origin_window(y, 0)
    pred = rolling_origin.forecast(run, train, window, HORIZON, ar, period)
    return rolling_origin.errors(pred, train, truth, season)["mase"]


def predictor(
    window: int, ar: rolling_origin.ArBase, models: dict[int, nn.Module]
) -> rolling_origin.PredictorOf:
    """Forecasts from each origin by the ensemble trained for it, with each series' base."""
    runners = {origin: torch_runner(model) for origin, model in models.items()}
    return lambda name: (
        lambda origin, train, steps: rolling_origin.forecast(
            runners[origin], train, window, steps, ar, ar.period(name)
        )
    )


def base_predictor(window: int, ar: rolling_origin.ArBase) -> rolling_origin.PredictorOf:
    """The base alone: its forecast as the median, no interval (the ablation's first row)."""

    def run(_series: np.ndarray, base: np.ndarray, _scale: np.ndarray) -> np.ndarray:
        return base[..., None]

    return lambda name: (
        lambda origin, train, steps: rolling_origin.forecast(
            run, train, window, steps, ar, ar.period(name)
        )
    )
