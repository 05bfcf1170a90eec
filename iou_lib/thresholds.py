"""IoU at every threshold, the tuned threshold and average precision from one pass of histograms.

A binary segmenter outputs a logit :math:`z` per pixel and predicts foreground where :math:`z > \\tau`.
Instead of one confusion matrix per candidate threshold, one pass counts, per image, the foreground and
the background pixels of each *bin* between consecutive thresholds of a fixed grid

.. math::  \\tau_k = \\operatorname{logit}(p_{\\min}) + k\\,\\delta, \\quad k = 0 \\dots T-1,

uniform in logit space from :math:`p_{\\min} = 0.001` to :math:`1 - p_{\\min}` (:data:`THRESHOLD_LOGITS`,
:math:`T = 401`, :math:`\\tau_{200} = 0`, i.e. p = 0.5). With :math:`h^{fg}_j, h^{bg}_j` the counts of
bin :math:`j` (``j`` = number of thresholds strictly below the logit), the counts at threshold :math:`k`
are suffix sums, exact for every grid threshold:

.. math::  TP_k = \\sum_{j > k} h^{fg}_j, \\quad FP_k = \\sum_{j > k} h^{bg}_j, \\quad
           FN_k = \\sum_{j \\le k} h^{fg}_j, \\qquad IoU_k = \\frac{TP_k}{TP_k + FP_k + FN_k}.

The data-set IoU curve (mIoU^D) uses the histogram summed over images; the per-image curve (mIoU^I)
averages :math:`IoU_k` over the images where it is defined (an image with empty target and empty
prediction at threshold k is left out, as in :mod:`iou_lib.metrics`). **Average precision** (area under
the precision-recall curve) is :math:`AP = \\sum_k (R_k - R_{k+1}) P_k` over the thresholds
:math:`-\\infty, \\tau_0, \\dots, \\tau_{T-1}` with :math:`R_T = 0`: torchmetrics'
``binary_average_precision`` with these thresholds (pixels with equal scores are one point of the curve);
the exact AP differs from it only through pixels that share a bin.

**Calibration** comes from the same counts: the fine bins are grouped by the probability at their centre
into :data:`CALIBRATION_BINS` equal-width bins :math:`[0, 0.1), \\dots, [0.9, 1]`; bin :math:`b` holds
:math:`n_b` pixels, a share :math:`f_b` of them foreground, at mean confidence :math:`c_b` (the
count-weighted centres of its fine bins, within half a fine bin, :math:`\\le 0.005`, of the exact mean),
and the expected calibration error is :math:`ECE = \\sum_b (n_b / n)\\,|f_b - c_b|` (torchmetrics'
``binary_calibration_error`` with 10 bins, up to that rounding and pixels that a bin boundary splits).

>>> z = torch.tensor([[[-3.0, 0.2], [2.0, -0.1]]])  # one 2x2 image of logits
>>> y = torch.tensor([[[0, 1], [1, 0]]])
>>> h = ThresholdHistogram()
>>> h.update(z, y)
>>> c = h.compute()
>>> round(c.iou_d[c.index(0.5)], 3), round(c.ap, 3)
(1.0, 1.0)
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "CALIBRATION_BINS",
    "P_MIN",
    "THRESHOLD_LOGITS",
    "ThresholdCurves",
    "ThresholdHistogram",
    "threshold_logits",
]

P_MIN = 0.001
CALIBRATION_BINS = 10
"""Equal-width probability bins of the reliability diagram and the expected calibration error."""


def threshold_logits(n_per_side: int = 200, p_min: float = P_MIN) -> Tensor:
    """``2 * n_per_side + 1`` logits uniform from ``logit(p_min)`` to ``-logit(p_min)``; the middle is 0.

    >>> t = threshold_logits(2, 0.1)
    >>> [round(float(torch.sigmoid(v)), 4) for v in t]
    [0.1, 0.25, 0.5, 0.75, 0.9]
    """
    if n_per_side < 1 or not 0 < p_min < 0.5:
        raise ValueError(f"need n_per_side >= 1 and 0 < p_min < 0.5, got {n_per_side}, {p_min}")
    top = math.log((1 - p_min) / p_min)
    return torch.arange(-n_per_side, n_per_side + 1, dtype=torch.float64) * (top / n_per_side)


THRESHOLD_LOGITS = threshold_logits().float()
"""The search grid (float32 logits, the values the comparisons use): 401 points, p = 0.001 ... 0.999."""


@dataclasses.dataclass(frozen=True)
class ThresholdCurves:
    """What :meth:`ThresholdHistogram.compute` returns (plain Python numbers, curves as lists).

    ``thresholds``: the grid as probabilities; ``iou_d``/``iou_i``: data-set and mean per-image IoU at
    each; ``ap``: average precision; ``pixel_acc``: accuracy at each threshold; ``mid_frac``: share of
    pixels with p in [0.4, 0.6] (grid thresholds nearest to them); ``logit_sd``: standard deviation of
    all logits (clamped to the grid's range); ``fg_frac``: share of foreground pixels. Calibration (see
    the module docstring): per probability bin, the mean confidence ``calib_conf``, the observed
    foreground share ``calib_freq`` (both NaN for an empty bin) and the share of pixels ``calib_share``;
    ``ece``: the expected calibration error.
    """

    thresholds: list[float]
    iou_d: list[float]
    iou_i: list[float]
    pixel_acc: list[float]
    ap: float
    mid_frac: float
    logit_sd: float
    fg_frac: float
    calib_conf: list[float]
    calib_freq: list[float]
    calib_share: list[float]
    ece: float

    def index(self, p: float) -> int:
        """Index of the grid threshold nearest to probability ``p``."""
        return min(range(len(self.thresholds)), key=lambda k: abs(self.thresholds[k] - p))

    def best(self) -> int:
        """Index of the threshold with the highest data-set IoU (NaN counts as lowest; first on ties)."""
        return max(
            range(len(self.iou_d)), key=lambda k: -math.inf if math.isnan(self.iou_d[k]) else self.iou_d[k]
        )


class ThresholdHistogram:
    """Streaming per-image histograms of binary logits split by target (see the module docstring).

    ``update(logits (B, H, W), target (B, H, W) int, valid=None)``: pixels where ``valid`` is False (e.g.
    ``target == ignore_index``) are not counted. Everything stays on the logits' device (no host sync
    per batch). ``all_reduce()`` sums the counts over a process group; ``compute()`` gives the curves.
    """

    def __init__(self, logits: Tensor = THRESHOLD_LOGITS) -> None:
        self.edges = logits.float()
        self.t = len(self.edges)
        self.hist: Tensor | None = None  # (2, T + 1): background, foreground counts per bin
        self.iou_i_sum: Tensor | None = None  # (T,) sum of per-image IoU where defined
        self.iou_i_n: Tensor | None = None  # (T,) number of images where defined
        self.moments: Tensor | None = None  # (2,) sum of clamped logits and of their squares

    def _init(self, device: torch.device) -> None:
        self.edges = self.edges.to(device)
        self.hist = torch.zeros(2, self.t + 1, dtype=torch.int64, device=device)
        self.iou_i_sum = torch.zeros(self.t, dtype=torch.float64, device=device)
        self.iou_i_n = torch.zeros(self.t, dtype=torch.int64, device=device)
        self.moments = torch.zeros(2, dtype=torch.float64, device=device)

    def _bins(self, z: Tensor) -> Tensor:
        """Number of grid thresholds strictly below each logit (``torch.bucketize``, but by arithmetic on
        the uniform grid, then one exact comparison either side against the float32 thresholds)."""
        e = self.edges
        step = (e[-1] - e[0]) / (self.t - 1)
        bins = ((z - e[0]) / step).floor_().add_(1).clamp_(0, self.t).long()
        padded = torch.cat(
            [e.new_full((1,), -math.inf), e, e.new_full((1,), math.inf)]
        )  # padded[j] = e[j - 1]
        bins -= (z <= padded[bins]).long()
        bins += (z > padded[bins + 1]).long()
        return bins.clamp_(0, self.t)  # z = -inf

    def update(self, logits: Tensor, target: Tensor, valid: Tensor | None = None) -> None:
        if logits.shape != target.shape or logits.dim() != 3:
            raise ValueError(
                "logits and target must both be (B, H, W), got "
                f"{tuple(logits.shape)} and {tuple(target.shape)}"
            )
        if self.hist is None:
            self._init(logits.device)
        b = logits.shape[0]
        z = logits.detach().float().reshape(b, -1).contiguous()
        fg = target.reshape(b, -1) == 1
        bins = self._bins(z)
        key = (torch.arange(b, device=z.device)[:, None] * 2 + fg.long()) * (self.t + 1) + bins
        if valid is not None:
            v = valid.reshape(b, -1)
            key = key[v]
            zc = z.clamp(self.edges[0], self.edges[-1])[v]
        else:
            zc = z.clamp(self.edges[0], self.edges[-1])
        h = torch.bincount(key.reshape(-1), minlength=b * 2 * (self.t + 1)).reshape(b, 2, self.t + 1)
        self.hist += h.sum(0)
        tp, fp, fn = _counts(h)
        den = tp + fp + fn
        self.iou_i_sum += torch.where(den > 0, tp / den.clamp_min(1), 0.0).sum(0, dtype=torch.float64)
        self.iou_i_n += (den > 0).sum(0)
        zc = zc.double()
        self.moments += torch.stack([zc.sum(), (zc * zc).sum()])

    def all_reduce(self) -> None:
        """Sum the counts over the default process group (call on every rank)."""
        if self.hist is None:
            raise RuntimeError("all_reduce before any update: every rank needs at least one batch")
        for t in (self.hist, self.iou_i_sum, self.iou_i_n, self.moments):
            dist.all_reduce(t)

    def compute(self) -> ThresholdCurves:
        if self.hist is None:
            raise ValueError("no pixels seen: the evaluation data are empty")
        hist = self.hist.double()
        tp, fp, fn = _counts(hist[None])
        tp, fp, fn = tp[0], fp[0], fn[0]
        n = hist.sum()
        tn = n - tp - fp - fn
        iou_d = tp / (tp + fp + fn)  # NaN where undefined (no foreground anywhere, none predicted)
        iou_i = self.iou_i_sum / self.iou_i_n  # NaN where no image is defined
        # AP over -inf (everything positive) and the grid: R_T = 0, P = 0 where nothing is predicted
        n_fg = hist[1].sum()
        tp_all = torch.cat([n_fg[None], tp])
        pos_all = torch.cat([n[None], tp + fp])
        precision = torch.where(pos_all > 0, tp_all / pos_all.clamp_min(1), 0.0)
        recall = torch.cat([tp_all / n_fg, torch.zeros(1, dtype=torch.float64, device=tp.device)])
        ap = float((recall[:-1] - recall[1:]).mul(precision).sum()) if n_fg > 0 else math.nan
        lo, hi = (
            int(torch.bucketize(torch.tensor(math.log(p / (1 - p))), self.edges.cpu())) for p in (0.4, 0.6)
        )
        mean = self.moments[0] / n
        var = (self.moments[1] / n - mean * mean).clamp_min(0)
        conf, freq, share = _reliability(hist, self.edges.double())
        ece = float(torch.nansum(share * (freq - conf).abs()))
        return ThresholdCurves(
            thresholds=torch.sigmoid(self.edges.double()).tolist(),
            iou_d=iou_d.tolist(),
            iou_i=iou_i.tolist(),
            pixel_acc=((tp + tn) / n).tolist(),
            ap=ap,
            mid_frac=float(hist[:, lo : hi + 1].sum() / n),
            logit_sd=float(var.sqrt()),
            fg_frac=float(n_fg / n),
            calib_conf=conf.tolist(),
            calib_freq=freq.tolist(),
            calib_share=share.tolist(),
            ece=ece,
        )


def _counts(hist: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """TP, FP, FN at every threshold from histograms ``(..., 2, T + 1)`` (suffix and prefix sums)."""
    above = hist.flip(-1).cumsum(-1).flip(-1)[..., 1:]  # counts in bins j > k, for k = 0 .. T-1
    tp, fp = above[..., 1, :], above[..., 0, :]
    fn = hist[..., 1, :].sum(-1, keepdim=True) - tp
    return tp, fp, fn


def _reliability(hist: Tensor, edges: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Mean confidence, foreground share and share of pixels per calibration bin, from the fine
    histograms ``(2, T + 1)`` over the grid ``edges`` (a fine bin goes where its centre's probability
    falls; the two open-ended tail bins are centred half a step beyond the grid)."""
    half = (edges[1] - edges[0]) / 2
    centre = torch.sigmoid(torch.cat([edges[:1] - half, edges[:-1] + half, edges[-1:] + half]))
    coarse = (centre * CALIBRATION_BINS).long().clamp_(max=CALIBRATION_BINS - 1)
    count = hist.sum(0)
    sums = torch.zeros(3, CALIBRATION_BINS, dtype=torch.float64, device=hist.device)
    for row, values in enumerate((count, hist[1], count * centre)):
        sums[row].index_add_(0, coarse, values)
    n, fg, conf_sum = sums
    empty = n == 0
    per = n.clamp_min(1)
    return (
        torch.where(empty, math.nan, conf_sum / per),
        torch.where(empty, math.nan, fg / per),
        n / count.sum(),
    )
