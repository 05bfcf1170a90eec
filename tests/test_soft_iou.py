"""soft_iou: the closed-form gradient, references (relax, MONAI, hard IoU), the empty-unit rules, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from loss_inputs import binary_case, multiclass_case, seeds, small_dims
from monai.losses import DiceLoss

from iou_lib import metrics, relax
from iou_lib.losses import soft_iou
from iou_lib.losses.soft_iou import SoftIoURatio


def plain_soft_iou(logits, target, per_image, ignore_index=None):
    """1 - I/U from the relax definitions with plain autograd (no empty units in the inputs)."""
    if target.dim() == logits.dim() - 1 and logits.shape[1] > 1:  # multi-class
        p = torch.softmax(logits, 1)
        valid = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
        y = torch.nn.functional.one_hot(target.clamp(0, logits.shape[1] - 1), logits.shape[1])
        y = y.movedim(-1, 1).to(p.dtype) * valid.unsqueeze(1)
        p = p * valid.unsqueeze(1)
    else:
        p, y = torch.sigmoid(logits), target.reshape(logits.shape)
    b, c = p.shape[:2]
    p, y = p.reshape(b, c, -1), y.reshape(b, c, -1)
    if not per_image:
        p, y = p.transpose(0, 1).reshape(1, c, -1), y.transpose(0, 1).reshape(1, c, -1)
    return (1 - relax.soft_intersection(p, y) / relax.soft_union(p, y)).mean()


def grads(fn, logits, *args, **kwargs):
    x = logits.clone().requires_grad_(True)
    value = fn(x, *args, **kwargs)
    (grad,) = torch.autograd.grad(value, x)
    return value.detach(), grad


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "multiclass_ignore"])
def test_closed_form_gradient_equals_autograd_of_plain_formula(kind, per_image):
    if kind == "binary":
        logits, target = binary_case(1)
        ignore = None
    else:
        logits, target = multiclass_case(2, b=2, c=3, h=6, w=6)
        target[:, 0, :3] = torch.tensor([0, 1, 2])  # every class in every image
        ignore = None
        if kind == "multiclass_ignore":
            ignore = 255
            target[:, -1, :] = 255
    ours = grads(soft_iou, logits, target, per_image=per_image, ignore_index=ignore)
    plain = grads(plain_soft_iou, logits, target, per_image, ignore)
    torch.testing.assert_close(ours, plain, rtol=1e-10, atol=1e-12)


def test_ratio_function_passes_gradcheck_with_soft_labels_and_smoothing():
    gen = torch.Generator().manual_seed(3)
    p = torch.rand(3, 2, 7, generator=gen, dtype=torch.float64).requires_grad_(True)
    y = torch.rand(3, 2, 7, generator=gen, dtype=torch.float64)
    for dims in [(2,), (0, 2)]:
        for smooth in [0.0, 0.5]:
            assert torch.autograd.gradcheck(lambda q, d=dims, s=smooth: SoftIoURatio.apply(q, y, d, s), (p,))


@pytest.mark.parametrize("empty", ["fp_rate", "raw", "ignore"])
def test_gradcheck_through_sigmoid_and_softmax(empty):
    logits, target = binary_case(4, h=3, w=3)
    target[1] = 0  # one empty image exercises the empty rule
    for per_image in [True, False]:
        x = logits.clone().requires_grad_(True)
        loss = lambda z, pi=per_image: soft_iou(z, target, per_image=pi, empty=empty)  # noqa: E731
        assert torch.autograd.gradcheck(loss, (x,))
    mc_logits, mc_target = multiclass_case(5, c=4, h=3, w=3)
    mc_target[0, 0, 0] = 255
    x = mc_logits.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda z: soft_iou(z, mc_target, per_image=True, empty=empty, ignore_index=255, smooth=0.1), (x,)
    )


def test_relax_gradient_is_the_papers_formula():
    p = torch.tensor([[0.9, 0.2, 0.6, 0.1]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    inter, union = relax.soft_intersection(p, y), relax.soft_union(p, y)
    (autograd,) = torch.autograd.grad((1 - inter / union).sum(), p)
    closed = relax.soft_iou_grad(p.detach(), y)
    torch.testing.assert_close(closed, autograd)
    u, i = union.item(), inter.item()
    paper = torch.tensor([[-1 / u, -1 / u, i / u**2, i / u**2]], dtype=torch.float64)
    torch.testing.assert_close(closed, paper)


@settings(deadline=None, max_examples=40)
@given(seed=seeds, b=small_dims, n=small_dims, per_image=st.booleans())
def test_soft_iou_equals_hard_iou_at_binary_predictions(seed, b, n, per_image):
    gen = torch.Generator().manual_seed(seed)
    pred = torch.rand(b, 1, n, 3, generator=gen) < 0.5
    target = (torch.rand(b, 1, n, 3, generator=gen) < 0.5).double()
    target[:, 0, 0, 0] = 1  # non-empty targets: both sides are then ordinary ratios
    logits = torch.where(pred, 40.0, -40.0).double()  # sigmoid(+-40) is 0/1 to 4e-18
    hard = metrics.binary_iou(pred.long(), target, per_image=per_image)
    soft = soft_iou(logits, target, per_image=per_image).item()
    assert abs(soft - (1 - hard.item())) < 1e-6  # the metric is float32


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_matches_monai_dice_loss_jaccard_per_image_including_empty_units(kind):
    if kind == "binary":
        logits, target = binary_case(6, b=4)
        target[2] = 0
        monai_loss = DiceLoss(sigmoid=True, jaccard=True, smooth_nr=1e-5, smooth_dr=1e-5)(logits, target)
    else:
        logits, target = multiclass_case(7, c=5)  # some classes absent from some images
        loss = DiceLoss(softmax=True, to_onehot_y=True, jaccard=True, smooth_nr=1e-5, smooth_dr=1e-5)
        monai_loss = loss(logits, target.unsqueeze(1))
    # MONAI: 1 - (2I + s)/(2U + s), so our smooth is s/2; MONAI keeps empty units in the mean ("raw").
    ours = soft_iou(logits, target, per_image=True, smooth=5e-6, empty="raw")
    assert abs(ours.item() - monai_loss.item()) < 1e-10


def test_per_image_and_batch_aggregation_differ_and_are_each_right():
    logits, target = binary_case(8, b=2)
    p = torch.sigmoid(logits).flatten(1)
    y = target.flatten(1)
    per_image = (1 - relax.soft_intersection(p, y) / relax.soft_union(p, y)).mean()
    p, y = p.flatten(), y.flatten()
    pooled = 1 - relax.soft_intersection(p, y) / relax.soft_union(p, y)
    torch.testing.assert_close(soft_iou(logits, target, per_image=True), per_image)
    torch.testing.assert_close(soft_iou(logits, target, per_image=False), pooled)
    assert abs(per_image - pooled) > 1e-4


def test_empty_rules_value_and_gradient():
    logits, target = binary_case(9, b=2, h=3, w=3)
    target[1] = 0
    n = 9
    p1 = torch.sigmoid(logits[1]).flatten()
    value0 = soft_iou(logits[:1], target[:1], per_image=True)

    value, grad = grads(soft_iou, logits, target, per_image=True, empty="fp_rate")
    torch.testing.assert_close(value, (value0 + p1.mean()) / 2)
    torch.testing.assert_close(grad[1].flatten(), p1 * (1 - p1) / n / 2)  # d mean(p)/dz = p(1-p)/N, halved

    value, grad = grads(soft_iou, logits, target, per_image=True, empty="raw")
    torch.testing.assert_close(value, (value0 + 1) / 2)
    assert torch.all(grad[1] == 0)

    value, grad = grads(soft_iou, logits, target, per_image=True, empty="ignore")
    torch.testing.assert_close(value, value0)
    assert torch.all(grad[1] == 0)


@pytest.mark.parametrize("empty", ["fp_rate", "raw", "ignore"])
def test_no_nan_when_the_union_is_zero(empty):
    logits = torch.full((2, 1, 4, 4), -200.0, requires_grad=True)  # float32 sigmoid underflows to 0
    target = torch.zeros(2, 1, 4, 4)
    assert torch.sigmoid(logits).sum() == 0
    value = soft_iou(logits, target, empty=empty, per_image=True)
    value.backward()
    expected = {"fp_rate": 0.0, "raw": 1.0, "ignore": 0.0}[empty]
    assert value.item() == expected
    assert torch.isfinite(logits.grad).all()


def test_fp_rate_pushes_false_positives_down_on_an_empty_batch():
    logits = torch.zeros(1, 1, 4, 4, requires_grad=True)
    soft_iou(logits, torch.zeros(1, 1, 4, 4)).backward()
    assert torch.all(logits.grad > 0)  # gradient descent lowers every logit


def test_multiclass_absent_class_uses_the_empty_rule():
    logits, target = multiclass_case(10, b=1, c=3)
    target[:] = torch.randint(0, 2, target.shape)  # class 2 absent
    target[0, 0, :2] = torch.tensor([0, 1])
    present = soft_iou(logits, target, empty="ignore")
    p2 = torch.softmax(logits, 1)[:, 2].mean()
    torch.testing.assert_close(soft_iou(logits, target, empty="fp_rate"), (2 * present + p2) / 3)
    torch.testing.assert_close(soft_iou(logits, target, empty="raw"), (2 * present + 1) / 3)


def test_all_ignored_pixels_give_zero_without_nan():
    logits, target = multiclass_case(11)
    target[:] = 255
    x = logits.clone().requires_grad_(True)
    value = soft_iou(x, target, ignore_index=255)
    value.backward()
    assert value.item() == 0 and torch.all(x.grad == 0)


def test_smoothing_formula():
    logits, target = binary_case(12, b=1)
    p, y = torch.sigmoid(logits).flatten(), target.flatten()
    i, u = relax.soft_intersection(p, y), relax.soft_union(p, y)
    torch.testing.assert_close(soft_iou(logits, target, smooth=1.5), 1 - (i + 1.5) / (u + 1.5))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"empty": "zero"}, ValueError, "empty must be one of"),
        ({"smooth": -1.0}, ValueError, "smooth must be a finite number >= 0, got -1.0"),
        ({"smooth": "1"}, ValueError, "smooth must be a finite number >= 0"),
        ({"per_image": 1}, TypeError, "per_image must be a bool, got int"),
        ({"ignore_index": 255}, ValueError, "ignore_index is supported for mode='multiclass'"),
    ],
)
def test_bad_options_raise(kwargs, error, match):
    logits, target = binary_case(13)
    with pytest.raises(error, match=match):
        soft_iou(logits, target, **kwargs)


def test_soft_targets_are_rejected():
    logits, target = binary_case(14)
    with pytest.raises(ValueError, match=r"binary target must contain only 0 and 1, found values \[0.5\]"):
        soft_iou(logits, target * 0.5 + (1 - target))
