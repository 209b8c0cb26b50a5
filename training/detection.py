"""Train a YOLO-style anchor-free polyp detector (ImageNet-pretrained EfficientNet-Lite encoder)
on Kvasir-SEG boxes, export it to ONNX and ship it as a new version.

    python -m training.detection                          # full training (GPU if present)
    python -m training.detection --dry-run --out-dir /tmp/m      # a smoke run in seconds
    python -m training.detection --weights runs/detection/ckpt.pt --epochs 0   # export only
    ... --evaluate-test        # score the frozen model on the test splits (once per version)
    python -m training.detection --yolo-root path/to/yolo    # any YOLO folder

The network and its loss are in ``training.detector``, the scoring in ``training.detection_eval``,
the export, manifest and card in ``training.detection_report``; this module holds the
configuration, the split and the training loop. The exported graph decodes the grid, so the
service only thresholds and runs NMS.
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
from training.detection_eval import small_or_several
from training.detection_report import export_and_report
from training.detector import Detector, detection_loss


@dataclass(frozen=True)
class Config:
    data_root: str = str(common.DEFAULT_DATA_ROOT)
    yolo_root: str = ""  # train on this YOLO-format folder instead of Kvasir-SEG
    out_dir: str = str(common.MODELS_DIR)
    work_dir: str = "runs/detection"
    name: str = "polyp-detector"
    version: int = 3
    device: str = "auto"
    seed: int = 1337
    size: int = 320  # training input, square; frames are stretched to it
    serve_sizes: tuple[int, ...] = (192, 224, 256)  # served at the one validation AP picks
    max_latency_ms: float = 20.0  # ... among those within this batch-1 CPU latency
    # ... on one ONNX Runtime thread: the service's default (POLYPSERVE_INTRA_OP_THREADS), which
    # the stream's frame budget (33 ms at 30 fps, decoding and tracking included) has to fit
    latency_threads: int = 1
    encoder: str = "lite0"  # EfficientNet-Lite variant, ImageNet-pretrained
    neck: int = 64
    dropout: float = 0.1
    mosaic: float = 0.5  # share of training frames replaced by 2x2 mosaics (YOLO's mosaic)
    max_boxes: int = 12  # boxes per image after padding (Kvasir has at most 10)
    batch_size: int = 16
    epochs: int = 16
    time_budget_s: float = 0.0
    lr: float = 1e-3
    weight_decay: float = 5e-4
    val_fraction: float = 0.15  # of each stratum: frames with small or several boxes, the rest
    patience: int = 6
    score_threshold: float = 0.4  # serving default (the lecture system's), also the P/R point
    iou_threshold: float = 0.45
    weights: str = ""  # a checkpoint to continue from (with --epochs 0: export it as is)
    export: bool = True
    evaluate_test: bool = False  # score the test splits (once per shipped version)
    # a `python -m tests.perf.smoothing --json` result: its chosen smoothing (on CVC-ClinicDB
    # sequences 1-14) becomes this version's stream defaults
    stream_defaults: str = ""
    dry_run: bool = False


def pad_boxes(boxes: list[np.ndarray], m: int) -> tuple[np.ndarray, np.ndarray]:
    out = np.zeros((len(boxes), m, 4), np.float32)
    valid = np.zeros((len(boxes), m), bool)
    for i, b in enumerate(boxes):
        b = b[:m]
        out[i, : len(b)], valid[i, : len(b)] = b, True
    return out, valid


def main(argv: list[str] | None = None) -> dict:
    cfg = common.parse_config(Config(), __doc__.splitlines()[0], argv)
    if cfg.dry_run:
        cfg = dataclasses.replace(
            cfg, size=64, serve_sizes=(64,), neck=16, epochs=min(cfg.epochs, 1), batch_size=4
        )
    common.seed_everything(cfg.seed)
    device = common.pick_device(cfg.device)
    work_dir = Path(cfg.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    size = (cfg.size, cfg.size)
    mean, std = encoder.LITE_MEAN, encoder.LITE_STD

    if cfg.yolo_root:
        trainval = data.yolo_samples(Path(cfg.yolo_root))
    else:
        trainval = data.kvasir_samples(Path(cfg.data_root) / "kvasir-seg", "trainval")
    if cfg.dry_run:
        trainval = trainval[:12]
    # Stratified, so validation holds its share of the frames where detectors miss (small or
    # several polyps) and can tell candidates apart on them.
    hard = small_or_several([s.boxes for s in trainval])
    train_ids, val_ids = data.split_train_val(
        [s.id for s in trainval], cfg.val_fraction, cfg.seed, strata=list(hard)
    )
    tensors = {}
    for split, ids in (("train", set(train_ids)), ("val", set(val_ids))):
        samples = [dataclasses.replace(s, mask_path=None) for s in trainval if s.id in ids]
        images, _, boxes = data.load_resized(samples, size)
        padded, valid = pad_boxes(boxes, cfg.max_boxes)
        tensors[split] = tuple(torch.from_numpy(a).to(device) for a in (images, padded, valid))
    print(f"train {len(train_ids)} / val {len(val_ids)} images at {size} on {device}")

    model = Detector(cfg.size, cfg.encoder, cfg.neck, cfg.dropout).to(device)
    model = model.to(memory_format=torch.channels_last)
    # Continued from a checkpoint: its epochs come first, its command is kept.
    history, train_command, start_epoch, best_epoch = loop.resume(
        model, "detection", argv, cfg.weights
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    use_amp = device.type == "cuda"
    n_train = len(tensors["train"][0])
    steps_per_epoch = 2 if cfg.dry_run else max(1, n_train // cfg.batch_size)
    schedule = loop.Schedule(
        cfg.epochs, steps_per_epoch, cfg.lr, cfg.time_budget_s, cfg.patience, clip_grad_norm=10.0
    )
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)

    def network_input(images_u8, boxes, valid, train: bool):
        """Normalised images, boxes and valid slots; augmented when training."""
        x = images_u8.permute(0, 3, 1, 2).float() / 255.0
        if train:
            if cfg.mosaic > 0:
                x, boxes, valid = augment.mosaic(x, boxes, valid, cfg.mosaic)
            theta = augment.random_theta(len(x), device, scale=(0.6, 1.5), translate=0.25)
            x = augment.color_jitter(augment.warp(x, theta, size))
            boxes, valid = augment.warp_boxes(boxes, valid, theta, size, size)
            boxes, valid = augment.compact(boxes, valid)
        x = ((x - mean_t) / std_t).contiguous(memory_format=torch.channels_last)
        return x, boxes, valid

    def batch_loss(x, boxes, valid) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            return detection_loss(model, x, boxes, valid)

    def train_losses() -> Iterator[torch.Tensor]:
        for idx in torch.randperm(n_train, device=device).split(cfg.batch_size):
            yield batch_loss(*network_input(*(t[idx] for t in tensors["train"]), train=True))

    def val_loss() -> float:
        v = tensors["val"]
        return float(
            np.mean(
                [
                    batch_loss(*network_input(*(t[i : i + 64] for t in v), False)).item()
                    for i in range(0, len(v[0]), 64)
                ]
            )
        )

    stopper = loop.fit(
        model,
        optimizer,
        schedule,
        train_losses,
        val_loss,
        desc="detection",
        history=history,
        start_epoch=start_epoch,
    )
    best_epoch = loop.keep_best(
        model, stopper, start_epoch, best_epoch, work_dir, cfg, history, train_command
    )
    if not cfg.export:
        return {}
    return export_and_report(
        cfg, model.cpu().float(), tensors, trainval, val_ids, history, train_command
    )


if __name__ == "__main__":
    main(sys.argv[1:])
