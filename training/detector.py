"""The detector network and its training loss.

The ImageNet-pretrained EfficientNet-Lite encoder (strides 4..32), a top-down feature pyramid on
its stride 8, 16 and 32 levels, and one head per level predicting, for every grid point, a polyp
score and the distances to the box's four sides (FCOS-style). Training assigns the grid points
near a box's centre and inside it as positives (centre sampling, per-level size ranges); the score
is trained towards the IoU of its predicted box (quality focal loss) and the box by GIoU loss.
``forward`` decodes the grid, so the exported graph gives ``boxes`` [N, A, 4] xyxy in input
pixels and ``scores`` [N, A, 1] after the sigmoid.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.encoder import LiteEncoder, build_network

STRIDES = (8, 16, 32)
# Box-size range per level, as the largest distance from a grid point to a box side (pixels).
SIZE_RANGES = ((0.0, 64.0), (32.0, 128.0), (64.0, 1e8))
CENTRE_RADIUS = 2.5  # in strides


def conv(c_in: int, c_out: int, k: int = 3, s: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.SiLU(inplace=True),
    )


class Detector(nn.Module):
    def __init__(
        self, size: int, variant: str, neck: int, dropout: float, pretrained: bool = True
    ) -> None:
        super().__init__()
        self.encoder = LiteEncoder(build_network(variant, pretrained))
        self.lateral = nn.ModuleList([conv(c, neck, 1) for c in self.encoder.channels[1:]])
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

    def pyramid(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The top-down pyramid's levels at strides 8, 16 and 32, each [N, neck, h, w]."""
        feats = self.encoder(images)[1:]
        c3, c4, c5 = (lat(f) for lat, f in zip(self.lateral, feats, strict=True))
        p5 = c5
        p4 = c4 + F.interpolate(p5, scale_factor=2.0, mode="nearest")
        p3 = c3 + F.interpolate(p4, scale_factor=2.0, mode="nearest")
        return p3, p4, p5

    def raw(self, levels: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Score logits [N, A] and side distances in strides (log scale) [N, A, 4], from the
        pyramid's levels."""
        outs = []
        for p, smooth, head in zip(levels, self.smooth, self.heads, strict=True):
            out = head(self.dropout(smooth(p)))  # [N, 5, h, w]
            outs.append(out.flatten(2))
        out = torch.cat(outs, 2).transpose(1, 2)  # [N, A, 5]
        return out[..., 0], out[..., 1:]

    def decode(self, reg: torch.Tensor) -> torch.Tensor:
        ltrb = torch.exp(reg.clamp(max=6.0)) * self.strides
        return torch.cat([self.centres - ltrb[..., :2], self.centres + ltrb[..., 2:]], -1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, reg = self.raw(self.pyramid(images))
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


def detection_loss(
    model: Detector, images: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """Quality focal loss (the score learns its box's IoU) + 2 GIoU, over the positives."""
    logits, reg = model.raw(model.pyramid(images))
    logits, reg = logits.float(), reg.float()
    positive, target, _ = assign(model, boxes, valid)
    pred = model.decode(reg)
    iou, g = giou(pred, target)
    n_pos = positive.sum().clamp(min=1).float()
    quality = torch.where(positive, iou.detach().clamp(min=0.01), torch.zeros_like(iou))
    prob = torch.sigmoid(logits)
    qfl = F.binary_cross_entropy_with_logits(logits, quality, reduction="none")
    qfl = (qfl * (prob - quality).abs().pow(2)).sum() / n_pos
    box = ((1.0 - g) * positive).sum() / n_pos
    return qfl + 2.0 * box
