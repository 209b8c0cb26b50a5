"""Fine-tune the ImageNet-pretrained EfficientNet-Lite for "polyp present / absent" on crops of
Kvasir-SEG frames (labels from the masks), or on any ImageFolder data set; export it to ONNX and
ship it as a new version.

    python -m training.classification                     # Kvasir-SEG crops (GPU if present)
    python -m training.classification --dry-run --out-dir /tmp/m     # a smoke run in seconds
    python -m training.classification --weights runs/classification/ckpt.pt --epochs 0
    ... --evaluate-test        # score the frozen model on the test crops (once per version)
    python -m training.classification --imagefolder-root path/to/folder --name my-classifier

Kvasir-SEG has no polyp-free frames, so the two classes are crops labelled by the mask's cover
(``training.crops``); the networks are in ``training.classifier``. Training crops are drawn
afresh every step from the training frames (on the device); validation and test crops are a
fixed, seeded set cut from the original frames.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from training import augment, common, data, encoder, loop
from training.classification_report import export_and_report
from training.classifier import LiteClassifier
from training.crops import fixed_crops, random_crops


@dataclass(frozen=True)
class Config:
    data_root: str = str(common.DEFAULT_DATA_ROOT)
    imagefolder_root: str = ""  # train on this ImageFolder instead of Kvasir-SEG crops
    out_dir: str = str(common.MODELS_DIR)
    work_dir: str = "runs/classification"
    name: str = "polyp-classifier"
    version: int = 4
    device: str = "auto"
    seed: int = 1337
    size: int = 192  # network input (square)
    load_size: int = 256  # frames are held at this size for cutting training crops
    encoder: str = "lite2"  # EfficientNet-Lite variant, ImageNet-pretrained
    dropout: float = 0.3
    batch_size: int = 64
    steps_per_epoch: int = 25
    epochs: int = 12
    time_budget_s: float = 0.0
    lr: float = 1e-3
    weight_decay: float = 5e-4
    val_fraction: float = 0.1
    patience: int = 5
    crops_per_image: int = 2  # per class, for the fixed validation and test crop sets
    weights: str = ""
    export: bool = True
    evaluate_test: bool = False  # score the test crops (once per shipped version)
    dry_run: bool = False


LABELS = ["no_polyp", "polyp"]


def main(argv: list[str] | None = None) -> dict:
    cfg = common.parse_config(Config(), __doc__.splitlines()[0], argv)
    if cfg.dry_run:
        cfg = dataclasses.replace(
            cfg, size=32, load_size=64, batch_size=8, epochs=min(cfg.epochs, 1), steps_per_epoch=2
        )
    common.seed_everything(cfg.seed)
    device = common.pick_device(cfg.device)
    data_root, work_dir = Path(cfg.data_root), Path(cfg.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    size, load = (cfg.size, cfg.size), (cfg.load_size, cfg.load_size)
    mean, std = encoder.LITE_MEAN, encoder.LITE_STD
    folder = bool(cfg.imagefolder_root)

    if folder:
        trainval, labels = data.imagefolder_samples(Path(cfg.imagefolder_root))
    else:
        trainval, labels = data.kvasir_samples(data_root / "kvasir-seg", "trainval"), LABELS
    if cfg.dry_run:
        trainval = trainval[:12]
    train_ids, val_ids = data.split_train_val([s.id for s in trainval], cfg.val_fraction, cfg.seed)
    train = [s for s in trainval if s.id in set(train_ids)]
    val = [s for s in trainval if s.id in set(val_ids)]
    if folder:  # whole images, a random zoom as augmentation
        images, _, _ = data.load_resized(train, load)
        frames = torch.from_numpy(images).to(device)
        frame_labels = torch.tensor([s.label for s in train], device=device)
        val_crops, _, _ = data.load_resized(val, size)
        val_labels = np.asarray([s.label for s in val])
    else:  # frames, masks and the first box normalised to [-1, 1], for cutting crops
        images, masks, boxes = data.load_resized(train, load)
        frames = torch.from_numpy(images).to(device)
        frame_masks = torch.from_numpy(masks).to(device)[:, None].float()
        first = np.stack([b[0] if len(b) else np.asarray([0, 0, *load], np.float32) for b in boxes])
        half_size = np.asarray([load[1], load[0]] * 2, np.float32) / 2
        frame_boxes = torch.from_numpy(first / half_size - 1).to(device)
        val_crops, val_labels = fixed_crops(val, cfg.crops_per_image, cfg.seed, cfg.size)
    val_x = augment.normalise(torch.from_numpy(val_crops), mean, std).to(device)
    val_y = torch.from_numpy(val_labels).to(device)
    print(f"train {len(train)} / val {len(val)} frames; {len(val_labels)} validation inputs")

    model = LiteClassifier(cfg.encoder, len(labels), cfg.dropout).to(device)
    model = model.to(memory_format=torch.channels_last)
    # Continued from a checkpoint: its epochs come first, its command is kept.
    history, train_command, start_epoch, best_epoch = loop.resume(
        model, "classification", argv, cfg.weights
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    use_amp = device.type == "cuda"
    schedule = loop.Schedule(
        cfg.epochs, cfg.steps_per_epoch, cfg.lr, cfg.time_budget_s, cfg.patience
    )
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)

    def train_batch() -> tuple[torch.Tensor, torch.Tensor]:
        if folder:
            pick = torch.randint(len(frames), (cfg.batch_size,), device=device)
            theta = augment.random_theta(cfg.batch_size, device, scale=(1.0, 1.4), translate=0.1)
            x = frames[pick].permute(0, 3, 1, 2).float() / 255.0
            return augment.color_jitter(augment.warp(x, theta, size)), frame_labels[pick]
        return random_crops(frames, frame_masks, frame_boxes, cfg.batch_size, cfg.size)

    def train_losses() -> Iterator[torch.Tensor]:
        while True:  # crops are drawn afresh every step; the schedule counts the steps
            x, y = train_batch()
            x = ((x - mean_t) / std_t).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = model(x)
            yield F.cross_entropy(logits.float(), y, ignore_index=-1, label_smoothing=0.05)

    def val_loss() -> float:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = torch.cat([model(val_x[i : i + 256]) for i in range(0, len(val_x), 256)])
        return F.cross_entropy(logits.float(), val_y).item()

    stopper = loop.fit(
        model,
        optimizer,
        schedule,
        train_losses,
        val_loss,
        desc="classification",
        history=history,
        start_epoch=start_epoch,
    )
    best_epoch = loop.keep_best(
        model, stopper, start_epoch, best_epoch, work_dir, cfg, history, train_command
    )
    if not cfg.export:
        return {}
    model = model.cpu().float()
    return export_and_report(cfg, model, labels, val_crops, val_labels, history, train_command)


if __name__ == "__main__":
    main(sys.argv[1:])
