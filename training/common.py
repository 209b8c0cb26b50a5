"""Helpers every trainer shares: seeding, devices, paths, flags and provenance (the training
loop itself is ``training.loop``).

Kept free of task knowledge so that each trainer reads top to bottom on its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import random
import shlex
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import numpy as np
import torch

from service.repository.manifest import Provenance

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "data"
MODELS_DIR = REPO_ROOT / "models"


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
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(config, field.name)
        if isinstance(default, bool):
            # argparse reads any flag starting with --no- as False: --no-x could never set no_x
            if field.name.startswith("no_"):
                raise ValueError(f"name the switch for what it turns on, not {field.name}")
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif isinstance(default, tuple):
            kind = type(default[0]) if default else str
            parser.add_argument(flag, type=kind, nargs="+", default=default)
        else:
            kind = str if default is None else type(default)
            hint = hints[field.name]
            choices = typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else None
            parser.add_argument(flag, type=kind, default=default, choices=choices)
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


def provenance(
    dataset: str, split: str, command: str, pretrained: str = "", test_evaluations: int = 0
) -> Provenance:
    """Where a model came from: its data and split, the weights it started from, and the
    command, commit, date and torch version of the run that made it."""
    return Provenance(
        dataset=dataset,
        split=split,
        command=command,
        git_commit=git_commit(),
        date=today(),
        framework=f"torch {torch.__version__}",
        pretrained=pretrained,
        test_evaluations=test_evaluations,
    )
