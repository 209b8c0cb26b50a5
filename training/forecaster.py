"""The forecasting network: an LSTM that corrects the AR(p) base forecast in units of its residual
scale, with non-crossing quantiles, an ensemble of them, and the pinball loss they train with."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.rolling_origin import HORIZON

# a series its AR(p) fits exactly (flat, a line) has residual scale 0: corrections stay finite
SCALE_FLOOR = 1e-3


class Forecaster(nn.Module):
    """A correction to the AR(p) base forecast: an LSTM over the standardised window, read with
    the base and its scale by the head, plus a linear skip from the window, both in units of the
    base's residual scale; the first quantile is free, the others add softplus gaps so they never
    cross."""

    def __init__(self, window: int, n_quantiles: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.horizon, self.n_quantiles = HORIZON, n_quantiles
        self.lstm = nn.LSTM(1, hidden, layers, batch_first=True, dropout=dropout * (layers > 1))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden + HORIZON + 1, HORIZON * n_quantiles)
        self.skip = nn.Linear(window, HORIZON * n_quantiles)

    def forward(self, z: torch.Tensor, base: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """Standardised windows [N, window, 1], the AR(p) forecast in the same units
        [N, HORIZON] and its residual scale [N, 1] -> quantiles [N, HORIZON, Q], same units."""
        scale = scale.clamp_min(SCALE_FLOOR)
        out, _ = self.lstm(z)
        features = torch.cat([self.dropout(out[:, -1]), base, torch.log(scale)], -1)
        raw = (self.head(features) + self.skip(z[..., 0])).view(-1, self.horizon, self.n_quantiles)
        # in units of the AR(p)'s residual scale: a series its AR(p) explains well (CO2) gets
        # small corrections and narrow intervals, a noisy one (sunspots) large ones
        unit = scale.unsqueeze(-1)
        lowest = base.unsqueeze(-1) + unit * raw[..., :1]
        gaps = unit * F.softplus(raw[..., 1:])
        return torch.cat([lowest, lowest + torch.cumsum(gaps, -1)], -1)


class Ensemble(nn.Module):
    """The members' quantiles averaged: still non-crossing, and steadier than any one member
    (single LSTMs trained on these few thousand windows differ a lot from seed to seed). Then
    all quantiles shift together so that the median keeps only ``correction`` of its distance
    from the AR(p) forecast: the interval keeps its learnt width."""

    def __init__(self, members: list[nn.Module], correction: float):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.correction = correction

    def forward(self, z: torch.Tensor, base: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        q = torch.stack([m(z, base, scale) for m in self.members]).mean(0)
        median = q[..., q.shape[-1] // 2]
        return q - ((1.0 - self.correction) * (median - base)).unsqueeze(-1)


def pinball_loss(pred: torch.Tensor, target: torch.Tensor, quantiles: torch.Tensor):
    diff = target.unsqueeze(-1) - pred
    return torch.maximum(quantiles * diff, (quantiles - 1.0) * diff).mean()
