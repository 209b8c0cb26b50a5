"""The classifier network: the ImageNet-pretrained EfficientNet-Lite whole (its stem, blocks and
1x1 head convolution, all from the checkpoint), global pooling, dropout and a new linear layer."""

from __future__ import annotations

import torch
import torch.nn as nn

from training.encoder import LiteEncoder, pretrained_network


class LiteClassifier(nn.Module):
    def __init__(
        self, variant: str, n_classes: int, dropout: float, pretrained: bool = True
    ) -> None:
        super().__init__()
        self.encoder = LiteEncoder(variant, pretrained)
        network = pretrained_network(variant) if pretrained else None
        c_in = self.encoder.channels[-1]
        head = nn.Conv2d(c_in, 1280, 1, bias=False)
        norm = nn.BatchNorm2d(1280, momentum=0.01, eps=1e-3)
        if network is not None:  # the checkpoint's own head, as ImageNet trained it
            head, norm = network._conv_head, network._bn1
            norm.momentum = 0.1  # as the encoder's: statistics that follow fine-tuning
        self.head = nn.Sequential(head, norm, nn.ReLU6())
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1280, n_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.head(self.encoder(images)[-1])
        return self.fc(self.dropout(x.mean((2, 3))))
