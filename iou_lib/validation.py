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
    "multiclass_inputs",
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


def _check_finite(logits: Tensor) -> None:
    if _VALUE_CHECKS and not bool(torch.isfinite(logits).all()):
        n_nan = int(torch.isnan(logits).sum())
        n_inf = int(torch.isinf(logits).sum())
        raise ValueError(
            f"logits must be finite, found {n_nan} NaN and {n_inf} Inf values "
            "(set iou_lib.set_value_checks(False) to skip this check in hot loops)"
        )


def is_multiclass(logits: Tensor, target: Tensor) -> bool:
    """True for ``(B, C, ...)`` logits with ``C >= 2`` against a ``(B, ...)`` index target."""
    return logits.dim() == target.dim() + 1 and logits.shape[1] >= 2


def binary_inputs(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Validate a binary (logits, target) pair and flatten both to ``(B, N)``.

    Accepts ``logits`` of shape ``(B, ...)`` and a target of the same shape, or of that shape without a
    singleton channel dimension (``(B, 1, H, W)`` logits against a ``(B, H, W)`` target). The returned
    logits are in :func:`compute_dtype`, the returned target is in the same dtype with values in {0, 1}.
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
        bad = (target != 0) & (target != 1)
        if bool(bad.any()):
            values = torch.unique(target[bad])[:5].tolist()
            raise ValueError(f"binary target must contain only 0 and 1, found values {values}")
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
    if _VALUE_CHECKS:
        bad = (target < 0) | (target >= n_classes)
        if valid is not None:
            bad &= valid
        if bool(bad.any()):
            values = torch.unique(target[bad])[:5].tolist()
            allowed = f"0..{n_classes - 1}" + ("" if ignore_index is None else f" or ignore_index={ignore_index}")
            raise ValueError(f"class indices in target must be in {allowed}, found {values}")
    b = logits.shape[0]
    flat_target = target.reshape(b, -1)
    if valid is not None:
        valid = valid.reshape(b, -1)
        flat_target = flat_target.masked_fill(~valid, 0)
    return logits.reshape(b, n_classes, -1).to(compute_dtype(logits)), flat_target, valid
