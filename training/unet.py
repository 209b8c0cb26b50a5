"""The segmentation network and its loss: a small U-Net and BCE + soft Dice."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net whose first block already halves the resolution (speed); logits come back at the
    input size through one bilinear upsampling."""

    def __init__(self, channels: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        c = list(channels)
        self.encoder = nn.ModuleList(
            [conv_block(3, c[0], 2)] + [conv_block(c[i], c[i + 1], 2) for i in range(len(c) - 1)]
        )
        self.dropout = nn.Dropout2d(dropout)
        self.decoder = nn.ModuleList(
            [conv_block(c[i + 1] + c[i], c[i]) for i in reversed(range(len(c) - 1))]
        )
        self.head = nn.Conv2d(c[0], 1, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        skips = []
        x = images
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        x = self.dropout(skips.pop())
        for block in self.decoder:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1))
        logits = self.head(x)
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE plus soft Dice computed per image, the usual pair for polyp masks."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum((1, 2, 3))
    dice = (2 * inter + 1.0) / (prob.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1.0)
    return bce + (1.0 - dice).mean()
