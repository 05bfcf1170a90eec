"""Batched transforms of (images, labels) pairs: resizing, binary class views, random flips and crops.

All functions work on whole batches at once (``images (B, C, H, W)``, ``labels (B, H, W)``); random
ones take a ``torch.Generator`` so a training run is reproducible (and resumable) by seed.

>>> import torch
>>> x, y = torch.arange(16.).view(1, 1, 4, 4), torch.arange(16).view(1, 4, 4)
>>> shrink(x, y, 2)[0].flatten().tolist(), shrink(x, y, 2)[1].flatten().tolist()
([2.5, 4.5, 10.5, 12.5], [5, 7, 13, 15])
>>> binary_view(torch.tensor([[0, 3, 11]]), 3, ignore_index=11).tolist()
[[0, 1, 255]]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["BINARY_IGNORE", "augment", "binary_view", "random_crop", "random_flip", "resize", "shrink"]

BINARY_IGNORE = 255
"""Label of ignored pixels in binary views (0 = background, 1 = foreground)."""


def shrink(images: Tensor, labels: Tensor, factor: int) -> tuple[Tensor, Tensor]:
    """Shrink by an integer ``factor``: images by ``factor x factor`` area averaging (float out), labels
    by nearest neighbour (pixel ``(f*i + f//2, f*j + f//2)``, class indices unchanged)."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor must be an int >= 1, got {factor!r}")
    if factor == 1:
        return images.float(), labels
    h, w = (s // factor * factor for s in images.shape[-2:])
    small = F.avg_pool2d(images[..., :h, :w].float(), factor)
    return small, labels[..., factor // 2 : h : factor, factor // 2 : w : factor]


def resize(images: Tensor, labels: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Resize to ``size = (H, W)``: images bilinearly with antialiasing (float out), labels by nearest."""
    out = F.interpolate(images.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    lab = F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].to(labels.dtype)
    return out, lab


def binary_view(labels: Tensor, cls: int, ignore_index: int | None = None) -> Tensor:
    """One class against the rest: 1 where ``labels == cls``, 0 elsewhere, :data:`BINARY_IGNORE` where
    ``labels == ignore_index`` (ignored pixels stay ignored)."""
    out = (labels == cls).to(torch.uint8)
    if ignore_index is not None:
        out = out.masked_fill(labels == ignore_index, BINARY_IGNORE)
    return out


def random_flip(images: Tensor, labels: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Flip each image (and its labels) left-right with probability 1/2."""
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    flip = flip.to(images.device)
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    labels = torch.where(flip[:, None, None], labels.flip(-1), labels)
    return images, labels


def random_crop(
    images: Tensor, labels: Tensor, size: tuple[int, int], generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """An independent random ``size = (h, w)`` window of each image (and its labels)."""
    b, _, height, width = images.shape
    h, w = size
    if not (0 < h <= height and 0 < w <= width):
        raise ValueError(f"crop size must fit in the images ({height}, {width}), got {tuple(size)}")
    oy = torch.randint(height - h + 1, (b,), generator=generator).to(images.device)
    ox = torch.randint(width - w + 1, (b,), generator=generator).to(images.device)
    rows = (oy[:, None] + torch.arange(h, device=images.device))[:, :, None]  # (B, h, 1)
    cols = (ox[:, None] + torch.arange(w, device=images.device))[:, None, :]  # (B, 1, w)
    idx = torch.arange(b, device=images.device)[:, None, None]
    return images.permute(0, 2, 3, 1)[idx, rows, cols].permute(0, 3, 1, 2), labels[idx, rows, cols]


def augment(
    images: Tensor, labels: Tensor, generator: torch.Generator, crop: tuple[int, int] | None = None
) -> tuple[Tensor, Tensor]:
    """Random left-right flip, then a random crop of ``crop = (h, w)`` when given."""
    images, labels = random_flip(images, labels, generator)
    if crop is not None:
        images, labels = random_crop(images, labels, crop, generator)
    return images, labels
