"""The in-memory data set every workbook data source produces: uint8 images and labels in tensors.

Items are ``(image float32 (3, H, W) in [0, 1], target int64 (H, W))``. ``num_classes = 1`` marks a binary
task (target 0/1, or ``ignore_index`` for ignored pixels); ``num_classes = C >= 2`` a C-class task with
class indices ``0..C-1`` (or ``ignore_index``). :meth:`InMemorySegmentation.batch` fetches many items at
once, which is what the trainer uses (no per-item Python work).

>>> import torch
>>> u8 = torch.uint8
>>> ds = InMemorySegmentation(torch.zeros(2, 3, 4, 4, dtype=u8), torch.ones(2, 4, 4, dtype=u8))
>>> x, y = ds.batch(torch.tensor([1, 0]))
>>> tuple(x.shape), x.dtype, tuple(y.shape), y.dtype
((2, 3, 4, 4), torch.float32, (2, 4, 4), torch.int64)
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["InMemorySegmentation"]


class InMemorySegmentation(Dataset):
    """Images ``uint8 (N, 3, H, W)`` and labels ``uint8 (N, H, W)`` held in memory."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        num_classes: int = 1,
        ignore_index: int | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        if (
            images.dim() != 4
            or labels.dim() != 3
            or images.shape[0] != labels.shape[0]
            or images.shape[-2:] != labels.shape[-2:]
        ):
            raise ValueError(
                f"images must be (N, C, H, W) and labels (N, H, W) of the same N, H, W, got "
                f"{tuple(images.shape)} and {tuple(labels.shape)}"
            )
        self.images, self.labels = images, labels
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.class_names = (
            list(class_names)
            if class_names
            else (["foreground"] if num_classes == 1 else [str(c) for c in range(num_classes)])
        )

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.images[i].float() / 255, self.labels[i].long()

    def batch(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        """Items ``indices`` stacked: ``(float32 (B, 3, H, W), int64 (B, H, W))``."""
        return self.images[indices].float() / 255, self.labels[indices].long()

    def foreground_fraction(self) -> float:
        """Share of valid pixels labelled 1 (binary tasks)."""
        lab = self.labels.long()
        n_valid = lab.numel() if self.ignore_index is None else int((lab != self.ignore_index).sum())
        return float((lab == 1).sum()) / max(n_valid, 1)
