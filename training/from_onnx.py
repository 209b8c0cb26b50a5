"""Continue training from a shipped model: its ONNX graph's weights back into the PyTorch module.

Checkpoints live in ``runs/`` and are not shipped, so a shipped model may outlive its checkpoint.
The exporter folds every BatchNorm into the convolution before it (weight W, bias b), which is
exactly the function to keep, but training needs the BatchNorm back: in training mode it divides
by the batch's own statistics. So each folded pair is split again with the statistics of the
convolution's output re-estimated on real inputs (per channel, mean mu and std sigma of W x):

    running_mean = mu, running_var = sigma^2 - eps, gamma = sigma, beta = b + mu

which gives W x + b in evaluation (the shipped function, checked) and, in training, about the
same as long as a batch's statistics are near the estimate.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import onnx
import torch
from onnx import numpy_helper
from torch import nn

from service.manifest import MANIFEST_FILE, Manifest
from training import common, export


def _convolutions_in_run_order(model: nn.Module, example: torch.Tensor) -> list[nn.Conv2d]:
    order: list[nn.Conv2d] = []
    hooks = [
        m.register_forward_hook(lambda m, *_: order.append(m))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    with torch.no_grad():
        model.eval()(example[:1])
    for hook in hooks:
        hook.remove()
    return order


def _batchnorm_after(model: nn.Module) -> dict[nn.Conv2d, nn.BatchNorm2d]:
    pairs = {}
    for block in model.modules():
        layers = list(block.children())
        for first, second in itertools.pairwise(layers):
            if isinstance(first, nn.Conv2d) and isinstance(second, nn.BatchNorm2d):
                pairs[first] = second
    return pairs


def load(model: nn.Module, onnx_path: Path, images: torch.Tensor) -> float:
    """Set ``model``'s weights from the graph at ``onnx_path`` (exported from the same class and
    configuration), re-estimating BatchNorm statistics on ``images`` (network inputs, a few
    hundred); returns the largest |ONNX Runtime - PyTorch| on them, after checking it is small."""
    graph = onnx.load(str(onnx_path)).graph
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:  # the exporter shares equal tensors through Identity nodes
        if node.op_type == "Identity" and node.input[0] in tensors:
            tensors[node.output[0]] = tensors[node.input[0]]
    folded = [
        [tensors[name] for name in node.input[1:]] for node in graph.node if node.op_type == "Conv"
    ]
    convolutions = _convolutions_in_run_order(model, images)
    shapes = [tuple(weights[0].shape) for weights in folded]
    if shapes != [tuple(conv.weight.shape) for conv in convolutions]:
        raise ValueError(f"{onnx_path}'s convolutions are not this model's: exported from "
                         "another configuration")  # fmt: skip
    norms = _batchnorm_after(model)
    # per channel: count, sum and sum of squares of each convolution's output, in float64, so
    # that calibrating batch by batch never holds every batch's activations at once
    moments = {conv: torch.zeros(3, conv.out_channels, dtype=torch.float64) for conv in norms}

    def accumulate(conv: nn.Module, _: object, out: torch.Tensor) -> None:
        x = out.double().transpose(0, 1).flatten(1)  # [channels, N * H * W]
        moments[conv] += torch.stack(
            [torch.full_like(x[:, 0], x.shape[1]), x.sum(1), x.square().sum(1)]
        )

    hooks = [conv.register_forward_hook(accumulate) for conv in norms]
    with torch.no_grad():
        for conv, (weight, *bias) in zip(convolutions, folded, strict=True):
            conv.weight.copy_(torch.tensor(weight))
            if conv in norms:  # identity BatchNorm carrying the bias, until re-estimated below
                bn = norms[conv]
                bn.running_mean.zero_(), bn.running_var.fill_(1.0 - bn.eps)
                bn.weight.fill_(1.0), bn.bias.copy_(torch.tensor(bias[0]))
            elif conv.bias is not None:
                conv.bias.copy_(torch.tensor(bias[0]))
        model.eval()
        for start in range(0, len(images), 32):
            model(images[start : start + 32])
        for hook in hooks:
            hook.remove()
        for conv, bn in norms.items():
            n, total, squares = moments[conv]
            mean = total / n
            var = ((squares - n * mean.square()) / (n - 1)).clamp(min=2 * bn.eps)  # unbiased
            mean, var = mean.float(), var.float()
            bn.running_mean.copy_(mean), bn.running_var.copy_(var - bn.eps)
            bn.bias.add_(mean), bn.weight.copy_(var.sqrt())
    feeds = {graph.input[0].name: images[:8].numpy()}
    max_diff = export.parity(onnx_path, model, feeds)
    if max_diff > 1e-3:
        raise ValueError(f"weights from {onnx_path} do not reproduce it: max |diff| {max_diff:.2e}")
    return max_diff


def resume(
    model: nn.Module, task: str, argv: list[str] | None, onnx_path: Path, images: torch.Tensor
) -> tuple[list[dict[str, float]], str, int, int]:
    """As ``common.resume`` for a shipped model: the commands that trained it (its manifest's
    provenance) come first; its training history is not shipped, so the epochs start again."""
    max_diff = load(model, onnx_path, images)
    print(f"weights from {onnx_path} (ONNX Runtime vs PyTorch max |diff| {max_diff:.2e})")
    provenance = Manifest.read(onnx_path.parent / MANIFEST_FILE).provenance
    shipped = provenance.command if provenance is not None else str(onnx_path)
    return [], f"{shipped} ; {common.command_line(task, argv)}", 0, -1
