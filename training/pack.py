"""Pack the Kvasir-SEG training frames (never the 100 test ids) at one size into a Kvasir-SEG-format
folder, small enough to travel to a lent GPU machine. The trainers read it with ``--data-root``.

    python -m training.pack --size 256 --out .gpudata

The copy is for training only; it is never committed (``/.gpudata/`` is git-ignored locally) and
never redistributed (Kvasir-SEG terms: research and education only).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from training import common, data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(common.DEFAULT_DATA_ROOT))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", default=".gpudata")
    args = parser.parse_args(argv)
    src, out = Path(args.data_root) / "kvasir-seg", Path(args.out) / "kvasir-seg"
    size = (args.size, args.size)
    for sub in ("images", "masks", "splits"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / data.KVASIR_TEST_SPLIT, out / data.KVASIR_TEST_SPLIT)
    samples = data.kvasir_samples(src, "trainval")
    boxes = {}

    def pack(sample: data.Sample) -> None:
        image = data.read_image(sample.image_path)
        h0, w0 = image.shape[:2]
        mask = data.read_mask(sample.mask_path).astype(np.uint8) * 255
        Image.fromarray(data.resize_image(image, size)).save(
            out / "images" / f"{sample.id}.jpg", quality=95
        )
        small = ((data.resize_image(mask, size) >= 128) * 255).astype(np.uint8)
        Image.fromarray(small).save(out / "masks" / f"{sample.id}.jpg", quality=100)
        sx, sy = size[1] / w0, size[0] / h0
        boxes[sample.id] = {
            "height": size[0],
            "width": size[1],
            "bbox": [
                {
                    "label": "polyp",
                    "xmin": float(b[0] * sx),
                    "ymin": float(b[1] * sy),
                    "xmax": float(b[2] * sx),
                    "ymax": float(b[3] * sy),
                }
                for b in sample.boxes
            ],
        }

    data.map_threads(pack, samples)
    (out / "kavsir_bboxes.json").write_text(json.dumps(boxes))
    print(f"packed {len(samples)} frames at {size} into {out}")


if __name__ == "__main__":
    main()
