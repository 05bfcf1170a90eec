"""Small random (logits, target) pairs shared by the loss and metric tests."""

from __future__ import annotations

import torch
from hypothesis import strategies as st
from torch import Tensor


def binary_case(
    seed: int, b: int = 3, h: int = 4, w: int = 5, dtype: torch.dtype = torch.float64, scale: float = 2.0
) -> tuple[Tensor, Tensor]:
    """Logits ``(b, 1, h, w)`` and a float {0, 1} target with at least one foreground pixel per image."""
    gen = torch.Generator().manual_seed(seed)
    logits = (scale * torch.randn(b, 1, h, w, generator=gen)).to(dtype)
    target = (torch.rand(b, 1, h, w, generator=gen) < 0.4).to(dtype)
    target[:, 0, 0, 0] = 1
    return logits, target


def multiclass_case(
    seed: int, b: int = 2, c: int = 3, h: int = 4, w: int = 5, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor]:
    """Logits ``(b, c, h, w)`` and an int64 target ``(b, h, w)``."""
    gen = torch.Generator().manual_seed(seed)
    logits = (2.0 * torch.randn(b, c, h, w, generator=gen)).to(dtype)
    target = torch.randint(0, c, (b, h, w), generator=gen)
    return logits, target


seeds = st.integers(min_value=0, max_value=2**31 - 1)
small_dims = st.integers(min_value=1, max_value=5)
