r"""Per-pixel losses: binary cross-entropy (plain and class-balanced), cross-entropy and focal loss.

All take logits, compute in float32 (float64 for float64 logits) with autocast disabled, and return the
mean over (valid) pixels of the batch as a 0-dim tensor.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from iou_lib.losses.registry import register
from iou_lib.validation import binary_inputs, float_compute, is_multiclass, multiclass_inputs

__all__ = ["bce", "cross_entropy", "focal", "weighted_bce"]


def _scalar_tensor(value: float | Tensor | None, name: str, like: Tensor) -> Tensor | None:
    if value is None:
        return None
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(value.shape)}")
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return torch.tensor(float(value), dtype=like.dtype, device=like.device)


def _class_vector(
    value: float | Sequence[float] | Tensor | None, name: str, n_classes: int, like: Tensor
) -> Tensor | None:
    """``None``, or a ``(C,)`` tensor of non-negative per-class values (a scalar is broadcast)."""
    if value is None:
        return None
    vec = torch.as_tensor(value, dtype=like.dtype, device=like.device).reshape(-1)
    if vec.numel() == 1:
        vec = vec.expand(n_classes)
    if vec.numel() != n_classes:
        raise ValueError(
            f"{name} must be a scalar or have one value per class ({n_classes}), got {vec.numel()} values"
        )
    if not bool((vec >= 0).all()):
        raise ValueError(f"{name} must be >= 0, got {vec.tolist()}")
    return vec


def _valid_mean(values: Tensor, weight: Tensor) -> Tensor:
    """``sum(values) / sum(weight)``, 0 (with zero gradient) when the weight is 0."""
    total = weight.sum()
    return values.sum() / torch.where(total > 0, total, torch.ones_like(total))


@register("bce")
def bce(logits: Tensor, target: Tensor, *, pos_weight: float | Tensor | None = None) -> Tensor:
    r"""Binary cross-entropy with logits, mean over all pixels of the batch.

    .. math:: L = -\frac1N \sum_v \left[w_+\, y_v \log \sigma(z_v) + (1 - y_v) \log(1 - \sigma(z_v))\right]

    ``pos_weight`` (:math:`w_+`, default 1) scales the positive terms, as in
    ``torch.nn.BCEWithLogitsLoss``. Logits ``(B, 1, H, W)`` or ``(B, H, W)``, target in {0, 1}.

    >>> import torch
    >>> round(bce(torch.zeros(1, 4), torch.tensor([[1, 0, 0, 0]])).item(), 4)  # log 2
    0.6931
    """
    z, y = binary_inputs(logits, target)
    with float_compute(z.device):
        weight = _scalar_tensor(pos_weight, "pos_weight", z)
        return F.binary_cross_entropy_with_logits(z, y, pos_weight=weight)


@register("weighted_bce")
def weighted_bce(logits: Tensor, target: Tensor) -> Tensor:
    r"""Class-balanced BCE: :func:`bce` with ``pos_weight`` :math:`= N_- / N_+` counted in the batch.

    With :math:`N_+` foreground and :math:`N_-` background pixels, positives then carry the same total
    weight as negatives. The weight is a constant (no gradient); a batch without foreground uses
    :math:`w_+ = 1` (there are no positive terms to weigh), so it reduces to plain BCE.

    >>> import torch
    >>> z, y = torch.zeros(1, 4), torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    >>> round(weighted_bce(z, y).item(), 4)  # pos_weight 3: (3 + 3) log 2 / 4
    1.0397
    """
    z, y = binary_inputs(logits, target)
    with float_compute(z.device):
        n_pos = y.sum()
        pos_weight = torch.where(n_pos > 0, (y.numel() - n_pos) / n_pos.clamp_min(1), torch.ones_like(n_pos))
        return F.binary_cross_entropy_with_logits(z, y, pos_weight=pos_weight)


@register("cross_entropy")
def cross_entropy(
    logits: Tensor,
    target: Tensor,
    *,
    weight: Sequence[float] | Tensor | None = None,
    ignore_index: int | None = None,
) -> Tensor:
    r"""Multi-class cross-entropy with optional class weights and ignored pixels.

    .. math:: L = \frac{\sum_v w_{y_v} (-\log \mathrm{softmax}(z_v)_{y_v})}{\sum_v w_{y_v}}

    over the non-ignored pixels, as ``torch.nn.functional.cross_entropy``, except that a batch whose
    pixels are all ignored gives 0 (with zero gradient) instead of NaN. Logits ``(B, C, H, W)``, int64
    target ``(B, H, W)``; ``weight`` has one value per class.

    >>> import torch
    >>> round(cross_entropy(torch.zeros(1, 4, 2), torch.tensor([[0, 3]])).item(), 4)  # log 4
    1.3863
    """
    z, labels, valid = multiclass_inputs(logits, target, ignore_index)
    with float_compute(z.device):
        w = _class_vector(weight, "weight", z.shape[1], z)
        per_pixel = F.cross_entropy(z, labels, weight=w, reduction="none")
        pixel_weight = torch.ones_like(per_pixel) if w is None else w[labels]
        if valid is not None:
            pixel_weight = pixel_weight * valid
            per_pixel = per_pixel * valid
        return _valid_mean(per_pixel, pixel_weight)


@register("focal")
def focal(
    logits: Tensor,
    target: Tensor,
    *,
    gamma: float = 2.0,
    alpha: float | Sequence[float] | Tensor | None = None,
    ignore_index: int | None = None,
) -> Tensor:
    r"""Focal loss (Lin et al. 2017), mean over (valid) pixels:
    :math:`L = -\frac1N \sum_v \alpha_{t} (1 - p_t)^\gamma \log p_t`.

    * binary (sigmoid focal): logits ``(B, 1, H, W)`` or ``(B, H, W)``, {0, 1} target; :math:`p_t` is
      :math:`\sigma(z)` on foreground and :math:`1 - \sigma(z)` on background; a scalar ``alpha`` in
      [0, 1] weighs foreground by :math:`\alpha` and background by :math:`1 - \alpha` (as torchvision and
      kornia's ``binary_focal_loss_with_logits``);
    * multi-class (softmax focal): logits ``(B, C, H, W)``, int64 target ``(B, H, W)``, :math:`p_t` the
      softmax probability of the true class; ``alpha`` is one weight per class :math:`\alpha_{y_v}`, or a
      scalar that multiplies every term; ``ignore_index`` drops pixels. (kornia's ``focal_loss`` with a
      scalar :math:`\alpha` weighs class 0 by :math:`1 - \alpha` and the others by :math:`\alpha`: here
      ``alpha=[1 - a, a, ..., a]``; its ``"mean"`` also divides by the number of classes.)

    ``alpha=None`` means no weighting; ``gamma = 0`` gives (weighted) cross-entropy. The mean divides by
    the number of pixels, not by the sum of the weights.

    >>> import torch
    >>> z, y = torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])
    >>> round(focal(z, y, gamma=2.0).item(), 4)  # (1 - 0.5)^2 log 2
    0.1733
    """
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma >= 0:
        raise ValueError(f"gamma must be a float >= 0, got {gamma!r}")
    if isinstance(logits, Tensor) and isinstance(target, Tensor) and is_multiclass(logits, target):
        z, labels, valid = multiclass_inputs(logits, target, ignore_index)
        alpha_vec = _class_vector(alpha, "alpha", z.shape[1], z)
        with float_compute(z.device):
            log_pt = torch.log_softmax(z, dim=1).gather(1, labels.unsqueeze(1)).squeeze(1)
            alpha_t = None if alpha_vec is None else alpha_vec[labels]
            return _focal_mean(log_pt, gamma, alpha_t, None if valid is None else valid.to(z.dtype))
    if ignore_index is not None:
        raise ValueError("ignore_index is supported for multi-class focal loss only")
    z, y = binary_inputs(logits, target)
    alpha_fg = None if alpha is None else _check_unit_alpha(alpha)
    with float_compute(z.device):
        log_pt = -F.binary_cross_entropy_with_logits(z, y, reduction="none")
        alpha_t = None if alpha_fg is None else alpha_fg * y + (1 - alpha_fg) * (1 - y)
        return _focal_mean(log_pt, gamma, alpha_t, None)


def _focal_mean(log_pt: Tensor, gamma: float, alpha_t: Tensor | None, mask: Tensor | None) -> Tensor:
    # 1 - p_t as -expm1(log p_t) (accurate near p_t = 1), kept above 0 so that (1 - p_t)^gamma has a
    # finite gradient at a saturated pixel for 0 < gamma < 1 (the term itself is 0 there: log p_t = 0).
    one_minus_pt = (-torch.expm1(log_pt)).clamp_min(torch.finfo(log_pt.dtype).tiny)
    terms = -one_minus_pt.pow(gamma) * log_pt
    if alpha_t is not None:
        terms = terms * alpha_t
    if mask is None:
        return terms.mean()
    return _valid_mean(terms * mask, mask)


def _check_unit_alpha(alpha: object) -> float:
    if isinstance(alpha, Tensor) and alpha.numel() == 1:
        alpha = float(alpha)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"binary focal alpha must be a float in [0, 1], got {alpha!r}")
    return float(alpha)
