"""Helpers every trainer shares: seeding, devices, paths, provenance, the training loop's clock.

Kept free of task knowledge so that each trainer reads top to bottom on its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import random
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from service.manifest import Provenance

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "data"
MODELS_DIR = REPO_ROOT / "models"
# ImageNet statistics: a sensible, documented normalisation for RGB images in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def parse_config(config: Any, description: str, argv: list[str] | None = None) -> Any:
    """Every field of the ``config`` dataclass becomes a ``--flag`` (nanoGPT's configurator)."""
    parser = argparse.ArgumentParser(description=description)
    for field in dataclasses.fields(config):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(config, field.name)
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif isinstance(default, tuple):
            kind = type(default[0]) if default else str
            parser.add_argument(flag, type=kind, nargs="+", default=default)
        else:
            kind = str if default is None else type(default)
            parser.add_argument(flag, type=kind, default=default)
    args = parser.parse_args(argv)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(config)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return dataclasses.replace(config, **values)


def command_line(task: str, argv: list[str] | None) -> str:
    """The command as typed, e.g. ``python -m training.segmentation --epochs 3``."""
    args = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", "-m", f"training.{task}", *args])


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def today() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")


def provenance(dataset: str, split: str, command: str) -> Provenance:
    """Where a model came from: its data and split, and the command, commit, date and torch
    version of the run that made it."""
    return Provenance(
        dataset=dataset, split=split, command=command, git_commit=git_commit(), date=today(),
        framework=f"torch {torch.__version__}",
    )  # fmt: skip


def cosine_lr(base_lr: float, progress: float, warmup: float = 0.03) -> float:
    """Linear warm-up then cosine decay to 1% of ``base_lr``; ``progress`` runs from 0 to 1."""
    if progress < warmup:
        return base_lr * (0.1 + 0.9 * progress / warmup)
    t = min(1.0, (progress - warmup) / (1.0 - warmup))
    return base_lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * t)))


class TrainClock:
    """Progress through training by epochs or by a wall-clock budget, whichever runs out first."""

    def __init__(self, epochs: int, budget_s: float) -> None:
        self.epochs = epochs
        self.budget_s = budget_s
        self.start = time.monotonic()

    def progress(self, epoch: float) -> float:
        by_epoch = epoch / max(self.epochs, 1)
        by_time = (time.monotonic() - self.start) / self.budget_s if self.budget_s > 0 else 0.0
        return min(1.0, max(by_epoch, by_time))

    def done(self, epoch: int) -> bool:
        return self.progress(epoch) >= 1.0


class EarlyStopping:
    """Keeps the weights of the epoch with the best validation loss; stops after ``patience``."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_loss = math.inf
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, val_loss: float, model: torch.nn.Module) -> bool:
        """Record ``val_loss``; True when training should stop."""
        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch = val_loss, epoch
            self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return epoch - self.best_epoch >= self.patience


def resume(
    model: torch.nn.Module, task: str, argv: list[str] | None, weights: str | None
) -> tuple[list[dict[str, float]], str, int, int]:
    """The history, training command, first epoch and best epoch of a run, continuing from the
    checkpoint ``weights`` when given (its epochs come first, its command is kept)."""
    this_command = command_line(task, argv)
    if not weights:
        return [], this_command, 0, -1
    ckpt = load_checkpoint(Path(weights))
    model.load_state_dict(ckpt["model"])
    history = ckpt.get("history", [])
    train_command = f"{ckpt.get('command', this_command)} ; {this_command}"
    return history, train_command, len(history), ckpt.get("best_epoch", -1)


def end_epoch(
    history: list[dict[str, float]], bar: Any, epoch: int, losses: list[float], val_loss: float
) -> None:
    """Record one epoch's losses in the history, on the progress bar and in the log."""
    record = {"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss}
    history.append(record)
    bar.set_postfix(train=f"{record['train_loss']:.4f}", val=f"{val_loss:.4f}")
    print(json.dumps(record), flush=True)


def keep_best(
    model: torch.nn.Module, stopper: EarlyStopping, start_epoch: int, best_epoch: int,
    work_dir: Path, config: Any, history: list[dict[str, float]], command: str,
) -> int:  # fmt: skip
    """Restore the best epoch's weights (early stopping) and save them as the checkpoint;
    returns the best epoch's number."""
    if stopper.best_state is not None:
        model.load_state_dict(stopper.best_state)
        best_epoch = start_epoch + stopper.best_epoch
    path = work_dir / "ckpt.pt"
    if stopper.best_state is None and path.exists():
        # an export-only run (--epochs 0) leaves the checkpoint, and the commands that trained
        # it, as they were: exporting twice must not record two exports in the provenance
        return best_epoch
    save_checkpoint(path, model, config=dataclasses.asdict(config), history=history,
                    command=command, best_epoch=best_epoch)  # fmt: skip
    print(f"checkpoint {path} (best epoch {best_epoch})")
    return best_epoch


def save_checkpoint(path: Path, model: torch.nn.Module, **extra: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"model": state, **extra}, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)
