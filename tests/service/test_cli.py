from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.cli import main
from service.repository.runtime import cuda_unavailable_reason
from tests.model_factory import build_classifier, build_repository


def test_models_lists_a_valid_repository(
    tiny_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "--models-dir", str(tiny_repo)]) == 0
    out = capsys.readouterr().out
    assert "tiny-detector" in out and "ready" in out and "CPUExecutionProvider" in out


def test_models_exits_non_zero_on_an_invalid_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_repository(tmp_path)
    (build_classifier(tmp_path, version=2) / "model.onnx").write_bytes(b"corrupt")
    assert main(["models", "--models-dir", str(tmp_path), "--json"]) == 1
    catalogue = json.loads(capsys.readouterr().out)
    states = {(m["name"], v["version"]): v["state"] for m in catalogue for v in m["versions"]}
    assert states[("tiny-classifier", 2)] == "failed"
    assert states[("tiny-detector", 1)] == "ready"


def test_models_exits_non_zero_on_an_empty_repository(tmp_path: Path) -> None:
    assert main(["models", "--models-dir", str(tmp_path)]) == 1


def test_serve_refuses_to_start_without_cuda_when_a_gpu_is_required(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = cuda_unavailable_reason()
    if reason is None:
        pytest.skip("CUDA is available here")
    monkeypatch.setenv("POLYPSERVE_REQUIRE_GPU", "true")
    assert main(["serve"]) == 1
    assert f"POLYPSERVE_REQUIRE_GPU is set but CUDA is unavailable: {reason}" in (
        capsys.readouterr().err
    )


def test_analyze_is_a_command_and_a_bad_input_is_one_line_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The command itself: tests/service/video/test_command.py.
    missing = tmp_path / "missing.mp4"
    assert main(["analyze", str(missing)]) == 1
    message = f"{missing} is neither a video file nor a folder of images"
    assert capsys.readouterr().err == f"polypserve analyze: {message}\n"
