"""Threshold curves and AP from histograms, against brute force and torchmetrics; collapse detection."""

import pytest
import torch
from torchmetrics.functional.classification import binary_average_precision, binary_calibration_error

from iou_lib.metrics import IoUAccumulator
from iou_lib.thresholds import CALIBRATION_BINS, THRESHOLD_LOGITS, ThresholdHistogram, threshold_logits
from iou_lib.train import evaluate
from iou_lib.train.evaluation import collapse_hint


def _data(seed, n=6, size=24):
    g = torch.Generator().manual_seed(seed)
    target = (torch.rand(n, size, size, generator=g) < 0.15).long()
    target[0] = 0  # an image without foreground
    logits = 2.5 * torch.randn(n, size, size, generator=g) + 3.0 * (target - 0.5)
    return logits, target


def test_grid_is_fine_uniform_in_logit_and_reaches_the_tails():
    p = torch.sigmoid(THRESHOLD_LOGITS.double())
    assert len(p) >= 200 and p[0] == pytest.approx(0.001, rel=1e-5)
    assert p[-1] == pytest.approx(0.999, abs=1e-8)
    assert float(THRESHOLD_LOGITS[len(p) // 2]) == 0.0  # p = 0.5 is on the grid
    steps = THRESHOLD_LOGITS.double().diff()
    assert steps.max() - steps.min() < 1e-5
    with pytest.raises(ValueError, match="n_per_side >= 1"):
        threshold_logits(0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_histogram_iou_equals_brute_force_at_random_grid_thresholds(seed):
    logits, target = _data(seed)
    valid = torch.ones_like(target, dtype=torch.bool)
    valid[:, :3] = False  # ignored rows
    hist = ThresholdHistogram()
    for part in (slice(0, 4), slice(4, 6)):  # two batches
        hist.update(logits[part], target[part], valid[part])
    c = hist.compute()
    ks = torch.randperm(len(THRESHOLD_LOGITS), generator=torch.Generator().manual_seed(seed))[:20]
    for k in ks.tolist():
        acc = IoUAccumulator(2, ignore_index=255)
        acc.update((logits > THRESHOLD_LOGITS[k]).long(), torch.where(valid, target, 255))
        s = acc.compute()
        assert c.iou_d[k] == pytest.approx(float(s.iou[1]), rel=1e-6, nan_ok=True), k  # float32 reference
        assert c.iou_i[k] == pytest.approx(float(s.iou_per_image[1]), abs=1e-6, nan_ok=True), k
        assert c.pixel_acc[k] == pytest.approx(float(s.pixel_accuracy), rel=1e-6)
    assert c.best() == max(range(len(c.iou_d)), key=lambda k: c.iou_d[k])


@pytest.mark.parametrize("seed", [0, 3])
def test_ap_equals_torchmetrics(seed):
    logits, target = _data(seed)
    hist = ThresholdHistogram()
    hist.update(logits, target)
    ap = hist.compute().ap
    prob = torch.sigmoid(logits.double())
    # the same thresholds (everything positive, then the grid): equal up to rounding
    grid = torch.cat([torch.zeros(1, dtype=torch.float64), torch.sigmoid(THRESHOLD_LOGITS.double())])
    binned = float(binary_average_precision(prob.flatten(), target.flatten(), thresholds=grid))
    assert ap == pytest.approx(binned, abs=1e-6)  # torchmetrics sums in float32
    # the exact AP (every pixel its own threshold) differs only through pixels sharing a bin
    exact = float(binary_average_precision(prob.flatten(), target.flatten()))
    assert abs(ap - exact) < 0.005


@pytest.mark.parametrize("seed", [0, 4])
@pytest.mark.parametrize("shift", [-4.0, 0.0, 3.0])  # over-, well- and under-confident foreground
def test_calibration_equals_torchmetrics_and_the_binned_pixels(seed, shift):
    """ECE from the fine histograms equals torchmetrics' 10-bin ECE within the binning error (centres of
    the fine bins, <= 0.005), and each bin's foreground share and mean confidence match the pixels whose
    probability falls in it, as far as a fine bin cut by a bin edge lets them."""
    logits, target = _data(seed)
    logits = logits + shift
    hist = ThresholdHistogram()
    hist.update(logits, target)
    c = hist.compute()
    prob = torch.sigmoid(logits.double()).flatten()
    ref = float(binary_calibration_error(prob.float(), target.flatten(), n_bins=CALIBRATION_BINS))
    assert c.ece == pytest.approx(ref, abs=0.006)
    assert sum(c.calib_share) == pytest.approx(1.0)
    which = (prob * CALIBRATION_BINS).long().clamp(max=CALIBRATION_BINS - 1)
    for b in range(CALIBRATION_BINS):
        inside = which == b
        if inside.sum() < 200:  # too few pixels for a boundary pixel not to matter
            continue
        assert c.calib_share[b] == pytest.approx(float(inside.double().mean()), abs=0.01)
        assert c.calib_conf[b] == pytest.approx(float(prob[inside].mean()), abs=0.01)
        assert c.calib_freq[b] == pytest.approx(float(target.flatten()[inside].double().mean()), abs=0.05)


def test_constant_predictor_is_collapsed_with_a_hint():
    class Constant(torch.nn.Module):
        def __init__(self, value):
            super().__init__()
            self.value = torch.nn.Parameter(torch.tensor(value))

        def forward(self, x):
            return self.value.expand(x.shape[0], 1, *x.shape[2:])

    logits, target = _data(0)
    images = torch.zeros(len(target), 3, *target.shape[1:])
    for value in (0.01, -4.0):  # stuck at the constant-logit point, or predicting nothing at all
        out = evaluate(Constant(value), [(images, target)])
        hint = collapse_hint(out, "lovasz_hinge")
        assert hint is not None and "'bce:K,lovasz_hinge'" in hint, out
    out = evaluate(Constant(0.0), [(images, target)])
    assert out["mid_frac"] == 1.0 and out["logit_sd"] < 1e-6 and out["ap"] == pytest.approx(0.15, abs=0.03)
    # an informative predictor is not collapsed
    h = ThresholdHistogram()
    h.update(logits, target)
    c = h.compute()
    assert collapse_hint({"mid_frac": c.mid_frac, "logit_sd": c.logit_sd}, "bce") is None


def test_empty_evaluation_and_bad_shapes_are_errors():
    with pytest.raises(ValueError, match="no pixels seen"):
        ThresholdHistogram().compute()
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        ThresholdHistogram().update(torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 4))


def test_bins_by_arithmetic_equal_bucketize_at_and_next_to_every_threshold():
    h = ThresholdHistogram()
    up, down = torch.tensor(float("inf")), torch.tensor(-float("inf"))
    z = torch.cat(
        [
            THRESHOLD_LOGITS,
            torch.nextafter(THRESHOLD_LOGITS, up),
            torch.nextafter(THRESHOLD_LOGITS, down),
            torch.tensor([float("inf"), -float("inf"), 0.0, -0.0, 1e30, -1e30]),
            torch.randn(5000, generator=torch.Generator().manual_seed(0)) * 4,
        ]
    )
    assert torch.equal(h._bins(z), torch.bucketize(z, THRESHOLD_LOGITS))
