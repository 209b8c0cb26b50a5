"""Synthetic data sets in the real formats, generated on the fly (no data-set images in git)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _frame(rng: np.random.Generator, height: int, width: int):
    """A reddish frame with one bright elliptical 'polyp'; returns image, mask and its box."""
    image = (rng.uniform(0.3, 0.5, (height, width, 3)) * [255, 120, 100]).astype(np.uint8)
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    ry, rx = rng.uniform(0.1, 0.2) * height, rng.uniform(0.1, 0.2) * width
    yy, xx = np.mgrid[:height, :width]
    mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    image[mask] = [230, 180, 150]
    ys, xs = np.nonzero(mask)
    box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
    return image, mask, box


def make_kvasir(root: Path, n: int = 16, n_test: int = 4, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    for sub in ("images", "masks", "splits"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ids, table = [], {}
    for i in range(n):
        key = f"id{i:03d}"
        height, width = int(rng.integers(60, 90)), int(rng.integers(70, 100))
        image, mask, box = _frame(rng, height, width)
        Image.fromarray(image).save(root / "images" / f"{key}.jpg", quality=95)
        Image.fromarray(np.repeat(mask[..., None] * 255, 3, 2).astype(np.uint8)).save(
            root / "masks" / f"{key}.jpg", quality=100
        )
        x1, y1, x2, y2 = box
        table[key] = {
            "height": height,
            "width": width,
            "bbox": [{"label": "polyp", "xmin": x1, "ymin": y1, "xmax": x2, "ymax": y2}],
        }
        ids.append(key)
    (root / "kavsir_bboxes.json").write_text(json.dumps(table))
    (root / "splits" / "pranet_test_kvasir_100.txt").write_text("\n".join(ids[-n_test:]) + "\n")
    return ids


def make_clinicdb(root: Path, n: int = 6, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    for sub in ("images", "masks", "splits"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        image, mask, _ = _frame(rng, 72, 96)
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        Image.fromarray((mask * 255).astype(np.uint8)).save(root / "masks" / f"{i}.png")
    (root / "splits" / "pranet_test_clinicdb_62.txt").write_text("2\n4\n6\n")


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny data root: ``kvasir-seg/`` and ``cvc-clinicdb/`` in their real layouts."""
    root = tmp_path_factory.mktemp("data")
    make_kvasir(root / "kvasir-seg")
    make_clinicdb(root / "cvc-clinicdb")
    return root


def make_yolo(root: Path, n: int = 12, seed: int = 2) -> None:
    """A YOLO-format detection folder: images/ and labels/ (class cx cy w h, normalised)."""
    rng = np.random.default_rng(seed)
    for sub in ("images", "labels"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        height, width = 64, 80
        image, _, (x1, y1, x2, y2) = _frame(rng, height, width)
        Image.fromarray(image).save(root / "images" / f"f{i}.jpg", quality=95)
        cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
        w, h = (x2 - x1) / width, (y2 - y1) / height
        (root / "labels" / f"f{i}.txt").write_text(f"0 {cx:.4f} {cy:.4f} {w:.4f} {h:.4f}\n")


def make_imagefolder(root: Path, per_class: int = 8, seed: int = 3) -> None:
    """An ImageFolder: ``lesion/`` frames with a bright blob, ``mucosa/`` frames without."""
    rng = np.random.default_rng(seed)
    for name in ("lesion", "mucosa"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image, mask, _ = _frame(rng, 48, 48)
            if name == "mucosa":
                image[mask] = image[~mask].mean(0).astype(np.uint8)
            Image.fromarray(image).save(root / name / f"{i}.png")
