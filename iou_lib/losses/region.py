"""Aggregation shared by the region losses (soft IoU, soft Dice, Tversky, Jaccard metric loss).

Every region loss is ``1 - ratio`` where the ratio (a soft IoU, Dice or Tversky index) is computed per
**unit** from probabilities ``p`` and a target ``y`` and then averaged over units:

* binary: ``p = sigmoid(logits)``; a unit is an image (``per_image=True``, the mIoU^I the loss targets)
  or the whole batch (``per_image=False``, all pixels pooled: the batch's mIoU^D);
* multi-class: ``p = softmax(logits, dim=1)`` and ``y`` one-hot; a unit is an (image, class) pair or a
  class over the batch, and the loss is the mean over units, i.e. over classes (and images).

**Empty units.** A unit whose target has no foreground (``sum y = 0``) has ``I = 0``, so its plain loss is
``1 - 0/U = 1`` with zero gradient whatever is predicted: false positives on empty images are never
pushed down (and ``U = 0`` gives 0/0). The ``empty`` argument chooses what such a unit contributes:

* ``"fp_rate"`` (default): the soft false-positive rate ``mean(p)`` over the unit's pixels. It is 0 when
  nothing is predicted, 1 when everything is, and its gradient ``dL/dp = 1/N`` per pixel pushes false
  positives down on the same scale as the ``-1/U`` of a non-empty unit (``U <= N``);
* ``"raw"``: the plain formula: loss ``1 - s/(a*sum p + s)`` with smoothing ``s``, i.e. loss 1 and zero
  gradient when ``s = 0`` (as in the paper and MONAI); 0/0 counts as loss 1;
* ``"ignore"``: the unit is left out of the mean (smp's convention, Lovász's ``classes='present'``); a
  batch whose units are all empty gives loss 0 with zero gradient.

With ``ignore_index`` (multi-class index targets), ignored pixels are removed from ``p`` and ``y``; a unit
without any valid pixel is always left out of the mean. Smoothing ``s`` enters every ratio as
``(num + s) / (den + s)``; a ratio with ``den + s = 0`` is 0, never NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, get_args

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from iou_lib.validation import (
    binary_inputs,
    float_compute,
    is_multiclass,
    multiclass_inputs,
    probability_inputs,
)

EmptyRule = Literal["fp_rate", "raw", "ignore"]
#: ``score(p, y, dims, smooth) -> ratio`` with ``p, y`` of shape ``(B, C, N)`` and the ratio summed over
#: ``dims`` with ``keepdim=True``.
ScoreFn = Callable[[Tensor, Tensor, tuple[int, ...], float], Tensor]

__all__ = ["EmptyRule", "ScoreFn", "check_smooth", "region_loss", "safe_ratio", "tversky_index"]


def safe_ratio(num: Tensor, den: Tensor, smooth: float) -> Tensor:
    """``(num + smooth) / (den + smooth)``, and 0 where ``den + smooth == 0`` (finite gradients too).

    >>> import torch
    >>> safe_ratio(torch.tensor([1.0, 0.0]), torch.tensor([4.0, 0.0]), 0.0)
    tensor([0.2500, 0.0000])
    """
    den = den + smooth
    nonzero = den > 0
    return torch.where(nonzero, (num + smooth) / torch.where(nonzero, den, torch.ones_like(den)), 0.0)


def tversky_index(
    inter: Tensor, sum_p: Tensor, sum_y: Tensor, alpha: float, beta: float, smooth: float
) -> Tensor:
    r"""Tversky index :math:`T = I / (I + \alpha\,FP + \beta\,FN)` with :math:`FP = \sum p - I`,
    :math:`FN = \sum y - I`: IoU at :math:`\alpha=\beta=1`, Dice at :math:`\alpha=\beta=1/2`."""
    return safe_ratio(inter, inter + alpha * (sum_p - inter) + beta * (sum_y - inter), smooth)


def check_smooth(smooth: object) -> float:
    """``smooth`` as a float, or ``ValueError`` unless it is a number >= 0."""
    if isinstance(smooth, bool) or not isinstance(smooth, (int, float)) or not smooth >= 0:
        raise ValueError(f"smooth must be a float >= 0, got {smooth!r}")
    return float(smooth)


def _check_options(per_image: object, smooth: object, empty: object) -> None:
    if not isinstance(per_image, bool):
        raise TypeError(f"per_image must be a bool, got {type(per_image).__name__}")
    check_smooth(smooth)
    if empty not in get_args(EmptyRule):
        raise ValueError(f"empty must be one of {get_args(EmptyRule)}, got {empty!r}")


def _probabilities(
    logits: Tensor, target: Tensor, ignore_index: int | None, soft_target: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(p, y, valid)`` of shape ``(B, C, N)`` (``C = 1`` for binary); ``valid`` is ``(B, 1, N)`` or None."""
    is_tensor = isinstance(target, Tensor)  # if not, the validators below say so
    probability_target = (
        soft_target
        and is_tensor
        and target.is_floating_point()
        and target.shape == logits.shape
        and logits.dim() >= 4
        and logits.shape[1] >= 2
    )
    if probability_target:
        if ignore_index is not None:
            raise ValueError("ignore_index applies to index targets only, not to a probability target")
        z, y = probability_inputs(logits, target)
        return torch.softmax(z, dim=1), y, None
    if is_tensor and is_multiclass(logits, target):
        z, labels, valid = multiclass_inputs(logits, target, ignore_index)
        p = torch.softmax(z, dim=1)
        y = torch.zeros_like(p).scatter_(1, labels.unsqueeze(1), 1.0)
        if valid is None:
            return p, y, None
        mask = valid.unsqueeze(1)
        return p * mask, y * mask, mask
    if ignore_index is not None:
        raise ValueError(
            "ignore_index is supported for multi-class logits (B, C, ...) with an index target (B, ...) only"
        )
    z, y = binary_inputs(logits, target, soft=soft_target)
    return torch.sigmoid(z).unsqueeze(1), y.unsqueeze(1), None


def _tversky_terms(
    inter: Tensor,
    sum_p: Tensor,
    sum_y: Tensor,
    n_pixels: int,
    weights: tuple[float, float, float],
    empty: EmptyRule,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Mean Tversky loss over units from their sums, and its derivatives by each unit's ``I`` and ``sum p``.

    With :math:`D = I + \alpha (\sum p - I) + \beta (\sum y - I) + s` and :math:`T = (I + s)/D`:
    :math:`\partial (1 - T)/\partial I = ((1 - \alpha - \beta)(I + s) - D)/D^2` and
    :math:`\partial (1 - T)/\partial \sum p = \alpha (I + s)/D^2` (both 0 where :math:`D = 0`); an empty
    unit under ``"fp_rate"`` scores :math:`\sum p / N` (derivatives 0 and :math:`1/N`).
    """
    alpha, beta, smooth = weights
    num = inter + smooth
    den = inter + alpha * (sum_p - inter) + beta * (sum_y - inter) + smooth
    nonzero = den > 0
    den = torch.where(nonzero, den, torch.ones_like(den))
    loss = 1 - torch.where(nonzero, num / den, 0.0)
    scale = torch.where(nonzero, den.square().reciprocal_(), 0.0)
    d_inter = ((1 - alpha - beta) * num - den).mul_(scale)
    d_sum_p = (alpha * num).mul_(scale)
    is_empty = sum_y == 0
    counted = torch.ones_like(loss)
    if empty == "fp_rate":
        loss = torch.where(is_empty, sum_p / n_pixels, loss)
        d_inter.masked_fill_(is_empty, 0.0)
        d_sum_p.masked_fill_(is_empty, 1 / n_pixels)
    elif empty == "ignore":
        counted.masked_fill_(is_empty, 0.0)
    counted /= counted.sum().clamp_min(1)
    return loss.mul(counted).sum(), d_inter.mul_(counted), d_sum_p.mul_(counted)


class _BinaryTversky(torch.autograd.Function):
    """Binary Tversky loss from logits ``z`` ``(B, N)`` and a target ``y`` (same shape, values in [0, 1]).

    One sigmoid and three row sums forward; the backward is closed form: ``dL/dz = p (1 - p) (a y + c)``
    with per-unit ``a = dL/dI`` and ``c = dL/d sum p``.
    """

    @staticmethod
    def forward(
        ctx: Any, z: Tensor, y: Tensor, per_image: bool, weights: tuple[float, float, float], empty: EmptyRule
    ) -> Tensor:
        p = torch.sigmoid(z)
        inter, sum_p, sum_y = torch.linalg.vecdot(p, y), p.sum(1), y.sum(1)
        n_pixels = z.shape[1]
        if not per_image:
            inter, sum_p, sum_y = (
                inter.sum(0, keepdim=True),
                sum_p.sum(0, keepdim=True),
                sum_y.sum(0, keepdim=True),
            )
            n_pixels *= z.shape[0]
        loss, d_inter, d_sum_p = _tversky_terms(inter, sum_p, sum_y, n_pixels, weights, empty)
        ctx.save_for_backward(p, y, d_inter, d_sum_p)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        p, y, d_inter, d_sum_p = ctx.saved_tensors
        d_p = torch.mul(y, (grad * d_inter)[:, None]).add_((grad * d_sum_p)[:, None])
        # d_p * (1 - p) * p written over d_p: one full-size buffer besides p (peak memory)
        d_z = torch.ops.aten.sigmoid_backward.grad_input(d_p, p, grad_input=d_p)
        return d_z, None, None, None, None


class _MulticlassTversky(torch.autograd.Function):
    """Multi-class Tversky loss from logits ``z`` ``(B, C, N)`` and class indices ``labels`` ``(B, N)``.

    No one-hot: ``I`` and ``sum y`` per (image, class) are scatter-adds of the true-class probability and
    of ones. With ``dL/dp_c = c_c + a_c [y = c]`` (per-unit ``a = dL/dI``, ``c = dL/d sum p``), the
    softmax backward is ``dL/dz_c = p_c (c_c - k) + p_c a_c [y = c]``, ``k = sum_c p_c c_c + p_y a_y``.
    """

    @staticmethod
    def forward(
        ctx: Any,
        z: Tensor,
        labels: Tensor,
        per_image: bool,
        weights: tuple[float, float, float],
        empty: EmptyRule,
    ) -> Tensor:
        n_batch, n_classes, n_pixels = z.shape
        p = torch.softmax(z, dim=1)
        p_true = p.gather(1, labels[:, None]).squeeze(1)
        inter = p.new_zeros(n_batch, n_classes).scatter_add_(1, labels, p_true)
        sum_y = p.new_zeros(n_batch, n_classes).scatter_add_(1, labels, torch.ones_like(p_true))
        sum_p = p.sum(2)
        if not per_image:
            inter, sum_p, sum_y = (
                inter.sum(0, keepdim=True),
                sum_p.sum(0, keepdim=True),
                sum_y.sum(0, keepdim=True),
            )
            n_pixels *= n_batch
        loss, d_inter, d_sum_p = _tversky_terms(inter, sum_p, sum_y, n_pixels, weights, empty)
        ctx.save_for_backward(p, labels, p_true, d_inter, d_sum_p)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        p, labels, p_true, d_inter, d_sum_p = ctx.saved_tensors
        n_batch, n_classes, _ = p.shape
        a = (grad * d_inter).expand(n_batch, n_classes)
        c = (grad * d_sum_p).expand(n_batch, n_classes)
        at_true = a.gather(1, labels).mul_(p_true)  # p_y a_y
        k = torch.bmm(c[:, None, :], p).squeeze(1).add_(at_true)
        d_z = torch.sub(c[:, :, None], k[:, None, :]).mul_(p)
        return d_z.scatter_add_(1, labels[:, None], at_true[:, None]), None, None, None, None


def region_loss(
    logits: Tensor,
    target: Tensor,
    score: ScoreFn,
    *,
    per_image: bool,
    smooth: float,
    empty: EmptyRule,
    ignore_index: int | None = None,
    soft_target: bool = False,
    tversky: tuple[float, float] | None = None,
) -> Tensor:
    """Mean over units of ``1 - score`` with the empty-unit rule described in the module docstring.

    ``score`` maps ``(p, y, dims, smooth)`` to the per-unit ratio. ``tversky = (alpha, beta)`` declares
    that ``score`` is the Tversky index with these weights (a function of ``I``, ``sum p`` and ``sum y``
    only): binary inputs and multi-class index targets without ``ignore_index`` then take a fused path
    with a closed-form backward (same value and gradient, about 3x less time). Returns a 0-dim tensor in
    float32 (float64 for float64 logits), computed with autocast disabled.
    """
    _check_options(per_image, smooth, empty)
    if not isinstance(logits, Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if tversky is not None and isinstance(target, Tensor) and not soft_target:
        weights = (*tversky, float(smooth))
        if is_multiclass(logits, target):
            if ignore_index is None:
                z, labels, _ = multiclass_inputs(logits, target)
                with float_compute(z.device):
                    return _MulticlassTversky.apply(z, labels, per_image, weights, empty)
        elif ignore_index is None:
            z, y = binary_inputs(logits, target)
            with float_compute(z.device):
                return _BinaryTversky.apply(z, y, per_image, weights, empty)
    with float_compute(logits.device):
        p, y, valid = _probabilities(logits, target, ignore_index, soft_target)
        dims = (2,) if per_image else (0, 2)
        loss = 1.0 - score(p, y, dims, float(smooth))
        is_empty = y.sum(dims, keepdim=True) == 0
        if valid is None:
            n_pixels = torch.full_like(loss, p.shape[2] * (1 if per_image else p.shape[0]))
        else:
            n_pixels = valid.sum(dims, keepdim=True).expand_as(loss).to(p.dtype)
        counted = n_pixels > 0
        if empty == "fp_rate":
            loss = torch.where(is_empty, p.sum(dims, keepdim=True) / n_pixels.clamp_min(1), loss)
        elif empty == "ignore":
            counted &= ~is_empty
        weight = counted.to(loss.dtype)
        return (loss * weight).sum() / weight.sum().clamp_min(1)
