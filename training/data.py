"""Readers for the data-set formats the trainers accept, all returning plain numpy arrays.

- Kvasir-SEG: ``images/<id>.jpg``, ``masks/<id>.jpg`` (3-channel JPEG, threshold at 128),
  ``kavsir_bboxes.json`` (upstream spelling), ``splits/pranet_test_kvasir_100.txt``.
- CVC-ClinicDB: ``images/<n>.png``, ``masks/<n>.png``, ``splits/pranet_test_clinicdb_62.txt``;
  boxes come from the masks' connected components.
- A YOLO-format detection folder: ``images/<stem>.(jpg|png)`` and ``labels/<stem>.txt`` with lines
  ``class cx cy w h`` normalised to [0, 1].
- An ImageFolder classification folder: one sub-folder per class, named by its label.
- CSV series: one numeric column, in time order.

Images are uint8 HWC RGB; masks are bool HW; boxes are float32 [K, 4] xyxy in the image's pixels.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
KVASIR_TEST_SPLIT = "splits/pranet_test_kvasir_100.txt"
CLINICDB_TEST_SPLIT = "splits/pranet_test_clinicdb_62.txt"


@dataclass(frozen=True)
class Sample:
    """One annotated image; ``mask_path`` and ``boxes`` are None where the format lacks them."""

    id: str
    image_path: Path
    mask_path: Path | None = None
    boxes: np.ndarray | None = None
    label: int | None = None


def read_image(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def read_mask(path: Path) -> np.ndarray:
    """Binary mask: the first channel thresholded at 128 (the JPEG masks carry grey fringes)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("L")) >= 128


def boxes_from_mask(mask: np.ndarray) -> np.ndarray:
    """One xyxy box per 8-connected component (inclusive-exclusive pixel edges)."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    boxes = [
        [sl[1].start, sl[0].start, sl[1].stop, sl[0].stop]
        for sl in ndimage.find_objects(labels)[:count]
        if sl is not None
    ]
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def read_split(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def split_train_val(
    ids: Sequence[str], val_fraction: float, seed: int, strata: Sequence[bool] | None = None
) -> tuple[list, list]:
    """Deterministic hold-out of ``val_fraction`` of ``ids`` (sorted first, then shuffled).

    With ``strata`` (one flag per id), each stratum gives the same fraction, so a rare kind of
    frame is in validation in proportion rather than by chance."""
    if strata is None:
        shuffled = sorted(ids)
        random.Random(seed).shuffle(shuffled)
        n_val = max(1, round(len(shuffled) * val_fraction))
        return sorted(shuffled[n_val:]), sorted(shuffled[:n_val])
    train: list[str] = []
    val: list[str] = []
    for flag in (False, True):
        part = [i for i, s in zip(ids, strata, strict=True) if bool(s) == flag]
        if part:
            t, v = split_train_val(part, val_fraction, seed)
            train, val = train + t, val + v
    return sorted(train), sorted(val)


# --- Kvasir-SEG ---------------------------------------------------------------------------------


def kvasir_boxes(root: Path) -> dict[str, np.ndarray]:
    table = json.loads((root / "kavsir_bboxes.json").read_text())
    return {
        key: np.asarray(
            [[b["xmin"], b["ymin"], b["xmax"], b["ymax"]] for b in entry["bbox"]], dtype=np.float32
        ).reshape(-1, 4)
        for key, entry in table.items()
    }


def kvasir_samples(root: Path, split: str) -> list[Sample]:
    """``split`` is ``trainval`` (every id not in the PraNet test list) or ``test`` (the 100)."""
    test_ids = set(read_split(root / KVASIR_TEST_SPLIT))
    boxes = kvasir_boxes(root)
    all_ids = sorted(p.stem for p in (root / "images").iterdir() if p.suffix == ".jpg")
    if split == "test":
        ids = sorted(test_ids)
    elif split == "trainval":
        ids = [i for i in all_ids if i not in test_ids]
    else:
        raise ValueError(f"unknown Kvasir-SEG split {split!r}")
    return [
        Sample(i, root / "images" / f"{i}.jpg", root / "masks" / f"{i}.jpg", boxes.get(i))
        for i in ids
    ]


# --- CVC-ClinicDB -------------------------------------------------------------------------------


def clinicdb_samples(root: Path, split: str = "test") -> list[Sample]:
    """``test``: the PraNet 62-frame list; ``all``: every frame (evaluation only, never train)."""
    if split == "test":
        ids = read_split(root / CLINICDB_TEST_SPLIT)
    elif split == "all":
        ids = [p.stem for p in (root / "images").iterdir() if p.suffix == ".png"]
    else:
        raise ValueError(f"unknown CVC-ClinicDB split {split!r}")
    ids = sorted(ids, key=lambda s: (len(s), s))
    return [Sample(i, root / "images" / f"{i}.png", root / "masks" / f"{i}.png") for i in ids]


# --- YOLO folder and ImageFolder ----------------------------------------------------------------


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def yolo_samples(root: Path) -> list[Sample]:
    """Boxes are converted from normalised ``cx cy w h`` to pixel xyxy using each image's size."""
    samples = []
    for image_path in _images_in(root / "images"):
        with Image.open(image_path) as im:
            width, height = im.size
        label_path = root / "labels" / f"{image_path.stem}.txt"
        rows = []
        if label_path.exists():
            rows = [line.split() for line in label_path.read_text().splitlines() if line.strip()]
        cxcywh = np.asarray([[float(v) for v in r[1:5]] for r in rows], np.float32).reshape(-1, 4)
        scale = np.asarray([width, height, width, height], np.float32)
        xyxy = np.concatenate(
            [cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], 1
        )
        samples.append(Sample(image_path.stem, image_path, boxes=xyxy * scale))
    return samples


def imagefolder_samples(root: Path) -> tuple[list[Sample], list[str]]:
    """Samples and class names (sorted sub-folder names; the label is the index)."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    samples = [
        Sample(f"{name}/{path.stem}", path, label=index)
        for index, name in enumerate(classes)
        for path in _images_in(root / name)
    ]
    return samples, classes


# --- series -------------------------------------------------------------------------------------


def read_series_csv(path: Path, column: str | None = None) -> np.ndarray:
    """One column of a CSV with a header (the last numeric one unless ``column`` names it)."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return np.zeros(0, np.float64)
    if column is None:
        numeric = [k for k in rows[0] if _is_float(rows[0][k])]
        column = numeric[-1]
    return np.asarray([float(r[column]) for r in rows], dtype=np.float64)


def _is_float(text: str | None) -> bool:
    try:
        float(text or "")
    except ValueError:
        return False
    return True


# --- loading into memory ------------------------------------------------------------------------


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Stretch to ``size`` = (height, width), bilinear, as the manifest's ``stretch`` mode says."""
    height, width = size
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def load_resized(
    samples: Sequence[Sample], size: tuple[int, int], workers: int = 8
) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray]]:
    """Images [N, H, W, 3] uint8, masks [N, H, W] uint8 (0/1) or None, boxes scaled to ``size``."""

    def load(sample: Sample) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        image = read_image(sample.image_path)
        h0, w0 = image.shape[:2]
        mask = None
        if sample.mask_path is not None:
            m = read_mask(sample.mask_path).astype(np.uint8) * 255
            mask = (resize_image(m, size) >= 128).astype(np.uint8)
        boxes = sample.boxes
        if boxes is None:
            boxes = boxes_from_mask(read_mask(sample.mask_path)) if sample.mask_path else None
        boxes = np.zeros((0, 4), np.float32) if boxes is None else boxes
        scale = np.asarray([size[1] / w0, size[0] / h0] * 2, np.float32)
        return resize_image(image, size), mask, boxes * scale

    with ThreadPoolExecutor(workers) as pool:
        loaded = list(pool.map(load, samples))
    images = np.stack([x[0] for x in loaded])
    masks = None if loaded[0][1] is None else np.stack([x[1] for x in loaded])
    return images, masks, [x[2] for x in loaded]


def map_threads(fn: Callable, items: Sequence, workers: int = 4) -> list:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def to_input(image: np.ndarray, size: tuple[int, int], mean: tuple, std: tuple) -> np.ndarray:
    """One RGB uint8 image -> float32 [3, H, W] exactly as the manifest's preprocessing says
    (stretch to ``size``, x / 255, then (x - mean) / std)."""
    x = resize_image(image, size).astype(np.float32) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))
