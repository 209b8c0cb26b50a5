"""Train one global LSTM forecaster on windows from several real series, compare it with seasonal
naive and AR(p) on the rolling-origin protocol of BASELINES.md, export it to ONNX and ship it.

    python -m training.forecasting                        # full training (CPU is enough)
    python -m training.forecasting --dry-run --out-dir /tmp/m    # a smoke run in seconds

Normalisation (``window_standard``, identical in training and serving): each input window of
``window`` values is standardised by its own mean and population standard deviation (ddof 0),
the deviation floored at EPS = 1e-6; the forecast comes out in those units and is mapped back
with the same two numbers. Output: [N, horizon, Q] quantiles (0.1, 0.5, 0.9), monotone by
construction, trained with the pinball loss. Horizons beyond ``horizon`` are made recursively.

Leakage rule: the last HOLDOUT = 5 x 12 values of every evaluated series are never trained on, so
no rolling origin's evaluation window is seen (stricter than training once per origin).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from service.manifest import ForecastingDecoding, Manifest, TensorSpec
from training import card, common, data, export, metrics, series

EPS = 1e-6
HORIZON = 12
ORIGINS = 5
HOLDOUT = HORIZON * ORIGINS


@dataclass(frozen=True)
class Config:
    out_dir: str = str(common.MODELS_DIR)
    work_dir: str = "runs/forecasting"
    name: str = "series-forecaster"
    version: int = 1
    device: str = "cpu"
    seed: int = 1337
    window: int = 48
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.2
    noise: float = 0.03  # augmentation: Gaussian jitter on the standardised inputs
    batch_size: int = 256
    steps_per_epoch: int = 100
    epochs: int = 60
    time_budget_s: float = 0.0
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 12
    csv: tuple[str, ...] = ()  # extra training series: CSV files, last numeric column
    weights: str = ""
    export: bool = True
    dry_run: bool = False


# --- model and normalisation --------------------------------------------------------------------


def standardise(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[N, W] -> standardised [N, W], mean [N, 1], std [N, 1] (population std floored at EPS)."""
    mean = windows.mean(1, keepdims=True)
    std = np.maximum(windows.std(1, keepdims=True), EPS)
    return (windows - mean) / std, mean, std


class Forecaster(nn.Module):
    """LSTM over the standardised window plus a linear (autoregressive) skip from the window;
    the first quantile is free, the others add softplus gaps so they never cross."""

    def __init__(self, window: int, n_quantiles: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.horizon, self.n_quantiles = HORIZON, n_quantiles
        self.lstm = nn.LSTM(1, hidden, layers, batch_first=True, dropout=dropout * (layers > 1))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, HORIZON * n_quantiles)
        self.skip = nn.Linear(window, HORIZON * n_quantiles)

    def forward(self, series_: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(series_)
        z = self.head(self.dropout(out[:, -1])) + self.skip(series_[..., 0])
        z = z.view(-1, self.horizon, self.n_quantiles)
        gaps = F.softplus(z[..., 1:])
        return torch.cat([z[..., :1], z[..., :1] + torch.cumsum(gaps, -1)], -1)


def pinball_loss(pred: torch.Tensor, target: torch.Tensor, quantiles: torch.Tensor):
    diff = target.unsqueeze(-1) - pred
    return torch.maximum(quantiles * diff, (quantiles - 1.0) * diff).mean()


def windows_of(y: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (input, target) pair of ``window`` then HORIZON consecutive values."""
    if len(y) < window + HORIZON:
        return np.zeros((0, window)), np.zeros((0, HORIZON))
    w = np.lib.stride_tricks.sliding_window_view(y, window + HORIZON)
    return w[:, :window], w[:, window:]


# --- forecasting and evaluation (also used by tests/training on the shipped model) --------------


def forecast(session, history: np.ndarray, window: int, steps: int) -> np.ndarray:
    """Quantile forecasts [steps, Q] in original units; recursive on the median past HORIZON."""
    name = session.get_inputs()[0].name
    context = np.asarray(history, np.float64)
    chunks = []
    while sum(len(c) for c in chunks) < steps:
        z, mean, std = standardise(context[-window:][None])
        out = session.run(None, {name: z[..., None].astype(np.float32)})[0][0]
        chunk = out * std[0, 0] + mean[0, 0]
        chunks.append(chunk)
        context = np.concatenate([context, chunk[:, chunk.shape[1] // 2]])
    return np.concatenate(chunks)[:steps]


def ar_forecast(train: np.ndarray, steps: int) -> tuple[np.ndarray, int]:
    """AR(p) on levels with a constant, p chosen by AIC (statsmodels), as BASELINES.md."""
    from statsmodels.tsa.ar_model import ar_select_order

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # maxlag 36 (a quarter of very short series) reproduces BASELINES.md's AR(p) rows exactly
        maxlag = min(36, len(train) // 4)
        selection = ar_select_order(train, maxlag=maxlag, ic="aic", trend="c")
        fitted = selection.model.fit()
        pred = fitted.predict(start=len(train), end=len(train) + steps - 1)
    return np.asarray(pred), len(selection.ar_lags or [])


def naive_forecast(train: np.ndarray, steps: int, season: int) -> np.ndarray:
    return np.resize(train[-season:], steps)


def evaluate_series(predict, y: np.ndarray, season: int, quantiles, smape: bool = True) -> dict:
    """Rolling-5 (h = 12, expanding window) then last-12 and last-24; ``predict(train, steps)``
    returns [steps] or [steps, Q]. MASE scale: in-sample seasonal naive of each training part."""
    n = len(y)
    rows, covered = [], []
    for k in range(ORIGINS):
        cut = n - HORIZON * (k + 1)
        train, truth = y[:cut], y[cut : cut + HORIZON]
        pred = predict(train, HORIZON)
        median = pred[:, pred.shape[1] // 2] if pred.ndim == 2 else pred
        rows.append(metrics.forecast_errors(truth, median, metrics.mase_scale(train, season)))
        if pred.ndim == 2 and pred.shape[1] >= 2:
            covered.append(np.mean((truth >= pred[:, 0]) & (truth <= pred[:, -1])))
    result = {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}
    for steps in (12, 24):
        train, truth = y[:-steps], y[-steps:]
        pred = predict(train, steps)
        median = pred[:, pred.shape[1] // 2] if pred.ndim == 2 else pred
        errors = metrics.forecast_errors(truth, median, metrics.mase_scale(train, season))
        result[f"last{steps}_mase"] = errors["mase"]
    if covered:
        width = round((quantiles[-1] - quantiles[0]) * 100)
        result[f"coverage_{width}"] = float(np.mean(covered))
    if not smape:
        result.pop("smape")
    return result


def evaluate(session, window: int, quantiles, names=None) -> dict[str, dict[str, float]]:
    loaded = {name: series.LOADERS[name]() for name in names or series.EVALUATED}
    return {
        f"{name}_rolling5": evaluate_series(
            lambda train, steps: forecast(session, train, window, steps),
            y,
            series.EVALUATED[name],
            quantiles,
            smape=not name.startswith("sunspots"),
        )
        for name, y in loaded.items()
    }


def baselines(names=None) -> dict[str, dict[str, dict[str, float]]]:
    out = {}
    for name in names or series.EVALUATED:
        y, season = series.LOADERS[name](), series.EVALUATED[name]
        smape = not name.startswith("sunspots")
        out[name] = {
            "seasonal_naive" if season > 1 else "naive": evaluate_series(
                lambda t, s, season=season: naive_forecast(t, s, season), y, season, (), smape
            ),
            "ar_p": evaluate_series(lambda t, s: ar_forecast(t, s)[0], y, season, (), smape),
        }
    return out


# --- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    cfg = common.parse_config(Config(), __doc__.splitlines()[0], argv)
    if cfg.dry_run:
        cfg = dataclasses.replace(cfg, hidden=8, layers=1, epochs=1, steps_per_epoch=2,
                                  batch_size=16)  # fmt: skip
    common.seed_everything(cfg.seed)
    device = common.pick_device(cfg.device)
    work_dir = Path(cfg.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)

    # data: every series, the evaluated ones cut before their first rolling origin; per series,
    # the final window (target = its last HORIZON values) is the validation set
    all_series = series.load_all(extra=not cfg.dry_run)
    for path in cfg.csv:
        all_series[Path(path).stem] = data.read_series_csv(Path(path))
    train_sets, val_sets = [], []
    for name, y in all_series.items():
        y = y[:-HOLDOUT] if name in series.EVALUATED else y
        x, t = windows_of(y, cfg.window)
        if len(x) < 2:
            continue
        z, mean, std = standardise(x)
        zt = (t - mean) / std
        train_sets.append((z[:-HORIZON], zt[:-HORIZON]))
        val_sets.append((z[-1:], zt[-1:]))
    train_sets = [(torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32))
                  for a, b in train_sets if len(a)]  # fmt: skip
    val_x = torch.tensor(np.concatenate([v[0] for v in val_sets]), dtype=torch.float32)
    val_y = torch.tensor(np.concatenate([v[1] for v in val_sets]), dtype=torch.float32)
    print(f"{len(train_sets)} series, {sum(len(a) for a, _ in train_sets)} training windows, "
          f"{len(val_x)} validation windows")  # fmt: skip

    model = Forecaster(cfg.window, len(cfg.quantiles), cfg.hidden, cfg.layers, cfg.dropout)
    model = model.to(device)
    # Continued from a checkpoint: its epochs come first, its command is kept.
    history, train_command, start_epoch, best_epoch = common.resume(
        model, "forecasting", argv, cfg.weights
    )
    quantiles = torch.tensor(cfg.quantiles, device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    clock = common.TrainClock(cfg.epochs, cfg.time_budget_s)
    stopper = common.EarlyStopping(cfg.patience)
    generator = torch.Generator().manual_seed(cfg.seed)

    def sample_batch() -> tuple[torch.Tensor, torch.Tensor]:
        """Series chosen uniformly (so long series don't drown short ones), then a window."""
        which = torch.randint(len(train_sets), (cfg.batch_size,), generator=generator)
        xs, ys = [], []
        for i in which.tolist():
            x, t = train_sets[i]
            j = int(torch.randint(len(x), (1,), generator=generator))
            xs.append(x[j])
            ys.append(t[j])
        x = torch.stack(xs)
        x = x + cfg.noise * torch.randn(x.shape, generator=generator)
        return x[..., None].to(device), torch.stack(ys).to(device)

    bar = tqdm(range(cfg.epochs), desc="forecasting", disable=cfg.epochs == 0)
    for epoch in bar:
        model.train()
        losses = []
        for step in range(cfg.steps_per_epoch):
            for group in optimizer.param_groups:
                group["lr"] = common.cosine_lr(
                    cfg.lr, clock.progress(epoch + step / cfg.steps_per_epoch)
                )
            x, t = sample_batch()
            loss = pinball_loss(model(x), t, quantiles)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            val_loss = pinball_loss(model(val_x[..., None].to(device)), val_y.to(device),
                                    quantiles).item()  # fmt: skip
        common.end_epoch(history, bar, start_epoch + epoch, losses, val_loss)
        if stopper.update(epoch, val_loss, model) or clock.done(epoch + 1):
            break
    best_epoch = common.keep_best(
        model, stopper, start_epoch, best_epoch, work_dir, cfg, history, train_command
    )
    if not cfg.export:
        return {}
    return export_and_report(cfg, model.cpu(), val_x, history, train_command)


def export_and_report(cfg, model, val_x, history, train_command) -> dict:
    work_dir = Path(cfg.work_dir)
    onnx_path = work_dir / "model.onnx"
    export.export_onnx(model, torch.zeros(1, cfg.window, 1), onnx_path, "series", ["forecast"])
    max_diff = export.parity(onnx_path, model, val_x[:8, :, None].numpy())
    latency = export.latency_ms(onnx_path, (1, cfg.window, 1), runs=10 if cfg.dry_run else 100)
    print(f"ONNX parity max |diff| {max_diff:.2e}; latency {latency:.2f} ms (batch 1, 2 threads)")

    session = export.ort_session(onnx_path)
    names = ["airline"] if cfg.dry_run else None
    results = evaluate(session, cfg.window, cfg.quantiles, names)
    base = baselines(names)
    for split, values in results.items():
        print(split, json.dumps(values))
    print("baselines", json.dumps(base))
    manifest = Manifest(
        task="forecasting",
        name=cfg.name,
        version=cfg.version,
        description=(
            f"Global LSTM forecaster, direct {HORIZON}-step quantile output "
            f"{list(cfg.quantiles)}. Input: the last {cfg.window} values, standardised by that "
            f"window's own mean and population std (ddof 0) floored at {EPS:g}; output in the same "
            "units (multiply by the std, add the mean). Longer horizons: feed the median back."
        ),
        inputs=[TensorSpec(name="series", dtype="float32", shape=[None, cfg.window, 1])],
        outputs=[
            TensorSpec(name="forecast", dtype="float32", shape=[None, HORIZON, len(cfg.quantiles)])
        ],
        forecasting=ForecastingDecoding(
            window=cfg.window,
            horizon=HORIZON,
            quantiles=tuple(cfg.quantiles),
            normalisation="window_standard",
            std_floor=EPS,
        ),
        provenance=common.provenance(
            dataset="real series shipped in statsmodels, sktime and pmdarima: "
            + ", ".join(series.load_all(extra=not cfg.dry_run)),
            split=f"train: everything except the last {HOLDOUT} values of airline, co2_monthly, "
            "sunspots_monthly, sunspots_annual; test: BASELINES.md rolling-5 (h=12) on those four",
            command=train_command,
        ),
        metrics=results,
    )
    version_dir = export.write_model_dir(Path(cfg.out_dir), onnx_path, manifest)
    model_dir = version_dir.parent
    card.plot_curve(history, model_dir / "training_curve.png", "LSTM, pinball loss")
    rows = ["| series | LSTM (this) | AR(p), AIC | naive / seasonal naive | BASELINES.md AR(p) |",
            "|---|---|---|---|---|"]  # fmt: skip
    published = {"airline": "0.65", "co2_monthly": "0.45", "sunspots_monthly": "1.95",
                 "sunspots_annual": "1.46"}  # fmt: skip
    for name, b in base.items():
        ours = results[f"{name}_rolling5"]
        naive = next(v for k, v in b.items() if k != "ar_p")
        rows.append(f"| {name} | {ours['mase']:.3f} (MAE {ours['mae']:.3g}) | "
                    f"{b['ar_p']['mase']:.3f} (MAE {b['ar_p']['mae']:.3g}) | "
                    f"{naive['mase']:.3f} | {published.get(name, '')} |")  # fmt: skip
    comparison = (
        "### Rolling-5 MASE against the baselines (h = 12, same splits, same script)\n\n"
        + "\n".join(rows)
        + "\n\n"
        + export.export_note(max_diff, latency)
    )
    card.write_card(
        model_dir / "README.md",
        manifest,
        summary="One global LSTM that forecasts 12 steps of any univariate series, with quantiles.",
        intended_use=(
            "Demos and teaching of time-series forecasting served by polypserve's /v1/forecast "
            "(monthly, quarterly or annual business and science series). Not for decisions "
            "where forecast error has serious consequences without a domain model beside it."
        ),
        data=(
            "Public series shipped inside PyPI packages: statsmodels (co2, sunspots, nile, "
            "elnino, macrodata), sktime (airline, lynx, shampoo sales), pmdarima (sunspots "
            "monthly, wineind, ausbeer). Evaluation protocol: `../shared/data/series/BASELINES.md`."
        ),
        anchors={f"{k}_rolling5/mase": f"AR(p) {v}" for k, v in published.items()},
        architecture=(
            f"{cfg.layers}-layer LSTM ({cfg.hidden} units, dropout {cfg.dropout}) on the "
            f"standardised {cfg.window}-value window plus a linear skip from the window; direct "
            f"{HORIZON}-step output of {len(cfg.quantiles)} non-crossing quantiles; pinball loss, "
            "AdamW, input jitter augmentation, early stopping on the validation pinball loss "
            "(last window of each training series)."
        ),
        limits=[
            "Trained on a few thousand windows from 16 series; series unlike these (daily, "
            "intermittent, with holidays) are out of distribution.",
            "The evaluated series' last 60 values were held out from training altogether, so "
            "the model never used the most recent data of those series.",
            f"Needs at least {cfg.window} past values; the caller pads shorter inputs.",
        ],
        extra=comparison,
    )
    print(f"wrote {version_dir}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
