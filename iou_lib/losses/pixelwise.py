r"""Per-pixel losses: binary cross-entropy (plain and class-balanced), cross-entropy and focal loss.

All take logits and compute in float32 (float64 for float64 logits) with autocast disabled. The unit of
a per-pixel loss is a pixel (a (pixel, channel) element in ``mode="multilabel"``): ``reduction="mean"``
(default) is the mean over the valid pixels of the batch, ``"sum"`` their sum, and ``"none"`` returns the
per-pixel losses in the target's shape ((B, H, W) for binary and multi-class, (B, C, H, W) for
multi-label), NaN at ignored pixels, so ``none.nanmean()`` is the mean (for a class-weighted
cross-entropy the mean divides by the summed weights instead, as in torch). What these losses send to
each pixel, against the region losses, is drawn in notebook 03, section 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from iou_lib.losses.registry import register
from iou_lib.validation import (
    REDUCTIONS,
    Mode,
    Reduction,
    binary_inputs,
    call_checks,
    check_choice,
    check_class_values,
    check_ignore_index,
    check_real,
    float_compute,
    index_target,
    multiclass_inputs,
    multilabel_inputs,
    resolve_mode,
)

__all__ = ["bce", "cross_entropy", "focal", "weighted_bce"]

_SIGMOID_MODES = ("binary", "multilabel")


def _check_pos_weight(value: object) -> float | None:
    return None if value is None else check_real(value, "pos_weight", low_open=True)


def _check_class_weights(value: object, name: str) -> None:
    """Construction-time form of a per-class vector (its length is checked against C at call time)."""
    if value is not None:
        vec = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
        check_class_values(vec, name, vec.numel(), vec)


def _check_focal_alpha(value: object) -> None:
    """A scalar >= 0 (binary focal also needs <= 1, checked at call time) or per-class weights."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        check_real(value, "alpha")
    else:
        _check_class_weights(value, "alpha")


def _sigmoid_inputs(logits: Tensor, target: Tensor, mode: object) -> tuple[Tensor, Tensor, torch.Size]:
    """Validated ``(z, y)`` for a sigmoid loss, flat, and the shape per-pixel losses are returned in."""
    mode = resolve_mode(logits, target, mode, _SIGMOID_MODES)
    if mode == "multilabel":
        z, y = multilabel_inputs(logits, target)
        return z, y, target.shape
    z, y = binary_inputs(logits, target)
    return z, y, (logits.squeeze(1) if logits.dim() == target.dim() + 1 else logits).shape


def _reduce_pixels(
    terms: Tensor, reduction: Reduction, shape: torch.Size, mask: Tensor | None = None
) -> Tensor:
    """``terms`` reduced over the valid pixels (``mask``, 0/1 in the terms' dtype; all when None)."""
    if reduction == "none":
        return terms.reshape(shape) if mask is None else torch.where(mask > 0, terms, math.nan).reshape(shape)
    if mask is not None:
        terms = terms * mask
    if reduction == "sum":
        return terms.sum()
    return terms.mean() if mask is None else _valid_mean(terms, mask)


def _valid_mean(values: Tensor, weight: Tensor) -> Tensor:
    """``sum(values) / sum(weight)``, 0 (with zero gradient) when the weight is 0."""
    total = weight.sum()
    return values.sum() / torch.where(total > 0, total, torch.ones_like(total))


@register("bce", modes=_SIGMOID_MODES, checks={"pos_weight": _check_pos_weight})
def bce(
    logits: Tensor,
    target: Tensor,
    *,
    mode: Mode | None = None,
    pos_weight: float | Tensor | None = None,
    reduction: Reduction = "mean",
    validate_args: bool | None = None,
) -> Tensor:
    r"""Binary cross-entropy with logits, mean over all pixels of the batch.

    .. math:: L = -\frac1N \sum_v \left[w_+\, y_v \log \sigma(z_v) + (1 - y_v) \log(1 - \sigma(z_v))\right]

    ``pos_weight`` (:math:`w_+`, default 1) scales the positive terms, as in
    ``torch.nn.BCEWithLogitsLoss``. ``mode="binary"``: logits ``(B, 1, H, W)`` or ``(B, H, W)``, target
    in {0, 1}; ``"multilabel"``: logits and target ``(B, C, H, W)``, a sigmoid per channel.
    ``reduction`` and ``validate_args`` as in the module docstring and
    :func:`iou_lib.losses.soft_iou.soft_iou`.

    >>> import torch
    >>> round(bce(torch.zeros(1, 4), torch.tensor([[1, 0, 0, 0]])).item(), 4)  # log 2
    0.6931
    """
    weight = _check_pos_weight(pos_weight)
    check_choice(reduction, "reduction", REDUCTIONS)
    with call_checks(validate_args):
        z, y, shape = _sigmoid_inputs(logits, target, mode)
    with float_compute(z.device):
        w = None if weight is None else torch.tensor(weight, dtype=z.dtype, device=z.device)
        if reduction == "none":
            return F.binary_cross_entropy_with_logits(z, y, pos_weight=w, reduction="none").reshape(shape)
        return F.binary_cross_entropy_with_logits(z, y, pos_weight=w, reduction=reduction)


@register("weighted_bce", modes=_SIGMOID_MODES)
def weighted_bce(
    logits: Tensor,
    target: Tensor,
    *,
    mode: Mode | None = None,
    reduction: Reduction = "mean",
    validate_args: bool | None = None,
) -> Tensor:
    r"""Class-balanced BCE: :func:`bce` with ``pos_weight`` :math:`= N_- / N_+` counted in the batch.

    With :math:`N_+` foreground and :math:`N_-` background pixels, positives then carry the same total
    weight as negatives. The weight is a constant (no gradient), counted per channel in
    ``mode="multilabel"``; a batch (channel) without foreground uses :math:`w_+ = 1` (there are no
    positive terms to weigh), so it reduces to plain BCE.

    >>> import torch
    >>> z, y = torch.zeros(1, 4), torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    >>> round(weighted_bce(z, y).item(), 4)  # pos_weight 3: (3 + 3) log 2 / 4
    1.0397
    """
    check_choice(reduction, "reduction", REDUCTIONS)
    with call_checks(validate_args):
        z, y, shape = _sigmoid_inputs(logits, target, mode)
    with float_compute(z.device):
        dims = (0, 2) if z.dim() == 3 else (0, 1)  # per channel (multi-label) or the whole batch
        n_pos = y.sum(dims, keepdim=True)
        n_all = y.numel() // n_pos.numel()
        pos_weight = torch.where(n_pos > 0, (n_all - n_pos) / n_pos.clamp_min(1), torch.ones_like(n_pos))
        terms = F.binary_cross_entropy_with_logits(z, y, pos_weight=pos_weight[0], reduction="none")
        return _reduce_pixels(terms, reduction, shape)


@register(
    "cross_entropy", modes=("multiclass",), checks={"weight": lambda v: _check_class_weights(v, "weight")}
)
def cross_entropy(
    logits: Tensor,
    target: Tensor,
    *,
    mode: Mode | None = None,
    weight: Sequence[float] | Tensor | None = None,
    ignore_index: int | None = None,
    reduction: Reduction = "mean",
    validate_args: bool | None = None,
) -> Tensor:
    r"""Multi-class cross-entropy with optional class weights and ignored pixels.

    .. math:: L = \frac{\sum_v w_{y_v} (-\log \mathrm{softmax}(z_v)_{y_v})}{\sum_v w_{y_v}}

    over the non-ignored pixels, as ``torch.nn.functional.cross_entropy``, except that a batch whose
    pixels are all ignored gives 0 (with zero gradient) instead of NaN. Logits ``(B, C, H, W)``, an
    integer target ``(B, H, W)`` or a one-hot target ``(B, C, H, W)`` (same value); ``weight`` has one
    value per class. ``reduction="none"`` gives :math:`w_{y_v} (-\log \mathrm{softmax}(z_v)_{y_v})` per
    pixel (NaN where ignored).

    >>> import torch
    >>> round(cross_entropy(torch.zeros(1, 4, 2), torch.tensor([[0, 3]])).item(), 4)  # log 4
    1.3863
    """
    ignore_index = check_ignore_index(ignore_index)
    check_choice(reduction, "reduction", REDUCTIONS)
    with call_checks(validate_args):
        resolve_mode(logits, target, mode, ("multiclass",))
        z, labels, valid = multiclass_inputs(logits, index_target(logits, target, ignore_index), ignore_index)
    shape = (z.shape[0], *logits.shape[2:])
    with float_compute(z.device):
        w = check_class_values(weight, "weight", z.shape[1], z)
        per_pixel = F.cross_entropy(z, labels, weight=w, reduction="none")
        if reduction == "none":
            return _reduce_pixels(per_pixel, reduction, shape, None if valid is None else valid.to(z.dtype))
        pixel_weight = torch.ones_like(per_pixel) if w is None else w[labels]
        if valid is not None:
            pixel_weight = pixel_weight * valid
            per_pixel = per_pixel * valid
        return per_pixel.sum() if reduction == "sum" else _valid_mean(per_pixel, pixel_weight)


@register("focal", checks={"alpha": _check_focal_alpha})
def focal(
    logits: Tensor,
    target: Tensor,
    *,
    mode: Mode | None = None,
    gamma: float = 2.0,
    alpha: float | Sequence[float] | Tensor | None = None,
    ignore_index: int | None = None,
    reduction: Reduction = "mean",
    validate_args: bool | None = None,
) -> Tensor:
    r"""Focal loss (Lin et al. 2017), mean over (valid) pixels:
    :math:`L = -\frac1N \sum_v \alpha_{t} (1 - p_t)^\gamma \log p_t`.

    * ``mode="binary"`` (sigmoid focal): logits ``(B, 1, H, W)`` or ``(B, H, W)``, {0, 1} target;
      :math:`p_t` is :math:`\sigma(z)` on foreground and :math:`1 - \sigma(z)` on background; a scalar
      ``alpha`` in [0, 1] weighs foreground by :math:`\alpha` and background by :math:`1 - \alpha` (as
      torchvision and kornia's ``binary_focal_loss_with_logits``); ``"multilabel"``: the same per channel
      of ``(B, C, H, W)`` logits and target;
    * ``mode="multiclass"`` (softmax focal): logits ``(B, C, H, W)``, an integer ``(B, H, W)`` or one-hot
      target, :math:`p_t` the softmax probability of the true class; ``alpha`` is one weight per class
      :math:`\alpha_{y_v}`, or a scalar that multiplies every term; ``ignore_index`` drops pixels.
      (kornia's ``focal_loss`` with a scalar :math:`\alpha` weighs class 0 by :math:`1 - \alpha` and the
      others by :math:`\alpha`: here ``alpha=[1 - a, a, ..., a]``; its ``"mean"`` also divides by the
      number of classes.)

    ``alpha=None`` means no weighting; ``gamma = 0`` gives (weighted) cross-entropy. The mean divides by
    the number of pixels, not by the sum of the weights. ``reduction`` and ``validate_args`` as in the
    module docstring.

    >>> import torch
    >>> z, y = torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])
    >>> round(focal(z, y, gamma=2.0).item(), 4)  # (1 - 0.5)^2 log 2
    0.1733
    """
    gamma = check_real(gamma, "gamma")
    ignore_index = check_ignore_index(ignore_index)
    check_choice(reduction, "reduction", REDUCTIONS)
    with call_checks(validate_args):
        mode = resolve_mode(logits, target, mode, ("binary", "multiclass", "multilabel"))
        if mode == "multiclass":
            target = index_target(logits, target, ignore_index)
            z, labels, valid = multiclass_inputs(logits, target, ignore_index)
        elif ignore_index is not None:
            raise ValueError(f"ignore_index is supported for mode='multiclass' only, got mode={mode!r}")
        else:
            z, y, shape = _sigmoid_inputs(logits, target, mode)
    if mode == "multiclass":
        alpha_vec = check_class_values(alpha, "alpha", z.shape[1], z)
        shape = (z.shape[0], *logits.shape[2:])
        with float_compute(z.device):
            log_pt = torch.log_softmax(z, dim=1).gather(1, labels.unsqueeze(1)).squeeze(1)
            alpha_t = None if alpha_vec is None else alpha_vec[labels]
            mask = None if valid is None else valid.to(z.dtype)
            return _reduce_pixels(_focal_terms(log_pt, gamma, alpha_t), reduction, shape, mask)
    alpha_fg = None if alpha is None else check_real(alpha, "binary focal alpha", high=1.0)
    with float_compute(z.device):
        log_pt = -F.binary_cross_entropy_with_logits(z, y, reduction="none")
        alpha_t = None if alpha_fg is None else alpha_fg * y + (1 - alpha_fg) * (1 - y)
        return _reduce_pixels(_focal_terms(log_pt, gamma, alpha_t), reduction, shape)


def _focal_terms(log_pt: Tensor, gamma: float, alpha_t: Tensor | None) -> Tensor:
    # 1 - p_t as -expm1(log p_t) (accurate near p_t = 1), kept above 0 so that (1 - p_t)^gamma has a
    # finite gradient at a saturated pixel for 0 < gamma < 1 (the term itself is 0 there: log p_t = 0).
    one_minus_pt = (-torch.expm1(log_pt)).clamp_min(torch.finfo(log_pt.dtype).tiny)
    terms = -one_minus_pt.pow(gamma) * log_pt
    return terms if alpha_t is None else terms * alpha_t
