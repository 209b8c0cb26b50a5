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
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from service.repository.manifest import (
    Manifest,
    Preprocessing,
    SegmentationDecoding,
    ServingDefaults,
    TensorSpec,
)
from training import augment, card, common, data, encoder, export, loop, metrics, ship
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


# --- evaluation (also used by tests/training on the shipped model) -----------------------------


def evaluate(session, prep: Preprocessing, samples: list[data.Sample]) -> dict[str, float]:
    """PraNet protocol through ONNX Runtime: mean per-image Dice and IoU at the original size."""
    input_name = session.get_inputs()[0].name

    def one(sample: data.Sample) -> tuple[float, float]:
        image = data.read_image(sample.image_path)
        x = data.to_input(image, prep.size, prep.mean, prep.std)[None]
        logits = session.run(None, {input_name: x})[0][0, 0]
        h0, w0 = image.shape[:2]
        prob = torch.sigmoid(torch.from_numpy(logits))[None, None]
        prob = F.interpolate(prob, size=(h0, w0), mode="bilinear", align_corners=False)[0, 0]
        return metrics.dice_iou(prob.numpy() >= 0.5, data.read_mask(sample.mask_path))

    scores = np.asarray(data.map_threads(one, samples, workers=2))
    return {"dice": float(scores[:, 0].mean()), "iou": float(scores[:, 1].mean())}


# --- main ---------------------------------------------------------------------------------------


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


def export_and_report(cfg, model, tensors, history, train_command) -> dict:
    data_root, work_dir = Path(cfg.data_root), Path(cfg.work_dir)
    mean, std = encoder.LITE_MEAN, encoder.LITE_STD
    trainval = data.kvasir_samples(data_root / "kvasir-seg", "trainval")
    val_ids = set(data.split_train_val([s.id for s in trainval], cfg.val_fraction, cfg.seed)[1])
    splits = {"kvasir_val": [s for s in trainval if s.id in val_ids]}
    if cfg.evaluate_test:
        splits |= ship.test_splits(data_root)
    if cfg.dry_run:
        splits = {k: v[:3] for k, v in splits.items()}

    def prep_at(size: int) -> Preprocessing:
        return Preprocessing(size=(size, size), resize="stretch", mean=mean, std=std)

    def val_dice(path: Path, size: int) -> float:
        return evaluate(export.ort_session(path), prep_at(size), splits["kvasir_val"])["dice"]

    # the network is fully convolutional: the same weights serve at any multiple of 32
    chosen, trials = ship.choose_input_size(
        lambda size: model,
        cfg.serve_sizes,
        work_dir,
        ["logits"],
        val_dice,
        cfg.max_latency_ms,
        Path(cfg.out_dir) / cfg.name / str(cfg.version),
        cfg.latency_threads,
        runs=10 if cfg.dry_run else 50,
    )
    size, onnx_path = (chosen.size, chosen.size), chosen.onnx_path
    val_x = augment.normalise(tensors["val"][0][:4].cpu(), mean, std)
    val_x = F.interpolate(val_x, size=size, mode="bilinear", align_corners=False).numpy()
    max_diff = export.parity(onnx_path, model, {"images": val_x})
    print(f"ONNX parity max |diff| {max_diff:.2e}; latency {chosen.latency_ms:.1f} ms")

    prep = prep_at(chosen.size)
    tests, recorded = ship.test_record(
        Path(cfg.out_dir), cfg.name, cfg.version, cfg.evaluate_test, onnx_path
    )
    session = export.ort_session(onnx_path)
    results = {split: evaluate(session, prep, samples) for split, samples in splits.items()}
    for split, values in results.items():
        print(split, json.dumps(values))
    checkpoint = encoder.checkpoint(cfg.encoder)
    results = recorded | results
    manifest = Manifest(
        task="segmentation",
        name=cfg.name,
        version=cfg.version,
        description=(
            f"EfficientNet-{cfg.encoder.capitalize()} U-Net polyp segmenter for colonoscopy "
            "frames (research and education only). Sigmoid of `logits` >= 0.5 is polyp; resize "
            "the map back to the frame size."
        ),
        inputs=[TensorSpec(name="images", dtype="float32", shape=[None, 3, *size])],
        outputs=[TensorSpec(name="logits", dtype="float32", shape=[None, 1, *size])],
        labels=["polyp"],
        preprocessing=prep,
        segmentation=SegmentationDecoding(activation="sigmoid", threshold=0.5),
        defaults=ServingDefaults(max_batch_size=8),
        provenance=common.provenance(
            dataset="Kvasir-SEG (Jha et al., MMM 2020)",
            split="train: Kvasir-SEG minus the 100 PraNet test ids (10% of it held out for early "
            "stopping and the input size); test: kvasir_test_100, clinicdb_test_62 (never "
            "trained on)",
            command=ship.command_chain(Path(cfg.out_dir), cfg.name, cfg.version, train_command),
            pretrained=checkpoint.citation(),
            test_evaluations=tests,
        ),
        metrics=results,
    )
    version_dir = export.write_model_dir(Path(cfg.out_dir), onnx_path, manifest)
    card.plot_curve(history, version_dir / "training_curve.png", "Segmenter: Dice + BCE loss")
    card.write_card(
        version_dir.parent / "README.md",
        manifest,
        summary="Binary polyp segmentation of colonoscopy frames: a U-Net decoder on an "
        "ImageNet-pretrained EfficientNet-Lite encoder.",
        intended_use=(
            "Research and teaching demos of polyp segmentation served by polypserve. Not a "
            "medical device; not validated for clinical use; never a substitute for an endoscopist."
        ),
        data=f"Trained on Kvasir-SEG. {card.KVASIR_TERMS}\n\n{card.CLINICDB_TERMS}",
        anchors={
            "kvasir_test_100/dice": "U-Net 0.818, PraNet 0.898, Polyp-PVT 0.917; target ≥ 0.88",
            "clinicdb_test_62/dice": "PraNet 0.899 (trained on ClinicDB); target ≥ 0.80",
            "kvasir_test_100/iou": "U-Net 0.746, PraNet 0.840",
        },
        architecture=(
            f"Encoder: {checkpoint.citation()}; its "
            f"stride 4, 8, 16 and 32 levels feed a U-Net decoder (widths {list(cfg.decoder)}, "
            f"conv-BN-ReLU blocks, dropout {cfg.dropout} on the deepest level), logits "
            "upsampled to the input in the graph. Fine-tuned whole with AdamW "
            f"(lr {cfg.lr:g}, cosine schedule), Dice + BCE loss, flips/scale/rotation/colour "
            f"augmentation at {cfg.size}x{cfg.size}, early stopping on the validation loss. "
            "Frames are stretched to the input square, x/255 normalised with mean and std "
            f"{list(mean)} / {list(std)} (the checkpoint's own)."
        ),
        headline=("kvasir_val", "dice"),
        selection=ship.size_table(trials, "Dice", chosen, cfg.max_latency_ms, cfg.latency_threads),
        tests=ship.test_note(tests, ["kvasir_test_100", "clinicdb_test_62"]),
        extra=export.export_note(max_diff, chosen.latency_ms, cfg.latency_threads),
        limits=[
            "Trained on 810 images of one data set; other endoscopes are measured by the "
            "CVC-ClinicDB row only.",
            "Kvasir-SEG has no polyp-free frames: false positives on normal mucosa are untested.",
            "Images are stretched to a square: very elongated frames lose aspect.",
        ],
    )
    print(f"wrote {version_dir}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
