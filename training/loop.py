"""The one training loop every trainer runs, and what it keeps: the learning-rate schedule, early
stopping on the validation loss, the best epoch's weights, checkpoints to resume from, the
progress bar and a JSON line per epoch.

A trainer supplies what is its own: a generator of training losses (one per optimiser step, each
computed when the loop asks for it, so a step's batch is drawn after the previous step) and a
validation loss.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from training.common import command_line

History = list[dict[str, float]]


@dataclass(frozen=True)
class Schedule:
    epochs: int
    steps_per_epoch: int
    lr: float
    time_budget_s: float = 0.0  # > 0: the schedule follows wall-clock time instead of epochs
    patience: int = 10  # epochs without a better validation loss before stopping
    clip_grad_norm: float = 0.0  # > 0: clip the gradients' norm to this


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

    def update(self, epoch: int, val_loss: float, model: nn.Module) -> bool:
        """Record ``val_loss``; True when training should stop."""
        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch = val_loss, epoch
            self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return epoch - self.best_epoch >= self.patience


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    train_losses: Callable[[], Iterator[torch.Tensor]],
    val_loss: Callable[[], float],
    *,
    desc: str,
    history: History,
    start_epoch: int = 0,
) -> EarlyStopping:
    """Train until the schedule ends or the validation loss stops improving; ``history`` gains
    an entry per epoch. The best epoch's weights are in the returned stopper (not yet loaded)."""
    clock = TrainClock(schedule.epochs, schedule.time_budget_s)
    stopper = EarlyStopping(schedule.patience)
    bar = tqdm(range(schedule.epochs), desc=desc, disable=schedule.epochs == 0)
    for epoch in bar:
        model.train()
        losses = []
        steps = itertools.islice(train_losses(), schedule.steps_per_epoch)
        for step, loss in enumerate(steps):
            progress = clock.progress(epoch + step / schedule.steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(schedule.lr, progress)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if schedule.clip_grad_norm > 0:
                nn.utils.clip_grad_norm_(model.parameters(), schedule.clip_grad_norm)
            optimizer.step()
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            val = val_loss()
        record = {
            "epoch": start_epoch + epoch,
            "train_loss": float(np.mean(losses)),
            "val_loss": val,
        }
        history.append(record)
        bar.set_postfix(train=f"{record['train_loss']:.4f}", val=f"{val:.4f}")
        print(json.dumps(record), flush=True)
        if stopper.update(epoch, val, model) or clock.done(epoch + 1):
            break
    return stopper


def resume(
    model: nn.Module, task: str, argv: list[str] | None, weights: str | None
) -> tuple[History, str, int, int]:
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


def keep_best(
    model: nn.Module,
    stopper: EarlyStopping,
    start_epoch: int,
    best_epoch: int,
    work_dir: Path,
    config: Any,
    history: History,
    command: str,
) -> int:
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
    save_checkpoint(
        path,
        model,
        config=dataclasses.asdict(config),
        history=history,
        command=command,
        best_epoch=best_epoch,
    )
    print(f"checkpoint {path} (best epoch {best_epoch})")
    return best_epoch


def save_checkpoint(path: Path, model: nn.Module, **extra: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"model": state, **extra}, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)
