from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.repository.manifest import (
    DetectionDecoding,
    ForecastingDecoding,
    Manifest,
    Preprocessing,
    TensorSpec,
)

IMAGE_IN = [TensorSpec(name="images", dtype="float32", shape=[None, 3, 64, 64])]
BOXES_OUT = [
    TensorSpec(name="boxes", dtype="float32", shape=[None, 10, 4]),
    TensorSpec(name="scores", dtype="float32", shape=[None, 10, 1]),
]


def _detector(**changes: object) -> Manifest:
    fields: dict[str, object] = {
        "task": "detection",
        "name": "det",
        "version": 1,
        "inputs": IMAGE_IN,
        "outputs": BOXES_OUT,
        "labels": ["polyp"],
        "preprocessing": Preprocessing(size=(64, 64)),
        "detection": DetectionDecoding(),
    }
    return Manifest.model_validate({**fields, **changes})


def test_round_trip_through_json(tmp_path: Path) -> None:
    manifest = _detector(metrics={"kvasir-test-100": {"ap50": 0.8}})
    manifest.write(tmp_path / "manifest.json")
    assert Manifest.read(tmp_path / "manifest.json") == manifest
    assert manifest.defaults.score_threshold == 0.4 and manifest.defaults.iou_threshold == 0.45


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"detection": None}, "needs a 'detection'"),
        ({"segmentation": {"activation": "sigmoid"}}, "must not have a 'segmentation'"),
        ({"preprocessing": None}, "needs a 'preprocessing'"),
        ({"labels": []}, "at least one label"),
        ({"name": "../etc"}, "pattern"),
        ({"version": 0}, "greater than or equal"),
        ({"surprise": 1}, "Extra inputs"),
    ],
)
def test_invalid_manifests_say_why(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        _detector(**changes)


def test_forecasting_quantiles_must_increase() -> None:
    with pytest.raises(ValidationError, match="strictly increasing"):
        ForecastingDecoding(window=4, horizon=2, quantiles=(0.9, 0.1))
    assert ForecastingDecoding(window=4, horizon=2, quantiles=(0.1, 0.5, 0.9)).std_floor > 0


def test_forecasting_base_powers_are_box_cox_powers_levels_by_default() -> None:
    assert ForecastingDecoding(window=4, horizon=2, base="ar_aic").base_powers == []
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        ForecastingDecoding(window=4, horizon=2, base="ar_aic", base_powers=[0.5, -1.0])
