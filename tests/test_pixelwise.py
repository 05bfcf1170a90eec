"""bce, weighted_bce, cross_entropy and focal against torch and kornia references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from kornia.losses import binary_focal_loss_with_logits, focal_loss
from loss_inputs import binary_case, multiclass_case

from iou_lib.losses import bce, cross_entropy, focal, weighted_bce


@pytest.mark.parametrize("pos_weight", [None, 3.0, torch.tensor(0.5)])
def test_bce_matches_torch(pos_weight):
    logits, target = binary_case(1)
    weight = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=logits.dtype)
    expected = F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight)
    torch.testing.assert_close(bce(logits, target, pos_weight=pos_weight), expected)
    torch.testing.assert_close(bce(logits, target.squeeze(1).long(), pos_weight=pos_weight), expected)


def test_weighted_bce_balances_the_classes():
    logits, target = binary_case(2)
    n_pos = target.sum()
    pos_weight = (target.numel() - n_pos) / n_pos
    expected = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
    torch.testing.assert_close(weighted_bce(logits, target), expected)
    x = logits.clone().requires_grad_(True)
    weighted_bce(x, target).backward()
    dz = x.grad.flatten()
    fg = target.flatten().bool()
    # At z = 0 the gradient pushes fg and bg with equal total weight; in general: w+ (p - 1) on fg, p on bg.
    p = torch.sigmoid(logits).flatten()
    torch.testing.assert_close(dz[fg], pos_weight * (p[fg] - 1) / target.numel())
    torch.testing.assert_close(dz[~fg], p[~fg] / target.numel())


def test_weighted_bce_without_foreground_is_plain_bce():
    logits, target = binary_case(3)
    target.zero_()
    torch.testing.assert_close(weighted_bce(logits, target), bce(logits, target))


@pytest.mark.parametrize("weight", [None, [0.2, 1.0, 3.0]])
@pytest.mark.parametrize("ignore_index", [None, 255, 1])
def test_cross_entropy_matches_torch(weight, ignore_index):
    logits, target = multiclass_case(4)
    if ignore_index == 255:
        target[0, :2] = 255
    w = None if weight is None else torch.tensor(weight, dtype=logits.dtype)
    torch_ignore = -100 if ignore_index is None else ignore_index
    expected = F.cross_entropy(logits, target, weight=w, ignore_index=torch_ignore)
    ours = cross_entropy(logits, target, weight=weight, ignore_index=ignore_index)
    torch.testing.assert_close(ours, expected)


def test_cross_entropy_all_ignored_is_zero_not_nan():
    logits, target = multiclass_case(5)
    target[:] = 255
    assert torch.isnan(F.cross_entropy(logits, target, ignore_index=255))  # what torch does
    x = logits.clone().requires_grad_(True)
    value = cross_entropy(x, target, ignore_index=255)
    value.backward()
    assert value.item() == 0 and torch.all(x.grad == 0)


@pytest.mark.parametrize("alpha", [None, 0.25, 0.9])
@pytest.mark.parametrize("gamma", [0.0, 2.0, 0.5])
def test_binary_focal_matches_kornia(alpha, gamma):
    logits, target = binary_case(6)
    expected = binary_focal_loss_with_logits(logits, target, alpha=alpha, gamma=gamma, reduction="mean")
    torch.testing.assert_close(focal(logits, target, gamma=gamma, alpha=alpha), expected)


@pytest.mark.parametrize("alpha", [None, 0.25, 1.0])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
@pytest.mark.parametrize("ignore_index", [None, 255])
def test_multiclass_focal_matches_kornia(alpha, gamma, ignore_index):
    logits, target = multiclass_case(7, c=4)
    if ignore_index is not None:
        target[1, 0] = ignore_index
    n_valid = target.numel() if ignore_index is None else (target != ignore_index).sum()
    # kornia: scalar alpha weighs class 0 by 1 - alpha and the rest by alpha; compare sums per valid pixel
    kw = {"alpha": alpha, "gamma": gamma, "ignore_index": ignore_index}
    kornia_sum = focal_loss(logits, target, reduction="sum", **kw)
    per_class = None if alpha is None else [1 - alpha] + [alpha] * 3
    ours = focal(logits, target, gamma=gamma, alpha=per_class, ignore_index=ignore_index)
    torch.testing.assert_close(ours, kornia_sum / n_valid)


def test_multiclass_focal_per_class_alpha_and_gamma_zero_is_weighted_ce():
    logits, target = multiclass_case(9, c=3)
    alpha = [0.2, 0.5, 2.0]
    log_pt = torch.log_softmax(logits, 1).gather(1, target.unsqueeze(1)).squeeze(1)
    a = torch.tensor(alpha, dtype=logits.dtype)[target]
    expected = (-a * (1 - log_pt.exp()) ** 1.5 * log_pt).mean()
    torch.testing.assert_close(focal(logits, target, gamma=1.5, alpha=alpha), expected)
    ce = F.cross_entropy(logits, target, reduction="none")
    torch.testing.assert_close(focal(logits, target, gamma=0.0, alpha=alpha), (a * ce).mean())


def test_focal_of_perfect_softmax_prediction_is_zero():
    target = torch.randint(0, 3, (2, 4, 4))
    logits = 50.0 * F.one_hot(target, 3).movedim(-1, 1).double()
    assert focal(logits, target).item() < 1e-30


def test_focal_gradcheck():
    logits, target = binary_case(10, b=2, h=3, w=3)
    x = logits.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: focal(z, target, gamma=2.0, alpha=0.25), (x,))
    mc_logits, mc_target = multiclass_case(11, c=3, h=3, w=3)
    x = mc_logits.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: focal(z, mc_target, gamma=1.5, alpha=[1.0, 2.0, 0.5]), (x,))


BINARY, MULTICLASS = binary_case(0), multiclass_case(0)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: bce(*BINARY, pos_weight=0.0), ValueError, "pos_weight must be a finite number > 0, got 0.0"),
        (
            lambda: bce(*BINARY, pos_weight=torch.ones(2)),
            ValueError,
            r"pos_weight must be a finite number > 0, got tensor",
        ),
        (lambda: focal(*BINARY, gamma=-1.0), ValueError, "gamma must be a finite number >= 0, got -1.0"),
        (
            lambda: focal(*BINARY, alpha=1.5),
            ValueError,
            r"binary focal alpha must be a finite number in \[0, 1\]",
        ),
        (
            lambda: focal(*BINARY, ignore_index=0),
            ValueError,
            "ignore_index is supported for mode='multiclass' only",
        ),
        (lambda: focal(*MULTICLASS, alpha=[1.0, 2.0]), ValueError, r"one value per class \(3\), got 2"),
        (
            lambda: cross_entropy(*MULTICLASS, weight=[1.0, -1.0, 1.0]),
            ValueError,
            "weight must be finite and >= 0",
        ),
        (lambda: cross_entropy(*BINARY), TypeError, "multi-class target must hold integer class indices"),
        (lambda: weighted_bce(*MULTICLASS), ValueError, "logits have 3 channels: use a multi-class loss"),
    ],
)
def test_bad_arguments_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_gradient_is_finite_at_saturated_pixels(gamma):
    target = torch.randint(0, 3, (2, 4, 4))
    x = (200.0 * F.one_hot(target, 3).movedim(-1, 1).float()).requires_grad_(True)  # log p_t == 0 exactly
    assert torch.log_softmax(x, 1).gather(1, target.unsqueeze(1)).eq(0).all()
    value = focal(x, target, gamma=gamma)
    value.backward()
    assert value.item() == 0 and torch.isfinite(x.grad).all()
    z = torch.full((1, 1, 3, 3), 200.0, requires_grad=True)
    focal(z, torch.ones(1, 1, 3, 3), gamma=gamma).backward()
    assert torch.isfinite(z.grad).all()
