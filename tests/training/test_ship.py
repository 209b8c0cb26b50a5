"""Choosing a version's input size, and keeping it on a re-export."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from training import export, ship

MODELS = Path(__file__).resolve().parents[2] / "models"


def choose(
    tmp_path: Path, version_dir: Path, prefer_small: bool = True, max_latency_ms: float = 1e9
) -> int:
    """Sizes 128 and 256 of a one-layer network; validation prefers 128 (or 256)."""
    chosen, trials = ship.choose_input_size(
        lambda _size: torch.nn.Conv2d(3, 16, 3),  # 256 px costs four times 128's
        (128, 256),
        tmp_path,
        ["out"],
        lambda _path, size: 1.0 / size if prefer_small else float(size),
        max_latency_ms,
        ship.shipped_manifest(version_dir),
        threads=1,
        runs=5,
    )
    assert [t.size for t in trials] == [128, 256]
    table = ship.size_table(trials, "AP", chosen, max_latency_ms, threads=1)
    assert "(1 thread)" in table and f"| {chosen.size}x{chosen.size} |" in table
    return chosen.size


def test_the_best_size_within_the_latency_budget_wins_and_the_fastest_when_none_fits(
    tmp_path: Path,
) -> None:
    assert choose(tmp_path, tmp_path / "1", prefer_small=False) == 256
    assert choose(tmp_path, tmp_path / "1", prefer_small=False, max_latency_ms=0.0) == 128


def test_a_first_export_takes_the_best_size_and_a_re_export_the_shipped_one(
    tmp_path: Path,
) -> None:
    version_dir = tmp_path / "models" / "polyp-detector" / "2"
    assert choose(tmp_path, version_dir) == 128  # nothing shipped yet
    version_dir.mkdir(parents=True)
    shutil.copy(MODELS / "polyp-detector" / "2" / "manifest.json", version_dir)  # ships 256
    assert choose(tmp_path, version_dir) == 256


def test_a_re_export_without_the_shipped_size_is_refused(tmp_path: Path) -> None:
    version_dir = tmp_path / "1"
    version_dir.mkdir()
    shutil.copy(MODELS / "polyp-classifier" / "2" / "manifest.json", version_dir)  # ships 128
    with pytest.raises(export.ShippedVersionError, match="ships input size"):
        ship.choose_input_size(
            lambda _size: torch.nn.Conv2d(3, 1, 1), (64,), tmp_path, ["out"],
            lambda _path, _size: 1.0, 1e9, ship.shipped_manifest(version_dir), threads=1, runs=2,
        )  # fmt: skip


def test_a_re_export_appends_its_command_to_the_shipped_chain(tmp_path: Path) -> None:
    chain = "python -m training.detection --no-export ; python -m training.detection --epochs 0"
    assert ship.command_chain(None, chain) == chain  # first export
    manifest = ship.shipped_manifest(MODELS / "polyp-detector" / "2")
    assert manifest is not None and manifest.provenance is not None
    shipped = manifest.provenance.command
    again = ship.command_chain(manifest, chain)
    assert again == f"{shipped} ; python -m training.detection --epochs 0"
    assert ship.command_chain(manifest, f"x ; {shipped.split(' ; ')[-1]}") == shipped
    # the same export again adds nothing
