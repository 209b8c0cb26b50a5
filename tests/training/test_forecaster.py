"""The forecaster's quantile contract and the ensemble's shrinkage towards the AR(p) forecast."""

from __future__ import annotations

import torch

from training.forecaster import Ensemble, Forecaster, pinball_loss
from training.rolling_origin import HORIZON


def inputs(n: int = 5, window: int = 24) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(n, window, 1, generator=generator)
    return z, torch.randn(n, HORIZON, generator=generator), torch.rand(n, 1, generator=generator)


def test_quantiles_never_cross_even_untrained() -> None:
    torch.manual_seed(0)
    model = Forecaster(24, 3, hidden=8, layers=1, dropout=0.0).eval()
    q = model(*inputs())
    assert q.shape == (5, HORIZON, 3)
    assert (q[..., 1:] >= q[..., :-1]).all()


def test_ensemble_keeps_only_its_share_of_the_medians_correction() -> None:
    torch.manual_seed(0)
    members = [Forecaster(24, 3, hidden=8, layers=1, dropout=0.0) for _ in range(2)]
    z, base, scale = inputs()
    mean = torch.stack([m.eval()(z, base, scale) for m in members]).mean(0)
    out = Ensemble(members, correction=0.25).eval()(z, base, scale)
    assert torch.allclose(out[..., 1] - base, 0.25 * (mean[..., 1] - base), atol=1e-5)
    assert torch.allclose(out[..., 2] - out[..., 0], mean[..., 2] - mean[..., 0], atol=1e-5)


def test_pinball_loss_weighs_misses_by_the_quantile() -> None:
    target = torch.zeros(1, 1)
    quantiles = torch.tensor([0.1, 0.9])
    below = torch.full((1, 1, 2), -1.0)  # the truth is above both forecasts
    assert torch.allclose(pinball_loss(below, target, quantiles), torch.tensor((0.1 + 0.9) / 2))
    assert pinball_loss(torch.zeros(1, 1, 2), target, quantiles) == 0
