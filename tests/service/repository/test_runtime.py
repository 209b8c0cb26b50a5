from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.repository import runtime
from service.repository.runtime import (
    CPU,
    CUDA,
    TENSORRT,
    GpuOptions,
    ModelSession,
    RuntimeLoadError,
    requested_providers,
)
from tests.model_factory import build_classifier


def test_auto_takes_cpu_when_cuda_cannot_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "cuda_unavailable_reason", lambda: "no libcudart")
    assert requested_providers("auto") == [CPU]
    monkeypatch.setattr(runtime, "cuda_unavailable_reason", lambda: None)
    cuda, cpu = requested_providers("auto", GpuOptions(device_id=1, memory_limit_bytes=2**30))
    assert cpu == CPU
    assert cuda == (
        CUDA,
        {
            "device_id": "1",
            "cudnn_conv_algo_search": "EXHAUSTIVE",
            "arena_extend_strategy": "kSameAsRequested",
            "gpu_mem_limit": str(2**30),
        },
    )
    trt, _, _ = requested_providers("auto", GpuOptions(tensorrt=True, tensorrt_cache_dir="/c"))
    assert trt[0] == TENSORRT and trt[1]["trt_engine_cache_path"] == "/c"  # type: ignore[index]
    assert trt[1]["trt_fp16_enable"] == "True"  # type: ignore[index]


def test_explicit_provider_lists_are_checked() -> None:
    assert requested_providers("CPUExecutionProvider") == [CPU]
    with pytest.raises(ValueError, match="unknown execution providers"):
        requested_providers("WarpDriveExecutionProvider")


def test_this_machine_reports_why_cuda_is_unavailable() -> None:
    # The CI and development machines have no GPU: the reason must say so, never be silent.
    reason = runtime.cuda_unavailable_reason()
    assert reason is None or "CUDA" in reason


def test_session_reports_its_real_providers_and_signature(tmp_path: Path) -> None:
    folder = build_classifier(tmp_path)
    session = ModelSession(folder / "model.onnx", [CUDA, CPU], 1, 1)
    if runtime.cuda_unavailable_reason() is not None:
        assert session.providers == [CPU] and not session.uses_cuda
    assert [t.name for t in session.inputs] == ["images"]
    assert session.inputs[0].shape == (None, 3, 32, 32)
    (logits,) = session.run({"images": np.zeros((2, 3, 32, 32), np.float32)}, ["logits"])
    assert logits.shape == (2, 2)


def test_corrupt_graph_raises_runtime_load_error(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not a protobuf")
    with pytest.raises(RuntimeLoadError):
        ModelSession(path, [CPU], 1, 1)


def test_io_binding_gives_the_same_outputs_as_run(tmp_path: Path) -> None:
    folder = build_classifier(tmp_path)
    session = ModelSession(folder / "model.onnx", [CPU], 1, 1)
    images = np.random.default_rng(0).random((3, 3, 32, 32), np.float32)
    (expected,) = session.run({"images": images}, ["logits"])
    session.use_io_binding = True  # the CUDA path, bound to host memory here
    (bound,) = session.run({"images": images}, ["logits"])
    np.testing.assert_array_equal(bound, expected)
    assert bound.shape == (3, 2)


def test_io_binding_is_used_on_cuda_only(tiny_repo: Path) -> None:
    from service.config import Settings
    from service.repository.model_version import load_version

    model = load_version("tiny-classifier", 1, tiny_repo / "tiny-classifier" / "1", Settings())
    assert model.session is not None
    assert model.session.use_io_binding == model.session.uses_cuda
