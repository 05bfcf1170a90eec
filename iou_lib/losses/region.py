"""Aggregation shared by the region losses (soft IoU, soft Dice, Tversky, Jaccard metric loss).

Every region loss is ``1 - ratio`` where the ratio (a soft IoU, Dice or Tversky index) is computed per
**unit** from probabilities ``p`` and a target ``y`` and then reduced over units. The task (``mode``)
says what ``p`` is and what a unit is:

* ``"binary"``: one foreground channel, ``p = sigmoid(logits)``; a unit is an image (``per_image=True``,
  the mIoU^I the loss targets) or the whole batch (``per_image=False``, all pixels pooled: the batch's
  mIoU^D);
* ``"multiclass"``: ``p = softmax(logits, dim=1)`` and ``y`` one-hot (an index target, or a one-hot
  target of the logits' shape: both give the same value); a unit is an (image, class) pair, or a class
  over the batch;
* ``"multilabel"``: ``p = sigmoid(logits)`` per channel, ``y`` of the logits' shape; a unit is an
  (image, channel) pair, or a channel over the batch.

``reduction="mean"`` (default) averages the counted units, ``"sum"`` adds them, ``"none"`` returns them:
``(B,)`` (binary) or ``(B, C)`` per image, ``(1,)`` or ``(C,)`` pooled, with NaN for the units left out
(so ``none.nanmean()`` is the mean). ``classes`` (multiclass and multilabel) selects the classes
counted: ``"all"`` (default), ``"present"`` (those with a foreground pixel in the unit) or a list.

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
without any valid pixel is always left out. Smoothing ``s`` enters every ratio as
``(num + s) / (den + s)``; a ratio with ``den + s = 0`` is 0, never NaN. The soft IoU and its gradient are
derived in notebook 02 (sections 1 and 3), the empty-unit problem in its section 5.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, get_args

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from iou_lib.validation import (
    REDUCTIONS,
    Reduction,
    binary_inputs,
    call_checks,
    check_binary_values,
    check_choice,
    check_classes,
    check_flag,
    check_ignore_index,
    check_real,
    class_mask,
    float_compute,
    index_target,
    multiclass_inputs,
    multilabel_inputs,
    probability_inputs,
    resolve_mode,
)

EmptyRule = Literal["fp_rate", "raw", "ignore"]
#: ``score(p, y, dims, smooth) -> ratio`` with ``p, y`` of shape ``(B, C, N)`` and the ratio summed over
#: ``dims`` with ``keepdim=True``.
ScoreFn = Callable[[Tensor, Tensor, tuple[int, ...], float], Tensor]
REGION_MODES = ("binary", "multiclass", "multilabel")

__all__ = [
    "EmptyRule",
    "ScoreFn",
    "check_region_options",
    "check_smooth",
    "reduce_units",
    "region_loss",
    "safe_ratio",
    "tversky_index",
]


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
    """``smooth`` as a float, or ``ValueError`` unless it is a finite number >= 0."""
    return check_real(smooth, "smooth", low=0.0)


def check_region_options(
    per_image: object, smooth: object, empty: object, classes: object, reduction: object
) -> None:
    """The options every region loss shares (also checked by the loss modules at construction)."""
    check_flag(per_image, "per_image")
    check_smooth(smooth)
    check_choice(empty, "empty", get_args(EmptyRule))
    check_classes(classes)
    check_choice(reduction, "reduction", REDUCTIONS)


def reduce_units(loss: Tensor, counted: Tensor | None, reduction: Reduction) -> Tensor:
    """Reduce per-unit losses: the mean or sum over the ``counted`` units (all when ``None``; a mean over
    no unit is 0 with zero gradient), or the units themselves with NaN where not counted."""
    if counted is None:
        return loss if reduction == "none" else loss.mean() if reduction == "mean" else loss.sum()
    if reduction == "none":
        return torch.where(counted, loss, math.nan)
    total = torch.where(counted, loss, 0.0).sum()
    return total / counted.sum().clamp_min(1) if reduction == "mean" else total


def _tversky_terms(
    inter: Tensor,
    sum_p: Tensor,
    sum_y: Tensor,
    n_pixels: int,
    weights: tuple[float, float, float],
    empty: EmptyRule,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Per-unit Tversky losses from their sums, and their derivatives by each unit's ``I`` and ``sum p``.

    With :math:`D = I + \alpha (\sum p - I) + \beta (\sum y - I) + s` and :math:`T = (I + s)/D`:
    :math:`\partial (1 - T)/\partial I = ((1 - \alpha - \beta)(I + s) - D)/D^2` and
    :math:`\partial (1 - T)/\partial \sum p = \alpha (I + s)/D^2` (both 0 where :math:`D = 0`); an empty
    unit under ``"fp_rate"`` scores :math:`\sum p / N` (derivatives 0 and :math:`1/N`).
    """
    alpha, beta, smooth = weights
    # few small operations: on small images their count, not the data, sets the time
    num = inter + smooth
    den = torch.add(num, sum_p, alpha=alpha).add_(sum_y, alpha=beta).sub_(inter, alpha=alpha + beta)
    inv = torch.where(den > 0, den.reciprocal(), 0.0)  # 1/D, and 0 where D = 0
    loss = torch.rsub(torch.mul(num, inv), 1)
    neg_scale = inv.square_().neg_()  # -1/D^2
    d_inter = torch.add(den, num, alpha=alpha + beta - 1).mul_(neg_scale)
    d_sum_p = torch.mul(num, neg_scale).mul_(-alpha)
    if empty == "fp_rate":
        is_empty = sum_y == 0
        loss = torch.where(is_empty, sum_p / n_pixels, loss)
        d_inter.masked_fill_(is_empty, 0.0)
        d_sum_p.masked_fill_(is_empty, 1 / n_pixels)
    return loss, d_inter, d_sum_p


def _pool(per_image: bool, *sums: Tensor) -> tuple[Tensor, ...]:
    return sums if per_image else tuple(s.sum(0, keepdim=True) for s in sums)


class _SigmoidTversky(torch.autograd.Function):
    """Per-unit Tversky losses ``(B or 1, C)`` of sigmoid probabilities: logits ``z`` ``(B, C, N)`` and a
    target ``y`` (same shape, values in [0, 1]); binary is ``C = 1``. Also returns ``sum p`` and ``sum y``
    per unit (for the empty-unit rule and the value checks).

    One sigmoid and three row sums forward; the backward is closed form: ``dL/dz = p (1 - p) (a y + c)``
    with per-unit ``a = dL/dI`` and ``c = dL/d sum p``.
    """

    @staticmethod
    def forward(
        ctx: Any, z: Tensor, y: Tensor, per_image: bool, weights: tuple[float, float, float], empty: EmptyRule
    ) -> tuple[Tensor, Tensor, Tensor]:
        p = torch.sigmoid(z)
        if per_image or z.shape[1] > 1:
            # einsum runs a batched BLAS dot; vecdot would write the full-size product p * y first
            inter, sum_p, sum_y = _pool(per_image, torch.einsum("bcn,bcn->bc", p, y), p.sum(2), y.sum(2))
        else:  # one unit, the whole batch: a BLAS dot, without vecdot's full-size product
            p_flat, y_flat = p.reshape(-1), y.reshape(-1)
            inter, sum_p, sum_y = (t.view(1, 1) for t in (torch.dot(p_flat, y_flat), p.sum(), y.sum()))
        n_pixels = z.shape[2] * (1 if per_image else z.shape[0])
        loss, d_inter, d_sum_p = _tversky_terms(inter, sum_p, sum_y, n_pixels, weights, empty)
        ctx.save_for_backward(p, y, d_inter, d_sum_p)
        ctx.mark_non_differentiable(sum_p, sum_y)
        return loss, sum_p, sum_y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor, *_: Tensor) -> tuple[Tensor | None, ...]:
        p, y, d_inter, d_sum_p = ctx.saved_tensors
        # c + a y: a broadcast multiply, then an in-place add (about 2x faster on CPU than one addcmul, whose
        # broadcast of the per-unit c misses the vectorised path)
        d_p = torch.mul(y, (grad * d_inter)[..., None]).add_((grad * d_sum_p)[..., None])
        # d_p * (1 - p) * p written over d_p: one full-size buffer besides p (peak memory)
        d_z = torch.ops.aten.sigmoid_backward.grad_input(d_p, p, grad_input=d_p)
        return d_z, None, None, None, None


class _SoftmaxTversky(torch.autograd.Function):
    """Per-unit multi-class Tversky losses ``(B or 1, C)`` from logits ``z`` ``(B, C, N)`` and class
    indices ``labels`` ``(B, N)``. Also returns ``sum p`` and ``sum y`` per unit.

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
    ) -> tuple[Tensor, Tensor, Tensor]:
        n_batch, n_classes, n_pixels = z.shape
        p = torch.softmax(z, dim=1)
        p_true = p.gather(1, labels[:, None]).squeeze(1)
        inter = p.new_zeros(n_batch, n_classes).scatter_add_(1, labels, p_true)
        sum_y = p.new_zeros(n_batch, n_classes).scatter_add_(1, labels, torch.ones_like(p_true))
        inter, sum_p, sum_y = _pool(per_image, inter, p.sum(2), sum_y)
        n_pixels *= 1 if per_image else n_batch
        loss, d_inter, d_sum_p = _tversky_terms(inter, sum_p, sum_y, n_pixels, weights, empty)
        ctx.save_for_backward(p, labels, p_true, d_inter, d_sum_p)
        ctx.mark_non_differentiable(sum_p, sum_y)
        return loss, sum_p, sum_y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor, *_: Tensor) -> tuple[Tensor | None, ...]:
        p, labels, p_true, d_inter, d_sum_p = ctx.saved_tensors
        n_batch, n_classes, _ = p.shape
        a = (grad * d_inter).expand(n_batch, n_classes)
        c = (grad * d_sum_p).expand(n_batch, n_classes)
        at_true = a.gather(1, labels).mul_(p_true)  # p_y a_y
        k = torch.bmm(c[:, None, :], p).squeeze(1).add_(at_true)
        d_z = torch.sub(c[:, :, None], k[:, None, :]).mul_(p)
        return d_z.scatter_add_(1, labels[:, None], at_true[:, None]), None, None, None, None


def _validated(
    logits: Tensor, target: Tensor, mode: str, ignore_index: int | None, soft_target: bool, deferred: bool
) -> tuple[Tensor, Tensor, Tensor | None, bool]:
    """``(z, y, valid, index)``: logits ``(B, C, N)``; ``y`` class indices ``(B, N)`` when ``index``,
    else probabilities-to-match ``(B, C, N)``; ``valid`` ``(B, N)`` or None. ``deferred``: a sigmoid
    task's value checks are left to :func:`~iou_lib.validation.check_binary_values` on the loss's sums."""
    if mode == "multiclass":
        probabilities = (
            isinstance(target, Tensor) and target.is_floating_point() and target.shape == logits.shape
        )
        if soft_target and probabilities and logits.dim() >= 3:
            if ignore_index is not None:
                raise ValueError("ignore_index applies to index targets only, not to a probability target")
            z, y = probability_inputs(logits, target)
            return z, y, None, False
        z, labels, valid = multiclass_inputs(logits, index_target(logits, target, ignore_index), ignore_index)
        return z, labels, valid, True
    if ignore_index is not None:
        raise ValueError(
            "ignore_index is supported for mode='multiclass' with an index target (B, ...) only; "
            f"got mode={mode!r}"
        )
    if mode == "multilabel":
        z, y = multilabel_inputs(logits, target, soft=soft_target, deferred=deferred)
        return z, y, None, False
    z, y = binary_inputs(logits, target, soft=soft_target, deferred=deferred)
    return z[:, None], y[:, None], None, False


def _general_units(
    z: Tensor,
    y: Tensor,
    valid: Tensor | None,
    index: bool,
    mode: str,
    score: ScoreFn,
    per_image: bool,
    smooth: float,
    empty: EmptyRule,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-unit losses ``(U, C)``, ``sum y`` and valid-pixel counts through ``score`` (plain autograd)."""
    p = torch.softmax(z, dim=1) if mode == "multiclass" else torch.sigmoid(z)
    if index:
        y = torch.zeros_like(p).scatter_(1, y.unsqueeze(1), 1.0)
    dims = (2,) if per_image else (0, 2)
    if valid is None:
        n_pixels = torch.full_like(p[: p.shape[0] if per_image else 1, :, :1], p[0, 0].numel())
        n_pixels *= 1 if per_image else p.shape[0]
    else:
        mask = valid.unsqueeze(1).to(p.dtype)
        p, y = p * mask, y * mask
        n_pixels = mask.sum(dims, keepdim=True).expand(-1, p.shape[1], -1)
    loss = 1.0 - score(p, y, dims, smooth)
    sum_y = y.sum(dims, keepdim=True)
    if empty == "fp_rate":
        loss = torch.where(sum_y == 0, p.sum(dims, keepdim=True) / n_pixels.clamp_min(1), loss)
    return loss.squeeze(2), sum_y.squeeze(2), n_pixels.squeeze(2)


def region_loss(
    logits: Tensor,
    target: Tensor,
    score: ScoreFn,
    *,
    mode: str | None,
    per_image: bool,
    smooth: float,
    empty: EmptyRule,
    ignore_index: int | None,
    classes: str | Sequence[int],
    reduction: Reduction,
    validate_args: bool | None,
    soft_target: bool = False,
    tversky: tuple[float, float] | None = None,
) -> Tensor:
    """Reduction over units of ``1 - score`` with the empty-unit rule described in the module docstring.

    ``score`` maps ``(p, y, dims, smooth)`` to the per-unit ratio. ``tversky = (alpha, beta)`` declares
    that ``score`` is the Tversky index with these weights (a function of ``I``, ``sum p`` and ``sum y``
    only): hard binary and multi-label targets, and multi-class index targets without ``ignore_index``,
    then take a fused path with a closed-form backward (same value and gradient, about 3x less time).
    Returns float32 (float64 for float64 logits), computed with autocast disabled.
    """
    check_region_options(per_image, smooth, empty, classes, reduction)
    ignore_index = check_ignore_index(ignore_index)
    if not isinstance(logits, Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    fused = tversky is not None and ignore_index is None
    with call_checks(validate_args):
        mode = resolve_mode(logits, target, mode, REGION_MODES)
        if mode == "binary" and classes not in ("all", "present"):
            raise ValueError(f"classes selects channels in multiclass or multilabel mode; got {classes!r}")
        z, y, valid, index = _validated(logits, target, mode, ignore_index, soft_target, deferred=fused)
        smooth = float(smooth)
        with float_compute(z.device):
            if fused:
                loss, sum_p, sum_y = (_SoftmaxTversky if index else _SigmoidTversky).apply(
                    z, y, per_image, (*tversky, smooth), empty
                )
                if not index:  # the checks the sigmoid path deferred to its sums
                    check_binary_values(logits, target, sums=(sum_p, sum_y))
                n_pixels = None
            else:
                units = _general_units(z, y, valid, index, mode, score, per_image, smooth, empty)
                loss, sum_y, n_pixels = units
            counted = None if n_pixels is None else n_pixels > 0
            if empty == "ignore" or classes == "present":
                counted = (sum_y > 0) if counted is None else counted & (sum_y > 0)
            if classes not in ("all", "present"):
                selected = class_mask(classes, z.shape[1], z.device)[None, :]
                counted = selected.expand_as(loss) if counted is None else counted & selected
            out = reduce_units(loss, counted, reduction)
    if reduction != "none":
        return out
    return out[:, 0] if mode == "binary" else out if per_image else out[0]  # (B,), (1,), (B, C), (C,)
