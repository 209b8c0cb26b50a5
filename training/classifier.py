"""The classifier network: the ImageNet-pretrained EfficientNet-Lite whole (its stem, blocks and
1x1 head convolution, all from the checkpoint), global pooling, dropout and a new linear layer."""

from __future__ import annotations

import torch
import torch.nn as nn

from training.encoder import LiteEncoder, build_network


class LiteClassifier(nn.Module):
    def __init__(
        self, variant: str, n_classes: int, dropout: float, pretrained: bool = True
    ) -> None:
        super().__init__()
        network = build_network(variant, pretrained)
        self.encoder = LiteEncoder(network)
        # the checkpoint's own 1x1 head convolution, as ImageNet trained it
        self.head = nn.Sequential(network._conv_head, network._bn1, nn.ReLU6())
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1280, n_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.head(self.encoder(images)[-1])
        return self.fc(self.dropout(x.mean((2, 3))))
