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

from torch import Tensor

from iou_lib.losses.region import EmptyRule, check_smooth, region_loss, tversky_index
from iou_lib.losses.registry import register

__all__ = ["soft_dice", "tversky"]


def _tversky_score(
    p: Tensor, y: Tensor, dims: tuple[int, ...], smooth: float, *, alpha: float, beta: float
) -> Tensor:
    inter = (p * y).sum(dims, keepdim=True)
    return tversky_index(inter, p.sum(dims, keepdim=True), y.sum(dims, keepdim=True), alpha, beta, smooth)


def _check_weight(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a float >= 0, got {value!r}")
    return float(value)


@register("tversky")
def tversky(
    logits: Tensor,
    target: Tensor,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    per_image: bool = False,
    smooth: float = 0.0,
    empty: EmptyRule = "fp_rate",
    ignore_index: int | None = None,
) -> Tensor:
    r"""Tversky loss :math:`1 - (I + s)/(I + \alpha FP + \beta FN + s)` (Salehi et al. 2017).

    ``alpha`` weighs false positives, ``beta`` false negatives: ``beta > alpha`` favours recall (small
    structures). ``alpha = beta = 0.5`` is the soft Dice loss, ``alpha = beta = 1`` the soft IoU loss.
    Shapes, ``per_image``, ``smooth``, ``empty`` and ``ignore_index`` as in :func:`soft_dice`.

    >>> import torch
    >>> y = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    >>> z = torch.tensor([[20.0, -20.0, 20.0, -20.0]])  # one TP, one FP, one FN
    >>> round(tversky(z, y, alpha=0.2, beta=0.8).item(), 4)  # 1 - 1/(1 + 0.2 + 0.8)
    0.5
    """
    alpha, beta = _check_weight(alpha, "alpha"), _check_weight(beta, "beta")
    score = functools.partial(_tversky_score, alpha=alpha, beta=beta)
    return region_loss(
        logits,
        target,
        score,
        per_image=per_image,
        smooth=smooth,
        empty=empty,
        ignore_index=ignore_index,
        tversky=(alpha, beta),
    )


@register("soft_dice")
def soft_dice(
    logits: Tensor,
    target: Tensor,
    *,
    per_image: bool = False,
    smooth: float = 0.0,
    empty: EmptyRule = "fp_rate",
    ignore_index: int | None = None,
) -> Tensor:
    r"""Soft Dice loss :math:`1 - (2I + s)/(\sum p + \sum y + s)`, from logits.

    Computed as the Tversky index at :math:`\alpha = \beta = 1/2` with smoothing ``s/2`` (the same ratio
    with numerator and denominator halved). Binary logits ``(B, 1, H, W)`` or ``(B, H, W)`` with a
    {0, 1} target (sigmoid); multi-class logits ``(B, C, H, W)`` with an int64 ``(B, H, W)`` target
    (softmax, mean over classes, optional ``ignore_index``). ``per_image=True`` averages per-image Dice,
    ``False`` pools the batch. ``empty`` as in :func:`iou_lib.losses.soft_iou.soft_iou` (default
    ``"fp_rate"``: an empty unit scores ``mean(p)``).

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
        per_image=per_image,
        smooth=check_smooth(smooth) / 2,
        empty=empty,
        ignore_index=ignore_index,
    )
