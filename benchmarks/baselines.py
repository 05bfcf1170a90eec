r"""Plain baselines written from the papers, the yardsticks of the speed targets.

* :func:`lovasz_hinge_loop` and :func:`lovasz_softmax_loop`: Algorithm 1 of Berman et al. (2018) as the
  authors describe it: one float sort per image (binary) or per class (multi-class) in a Python loop,
  Jaccard steps as first differences of ``1 - I/U`` over the sorted labels, and the loss as the dot
  product of the sorted (hinge: rectified) errors with those steps. Autograd does the backward pass.
* :func:`soft_iou_autograd` and :func:`soft_dice_autograd`: the Rahman & Wang soft IoU and the soft Dice
  in a few lines of tensor code, differentiated by autograd. No validation, no empty-mask rule.

Conventions match the library's defaults where the benchmark compares values: the hinge per image, the
softmax pooled over the batch with ``classes="present"``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def jaccard_steps(fg_sorted: Tensor) -> Tensor:
    """Algorithm 1: steps of the Jaccard loss along labels sorted by decreasing error."""
    n_fg = fg_sorted.sum()
    inter = n_fg - fg_sorted.cumsum(0)
    union = n_fg + (1 - fg_sorted).cumsum(0)
    jaccard = 1 - inter / union
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])


def _extension(errors: Tensor, fg: Tensor) -> Tensor:
    sorted_errors, order = torch.sort(errors, descending=True)
    return torch.dot(torch.relu(sorted_errors), jaccard_steps(fg[order].to(errors.dtype)))


def lovasz_hinge_loop(logits: Tensor, target: Tensor, per_image: bool = True) -> Tensor:
    """Lovász hinge, one sort per image (``per_image``) or one for the whole batch."""
    z = logits.reshape(logits.shape[0], -1)
    y = target.reshape(target.shape[0], -1).to(z.dtype)
    if not per_image:
        z, y = z.reshape(1, -1), y.reshape(1, -1)
    return torch.stack([_extension(1 - zi * (2 * yi - 1), yi) for zi, yi in zip(z, y, strict=True)]).mean()


def lovasz_softmax_loop(logits: Tensor, target: Tensor, per_image: bool = False) -> Tensor:
    """Lovász-softmax over the classes present, one sort per class (and per image if ``per_image``)."""
    probs = torch.softmax(logits, dim=1)
    n_classes = probs.shape[1]
    p = probs.reshape(probs.shape[0], n_classes, -1)
    t = target.reshape(target.shape[0], -1)
    if not per_image:
        p, t = p.transpose(0, 1).reshape(1, n_classes, -1), t.reshape(1, -1)
    per_group = []
    for pg, tg in zip(p, t, strict=True):
        terms = []
        for c in range(n_classes):
            fg = (tg == c).to(pg.dtype)
            if fg.sum() > 0:
                terms.append(_extension((fg - pg[c]).abs(), fg))
        per_group.append(torch.stack(terms).mean())
    return torch.stack(per_group).mean()


def _probs_and_onehot(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Probabilities and targets as ``(B, C, N)``: softmax and one-hot for multi-class, else sigmoid."""
    b = logits.shape[0]
    if logits.dim() == target.dim() + 1 and logits.shape[1] > 1:
        p = torch.softmax(logits, dim=1).reshape(b, logits.shape[1], -1)
        y = torch.nn.functional.one_hot(target.reshape(b, -1), logits.shape[1]).transpose(1, 2)
        return p, y.to(p.dtype)
    return torch.sigmoid(logits).reshape(b, 1, -1), target.reshape(b, 1, -1).to(logits.dtype)


def soft_iou_autograd(logits: Tensor, target: Tensor, per_image: bool = True) -> Tensor:
    """``1 - I/U`` with ``I = sum p y``, ``U = sum p + y - p y`` per image (and class), mean; autograd."""
    p, y = _probs_and_onehot(logits, target)
    dims = (2,) if per_image else (0, 2)
    inter = (p * y).sum(dims)
    union = (p + y - p * y).sum(dims)
    return 1 - (inter / union).mean()


def soft_dice_autograd(logits: Tensor, target: Tensor, per_image: bool = True) -> Tensor:
    """``1 - 2 I / (sum p + sum y)`` per image (and class), mean; autograd."""
    p, y = _probs_and_onehot(logits, target)
    dims = (2,) if per_image else (0, 2)
    inter = (p * y).sum(dims)
    return 1 - (2 * inter / (p.sum(dims) + y.sum(dims))).mean()
