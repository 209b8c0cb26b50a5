"""Train a YOLO-style anchor-free polyp detector on Kvasir-SEG boxes, export it to ONNX, ship it.

    python -m training.detection                          # full training (GPU if present)
    python -m training.detection --dry-run --out-dir /tmp/m      # a smoke run in seconds
    python -m training.detection --weights runs/detection/ckpt.pt --epochs 0   # export only
    python -m training.detection --yolo-root path/to/yolo --no-evaluate-test   # any YOLO folder

The net: a plain conv backbone (strides 2..32), a top-down feature pyramid, and one head per level
(strides 8, 16, 32) predicting, for every grid point, a polyp score and the distances to the
box's four sides (FCOS-style). Training assigns the grid points near a box's centre and inside it
as positives (centre sampling, per-level size ranges); the score is trained towards the IoU of its
predicted box (quality focal loss) and the box by GIoU loss. The exported graph decodes the grid:
``boxes`` [N, A, 4] xyxy in input pixels and ``scores`` [N, A, 1] after the sigmoid; the service
thresholds them and runs NMS.
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
import torch.nn.functional as F
from tqdm import tqdm

from service.manifest import (
    DetectionDecoding,
    Manifest,
    Preprocessing,
    ServingDefaults,
    TensorSpec,
)
from training import augment, card, common, data, export, from_onnx, metrics, soup


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


STRIDES = (8, 16, 32)
# Box-size range per level, as the largest distance from a grid point to a box side (pixels).
SIZE_RANGES = ((0.0, 64.0), (32.0, 128.0), (64.0, 1e8))
CENTRE_RADIUS = 2.5  # in strides


# --- model --------------------------------------------------------------------------------------


def conv(c_in: int, c_out: int, k: int = 3, s: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.SiLU(inplace=True),
    )


class Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(c, c, 1), conv(c, c, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Detector(nn.Module):
    def __init__(self, size: int, widths: tuple[int, ...], neck: int, dropout: float) -> None:
        super().__init__()
        w = list(widths)
        stages = [conv(3, w[0], 3, 2)]
        for i in range(1, len(w)):
            stages.append(nn.Sequential(conv(w[i - 1], w[i], 3, 2), Residual(w[i])))
        self.stages = nn.ModuleList(stages)
        self.lateral = nn.ModuleList([conv(c, neck, 1) for c in w[-3:]])
        self.smooth = nn.ModuleList([conv(neck, neck, 3) for _ in STRIDES])
        self.dropout = nn.Dropout2d(dropout)
        self.heads = nn.ModuleList(
            [nn.Sequential(conv(neck, neck, 3), nn.Conv2d(neck, 5, 1)) for _ in STRIDES]
        )
        for head in self.heads:  # start with low scores (prior 1%) so the loss is sane at step 0
            nn.init.constant_(head[-1].bias, 0.0)
            nn.init.constant_(head[-1].bias[:1], -4.6)
        centres, strides = [], []
        for stride in STRIDES:
            n = size // stride
            ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
            centres.append(torch.stack([xs, ys], -1).reshape(-1, 2).float().add(0.5).mul(stride))
            strides.append(torch.full((n * n, 1), float(stride)))
        self.register_buffer("centres", torch.cat(centres), persistent=False)
        self.register_buffer("strides", torch.cat(strides), persistent=False)

    def raw(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score logits [N, A] and side distances in strides (log scale) [N, A, 4]."""
        feats = []
        x = images
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        c3, c4, c5 = (lat(f) for lat, f in zip(self.lateral, feats[-3:], strict=True))
        p5 = c5
        p4 = c4 + F.interpolate(p5, scale_factor=2.0, mode="nearest")
        p3 = c3 + F.interpolate(p4, scale_factor=2.0, mode="nearest")
        outs = []
        for p, smooth, head in zip((p3, p4, p5), self.smooth, self.heads, strict=True):
            out = head(self.dropout(smooth(p)))  # [N, 5, h, w]
            outs.append(out.flatten(2))
        out = torch.cat(outs, 2).transpose(1, 2)  # [N, A, 5]
        return out[..., 0], out[..., 1:]

    def decode(self, reg: torch.Tensor) -> torch.Tensor:
        ltrb = torch.exp(reg.clamp(max=6.0)) * self.strides
        return torch.cat([self.centres - ltrb[..., :2], self.centres + ltrb[..., 2:]], -1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, reg = self.raw(images)
        return self.decode(reg), torch.sigmoid(logits)[..., None]


def giou(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Element-wise IoU and GIoU of boxes [..., 4] xyxy."""
    iw = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    ih = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(min=0)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter + 1e-7
    iou = inter / union
    cw = torch.maximum(a[..., 2], b[..., 2]) - torch.minimum(a[..., 0], b[..., 0])
    ch = torch.maximum(a[..., 3], b[..., 3]) - torch.minimum(a[..., 1], b[..., 1])
    hull = cw * ch + 1e-7
    return iou, iou - (hull - union) / hull


def assign(model: Detector, boxes: torch.Tensor, valid: torch.Tensor):
    """Positives and their box for every grid point: inside the box, within CENTRE_RADIUS strides
    of its centre, and at a level whose size range fits; ties go to the smallest box."""
    px, py = model.centres[:, 0].view(1, -1, 1), model.centres[:, 1].view(1, -1, 1)
    stride = model.strides.view(1, -1, 1)
    x1, y1, x2, y2 = (boxes[..., i].unsqueeze(1) for i in range(4))  # [B, 1, M]
    sides = torch.stack([px - x1, py - y1, x2 - px, y2 - py], -1)  # [B, A, M, 4]
    inside = sides.min(-1).values > 0
    near = ((px - (x1 + x2) / 2).abs() < CENTRE_RADIUS * stride) & (
        (py - (y1 + y2) / 2).abs() < CENTRE_RADIUS * stride
    )
    level = torch.bucketize(model.strides.view(-1), torch.tensor(STRIDES, device=boxes.device))
    ranges = torch.tensor(SIZE_RANGES, device=boxes.device)[level]  # [A, 2]
    lo, hi = ranges[:, 0].view(1, -1, 1), ranges[:, 1].view(1, -1, 1)
    largest = sides.max(-1).values
    ok = inside & near & (largest >= lo) & (largest <= hi) & valid.unsqueeze(1)
    area = ((x2 - x1) * (y2 - y1)).expand_as(ok).masked_fill(~ok, float("inf"))
    owner = area.argmin(-1)  # [B, A]: the box each grid point is assigned to
    positive = ok.any(-1)
    target = torch.gather(boxes, 1, owner.unsqueeze(-1).expand(-1, -1, 4))
    return positive, target, owner


def per_object_normalised(iou: torch.Tensor, positive: torch.Tensor, owner: torch.Tensor):
    """IoU divided by the best IoU among the positives of the same object, so every object's
    best-placed grid point is taught a score of 1 however small (and so hard to fit) it is."""
    iou = torch.where(positive, iou, torch.zeros_like(iou))
    best = torch.zeros(iou.shape[0], int(owner.max()) + 1, device=iou.device, dtype=iou.dtype)
    best = best.scatter_reduce(1, owner, iou, reduce="amax")
    return iou / torch.gather(best, 1, owner).clamp(min=1e-6)


def detection_loss(
    model: Detector, images: torch.Tensor, boxes, valid, normalise_quality: bool = False
) -> torch.Tensor:
    logits, reg = model.raw(images)
    logits, reg = logits.float(), reg.float()
    positive, target, owner = assign(model, boxes, valid)
    pred = model.decode(reg)
    iou, g = giou(pred, target)
    n_pos = positive.sum().clamp(min=1).float()
    iou = iou.detach()
    if normalise_quality:
        iou = per_object_normalised(iou, positive, owner)
    quality = torch.where(positive, iou.clamp(min=0.01), torch.zeros_like(iou))
    prob = torch.sigmoid(logits)
    qfl = F.binary_cross_entropy_with_logits(logits, quality, reduction="none")
    qfl = (qfl * (prob - quality).abs().pow(2)).sum() / n_pos
    box = ((1.0 - g) * positive).sum() / n_pos
    return qfl + 2.0 * box


# --- evaluation (also used by tests/training on the shipped model) -----------------------------


def predict(session, prep: Preprocessing, image: np.ndarray, iou_threshold: float, min_score=1e-3):
    """Boxes (original pixels) and scores after NMS, as the service would return them."""
    x = data.to_input(image, prep.size, prep.mean, prep.std)[None]
    boxes, scores = session.run(None, {session.get_inputs()[0].name: x})
    boxes, scores = boxes[0], scores[0, :, 0]
    keep = scores >= min_score
    boxes, scores = boxes[keep], scores[keep]
    top = np.argsort(-scores)[:300]
    boxes, scores = boxes[top], scores[top]
    kept = metrics.nms(boxes, scores, iou_threshold)[:100]
    h0, w0 = image.shape[:2]
    scale = np.asarray([w0 / prep.size[1], h0 / prep.size[0]] * 2, np.float32)
    return np.clip(boxes[kept] * scale, 0, [w0, h0, w0, h0]), scores[kept]


def evaluate(session, prep, samples, score_threshold: float, iou_threshold: float) -> dict:
    """AP@0.5 (all-point), precision/recall at ``score_threshold``, and that recall per COCO
    object size, against each sample's boxes (Kvasir: the official json; CVC-ClinicDB: connected
    components of the mask)."""

    def one(sample: data.Sample):
        image = data.read_image(sample.image_path)
        gt = (
            sample.boxes
            if sample.boxes is not None
            else data.boxes_from_mask(data.read_mask(sample.mask_path))
        )
        return predict(session, prep, image, iou_threshold), gt

    return score(data.map_threads(one, samples, workers=2), score_threshold)


def score(pairs: list[tuple[tuple[np.ndarray, np.ndarray], np.ndarray]], score_threshold: float):
    """The figures ``evaluate`` reports, from (detections, ground-truth boxes) per image."""
    dets, gts = [p[0] for p in pairs], [p[1] for p in pairs]
    precision, recall = metrics.precision_recall_at(dets, gts, score_threshold)
    by_size = metrics.recall_by_size(dets, gts, score_threshold)
    results = {
        "ap50": metrics.average_precision(dets, gts, 0.5),
        f"precision@{score_threshold}": precision,
        f"recall@{score_threshold}": recall,
    }
    for size, (size_recall, count) in by_size.items():
        results[f"recall@{score_threshold}_{size}"] = size_recall
        results[f"boxes_{size}"] = count
    return results


def validation_mosaics(
    images_u8: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor, seed: int
):
    """Every validation frame [N, H, W, 3] as the top-left tile of a 2x2 mosaic with three others
    (the training augmentation, seeded): a proxy for small polyps, several to a frame, which the
    validation frames themselves rarely show. Returns (frame, boxes) pairs."""
    generator = torch.Generator().manual_seed(seed)
    x = images_u8.cpu().permute(0, 3, 1, 2).float()
    x, boxes, valid = augment.mosaic(x, boxes.cpu(), valid.cpu(), 1.0, generator=generator)
    frames = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [(frame, b[v].numpy()) for frame, b, v in zip(frames, boxes, valid, strict=True)]


# --- main ---------------------------------------------------------------------------------------


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
    if cfg.copy_paste > 0 and cfg.yolo_root:
        raise SystemExit("--copy-paste cuts polyps out by their masks; a YOLO folder has none")
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
        with_masks = split == "train" and cfg.copy_paste > 0
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
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    use_amp = device.type == "cuda"
    clock = common.TrainClock(cfg.epochs, cfg.time_budget_s)
    stopper = common.EarlyStopping(cfg.patience)
    steps_per_epoch = 2 if cfg.dry_run else max(1, len(epoch_frames) // cfg.batch_size)
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)

    def network_input(images_u8, boxes, valid, train: bool, masks=None):
        x = images_u8.permute(0, 3, 1, 2).float() / 255.0
        if train:
            if masks is not None:
                x, boxes, valid = augment.copy_paste(x, masks[:, None], boxes, valid,
                                                     cfg.copy_paste)  # fmt: skip
            if cfg.mosaic > 0:
                x, boxes, valid = augment.mosaic(x, boxes, valid, cfg.mosaic)
            theta = augment.random_theta(len(x), device, scale=(0.6, 1.5), translate=0.25)
            x = augment.color_jitter(augment.warp(x, theta, size))
            boxes, valid = augment.warp_boxes(boxes, valid, theta, size, size)
            boxes, valid = augment.compact(boxes, valid)
        x = ((x - mean_t) / std_t).contiguous(memory_format=torch.channels_last)
        return x, boxes, valid

    def training_input(idx: torch.Tensor):
        """The training frames at ``idx``, augmented."""
        images, boxes, valid = tensors["train"]
        masks = train_masks[idx] if cfg.copy_paste > 0 else None
        return network_input(images[idx], boxes[idx], valid[idx], True, masks)

    def shuffled_epoch() -> torch.Tensor:
        return epoch_frames[torch.randperm(len(epoch_frames), device=device)]

    def batch_loss(x, boxes, valid) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            return detection_loss(model, x, boxes, valid, cfg.normalise_quality)

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
