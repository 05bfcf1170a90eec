r"""Soft IoU loss of Rahman & Wang (2016) with the paper's closed-form gradient.

The relaxation replaces set sizes by sums of probabilities :math:`p = \sigma(z)` (softmax for
multi-class) against the target :math:`y`:

.. math::

    I = \sum_v p_v y_v, \qquad U = \sum_v (p_v + y_v - p_v y_v), \qquad L = 1 - \frac{I}{U},

and the quotient rule gives the gradient the paper derives, which depends on a pixel only through its
label:

.. math::

    \frac{\partial L}{\partial p_v} = \frac{I\,(1 - y_v) - U\,y_v}{U^2}
    = \begin{cases} -1/U & y_v = 1 \\ I/U^2 & y_v = 0. \end{cases}

:class:`SoftIoURatio` computes ``I/U`` in its forward pass and applies exactly this formula in its
backward pass (autograd then chains it through the sigmoid or softmax); the tests check it against plain
autograd and with float64 ``gradcheck``. Without ``ignore_index``, :func:`soft_iou` takes the fused path of
:func:`iou_lib.losses.region.region_loss` (the Tversky index at :math:`\alpha = \beta = 1`): the same
formula with the sigmoid or softmax folded into one closed-form backward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from iou_lib.losses.region import EmptyRule, region_loss
from iou_lib.losses.registry import register
from iou_lib.validation import Mode, Reduction

__all__ = ["SoftIoURatio", "soft_iou", "soft_iou_ratio"]


class SoftIoURatio(torch.autograd.Function):
    r"""``(I + s) / (U + s)`` summed over ``dims`` (keepdim), with the closed-form backward
    :math:`\partial (I/U) / \partial p_v = (U y_v - I (1 - y_v)) / U^2` (smoothing included in I and U)."""

    @staticmethod
    def forward(ctx: Any, p: Tensor, y: Tensor, dims: tuple[int, ...], smooth: float) -> Tensor:
        inter = (p * y).sum(dims, keepdim=True) + smooth
        union = p.sum(dims, keepdim=True) + y.sum(dims, keepdim=True) - inter + 2 * smooth
        nonzero = union > 0
        union = torch.where(nonzero, union, torch.ones_like(union))
        ctx.save_for_backward(y, inter, union, nonzero)
        return torch.where(nonzero, inter / union, 0.0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        y, inter, union, nonzero = ctx.saved_tensors
        # d(I/U)/dp = y * (U + I)/U^2 - I/U^2: one multiply-add per pixel with per-unit coefficients.
        scale = torch.where(nonzero, grad / union.square(), 0.0)
        return torch.mul(y, scale * (union + inter)).sub_(scale * inter), None, None, None


def soft_iou_ratio(p: Tensor, y: Tensor, dims: tuple[int, ...], smooth: float) -> Tensor:
    """Per-unit soft IoU ``I/U`` of probabilities ``p`` against ``y`` (closed-form backward)."""
    return SoftIoURatio.apply(p, y, dims, smooth)


@register("soft_iou")
def soft_iou(
    logits: Tensor,
    target: Tensor,
    *,
    mode: Mode | None = None,
    per_image: bool = False,
    smooth: float = 0.0,
    empty: EmptyRule = "fp_rate",
    ignore_index: int | None = None,
    classes: str | Sequence[int] = "all",
    reduction: Reduction = "mean",
    validate_args: bool | None = None,
) -> Tensor:
    r"""Soft IoU loss :math:`1 - (I + s)/(U + s)` (Rahman & Wang 2016), from logits.

    Derived in notebook 02: the relaxation in section 1, its gradient in section 3, the empty-image
    rule in section 5.

    Args:
        mode: ``"binary"``: logits ``(B, 1, H, W)`` or ``(B, H, W)``, target of that shape (or without
            the channel) in {0, 1}, :math:`p = \sigma(z)`. ``"multiclass"``: logits ``(B, C, H, W)``, an
            integer target ``(B, H, W)`` or a one-hot target ``(B, C, H, W)`` (same value),
            :math:`p = \mathrm{softmax}(z)`. ``"multilabel"``: logits and a {0, 1} target ``(B, C, H, W)``,
            a sigmoid per channel. ``None`` reads the mode from the shapes and raises ``ValueError`` when
            logits and target share a ``(B, C > 1, H, W)`` shape.
        per_image: ``True`` makes a unit of each image (targets mIoU^I); ``False`` (default) pools the
            batch into one ratio per class (targets the dataset-style mIoU^D).
        smooth: ``s`` added to numerator and denominator (0 by default: the paper's formula).
        empty: what a unit without foreground contributes: ``"fp_rate"`` (default, its soft false-positive
            rate ``mean(p)``, gradient ``1/N`` per pixel), ``"raw"`` (the plain formula: loss 1, zero
            gradient) or ``"ignore"`` (left out). See :mod:`iou_lib.losses.region`.
        ignore_index: target value to ignore (multi-class index targets).
        classes: ``"all"`` (default), ``"present"`` (classes with a foreground pixel in the unit) or a
            list of the classes (channels) to count.
        reduction: ``"mean"`` (default) or ``"sum"`` over the counted units, or ``"none"``: the units,
            ``(B,)`` / ``(B, C)`` per image, ``(1,)`` / ``(C,)`` pooled, NaN where not counted.
        validate_args: run the value checks (NaN/Inf, label range) for this call (``True``/``False``);
            ``None`` follows :func:`iou_lib.set_value_checks`.

    Returns float32 (float64 for float64 logits), finite under autocast.

    >>> import torch
    >>> y = torch.tensor([[[1.0, 1.0, 0.0, 0.0]]])
    >>> z = torch.tensor([[[20.0, 20.0, 20.0, -20.0]]])  # predicts 3 pixels, 2 of them right
    >>> round(soft_iou(z, y).item(), 4)  # 1 - 2/3
    0.3333
    >>> round(soft_iou(z, torch.zeros_like(y)).item(), 4)  # empty target: soft false-positive rate 3/4
    0.75
    """
    return region_loss(
        logits,
        target,
        soft_iou_ratio,
        mode=mode,
        per_image=per_image,
        smooth=smooth,
        empty=empty,
        ignore_index=ignore_index,
        classes=classes,
        reduction=reduction,
        validate_args=validate_args,
        tversky=(1.0, 1.0),
    )
