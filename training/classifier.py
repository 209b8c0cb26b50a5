"""The classifier networks: a small ResNet (basic residual blocks, BatchNorm, dropout before the
linear head) and the detector's backbone with the same pooled head, for fine-tuning a detection
checkpoint into a classifier (``--backbone-from``)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(y)) + self.skip(x), inplace=True)


class ResNet(nn.Module):
    def __init__(self, widths: tuple[int, ...], n_classes: int, dropout: float) -> None:
        super().__init__()
        w = list(widths)
        self.stem = nn.Sequential(
            nn.Conv2d(3, w[0], 3, 2, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True)
        )
        self.blocks = nn.Sequential(*[BasicBlock(w[i], w[i + 1], 2) for i in range(len(w) - 1)])
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(w[-1], n_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(images))
        return self.fc(self.dropout(x.mean((2, 3))))


class DetectorBackboneClassifier(nn.Module):
    """The stages of ``training.detector.Detector`` with global pooling and a linear head."""

    def __init__(self, widths: tuple[int, ...], n_classes: int, dropout: float) -> None:
        super().__init__()
        from training.detector import Detector  # only this variant needs it

        self.stages = Detector(64, widths, 16, 0.0).stages
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(widths[-1], n_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        for stage in self.stages:
            x = stage(x)
        return self.fc(self.dropout(x.mean((2, 3))))
