"""IoU-optimizing and per-pixel losses: functional forms, named ``nn.Module`` classes, a registry.

Every loss takes logits and a target and says what it computes through ``mode`` (``"binary"``,
``"multiclass"``, ``"multilabel"``) and ``reduction`` (``"mean"``, ``"sum"``, ``"none"``); see the README
section "Using iou_lib in your own training loop" for the conventions and defaults.

>>> from iou_lib import losses
>>> "soft_iou" in losses.available()
True
>>> losses.SoftIoULoss(per_image=True).kwargs
{'per_image': True}
"""

# Each family module registers its losses on import. Keep one import line per family module.
from iou_lib.losses.compound import WeightedSum, parse
from iou_lib.losses.dice import soft_dice, tversky
from iou_lib.losses.jaccard_metric import jaccard_metric
from iou_lib.losses.lovasz import lovasz_hinge, lovasz_softmax
from iou_lib.losses.modules import (
    BCELoss,
    CrossEntropyLoss,
    FocalLoss,
    JaccardMetricLoss,
    LovaszHingeLoss,
    LovaszSoftmaxLoss,
    SoftDiceLoss,
    SoftIoULoss,
    TverskyLoss,
    WeightedBCELoss,
)
from iou_lib.losses.pixelwise import bce, cross_entropy, focal, weighted_bce
from iou_lib.losses.registry import Loss, available, functional, get, modes, options, register
from iou_lib.losses.soft_iou import soft_iou

__all__ = [
    "BCELoss",
    "CrossEntropyLoss",
    "FocalLoss",
    "JaccardMetricLoss",
    "Loss",
    "LovaszHingeLoss",
    "LovaszSoftmaxLoss",
    "SoftDiceLoss",
    "SoftIoULoss",
    "TverskyLoss",
    "WeightedBCELoss",
    "WeightedSum",
    "available",
    "bce",
    "cross_entropy",
    "focal",
    "functional",
    "get",
    "jaccard_metric",
    "lovasz_hinge",
    "lovasz_softmax",
    "modes",
    "options",
    "parse",
    "register",
    "soft_dice",
    "soft_iou",
    "tversky",
    "weighted_bce",
]
