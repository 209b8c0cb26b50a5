"""A shipped model.onnx back into PyTorch: the graph's function, BatchNorm split out again."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from service.manifest import MANIFEST_FILE, Manifest
from training import export, from_onnx
from training.detector import Detector

WIDTHS = (8, 8, 16, 16, 16)


def trained_like(seed: int) -> Detector:
    """A small detector whose BatchNorm layers hold statistics and affine terms far from their
    initial values, as a trained model's do."""
    torch.manual_seed(seed)
    model = Detector(64, WIDTHS, 16, dropout=0.0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0.0, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
            torch.nn.init.normal_(module.bias, 0.0, 0.3)
    return model.eval()


def test_load_reproduces_the_graph_and_splits_batchnorm_again(tmp_path: Path) -> None:
    original = trained_like(0)
    onnx_path = tmp_path / "model.onnx"
    export.export_onnx(original, {"images": torch.zeros(1, 3, 64, 64)}, onnx_path, ["b", "s"])
    images = torch.randn(48, 3, 64, 64)

    fresh = trained_like(1)
    assert fresh(images)[0].sub(original(images)[0]).abs().max() > 1.0  # really different
    assert from_onnx.load(fresh, onnx_path, images) < 1e-3
    with torch.no_grad():
        for got, want in zip(fresh.eval()(images), original(images), strict=True):
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
        # training mode normalises by the batch's statistics; on the images the statistics were
        # estimated from, as one batch, it computes the same function
        for got, want in zip(fresh.train()(images), original(images), strict=True):
            torch.testing.assert_close(got, want, atol=1e-3, rtol=1e-3)


def test_load_refuses_a_graph_of_another_configuration(tmp_path: Path) -> None:
    onnx_path = tmp_path / "model.onnx"
    export.export_onnx(trained_like(0), {"images": torch.zeros(1, 3, 64, 64)}, onnx_path, ["b"])
    other = Detector(64, WIDTHS, 8, dropout=0.0)  # a narrower neck
    with pytest.raises(ValueError, match="convolutions"):
        from_onnx.load(other, onnx_path, torch.randn(4, 3, 64, 64))


def test_detector_trains_on_from_a_shipped_onnx(data_root: Path, tmp_path: Path) -> None:
    from training import detection

    base = ["--dry-run", "--data-root", str(data_root), "--device", "cpu", "--no-evaluate-test"]
    detection.main([*base, "--out-dir", str(tmp_path / "a"), "--work-dir", str(tmp_path / "w1")])
    shipped = tmp_path / "a" / "polyp-detector" / "1" / "model.onnx"
    detection.main([*base, "--weights", str(shipped), "--out-dir", str(tmp_path / "b"),
                    "--work-dir", str(tmp_path / "w2")])  # fmt: skip
    manifest = Manifest.read(tmp_path / "b" / "polyp-detector" / "1" / MANIFEST_FILE)
    assert manifest.provenance is not None
    # the shipped model's own command comes first, then the run that continued from it
    first, second = manifest.provenance.command.split(" ; ")
    assert "--weights" not in first and f"--weights {shipped}" in second
