"""Every trainer's --dry-run end to end on synthetic data: train a few steps, export, verify, and
write a model directory whose manifest validates and matches its ONNX graph."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from service.manifest import MANIFEST_FILE, MODEL_FILE, Manifest
from tests.training.conftest import make_imagefolder, make_yolo

CASES = [
    ("classification", "polyp-classifier"),
    ("detection", "polyp-detector"),
    ("segmentation", "polyp-segmenter"),
    ("forecasting", "series-forecaster"),
]


def check_model_dir(version_dir: Path) -> Manifest:
    """The manifest validates, the graph passes the checker, and ONNX Runtime's outputs have the
    manifest's names and shapes (batch 2)."""
    manifest = Manifest.read(version_dir / MANIFEST_FILE)
    onnx.checker.check_model(onnx.load(str(version_dir / MODEL_FILE)))
    session = ort.InferenceSession(
        str(version_dir / MODEL_FILE), providers=["CPUExecutionProvider"]
    )
    assert [i.name for i in session.get_inputs()] == [s.name for s in manifest.inputs]
    assert [o.name for o in session.get_outputs()] == manifest.output_names()
    rng = np.random.default_rng(0)
    feeds = {
        spec.name: rng.standard_normal([2, *spec.shape[1:]]).astype(np.float32)
        for spec in manifest.inputs
    }
    outputs = session.run(None, feeds)
    for out, out_spec in zip(outputs, manifest.outputs, strict=True):
        assert out.dtype == np.float32
        assert list(out.shape) == [2, *out_spec.shape[1:]]
        assert np.isfinite(out).all()
    return manifest


@pytest.mark.parametrize(("task", "name"), CASES)
def test_dry_run(task: str, name: str, data_root: Path, tmp_path: Path) -> None:
    module = importlib.import_module(f"training.{task}")
    out_dir, work_dir = tmp_path / "models", tmp_path / "work"
    argv = ["--dry-run", "--out-dir", str(out_dir), "--work-dir", str(work_dir)]
    if task != "forecasting":
        argv += ["--data-root", str(data_root), "--device", "cpu"]
    results = module.main(argv)
    manifest = check_model_dir(out_dir / name / "1")
    assert manifest.task == task and manifest.name == name and manifest.version == 1
    assert manifest.metrics == results and results
    assert manifest.provenance is not None and "--dry-run" in manifest.provenance.command
    assert (out_dir / name / "README.md").read_text().startswith(f"# {name}")
    assert (out_dir / name / "training_curve.png").stat().st_size > 1000
    assert (work_dir / "ckpt.pt").exists()
    if task == "detection":
        assert manifest.defaults.score_threshold == 0.4
        assert manifest.defaults.iou_threshold == 0.45
        assert set(results) == {"val", "val_mosaic", "val_hard", "kvasir_test_100",
                                "clinicdb_test_62"}  # fmt: skip
        # every synthetic polyp is under 96x96 px, so all validation frames are "hard" ones
        assert results["val_hard"] == results["val"]
    if task == "forecasting":
        assert manifest.forecasting is not None
        assert manifest.forecasting.normalisation == "window_standard"
        assert manifest.forecasting.std_floor == forecasting_module_eps()
        assert manifest.forecasting.quantiles == (0.1, 0.5, 0.9)
        assert manifest.forecasting.base == "ar_aic"


def test_export_only_from_checkpoint(data_root: Path, tmp_path: Path) -> None:
    """``--weights ckpt.pt --epochs 0`` exports a trained checkpoint as is (the GPU workflow)."""
    from training import segmentation

    base = ["--dry-run", "--data-root", str(data_root), "--device", "cpu"]
    first = segmentation.main([*base, "--out-dir", str(tmp_path / "a"), "--work-dir",
                               str(tmp_path / "w1")])  # fmt: skip
    again = segmentation.main([*base, "--epochs", "0", "--weights", str(tmp_path / "w1/ckpt.pt"),
                               "--out-dir", str(tmp_path / "b"), "--work-dir",
                               str(tmp_path / "w2")])  # fmt: skip
    assert first == again
    # exporting twice in place records the training and one export, not an export per run
    work_dir = tmp_path / "w1"
    export_in_place = [*base, "--epochs", "0", "--weights", str(work_dir / "ckpt.pt"),
                       "--work-dir", str(work_dir), "--out-dir", str(tmp_path / "c")]  # fmt: skip
    segmentation.main(export_in_place)
    segmentation.main(export_in_place)
    manifest = check_model_dir(tmp_path / "c" / "polyp-segmenter" / "1")
    assert manifest.provenance is not None
    commands = manifest.provenance.command.split(" ; ")
    assert len(commands) == 2 and "--epochs 0" not in commands[0] and "--epochs 0" in commands[1]


def forecasting_module_eps() -> float:
    from training.forecasting import EPS

    return EPS


def test_detection_trains_on_a_yolo_folder(tmp_path: Path) -> None:
    from training import detection

    make_yolo(tmp_path / "yolo")
    out_dir = tmp_path / "models"
    results = detection.main(["--dry-run", "--device", "cpu", "--yolo-root", str(tmp_path / "yolo"),
                              "--name", "yolo-detector", "--out-dir", str(out_dir),
                              "--work-dir", str(tmp_path / "work"), "--mosaic", "1"])  # fmt: skip
    manifest = check_model_dir(out_dir / "yolo-detector" / "1")
    # no Kvasir or ClinicDB test split for a foreign folder; its validation frames as mosaics
    assert set(results) == {"val", "val_mosaic", "val_hard"}
    assert manifest.provenance is not None
    assert manifest.provenance.dataset.startswith("YOLO folder")


def test_detection_dry_run_with_every_training_option(data_root: Path, tmp_path: Path) -> None:
    from training import detection

    out_dir = tmp_path / "models"
    detection.main(["--dry-run", "--device", "cpu", "--data-root", str(data_root),
                    "--out-dir", str(out_dir), "--work-dir", str(tmp_path / "work"),
                    "--copy-paste", "1", "--oversample", "3", "--val-fraction-hard", "0.5",
                    "--normalise-quality", "--mask-loss", "0.5", "--no-evaluate-test"])  # fmt: skip
    manifest = check_model_dir(out_dir / "polyp-detector" / "1")
    assert manifest.provenance is not None
    assert "and 50% of the rest's frames with small or several polyps" in manifest.provenance.split
    card = (out_dir / "polyp-detector" / "README.md").read_text()
    assert "another frame's polyps (copy-paste)" in card
    assert "or one under 96x96 px drawn 3x" in card
    assert "quality focal loss (target IoU over the object's best IoU) + GIoU" in card
    assert (
        "auxiliary polyp-mask loss at stride 8 (weight 0.5; the head is dropped at export)" in card
    )
    # a YOLO folder has boxes but no masks, to cut polyps out with or to learn from
    make_yolo(tmp_path / "yolo")
    for option in ("--copy-paste", "--mask-loss"):
        with pytest.raises(SystemExit, match="masks"):
            detection.main(["--dry-run", "--yolo-root", str(tmp_path / "yolo"), option, "1",
                            "--out-dir", str(out_dir),
                            "--work-dir", str(tmp_path / "w2")])  # fmt: skip


def test_classification_trains_on_an_imagefolder(tmp_path: Path) -> None:
    from training import classification

    make_imagefolder(tmp_path / "folder", per_class=6)  # a dry run keeps 12 images
    out_dir = tmp_path / "models"
    results = classification.main(["--dry-run", "--device", "cpu", "--imagefolder-root",
                                   str(tmp_path / "folder"), "--name", "folder-classifier",
                                   "--val-fraction", "0.5", "--out-dir", str(out_dir),
                                   "--work-dir", str(tmp_path / "work")])  # fmt: skip
    manifest = check_model_dir(out_dir / "folder-classifier" / "1")
    assert manifest.labels == ["lesion", "mucosa"]
    assert set(results) == {"val"} and 0.0 <= results["val"]["roc_auc"] <= 1.0


def test_classifier_starts_from_a_detector_backbone(data_root: Path, tmp_path: Path) -> None:
    import torch

    from training import classification, detection

    base = ["--dry-run", "--device", "cpu", "--data-root", str(data_root)]
    detection.main([*base, "--no-export", "--work-dir", str(tmp_path / "det")])
    ckpt = torch.load(tmp_path / "det" / "ckpt.pt", weights_only=False)
    cfg = classification.Config(backbone_from=str(tmp_path / "det" / "ckpt.pt"))
    model = classification.build_model(cfg, 2)
    for key, value in model.stages.state_dict().items():
        torch.testing.assert_close(value, ckpt["model"][f"stages.{key}"])
    classification.main([*base, "--backbone-from", str(tmp_path / "det" / "ckpt.pt"),
                         "--out-dir", str(tmp_path / "models"),
                         "--work-dir", str(tmp_path / "cls")])  # fmt: skip
    check_model_dir(tmp_path / "models" / "polyp-classifier" / "1")


def test_forecasting_validate_scores_a_recipe_and_ships_nothing(tmp_path: Path) -> None:
    from training import forecasting

    out_dir = tmp_path / "models"
    scores = forecasting.main(["--dry-run", "--validate", "--out-dir", str(out_dir),
                               "--work-dir", str(tmp_path / "work")])  # fmt: skip
    assert set(scores["series"]) == {"airline"}  # a dry run scores airline only
    row = scores["series"]["airline"]
    assert row["ratio"] == pytest.approx(row["mase"] / row["ar_p_mase"]) and row["mase"] > 0
    assert not out_dir.exists() and not (tmp_path / "work" / "ckpt.pt").exists()
