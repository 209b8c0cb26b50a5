from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from service.config import Settings
from service.errors import ModelNotFoundError, NotReadyError, WrongTaskError
from service.repository.registry import Registry, discover
from tests.model_factory import build_classifier, build_detector, build_forecaster


def _registry(root: Path, **settings: object) -> Registry:
    registry = Registry(Settings(models_dir=root, intra_op_threads=1, **settings))  # type: ignore[arg-type]
    registry.load_all()
    return registry


def test_highest_ready_version_serves_by_default(tmp_path: Path) -> None:
    build_classifier(tmp_path, version=1)
    build_classifier(tmp_path, version=2)
    (tmp_path / "tiny-classifier" / "notes").mkdir()  # not a version folder: ignored
    assert set(discover(tmp_path)["tiny-classifier"]) == {1, 2}
    registry = _registry(tmp_path)
    assert registry.get("tiny-classifier").version == 2
    assert registry.get("tiny-classifier", 1).version == 1
    with pytest.raises(ModelNotFoundError, match="no version 3"):
        registry.get("tiny-classifier", 3)


def test_a_broken_model_is_reported_and_the_others_serve(tmp_path: Path) -> None:
    build_forecaster(tmp_path)
    broken = build_detector(tmp_path, name="broken-detector")
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["outputs"][0]["name"] = "bboxes"
    (broken / "manifest.json").write_text(json.dumps(manifest))
    registry = _registry(tmp_path)
    model = registry.models["broken-detector"][1]
    assert model.state == "failed"
    assert "does not match the graph" in (model.reason or "")
    assert registry.get("tiny-forecaster").ready
    assert registry.readiness() is None
    with pytest.raises(NotReadyError):
        registry.get("broken-detector")
    strict = _registry(tmp_path, strict_readiness=True)
    assert "broken-detector/1" in (strict.readiness() or "")


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda folder: (folder / "model.onnx").write_bytes(b"\x08\x01garbage"), "cannot load"),
        (lambda folder: (folder / "model.onnx").unlink(), "model.onnx is missing"),
        (lambda folder: (folder / "manifest.json").write_text("{"), "invalid manifest"),
        (lambda folder: (folder / "manifest.json").unlink(), "manifest.json is missing"),
    ],
)
def test_damaged_files_give_reasons(tmp_path: Path, damage: object, needle: str) -> None:
    folder = build_classifier(tmp_path)
    damage(folder)  # type: ignore[operator]
    model = _registry(tmp_path).models["tiny-classifier"][1]
    assert model.state == "failed" and needle in (model.reason or "")


def test_folder_and_manifest_must_agree(tmp_path: Path) -> None:
    folder = build_classifier(tmp_path)
    shutil.move(folder, tmp_path / "tiny-classifier" / "7")
    model = _registry(tmp_path).models["tiny-classifier"][7]
    assert "folder is tiny-classifier/7" in (model.reason or "")


def test_require_gpu_refuses_readiness_without_cuda(tmp_path: Path) -> None:
    build_classifier(tmp_path)
    registry = _registry(tmp_path, require_gpu=True)
    model = registry.models["tiny-classifier"][1]
    assert model.state == "failed" and "CUDA is unavailable" in (model.reason or "")
    assert "require_gpu" in (registry.readiness() or "")


def test_task_defaults_and_wrong_task(tmp_path: Path) -> None:
    build_classifier(tmp_path)
    build_classifier(tmp_path, name="other-classifier")
    build_detector(tmp_path)
    registry = _registry(tmp_path)
    assert registry.for_task("detection", None, None).name == "tiny-detector"
    with pytest.raises(ModelNotFoundError, match="several classification models"):
        registry.for_task("classification", None, None)
    with pytest.raises(WrongTaskError):
        registry.for_task("classification", "tiny-detector", None)
    with pytest.raises(ModelNotFoundError, match="no segmentation model"):
        registry.for_task("segmentation", None, None)
    chosen = _registry(tmp_path, default_models={"classification": "other-classifier"})
    assert chosen.for_task("classification", None, None).name == "other-classifier"


def test_empty_repository_is_not_ready(tmp_path: Path) -> None:
    assert _registry(tmp_path).readiness() == "no model is ready"
    assert Registry(Settings(models_dir=tmp_path)).readiness() == "models are still loading"


def test_batching_knobs_come_from_settings_manifest_and_config_json(tmp_path: Path) -> None:
    build_classifier(tmp_path)
    build_forecaster(tmp_path)
    (tmp_path / "tiny-classifier" / "config.json").write_text(
        json.dumps({"max_batch_size": 3, "max_queue_delay_ms": 2.5, "latency_budget_ms": 0})
    )
    registry = _registry(tmp_path, max_queue_size=7, latency_budget_ms=60, decode_threads=3)
    classifier = registry.get("tiny-classifier").batcher
    forecaster = registry.get("tiny-forecaster").batcher
    assert classifier is not None and forecaster is not None
    assert (classifier.config.max_batch_size, classifier.config.max_queue_delay_ms) == (3, 2.5)
    assert classifier.config.max_queue_size == forecaster.config.max_queue_size == 7
    assert forecaster.config.max_batch_size == 8  # the manifest's default
    # the budget: the setting, turned off by the classifier's config.json
    assert (classifier.config.latency_budget_ms, forecaster.config.latency_budget_ms) == (0, 60)
    assert forecaster.config.pipeline_width == 3 + 1  # decoding threads + inference instances


def test_invalid_config_json_fails_only_that_model(tmp_path: Path) -> None:
    build_classifier(tmp_path)
    build_forecaster(tmp_path)
    (tmp_path / "tiny-classifier" / "config.json").write_text('{"max_batch_size": -1}')
    registry = _registry(tmp_path)
    assert "invalid config.json" in (registry.models["tiny-classifier"][1].reason or "")
    assert registry.get("tiny-forecaster").ready
