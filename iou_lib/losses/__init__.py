"""IoU-optimizing and per-pixel losses: functional forms, one ``nn.Module`` wrapper, a registry.

>>> from iou_lib import losses
>>> "soft_iou" in losses.available()
True
"""

# Each family module registers its losses on import. Keep one import line per family module.
from iou_lib.losses.compound import WeightedSum, parse
from iou_lib.losses.dice import soft_dice, tversky
from iou_lib.losses.jaccard_metric import jaccard_metric
from iou_lib.losses.lovasz import lovasz_hinge, lovasz_softmax
from iou_lib.losses.pixelwise import bce, cross_entropy, focal, weighted_bce
from iou_lib.losses.registry import Loss, available, functional, get, register
from iou_lib.losses.soft_iou import soft_iou

__all__ = [
    "Loss",
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
    "parse",
    "register",
    "soft_dice",
    "soft_iou",
    "tversky",
    "weighted_bce",
]
