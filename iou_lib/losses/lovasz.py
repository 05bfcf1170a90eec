r"""Lovász hinge (binary) and Lovász-softmax (multi-class): the Lovász extension of the Jaccard loss.

Berman, Rannen Triki & Blaschko, *The Lovász-Softmax loss* (CVPR 2018). For a vector of non-negative
pixel errors :math:`m \in \mathbb{R}_{\ge 0}^p` and the Jaccard loss of a set of mispredicted pixels,
:math:`\Delta_J(M) = 1 - |y \setminus M| / |y \cup M|` (:math:`y` = the foreground pixels), the Lovász
extension is

.. math::

    \bar\Delta_J(m) = \sum_{k=1}^{p} m_{\pi_k}\, g_k, \qquad
    g_k = \Delta_J(\{\pi_1..\pi_k\}) - \Delta_J(\{\pi_1..\pi_{k-1}\}),

with :math:`\pi` sorting the errors in decreasing order (Algorithm 1 of the paper). It is convex,
piecewise linear, and equals :math:`\Delta_J` on :math:`\{0, 1\}^p`; its gradient with respect to
:math:`m` is the weight vector :math:`g`. With :math:`G` foreground pixels, and :math:`f_k` / :math:`b_k`
foreground / background pixels among the first :math:`k` sorted ones,
:math:`\Delta_J(\{\pi_1..\pi_k\}) = k / (G + b_k)`, so the weights have a closed form without differences:

.. math::

    g_k = \frac{1}{G + b_k} \ \text{(foreground)}, \qquad
    g_k = \frac{G - f_k}{(G + b_k)(G + b_k - 1)} \ \text{(background)},

and :math:`g_1 = 1` for a background pixel of a row without foreground. Consequences used for speed
(all exact): errors :math:`\le 0` carry no weight; once every foreground pixel has been passed the
Jaccard loss stays at 1, so errors below the smallest foreground error carry no weight either (used by
the softmax, whose errors are all positive; a row without foreground keeps only its largest error).
The kept errors of all rows are sorted in one call on 1-D integer keys (segment id, then the bit
pattern of the positive float32 error, which orders like the value), which takes ``torch.sort``'s
radix path; the weights come from cumulative counts; the loss is the sum of the kept errors times
these weights (per segment, in float64), and since the order is piecewise constant the backward pass
only scatters the weights to the kept pixels (a custom autograd function). When most float32 errors are
kept (early in training), compacting them costs more than it saves: all errors are sorted instead, on
int32 keys when the range of the kept bit patterns allows, with the others keyed to the end of their
segment (error and weight 0); the weights follow from integer cumulative counts and the loss from a
float32 pairwise sum (relative error about 1e-7 against float64 on 2**21 errors).

**Empty foreground.** :math:`\Delta_J(M) = 1` for any non-empty :math:`M` when :math:`y = \emptyset`, so
the extension of a row without foreground is its **largest error** (``max(0, max_i 1 + z_i)`` for the
hinge): false positives on an empty image are penalised, through the most confident one only.

**Aggregation.** ``per_image=True`` computes one extension per image (per image and class for the
softmax) and averages over images: the surrogate of the per-image IoU (mIoU^I). ``per_image=False``
treats the whole batch as one image: the surrogate of the batch's pooled IoU (mIoU^D of the batch).
Images with no valid pixel (everything ``ignore_index``) are left out of the average; a batch with no
valid pixel gives a loss of 0 with a zero gradient. The hinge with ``mode="multilabel"`` computes one
extension per (image, channel), or per channel over the batch, in the same single sort.

NaN logits are rejected by the value checks (:mod:`iou_lib.validation`); with the checks switched off
a NaN propagates to the loss instead of being dropped by the sort.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from iou_lib.losses.region import reduce_units
from iou_lib.losses.registry import register
from iou_lib.validation import (
    REDUCTIONS,
    Mode,
    Reduction,
    binary_inputs,
    call_checks,
    check_choice,
    check_classes,
    check_flag,
    check_ignore_index,
    class_mask,
    float_compute,
    index_target,
    multiclass_inputs,
    multilabel_inputs,
    resolve_mode,
)

__all__ = ["lovasz_hinge", "lovasz_softmax"]

_INT32_MAX = 2**31 - 1


def _sort_segments(
    errors: Tensor, fg: Tensor, idx: Tensor, per_row: Tensor, row_segment: Tensor
) -> tuple[Tensor, Tensor]:
    """Sort the positive flat ``errors[idx]`` by segment, then by decreasing value.

    ``idx`` lists positions row by row, ``per_row`` counts them, ``row_segment`` maps rows to segments.
    Returns the permutation of ``idx`` and, in sorted order, the foreground flags (int64 0/1).
    """
    n_kept = idx.numel()
    values, is_fg = errors.index_select(0, idx), fg.index_select(0, idx) > 0
    if values.dtype == torch.float32:
        # A positive float32 read as int32 orders like its value, so the int64 key
        # segment * 2**32 + 2 * (INT32_MAX - bits) + is_fg sorts exactly (ties: background first, which
        # does not change the value) in one 1-D ascending integer sort, torch's radix path.
        base = row_segment.bitwise_left_shift(32).add_(2 * _INT32_MAX)
        keys = base.repeat_interleave(per_row, output_size=n_kept)
        keys.sub_(values.abs_().view(torch.int32), alpha=2)  # abs: a NaN's sign bit
        del values  # (peak memory)
        keys.add_(is_fg)
        del is_fg
        keys, perm = torch.sort(keys)
        return perm, keys.bitwise_and_(1)
    # float64 bit patterns leave no room for a segment id: two stable sorts (value, then segment).
    seg = row_segment.repeat_interleave(per_row, output_size=n_kept)
    perm = torch.sort(values, descending=True, stable=True).indices
    perm = perm.index_select(0, torch.sort(seg.index_select(0, perm), stable=True).indices)
    return perm, is_fg.index_select(0, perm).long()


def _positions(keep: Tensor, block: int = 8) -> Tensor:
    """``keep.nonzero()`` of a flat bool tensor, faster when few are kept: bools read 8 at a time as
    int64 find the non-empty blocks first, and only their elements are tested."""
    if keep.numel() % block or keep.numel() < 2**16 or not keep.is_contiguous() or keep.storage_offset():
        return keep.nonzero().squeeze(1)
    blocks = keep.view(torch.int64).nonzero().squeeze(1)  # the view needs block == 8
    if 4 * blocks.numel() * block > keep.numel():
        return keep.nonzero().squeeze(1)
    candidates = (blocks[:, None] * block + torch.arange(block, device=keep.device)).reshape(-1)
    return candidates[keep.index_select(0, candidates)]


@torch.no_grad()
def _extensions(
    errors: Tensor, fg: Tensor, keep: Tensor, group: Tensor | None, n_fg: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The extension of every segment and what its backward needs.

    Returns the losses ``(S,)``, the flat positions of the kept errors in sorted order, their weights
    times ``d error / d input`` (``1 - 2 [foreground]`` for both losses) and the kept count per segment.
    """
    n_rows, n_cols = errors.shape
    idx = _positions(keep.reshape(-1))
    n_kept = idx.numel()
    counts = torch.zeros_like(n_fg)
    if n_kept == 0:  # no positive error anywhere: the loss and its gradient are exactly 0
        return errors.new_zeros(n_fg.shape), idx, errors.new_zeros(0), counts
    # nonzero() lists rows in order, so row sizes come from a binary search of the row boundaries.
    per_row = torch.diff(torch.searchsorted(idx, torch.arange(n_rows + 1, device=idx.device) * n_cols))
    row_segment = torch.arange(n_rows, device=idx.device) if group is None else group
    perm, is_fg = _sort_segments(errors.reshape(-1), fg.reshape(-1), idx, per_row, row_segment)
    pos = idx.index_select(0, perm)
    del idx, perm
    # Segments are contiguous in sorted order. With f_k / b_k foreground / background pixels among the
    # first k sorted errors of a segment, the weights need G - f_k and G + b_k: global cumulative counts
    # corrected by per-segment constants (repeated over the segment's run).
    counts = per_row if group is None else counts.index_add_(0, group, per_row)
    starts = counts.cumsum(0) - counts
    # float32 holds these integers exactly below 2**24
    dtype = errors.dtype if n_kept + int(n_fg.max()) < 2**24 else torch.float64
    fg_f = is_fg.to(dtype)
    del is_fg
    fg_cum = fg_f.cumsum(0)
    fg_before = fg_cum.index_select(0, (starts - 1).clamp_min(0)) * (starts > 0)
    n = (n_fg + fg_before).repeat_interleave(counts, output_size=n_kept).sub_(fg_cum)  # G - f_k
    d = (n_fg - starts + fg_before - 1).repeat_interleave(counts, output_size=n_kept)
    d += torch.arange(1, n_kept + 1, device=pos.device, dtype=dtype)
    d.sub_(fg_cum)  # G + b_k - 1 >= 0
    del fg_cum
    q = d.clamp_min(1)
    d += 1
    # 1/(G + b_k) on foreground, (G - f_k) / ((G + b_k)(G + b_k - 1)) on background
    w = torch.addcmul(n, fg_f, q.sub(n)).div_(d.mul_(q))
    del n, d, q
    # The first (background) error of a segment without foreground has weight 1: the closed form is 0/0.
    w.index_fill_(0, starts[(n_fg == 0) & (counts > 0)], 1.0)
    # Sum per segment in float64: float32 loses ~1e-5 over 1e5 terms.
    terms = errors.reshape(-1).index_select(0, pos)
    terms = (terms.mul_(w) if dtype == terms.dtype else terms * w).double()
    losses = torch.segment_reduce(terms, "sum", lengths=counts).to(errors.dtype)
    coeff = torch.addcmul(w, w, fg_f, value=-2).to(errors.dtype)  # w * (1 - 2 [foreground])
    return losses, pos, coeff, counts


def _kept_bits(errors: Tensor, keep: Tensor | None) -> Tensor:
    """int32 bit patterns of the kept float32 ``errors`` (NaN made positive), 0 for the others, computed
    in place: ``errors`` then holds the kept errors (absolute values) and 0 elsewhere.

    ``keep=None`` keeps the positive errors and NaN, without any bool tensor (slow on CPU).
    """
    if keep is None:  # clamp_min keeps NaN; the mask clears the sign of -0.0 and of a NaN
        return errors.clamp_min_(0).view(torch.int32).bitwise_and_(_INT32_MAX)
    return errors.view(torch.int32).bitwise_and_(_INT32_MAX).mul_(keep)


@torch.no_grad()
def _dense_extensions(
    errors: Tensor, fg: Tensor, bits: Tensor, segment: Tensor, n_fg: Tensor, need_grad: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """The extension of every segment from one sort of **all** float32 errors (most of them kept).

    ``bits`` are the :func:`_kept_bits` (consumed); ``segment`` ``(R,)`` maps rows to segments, each of
    the same number of rows. The key of an error holds its segment, ``p`` = its bit pattern relative to
    the smallest kept one, and whether it is background (ties: background first, as in the compacting
    path); a non-kept error gets ``p = 0``, so it sorts after the kept errors of its segment, which
    keeps the cumulative counts of the kept prefix exact, and it gets error and weight 0. Integer and
    float arithmetic only (bool masks are slow on CPU). Returns the losses ``(S,)``, the permutation of
    the flat positions and, if ``need_grad``, the weights times ``1 - 2 [foreground]`` in sorted order
    ``(S, L)`` (else an empty tensor).
    """
    n_seg = n_fg.numel()
    seg_len = errors.numel() // n_seg
    device = errors.device
    hi = int(bits.max())
    lo = int(bits.sub(1).bitwise_and_(_INT32_MAX).min())  # smallest kept pattern - 1 (non-kept wrap)
    # int32 keys (half the radix passes of int64) if they fit, with 2 p + 1 below 2**31
    small = max(n_seg, 2) * 2 * (hi - lo + 1) <= 2**32
    lo = lo if small else 0
    span = 2 * (hi - lo + 1)  # key values v = 2 p + [background]: 0..span-1 per segment
    seg_ids = torch.arange(n_seg, device=device)
    # the key of v in segment s is offset[s] - v, so larger errors come first
    offset = seg_ids * span + (span - 1 - (2**31 if small else 0))
    if small:
        offset = offset.to(torch.int32)
        v = bits.clamp_min_(lo).sub_(lo)
    else:
        v = bits.long()
    del bits
    # fg in {0.0, 1.0}: bit 29 of its pattern is the flag
    is_fg = fg.view(torch.int32).bitwise_right_shift(29).bitwise_and_(1)
    keys = v.mul_(2).add_(1).sub_(is_fg).neg_().add_(offset.index_select(0, segment)[:, None])
    del is_fg
    keys = keys.view(-1)
    in_place = (keys, torch.empty(0, dtype=torch.int64, device=device)) if device.type == "cpu" else None
    keys, perm = torch.sort(keys, out=in_place)  # CPU: sorted in place (peak memory)
    v = keys.view(n_seg, seg_len).sub_(offset[:, None]).neg_()
    del keys
    # weights from cumulative counts (exact in float32 below 2**24)
    dtype = errors.dtype if seg_len + int(n_fg.max()) < 2**24 else torch.float64
    sign = v.bitwise_and(1)  # [background]
    d = sign.cumsum(1, dtype=sign.dtype).add_(n_fg.to(sign.dtype)[:, None] - 1).to(dtype)  # G + b_k - 1
    p = v.bitwise_right_shift_(1)
    kept = p.clamp_max(1)  # 1 on the kept prefix of each segment, 0 after
    values = p.add_(lo).to(torch.int32).view(errors.dtype).mul_(kept)
    sign.mul_(2).sub_(1).mul_(kept)  # 1 - 2 [foreground] where kept, 0 after
    del v, p, kept
    # r = (G - f_k) / (G + b_k - 1); its only 0/0 are on the first error of a segment without foreground
    # (weight set to 1 below) and on foreground errors (whose weight does not use r)
    r = d.sub(torch.arange(seg_len, device=device, dtype=dtype)).div_(d).nan_to_num_(0)
    # w = r / (G + b_k) on background, 1 / (G + b_k) on foreground: (r - 1) (1 + sign) / 2 + 1
    w = r.sub_(1).mul_(sign.add_(1)).div_(2).add_(1).div_(d.add_(1))
    sign.sub_(1)
    del d
    w[:, 0].masked_fill_(n_fg == 0, 1.0)  # the 0/0 of a segment without foreground: weight 1
    terms = values.mul_(w) if dtype == values.dtype else values * w
    losses = terms.sum(1).to(errors.dtype)  # a pairwise (cascade) sum: accurate in float32
    del terms, values
    if not need_grad:
        return losses, perm, errors.new_empty(0)
    coeff = w.mul_(sign).to(errors.dtype)  # w (1 - 2 [foreground]), 0 where not kept
    return losses, perm, coeff


# Share of kept errors from which sorting all errors beats compacting the kept ones first.
_DENSE_SHARE = 0.5


class _LovaszExtensions(torch.autograd.Function):
    """The extension of each segment as a function of the flat input ``x`` the errors come from.

    The errors are elementwise in ``x`` with ``d error / d x = +-1`` (hinge: ``-(2y - 1)``; softmax:
    ``-sign([y = c] - p)``), and the extension is linear in the errors once their order is fixed, so
    the backward scatters ``weight * (+-1) * grad`` to the kept positions; every other position gets 0.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        errors: Tensor,
        fg: Tensor,
        keep: Tensor | None,
        group: Tensor | None,
        n_fg: Tensor,
    ) -> Tensor:
        ctx.numel = x.numel()
        ctx.dense = False
        n_rows, n_seg = errors.shape[0], n_fg.numel()
        # which path: the share of kept errors in a sample of about 4096 (either path is exact)
        sample = (errors if keep is None else keep).reshape(-1)[:: max(1, errors.numel() // 4096)]
        n_sampled = int((sample > 0 if keep is None else sample).count_nonzero())
        dense = errors.dtype == torch.float32 and 0 < n_sampled >= _DENSE_SHARE * sample.numel()
        if dense and (
            group is None or bool((torch.bincount(group, minlength=n_seg) * n_seg == n_rows).all())
        ):
            segment = torch.arange(n_rows, device=x.device) if group is None else group
            bits = _kept_bits(errors, keep)
            losses, perm, coeff = _dense_extensions(errors, fg, bits, segment, n_fg, ctx.needs_input_grad[0])
            ctx.save_for_backward(perm, coeff, segment)
            ctx.dense = True
            return losses
        if keep is None:
            keep = ~(errors <= 0)  # NaN kept
        losses, pos, coeff, counts = _extensions(errors, fg, keep, group, n_fg)
        ctx.save_for_backward(pos, coeff, counts)
        return losses

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        pos, coeff, counts = ctx.saved_tensors
        if ctx.dense:  # pos permutes every position, coeff is (S, L) in sorted order, counts = segment
            out = grad.new_empty(ctx.numel).scatter_(0, pos, coeff.view(-1))
            out.view(counts.numel(), -1).mul_(grad.index_select(0, counts)[:, None])
            return out, None, None, None, None, None
        per_kept = coeff * grad.repeat_interleave(counts, output_size=coeff.numel())
        return grad.new_zeros(ctx.numel).scatter_(0, pos, per_kept), None, None, None, None, None


def _segment_losses(
    x: Tensor, errors: Tensor, fg: Tensor, keep: Tensor | None, group: Tensor | None, n_fg: Tensor
) -> Tensor:
    """The Lovász extension of the Jaccard loss of every segment ``(S,)``, differentiable in ``x``.

    ``errors`` ``(R, M)`` (detached; overwritten) are elementwise in ``x`` (same number of elements, same
    flat order); ``fg`` ``(R, M)`` 0/1 marks the valid foreground; ``keep`` ``(R, M)`` bool the positive
    errors that may carry weight (all others have weight 0; ``None``: the positive ones); ``group``
    ``(R,)`` maps each row to its segment, the unit one extension is computed for (``None``: one
    segment per row); ``n_fg`` ``(S,)`` int64 holds each segment's foreground count.
    """
    return _LovaszExtensions.apply(x.reshape(-1), errors, fg, keep, group, n_fg)


def _masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``values`` where ``mask`` holds (0 where nothing is selected)."""
    total = torch.where(mask, values, torch.zeros_like(values))
    count = mask.sum() if dim is None else mask.sum(dim)
    total = total.sum() if dim is None else total.sum(dim)
    return total / count.clamp_min(1).to(values.dtype)


@register("lovasz_hinge", modes=("binary", "multilabel"))
def lovasz_hinge(
    logits: Tensor,
    target: Tensor,
    *,
    mode: Mode | None = None,
    per_image: bool = True,
    ignore_index: int | None = None,
    reduction: Reduction = "mean",
    validate_args: bool | None = None,
) -> Tensor:
    r"""Lovász hinge loss for binary segmentation: the Lovász extension of the Jaccard loss of hinge errors.

    .. math::

        m_i = \max(0,\ 1 - z_i\,(2 y_i - 1)), \qquad \mathcal{L} = \bar\Delta_J(m)

    with logits :math:`z` (no sigmoid) and labels :math:`y \in \{0, 1\}`. At the vertices, errors in
    :math:`\{0, 1\}` (logit :math:`2y - 1` for a correct pixel, logit 0 for a wrong one), the loss is
    exactly :math:`1 - \mathrm{IoU}`; with hard logits :math:`\pm 1` the errors are 0 or 2, so the loss is
    :math:`2\,(1 - \mathrm{IoU})` of the thresholded prediction. An image without foreground scores its
    largest hinge error (see the module docstring). Derived in notebook 04, sections 2 to 4.

    Args:
        logits: ``(B, 1, H, W)`` or ``(B, H, W)`` (any ``(B, ...)``) raw scores; ``(B, C, H, W)`` with
            ``mode="multilabel"``.
        target: same shape, or without the channel dimension; values in {0, 1} (or ``ignore_index``).
        mode: ``"binary"`` (one channel) or ``"multilabel"`` (one hinge loss per (image, channel));
            ``None`` reads it from the shapes (a ``(B, C > 1, H, W)`` pair needs it spelt out).
        per_image: ``True`` (default, as the paper's code) averages one loss per image (mIoU^I),
            ``False`` pools the batch (per channel in multi-label mode).
        ignore_index: target value whose pixels are left out (must not be 0 or 1).
        reduction: ``"mean"`` (default) or ``"sum"`` over units, or ``"none"``: ``(B,)`` / ``(B, C)`` per
            image, ``(1,)`` / ``(C,)`` pooled; units without a valid pixel are NaN and left out.
        validate_args: value checks for this call; ``None`` follows :func:`iou_lib.set_value_checks`.

    Returns:
        float32 (float64 for float64 logits), also under autocast.

    >>> import torch
    >>> y = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    >>> lovasz_hinge(torch.tensor([[1.0, -1.0, -1.0, 1.0]]), y)  # IoU 1/3: 2 * (1 - 1/3)
    tensor(1.3333)
    >>> lovasz_hinge(torch.tensor([[0.0, 1.0, -1.0, -1.0]]), y)  # errors (1, 0, 0, 0): 1 - IoU = 1/2
    tensor(0.5000)
    """
    per_image = check_flag(per_image, "per_image")
    ignore_index = check_ignore_index(ignore_index)
    check_choice(reduction, "reduction", REDUCTIONS)
    if ignore_index in (0, 1):
        raise ValueError(f"ignore_index must differ from the binary labels 0 and 1, got {ignore_index}")
    with call_checks(validate_args):
        mode = resolve_mode(logits, target, mode, ("binary", "multilabel"))
        ignored = None
        if ignore_index is not None and isinstance(target, Tensor):
            ignored = target == ignore_index
            target = target.masked_fill(ignored, 0)  # ignored pixels now have target 0: never foreground
        if mode == "multilabel":
            z, y = multilabel_inputs(logits, target)
        else:
            z, y = binary_inputs(logits, target)
            z, y = z[:, None], y[:, None]
    n_images, n_channels, n_pix = z.shape
    z, y = z.reshape(-1, n_pix), y.reshape(-1, n_pix)  # one row per (image, channel)
    valid = None if ignored is None else ~ignored.reshape(-1, n_pix)
    with float_compute(z.device):
        # 1 - z (2y - 1) = (z - 2 z y) + 1: z - 2 z y = -+z is exact, so this rounds once, like the formula
        errors = torch.addcmul(z.detach(), z.detach(), y, value=-2).add_(1)
        # Every positive error may carry weight: the smallest foreground hinge error is rarely positive.
        # NaN is kept: with the value checks off it reaches the loss (with them on there is none)
        keep = None if valid is None else ~(errors <= 0) & valid  # None: the positive errors
        count_dtype = y.dtype if y.numel() < 2**24 else torch.float64  # exact integer sums
        if per_image:  # a segment per row
            group = None
            n_fg = y.sum(1, dtype=count_dtype).to(torch.int64)
            counted = None if valid is None else valid.any(1)
        else:  # a segment per channel, pooled over the batch
            group = torch.arange(n_channels, device=z.device).repeat(n_images)
            n_fg = y.view(n_images, n_channels, n_pix).sum((0, 2), dtype=count_dtype).to(torch.int64)
            counted = None if valid is None else valid.view(n_images, n_channels, n_pix).any(2).any(0)
        out = reduce_units(_segment_losses(z, errors, y, keep, group, n_fg), counted, reduction)
    if reduction != "none":
        return out
    out = out.view(n_images if per_image else 1, n_channels)
    return out[:, 0] if mode == "binary" else out if per_image else out[0]


def _lovasz_softmax_probs(
    probs: Tensor,
    target: Tensor,
    valid: Tensor | None,
    per_image: bool,
    selected: Tensor | None,
    reduction: Reduction,
) -> Tensor:
    """Lovász-softmax of probabilities ``(B, C, N)`` against ``target`` ``(B, N)`` (validated, flat).

    ``selected`` ``(C,)`` selects the classes to average, ``None`` means the classes present.
    """
    n_batch, n_classes, n_pix = probs.shape
    dtype, device = probs.dtype, probs.device
    valid_f = torch.ones_like(target, dtype=dtype) if valid is None else valid.to(dtype)
    fg = torch.zeros_like(probs).scatter_(1, target[:, None], valid_f[:, None])
    errors = (fg - probs.detach()).abs()
    # Per (image, class): foreground count and smallest foreground error, from the (B, N) labels.
    n_fg = torch.zeros(n_batch, n_classes, dtype=torch.int64, device=device)
    n_fg.scatter_add_(1, target, valid_f.to(torch.int64))
    fg_err = 1 - probs.detach().gather(1, target[:, None]).squeeze(1)
    if valid is not None:
        fg_err = fg_err.masked_fill(~valid, float("inf"))
    fg_min = torch.full((n_batch, n_classes), float("inf"), dtype=dtype, device=device)
    fg_min.scatter_reduce_(1, target, fg_err, "amin")
    has_pixels = valid_f.amax(1)[:, None].expand(n_batch, n_classes) > 0
    row_max = None if selected is None else (probs.detach() * valid_f[:, None]).amax(2)
    if per_image:  # segments: (image, class) pairs
        group = None
    else:  # segments: classes, pooled over the batch
        group = torch.arange(n_classes, device=device).repeat(n_batch)
        n_fg, fg_min, has_pixels = n_fg.sum(0), fg_min.amin(0), has_pixels.any(0)
        row_max = None if row_max is None else row_max.amax(0)
    if selected is None:
        used = n_fg > 0
        threshold = fg_min
    else:
        used = selected & has_pixels
        # a segment without foreground keeps only its largest error (the extension's value)
        threshold = torch.where(n_fg > 0, fg_min, row_max)
    # Errors below the smallest foreground error come after the last foreground pixel: weight 0.
    smallest = torch.nextafter(torch.zeros((), dtype=dtype), torch.ones((), dtype=dtype)).to(device)
    threshold = torch.where(used, threshold.clamp_min(smallest), float("inf")).reshape(-1)
    errors = errors.reshape(n_batch * n_classes, n_pix)
    keep = ~(errors < (threshold if group is None else threshold.index_select(0, group))[:, None])  # NaN kept
    if valid is not None:
        keep &= valid[:, None, :].expand(n_batch, n_classes, n_pix).reshape(n_batch * n_classes, n_pix)
    fg = fg.reshape(n_batch * n_classes, n_pix)
    losses = _segment_losses(probs, errors, fg, keep, group, n_fg.reshape(-1))
    used, losses = used.reshape(-1, n_classes), losses.view(-1, n_classes)
    if reduction == "mean":  # over images of the mean over their classes (the paper's code)
        return _masked_mean(_masked_mean(losses, used, dim=1), used.any(1))
    out = reduce_units(losses, used, reduction)
    return out if reduction == "sum" or per_image else out[0]


@register("lovasz_softmax", modes=("multiclass",))
def lovasz_softmax(
    logits: Tensor,
    target: Tensor,
    *,
    mode: Mode | None = None,
    per_image: bool = False,
    classes: str | Sequence[int] = "present",
    ignore_index: int | None = None,
    reduction: Reduction = "mean",
    validate_args: bool | None = None,
) -> Tensor:
    r"""Lovász-softmax loss: the mean over classes of the Lovász extension of each class's Jaccard loss.

    .. math::

        p_i = \mathrm{softmax}(z_i), \qquad m_i(c) = \bigl|[y_i = c] - p_i(c)\bigr|, \qquad
        \mathcal{L} = \frac{1}{|C'|} \sum_{c \in C'} \bar\Delta_{J_c}(m(c))

    On one-hot probabilities the errors are the indicators of the pixels where prediction and label
    disagree about class :math:`c`, so the loss equals :math:`1 - \mathrm{mIoU}` over the averaged classes.

    Derived in notebook 04, section 4.

    Args:
        logits: ``(B, C, H, W)`` (any ``(B, C, ...)``) raw scores, ``C >= 2``; the softmax is inside.
        target: ``(B, H, W)`` integer class indices, or a one-hot target of the logits' shape (same value).
        mode: ``"multiclass"`` (the only mode; ``None`` reads it from the shapes, and a one-hot target
            needs it spelt out).
        per_image: ``False`` (default, as the paper's code) pools the batch per class (batch mIoU^D);
            ``True`` computes the class average per image, then averages images (mIoU^I).
        classes: ``"present"`` averages the classes with a foreground pixel (in the image if
            ``per_image``, else in the batch); ``"all"`` averages every class, an absent class then
            scoring its largest predicted probability; a list of class indices averages those.
        ignore_index: target value whose pixels are left out.
        reduction: ``"mean"`` (default): over images of each image's mean over its averaged classes
            (``per_image=True``; the paper's code), or over the averaged classes (pooled). ``"none"``:
            the ``(B, C)`` (per image) or ``(C,)`` (pooled) class losses, NaN for classes not averaged,
            so the mean is ``none.nanmean(-1).nanmean()``. ``"sum"``: the sum of those class losses.
        validate_args: value checks for this call; ``None`` follows :func:`iou_lib.set_value_checks`.

    Returns:
        float32 (float64 for float64 logits), also under autocast.

    >>> import torch
    >>> target = torch.tensor([[0, 0, 1, 1]])
    >>> pred = torch.tensor([[0, 1, 1, 1]])  # IoU 1/2 for class 0, 2/3 for class 1
    >>> logits = 50.0 * torch.nn.functional.one_hot(pred, 2).permute(0, 2, 1).float()
    >>> lovasz_softmax(logits, target)  # 1 - (1/2 + 2/3) / 2
    tensor(0.4167)
    """
    per_image = check_flag(per_image, "per_image")
    ignore_index = check_ignore_index(ignore_index)
    check_classes(classes)
    check_choice(reduction, "reduction", REDUCTIONS)
    with call_checks(validate_args):
        resolve_mode(logits, target, mode, ("multiclass",))
        z, y, valid = multiclass_inputs(logits, index_target(logits, target, ignore_index), ignore_index)
    selected = class_mask(classes, z.shape[1], z.device)
    with float_compute(z.device):
        return _lovasz_softmax_probs(torch.softmax(z, dim=1), y, valid, per_image, selected, reduction)
