"""Train a small U-Net to segment polyps on Kvasir-SEG, export it to ONNX and ship it.

    python -m training.segmentation                       # full training (GPU if present)
    python -m training.segmentation --dry-run --out-dir /tmp/m   # a smoke run in seconds
    python -m training.segmentation --weights runs/segmentation/ckpt.pt --epochs 0   # export only

Data: Kvasir-SEG minus the 100 PraNet test ids (train + validation, validation held out for
early stopping); tests: Kvasir-100 and CVC-ClinicDB-62 (never trained on), PraNet protocol:
the probability map is resized to the original image size, thresholded at 0.5, and compared with
the ground-truth mask thresholded at 128; Dice and IoU per image, then averaged.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from service.manifest import (
    Manifest,
    Preprocessing,
    SegmentationDecoding,
    ServingDefaults,
    TensorSpec,
)
from training import augment, card, common, data, export, metrics
from training.unet import UNet, dice_bce_loss


@dataclass(frozen=True)
class Config:
    data_root: str = str(common.DEFAULT_DATA_ROOT)
    out_dir: str = str(common.MODELS_DIR)  # models/<name>/<version>/ is written here
    work_dir: str = "runs/segmentation"  # checkpoint, logs, intermediate ONNX
    name: str = "polyp-segmenter"
    version: int = 1
    device: str = "auto"
    seed: int = 1337
    size: int = 256  # network input, square; Kvasir images are stretched to it
    channels: tuple[int, ...] = (24, 48, 96, 128, 160)
    dropout: float = 0.2
    batch_size: int = 32
    epochs: int = 400
    time_budget_s: float = 0.0  # > 0: the schedule follows wall-clock time instead of epochs
    lr: float = 3e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.1
    patience: int = 80  # epochs without a better validation loss before stopping
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
            cfg, size=64, channels=(8, 16, 16), epochs=min(cfg.epochs, 1), batch_size=4
        )
    common.seed_everything(cfg.seed)
    device = common.pick_device(cfg.device)
    data_root, work_dir = Path(cfg.data_root), Path(cfg.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    size = (cfg.size, cfg.size)
    mean, std = common.IMAGENET_MEAN, common.IMAGENET_STD

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

    model = UNet(cfg.channels, cfg.dropout).to(device).to(memory_format=torch.channels_last)
    # Continued from a checkpoint: its epochs come first, its command is kept.
    history, train_command, start_epoch, best_epoch = common.resume(
        model, "segmentation", argv, cfg.weights
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    use_amp = device.type == "cuda"
    clock = common.TrainClock(cfg.epochs, cfg.time_budget_s)
    stopper = common.EarlyStopping(cfg.patience)
    steps_per_epoch = 2 if cfg.dry_run else max(1, len(train_ids) // cfg.batch_size)

    def batch_loss(images_u8, masks, train: bool) -> torch.Tensor:
        x = images_u8.permute(0, 3, 1, 2).float() / 255.0
        if train:
            theta = augment.random_theta(len(x), device, scale=(0.7, 1.4), rotate_deg=20.0)
            x = augment.color_jitter(augment.warp(x, theta, size))
            masks = (augment.warp(masks, theta, size) >= 0.5).float()
        x = (x - torch.tensor(mean, device=device).view(1, 3, 1, 1)) / torch.tensor(
            std, device=device
        ).view(1, 3, 1, 1)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = model(x)
        return dice_bce_loss(logits.float(), masks)

    bar = tqdm(range(cfg.epochs), desc="segmentation", disable=cfg.epochs == 0)
    for epoch in bar:
        model.train()
        images, masks = tensors["train"]
        order = torch.randperm(len(images), device=device)
        losses = []
        for step in range(steps_per_epoch):
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            for group in optimizer.param_groups:
                group["lr"] = common.cosine_lr(
                    cfg.lr, clock.progress(epoch + step / steps_per_epoch)
                )
            loss = batch_loss(images[idx], masks[idx], train=True)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            v_images, v_masks = tensors["val"]
            val_losses = [
                batch_loss(v_images[i : i + 64], v_masks[i : i + 64], train=False).item()
                for i in range(0, len(v_images), 64)
            ]
        val_loss = float(np.mean(val_losses))
        common.end_epoch(history, bar, start_epoch + epoch, losses, val_loss)
        if stopper.update(epoch, val_loss, model) or clock.done(epoch + 1):
            break
    best_epoch = common.keep_best(
        model, stopper, start_epoch, best_epoch, work_dir, cfg, history, train_command
    )
    if not cfg.export:
        return {}
    return export_and_report(cfg, model.cpu().float(), tensors, history, train_command)


def export_and_report(cfg, model, tensors, history, train_command) -> dict:
    data_root, work_dir = Path(cfg.data_root), Path(cfg.work_dir)
    mean, std = common.IMAGENET_MEAN, common.IMAGENET_STD
    size = (cfg.size, cfg.size)
    onnx_path = work_dir / "model.onnx"
    example = torch.zeros(1, 3, *size)
    export.export_onnx(model, {"images": example}, onnx_path, ["logits"])
    val_images = tensors["val"][0][:4].cpu()
    val_x = augment.normalise(val_images, mean, std).numpy()
    max_diff = export.parity(onnx_path, model, {"images": val_x})
    latency = export.latency_ms(
        onnx_path, {"images": (1, 3, *size)}, runs=10 if cfg.dry_run else 50
    )
    print(f"ONNX parity max |diff| {max_diff:.2e}; latency {latency:.1f} ms (batch 1, 2 threads)")

    prep = Preprocessing(size=size, resize="stretch", mean=mean, std=std)
    session = export.ort_session(onnx_path)
    val_samples = [s for s in data.kvasir_samples(data_root / "kvasir-seg", "trainval")]
    val_ids = set(data.split_train_val([s.id for s in val_samples], cfg.val_fraction, cfg.seed)[1])
    splits = {
        "kvasir_val": [s for s in val_samples if s.id in val_ids],
        "kvasir_test_100": data.kvasir_samples(data_root / "kvasir-seg", "test"),
        "clinicdb_test_62": data.clinicdb_samples(data_root / "cvc-clinicdb", "test"),
    }
    if cfg.dry_run:
        splits = {k: v[:3] for k, v in splits.items()}
    results = {split: evaluate(session, prep, samples) for split, samples in splits.items()}
    for split, values in results.items():
        print(split, json.dumps(values))

    manifest = Manifest(
        task="segmentation",
        name=cfg.name,
        version=cfg.version,
        description=(
            "U-Net polyp segmenter for colonoscopy frames (research and education only). "
            "Sigmoid of `logits` >= 0.5 is polyp; resize the map back to the frame size."
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
            "stopping); test: kvasir_test_100, clinicdb_test_62 (never trained on)",
            command=train_command,
        ),
        metrics=results,
    )
    version_dir = export.write_model_dir(Path(cfg.out_dir), onnx_path, manifest)
    model_dir = version_dir.parent
    card.plot_curve(history, model_dir / "training_curve.png", "U-Net, Dice + BCE loss")
    card.write_card(
        model_dir / "README.md",
        manifest,
        summary="Binary polyp segmentation of colonoscopy frames with a compact U-Net.",
        intended_use=(
            "Research and teaching demos of polyp segmentation served by polypserve. Not a "
            "medical device; not validated for clinical use; never a substitute for an endoscopist."
        ),
        data=f"Trained on Kvasir-SEG. {card.KVASIR_TERMS}\n\n{card.CLINICDB_TERMS}",
        anchors={
            "kvasir_test_100/dice": "U-Net 0.818, PraNet 0.898; target ≥ 0.80",
            "clinicdb_test_62/dice": "U-Net 0.823 (trained on ClinicDB), PraNet 0.899",
            "kvasir_test_100/iou": "U-Net 0.746, PraNet 0.840",
        },
        architecture=(
            f"U-Net, encoder widths {list(cfg.channels)}, first block at stride 2, BatchNorm, "
            f"ReLU, dropout {cfg.dropout} at the bottleneck; trained from scratch with AdamW, "
            "cosine schedule, flips/scale/rotation/colour augmentation, early stopping on the "
            f"validation loss. Input {size[0]}x{size[1]}, stretched."
        ),
        extra=export.export_note(max_diff, latency),
        limits=[
            "Trained from scratch on 810 images of one data set; expect lower Dice on other "
            "endoscopes (see the CVC-ClinicDB row).",
            "Kvasir-SEG has no polyp-free frames: false positives on normal mucosa are untested.",
            "Images are stretched to a square: very elongated frames lose aspect.",
        ],
    )
    print(f"wrote {version_dir}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
