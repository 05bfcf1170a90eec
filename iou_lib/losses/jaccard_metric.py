r"""Jaccard metric loss (Wang, Ning & Blaschko, NeurIPS 2023): a soft IoU that is safe for soft labels.

The soft IoU's intersection :math:`\sum p y` is replaced by its L1 form

.. math::

    I = \tfrac12 \left(\sum p + \sum y - \lVert p - y \rVert_1\right), \qquad
    U = \sum p + \sum y - I, \qquad L = 1 - \frac{I}{U}
    = 1 - \frac{\lVert p\rVert_1 + \lVert y\rVert_1 - \lVert p - y\rVert_1}
               {\lVert p\rVert_1 + \lVert y\rVert_1 + \lVert p - y\rVert_1}.

For hard labels :math:`\lVert p - y\rVert_1 = \sum p + \sum y - 2\sum p y`, so the loss equals the soft IoU
loss. For soft labels (label smoothing, distillation) the plain soft IoU is not minimised at
:math:`p = y` (at :math:`y = 0.5` it prefers :math:`p = 1`); this one is, with minimum 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from iou_lib.losses.region import EmptyRule, region_loss, tversky_index
from iou_lib.losses.registry import register
from iou_lib.validation import Mode, Reduction

__all__ = ["jaccard_metric"]


def _l1_jaccard_score(p: Tensor, y: Tensor, dims: tuple[int, ...], smooth: float) -> Tensor:
    sum_p, sum_y = p.sum(dims, keepdim=True), y.sum(dims, keepdim=True)
    inter = (sum_p + sum_y - (p - y).abs().sum(dims, keepdim=True)) / 2
    return tversky_index(inter, sum_p, sum_y, 1.0, 1.0, smooth)


@register("jaccard_metric")
def jaccard_metric(
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
    r"""Jaccard metric loss :math:`1 - (I + s)/(U + s)` with the L1 intersection, from logits.

    Why soft labels need it is shown in notebook 05, section 1. Targets by ``mode``:

    * ``"binary"``: logits ``(B, 1, H, W)`` or ``(B, H, W)``; target of that shape (or without the
      channel) with values in [0, 1] (hard or soft labels); :math:`p = \sigma(z)`;
    * ``"multiclass"``: logits ``(B, C, H, W)``, :math:`p = \mathrm{softmax}(z)`, with an integer index
      target ``(B, H, W)`` (optional ``ignore_index``), an integer one-hot target, or a float target of
      the logits' shape holding class probabilities in [0, 1] (soft labels; one-hot gives the index
      target's value);
    * ``"multilabel"``: logits and a target in [0, 1] of shape ``(B, C, H, W)``, a sigmoid per channel.

    ``None`` reads the mode from the shapes and raises when they share a ``(B, C > 1, H, W)`` shape.
    ``per_image``, ``smooth``, ``empty``, ``classes``, ``reduction`` and ``validate_args`` as in
    :func:`iou_lib.losses.soft_iou.soft_iou`; a unit is empty when its target sums to 0.

    >>> import torch
    >>> y = torch.tensor([[0.5, 0.5, 0.0, 0.0]])  # soft labels
    >>> z = torch.logit(y.clamp(1e-6, 1 - 1e-6)).double()
    >>> jaccard_metric(z, y).item() < 1e-5  # minimised at p = y
    True
    """
    return region_loss(
        logits,
        target,
        _l1_jaccard_score,
        mode=mode,
        per_image=per_image,
        smooth=smooth,
        empty=empty,
        ignore_index=ignore_index,
        classes=classes,
        reduction=reduction,
        validate_args=validate_args,
        soft_target=True,
    )
