"""Best views: a JPEG crop of each track's best frame, cut as the frames go by.

No frame is kept for this: when a frame is a track's best view so far, its crop (the track's
box and a margin around it) replaces the one kept before; the crops are written at the end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

MARGIN = 0.15  # of the box's width and height, on each side: some context around the polyp
JPEG_QUALITY = 90


def crop_box(rgb: np.ndarray, box_xyxy: list[float], margin: float = MARGIN) -> np.ndarray:
    """A copy of the (h, w, 3) frame's pixels under the box widened by ``margin``."""
    height, width = rgb.shape[:2]
    x1, y1, x2, y2 = box_xyxy
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(0, int(x1 - dx)), max(0, int(y1 - dy))
    right, bottom = min(width, int(np.ceil(x2 + dx))), min(height, int(np.ceil(y2 + dy)))
    return rgb[top : max(bottom, top + 1), left : max(right, left + 1)].copy()


class BestViews:
    def __init__(self) -> None:
        self._crops: dict[int, np.ndarray] = {}

    def keep(self, track_id: int, rgb: np.ndarray, box_xyxy: list[float]) -> None:
        self._crops[track_id] = crop_box(rgb, box_xyxy)

    def write(self, folder: Path) -> dict[int, str]:
        """One ``track-<id>.jpg`` a track; returns the paths by track id."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for track_id, crop in sorted(self._crops.items()):
            path = folder / f"track-{track_id:03d}.jpg"
            Image.fromarray(crop).save(path, format="JPEG", quality=JPEG_QUALITY)
            paths[track_id] = str(path)
        return paths
