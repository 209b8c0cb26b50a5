"""The segmentation network and its loss: a U-Net decoder on the ImageNet-pretrained
EfficientNet-Lite pyramid, and BCE + soft Dice."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.encoder import LiteEncoder, build_network


def conv_block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class LiteUNet(nn.Module):
    """U-Net decoder over the EfficientNet-Lite pyramid (strides 32 -> 16 -> 8 -> 4): each step
    upsamples, concatenates the encoder's level and mixes them with a conv block; the stride-4
    logits are upsampled to the input size in the graph (one logit per input pixel)."""

    def __init__(
        self, variant: str, decoder: tuple[int, int, int], dropout: float, pretrained: bool = True
    ) -> None:
        super().__init__()
        self.encoder = LiteEncoder(build_network(variant, pretrained))
        c4, c8, c16, c32 = self.encoder.channels
        d16, d8, d4 = decoder
        self.dropout = nn.Dropout2d(dropout)
        self.decoder = nn.ModuleList(
            [conv_block(c32 + c16, d16), conv_block(d16 + c8, d8), conv_block(d8 + c4, d4)]
        )
        self.head = nn.Conv2d(d4, 1, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        *skips, x = self.encoder(images)
        x = self.dropout(x)
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
