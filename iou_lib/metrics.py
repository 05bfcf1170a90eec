r"""IoU (Jaccard index), Dice and pixel accuracy of hard predictions, with explicit aggregation.

**Inputs are hard labels.** Every metric takes predicted class indices (``{0, 1}`` masks for a binary
task, integer or bool) and a target of the same shape (integer, bool or integral float; a singleton
channel dimension on either side is dropped). Turn logits into labels with :func:`predict`: a sigmoid and
``p > threshold`` for one channel, ``argmax`` over channels for several.

**Counts.** :func:`confusion_matrix` counts pixels with rows = target class and columns = predicted class
(torchmetrics' convention), with one ``bincount``. From it, per class :math:`c`:

.. math::

    \mathrm{IoU}_c = \frac{TP_c}{TP_c + FP_c + FN_c}, \qquad
    \mathrm{Dice}_c = \frac{2\,TP_c}{2\,TP_c + FP_c + FN_c}, \qquad
    \text{accuracy} = \frac{\sum_c TP_c}{\text{pixels}}.

**Aggregation** is chosen explicitly:

* ``per_image=False`` pools all pixels of the batch into one confusion matrix (the batch's mIoU^D);
* ``per_image=True`` scores each image separately and averages over images (mIoU^I);
* :class:`IoUAccumulator` streams a whole data set batch by batch (``update`` then ``compute``) and gives
  both the data-set IoU (one confusion matrix for all pixels) and the per-image average.

**Absent classes.** A class absent from both the prediction and the target of a unit (image, batch or data
set) has IoU 0/0. It scores ``absent_score``: NaN by default, which leaves it out of every mean (a mean
over only-NaN values is NaN); pass ``absent_score=1.0`` to count a correctly predicted absence as
perfect. For a binary per-image IoU this means: an image with an empty target and an empty prediction is
NaN (left out of the average) by default or 1.0 with ``absent_score=1.0``; an image with an empty target
and any predicted foreground scores 0. With ``absent_score=0`` the per-class values equal torchmetrics'
``JaccardIndex(average="none")`` (for an ``ignore_index`` outside the classes); the default means equal
its ``average="macro"``.

``ignore_index`` drops pixels whose target equals it (their prediction is not counted). It is usually
outside ``0..C-1`` (255, CamVid's void); if it names a class, that class is not scored (NaN), as in
torchmetrics' macro average. An image whose pixels are all ignored has no score in a per-image average
(it is left out, whatever ``absent_score``), as the losses leave it out; an image with no pixels at all
(shape ``(B, 0, W)``) is an error.

**Value checks** (labels in ``0..C-1``, integral finite float targets, no NaN logits in :func:`predict`)
run by default, each function with one host synchronisation; :class:`IoUAccumulator` defers them to
:meth:`~IoUAccumulator.compute`, so that ``update`` never waits for the device.

>>> import torch
>>> pred = torch.tensor([[0, 1, 1, 0]])
>>> target = torch.tensor([[0, 1, 0, 0]])
>>> confusion_matrix(pred, target, 2)
tensor([[2, 1],
        [0, 1]])
>>> class_iou(pred, target, 2)  # background 2/3, foreground 1/2
tensor([0.6667, 0.5000])
>>> binary_iou(predict(torch.tensor([[[-3.0, 2.0, 0.5, -1.0]]])), target).item()
0.5
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from iou_lib.validation import (
    call_checks,
    check_absent_score,
    check_mode,
    label_inputs,
    label_inputs_flagged,
    value_checks_enabled,
)

#: ``mode`` of the metrics: ``"binary"`` and ``"multiclass"`` score label maps ``(B, ...)`` with
#: ``num_classes`` classes (2 for binary); ``"multilabel"`` scores {0, 1} masks ``(B, C, ...)`` with one
#: binary foreground IoU per channel (``num_classes = C``), as torchmetrics' ``multilabel_jaccard_index``.
_METRIC_MODES = ("binary", "multiclass", "multilabel")

__all__ = [
    "IoUAccumulator",
    "IoUSummary",
    "accuracy_from_confusion",
    "binary_iou",
    "class_iou",
    "confusion_matrix",
    "dice_from_confusion",
    "iou_from_confusion",
    "mean_iou",
    "predict",
]


def predict(
    logits: Tensor,
    threshold: float = 0.5,
    multiclass: bool | None = None,
    *,
    mode: str | None = None,
    validate_args: bool | None = None,
) -> Tensor:
    """Hard labels (int64) from logits: ``sigmoid(z) > threshold`` for binary, ``argmax`` for multi-class.

    ``mode`` says it explicitly (and overrides ``multiclass``): ``"binary"``, ``"multiclass"``, or
    ``"multilabel"``: ``sigmoid(z) > threshold`` per channel, keeping the shape ``(B, C, ...)``.

    ``multiclass=None`` decides from the shape: 4-D logits ``(B, C, H, W)`` with ``C >= 2`` are
    multi-class (returns ``(B, H, W)``), ``(B, 1, H, W)`` and 3-D ``(B, H, W)`` logits are binary (returns
    ``(B, H, W)``, the channel dropped). Other shapes need ``multiclass`` explicitly; channels are
    dimension 1, and a singleton channel of 4-D or larger binary logits is dropped.

    NaN logits have no class: with value checks on (the default) they raise ``ValueError`` (one sum over
    the logits and one host synchronisation); infinite logits are fine (a sure prediction).

    >>> import torch
    >>> predict(torch.tensor([[[-1.0, 0.2]]]))
    tensor([[[0, 1]]])
    """
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        got = logits.dtype if isinstance(logits, Tensor) else type(logits).__name__
        raise TypeError(f"logits must be a floating-point torch.Tensor, got {got}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be a probability in [0, 1], got {threshold!r}")
    if check_mode(mode, _METRIC_MODES) == "multilabel":
        with call_checks(validate_args):
            if value_checks_enabled():
                _check_no_nan(logits.detach())
        return (torch.sigmoid(logits) > threshold).long()
    if mode is not None:
        multiclass = mode == "multiclass"
    if multiclass is None:
        if logits.dim() == 4:
            multiclass = logits.shape[1] >= 2
        elif logits.dim() == 3:
            multiclass = False
        else:
            raise ValueError(
                f"cannot tell binary from multi-class logits of shape {tuple(logits.shape)}: "
                "pass multiclass=True or multiclass=False"
            )
    with call_checks(validate_args):
        if value_checks_enabled():
            _check_no_nan(logits.detach())
    if multiclass:
        if logits.dim() < 2 or logits.shape[1] < 2:
            raise ValueError(
                f"multi-class logits need C >= 2 channels in dim 1, got shape {tuple(logits.shape)}"
            )
        return logits.argmax(dim=1)
    if logits.dim() >= 4 and logits.shape[1] == 1:
        logits = logits.squeeze(1)
    return (torch.sigmoid(logits) > threshold).long()


def _check_no_nan(logits: Tensor) -> None:
    # A sum is NaN if a term is NaN (or if +Inf and -Inf meet): one pass; count only then.
    if bool(torch.isnan(logits.sum())):
        n_nan = int(torch.isnan(logits).sum())
        if n_nan:
            raise ValueError(
                f"logits contain {n_nan} NaN values, which predict no class "
                "(set iou_lib.set_value_checks(False) to skip this check)"
            )


def _count(pred: Tensor, target: Tensor, valid: Tensor | None, num_classes: int) -> Tensor:
    """Per-image confusion counts ``(B, C, C)`` of flat ``(B, N)`` labels, without a host synchronisation.

    One ``scatter_add_`` into ``B * C * C + 1`` bins (``bincount`` reads the maximum on the host on CUDA);
    ignored pixels go to the extra bin, and indices are clamped into the bins, so labels that failed a
    deferred value check cannot index out of bounds (their counts are wrong, and the caller raises).
    """
    b, c = pred.shape[0], num_classes
    image = torch.arange(b, device=pred.device).unsqueeze(1)
    index = (image * c + target) * c + pred
    if valid is not None:
        index = index.masked_fill(~valid, b * c * c)
    index = index.clamp_(0, b * c * c).reshape(-1)
    counts = torch.zeros(b * c * c + 1, dtype=torch.long, device=pred.device)
    counts.scatter_add_(0, index, torch.ones((), dtype=torch.long, device=pred.device).expand(index.numel()))
    return counts[:-1].reshape(b, c, c)


def _leave_out_uncounted(values: Tensor, cm: Tensor) -> Tensor:
    """Per-image ``values (B, C)`` with NaN rows for images without a counted pixel (all ignored)."""
    counted = cm.sum((-2, -1)) > 0
    return values.masked_fill(~counted.unsqueeze(-1), math.nan)


def confusion_matrix(
    pred: Tensor,
    target: Tensor,
    num_classes: int,
    *,
    ignore_index: int | None = None,
    per_image: bool = False,
    mode: str | None = None,
    validate_args: bool | None = None,
) -> Tensor:
    """Pixel counts ``cm[..., t, p]`` (target class ``t``, predicted class ``p``), int64.

    Shape ``(C, C)`` for the batch pooled, ``(B, C, C)`` with ``per_image=True``. Binary tasks use
    ``num_classes=2``. Ignored pixels are not counted. ``mode="multilabel"``: one binary ``2 x 2``
    matrix per channel of ``(B, C, ...)`` masks, shape ``(C, 2, 2)`` or ``(B, C, 2, 2)``.
    ``validate_args`` turns the value checks on or off for this call (``None``: the process-wide setting).

    >>> import torch
    >>> confusion_matrix(torch.tensor([[1, 1]]), torch.tensor([[0, 1]]), 2, per_image=True)
    tensor([[[0, 1],
             [0, 1]]])
    """
    multilabel = _metric_mode(mode, num_classes) == "multilabel"
    with call_checks(validate_args):
        if multilabel:
            b = _check_multilabel(pred, target, num_classes)
            pred, target = pred.reshape(b * num_classes, -1), target.reshape(b * num_classes, -1)
        pred, target, valid = label_inputs(pred, target, 2 if multilabel else num_classes, ignore_index)
    counts = _count(pred, target, valid, 2 if multilabel else num_classes)
    if multilabel:
        counts = counts.view(b, num_classes, 2, 2)
    return counts if per_image else counts.sum(0)


def _metric_mode(mode: object, num_classes: object) -> str:
    mode = check_mode(mode, _METRIC_MODES) or "multiclass"
    if mode == "binary" and num_classes != 2:
        raise ValueError(f"mode='binary' scores 2 classes (num_classes=2), got num_classes={num_classes!r}")
    return mode


def _check_multilabel(pred: object, target: object, num_classes: int) -> int:
    """The batch size of multi-label masks ``(B, C, ...)`` with ``C = num_classes`` (structure only)."""
    shapes = tuple(tuple(getattr(x, "shape", ())) for x in (pred, target))
    if not all(isinstance(x, Tensor) for x in (pred, target)) or shapes[0] != shapes[1]:
        raise ValueError(
            f"multi-label pred and target must be tensors of one shape (B, C, ...), got {shapes}"
        )
    if len(shapes[0]) < 2 or shapes[0][1] != num_classes:
        raise ValueError(
            f"multi-label masks need num_classes = {num_classes} channels in dim 1, got shape {shapes[0]}"
        )
    return shapes[0][0]


def _ratio(num: Tensor, den: Tensor, absent_score: float) -> Tensor:
    num, den = num.to(torch.get_default_dtype()), den.to(torch.get_default_dtype())
    return torch.where(den > 0, num / den.clamp_min(1), absent_score)


def _tp_fp_fn(cm: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    if not isinstance(cm, Tensor) or cm.dim() < 2 or cm.shape[-1] != cm.shape[-2]:
        raise ValueError(f"confusion matrix must have shape (..., C, C), got {getattr(cm, 'shape', cm)}")
    tp = cm.diagonal(dim1=-2, dim2=-1)
    return tp, cm.sum(-2) - tp, cm.sum(-1) - tp


def iou_from_confusion(cm: Tensor, absent_score: float = math.nan) -> Tensor:
    """Per-class IoU ``TP / (TP + FP + FN)`` of a ``(..., C, C)`` confusion matrix; shape ``(..., C)``.

    >>> import torch
    >>> iou_from_confusion(torch.tensor([[3, 0, 0], [1, 1, 0], [0, 0, 0]]))  # class 2 absent
    tensor([0.7500, 0.5000,    nan])
    """
    tp, fp, fn = _tp_fp_fn(cm)
    return _ratio(tp, tp + fp + fn, check_absent_score(absent_score))


def dice_from_confusion(cm: Tensor, absent_score: float = math.nan) -> Tensor:
    """Per-class Dice (F1) ``2TP / (2TP + FP + FN)`` of a ``(..., C, C)`` confusion matrix.

    >>> import torch
    >>> dice_from_confusion(torch.tensor([[2, 1], [0, 1]]))
    tensor([0.8000, 0.6667])
    """
    tp, fp, fn = _tp_fp_fn(cm)
    return _ratio(2 * tp, 2 * tp + fp + fn, check_absent_score(absent_score))


def accuracy_from_confusion(cm: Tensor) -> Tensor:
    """Pixel accuracy ``trace / total`` of a ``(..., C, C)`` confusion matrix (NaN without pixels).

    >>> import torch
    >>> accuracy_from_confusion(torch.tensor([[2, 1], [0, 1]]))
    tensor(0.7500)
    """
    tp, _, _ = _tp_fp_fn(cm)
    return _ratio(tp.sum(-1), cm.sum((-2, -1)), math.nan)


def _unscored(values: Tensor, ignore_index: int | None) -> Tensor:
    """``values (..., C)`` with the class named by an in-range ``ignore_index`` set to NaN."""
    if ignore_index is not None and 0 <= ignore_index < values.shape[-1]:
        values = values.clone()
        values[..., ignore_index] = math.nan
    return values


def class_iou(
    pred: Tensor,
    target: Tensor,
    num_classes: int,
    *,
    ignore_index: int | None = None,
    per_image: bool = False,
    absent_score: float = math.nan,
    mode: str | None = None,
    validate_args: bool | None = None,
) -> Tensor:
    """Per-class IoU: shape ``(C,)`` over the pooled batch, ``(B, C)`` with ``per_image=True``.

    ``mode="multilabel"``: the foreground IoU of each channel of ``(B, C, ...)`` {0, 1} masks (see
    :func:`confusion_matrix`); ``validate_args`` as there.

    With ``per_image=True`` an image without a counted pixel (every pixel ``ignore_index``) has no score:
    its row is NaN whatever ``absent_score`` is, so every mean over images leaves it out.

    >>> import torch
    >>> class_iou(torch.tensor([[0, 2]]), torch.tensor([[0, 1]]), 3, absent_score=1.0)
    tensor([1., 0., 0.])
    """
    kw = {"ignore_index": ignore_index, "per_image": per_image, "mode": mode, "validate_args": validate_args}
    cm = confusion_matrix(pred, target, num_classes, **kw)
    if _metric_mode(mode, num_classes) == "multilabel":  # foreground IoU per channel
        iou = iou_from_confusion(cm, absent_score)[..., 1]
        return _leave_out_uncounted(iou, cm.sum(1)) if per_image else iou
    iou = _unscored(iou_from_confusion(cm, absent_score), ignore_index)
    return _leave_out_uncounted(iou, cm) if per_image else iou


def mean_iou(
    pred: Tensor,
    target: Tensor,
    num_classes: int,
    *,
    ignore_index: int | None = None,
    per_image: bool = False,
    absent_score: float = math.nan,
    mode: str | None = None,
    validate_args: bool | None = None,
) -> Tensor:
    """Mean IoU over classes (NaN-scored absent classes left out), 0-dim.

    ``mode="multilabel"`` averages the foreground IoU of the channels (see :func:`class_iou`).

    ``per_image=False``: the mean over classes of the batch-pooled class IoU (mIoU^D of the batch, equal
    to torchmetrics' ``multiclass_jaccard_index(average="macro")``). ``per_image=True``: each image's mean
    over its classes, averaged over images (mIoU^I); an image with no scored class is left out.

    >>> import torch
    >>> pred, target = torch.tensor([[0, 1, 1, 0]]), torch.tensor([[0, 1, 0, 0]])
    >>> round(mean_iou(pred, target, 2).item(), 4)  # (2/3 + 1/2) / 2
    0.5833
    """
    kw = {"ignore_index": ignore_index, "per_image": per_image, "absent_score": absent_score}
    iou = class_iou(pred, target, num_classes, mode=mode, validate_args=validate_args, **kw)
    return iou.nanmean(-1).nanmean() if per_image else iou.nanmean()


def binary_iou(
    pred: Tensor,
    target: Tensor,
    *,
    ignore_index: int | None = None,
    per_image: bool = False,
    absent_score: float = math.nan,
    mode: str | None = None,
    validate_args: bool | None = None,
) -> Tensor:
    """Foreground IoU of a binary ``{0, 1}`` prediction, 0-dim.

    ``mode`` may only be ``"binary"`` (the default); multi-label masks go to :func:`mean_iou`.

    ``per_image=False`` pools the batch (equal to torchmetrics' ``binary_jaccard_index``); ``per_image=True``
    averages the per-image IoU. ``ignore_index`` (e.g. 255 for void pixels) drops target pixels. An image
    (or batch) with empty target and empty prediction scores ``absent_score`` (NaN by default: left out
    of the average; 1.0 counts it as perfect); an empty target with predicted foreground scores 0.

    >>> import torch
    >>> pred = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]])
    >>> target = torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0]])
    >>> binary_iou(pred, target, per_image=True).item()  # the empty image is left out
    0.5
    >>> binary_iou(pred, target, per_image=True, absent_score=1.0).item()  # the empty image scores 1
    0.75
    """
    check_mode(mode, ("binary",))
    kw = {"ignore_index": ignore_index, "per_image": per_image, "absent_score": absent_score}
    fg = class_iou(pred, target, 2, validate_args=validate_args, **kw)[..., 1]
    return fg.nanmean() if per_image else fg


@dataclass(frozen=True)
class IoUSummary:
    """What :meth:`IoUAccumulator.compute` returns. Per-class tensors have shape ``(C,)``.

    Attributes:
        iou: per-class IoU over all pixels seen (one confusion matrix: the data-set IoU).
        miou: mean of ``iou`` over classes (absent classes left out): the data-set mIoU^D.
        iou_per_image: per-class mean over images of the per-image IoU (images where the class is absent
            left out); for a binary task ``iou_per_image[1]`` is the mean per-image foreground IoU.
        miou_per_image: mean over images of each image's mean IoU over its classes (mIoU^I).
        dice: per-class Dice over all pixels; ``mdice`` its mean over classes.
        pixel_accuracy: fraction of counted pixels predicted correctly.
        confusion: the ``(C, C)`` int64 confusion matrix (rows target, columns prediction).
        n_images: number of images seen.
    """

    iou: Tensor
    miou: Tensor
    iou_per_image: Tensor
    miou_per_image: Tensor
    dice: Tensor
    mdice: Tensor
    pixel_accuracy: Tensor
    confusion: Tensor
    n_images: int


class IoUAccumulator:
    """Streaming IoU for a whole data set: ``update(pred, target)`` per batch, then ``compute()``.

    Keeps one int64 confusion matrix (data-set IoU, Dice, accuracy) and running sums of per-image IoU
    (mIoU^I), so memory does not grow with the data set. Conventions as in the module docstring. The state
    lives on the device of the first batch, and every tensor attribute is an additive count: accumulators
    of several processes combine with :meth:`all_reduce`.

    ``mode="multilabel"`` scores ``(B, C, ...)`` {0, 1} masks, one binary task per channel: ``iou``,
    ``dice`` and ``iou_per_image`` are then the per-channel foreground scores and ``confusion`` has shape
    ``(C, 2, 2)``. ``validate_args`` turns the value checks of every ``update`` on or off.

    ``update`` makes no host synchronisation: it only queues device work. Its value checks (labels in
    ``0..C-1``, integral finite float targets) are therefore counted on the device, per batch, and
    :meth:`compute` raises ``ValueError`` if any batch failed one (the counts are then unusable).

    >>> import torch
    >>> acc = IoUAccumulator(num_classes=2)
    >>> acc.update(torch.tensor([[1, 1, 0, 0]]), torch.tensor([[1, 0, 0, 0]]))
    >>> acc.update(torch.tensor([[0, 0, 0, 1]]), torch.tensor([[0, 0, 1, 1]]))
    >>> s = acc.compute()
    >>> s.iou[1].item(), s.iou_per_image[1].item()  # data set 2/4, per image (1/2 + 1/2) / 2
    (0.5, 0.5)
    """

    def __init__(
        self,
        num_classes: int,
        *,
        ignore_index: int | None = None,
        absent_score: float = math.nan,
        mode: str | None = None,
        validate_args: bool | None = None,
    ) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2 (2 for a binary task), got {num_classes!r}")
        self.multilabel = _metric_mode(mode, num_classes) == "multilabel"
        self.validate_args = None if validate_args is None else bool(validate_args)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.absent_score = check_absent_score(absent_score)
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far."""
        c = self.num_classes
        self.confusion = torch.zeros(*((c, 2, 2) if self.multilabel else (c, c)), dtype=torch.long)
        self._class_sum = torch.zeros(c, dtype=torch.float64)
        self._class_count = torch.zeros(c, dtype=torch.long)
        self._image_sum = torch.zeros((), dtype=torch.float64)
        self._image_count = torch.zeros((), dtype=torch.long)
        # batches that failed each deferred value check: pred range, target range, float target integral
        self._failed_checks = torch.zeros(3, dtype=torch.long)
        self.n_images = 0

    def _move_to(self, device: torch.device) -> None:
        sums = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
        for key, value in list(vars(self).items()):
            if isinstance(value, Tensor):
                setattr(self, key, value.to(device, sums if value.is_floating_point() else value.dtype))

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch of hard predictions ``(B, ...)`` and targets (see :func:`predict`); no host sync."""
        n_classes = 2 if self.multilabel else self.num_classes
        with call_checks(self.validate_args):
            if self.multilabel:  # one binary task per channel
                b = _check_multilabel(pred, target, self.num_classes)
                pred, target = (
                    pred.reshape(b * self.num_classes, -1),
                    target.reshape(b * self.num_classes, -1),
                )
            pred, target, valid, failed = label_inputs_flagged(pred, target, n_classes, self.ignore_index)
        cm = _count(pred, target, valid, n_classes)
        if self.confusion.device != cm.device:
            self._move_to(cm.device)
        if failed is not None:
            self._failed_checks += failed
        if self.multilabel:
            cm = cm.view(b, self.num_classes, 2, 2)
            per_image = _leave_out_uncounted(iou_from_confusion(cm, self.absent_score)[..., 1], cm.sum(1))
        else:
            per_image = _unscored(iou_from_confusion(cm, self.absent_score), self.ignore_index)
            per_image = _leave_out_uncounted(per_image, cm)
        per_image = per_image.to(self._class_sum.dtype)
        scored = ~per_image.isnan()
        self.confusion += cm.sum(0)
        self._class_sum += per_image.nan_to_num(0.0).sum(0)
        self._class_count += scored.sum(0)
        image_mean = per_image.nanmean(-1)
        image_scored = ~image_mean.isnan()
        self._image_sum += image_mean.nan_to_num(0.0).sum()
        self._image_count += image_scored.sum()
        self.n_images += cm.shape[0]

    @torch.no_grad()
    def all_reduce(self, device: torch.device | str | None = None) -> None:
        """Sum the state over all ranks of ``torch.distributed``'s default group (DDP evaluation).

        Every rank must call it; afterwards each holds the counts of the whole data set. ``device`` is
        where the reduction runs (the backend's device: CUDA for NCCL, CPU for gloo; default: the state's
        own device). A no-op when no process group is initialised.
        """
        if not (dist.is_available() and dist.is_initialized()):
            return
        for key, value in list(vars(self).items()):
            if isinstance(value, Tensor):
                reduced = value.to(device or value.device)
                dist.all_reduce(reduced)
                setattr(self, key, reduced.to(value.device))
        n = torch.tensor(self.n_images, device=device or self.confusion.device)
        dist.all_reduce(n)
        self.n_images = int(n)

    def compute(self) -> IoUSummary:
        """The summary of everything seen since construction or :meth:`reset`.

        Raises ``ValueError`` if a batch passed to :meth:`update` failed a value check.
        """
        failed = self._failed_checks.tolist()
        if any(failed):
            problems = [
                f"{n} with {what}"
                for n, what in zip(
                    failed,
                    (
                        f"pred outside 0..{self.num_classes - 1}",
                        f"target outside 0..{self.num_classes - 1}"
                        + ("" if self.ignore_index is None else f" (ignore_index={self.ignore_index})"),
                        "a float target that is not integral or not finite",
                    ),
                    strict=True,
                )
                if n
            ]
            raise ValueError(
                "IoUAccumulator.update() received invalid labels, so the counts are unusable: batches "
                + "; ".join(problems)
                + ". confusion_matrix(pred, target, num_classes) on such a batch names the values"
            )
        dtype = torch.get_default_dtype()
        if self.multilabel:  # foreground scores per channel; accuracy over all (pixel, channel) pairs
            iou = iou_from_confusion(self.confusion, self.absent_score)[..., 1]
            dice = dice_from_confusion(self.confusion, self.absent_score)[..., 1]
        else:
            iou = _unscored(iou_from_confusion(self.confusion, self.absent_score), self.ignore_index)
            dice = _unscored(dice_from_confusion(self.confusion, self.absent_score), self.ignore_index)
        return IoUSummary(
            iou=iou,
            miou=iou.nanmean(),
            iou_per_image=_ratio(self._class_sum, self._class_count, math.nan).to(dtype),
            miou_per_image=_ratio(self._image_sum, self._image_count, math.nan).to(dtype),
            dice=dice,
            mdice=dice.nanmean(),
            pixel_accuracy=accuracy_from_confusion(
                self.confusion.sum(0) if self.multilabel else self.confusion
            ),
            confusion=self.confusion.clone(),
            n_images=self.n_images,
        )
