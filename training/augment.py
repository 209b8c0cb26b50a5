"""Batch augmentation on tensors (GPU or CPU): one random affine warp applied to images, masks
and boxes together, plus photometric jitter. Works on whole batches so the GPU does the work.

Coordinates: ``affine_grid`` maps output to input in normalised units u = 2 x / W - 1 (pixel
edges, ``align_corners=False``); boxes go the other way, input to output, with the inverse map.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def normalise(images_uint8_nhwc: torch.Tensor, mean: tuple, std: tuple) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W], x / 255 then (x - mean) / std (the manifest's)."""
    x = images_uint8_nhwc.permute(0, 3, 1, 2).float() / 255.0
    m = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def random_theta(
    n: int,
    device: torch.device,
    scale: tuple[float, float] = (0.75, 1.33),
    translate: float = 0.15,
    rotate_deg: float = 0.0,
    flip: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Affine matrices [N, 2, 3] (output -> input). ``scale`` > 1 zooms in."""

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, device=device, generator=generator)

    log_lo, log_hi = math.log(scale[0]), math.log(scale[1])
    zoom = torch.exp(uniform(log_lo, log_hi))
    aspect = torch.exp(uniform(-0.1, 0.1))
    sx, sy = zoom * aspect, zoom / aspect
    fx = fy = torch.ones(n, device=device)
    if flip:
        fx = torch.where(torch.rand(n, device=device, generator=generator) < 0.5, -1.0, 1.0)
        fy = torch.where(torch.rand(n, device=device, generator=generator) < 0.5, -1.0, 1.0)
    angle = uniform(-rotate_deg, rotate_deg) * math.pi / 180.0
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 1] = cos * fx / sx, -sin * fy / sy
    theta[:, 1, 0], theta[:, 1, 1] = sin * fx / sx, cos * fy / sy
    theta[:, 0, 2], theta[:, 1, 2] = uniform(-translate, translate), uniform(-translate, translate)
    return theta


def crop_theta(boxes_norm: torch.Tensor) -> torch.Tensor:
    """Matrices that cut boxes given as normalised ``x1, y1, x2, y2`` in [-1, 1] out of a batch."""
    theta = torch.zeros(boxes_norm.shape[0], 2, 3, device=boxes_norm.device)
    theta[:, 0, 0] = (boxes_norm[:, 2] - boxes_norm[:, 0]) / 2
    theta[:, 1, 1] = (boxes_norm[:, 3] - boxes_norm[:, 1]) / 2
    theta[:, 0, 2] = (boxes_norm[:, 2] + boxes_norm[:, 0]) / 2
    theta[:, 1, 2] = (boxes_norm[:, 3] + boxes_norm[:, 1]) / 2
    return theta


def warp(x: torch.Tensor, theta: torch.Tensor, size: tuple[int, int], mode: str = "bilinear"):
    """Sample ``x`` [N, C, H, W] through ``theta`` into [N, C, *size]; outside reads zero."""
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], *size], align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


def warp_boxes(
    boxes: torch.Tensor, valid: torch.Tensor, theta: torch.Tensor, in_size: tuple, out_size: tuple
) -> tuple[torch.Tensor, torch.Tensor]:
    """Map padded boxes [N, M, 4] (xyxy pixels of ``in_size``) through a rotation-free ``theta``.

    Boxes cut by the border are clipped; those keeping under 30 % of their area become invalid.
    """
    h_in, w_in = in_size
    h_out, w_out = out_size
    ux = boxes[..., 0::2] * (2.0 / w_in) - 1.0
    uy = boxes[..., 1::2] * (2.0 / h_in) - 1.0
    ax, tx = theta[:, 0, 0].view(-1, 1, 1), theta[:, 0, 2].view(-1, 1, 1)
    ay, ty = theta[:, 1, 1].view(-1, 1, 1), theta[:, 1, 2].view(-1, 1, 1)
    ox = ((ux - tx) / ax + 1.0) * (w_out / 2.0)
    oy = ((uy - ty) / ay + 1.0) * (h_out / 2.0)
    x1, x2 = ox.min(-1).values, ox.max(-1).values
    y1, y2 = oy.min(-1).values, oy.max(-1).values
    area = (x2 - x1) * (y2 - y1)
    x1, x2 = x1.clamp(0, w_out), x2.clamp(0, w_out)
    y1, y2 = y1.clamp(0, h_out), y2.clamp(0, h_out)
    kept = (x2 - x1) * (y2 - y1)
    out = torch.stack([x1, y1, x2, y2], -1)
    ok = valid & (kept > 0.3 * area.clamp(min=1e-6)) & (x2 - x1 > 2) & (y2 - y1 > 2)
    return out, ok


def mosaic(
    images: torch.Tensor,
    boxes: torch.Tensor,
    valid: torch.Tensor,
    probability: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """YOLO's mosaic: a share ``probability`` of the batch [N, C, H, W] (H and W even) becomes 2x2
    tiles of itself and three other images of the batch at half size, their boxes [N, M, 4] going
    along ([N, 4 M, 4]; the other images' slots stay invalid). Kvasir frames mostly hold one
    large polyp; mosaics show the detector small ones, several to a frame.
    """
    n, _, h, w = images.shape
    m = boxes.shape[1]
    device = images.device
    others = torch.randint(0, n, (n, 3), device=device, generator=generator)
    tiles = torch.cat([torch.arange(n, device=device)[:, None], others], 1)  # [N, 4]
    half = F.interpolate(images, size=(h // 2, w // 2), mode="bilinear", antialias=True)
    t = half[tiles]  # [N, 4, C, H/2, W/2], row-major: top-left, top-right, bottom-left, ...
    grid = torch.cat([torch.cat([t[:, 0], t[:, 1]], -1), torch.cat([t[:, 2], t[:, 3]], -1)], -2)
    offsets = torch.tensor([[0, 0], [w / 2, 0], [0, h / 2], [w / 2, h / 2]], device=device)
    tiled = boxes[tiles] * 0.5 + offsets.repeat(1, 2).view(1, 4, 1, 4)  # [N, 4, M, 4]
    use = torch.rand(n, device=device, generator=generator) < probability
    out_boxes = torch.cat([boxes, boxes.new_zeros(n, 3 * m, 4)], 1)
    out_valid = torch.cat([valid, valid.new_zeros(n, 3 * m)], 1)
    out_boxes = torch.where(use.view(n, 1, 1), tiled.reshape(n, 4 * m, 4), out_boxes)
    out_valid = torch.where(use.view(n, 1), valid[tiles].reshape(n, 4 * m), out_valid)
    return torch.where(use.view(n, 1, 1, 1), grid, images), out_boxes, out_valid


def compact(boxes: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Valid boxes first, in their order, and only as many slots as the fullest image needs:
    mosaic and copy-paste multiply the padded slots, and the loss's cost grows with them."""
    order = torch.sort(valid.to(torch.uint8), dim=1, descending=True, stable=True).indices
    keep = max(int(valid.sum(1).max()), 1)
    order = order[:, :keep]
    return torch.gather(boxes, 1, order[..., None].expand(-1, -1, 4)), torch.gather(valid, 1, order)


def color_jitter(x01: torch.Tensor, strength: float = 0.2, generator=None) -> torch.Tensor:
    """Brightness, contrast, saturation and per-channel gain on images in [0, 1] ([N, 3, H, W])."""
    n = x01.shape[0]

    def uniform(shape: tuple) -> torch.Tensor:
        r = torch.rand(shape, device=x01.device, generator=generator)
        return 1.0 + strength * (2.0 * r - 1.0)

    gray = x01.mean(1, keepdim=True)
    x = gray + (x01 - gray) * uniform((n, 1, 1, 1))  # saturation
    mean = x.mean((1, 2, 3), keepdim=True)
    x = mean + (x - mean) * uniform((n, 1, 1, 1))  # contrast
    x = x * uniform((n, 1, 1, 1)) * uniform((n, 3, 1, 1)) ** 0.5  # brightness, colour cast
    return x.clamp(0.0, 1.0)
