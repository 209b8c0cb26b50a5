"""Shipping an image model as a new version: the serving input size chosen on validation, the
test splits scored only on request (and counted), and a shipped version's weights never replaced.

The trainers call these after training; what they choose and count goes into the manifest and
the card, so a reader sees how the shipped file was picked and how often its test figures were
looked at.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from service.repository.manifest import MANIFEST_FILE, Manifest, Metrics
from training import data, export


def test_splits(data_root: Path) -> dict[str, list[data.Sample]]:
    """The held-out test splits of the image models: Kvasir-SEG's 100 PraNet test frames and
    CVC-ClinicDB's 62 (another hospital, never trained on)."""
    return {
        "kvasir_test_100": data.kvasir_samples(data_root / "kvasir-seg", "test"),
        "clinicdb_test_62": data.clinicdb_samples(data_root / "cvc-clinicdb", "test"),
    }


@dataclass(frozen=True)
class SizeTrial:
    size: int
    latency_ms: float
    score: float
    onnx_path: Path


def choose_input_size(
    build: Callable[[int], torch.nn.Module],
    sizes: Sequence[int],
    work_dir: Path,
    output_names: list[str],
    score_val: Callable[[Path, int], float],
    max_latency_ms: float,
    shipped: Manifest | None,
    threads: int,
    runs: int = 50,
) -> tuple[SizeTrial, list[SizeTrial]]:
    """Export the trained network at each input size (``build(size)`` gives it), time it and
    score it on validation (``score_val(onnx_path, size)``, higher is better); the best score
    among the sizes within ``max_latency_ms`` on ``threads`` intra-op threads wins (the fastest
    size when none is). A re-export of a ``shipped`` version keeps the size it ships: latency
    on a shared machine moves by a quarter between runs, and a version's graph never changes."""
    kept = None  # the input size a re-export must keep
    if shipped is not None:
        kept = shipped.preprocessing.size[0] if shipped.preprocessing is not None else None
        if kept not in sizes:  # refused before anything is exported
            raise export.ShippedVersionError(
                f"{shipped.name} version {shipped.version} ships input size {kept}"
            )
    trials = []
    for size in sizes:
        path = work_dir / f"model_{size}.onnx"
        export.export_onnx(
            build(size), {"images": torch.zeros(1, 3, size, size)}, path, output_names
        )
        latency = export.latency_ms(path, {"images": (1, 3, size, size)}, runs, threads)
        trials.append(SizeTrial(size, latency, score_val(path, size), path))
        print(f"input {size}: validation {trials[-1].score:.4f}, {latency:.1f} ms")
    fast = [t for t in trials if t.latency_ms <= max_latency_ms]
    best = max(fast, key=lambda t: t.score) if fast else min(trials, key=lambda t: t.latency_ms)
    if kept is not None:
        best = next(t for t in trials if t.size == kept)
    return best, trials


def size_table(
    trials: Sequence[SizeTrial], metric: str, chosen: SizeTrial, limit: float, threads: int
) -> str:
    """The card's record of the size choice."""
    rows = [
        f"| {t.size}x{t.size} | {t.score:.4f} | {t.latency_ms:.1f} |"
        + (" **served** |" if t is chosen else " |")
        for t in trials
    ]
    return "\n".join(
        [
            f"Input size, chosen on validation ({metric}) among the sizes whose batch-1 ONNX "
            f"Runtime CPU latency ({export.threads_text(threads)}) is within "
            f"{limit:g} ms when the version was first exported (a re-export keeps it; the "
            "latencies below are this export's):",
            "",
            f"| input | validation {metric} | latency ms | |",
            "|---|---|---|---|",
            *rows,
        ]
    )


def shipped_manifest(version_dir: Path) -> Manifest | None:
    """The manifest of the version in ``version_dir``, if it ships already."""
    path = version_dir / MANIFEST_FILE
    return Manifest.read(path) if path.is_file() else None


def command_chain(shipped: Manifest | None, chain: str) -> str:
    """The whole command chain of a version: a re-export of a ``shipped`` version appends its
    own command (the last of ``chain``) to the chain the version's manifest records, so the step
    that scored the test splits stays in it; the same export run again adds nothing."""
    if shipped is None or shipped.provenance is None:
        return chain
    recorded, this = shipped.provenance.command, chain.split(" ; ")[-1]
    return recorded if recorded.split(" ; ")[-1] == this else f"{recorded} ; {this}"


def test_record(
    shipped: Manifest | None, version_dir: Path, evaluate_test: bool, onnx_path: Path
) -> tuple[int, Metrics]:
    """How many runs have scored this version's test splits, this one included, and the figures
    its ``shipped`` manifest already records. Called before any test split is scored: a graph
    other than the one in ``version_dir`` is refused here (``export.ShippedVersionError``), so a
    refused run never looks at the test splits; a re-export of the same graph without scoring
    keeps the figures."""
    export.refuse_other_weights(version_dir, onnx_path)
    if shipped is None:
        return int(evaluate_test), {}
    before = shipped.provenance.test_evaluations if shipped.provenance is not None else 0
    return before + int(evaluate_test), shipped.metrics


def test_note(count: int, splits: Sequence[str]) -> str:
    if count == 0:
        return (
            "The test splits have not been scored for this version: every choice above was made "
            "on validation, and the test figures come from a separate `--evaluate-test` run."
        )
    times = "once" if count == 1 else f"{count} times"
    return (
        f"Everything was chosen on validation; the test splits ({', '.join(splits)}) were "
        f"scored {times} for this version, by an explicit `--evaluate-test` run on the frozen "
        "model."
    )
