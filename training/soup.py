"""Average the weights of runs that continued the same parent: a uniform "model soup".

    python -m training.soup runs/a/ckpt.pt runs/b/ckpt.pt --out runs/soup/ckpt.pt
    python -m training.detection --weights runs/soup/ckpt.pt --epochs 0 ...   # score, export

Runs fine-tuned from one parent stay in one basin of the loss, so the mean of their weights is
a model of its own, often better than each (Wortsman et al., "Model soups", ICML 2022); runs
trained from different initialisations do not average. The mean of BatchNorm running statistics
is not exactly the statistics of the mean network; the detector's ``--reestimate-bn`` measures
them again (``reestimate_batchnorm`` below), though on the soups tried so far the averaged ones
scored better on validation.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from training import common


def average_state_dicts(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of floating tensors; integer ones (BatchNorm's batch counters) are
    the first state's. All states must hold the same names and shapes."""
    if not states:
        raise ValueError("no checkpoints to average")
    first = states[0]
    for state in states[1:]:
        if state.keys() != first.keys():
            raise ValueError("the checkpoints hold different tensors: not the same architecture")
        for name, tensor in state.items():
            if tensor.shape != first[name].shape:
                shapes = f"{tuple(tensor.shape)} against {tuple(first[name].shape)}"
                raise ValueError(f"{name}: shape {shapes}: not the same configuration")
    return {
        name: (
            torch.stack([s[name].double() for s in states]).mean(0).to(tensor.dtype)
            if tensor.is_floating_point()
            else tensor.clone()
        )
        for name, tensor in first.items()
    }


def reestimate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Replace every BatchNorm's running statistics by their average over ``batches`` (network
    inputs, augmented as in training: the weights were trained against such statistics) with the
    model in training mode; the model is left in eval mode."""
    with torch.no_grad():
        update_bn(batches, model)
    model.eval()


def soup(paths: Sequence[Path], out: Path) -> None:
    """Write the uniform average of the checkpoints at ``paths`` as a checkpoint at ``out``; its
    command records every ingredient's, so the provenance says how each was trained."""
    checkpoints = [common.load_checkpoint(p) for p in paths]
    state = average_state_dicts([c["model"] for c in checkpoints])
    commands = " + ".join(f"[{ckpt.get('command', path)}]"
                          for ckpt, path in zip(checkpoints, paths, strict=True))  # fmt: skip
    this = shlex.join(["python", "-m", "training.soup", *map(str, paths), "--out", str(out)])
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state, "config": checkpoints[0].get("config"), "history": [],
                "command": f"uniform weight average of {commands} ; {this}",
                "best_epoch": -1}, out)  # fmt: skip
    print(f"averaged {len(paths)} checkpoints into {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", type=Path, nargs="+", help="ckpt.pt of each ingredient")
    parser.add_argument("--out", type=Path, required=True, help="where to write the average")
    args = parser.parse_args(argv)
    soup(args.checkpoints, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
