"""Named ``nn.Module`` forms of the losses, for training code that builds its loss once.

Each class wraps one functional loss with its keyword options, checked **at construction** (a misspelt
option, ``smooth=float("inf")`` or ``reduction="avg"`` raises here, not on the first batch), and shows
them in its ``repr``. The options and their defaults are exactly those of the functional form named in
the class docstring.

>>> import torch
>>> loss = SoftIoULoss(per_image=True)
>>> loss  # doctest: +ELLIPSIS
SoftIoULoss(mode=None, per_image=True, smooth=0.0, empty='fp_rate', ignore_index=None, classes='all', ...)
>>> logits, target = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
>>> round(loss(logits, target).item(), 4)  # p = 1/2 everywhere: 1 - 8/16
0.5
>>> SoftIoULoss(per_imge=True)  # doctest: +ELLIPSIS
Traceback (most recent call last):
  ...
TypeError: loss 'soft_iou' got unexpected options ['per_imge']; it takes [...]

**Compilation.** The modules work with ``torch.compile`` (tested; the value checks read data and so
break the graph: pass ``validate_args=False`` for a single graph around the loss). ``torch.jit.script``
is not supported: the losses use custom autograd functions and Python-level validation, which
TorchScript cannot compile (it is deprecated in favour of ``torch.compile``).
"""

from __future__ import annotations

import inspect

# The classes read their options from the registry, so every family must have registered first.
from iou_lib.losses import dice, jaccard_metric, lovasz, pixelwise, soft_iou  # noqa: F401
from iou_lib.losses.registry import Loss, functional, options

__all__ = [
    "BCELoss",
    "CrossEntropyLoss",
    "FocalLoss",
    "JaccardMetricLoss",
    "LovaszHingeLoss",
    "LovaszSoftmaxLoss",
    "SoftDiceLoss",
    "SoftIoULoss",
    "TverskyLoss",
    "WeightedBCELoss",
]


class _Named(Loss):
    """Base of the named loss modules: the signature and docstring come from the functional form."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.loss_name
        params = [
            inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=default)
            for key, default in options(name).items()
        ]
        cls.__signature__ = inspect.Signature(params)  # help() and IDEs show the real options
        cls.__doc__ = (
            f"``{name}`` as a module: ``{cls.__name__}(**options)(logits, target)``, options checked at "
            f"construction. Options and math: :func:`iou_lib.losses.{name}`.\n\n"
            + (functional(name).__doc__ or "").split("\n\n")[0]
        )


class SoftIoULoss(_Named):
    loss_name = "soft_iou"


class SoftDiceLoss(_Named):
    loss_name = "soft_dice"


class TverskyLoss(_Named):
    loss_name = "tversky"


class JaccardMetricLoss(_Named):
    loss_name = "jaccard_metric"


class LovaszHingeLoss(_Named):
    loss_name = "lovasz_hinge"


class LovaszSoftmaxLoss(_Named):
    loss_name = "lovasz_softmax"


class FocalLoss(_Named):
    loss_name = "focal"


class BCELoss(_Named):
    loss_name = "bce"


class WeightedBCELoss(_Named):
    loss_name = "weighted_bce"


class CrossEntropyLoss(_Named):
    loss_name = "cross_entropy"
