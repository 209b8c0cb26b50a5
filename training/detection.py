"""Train a YOLO-style anchor-free polyp detector on Kvasir-SEG boxes, export it to ONNX, ship it.

    python -m training.detection                          # full training (GPU if present)
    python -m training.detection --dry-run --out-dir /tmp/m      # a smoke run in seconds
    python -m training.detection --weights runs/detection/ckpt.pt --epochs 0   # export only
    python -m training.detection --yolo-root path/to/yolo --no-evaluate-test   # any YOLO folder

The network and its loss are in ``training.detector``, the scoring in ``training.detection_eval``;
this module holds the configuration, the split, the training loop and the export. The exported
graph decodes the grid, so the service only thresholds and runs NMS.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from service.manifest import (
    DetectionDecoding,
    Manifest,
    Preprocessing,
    ServingDefaults,
    TensorSpec,
)
from training import augment, card, common, data, export, from_onnx, soup
from training.detection_eval import evaluate, predict, score, validation_mosaics
from training.detector import STRIDES, Detector, detection_loss


@dataclass(frozen=True)
class Config:
    data_root: str = str(common.DEFAULT_DATA_ROOT)
    yolo_root: str = ""  # train on this YOLO-format folder instead of Kvasir-SEG
    out_dir: str = str(common.MODELS_DIR)
    work_dir: str = "runs/detection"
    name: str = "polyp-detector"
    version: int = 1
    device: str = "auto"
    seed: int = 1337
    size: int = 256
    widths: tuple[int, ...] = (24, 48, 96, 128, 160)  # backbone stages, strides 2..32
    neck: int = 64
    dropout: float = 0.1
    mosaic: float = 0.5  # share of training frames replaced by 2x2 mosaics (YOLO's mosaic)
    copy_paste: float = 0.0  # share of training frames given another frame's polyps (needs masks)
    oversample: int = 1  # times per epoch a frame with several boxes or one under 96x96 px is seen
    normalise_quality: bool = False  # score target IoU / the object's best IoU, not IoU itself
    mask_loss: float = 0.0  # weight of an auxiliary polyp-mask head at stride 8 (needs masks)
    max_boxes: int = 12  # boxes per image after padding (Kvasir has at most 10)
    batch_size: int = 32
    epochs: int = 400
    time_budget_s: float = 0.0
    lr: float = 3e-3
    weight_decay: float = 5e-4
    val_fraction: float = 0.1
    val_fraction_hard: float = 0.0  # of the frames with small or several polyps, also held out
    patience: int = 80
    score_threshold: float = 0.4  # serving default (the lecture system's), also the P/R point
    iou_threshold: float = 0.45
    weights: str = ""  # a checkpoint to continue from, or a shipped model.onnx
    reestimate_bn: bool = False  # BatchNorm statistics from an epoch of training batches (soups)
    export: bool = True
    evaluate_test: bool = True
    dry_run: bool = False


def small_or_several(boxes_xyxy: list[np.ndarray | None]) -> np.ndarray:
    """Which frames hold several boxes or one under COCO's "large" (96x96 px, in the frame's own
    pixels): the training set's rarest frames (Kvasir: 66 of 900) and where the evaluation's
    misses are."""
    hard = np.zeros(len(boxes_xyxy), bool)
    for i, boxes in enumerate(boxes_xyxy):
        if boxes is None or len(boxes) == 0:
            continue
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        hard[i] = len(boxes) > 1 or area.min() < 96**2
    return hard


def repeats_per_frame(boxes_xyxy: list[np.ndarray | None], factor: int) -> np.ndarray:
    """How often each training frame is drawn per epoch: ``factor`` times for a frame that
    ``small_or_several`` picks, once otherwise (LVIS's repeat-factor sampling, per frame)."""
    return np.where(small_or_several(boxes_xyxy), factor, 1).astype(np.int64)


def hold_out_hard(
    train_ids: list[str], val_ids: list[str], boxes: dict[str, np.ndarray | None],
    fraction: float, seed: int,
) -> tuple[list[str], list[str]]:  # fmt: skip
    """Move ``fraction`` of the training frames that ``small_or_several`` picks to validation
    (seeded), keeping the plain split's validation frames: a random 10 % holds too few of them
    (Kvasir: 3 of 90) for a validation figure to see the misses."""
    hard = [i for i, h in zip(train_ids, small_or_several([boxes[i] for i in train_ids]),
                              strict=True) if h]  # fmt: skip
    moved = set(data.split_train_val(hard, fraction, seed)[1]) if fraction > 0 and hard else set()
    return [i for i in train_ids if i not in moved], sorted([*val_ids, *moved])


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
        cfg = dataclasses.replace(cfg, size=64, widths=(8, 8, 16, 16, 16), neck=16,
                                  epochs=min(cfg.epochs, 1), batch_size=4)  # fmt: skip
    common.seed_everything(cfg.seed)
    device = common.pick_device(cfg.device)
    data_root, work_dir = Path(cfg.data_root), Path(cfg.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    size = (cfg.size, cfg.size)
    mean, std = common.IMAGENET_MEAN, common.IMAGENET_STD

    if cfg.yolo_root:
        trainval = data.yolo_samples(Path(cfg.yolo_root))
    else:
        trainval = data.kvasir_samples(data_root / "kvasir-seg", "trainval")
    needs_masks = cfg.copy_paste > 0 or cfg.mask_loss > 0
    if needs_masks and cfg.yolo_root:
        raise SystemExit("--copy-paste and --mask-loss need polyp masks; a YOLO folder has none")
    if cfg.dry_run:
        trainval = trainval[:12]
    train_ids, val_ids = data.split_train_val([s.id for s in trainval], cfg.val_fraction, cfg.seed)
    train_ids, val_ids = hold_out_hard(train_ids, val_ids, {s.id: s.boxes for s in trainval},
                                       cfg.val_fraction_hard, cfg.seed)  # fmt: skip
    tensors = {}
    for split, ids in (("train", set(train_ids)), ("val", set(val_ids))):
        samples = [s for s in trainval if s.id in ids]
        if split == "train":
            repeats = repeats_per_frame([s.boxes for s in samples], cfg.oversample)
            epoch_frames = torch.from_numpy(np.repeat(np.arange(len(samples)), repeats)).to(device)
        with_masks = split == "train" and needs_masks
        images, masks, boxes = data.load_resized(
            [s if with_masks else dataclasses.replace(s, mask_path=None) for s in samples], size
        )
        padded, valid = pad_boxes(boxes, cfg.max_boxes)
        tensors[split] = tuple(torch.from_numpy(a).to(device) for a in (images, padded, valid))
        if masks is not None:
            train_masks = torch.from_numpy(masks).to(device)
    print(f"train {len(train_ids)} / val {len(val_ids)} images at {size} on {device}")
    if cfg.oversample > 1:
        print(f"{int((repeats > 1).sum())} training frames drawn {cfg.oversample}x per epoch")

    model = Detector(cfg.size, cfg.widths, cfg.neck, cfg.dropout).to(device)
    model = model.to(memory_format=torch.channels_last)
    # Continued from a checkpoint: its epochs come first, its command is kept.
    if cfg.weights.endswith(".onnx"):  # a shipped model whose checkpoint is gone
        calibration = augment.normalise(tensors["train"][0][:256].cpu(), mean, std)
        history, train_command, start_epoch, best_epoch = from_onnx.resume(
            model.cpu(), "detection", argv, Path(cfg.weights), calibration
        )
        model = model.to(device)
    else:
        history, train_command, start_epoch, best_epoch = common.resume(
            model, "detection", argv, cfg.weights
        )
    # Training only: not in the checkpoint or the graph, so a run continued from it starts anew.
    mask_head = nn.Conv2d(cfg.neck, 1, 1).to(device) if cfg.mask_loss > 0 else None
    parameters = [*model.parameters(), *(mask_head.parameters() if mask_head else [])]
    optimizer = torch.optim.AdamW(parameters, lr=cfg.lr, weight_decay=cfg.weight_decay)
    use_amp = device.type == "cuda"
    clock = common.TrainClock(cfg.epochs, cfg.time_budget_s)
    stopper = common.EarlyStopping(cfg.patience)
    steps_per_epoch = 2 if cfg.dry_run else max(1, len(epoch_frames) // cfg.batch_size)
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)

    def network_input(images_u8, boxes, valid, train: bool, masks=None):
        """Normalised images, boxes and valid slots; when training, augmented, with the masks
        (if given) carried through the same augmentation as a fourth channel."""
        x = images_u8.permute(0, 3, 1, 2).float() / 255.0
        if train:
            if masks is not None:
                masks = masks[:, None].float()
                x = torch.cat([x, masks], 1)
                if cfg.copy_paste > 0:
                    x, boxes, valid = augment.copy_paste(x, masks, boxes, valid, cfg.copy_paste)
            if cfg.mosaic > 0:
                x, boxes, valid = augment.mosaic(x, boxes, valid, cfg.mosaic)
            theta = augment.random_theta(len(x), device, scale=(0.6, 1.5), translate=0.25)
            x = augment.warp(x, theta, size)
            x, masks = (x[:, :3], x[:, 3:]) if masks is not None else (x, None)
            x = augment.color_jitter(x)
            boxes, valid = augment.warp_boxes(boxes, valid, theta, size, size)
            boxes, valid = augment.compact(boxes, valid)
        x = ((x - mean_t) / std_t).contiguous(memory_format=torch.channels_last)
        return x, boxes, valid, masks

    def training_input(idx: torch.Tensor):
        """The training frames at ``idx``, augmented."""
        images, boxes, valid = tensors["train"]
        masks = train_masks[idx] if needs_masks else None
        return network_input(images[idx], boxes[idx], valid[idx], True, masks)

    def shuffled_epoch() -> torch.Tensor:
        return epoch_frames[torch.randperm(len(epoch_frames), device=device)]

    def batch_loss(x, boxes, valid, masks=None) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            return detection_loss(
                model, x, boxes, valid, normalise_quality=cfg.normalise_quality,
                mask_head=mask_head, masks=masks, mask_weight=cfg.mask_loss,
            )  # fmt: skip

    if cfg.reestimate_bn:  # one epoch of training batches, augmented as training sees them
        chunks = shuffled_epoch().split(cfg.batch_size)
        soup.reestimate_batchnorm(model, (training_input(idx)[0] for idx in chunks))

    bar = tqdm(range(cfg.epochs), desc="detection", disable=cfg.epochs == 0)
    for epoch in bar:
        model.train()
        order = shuffled_epoch()
        losses = []
        for step in range(steps_per_epoch):
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            for group in optimizer.param_groups:
                group["lr"] = common.cosine_lr(
                    cfg.lr, clock.progress(epoch + step / steps_per_epoch)
                )
            loss = batch_loss(*training_input(idx))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            v = tensors["val"]
            val_losses = [
                batch_loss(*network_input(*(t[i : i + 64] for t in v), train=False)).item()
                for i in range(0, len(v[0]), 64)
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
    return export_and_report(cfg, model.cpu().float(), tensors, trainval, val_ids, history,
                             train_command)  # fmt: skip


def export_and_report(cfg, model, tensors, trainval, val_ids, history, train_command) -> dict:
    data_root, work_dir = Path(cfg.data_root), Path(cfg.work_dir)
    mean, std = common.IMAGENET_MEAN, common.IMAGENET_STD
    size = (cfg.size, cfg.size)
    onnx_path = work_dir / "model.onnx"
    export.export_onnx(model, {"images": torch.zeros(1, 3, *size)}, onnx_path, ["boxes", "scores"])
    val_x = augment.normalise(tensors["val"][0][:4].cpu(), mean, std).numpy()
    max_diff = export.parity(onnx_path, model, {"images": val_x})
    latency = export.latency_ms(
        onnx_path, {"images": (1, 3, *size)}, runs=10 if cfg.dry_run else 100
    )
    print(f"ONNX parity max |diff| {max_diff:.2e}; latency {latency:.1f} ms (batch 1, 2 threads)")

    prep = Preprocessing(size=size, resize="stretch", mean=mean, std=std)
    session = export.ort_session(onnx_path)
    splits = {"val": [s for s in trainval if s.id in set(val_ids)]}
    hard = small_or_several([s.boxes for s in splits["val"]])
    if hard.any():  # the part of validation that looks like the test splits' misses
        splits["val_hard"] = [s for s, h in zip(splits["val"], hard, strict=True) if h]
    if cfg.evaluate_test and not cfg.yolo_root:
        splits["kvasir_test_100"] = data.kvasir_samples(data_root / "kvasir-seg", "test")
        splits["clinicdb_test_62"] = data.clinicdb_samples(data_root / "cvc-clinicdb", "test")
    if cfg.dry_run:
        splits = {k: v[:3] for k, v in splits.items()}
    results = {
        split: evaluate(session, prep, samples, cfg.score_threshold, cfg.iou_threshold)
        for split, samples in splits.items()
    }
    mosaics = validation_mosaics(*tensors["val"], cfg.seed)
    mosaic_pairs = [(predict(session, prep, f, cfg.iou_threshold), gt) for f, gt in mosaics]
    results = {"val": results["val"], "val_mosaic": score(mosaic_pairs, cfg.score_threshold),
               **results}  # fmt: skip
    for split, values in results.items():
        print(split, json.dumps(values))
    n_anchors = int(model.centres.shape[0])
    dataset = "YOLO folder " + cfg.yolo_root if cfg.yolo_root else "Kvasir-SEG (Jha et al., 2020)"
    manifest = Manifest(
        task="detection",
        name=cfg.name,
        version=cfg.version,
        description=(
            "Anchor-free single-stage polyp detector for real-time colonoscopy streams (research "
            "and education only). The graph decodes its grid: boxes are xyxy in network-input "
            "pixels of the stretched frame, scores already sigmoided; threshold, NMS and map back."
        ),
        inputs=[TensorSpec(name="images", dtype="float32", shape=[None, 3, *size])],
        outputs=[
            TensorSpec(name="boxes", dtype="float32", shape=[None, n_anchors, 4]),
            TensorSpec(name="scores", dtype="float32", shape=[None, n_anchors, 1]),
        ],
        labels=["polyp"],
        preprocessing=prep,
        detection=DetectionDecoding(),
        defaults=ServingDefaults(
            score_threshold=cfg.score_threshold, iou_threshold=cfg.iou_threshold, max_detections=100
        ),
        provenance=common.provenance(
            dataset=dataset,
            split="train: Kvasir-SEG minus the 100 PraNet test ids "
            f"({cfg.val_fraction:.0%} held out for early stopping"
            + (
                f", and {cfg.val_fraction_hard:.0%} of the rest's frames with small or several "
                "polyps"
                if cfg.val_fraction_hard > 0
                else ""
            )
            + "); test: kvasir_test_100 (official boxes), clinicdb_test_62 (boxes from mask "
            "connected components; never trained on)",
            command=train_command,
        ),
        metrics=results,
    )
    version_dir = export.write_model_dir(Path(cfg.out_dir), onnx_path, manifest)
    model_dir = version_dir.parent
    card.plot_curve(history, model_dir / "training_curve.png", "Detector: QFL + 2 GIoU loss")
    thr = cfg.score_threshold
    card.write_card(
        model_dir / "README.md",
        manifest,
        summary="Real-time polyp detection in colonoscopy frames (one class, `polyp`).",
        intended_use=(
            "Research and teaching demos of computer-aided polyp detection on live colonoscopy "
            "video served by polypserve's stream. Not a medical device; not validated for "
            "clinical use; an aid that never replaces the endoscopist's inspection."
        ),
        data=f"Trained on Kvasir-SEG boxes. {card.KVASIR_TERMS}\n\n{card.CLINICDB_TERMS}",
        anchors={
            "kvasir_test_100/ap50": "ColonSegNet 0.80 (Kvasir-SEG), YOLOv8 ~0.95; target ≥ 0.80",
            f"kvasir_test_100/recall@{thr}": "target ≥ 0.85",
        },
        architecture=(
            f"Plain conv backbone (widths {list(cfg.widths)}, SiLU, BatchNorm, residual blocks), "
            f"top-down pyramid ({cfg.neck} channels), one head per stride {list(STRIDES)}, "
            f"dropout {cfg.dropout}; FCOS-style centre sampling, quality focal loss"
            + (" (target IoU over the object's best IoU)" if cfg.normalise_quality else "")
            + " + GIoU; trained from scratch, flips/scale/translation/colour augmentation"
            + (f", {cfg.mosaic:.0%} of the frames as 2x2 mosaics" if cfg.mosaic > 0 else "")
            + (
                f", {cfg.copy_paste:.0%} given another frame's polyps (copy-paste)"
                if cfg.copy_paste > 0
                else ""
            )
            + (
                f", frames with several boxes or one under 96x96 px drawn {cfg.oversample}x"
                if cfg.oversample > 1
                else ""
            )
            + (
                f", an auxiliary polyp-mask loss at stride 8 (weight {cfg.mask_loss:g}; the "
                "head is dropped at export)"
                if cfg.mask_loss > 0
                else ""
            )
            + f", early stopping on validation loss. Input {size[0]}x{size[1]} stretched; "
            f"{n_anchors} grid points."
        ),
        limits=[
            "Trained from scratch on 810 still images of one data set; video frames with motion "
            "blur, water or instruments are under-represented.",
            "Kvasir-SEG has no polyp-free frames: the false-positive rate on normal mucosa is "
            "not measured by these figures.",
            "Small (under ~20 px at input scale) and flat polyps are the likeliest misses.",
        ],
        extra=export.export_note(max_diff, latency),
    )
    print(f"wrote {version_dir}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
