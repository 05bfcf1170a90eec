"""One evaluation pass: IoU at 0.5 and at every threshold of a fine grid, the tuned threshold, AP, collapse.

Binary tasks (one logit per pixel) go through :class:`iou_lib.thresholds.ThresholdHistogram`: one pass,
no per-threshold work per batch, so validating ten or more times per run stays cheap. Multi-class tasks
are scored at the argmax with :class:`iou_lib.metrics.IoUAccumulator`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn

from iou_lib.metrics import IoUAccumulator, predict
from iou_lib.thresholds import ThresholdCurves, ThresholdHistogram
from iou_lib.train.runtime import autocast, to_device

__all__ = ["COLLAPSE_LOGIT_SD", "COLLAPSE_MID_FRAC", "collapse_hint", "evaluate", "evaluate_groups"]

COLLAPSE_MID_FRAC = 0.95
"""A run is *collapsed* when more than this share of its test pixels has p in [0.4, 0.6] ..."""
COLLAPSE_LOGIT_SD = 0.1
"""... or when the standard deviation of its test logits is below this (a near-constant predictor)."""
CURVE_STRIDE = 10
"""Every 10th grid threshold goes into the coarse ``curve_d@<t>`` metrics (41 points)."""


def evaluate(
    model: nn.Module,
    data: Iterable[tuple[Tensor, Tensor]],
    *,
    num_classes: int = 1,
    ignore_index: int | None = None,
    class_names: Sequence[str] | None = None,
    device: torch.device | str | None = None,
    amp: bool | None = None,
    val_threshold: float | None = None,
) -> dict[str, float]:
    """IoU metrics of ``model`` over ``data``: batches ``(images (B, 3, H, W), targets (B, H, W) int)``.

    Always: ``miou_d`` (data-set IoU, one confusion over all pixels), ``miou_i`` (mean per-image IoU; images
    where the class is absent from target and prediction are left out, see :mod:`iou_lib.metrics`) and
    ``pixel_acc``, at p = 0.5 (argmax for ``num_classes >= 2``). Binary tasks (``num_classes=1``; the means
    are the foreground IoU) also: ``miou_d@tuned`` and ``threshold@tuned`` (best data-set IoU on the 401-point
    grid of :mod:`iou_lib.thresholds`, p = 0.001 ... 0.999), ``ap`` (average precision), ``mid_frac`` and
    ``logit_sd`` (see :func:`collapse_hint`), ``fg_frac`` (share of foreground pixels), ``ece`` (expected
    calibration error) with the reliability diagram ``calib_conf@<b>``, ``calib_freq@<b>``,
    ``calib_share@<b>`` (10 probability bins), a coarse curve ``curve_d@<t>`` and, with ``val_threshold`` (a
    threshold tuned elsewhere, snapped to the grid), ``miou_d@val_thr``, ``miou_i@val_thr`` and
    ``threshold@val``. Multi-class: ``iou_d/<class>`` and ``iou_i/<class>``. Pixels whose target is
    ``ignore_index`` are not counted. Under an initialised process group the counts are summed over ranks
    (each rank passes its shard).
    """
    stacked = ((x, y[:, None]) for x, y in data)
    return evaluate_groups(
        model,
        stacked,
        groups=1,
        num_classes=num_classes,
        ignore_index=ignore_index,
        class_names=class_names,
        device=device,
        amp=amp,
        val_thresholds=[val_threshold],
    )[0]


@torch.no_grad()
def evaluate_groups(
    model: nn.Module,
    data: Iterable[tuple[Tensor, Tensor]],
    *,
    groups: int,
    num_classes: int = 1,
    ignore_index: int | None = None,
    class_names: Sequence[str] | None = None,
    device: torch.device | str | None = None,
    amp: bool | None = None,
    val_thresholds: Sequence[float | None] | None = None,
) -> list[dict[str, float]]:
    """:func:`evaluate` for a ``groups=S`` model (:mod:`iou_lib.models`): one forward pass scores S
    networks, each on its own data. Batches are ``(images (B, S * 3, H, W), targets (B, S, H, W))``;
    returns S metric dicts; ``val_thresholds`` holds one threshold (or ``None``) per network."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    amp = device.type == "cuda" if amp is None else amp
    binary = num_classes == 1
    hists = [ThresholdHistogram() for _ in range(groups)]
    accs = [IoUAccumulator(num_classes, ignore_index=ignore_index) for _ in range(0 if binary else groups)]
    was_training = model.training
    model.eval()
    try:
        for x, y in data:
            x, y = to_device(x, y, device)
            with autocast(device, amp):
                logits = model(x)
            logits = logits.float().unflatten(1, (groups, num_classes))
            for g in range(groups):
                if binary:
                    valid = None if ignore_index is None else y[:, g] != ignore_index
                    hists[g].update(logits[:, g, 0], y[:, g], valid)
                else:
                    accs[g].update(predict(logits[:, g], multiclass=True), y[:, g])
    finally:
        model.train(was_training)
    reduce = dist.is_available() and dist.is_initialized()
    thresholds = list(val_thresholds) if val_thresholds is not None else [None] * groups
    if binary:
        for h in hists if reduce else ():
            h.all_reduce()
        return [_binary_metrics(h.compute(), t) for h, t in zip(hists, thresholds, strict=True)]
    names = list(class_names) if class_names else [str(c) for c in range(num_classes)]
    out = []
    for acc in accs:
        if reduce:
            acc.all_reduce(device if device.type == "cuda" else torch.device("cpu"))
        s = acc.compute()
        m = {"miou_d": float(s.miou), "miou_i": float(s.miou_per_image), "pixel_acc": float(s.pixel_accuracy)}
        m.update({f"iou_d/{n}": float(v) for n, v in zip(names, s.iou, strict=True)})
        m.update({f"iou_i/{n}": float(v) for n, v in zip(names, s.iou_per_image, strict=True)})
        out.append(m)
    return out


def _binary_metrics(c: ThresholdCurves, val_threshold: float | None) -> dict[str, float]:
    half, best = c.index(0.5), c.best()
    out = {
        "miou_d": c.iou_d[half],
        "miou_i": c.iou_i[half],
        "pixel_acc": c.pixel_acc[half],
        "miou_d@tuned": c.iou_d[best],
        "threshold@tuned": c.thresholds[best],
        "ap": c.ap,
        "mid_frac": c.mid_frac,
        "logit_sd": c.logit_sd,
        "fg_frac": c.fg_frac,
        "ece": c.ece,
    }
    if val_threshold is not None:
        k = c.index(val_threshold)
        out.update(
            {"miou_d@val_thr": c.iou_d[k], "miou_i@val_thr": c.iou_i[k], "threshold@val": c.thresholds[k]}
        )
    out.update(
        {f"curve_d@{c.thresholds[k]:.4g}": c.iou_d[k] for k in range(0, len(c.thresholds), CURVE_STRIDE)}
    )
    for name in ("calib_conf", "calib_freq", "calib_share"):  # the reliability diagram, bin b = [b/10, ...)
        out.update({f"{name}@{b}": v for b, v in enumerate(getattr(c, name))})
    return out


def collapse_hint(metrics: dict[str, float], loss: str) -> str | None:
    """``None`` for a healthy binary run, else why its predictions count as collapsed and what to try.

    Collapsed: more than :data:`COLLAPSE_MID_FRAC` of the pixels have p in [0.4, 0.6], or the logits'
    standard deviation is below :data:`COLLAPSE_LOGIT_SD` (a near-constant predictor).

    >>> collapse_hint({"mid_frac": 0.99, "logit_sd": 0.02}, "lovasz_hinge")[:40]
    'predictions are near constant (99 % of p'
    >>> collapse_hint({"mid_frac": 0.01, "logit_sd": 3.0}, "bce") is None
    True
    """
    mid, sd = metrics.get("mid_frac", math.nan), metrics.get("logit_sd", math.nan)
    if not (mid > COLLAPSE_MID_FRAC or sd < COLLAPSE_LOGIT_SD):
        return None
    text = f"predictions are near constant ({mid:.0%} of pixels with p in [0.4, 0.6], logit sd {sd:.3g})"
    text = text.replace("%", " %")
    if "lovasz_hinge" in loss:
        return text + (
            "; the Lovász hinge from scratch stays at the constant-logit point: start from BCE as its "
            "authors advise, e.g. loss 'bce:K,lovasz_hinge' (K steps of BCE) or a mix "
            "'0.5*bce+0.5*lovasz_hinge'"
        )
    return text + "; try a BCE warm-up ('bce:K,<loss>'), another learning rate or more steps"
