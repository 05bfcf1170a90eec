"""The loss a run minimises: built from its spec, with ignored pixels made neutral for binary losses.

Multi-class losses get ``ignore_index``. For binary losses ignored pixels are *neutralised*: their target
is set to 0 and their logit to :data:`NEUTRAL_LOGIT` (-50) with no gradient, i.e. they become confident
true negatives. That is exact for region losses (soft IoU, Dice, Tversky, Jaccard metric: they add ~1e-22
to the union) and for the Lovász hinge (a negative error); for per-pixel means (BCE, focal) they add zero
loss but stay in the denominator (the loss is scaled by the share of valid pixels).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, nn

from iou_lib import losses
from iou_lib.train.config import loss_names

__all__ = ["NEUTRAL_LOGIT", "build_loss", "loss_inputs"]

NEUTRAL_LOGIT = -50.0
"""Logit given to ignored pixels for binary losses (sigmoid = 2e-22: a confident true negative)."""


def build_loss(
    spec: str, options: dict[str, dict[str, Any]], num_classes: int, ignore_index: int | None
) -> nn.Module:
    """The loss module of a spec. Every loss that takes ``mode`` is told the task (``"binary"`` for one
    logit, ``"multiclass"`` otherwise) instead of guessing it from shapes; multi-class losses with
    ignored pixels get ``ignore_index``."""
    names = loss_names(spec)
    opts = {n: dict(o) for n, o in options.items() if n in names}
    task = "multiclass" if num_classes > 1 else "binary"
    for n in names:
        if "mode" in losses.options(n):
            opts.setdefault(n, {}).setdefault("mode", task)
    if num_classes > 1 and ignore_index is not None:
        for n in names:
            if "ignore_index" not in inspect.signature(losses.functional(n)).parameters:
                raise ValueError(
                    f"loss {n!r} takes no ignore_index, but the data have ignored pixels "
                    f"(ignore_index={ignore_index})"
                )
            opts.setdefault(n, {})["ignore_index"] = ignore_index
    return losses.parse(spec, opts)


def loss_inputs(
    logits: Tensor, target: Tensor, num_classes: int, ignore_index: int | None
) -> tuple[Tensor, Tensor]:
    """Logits and target as the losses take them; ignored pixels neutralised for binary losses."""
    if num_classes > 1:
        return logits, target
    if ignore_index is not None:
        valid = (target != ignore_index)[:, None]
        logits = torch.where(valid, logits, NEUTRAL_LOGIT)
        target = target * valid[:, 0]
    return logits, target[:, None].to(logits.dtype)
