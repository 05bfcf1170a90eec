"""Input checks shared by every loss and metric, and the one switch that turns value checks off.

Every public loss and metric validates its inputs here, at the public boundary, and raises a
``TypeError`` or ``ValueError`` that names the argument, the expected and the actual shape, dtype or
value range. Two kinds of checks exist:

* **structural checks** (types, shapes, dtypes, devices, empty batch) cost nothing and always run;
* **value checks** (NaN/Inf in the logits, binary targets outside {0, 1}, class indices out of range)
  read the data, which forces a host/device synchronisation on a GPU. They run by default and can be
  switched off for hot training loops, process-wide with :func:`set_value_checks` or for a block with
  :func:`value_checks`.

Tensor conventions (see DESIGN.md):

* binary: logits ``(B, 1, H, W)`` or ``(B, H, W)`` (any ``(B, ...)``), target of the same shape, or of the
  logits' shape without the channel dimension; values in {0, 1}, float, integer or bool;
* multi-class: logits ``(B, C, ...)`` with ``C >= 2``, target ``(B, ...)`` of integer class indices, with
  an optional ``ignore_index``.

>>> import torch
>>> z, y = binary_inputs(torch.zeros(2, 1, 3, 3), torch.ones(2, 3, 3))
>>> tuple(z.shape), tuple(y.shape), y.dtype
((2, 9), (2, 9), torch.float32)
>>> with value_checks(False):
...     _ = binary_inputs(torch.full((1, 4), float("nan")), torch.ones(1, 4))
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

__all__ = [
    "binary_inputs",
    "compute_dtype",
    "float_compute",
    "is_multiclass",
    "label_inputs",
    "multiclass_inputs",
    "probability_inputs",
    "set_value_checks",
    "value_checks",
    "value_checks_enabled",
]

_VALUE_CHECKS = True


def set_value_checks(enabled: bool) -> bool:
    """Turn the data-reading checks (NaN/Inf, label range) on or off process-wide.

    Returns the previous setting, so a caller can restore it. Structural checks always run.
    """
    global _VALUE_CHECKS
    previous, _VALUE_CHECKS = _VALUE_CHECKS, bool(enabled)
    return previous


def value_checks_enabled() -> bool:
    """Whether the data-reading checks currently run."""
    return _VALUE_CHECKS


@contextlib.contextmanager
def value_checks(enabled: bool) -> Iterator[None]:
    """Context manager form of :func:`set_value_checks` for one block of code."""
    previous = set_value_checks(enabled)
    try:
        yield
    finally:
        set_value_checks(previous)


def compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype losses compute in: float64 stays float64, everything else becomes float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


@contextlib.contextmanager
def float_compute(device: torch.device) -> Iterator[None]:
    """Disable autocast on ``device`` so a loss computes in the dtype it chose (float32 or float64)."""
    with torch.autocast(device_type=device.type, enabled=False):
        yield


def _check_tensor(x: object, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def _check_common(logits: Tensor, target: Tensor, min_logit_dims: int) -> None:
    _check_tensor(logits, "logits")
    _check_tensor(target, "target")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
    if logits.device != target.device:
        raise ValueError(
            f"logits and target must be on the same device, got logits on {logits.device} "
            f"and target on {target.device}"
        )
    if logits.dim() < min_logit_dims:
        raise ValueError(
            f"logits must have at least {min_logit_dims} dimensions (batch first), "
            f"got shape {tuple(logits.shape)}"
        )
    if logits.shape[0] == 0:
        raise ValueError(f"empty batch: logits has batch size 0 (shape {tuple(logits.shape)})")
    if logits[0].numel() == 0:
        raise ValueError(f"logits has no pixels per image (shape {tuple(logits.shape)})")


def _outside(x: Tensor, low: float, high: float, valid: Tensor | None = None) -> bool:
    """Whether a (valid) value of ``x`` is NaN or outside ``[low, high]``: one ``aminmax`` pass, no full-size
    temporary (about 10x faster than ``((x < low) | (x > high)).any()`` on a CPU)."""
    if valid is not None:
        x = x.masked_fill(~valid, low)
    if x.numel() == 0:
        return False
    x_min, x_max = torch.aminmax(x)
    return not bool((x_min >= low) & (x_max <= high))


def _check_finite(logits: Tensor) -> None:
    # A sum is finite only if every term is (NaN and Inf propagate): one vectorised pass, 3-4x cheaper
    # than aminmax. A non-finite sum can also be an overflow of finite values: then count to decide.
    if not _VALUE_CHECKS:
        return
    if not bool(torch.isfinite(logits.sum(dtype=compute_dtype(logits)))):
        n_nan = int(torch.isnan(logits).sum())
        n_inf = int(torch.isinf(logits).sum())
        if n_nan + n_inf == 0:
            return
        raise ValueError(
            f"logits must be finite, found {n_nan} NaN and {n_inf} Inf values "
            "(set iou_lib.set_value_checks(False) to skip this check in hot loops)"
        )


def is_multiclass(logits: Tensor, target: Tensor) -> bool:
    """True for ``(B, C, ...)`` logits with ``C >= 2`` against a ``(B, ...)`` index target."""
    return logits.dim() == target.dim() + 1 and logits.shape[1] >= 2


def _check_target_values(target: Tensor, soft: bool) -> None:
    if soft:
        if not _outside(target, 0, 1):
            return
        bad = ~((target >= 0) & (target <= 1))
        expected = "values in [0, 1]"
    else:
        if target.dtype == torch.bool:
            return
        # Integers: {0, 1} is the range [0, 1]. Floats: y - y*y is 0 exactly on {0, 1}, non-zero
        # elsewhere (y*y != y after rounding too) and NaN for NaN/Inf; a sum of absolute values is 0
        # only if every term is: three vectorised passes, 15x cheaper than ``(y * (1 - y)).any()``.
        if target.is_floating_point():
            off = torch.addcmul(target, target, target, value=-1).abs_()
            if off.sum(dtype=compute_dtype(off)) == 0:
                return
        elif not _outside(target, 0, 1):
            return
        bad = (target != 0) & (target != 1)
        expected = "only 0 and 1"
    if bool(bad.any()):
        values = torch.unique(target[bad])[:5].tolist()
        raise ValueError(f"binary target must contain {expected}, found values {values}")


def binary_inputs(logits: Tensor, target: Tensor, soft: bool = False) -> tuple[Tensor, Tensor]:
    """Validate a binary (logits, target) pair and flatten both to ``(B, N)``.

    Accepts ``logits`` of shape ``(B, ...)`` and a target of the same shape, or of that shape without a
    singleton channel dimension (``(B, 1, H, W)`` logits against a ``(B, H, W)`` target). The returned
    logits are in :func:`compute_dtype`, the returned target is in the same dtype with values in {0, 1}
    (in the interval [0, 1] when ``soft=True``: soft labels such as label smoothing or distillation).
    """
    _check_common(logits, target, min_logit_dims=2)
    if logits.dim() == target.dim() + 1 and logits.shape[1] == 1:
        logits = logits.squeeze(1)
    if logits.shape != target.shape:
        hint = ""
        if logits.dim() == target.dim() + 1:
            hint = (
                f"; logits have {logits.shape[1]} channels: use a multi-class loss, or a single "
                "foreground channel for a binary one"
            )
        raise ValueError(
            f"target must have the shape of logits {tuple(logits.shape)} (or that shape without the "
            f"channel dimension), got {tuple(target.shape)}{hint}"
        )
    if target.dtype.is_complex:
        raise TypeError(f"target must be real (float, integer or bool), got dtype {target.dtype}")
    _check_finite(logits)
    if _VALUE_CHECKS:
        _check_target_values(target, soft)
    dtype = compute_dtype(logits)
    return logits.reshape(logits.shape[0], -1).to(dtype), target.reshape(target.shape[0], -1).to(dtype)


def multiclass_inputs(
    logits: Tensor, target: Tensor, ignore_index: int | None = None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Validate a multi-class (logits, target) pair and flatten it.

    Returns ``(logits (B, C, N) in the compute dtype, target (B, N) int64, valid (B, N) bool or None)``.
    Ignored pixels keep a valid class index (0) in the returned target and are ``False`` in ``valid``;
    ``valid`` is ``None`` when ``ignore_index`` is ``None``.
    """
    _check_common(logits, target, min_logit_dims=3)
    if target.is_floating_point() or target.dtype == torch.bool or target.dtype.is_complex:
        raise TypeError(
            f"multi-class target must hold integer class indices (e.g. torch.long), got dtype {target.dtype}"
        )
    n_classes = logits.shape[1]
    if logits.dim() != target.dim() + 1 or logits.shape[:1] + logits.shape[2:] != target.shape:
        raise ValueError(
            f"multi-class target must have shape (B, ...) = {(logits.shape[0], *logits.shape[2:])} for "
            f"logits of shape {tuple(logits.shape)} (B, C, ...), got {tuple(target.shape)}"
        )
    if n_classes < 2:
        raise ValueError(f"multi-class logits need C >= 2 channels, got C = {n_classes}")
    _check_finite(logits)
    target = target.long()
    valid = None if ignore_index is None else target != ignore_index
    if _VALUE_CHECKS and _outside(target, 0, n_classes - 1, valid):
        bad = (target < 0) | (target >= n_classes)
        if valid is not None:
            bad &= valid
        if bool(bad.any()):
            values = torch.unique(target[bad])[:5].tolist()
            allowed = f"0..{n_classes - 1}"
            if ignore_index is not None:
                allowed += f" or ignore_index={ignore_index}"
            raise ValueError(f"class indices in target must be in {allowed}, found {values}")
    b = logits.shape[0]
    flat_target = target.reshape(b, -1)
    if valid is not None:
        valid = valid.reshape(b, -1)
        flat_target = flat_target.masked_fill(~valid, 0)
    return logits.reshape(b, n_classes, -1).to(compute_dtype(logits)), flat_target, valid


def probability_inputs(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Validate multi-class logits ``(B, C, ...)`` against a probability target of the same shape.

    The target holds per-pixel class probabilities in [0, 1] (soft labels: label smoothing, distillation);
    the channels are not required to sum to 1. Returns both flattened to ``(B, C, N)`` in the compute dtype.
    """
    _check_common(logits, target, min_logit_dims=3)
    if not target.is_floating_point():
        raise TypeError(f"probability target must be a floating-point tensor, got dtype {target.dtype}")
    if target.shape != logits.shape:
        raise ValueError(
            f"probability target must have the shape of logits {tuple(logits.shape)}, "
            f"got {tuple(target.shape)}"
        )
    if logits.shape[1] < 2:
        raise ValueError(f"multi-class logits need C >= 2 channels, got C = {logits.shape[1]}")
    _check_finite(logits)
    if _VALUE_CHECKS and _outside(target, 0, 1):
        bad = ~((target >= 0) & (target <= 1))
        if bool(bad.any()):
            values = torch.unique(target[bad])[:5].tolist()
            raise ValueError(f"probability target must contain values in [0, 1], found {values}")
    b, c = logits.shape[:2]
    dtype = compute_dtype(logits)
    return logits.reshape(b, c, -1).to(dtype), target.reshape(b, c, -1).to(dtype)


def label_inputs(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Validate hard predictions against a target for the metrics and flatten both to ``(B, N)`` int64.

    ``pred`` holds class indices (integer or bool; ``{0, 1}`` masks for binary tasks): turn logits into
    labels first with :func:`iou_lib.metrics.predict`. ``target`` holds class indices as integers, bools
    or integral floats (masks from :mod:`iou_lib.data` are float). A singleton channel dimension on either
    side is dropped, so ``(B, 1, H, W)`` matches ``(B, H, W)``. Returns ``(pred, target, valid)``, ``valid``
    being ``None`` without ``ignore_index``; ignored pixels get class 0 in the returned tensors.
    """
    _check_tensor(pred, "pred")
    _check_tensor(target, "target")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2 (2 for a binary task), got {num_classes!r}")
    if pred.is_floating_point() or pred.dtype.is_complex:
        raise TypeError(
            f"pred must hold hard labels (integer or bool dtype), got dtype {pred.dtype}; "
            "convert logits with iou_lib.metrics.predict(logits)"
        )
    if target.dtype.is_complex:
        raise TypeError(f"target must be real (integer, bool or integral float), got dtype {target.dtype}")
    if pred.device != target.device:
        raise ValueError(
            f"pred and target must be on the same device, got pred on {pred.device} "
            f"and target on {target.device}"
        )
    if pred.dim() == target.dim() + 1 and pred.dim() > 1 and pred.shape[1] == 1:
        pred = pred.squeeze(1)
    elif target.dim() == pred.dim() + 1 and target.dim() > 1 and target.shape[1] == 1:
        target = target.squeeze(1)
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape (B, ...), got pred {tuple(pred.shape)} "
            f"and target {tuple(target.shape)}"
        )
    if pred.dim() < 1 or pred.shape[0] == 0:
        raise ValueError(f"empty batch: pred has shape {tuple(pred.shape)}")
    if _VALUE_CHECKS and target.is_floating_point() and not bool((target == target.round()).all()):
        raise ValueError("target must hold integral class indices, found non-integer values")
    pred, target = pred.long(), target.long()
    valid = None if ignore_index is None else target != ignore_index
    if _VALUE_CHECKS:
        for name, labels in (("pred", pred), ("target", target)):
            if not _outside(labels, 0, num_classes - 1, valid):
                continue
            bad = (labels < 0) | (labels >= num_classes)
            if valid is not None:
                bad &= valid
            if bool(bad.any()):
                values = torch.unique(labels[bad])[:5].tolist()
                raise ValueError(f"{name} must hold class indices in 0..{num_classes - 1}, found {values}")
    b = pred.shape[0]
    pred, target = pred.reshape(b, -1), target.reshape(b, -1)
    if valid is not None:
        valid = valid.reshape(b, -1)
        pred, target = pred.masked_fill(~valid, 0), target.masked_fill(~valid, 0)
    return pred, target, valid
