"""iou_lib.gradients: autograd fields agree with the closed forms the notebooks derive; mass statistics."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iou_lib.data.synthetic import blob_masks
from iou_lib.gradients import (
    accepts,
    gradient_field,
    gradient_mass,
    mass_table,
    progress_table,
    synthetic_logits,
)
from iou_lib.losses import functional


def _case(seed=0, shape=(3, 1, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(shape, generator=g) < 0.2).double()
    y.view(shape[0], -1)[:, 0] = 1
    z = torch.randn(shape, generator=g, dtype=torch.float64) * 2
    return z, y


def _closed_form_soft_iou(z, y, dims):
    p = torch.sigmoid(z)
    inter = (p * y).sum(dims, keepdim=True)
    union = (p + y - p * y).sum(dims, keepdim=True)
    return torch.where(y > 0, -1 / union, inter / union**2) * p * (1 - p)


def test_soft_iou_field_is_the_rahman_wang_closed_form_batch():
    z, y = _case()
    got = gradient_field("soft_iou", z, y, per_image=False)
    torch.testing.assert_close(got, _closed_form_soft_iou(z, y, (0, 1, 2, 3)), rtol=1e-10, atol=1e-12)


def test_soft_iou_field_per_image_is_closed_form_over_batch_size():
    z, y = _case(1)
    got = gradient_field("soft_iou", z, y, per_image=True)
    torch.testing.assert_close(
        got, _closed_form_soft_iou(z, y, (1, 2, 3)) / z.shape[0], rtol=1e-10, atol=1e-12
    )


def test_bce_field_is_p_minus_y_over_n():
    z, y = _case(2)
    got = gradient_field("bce", z, y)
    torch.testing.assert_close(got, (torch.sigmoid(z) - y) / z.numel(), rtol=1e-10, atol=1e-14)


def test_field_agrees_with_finite_differences_for_lovasz_hinge():
    z, y = _case(3, (1, 1, 4, 4))
    got = gradient_field("lovasz_hinge", z, y).flatten()
    f, eps = functional("lovasz_hinge"), 1e-6
    for i in range(z.numel()):
        step = torch.zeros_like(z).flatten()
        step[i] = eps
        step = step.view_as(z)
        fd = (f(z + step, y) - f(z - step, y)) / (2 * eps)
        assert abs(fd.item() - got[i].item()) < 1e-6


def test_field_does_not_touch_the_input_and_accepts_callables_and_specs():
    z, y = _case(4)
    z0 = z.clone()
    g1 = gradient_field(lambda a, b: (a * b).sum(), z, y)
    torch.testing.assert_close(g1, y)
    torch.testing.assert_close(z, z0)
    assert not z.requires_grad
    spec = gradient_field("0.5*bce+0.5*soft_iou", z, y)
    torch.testing.assert_close(
        spec, 0.5 * gradient_field("bce", z, y) + 0.5 * gradient_field("soft_iou", z, y)
    )


def test_bad_inputs_raise_clear_errors():
    z, y = _case()
    with pytest.raises(TypeError, match="logits and target must be tensors"):
        gradient_field("bce", z.numpy(), y)
    with pytest.raises(TypeError, match="floating-point"):
        gradient_field("bce", z.long(), y)
    with pytest.raises(ValueError, match="compound spec"):
        gradient_field("0.5*bce+0.5*soft_iou", z, y, per_image=True)
    with pytest.raises(ValueError, match="unknown loss"):
        gradient_field("nope", z, y)
    with pytest.raises(ValueError, match="target must have grad's shape"):
        gradient_mass(z, y[:1])


def test_mass_at_uninformed_prediction_matches_the_formulas():
    y = blob_masks(1, 40, 0.01, seed=0).double()
    n, k = y.numel(), y.sum().item()
    z = torch.zeros_like(y)
    bce = gradient_mass(gradient_field("bce", z, y), y)
    iou = gradient_mass(gradient_field("soft_iou", z, y), y)
    assert bce["bg_over_fg"] == pytest.approx((n - k) / k, rel=1e-12)
    assert iou["bg_over_fg"] == pytest.approx((n - k) / (n + k), rel=1e-12)
    assert 0.5 < iou["fg_share"] < 0.52 and bce["fg_share"] < 0.02


def test_mass_edge_cases():
    m = gradient_mass(torch.tensor([0.0, 1.0]), torch.tensor([1, 0]))
    assert m["bg_over_fg"] == math.inf and m["fg_share"] == 0
    m = gradient_mass(torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2))  # target without the channel dim
    assert math.isnan(m["bg_over_fg"]) and math.isnan(m["fg_mean"]) and m["bg_mean"] == 0


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(-3, 3), st.floats(0, 2))
def test_soft_iou_push_depends_on_the_label_only(seed, confidence, noise):
    """Property of the paper's gradient: dL/dp is -1/U on every fg pixel and I/U^2 on every bg pixel."""
    z, y = _case(seed)
    z = synthetic_logits(y, confidence, noise, seed)
    g = gradient_field("soft_iou", z, y, per_image=False)
    p = torch.sigmoid(z)
    dp = g / (p * (1 - p))
    fg, bg = dp[y > 0], dp[y == 0]
    assert (fg < 0).all() and (bg >= 0).all()
    assert (
        fg.max() - fg.min() <= 1e-9 * fg.abs().max() and bg.max() - bg.min() <= 1e-9 * bg.abs().max() + 1e-300
    )
    # |bg| / |fg| = I / U <= 1
    assert bg[0] / -fg[0] <= 1 + 1e-12


def test_synthetic_logits_states():
    y = torch.tensor([1.0, 0.0, 1.0])
    assert synthetic_logits(y, -2.0).tolist() == [-2.0, 2.0, -2.0]
    a, b = synthetic_logits(y, 1.0, 0.5, seed=7), synthetic_logits(y, 1.0, 0.5, seed=7)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, synthetic_logits(y, 1.0, 0.5, seed=8))
    with pytest.raises(ValueError, match="noise must be >= 0"):
        synthetic_logits(y, 1.0, -1.0)


def test_accepts_and_mass_table():
    assert accepts("soft_iou", "per_image") and not accepts("bce", "per_image")
    df = mass_table(["bce", "soft_iou"], [0.02, 0.2], size=24, n=2)
    assert list(df["loss"]) == ["bce", "soft_iou"] * 2
    assert {"fg_frac", "fg_actual", "fg_share", "bg_over_fg"} <= set(df.columns)
    bce = df[df["loss"] == "bce"].sort_values("fg_frac")
    assert bce["bg_over_fg"].is_monotonic_decreasing  # rarer foreground -> BCE pushes background harder


@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 1.0), (0.3, 0.7), (0.7, 0.3)])
def test_progress_table_follows_the_state_dependent_ratio(alpha, beta):
    """Tversky (soft IoU at alpha = beta = 1): before the sigmoid factor, bg/fg push ratio is
    (N - |Y|) alpha I / (|Y| (alpha FP + beta |Y|)), i.e. (N - |Y|)/|Y| * J for the soft IoU."""
    confidences = [0.0, 1.0, 2.5]
    t = progress_table("tversky", [0.02, 0.2], confidences, size=24, n=2, alpha=alpha, beta=beta)
    assert len(t) == 6
    for frac, grp in t.groupby("fg_frac"):
        y = blob_masks(2, 24, frac, seed=0).double()
        n, k = y.numel(), y.sum().item()
        for c, row in zip(confidences, grp.itertuples(), strict=True):
            p = torch.sigmoid(synthetic_logits(y, c, 1.0, seed=0))
            inter, fp = (p * y).sum().item(), (p * (1 - y)).sum().item()
            ratio = (n - k) * alpha * inter / (k * (alpha * fp + beta * k))
            assert row.fg_share_dp == pytest.approx(1 / (1 + ratio), rel=1e-9)
        assert grp["soft_iou"].is_monotonic_increasing  # a larger margin is a better prediction
        assert grp["fg_share_dp"].is_monotonic_decreasing  # ... whose push moves to the background
