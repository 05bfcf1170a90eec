r"""Training against soft targets: label smoothing, and the two Jaccard losses notebook 05 compares.

With a soft target :math:`y \in [0, 1]` the plain soft Jaccard loss :math:`1 - \sum py / \sum(p + y - py)`
is not minimised at :math:`p = y`; the Jaccard metric loss (:func:`iou_lib.losses.jaccard_metric`) is.
:func:`train_on_smoothed` trains a small U-Net on label-smoothed synthetic masks with either loss and
scores it where it matters, against the *hard* test masks.

>>> import torch
>>> [round(v, 4) for v in smooth_labels(torch.tensor([0.0, 1.0]), 0.2).tolist()]
[0.1, 0.9]
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from iou_lib import losses
from iou_lib.data.synthetic import synthetic_images
from iou_lib.models import build_model

__all__ = ["smooth_labels", "soft_jaccard", "train_on_smoothed"]


def smooth_labels(target: Tensor, eps: float) -> Tensor:
    r"""Label smoothing of a binary mask: :math:`(1 - \varepsilon)\, y + \varepsilon / 2`, so 0 becomes
    :math:`\varepsilon/2` and 1 becomes :math:`1 - \varepsilon/2`."""
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 <= eps < 1:
        raise ValueError(f"eps must be a number in [0, 1), got {eps!r}")
    return (1 - eps) * target.float() + eps / 2


def soft_jaccard(logits: Tensor, target: Tensor) -> Tensor:
    r"""The soft Jaccard loss :math:`1 - \sum p y / \sum (p + y - p y)`, :math:`p = \sigma(z)`, pooled over
    the batch, for targets in [0, 1]. On hard targets it is :func:`iou_lib.losses.soft_iou`; that function
    rejects soft targets on purpose, because with them this formula is not minimised at :math:`p = y`.

    >>> import torch
    >>> round(soft_jaccard(torch.zeros(1, 4), torch.full((1, 4), 0.5)).item(), 4)  # at p = y = 0.5
    0.6667
    """
    if logits.shape != target.shape:
        raise ValueError(
            f"logits and target must have the same shape, got {tuple(logits.shape)} and {tuple(target.shape)}"
        )
    if target.numel() and (target.min() < 0 or target.max() > 1):
        raise ValueError("target values must lie in [0, 1]")
    p = torch.sigmoid(logits)
    y = target.to(p.dtype)
    return 1 - (p * y).sum() / (p + y - p * y).sum()


def train_on_smoothed(
    loss: str,
    *,
    eps: float = 0.2,
    fg_frac: float = 0.1,
    size: int = 32,
    n_train: int = 128,
    n_test: int = 64,
    steps: int = 100,
    batch_size: int = 16,
    width: int = 8,
    depth: int = 2,
    lr: float = 5e-3,
    seed: int = 0,
) -> dict[str, float | str | int]:
    r"""Train a U-Net (Adam, ``steps`` steps) on synthetic masks smoothed by ``eps`` and score it on hard
    test masks.

    ``loss`` is ``"soft_jaccard"`` (:func:`soft_jaccard`) or a registered loss that takes soft targets
    (``"jaccard_metric"``, ``"bce"``). The seed fixes data, initialisation and batch order, so two losses
    trained with one seed form a pair. Returns ``loss``, ``seed``, ``iou`` (dataset IoU of
    :math:`p > 0.5` against the hard test masks), ``p_fg`` / ``p_bg`` (mean test probability on
    foreground / background, whose smoothed targets are :math:`1 - \varepsilon/2` and
    :math:`\varepsilon/2`) and ``target_gap`` (mean :math:`|p - y_\varepsilon|` on the test set: how well the
    smoothed target is met).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    loss_fn = soft_jaccard if loss == "soft_jaccard" else losses.get(loss)
    x, y = synthetic_images(n_train, size, fg_frac, seed=seed)
    x_test, y_test = synthetic_images(n_test, size, fg_frac, seed=seed + 10_000)
    x, x_test = x.float() / 255, x_test.float() / 255
    y_soft = smooth_labels(y[:, None], eps)
    torch.manual_seed(seed)
    model = build_model("unet", width=width, depth=depth)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, n_train, (batch_size,), generator=gen)
        value = loss_fn(model(x[idx]), y_soft[idx])
        opt.zero_grad()
        value.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        p = torch.sigmoid(model(x_test))[:, 0]
    fg = y_test.bool()
    pred = p > 0.5
    union = (pred | fg).sum().item()
    return {
        "loss": loss,
        "seed": seed,
        "iou": (pred & fg).sum().item() / union if union else math.nan,
        "p_fg": p[fg].mean().item(),
        "p_bg": p[~fg].mean().item(),
        "target_gap": (p - smooth_labels(y_test, eps)).abs().mean().item(),
    }
