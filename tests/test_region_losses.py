"""soft_dice, tversky and jaccard_metric: identities, MONAI references, soft labels, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from loss_inputs import binary_case, multiclass_case, seeds, small_dims
from monai.losses import DiceLoss, TverskyLoss

from iou_lib.losses import jaccard_metric, soft_dice, soft_iou, tversky


def value_and_grad(fn, logits, target, **kwargs):
    x = logits.clone().requires_grad_(True)
    value = fn(x, target, **kwargs)
    (grad,) = torch.autograd.grad(value, x)
    return value.detach(), grad


@settings(deadline=None, max_examples=40)
@given(seed=seeds, b=small_dims, n=small_dims, per_image=st.booleans())
def test_dice_is_2j_over_1_plus_j_at_binary_predictions(seed, b, n, per_image):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.where(torch.rand(b, 1, n, 2, generator=gen) < 0.5, 40.0, -40.0).double()
    target = (torch.rand(b, 1, n, 2, generator=gen) < 0.5).double()
    target[:, 0, 0, 0] = 1
    if per_image:  # the identity holds per unit; compare unit by unit
        for i in range(b):
            j = 1 - soft_iou(logits[i : i + 1], target[i : i + 1])
            d = 1 - soft_dice(logits[i : i + 1], target[i : i + 1])
            assert abs(d - 2 * j / (1 + j)) < 1e-12
    else:
        j, d = 1 - soft_iou(logits, target), 1 - soft_dice(logits, target)
        assert abs(d - 2 * j / (1 + j)) < 1e-12


@pytest.mark.parametrize("per_image", [True, False])
def test_tversky_special_cases_are_dice_and_iou(per_image):
    logits, target = binary_case(1)
    kw = {"per_image": per_image}
    torch.testing.assert_close(
        value_and_grad(tversky, logits, target, alpha=0.5, beta=0.5, **kw),
        value_and_grad(soft_dice, logits, target, **kw),
    )
    torch.testing.assert_close(
        value_and_grad(tversky, logits, target, alpha=1.0, beta=1.0, **kw),
        value_and_grad(soft_iou, logits, target, **kw),
    )


def test_dice_and_tversky_formulas():
    logits, target = binary_case(2, b=1)
    p, y = torch.sigmoid(logits).flatten(), target.flatten()
    tp, fp, fn = (p * y).sum(), (p * (1 - y)).sum(), ((1 - p) * y).sum()
    dice = 1 - (2 * tp + 0.3) / (p.sum() + y.sum() + 0.3)
    torch.testing.assert_close(soft_dice(logits, target, smooth=0.3), dice)
    index = (tp + 0.1) / (tp + 0.3 * fp + 0.7 * fn + 0.1)
    torch.testing.assert_close(tversky(logits, target, alpha=0.3, beta=0.7, smooth=0.1), 1 - index)


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_dice_matches_monai_per_image(kind):
    if kind == "binary":
        logits, target = binary_case(3, b=4)
        target[1] = 0
        reference = DiceLoss(sigmoid=True)(logits, target)
    else:
        logits, target = multiclass_case(3, c=5)
        reference = DiceLoss(softmax=True, to_onehot_y=True)(logits, target.unsqueeze(1))
    # MONAI: 1 - (2I + 1e-5)/(sum p + sum y + 1e-5) per image and class, empty units kept ("raw").
    ours = soft_dice(logits, target, per_image=True, smooth=1e-5, empty="raw")
    assert abs(ours.item() - reference.item()) < 1e-10


@pytest.mark.parametrize(("alpha", "beta"), [(0.3, 0.7), (0.5, 0.5), (0.8, 0.2)])
@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_tversky_matches_monai_per_image(kind, alpha, beta):
    if kind == "binary":
        logits, target = binary_case(4, b=3)
        target[0] = 0
        reference = TverskyLoss(alpha=alpha, beta=beta, sigmoid=True)(logits, target)
    else:
        logits, target = multiclass_case(4, c=4)
        loss = TverskyLoss(alpha=alpha, beta=beta, softmax=True, to_onehot_y=True)
        reference = loss(logits, target.unsqueeze(1))
    ours = tversky(logits, target, alpha=alpha, beta=beta, per_image=True, smooth=1e-5, empty="raw")
    assert abs(ours.item() - reference.item()) < 1e-10


@pytest.mark.parametrize("loss", [soft_dice, tversky, jaccard_metric])
def test_region_losses_share_the_empty_rules(loss):
    logits, target = binary_case(5, b=2)
    target[1] = 0
    p1 = torch.sigmoid(logits[1]).mean()
    first = loss(logits[:1], target[:1], per_image=True)
    torch.testing.assert_close(loss(logits, target, per_image=True), (first + p1) / 2)
    torch.testing.assert_close(loss(logits, target, per_image=True, empty="raw"), (first + 1) / 2)
    torch.testing.assert_close(loss(logits, target, per_image=True, empty="ignore"), first)


@settings(deadline=None, max_examples=30)
@given(seed=seeds, b=small_dims, n=small_dims, per_image=st.booleans())
def test_jaccard_metric_equals_soft_iou_on_hard_labels(seed, b, n, per_image):
    logits, target = binary_case(seed, b=b, h=n, w=3)
    torch.testing.assert_close(
        value_and_grad(jaccard_metric, logits, target, per_image=per_image),
        value_and_grad(soft_iou, logits, target, per_image=per_image),
    )


def test_jaccard_metric_equals_soft_iou_multiclass_with_ignore_index():
    logits, target = multiclass_case(6, c=4)
    target[0, 1] = 255
    kw = {"ignore_index": 255, "per_image": True}
    torch.testing.assert_close(
        value_and_grad(jaccard_metric, logits, target, **kw), value_and_grad(soft_iou, logits, target, **kw)
    )


@settings(deadline=None, max_examples=30)
@given(seed=seeds, n=small_dims, per_image=st.booleans())
def test_jaccard_metric_is_minimised_at_soft_labels(seed, n, per_image):
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(2, 1, n, 3, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    at_target = torch.logit(target)
    assert jaccard_metric(at_target, target, per_image=per_image).item() < 1e-12
    moved = at_target + torch.randn(at_target.shape, generator=gen, dtype=torch.float64)
    assert jaccard_metric(moved, target, per_image=per_image) > 1e-6


def test_soft_iou_formula_is_not_minimised_at_soft_labels_but_jaccard_metric_is():
    target = torch.full((1, 1, 2, 2), 0.5, dtype=torch.float64)
    at_target, confident = torch.zeros_like(target), torch.full_like(target, 20.0)  # p = 0.5 and p ~ 1

    def plain_soft_iou(logits):
        p = torch.sigmoid(logits)
        return 1 - (p * target).sum() / (p + target - p * target).sum()

    # plain formula: 1 - 0.25/0.75 = 2/3 at p = y, but 1 - 0.5/1 = 1/2 at p = 1
    assert plain_soft_iou(confident) < plain_soft_iou(at_target)
    assert jaccard_metric(at_target, target).item() < 1e-12 < jaccard_metric(confident, target).item()


def test_jaccard_metric_multiclass_probability_target():
    logits, labels = multiclass_case(7, c=4)
    mc = {"mode": "multiclass"}
    assert jaccard_metric(logits, torch.softmax(logits, 1), **mc).item() < 1e-12
    one_hot = torch.nn.functional.one_hot(labels, 4).movedim(-1, 1).double()
    assert jaccard_metric(logits, 0.9 * one_hot + 0.1 / 4, **mc) > 1e-3
    # a one-hot probability target (float or integer) is the index target
    torch.testing.assert_close(jaccard_metric(logits, one_hot, **mc), jaccard_metric(logits, labels))
    torch.testing.assert_close(jaccard_metric(logits, one_hot.long(), **mc), jaccard_metric(logits, labels))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda z, y: tversky(z, y, alpha=-0.1), ValueError, "alpha must be a finite number >= 0, got -0.1"),
        (lambda z, y: tversky(z, y, beta="1"), ValueError, "beta must be a finite number >= 0"),
        (lambda z, y: soft_dice(z, y, smooth=-2), ValueError, "smooth must be a finite number >= 0, got -2"),
        (lambda z, y: jaccard_metric(z, y * 1.5), ValueError, r"target must contain values in \[0, 1\]"),
        (lambda z, y: soft_dice(z, y * 0.5), ValueError, "binary target must contain only 0 and 1"),
    ],
)
def test_bad_arguments_raise(call, error, match):
    logits, target = binary_case(8)
    with pytest.raises(error, match=match):
        call(logits, target)


def test_probability_target_errors():
    logits, _ = multiclass_case(9, c=3)
    target = torch.softmax(logits, 1)
    with pytest.raises(ValueError, match="ignore_index applies to index targets only"):
        jaccard_metric(logits, target, mode="multiclass", ignore_index=0)
    with pytest.raises(ValueError, match=r"probability target must contain values in \[0, 1\]"):
        jaccard_metric(logits, target * 3, mode="multiclass")


REGION_LOSSES = [soft_iou, soft_dice, tversky, jaccard_metric]


@settings(deadline=None, max_examples=40)
@given(
    seed=seeds,
    b=small_dims,
    n=small_dims,
    per_image=st.booleans(),
    empty=st.sampled_from(["fp_rate", "raw", "ignore"]),
    fg=st.floats(0.0, 1.0),
)
def test_region_losses_lie_in_0_1_and_dice_never_exceeds_iou(seed, b, n, per_image, empty, fg):
    gen = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(b, 1, n, 3, generator=gen, dtype=torch.float64)
    target = (torch.rand(b, 1, n, 3, generator=gen, dtype=torch.float64) < fg).double()  # may be empty
    kw = {"per_image": per_image, "empty": empty}
    values = [loss(logits, target, **kw).item() for loss in REGION_LOSSES]
    assert all(0 <= v <= 1 for v in values)
    iou, dice = values[0], values[1]
    assert dice <= iou + 1e-12  # D >= J per unit because I <= min(sum p, sum y)


@pytest.mark.parametrize("loss", REGION_LOSSES)
@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_per_image_loss_is_the_mean_of_single_image_losses(loss, kind):
    logits, target = binary_case(10, b=4) if kind == "binary" else multiclass_case(10, b=4, c=4)
    target[1] = 0  # an empty image (binary) / an image of one class (multi-class)
    batch = loss(logits, target, per_image=True)
    singles = torch.stack([loss(logits[i : i + 1], target[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(batch, singles.mean())
