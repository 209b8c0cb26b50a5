"""Export to ONNX, verify (checker, then ONNX Runtime against PyTorch), time, and write the model
directory ``models/<name>/<version>/{model.onnx, manifest.json}`` through the service's Manifest.
"""

from __future__ import annotations

import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from service.repository.manifest import MANIFEST_FILE, MODEL_FILE, Manifest

OPSET = 17


def export_onnx(
    model: torch.nn.Module,
    examples: dict[str, torch.Tensor],
    path: Path,
    output_names: list[str],
) -> None:
    """TorchScript exporter (``dynamo=False``, set explicitly), opset 17, dynamic batch axis;
    ``examples``: one tensor per graph input, by name, in the order ``model`` takes them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    axes = {name: {0: "batch"} for name in [*examples, *output_names]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            model,
            tuple(example.cpu() for example in examples.values()),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=list(examples),
            output_names=output_names,
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def ort_session(path: Path, threads: int = 2) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def parity(path: Path, model: torch.nn.Module, inputs: dict[str, np.ndarray]) -> float:
    """Max absolute difference between ONNX Runtime and PyTorch over every output; ``inputs``
    by name, in the order ``model`` takes them."""
    feeds = {name: value.astype(np.float32) for name, value in inputs.items()}
    onnx_outputs = ort_session(path).run(None, feeds)
    with torch.no_grad():
        torch_outputs = model.eval().cpu()(*(torch.from_numpy(v) for v in feeds.values()))
    if isinstance(torch_outputs, torch.Tensor):
        torch_outputs = (torch_outputs,)
    return max(
        float(np.max(np.abs(o - t.numpy())))
        for o, t in zip(onnx_outputs, torch_outputs, strict=True)
    )


def latency_ms(
    path: Path, shapes: dict[str, tuple[int, ...]], runs: int = 50, threads: int = 2
) -> float:
    """Median wall time of one batch-1 ONNX Runtime call (``intra_op`` threads = ``threads``)
    on random inputs of ``shapes``, by input name."""
    session = ort_session(path, threads)
    rng = np.random.default_rng(0)
    feeds = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
    for _ in range(5):
        session.run(None, feeds)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times))


class ShippedVersionError(Exception):
    """A version that already ships other weights: a client pinning it must get the same model
    tomorrow, so new weights go to a new version."""


def refuse_other_weights(version_dir: Path, onnx_path: Path) -> None:
    """Raise ShippedVersionError when ``version_dir`` already ships a graph other than
    ``onnx_path``'s."""
    shipped = version_dir / MODEL_FILE
    if shipped.is_file() and shipped.read_bytes() != onnx_path.read_bytes():
        raise ShippedVersionError(
            f"{version_dir} already ships other weights; give the new model a new --version"
        )


def write_model_dir(out_dir: Path, onnx_path: Path, manifest: Manifest) -> Path:
    """Copy the graph and write its manifest into ``out_dir/<name>/<version>/``; returns it.
    The manifest of a shipped version may be rewritten (test figures added), its graph never."""
    version_dir = out_dir / manifest.name / str(manifest.version)
    refuse_other_weights(version_dir, onnx_path)
    shipped = version_dir / MODEL_FILE
    version_dir.mkdir(parents=True, exist_ok=True)
    if onnx_path.resolve() != shipped.resolve():
        shutil.copyfile(onnx_path, shipped)
    manifest.write(version_dir / MANIFEST_FILE)
    Manifest.read(version_dir / MANIFEST_FILE)  # round-trip through the validator
    return version_dir


def threads_text(threads: int, kind: str = "") -> str:
    """``1 thread``, ``2 intra-op threads``: how the cards name what a latency was timed on."""
    return f"{threads} {kind}thread{'s' if threads > 1 else ''}"


def export_note(max_abs_diff: float, latency: float, threads: int = 2) -> str:
    return (
        f"ONNX export check: `onnx.checker` passed; ONNX Runtime vs PyTorch on validation inputs, "
        f"max absolute difference {max_abs_diff:.2e}. Latency: {latency:.1f} ms median per "
        f"batch-1 call, ONNX Runtime CPU, {threads_text(threads, 'intra-op ')}, "
        "on the project's 2-core machine."
    )
