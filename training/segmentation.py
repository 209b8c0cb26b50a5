"""Train a polyp segmenter on Kvasir-SEG (a U-Net decoder on the ImageNet-pretrained
EfficientNet-Lite encoder), export it to ONNX and ship it as a new version.

    python -m training.segmentation                       # full training (GPU if present)
    python -m training.segmentation --dry-run --out-dir /tmp/m   # a smoke run in seconds
    python -m training.segmentation --weights runs/segmentation/ckpt.pt --epochs 0   # export only
    ... --evaluate-test        # score the frozen model on the test splits (once per version)

Data: Kvasir-SEG minus the 100 PraNet test ids (train + validation, validation held out for
early stopping and for choosing the serving size); tests, scored only with --evaluate-test:
Kvasir-100 and CVC-ClinicDB-62 (never trained on), PraNet protocol: the probability map is
resized to the original image size, thresholded at 0.5, and compared with the ground-truth mask
thresholded at 128; Dice and IoU per image, then averaged.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from training import augment, common, data, encoder, loop
from training.segmentation_report import export_and_report
from training.unet import LiteUNet, dice_bce_loss


@dataclass(frozen=True)
class Config:
    data_root: str = str(common.DEFAULT_DATA_ROOT)
    out_dir: str = str(common.MODELS_DIR)  # models/<name>/<version>/ is written here
    work_dir: str = "runs/segmentation"  # checkpoint, logs, intermediate ONNX
    name: str = "polyp-segmenter"
    version: int = 2
    device: str = "auto"
    seed: int = 1337
    size: int = 256  # training input, square; Kvasir images are stretched to it
    serve_sizes: tuple[int, ...] = (256, 288, 320)  # served at the one validation Dice picks
    max_latency_ms: float = 40.0  # ... among those within this batch-1 CPU latency
    latency_threads: int = 2  # ... on this many ONNX Runtime threads (the target's 2 cores)
    encoder: str = "lite0"  # EfficientNet-Lite variant, ImageNet-pretrained
    decoder: tuple[int, ...] = (96, 64, 48)  # decoder widths at strides 16, 8, 4
    dropout: float = 0.2
    batch_size: int = 16
    epochs: int = 14
    time_budget_s: float = 0.0  # > 0: the schedule follows wall-clock time instead of epochs
    lr: float = 1e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.1
    patience: int = 6  # epochs without a better validation loss before stopping
    evaluate_test: bool = False  # score the test splits (once per shipped version)
    weights: str = ""  # start from this checkpoint (with --epochs 0: export it as is)
    export: bool = True
    dry_run: bool = False


def main(argv: list[str] | None = None) -> dict:
    cfg = common.parse_config(Config(), __doc__.splitlines()[0], argv)
    if cfg.dry_run:
        cfg = dataclasses.replace(
            cfg, size=64, serve_sizes=(64, 96), epochs=min(cfg.epochs, 1), batch_size=4
        )
    common.seed_everything(cfg.seed)
    device = common.pick_device(cfg.device)
    data_root, work_dir = Path(cfg.data_root), Path(cfg.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    size = (cfg.size, cfg.size)
    mean, std = encoder.LITE_MEAN, encoder.LITE_STD

    # data: Kvasir-SEG train + validation, loaded once, resized, kept on the device as uint8
    trainval = data.kvasir_samples(data_root / "kvasir-seg", "trainval")
    if cfg.dry_run:
        trainval = trainval[:12]
    train_ids, val_ids = data.split_train_val([s.id for s in trainval], cfg.val_fraction, cfg.seed)
    by_split = {
        split: [s for s in trainval if s.id in set(ids)]
        for split, ids in (("train", train_ids), ("val", val_ids))
    }
    tensors = {}
    for split, samples in by_split.items():
        images, masks, _ = data.load_resized(samples, size)
        tensors[split] = (
            torch.from_numpy(images).to(device),
            torch.from_numpy(masks).to(device)[:, None].float(),
        )
    print(f"train {len(train_ids)} / val {len(val_ids)} images at {size} on {device}")

    model = LiteUNet(cfg.encoder, cfg.decoder, cfg.dropout)
    model = model.to(device).to(memory_format=torch.channels_last)
    # Continued from a checkpoint: its epochs come first, its command is kept.
    history, train_command, start_epoch, best_epoch = loop.resume(
        model, "segmentation", argv, cfg.weights
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    use_amp = device.type == "cuda"
    steps_per_epoch = 2 if cfg.dry_run else max(1, len(train_ids) // cfg.batch_size)
    schedule = loop.Schedule(cfg.epochs, steps_per_epoch, cfg.lr, cfg.time_budget_s, cfg.patience)
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)

    def batch_loss(images_u8, masks, train: bool) -> torch.Tensor:
        x = images_u8.permute(0, 3, 1, 2).float() / 255.0
        if train:
            theta = augment.random_theta(len(x), device, scale=(0.7, 1.4), rotate_deg=20.0)
            x = augment.color_jitter(augment.warp(x, theta, size))
            masks = (augment.warp(masks, theta, size) >= 0.5).float()
        x = ((x - mean_t) / std_t).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = model(x)
        return dice_bce_loss(logits.float(), masks)

    def train_losses() -> Iterator[torch.Tensor]:
        images, masks = tensors["train"]
        for idx in torch.randperm(len(images), device=device).split(cfg.batch_size):
            yield batch_loss(images[idx], masks[idx], train=True)

    def val_loss() -> float:
        images, masks = tensors["val"]
        return float(
            np.mean(
                [
                    batch_loss(images[i : i + 64], masks[i : i + 64], False).item()
                    for i in range(0, len(images), 64)
                ]
            )
        )

    stopper = loop.fit(
        model,
        optimizer,
        schedule,
        train_losses,
        val_loss,
        desc="segmentation",
        history=history,
        start_epoch=start_epoch,
    )
    best_epoch = loop.keep_best(
        model, stopper, start_epoch, best_epoch, work_dir, cfg, history, train_command
    )
    if not cfg.export:
        return {}
    return export_and_report(cfg, model.cpu().float(), tensors, history, train_command)


if __name__ == "__main__":
    main(sys.argv[1:])
