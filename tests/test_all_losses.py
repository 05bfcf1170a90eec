"""Properties every registered loss must have, parametrised over ``losses.available()``.

A loss added to the registry is covered automatically: float64 gradcheck, dtype and shape of the result,
finite values and gradients under bf16/fp16 autocast and for float16 logits whose sums overflow float16,
degenerate targets, value checks and their switch, and the structural errors.
"""

from __future__ import annotations

import pytest
import torch
from loss_inputs import binary_case, multiclass_case

import iou_lib
from iou_lib import losses

KINDS = ("binary", "multiclass")
# What the known losses accept; a new loss is probed and must accept at least one kind.
EXPECTED_KINDS = {
    "bce": {"binary"},
    "weighted_bce": {"binary"},
    "cross_entropy": {"multiclass"},
    "focal": {"binary", "multiclass"},
    "soft_iou": {"binary", "multiclass"},
    "soft_dice": {"binary", "multiclass"},
    "tversky": {"binary", "multiclass"},
    "jaccard_metric": {"binary", "multiclass"},
    "lovasz_hinge": {"binary"},
    "lovasz_softmax": {"multiclass"},
}


def case(kind: str, seed: int = 0, dtype: torch.dtype = torch.float64, **kw):
    return (binary_case if kind == "binary" else multiclass_case)(seed, dtype=dtype, **kw)


def accepts(name: str, kind: str) -> bool:
    try:
        losses.functional(name)(*case(kind, dtype=torch.float32))
    except (TypeError, ValueError):
        return False
    return True


SUPPORTED = [(name, kind) for name in losses.available() for kind in KINDS if accepts(name, kind)]


def perfect_logits(kind: str, target: torch.Tensor) -> torch.Tensor:
    if kind == "binary":
        return 30.0 * (2 * target - 1)
    return 30.0 * torch.nn.functional.one_hot(target, 3).movedim(-1, 1).to(torch.float64)


@pytest.mark.parametrize("name", losses.available())
def test_each_loss_accepts_the_expected_kinds(name):
    kinds = {kind for n, kind in SUPPORTED if n == name}
    assert kinds, f"{name} accepts neither binary nor multi-class inputs"
    if name in EXPECTED_KINDS:
        assert kinds == EXPECTED_KINDS[name]


@pytest.mark.parametrize(("name", "kind"), SUPPORTED)
def test_gradcheck_float64(name, kind):
    logits, target = case(kind, seed=1, b=2, h=3, w=3)
    fn = losses.functional(name)
    assert torch.autograd.gradcheck(lambda z: fn(z, target), (logits.requires_grad_(True),))


@pytest.mark.parametrize(("name", "kind"), SUPPORTED)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_returns_a_scalar_in_the_compute_dtype_and_the_module_agrees(name, kind, dtype):
    logits, target = case(kind, seed=2, dtype=dtype)
    value = losses.functional(name)(logits, target)
    assert value.shape == () and value.dtype == dtype and torch.isfinite(value)
    torch.testing.assert_close(losses.get(name)(logits, target), value)


@pytest.mark.parametrize(("name", "kind"), SUPPORTED)
def test_perfect_prediction_is_near_zero_and_a_gradient_step_lowers_the_loss(name, kind):
    logits, target = case(kind, seed=3)
    fn = losses.functional(name)
    assert fn(perfect_logits(kind, target), target).item() < 1e-6
    x = logits.clone().requires_grad_(True)
    value = fn(x, target)
    (grad,) = torch.autograd.grad(value, x)
    assert fn(logits - 1e-3 * grad / grad.norm(), target) < value


@pytest.mark.parametrize(("name", "kind"), SUPPORTED)
@pytest.mark.parametrize("low", [torch.bfloat16, torch.float16])
def test_autocast_gives_finite_float32_value_and_gradients(name, kind, low):
    logits, target = case(kind, seed=4, dtype=torch.float32, b=2, h=8, w=8)
    x = logits.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=low):
        c = x.shape[1]
        z = torch.nn.functional.conv2d(x, torch.eye(c).reshape(c, c, 1, 1))  # autocast runs it in `low`
        assert z.dtype == low
        value = losses.functional(name)(z, target)
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    reference = losses.functional(name)(z.detach().float(), target)
    torch.testing.assert_close(value.detach(), reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "kind"), SUPPORTED)
def test_float16_logits_whose_sums_overflow_float16(name, kind):
    # 2 x 200 x 200 pixels: sums of probabilities exceed the float16 maximum 65504 (smp#463)
    logits, target = case(kind, seed=5, dtype=torch.float32, b=2, h=200, w=200)
    half = logits.half()
    value = losses.functional(name)(half, target)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    torch.testing.assert_close(value, losses.functional(name)(half.float(), target))


@pytest.mark.parametrize(("name", "kind"), SUPPORTED)
def test_degenerate_targets_give_finite_values_and_gradients(name, kind):
    logits, target = case(kind, seed=6)
    for filled in (torch.zeros_like(target), torch.ones_like(target)):  # no / only foreground (class 0 / 1)
        x = logits.clone().requires_grad_(True)
        value = losses.functional(name)(x, filled)
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(x.grad).all()


# The sigmoid region losses check the sums they computed instead of reading the logits again: an infinite
# logit's probability is exactly 0 or 1, so the value is its limit and is accepted (NaN is still caught).
INF_IS_A_LIMIT = {("soft_iou", "binary"), ("soft_dice", "binary"), ("tversky", "binary")}


@pytest.mark.parametrize(("name", "kind"), SUPPORTED)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_value_checks_reject_non_finite_logits_and_can_be_switched_off(name, kind, bad):
    logits, target = case(kind, seed=7)
    logits[0, 0, 0, 0] = bad
    fn = losses.functional(name)
    if (name, kind) in INF_IS_A_LIMIT and bad != bad:  # NaN
        with pytest.raises(ValueError, match=r"logits must be finite, found 1 NaN"):
            fn(logits, target)
    elif (name, kind) in INF_IS_A_LIMIT:
        x = logits.clone().requires_grad_(True)
        value = fn(x, target)
        value.backward()
        large = logits.clone()
        large[0, 0, 0, 0] = 1e4 if bad > 0 else -1e4  # sigmoid is exactly 1 (0) in float64 already
        assert value.item() == fn(large, target).item() and torch.isfinite(x.grad).all()
    else:
        with pytest.raises(ValueError, match="logits must be finite"):
            fn(logits, target)
    with iou_lib.value_checks(False):
        fn(logits, target)  # no check, no error: the result is whatever the arithmetic gives


@pytest.mark.parametrize(("name", "kind"), SUPPORTED)
def test_structural_errors(name, kind):
    logits, target = case(kind, seed=8)
    fn = losses.functional(name)
    with pytest.raises(ValueError, match="empty batch"):
        fn(logits[:0], target[:0])
    with pytest.raises(ValueError, match="must be on the same device"):
        fn(logits, target.to("meta"))
    with pytest.raises(ValueError, match="shape"):
        fn(logits, target[..., :-1])
    with pytest.raises(ValueError, match=r"at least \d dimensions"):
        fn(logits.flatten(), target.flatten())
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        fn(logits.tolist(), target)
    with pytest.raises(TypeError, match="floating-point"):
        fn(logits.long(), target)
    with iou_lib.value_checks(False), pytest.raises(ValueError, match="empty batch"):
        fn(logits[:0], target[:0])  # structural checks always run


@pytest.mark.parametrize(("name", "kind"), SUPPORTED)
def test_target_value_checks(name, kind):
    logits, target = case(kind, seed=9)
    bad = target.clone()
    if kind == "binary":
        bad[0, 0, 0, 0] = 2
        match = "binary target must contain"
    else:
        bad[0, 0, 0] = 3
        match = r"class indices in target must be in 0..2, found \[3\]"
    with pytest.raises(ValueError, match=match):
        losses.functional(name)(logits, bad)
