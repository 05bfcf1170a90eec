"""Input checks shared by every loss and metric, and the one switch that turns value checks off.

Every public loss and metric validates its inputs here, at the public boundary, and raises a
``TypeError`` or ``ValueError`` that names the argument, the expected and the actual shape, dtype or
value range. Two kinds of checks exist:

* **structural checks** (types, shapes, dtypes, devices, empty batch) cost nothing and always run;
* **value checks** (NaN/Inf in the logits, binary targets outside {0, 1}, class indices out of range)
  read the data, which forces a host/device synchronisation on a GPU. They run by default and can be
  switched off for hot training loops, process-wide with :func:`set_value_checks` or for a block with
  :func:`value_checks`. The sigmoid region losses run them on the sums they compute
  (:func:`check_binary_values`): NaN logits are caught there and infinite ones accepted as exact limits.

Tensor conventions (the same throughout the library):

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
import math
import threading
from collections.abc import Iterator, Sequence
from typing import Literal, get_args

import torch
from torch import Tensor

__all__ = [
    "binary_inputs",
    "check_absent_score",
    "check_binary_values",
    "compute_dtype",
    "float_compute",
    "is_multiclass",
    "label_inputs",
    "label_inputs_flagged",
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
    """Whether the data-reading checks currently run: a per-call ``validate_args`` (see
    :func:`call_checks`) if one is active in this thread, else the process-wide setting."""
    override = getattr(_CALL, "validate_args", None)
    return _VALUE_CHECKS if override is None else override


_CALL = threading.local()  # the validate_args of the loss or metric call running in this thread


@contextlib.contextmanager
def call_checks(validate_args: bool | None) -> Iterator[None]:
    """The ``validate_args`` argument of every loss and metric: ``True``/``False`` turns the value checks
    on/off for the calls inside the block, in this thread only; ``None`` keeps the process-wide setting."""
    if validate_args is None:
        yield
        return
    previous = getattr(_CALL, "validate_args", None)
    _CALL.validate_args = check_flag(validate_args, "validate_args")
    try:
        yield
    finally:
        _CALL.validate_args = previous


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


def float_compute(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """Disable autocast on ``device`` so a loss computes in the dtype it chose (float32 or float64); a
    no-op context when autocast is off (entering ``torch.autocast`` costs tens of microseconds a call)."""
    if not torch.is_autocast_enabled(device.type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, enabled=False)


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


def _inside(x: Tensor, low: float, high: float, valid: Tensor | None = None) -> Tensor:
    """0-dim bool on ``x``'s device, read by nobody here (no host sync): whether every (valid) value of
    ``x`` is in ``[low, high]``; NaN is not. One ``aminmax`` pass, no full-size temporary."""
    if valid is not None:
        x = x.masked_fill(~valid, low)
    if x.numel() == 0:
        return torch.ones((), dtype=torch.bool, device=x.device)
    x_min, x_max = torch.aminmax(x)
    return (x_min >= low) & (x_max <= high)


def _finite(logits: Tensor) -> Tensor:
    """0-dim bool, no host sync: whether the logits' sum is finite. A sum is finite only if every term is
    (NaN and Inf propagate): one vectorised pass, 3-4x cheaper than ``aminmax``. A non-finite sum can also
    be an overflow of finite values: :func:`_raise_if_not_finite` then counts to decide."""
    return torch.isfinite(logits.sum(dtype=compute_dtype(logits)))


def _raise_if_not_finite(logits: Tensor) -> None:
    n_nan = int(torch.isnan(logits).sum())
    n_inf = int(torch.isinf(logits).sum())
    if n_nan + n_inf:
        raise ValueError(
            f"logits must be finite, found {n_nan} NaN and {n_inf} Inf values "
            "(set iou_lib.set_value_checks(False) to skip this check in hot loops)"
        )


def is_multiclass(logits: Tensor, target: Tensor) -> bool:
    """True for ``(B, C, ...)`` logits with ``C >= 2`` against a ``(B, ...)`` index target."""
    return logits.dim() == target.dim() + 1 and logits.shape[1] >= 2


# float dtype -> (integer dtype of the same width, bit pattern of 1.0)
_BITS_OF_ONE = {torch.float32: (torch.int32, 0x3F800000), torch.float64: (torch.int64, 0x3FF0000000000000)}


def _float_binary(target: Tensor, total: Tensor | None = None) -> Tensor:
    r"""0-dim bool, no host sync and no full-size temporary: whether a float target holds only 0 and 1.

    Three reductions. (1) Read as integers, the bit patterns of the floats in :math:`[+0, 1]` are exactly
    the range ``[0, bits(1.0)]`` (IEEE order), so one integer ``aminmax`` rejects NaN, Inf, negative
    values (sign bit set: negative as integers; ``-0.0`` too, which the caller's exact check accepts) and
    values above 1. (2, 3) Inside :math:`[0, 1]` every term of :math:`\sum y - \sum y^2 = \sum y (1 - y)`
    is :math:`\ge 0` and 0 only at 0 and 1, so the sum and a BLAS dot agree exactly for a binary target
    (integer counts, exact in float32 below :math:`2^{24}` ones) and differ as soon as the values strictly
    between 0 and 1 add up to more than the rounding of :math:`\sum y` (a relative :math:`6 \cdot
    10^{-8}`): a resized or soft mask is caught, a value within rounding of 0 or 1 is not. A count above
    :math:`2^{24}` can round the two sums apart; the caller's exact check then decides (slower, never
    wrong). ``total`` is :math:`\sum y` when a loss has already computed it in the target's dtype (then
    two reductions here). This replaces an element-wise :math:`|y - y^2|` pass with a full-size temporary:
    1.06 ms against 1.35-1.52 ms at 8x1x512x512 (two threads, one timing outside the benchmark suite).
    """
    y = target.reshape(-1)
    if y.dtype not in _BITS_OF_ONE:
        y = y.float()
    int_dtype, one = _BITS_OF_ONE[y.dtype]
    low, high = torch.aminmax(y.view(int_dtype))
    return (low >= 0) & (high <= one) & ((y.sum() if total is None else total) == torch.dot(y, y))


def _binary_target_ok(target: Tensor, soft: bool, total: Tensor | None = None) -> Tensor | None:
    """0-dim bool, no host sync: whether a binary target holds only 0 and 1 (values in [0, 1] when
    ``soft``); ``None`` for a bool target, which always does. ``total``: see :func:`_float_binary`."""
    if target.dtype == torch.bool:
        return None
    if soft or not target.is_floating_point():
        return _inside(target, 0, 1)  # integers: {0, 1} is the range [0, 1]
    return _float_binary(target, total)


def check_binary_values(
    logits: Tensor, target: Tensor, soft: bool = False, *, sums: tuple[Tensor, Tensor] | None = None
) -> None:
    r"""The value checks of a binary (or multi-label) pair, with one host sync: finite logits, and a target
    in {0, 1} (in [0, 1] when ``soft``). Raises the error that names the bad values; no-op when value
    checks are off.

    ``sums = (sum p, sum y)`` are the per-unit sums of a sigmoid loss that has already run on these inputs
    (``y`` the target in the logits' compute dtype). They save two passes over the data: a NaN logit
    makes its ``sum p`` NaN, so the logits are not read again, and a float target's :math:`\sum y` is not
    summed again. An infinite logit is then accepted: its probability is exactly 0 or 1, the value that
    large finite logits reach in float32 (|z| > 17 rounds to 1), so the loss is its exact limit.
    """
    if not value_checks_enabled():
        return
    if sums is None:
        logits_ok, total = _finite(logits), None
    else:
        sum_p, sum_y = sums
        logits_ok = torch.isfinite(sum_p).all()
        total = sum_y.sum() if sum_y.dtype == target.dtype else None
    target_ok = _binary_target_ok(target, soft, total)
    if not bool(logits_ok if target_ok is None else logits_ok & target_ok):
        if not bool(logits_ok):
            _raise_if_not_finite(logits)
        _check_target_values(target, soft)


def _check_target_values(target: Tensor, soft: bool) -> None:
    """Raise the error that names the values of a binary target outside {0, 1} ([0, 1] when ``soft``)."""
    ok = _binary_target_ok(target, soft)
    if ok is None or bool(ok):
        return
    if soft:
        bad = ~((target >= 0) & (target <= 1))
        expected = "values in [0, 1]"
    else:
        bad = (target != 0) & (target != 1)
        expected = "only 0 and 1"
    if bool(bad.any()):
        values = torch.unique(target[bad])[:5].tolist()
        raise ValueError(f"binary target must contain {expected}, found values {values}")


def binary_inputs(
    logits: Tensor, target: Tensor, soft: bool = False, *, deferred: bool = False
) -> tuple[Tensor, Tensor]:
    """Validate a binary (logits, target) pair and flatten both to ``(B, N)``.

    Accepts ``logits`` of shape ``(B, ...)`` and a target of the same shape, or of that shape without a
    singleton channel dimension (``(B, 1, H, W)`` logits against a ``(B, H, W)`` target). The returned
    logits are in :func:`compute_dtype`, the returned target is in the same dtype with values in {0, 1}
    (in the interval [0, 1] when ``soft=True``: soft labels such as label smoothing or distillation).
    ``deferred=True`` skips the value checks: the caller runs :func:`check_binary_values` on its sums.
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
    if not deferred:
        check_binary_values(logits, target, soft)
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
    target = target.long()
    valid = None if ignore_index is None else target != ignore_index
    # one host sync for both value checks
    if value_checks_enabled() and not bool(_finite(logits) & _inside(target, 0, n_classes - 1, valid)):
        _raise_if_not_finite(logits)
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
    if value_checks_enabled() and not bool(_finite(logits) & _inside(target, 0, 1)):  # one host sync
        _raise_if_not_finite(logits)
        bad = ~((target >= 0) & (target <= 1))
        if bool(bad.any()):
            values = torch.unique(target[bad])[:5].tolist()
            raise ValueError(f"probability target must contain values in [0, 1], found {values}")
    b, c = logits.shape[:2]
    dtype = compute_dtype(logits)
    return logits.reshape(b, c, -1).to(dtype), target.reshape(b, c, -1).to(dtype)


def _label_shapes(pred: Tensor, target: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """The structural checks of :func:`label_inputs` (no data read); a singleton channel is dropped."""
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
    if pred[0].numel() == 0:
        raise ValueError(f"pred and target have no pixels per image (shape {tuple(pred.shape)})")
    return pred, target


def label_inputs_flagged(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = None
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """:func:`label_inputs` without a host synchronisation: the value checks are returned, not raised.

    Returns ``(pred, target, valid, bad)``. ``bad`` is a device tensor of three bools, computed with a
    few reductions and never read here: pred outside ``0..C-1``; target outside ``0..C-1`` (ignored pixels
    excepted); a float target that is not integral or not finite. It is ``None`` when value checks are
    off. Labels are returned as they are, in range or not: a caller that indexes with them clamps them.
    """
    pred, target = _label_shapes(pred, target, num_classes)
    ignore_index = check_ignore_index(ignore_index)
    b = pred.shape[0]
    raw = target.reshape(b, -1)
    pred, target = pred.reshape(b, -1).long(), raw.long()
    valid = None if ignore_index is None else target != ignore_index
    if valid is not None:
        pred, target = pred.masked_fill(~valid, 0), target.masked_fill(~valid, 0)
    if not value_checks_enabled():
        return pred, target, valid, None
    pred_range, target_range = pred.aminmax(), target.aminmax()
    low = torch.stack([pred_range.min, target_range.min])
    high = torch.stack([pred_range.max, target_range.max])
    bad = torch.cat([(low < 0) | (high >= num_classes), low.new_zeros(1, dtype=torch.bool)])
    if raw.is_floating_point():
        # x - trunc(x) is 0 exactly for integral x and NaN for NaN and +-Inf (NaN != 0 is True)
        bad[2] = (raw - raw.trunc()).abs_().amax() != 0
    return pred, target, valid, bad


def _label_error(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int | None) -> ValueError:
    """The error that names the first failed value check of a (pred, target) pair (slow path)."""
    pred, target = _label_shapes(pred, target, num_classes)
    if target.is_floating_point():
        odd = ~torch.isfinite(target) | (target != target.round())
        if bool(odd.any()):
            values = torch.unique(target[odd])[:5].tolist()
            return ValueError(f"target must hold integral, finite class indices, found {values}")
    pred, target = pred.long(), target.long()
    valid = None if ignore_index is None else target != ignore_index
    for name, labels in (("pred", pred), ("target", target)):
        bad = (labels < 0) | (labels >= num_classes)
        if valid is not None:
            bad &= valid
        if bool(bad.any()):
            values = torch.unique(labels[bad])[:5].tolist()
            allowed = f"0..{num_classes - 1}"
            if name == "target" and ignore_index is not None:
                allowed += f" or ignore_index={ignore_index}"
            return ValueError(f"{name} must hold class indices in {allowed}, found {values}")
    return ValueError("pred or target failed a value check")


def label_inputs(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Validate hard predictions against a target for the metrics and flatten both to ``(B, N)`` int64.

    ``pred`` holds class indices (integer or bool; ``{0, 1}`` masks for binary tasks): turn logits into
    labels first with :func:`iou_lib.metrics.predict`. ``target`` holds class indices as integers, bools
    or integral floats (masks from :mod:`iou_lib.data` are float). A singleton channel dimension on either
    side is dropped, so ``(B, 1, H, W)`` matches ``(B, H, W)``. Images must have at least one pixel.
    Returns ``(pred, target, valid)``, ``valid`` being ``None`` without ``ignore_index``; ignored pixels get
    class 0 in the returned tensors. The value checks cost one host synchronisation in all.
    """
    flat_pred, flat_target, valid, bad = label_inputs_flagged(pred, target, num_classes, ignore_index)
    if bad is not None and bool(bad.any()):
        raise _label_error(pred, target, num_classes, ignore_index)
    return flat_pred, flat_target, valid


def check_absent_score(absent_score: object) -> float:
    """``absent_score`` of the metrics as a float: NaN (leave 0/0 units out) or a number in [0, 1]."""
    if isinstance(absent_score, bool) or not isinstance(absent_score, (int, float)):
        raise TypeError(f"absent_score must be a float (NaN, 0.0 or 1.0 typically), got {absent_score!r}")
    if not (math.isnan(absent_score) or 0 <= absent_score <= 1):
        raise ValueError(f"absent_score must be NaN or in [0, 1], got {absent_score!r}")
    return float(absent_score)


# ------------------------------------------------------------------------------------------------------
# Task modes and the options shared by the losses and metrics.

Mode = Literal["binary", "multiclass", "multilabel"]
Reduction = Literal["mean", "sum", "none"]
MODES: tuple[str, ...] = get_args(Mode)
REDUCTIONS: tuple[str, ...] = get_args(Reduction)


def check_flag(value: object, name: str) -> bool:
    """``value`` if it is a bool, else ``TypeError`` naming ``name``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of the strings ``choices``, else ``ValueError`` naming ``name``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_mode(mode: object, allowed: tuple[str, ...] = MODES) -> str | None:
    """``mode`` if it is ``None`` or one of ``allowed`` (a subset of :data:`MODES`)."""
    if mode is None:
        return None
    check_choice(mode, "mode", MODES)
    if mode not in allowed:
        raise ValueError(f"mode={mode!r} is not supported here; supported modes: {allowed}")
    return mode  # type: ignore[return-value]


def check_classes(classes: object) -> str | tuple[int, ...]:
    """The form of a ``classes`` option: ``"all"``, ``"present"`` or a non-empty list of class indices
    (their range is checked against the number of classes at call time, by :func:`class_mask`)."""
    if isinstance(classes, str):
        return check_choice(classes, "classes", ("all", "present"))
    if not isinstance(classes, Sequence) or len(classes) == 0:
        raise ValueError(
            f"classes must be 'all', 'present' or a non-empty list of class indices, got {classes!r}"
        )
    bad = [c for c in classes if not isinstance(c, int) or isinstance(c, bool) or c < 0]
    if bad:
        raise ValueError(f"classes must hold class indices (ints >= 0), got {bad}")
    return tuple(classes)


def class_mask(classes: object, n_classes: int, device: torch.device) -> Tensor | None:
    """Bool ``(C,)`` mask of the classes a ``classes`` option selects; ``None`` for ``"present"``
    (decided per unit from the target)."""
    form = check_classes(classes)
    if form == "present":
        return None
    mask = torch.ones(n_classes, dtype=torch.bool, device=device)
    if form == "all":
        return mask
    bad = [c for c in form if c >= n_classes]
    if bad:
        raise ValueError(f"classes must hold class indices in 0..{n_classes - 1}, got {bad}")
    mask.fill_(False)
    mask[list(form)] = True
    return mask


def resolve_mode(logits: object, target: object, mode: object, allowed: tuple[str, ...]) -> str:
    """The task a loss computes: ``mode`` if given (checked against ``allowed``), else read from shapes
    where they leave no doubt.

    * ``(B, C >= 2, ...)`` logits against a ``(B, ...)`` target: ``"multiclass"``;
    * logits and target of the same shape ``(B, C >= 2, H, ...)`` (4 or more dimensions) are **ambiguous**
      (softmax over channels with a one-hot target, or a sigmoid per channel): ``ValueError`` asking
      for ``mode``;
    * anything else: ``"binary"`` (one foreground channel ``(B, 1, H, W)``, or ``(B, H, W)``).

    ``mode="binary"`` with several channels is an error too: a binary loss never pools channels.
    """
    mode = check_mode(mode, allowed)
    if not (isinstance(logits, Tensor) and isinstance(target, Tensor) and logits.dim() >= 2):
        return mode or ("binary" if "binary" in allowed else allowed[0])  # the input checks say why
    channels = logits.shape[1]
    many = logits.dim() >= 4 and channels >= 2
    if mode is None:
        if many and logits.shape == target.shape:
            options = {
                "multiclass": "mode='multiclass' (softmax over the channels; the target is one-hot)",
                "multilabel": "mode='multilabel' (a sigmoid per channel, one unit per (image, channel))",
            }
            named = " or ".join(text for m, text in options.items() if m in allowed)
            raise ValueError(
                f"logits and target have the same shape {tuple(logits.shape)} with {channels} channels, "
                f"which does not say which task this is: pass {named}"
            )
        if "multiclass" in allowed and logits.dim() == target.dim() + 1 and channels >= 2:
            return "multiclass"
        return "binary" if "binary" in allowed else allowed[0]
    if mode == "binary" and many:
        raise ValueError(
            f"mode='binary' takes one foreground channel (B, 1, H, W) or (B, H, W), got logits of shape "
            f"{tuple(logits.shape)}; pass mode='multilabel' for a sigmoid per channel"
        )
    return mode


def multilabel_inputs(
    logits: Tensor, target: Tensor, soft: bool = False, *, deferred: bool = False
) -> tuple[Tensor, Tensor]:
    """Validate multi-label logits ``(B, C, ...)`` against a target of the same shape (values in {0, 1}
    per channel, or in [0, 1] when ``soft``) and flatten both to ``(B, C, N)`` in the compute dtype.
    ``deferred``: as in :func:`binary_inputs`."""
    _check_common(logits, target, min_logit_dims=3)
    if target.shape != logits.shape:
        raise ValueError(
            f"multi-label target must have the shape of logits {tuple(logits.shape)} (B, C, ...), "
            f"got {tuple(target.shape)}"
        )
    b, c = logits.shape[:2]
    z, y = binary_inputs(logits.reshape(b * c, -1), target.reshape(b * c, -1), soft=soft, deferred=deferred)
    return z.view(b, c, -1), y.view(b, c, -1)


def index_target(logits: Tensor, target: Tensor, ignore_index: int | None = None) -> Tensor:
    """A multi-class target as class indices: a ``(B, ...)`` index target unchanged; a one-hot target of
    the logits' shape ``(B, C, ...)`` (values {0, 1}, exactly one 1 per pixel) as its argmax, so index and
    one-hot targets give the same loss."""
    if not (
        isinstance(logits, Tensor)
        and isinstance(target, Tensor)
        and target.dim() >= 3
        and target.shape == logits.shape
        and logits.shape[1] >= 2
    ):
        return target
    if ignore_index is not None:
        raise ValueError("ignore_index applies to index targets (B, ...), not to a one-hot target")
    if target.dtype.is_complex:
        raise TypeError(f"one-hot target must be real, got dtype {target.dtype}")
    if value_checks_enabled():
        _check_target_values(target, soft=False)
        per_pixel = target.sum(1, dtype=torch.int64 if not target.is_floating_point() else None)
        if not bool((per_pixel == 1).all()):
            raise ValueError(
                "one-hot target must have exactly one 1 per pixel along the channel dimension, "
                f"found pixels with {int(per_pixel.min())}..{int(per_pixel.max())}"
            )
    return (target if target.is_floating_point() else target.to(torch.uint8)).argmax(1)


def check_real(
    value: object, name: str, *, low: float = 0.0, high: float = math.inf, low_open: bool = False
) -> float:
    """``value`` as a float if it is a finite real number in ``[low, high]`` (``(low, high]`` when
    ``low_open``), else ``ValueError`` naming ``name``. Rejects bools, NaN and infinities."""
    if isinstance(value, Tensor) and value.numel() == 1 and not value.dtype.is_complex:
        value = value.item()
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok and (value > low if low_open else value >= low) and value <= high:
        return float(value)
    if math.isinf(high):
        expected = f"{'>' if low_open else '>='} {low:g}"
    else:
        expected = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
    raise ValueError(f"{name} must be a finite number {expected}, got {value!r}")


def check_ignore_index(ignore_index: object) -> int | None:
    """``ignore_index`` if it is an int or None (not a bool, not a float), else ``TypeError``."""
    if ignore_index is not None and (not isinstance(ignore_index, int) or isinstance(ignore_index, bool)):
        raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
    return ignore_index


def check_class_values(value: object, name: str, n_classes: int, like: Tensor) -> Tensor | None:
    """``None``, or ``value`` (a scalar, broadcast, or one value per class) as a ``(C,)`` tensor of finite
    values >= 0 in ``like``'s dtype and device."""
    if value is None:
        return None
    vec = torch.as_tensor(value, dtype=like.dtype, device=like.device).reshape(-1)
    if vec.numel() == 1:
        vec = vec.expand(n_classes)
    if vec.numel() != n_classes:
        raise ValueError(
            f"{name} must be a scalar or have one value per class ({n_classes}), got {vec.numel()} values"
        )
    if not bool((torch.isfinite(vec) & (vec >= 0)).all()):
        raise ValueError(f"{name} must be finite and >= 0, got {vec.tolist()}")
    return vec
