r"""The building blocks the notebooks derive, written as plainly as possible.

These are the slow, readable definitions: the notebooks derive them and the tests use them as
references for the fast losses in :mod:`iou_lib.losses`.

Soft IoU (Rahman & Wang 2016) with probabilities :math:`p \in [0,1]^N` and labels :math:`y`, summed over the
last dimension (leading dimensions are a batch):

.. math:: I = \sum_v p_v y_v, \qquad U = \sum_v (p_v + y_v - p_v y_v).

The Lovász extension (Lovász 1983; Berman et al. 2018) of a set function :math:`\Delta` on pixel sets,
evaluated at an error vector :math:`m`: sort :math:`m_{\pi_1} \ge m_{\pi_2} \ge \dots` and sum

.. math::

    \bar\Delta(m) = \sum_i m_{\pi_i}\,\bigl(\Delta(\{\pi_1..\pi_i\}) - \Delta(\{\pi_1..\pi_{i-1}\})\bigr).

>>> import torch
>>> p, y = torch.tensor([1.0, 1.0, 0.0, 0.0]), torch.tensor([1.0, 0.0, 1.0, 0.0])
>>> soft_intersection(p, y).item(), soft_union(p, y).item()  # exact on binary p: |A n B|, |A u B|
(1.0, 3.0)
>>> m = torch.tensor([0.0, 1.0, 0.0, 0.0])  # a 0/1 error vector: pixel 1 is wrong, so IoU = 2/3
>>> round(lovasz_extension(m, lambda wrong: jaccard_set_loss(wrong, y)).item(), 4)  # = 1 - IoU
0.3333
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "jaccard_set_loss",
    "lovasz_extension",
    "soft_intersection",
    "soft_iou_grad",
    "soft_union",
]


def soft_intersection(p: Tensor, y: Tensor) -> Tensor:
    r""":math:`I = \sum_v p_v y_v` over the last dimension (derived in notebook 02, section 1)."""
    return (p * y).sum(-1)


def soft_union(p: Tensor, y: Tensor) -> Tensor:
    r""":math:`U = \sum_v (p_v + y_v - p_v y_v)` over the last dimension (notebook 02, section 1)."""
    return (p + y - p * y).sum(-1)


def soft_iou_grad(p: Tensor, y: Tensor) -> Tensor:
    r"""Closed-form gradient of :math:`L = 1 - I/U` with respect to ``p`` (Rahman & Wang 2016).

    .. math::

        \frac{\partial L}{\partial p_v} = \frac{I (1 - y_v) - U y_v}{U^2}
        = \begin{cases} -1/U & y_v = 1 \\ I/U^2 & y_v = 0 \end{cases}

    Same shape as ``p``; leading dimensions are independent batches (one ``I``, ``U`` per row). Derived
    step by step in notebook 02, section 3; :class:`iou_lib.losses.soft_iou.SoftIoURatio` applies it.

    >>> import torch
    >>> soft_iou_grad(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0]))  # I = 0.5, U = 1.5
    tensor([-0.6667,  0.2222])
    """
    inter = soft_intersection(p, y).unsqueeze(-1)
    union = soft_union(p, y).unsqueeze(-1)
    return (inter * (1 - y) - union * y) / union**2


def jaccard_set_loss(wrong: Tensor, target: Tensor) -> Tensor:
    r"""Berman et al.'s Jaccard set function of the set of mispredicted pixels.

    .. math:: \Delta_J(M) = \frac{|M|}{|F \cup M|}, \qquad F = \{v : y_v = 1\},

    which is :math:`1 - \mathrm{IoU}` of the prediction that gets exactly the pixels in ``M`` wrong (the
    target with ``M`` flipped). ``wrong`` is a boolean (or 0/1) mask of the shape of ``target``; with no
    error it is 0, including when the target is empty. Introduced in notebook 04, section 1.

    >>> import torch
    >>> jaccard_set_loss(torch.tensor([True, False, False]), torch.tensor([1, 1, 0])).item()
    0.5
    """
    wrong, fg = wrong.bool(), target.bool()
    n_wrong = wrong.sum()
    n_union = (fg | wrong).sum()
    return n_wrong / n_union.clamp_min(1)


def lovasz_extension(errors: Tensor, set_function: Callable[[Tensor], Tensor | float]) -> Tensor:
    r"""The Lovász extension of ``set_function`` at the 1-D vector ``errors``, by its textbook definition.

    Sorts ``errors`` in decreasing order and sums
    :math:`m_{\pi_i}(\Delta(\{\pi_1..\pi_i\}) - \Delta(\{\pi_1..\pi_{i-1}\}))`, calling ``set_function``
    on each boolean prefix mask (``N + 1`` calls: a reference, not a training loss). Differentiable in
    ``errors``. For a 0/1 vector ``m`` it equals ``set_function(m.bool())`` when the set function is 0 on the
    empty set. Derived in notebook 04, sections 2 and 3 (Algorithm 1).

    >>> import torch
    >>> lovasz_extension(torch.tensor([0.5, 2.0]), lambda s: float(s.any()))  # max for "any" = 2.0
    tensor(2.)
    """
    if errors.dim() != 1:
        raise ValueError(f"errors must be a 1-D vector, got shape {tuple(errors.shape)}")
    order = torch.argsort(errors, descending=True)
    prefix = torch.zeros_like(errors, dtype=torch.bool)
    previous = torch.as_tensor(set_function(prefix), dtype=errors.dtype)
    total = errors.new_zeros(())
    for i in order.tolist():
        prefix = prefix.clone()
        prefix[i] = True
        current = torch.as_tensor(set_function(prefix), dtype=errors.dtype)
        total = total + errors[i] * (current - previous)
        previous = current
    return total
