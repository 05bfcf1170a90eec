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

from torch import Tensor

from iou_lib.losses.region import EmptyRule, region_loss, tversky_index
from iou_lib.losses.registry import register

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
    per_image: bool = False,
    smooth: float = 0.0,
    empty: EmptyRule = "fp_rate",
    ignore_index: int | None = None,
) -> Tensor:
    r"""Jaccard metric loss :math:`1 - (I + s)/(U + s)` with the L1 intersection, from logits.

    Targets:

    * binary: logits ``(B, 1, H, W)`` or ``(B, H, W)``; target of that shape (or without the channel)
      with values in [0, 1] (hard or soft labels); :math:`p = \sigma(z)`;
    * multi-class with an index target: logits ``(B, C, H, W)``, int64 target ``(B, H, W)``, optional
      ``ignore_index``; :math:`p = \mathrm{softmax}(z)`, mean over classes;
    * multi-class with a probability target: a float target of the logits' shape ``(B, C, H, W)``
      (4 or more dimensions, ``C >= 2``; a same-shape pair of 3-D tensors is read as binary), values in
      [0, 1] per class.

    ``per_image``, ``smooth`` and ``empty`` as in :func:`iou_lib.losses.soft_iou.soft_iou`; a unit is
    empty when its target sums to 0.

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
        per_image=per_image,
        smooth=smooth,
        empty=empty,
        ignore_index=ignore_index,
        soft_target=True,
    )
