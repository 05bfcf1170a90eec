r"""Soft Dice (V-Net, Milletari et al. 2016) and Tversky losses, from logits.

With :math:`I = \sum p y`, :math:`FP = \sum p (1 - y)`, :math:`FN = \sum (1 - p) y`:

.. math::

    T_{\alpha,\beta} = \frac{I}{I + \alpha\,FP + \beta\,FN}, \qquad
    D = T_{1/2,1/2} = \frac{2I}{\sum p + \sum y}, \qquad J = T_{1,1} = \frac{I}{U},

and on binary predictions :math:`D = 2J/(1 + J)`. Aggregation (``per_image``), the empty-unit rule
(``empty``) and ``ignore_index`` work as for :func:`iou_lib.losses.soft_iou.soft_iou`; see
:mod:`iou_lib.losses.region`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from torch import Tensor

from iou_lib.losses.region import EmptyRule, check_smooth, region_loss, tversky_index
from iou_lib.losses.registry import register
from iou_lib.validation import Mode, Reduction, check_real

__all__ = ["soft_dice", "tversky"]


def _tversky_score(
    p: Tensor, y: Tensor, dims: tuple[int, ...], smooth: float, *, alpha: float, beta: float
) -> Tensor:
    inter = (p * y).sum(dims, keepdim=True)
    return tversky_index(inter, p.sum(dims, keepdim=True), y.sum(dims, keepdim=True), alpha, beta, smooth)


@register("tversky", checks={"alpha": lambda v: check_real(v, "alpha")})
def tversky(
    logits: Tensor,
    target: Tensor,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    mode: Mode | None = None,
    per_image: bool = False,
    smooth: float = 0.0,
    empty: EmptyRule = "fp_rate",
    ignore_index: int | None = None,
    classes: str | Sequence[int] = "all",
    reduction: Reduction = "mean",
    validate_args: bool | None = None,
) -> Tensor:
    r"""Tversky loss :math:`1 - (I + s)/(I + \alpha FP + \beta FN + s)` (Salehi et al. 2017).

    ``alpha`` weighs false positives, ``beta`` false negatives: ``beta > alpha`` favours recall (small
    structures). ``alpha = beta = 0.5`` is the soft Dice loss, ``alpha = beta = 1`` the soft IoU loss.
    ``mode``, ``per_image``, ``smooth``, ``empty``, ``ignore_index``, ``classes``, ``reduction`` and
    ``validate_args`` as in :func:`iou_lib.losses.soft_iou.soft_iou`.

    >>> import torch
    >>> y = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    >>> z = torch.tensor([[20.0, -20.0, 20.0, -20.0]])  # one TP, one FP, one FN
    >>> round(tversky(z, y, alpha=0.2, beta=0.8).item(), 4)  # 1 - 1/(1 + 0.2 + 0.8)
    0.5
    """
    alpha, beta = check_real(alpha, "alpha"), check_real(beta, "beta")
    score = functools.partial(_tversky_score, alpha=alpha, beta=beta)
    return region_loss(
        logits,
        target,
        score,
        mode=mode,
        per_image=per_image,
        smooth=smooth,
        empty=empty,
        ignore_index=ignore_index,
        classes=classes,
        reduction=reduction,
        validate_args=validate_args,
        tversky=(alpha, beta),
    )


@register("soft_dice")
def soft_dice(
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
    r"""Soft Dice loss :math:`1 - (2I + s)/(\sum p + \sum y + s)`, from logits.

    Computed as the Tversky index at :math:`\alpha = \beta = 1/2` with smoothing ``s/2`` (the same ratio
    with numerator and denominator halved); its relation to the soft IoU is derived in notebook 02,
    section 6. ``mode`` (binary sigmoid, multi-class softmax, multi-label sigmoid per channel),
    ``per_image``, ``empty`` (default ``"fp_rate"``: an empty unit scores ``mean(p)``), ``ignore_index``,
    ``classes``, ``reduction`` and ``validate_args`` as in :func:`iou_lib.losses.soft_iou.soft_iou`.

    >>> import torch
    >>> y = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    >>> z = torch.tensor([[20.0, 20.0, 20.0, -20.0]])  # J = 2/3, so D = 2J/(1 + J) = 4/5
    >>> round(soft_dice(z, y).item(), 4)
    0.2
    """
    return tversky(
        logits,
        target,
        alpha=0.5,
        beta=0.5,
        mode=mode,
        per_image=per_image,
        smooth=check_smooth(smooth) / 2,
        empty=empty,
        ignore_index=ignore_index,
        classes=classes,
        reduction=reduction,
        validate_args=validate_args,
    )
