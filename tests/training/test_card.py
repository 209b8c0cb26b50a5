"""The model card's versions table."""

from __future__ import annotations

import shutil
from pathlib import Path

from training import card

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_a_figure_on_another_validation_split_is_marked(tmp_path: Path) -> None:
    """The detector's version 2 holds out a stratified split; version 1's validation figure is
    on its own random split, so the table must not set the two side by side unmarked."""
    for version in ("1", "2"):
        (tmp_path / version).mkdir()
        shutil.copy(MODELS / "polyp-detector" / version / "manifest.json", tmp_path / version)
    rows = card.versions_table(tmp_path, ("val", "ap50"), split_since=2).splitlines()
    newest, older = rows[2], rows[3]
    assert newest.startswith("| 2 |") and "other split" not in newest
    assert older.startswith("| 1 |") and "(on its own, other split)" in older
    assert "0.9388 |" in newest and "0.9194 (on its own, other split) |" in older
    assert "other split" not in card.versions_table(tmp_path, ("val", "ap50"))


def test_a_new_version_moves_the_earlier_card_into_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    (tmp_path / "2").mkdir()
    path.write_text("# m (version 2)\n\nin `2/manifest.json`\n\n![curve](2/training_curve.png)\n")
    card.keep_earlier_card(path, 2)  # a re-export of version 2 rewrites the card in place
    assert path.is_file()
    card.keep_earlier_card(path, 3)
    assert not path.exists()
    moved = (tmp_path / "2" / "README.md").read_text()
    assert "in `manifest.json`" in moved and "![curve](training_curve.png)" in moved
