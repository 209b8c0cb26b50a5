"""Train a global hybrid forecaster, LSTMs that correct each series' own statistical forecast, on
windows from several real series, once per rolling origin of the BASELINES.md protocol; export
origin 0's model (the one trained on the most data) to ONNX and ship it as a new version.

    python -m training.forecasting --validate --work-dir runs/f   # score the recipe on origins 5-7
    python -m training.forecasting --work-dir runs/f              # train origins 0-4, ship
    python -m training.forecasting --weights runs/f --evaluate-test   # the test windows, once
    ... --no-base --no-export --work-dir runs/f-lstm   # the ablation's LSTM alone, scored beside
                                                       # the model by --ablation-weights runs/f-lstm
    python -m training.forecasting --dry-run --out-dir /tmp/m     # a smoke run in seconds

Normalisation (``window_standard``, identical in training and serving): each input window of
``window`` values is standardised by its own mean and population standard deviation (ddof 0),
the deviation floored at EPS = 1e-6; the forecast comes out in those units and is mapped back
with the same two numbers. Base (identical in training and serving,
``service.dataplane.tasks.forecasting.ar_base``): from the series' last ``ar_history`` values,
the airline model ARIMA(0,1,1)(0,1,1) when the series' frequency has a season length
(``SEASON_LENGTHS``) and its season is strong, otherwise BASELINES.md's AR(p) (order by AIC, on
levels or one of the Box-Cox ``ar_powers``); with the root mean square of its one-step
residuals, in the window's units. The model's quantiles are that forecast plus a correction
learnt across series, in units of that scale, so a window of 48 values still gets what a
series' whole history says; the served median keeps ``correction`` of it. Output: [N, horizon,
Q] quantiles (0.1, 0.5, 0.9), monotone by construction, trained with the pinball loss, averaged
over an ensemble of ``members`` LSTMs. Horizons beyond ``horizon`` are made recursively.

Leakage rule (``rolling_origin.training_part``): the model that forecasts from an origin is
trained only on data before it: the evaluated series end there, and monthly and annual sunspots,
one phenomenon, both end at the earlier of their two origins' dates. The shipped model is origin
0's: it has seen everything except the last 12 values of the evaluated series (1983 onwards for
sunspots), so its last-12 figures are held out and the test suite reproduces them. The test
windows (origins 0-4) are scored only by ``--evaluate-test``, and the card counts the scorings.
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

from service.dataplane.tasks import seasonal
from training import common, data, forecast_report, loop, rolling_origin, series
from training.forecast_predictors import base_predictor, predictor
from training.forecaster import Ensemble, Forecaster, pinball_loss
from training.rolling_origin import HORIZON, ORIGINS, VALIDATION_ORIGINS
from training.windows import WindowSets, cached_bases

# What a --weights run takes from its own command line; the rest is the trained run's recipe.
RUN_FIELDS = (
    "out_dir",
    "work_dir",
    "weights",
    "ablation_weights",
    "export",
    "evaluate_test",
    "device",
)
# The shares of the LSTMs' correction a --validate run scores (0: the base's median, 1: theirs).
CORRECTION_SHARES = (0.0, 0.25, 0.5, 1.0)
# Season lengths by the freq a series is posted with; the base tries the airline model on them.
SEASON_LENGTHS = (("MS", 12), ("QS", 4))


@dataclass(frozen=True)
class Config:
    out_dir: str = str(common.MODELS_DIR)
    work_dir: str = "runs/forecasting"
    name: str = "series-forecaster"
    version: int = 3
    device: str = "cpu"
    seed: int = 1337
    window: int = 48
    # the base is fitted on at most this many latest values: enough for every evaluated series'
    # whole history, so on levels the AR(p) base is BASELINES.md's AR(p)
    ar_history: int = 3072
    # Box-Cox powers the AR(p) base may fit besides levels (0 is the log)
    ar_powers: tuple[float, ...] = (0.5, 0.0)
    # the airline model, ARIMA(0,1,1)(0,1,1), as the base of strongly seasonal monthly and
    # quarterly series (service.dataplane.tasks.seasonal); off: AR(p) for every series
    seasonal: bool = True
    # how the airline model's coefficients are estimated: "exact" likelihood or "conditional"
    # sum of squares (service.dataplane.tasks.seasonal)
    seasonal_fit: seasonal.Criterion = "exact"
    # --no-base: no base at all, the LSTMs read zeros and a unit scale (the ablation's "LSTM
    # alone"). Named for what is on, as a "no_" field's --no- flag would switch it off.
    base: bool = True
    # the share of the LSTMs' correction to the base's median that is served, chosen on the
    # validation origins
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
    # a finished run's work dir: its five ensembles are exported and evaluated as they are
    weights: str = ""
    # an "LSTM alone" run's work dir (--no-base): scored beside the model by --evaluate-test
    ablation_weights: str = ""
    export: bool = True
    evaluate_test: bool = False  # score the rolling-5 test windows (once per shipped version)
    validate: bool = False  # train on validation origins 5-7 only, print the score, ship nothing
    dry_run: bool = False

    @property
    def served_correction(self) -> float:
        """Without a base there is nothing to anchor the median to: the LSTMs' output whole."""
        return self.correction if self.base else 1.0

    @property
    def ar_base(self) -> rolling_origin.ArBase:
        if not self.base:
            return rolling_origin.ArBase(0)
        seasons = SEASON_LENGTHS if self.seasonal else ()
        return rolling_origin.ArBase(self.ar_history, self.ar_powers, seasons, self.seasonal_fit)


# --- training -----------------------------------------------------------------------------------


def new_member(cfg: Config) -> Forecaster:
    return Forecaster(cfg.window, len(cfg.quantiles), cfg.hidden, cfg.layers, cfg.dropout)


def train_member(cfg: Config, sets: WindowSets, device, seed: int, label: str):
    """One LSTM, trained with the cosine schedule; the weights of its best validation epoch."""
    common.seed_everything(seed)
    model = new_member(cfg).to(device)
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
    return Ensemble([model for model, _ in trained], cfg.served_correction).eval(), trained[0][1]


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

    if cfg.dry_run:  # two short series, one scored
        all_series = {n: all_series[n] for n in ("airline", "sunspots_annual")}
    # the evaluated series, whole: the protocol scores each origin on them
    evaluated = {n: all_series[n] for n in (["airline"] if cfg.dry_run else series.EVALUATED)}
    if cfg.validate:
        bases = cached_bases(all_series, cfg.window, cfg.ar_base, work_dir, cfg.dry_run)
        trained = {
            k: train_origin(cfg, all_series, bases, k, device)[0] for k in VALIDATION_ORIGINS
        }
        scores = rolling_origin.validation_scores(
            predictor(cfg.window, cfg.ar_base, trained), evaluated
        )
        scores["base_alone"] = rolling_origin.validation_scores(
            base_predictor(cfg.window, cfg.ar_base), evaluated
        )
        # the share of the correction to serve: the same ensembles, the median moved less or more
        scores["correction_shares"], scores["series_by_share"] = {}, {}
        for share in CORRECTION_SHARES:
            for model in trained.values():
                model.correction = share
            scored = rolling_origin.validation_scores(
                predictor(cfg.window, cfg.ar_base, trained), evaluated
            )
            scores["correction_shares"][str(share)] = scored["mean_ratio"]
            scores["series_by_share"][str(share)] = scored["series"]
        print("validation", json.dumps(scores))
        if not cfg.dry_run:  # the card of the model this recipe trains quotes it
            work_dir.mkdir(parents=True, exist_ok=True)
            (work_dir / forecast_report.VALIDATION_FILE).write_text(json.dumps(scores, indent=1))
        return scores

    if cfg.weights:
        models, history, command, trained_with = load_run(Path(cfg.weights), command)
        # the recipe is the run's; what to do with it is this command's
        cfg = dataclasses.replace(trained_with, **{k: getattr(cfg, k) for k in RUN_FIELDS})
    else:
        bases = cached_bases(all_series, cfg.window, cfg.ar_base, work_dir, cfg.dry_run)
        models, history = {}, []
        for origin in range(ORIGINS):
            model, member_history = train_origin(cfg, all_series, bases, origin, device)
            models[origin] = model
            history = history or member_history  # the shipped model's first member
            # origin 0's ensemble is the shipped model; the others are kept for the record
            path = work_dir / ("ckpt.pt" if origin == 0 else f"origin{origin}.pt")
            loop.save_checkpoint(
                path, model, config=dataclasses.asdict(cfg), history=member_history, command=command
            )
    if not cfg.export:
        return {}
    ablation = load_run(Path(cfg.ablation_weights), "")[0] if cfg.ablation_weights else None
    return forecast_report.export_and_report(
        cfg, models, ablation, history, command, all_series, evaluated
    )


def load_run(work_dir: Path, command: str):
    """The five ensembles a finished run saved, its shipped member's history, the whole command
    chain (the run's command, then this one) and the run's configuration."""
    models, history, first, run = {}, [], "", Config()
    for origin in range(ORIGINS):
        ckpt = loop.load_checkpoint(work_dir / ("ckpt.pt" if origin == 0 else f"origin{origin}.pt"))
        saved = {k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["config"].items()}
        if "no_base" in saved:  # saved before the switch was named for what it turns on
            saved["base"] = not saved.pop("no_base")
        saved.setdefault("seasonal_fit", "conditional")  # the only fit before it was a choice
        run = Config(**saved)
        model = Ensemble([new_member(run) for _ in range(run.members)], run.served_correction)
        model.load_state_dict(ckpt["model"])
        models[origin] = model.eval()
        if origin == 0:
            history, first = ckpt.get("history", []), ckpt.get("command", "")
    chain = f"{first} ; {command}" if first and command else first or command
    return models, history, chain, run


if __name__ == "__main__":
    main(sys.argv[1:])
