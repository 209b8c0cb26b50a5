"""Weight averaging of runs from one parent, BatchNorm re-estimated, through the detector's CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from service.manifest import MANIFEST_FILE, Manifest
from training import common, soup


def test_average_state_dicts_means_floats_and_keeps_counters() -> None:
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(7)}
    mean = soup.average_state_dicts([a, b])
    assert torch.equal(mean["w"], torch.tensor([2.0, 4.0]))
    assert mean["w"].dtype == torch.float32
    assert mean["n"].item() == 3  # an integer counter is not averaged
    assert a["w"].tolist() == [1.0, 2.0]  # the inputs are left alone


def test_average_state_dicts_refuses_other_architectures() -> None:
    a = {"w": torch.zeros(2)}
    with pytest.raises(ValueError, match="different tensors"):
        soup.average_state_dicts([a, {"v": torch.zeros(2)}])
    with pytest.raises(ValueError, match="not the same configuration"):
        soup.average_state_dicts([a, {"w": torch.zeros(3)}])
    with pytest.raises(ValueError, match="no checkpoints"):
        soup.average_state_dicts([])


def test_reestimate_batchnorm_sets_the_statistics_of_the_data() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    model[1].running_mean.fill_(5.0), model[1].running_var.fill_(9.0)  # an average's leftovers
    images = torch.randn(40, 3, 8, 8) * 2.0 + 1.0
    soup.reestimate_batchnorm(model, images.split(8))
    with torch.no_grad():
        conv_out = model[0](images).transpose(0, 1).flatten(1)
    assert not model.training
    torch.testing.assert_close(model[1].running_mean, conv_out.mean(1), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(model[1].running_var, conv_out.var(1), rtol=1e-2, atol=1e-3)


def test_soup_of_two_detector_runs_exports_with_its_provenance(
    data_root: Path, tmp_path: Path
) -> None:
    from training import detection

    base = ["--dry-run", "--device", "cpu", "--data-root", str(data_root), "--no-export"]
    for seed in ("1", "2"):
        detection.main([*base, "--seed", seed, "--work-dir", str(tmp_path / seed)])
    ingredients = [tmp_path / seed / "ckpt.pt" for seed in ("1", "2")]
    soup.main([*map(str, ingredients), "--out", str(tmp_path / "soup" / "ckpt.pt")])

    states = [common.load_checkpoint(p)["model"] for p in ingredients]
    averaged = common.load_checkpoint(tmp_path / "soup" / "ckpt.pt")
    name = "stages.0.0.weight"
    assert not torch.equal(states[0][name], states[1][name])
    torch.testing.assert_close(averaged["model"][name], (states[0][name] + states[1][name]) / 2)

    out_dir = tmp_path / "models"
    detection.main(["--dry-run", "--device", "cpu", "--data-root", str(data_root),
                    "--weights", str(tmp_path / "soup" / "ckpt.pt"), "--reestimate-bn",
                    "--epochs", "0", "--no-evaluate-test", "--out-dir", str(out_dir),
                    "--work-dir", str(tmp_path / "soup")])  # fmt: skip
    manifest = Manifest.read(out_dir / "polyp-detector" / "1" / MANIFEST_FILE)
    assert manifest.provenance is not None
    command = manifest.provenance.command
    assert command.startswith("uniform weight average of [python -m training.detection")
    assert command.count("--seed") == 2 and "--reestimate-bn" in command
