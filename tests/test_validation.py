"""iou_lib.validation: shapes accepted, flattening, dtypes, the value-check switch and error messages."""

from __future__ import annotations

import pytest
import torch

import iou_lib
from iou_lib import validation as v
from iou_lib.losses import soft_iou


def test_binary_inputs_flatten_and_drop_the_channel():
    half = torch.zeros(2, 1, 3, 4, dtype=torch.float16)
    z, y = v.binary_inputs(half, torch.ones(2, 3, 4, dtype=torch.long))
    assert z.shape == y.shape == (2, 12) and z.dtype == y.dtype == torch.float32
    z, y = v.binary_inputs(torch.zeros(2, 3, 4, dtype=torch.float64), torch.ones(2, 3, 4, dtype=torch.bool))
    assert z.dtype == y.dtype == torch.float64
    z, y = v.binary_inputs(torch.zeros(2, 4), torch.full((2, 4), 0.25), soft=True)
    assert torch.all(y == 0.25)


def test_multiclass_inputs_mask_ignored_pixels():
    target = torch.tensor([[0, 2, 255]])
    z, t, valid = v.multiclass_inputs(torch.zeros(1, 3, 3), target, ignore_index=255)
    assert z.shape == (1, 3, 3) and t.tolist() == [[0, 2, 0]] and valid.tolist() == [[True, True, False]]
    assert v.multiclass_inputs(torch.zeros(1, 3, 3), target.clamp(max=2))[2] is None


def test_probability_and_label_inputs():
    z, y = v.probability_inputs(torch.zeros(2, 3, 2, 2), torch.full((2, 3, 2, 2), 1 / 3))
    assert z.shape == y.shape == (2, 3, 4)
    pred, target, valid = v.label_inputs(
        torch.tensor([[[1, 0]]]), torch.tensor([[1.0, 255.0]]), num_classes=2, ignore_index=255
    )
    assert pred.tolist() == [[1, 0]] and target.tolist() == [[1, 0]] and valid.tolist() == [[True, False]]


def test_value_checks_switch():
    nan_logits = torch.full((1, 4), float("nan"))
    with pytest.raises(ValueError, match="logits must be finite, found 4 NaN and 0 Inf values"):
        v.binary_inputs(nan_logits, torch.ones(1, 4))
    assert v.value_checks_enabled()
    with iou_lib.value_checks(False):
        assert not v.value_checks_enabled()
        v.binary_inputs(nan_logits, torch.full((1, 4), 3.0))
        v.multiclass_inputs(torch.zeros(1, 2, 2), torch.tensor([[0, 9]]))
    assert v.value_checks_enabled()
    previous = iou_lib.set_value_checks(False)
    try:
        assert previous is True and not v.value_checks_enabled()
    finally:
        iou_lib.set_value_checks(previous)


ONES, MC, LONG = torch.ones(2, 3), torch.ones(2, 3, 4), torch.ones(2, 4).long()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: v.binary_inputs([1.0], torch.ones(1)), TypeError, "logits must be a torch.Tensor, got list"),
        (lambda: v.binary_inputs(ONES, "y"), TypeError, "target must be a torch.Tensor, got str"),
        (lambda: v.binary_inputs(ONES.long(), ONES), TypeError, "floating-point"),
        (lambda: v.binary_inputs(torch.ones(2), torch.ones(2)), ValueError, "at least 2 dimensions"),
        (lambda: v.binary_inputs(ONES[:0], ONES[:0]), ValueError, "empty batch"),
        (lambda: v.binary_inputs(ONES[:, :0], ONES[:, :0]), ValueError, "no pixels per image"),
        (lambda: v.binary_inputs(ONES, torch.ones(2, 4)), ValueError, r"got \(2, 4\)"),
        (lambda: v.binary_inputs(ONES, 2 * ONES), ValueError, r"only 0 and 1, found values \[2.0\]"),
        (lambda: v.binary_inputs(ONES, -ONES, soft=True), ValueError, r"values in \[0, 1\]"),
        (lambda: v.binary_inputs(ONES, ONES.to("meta")), ValueError, "same device"),
        (lambda: v.multiclass_inputs(MC, torch.ones(2, 4)), TypeError, "integer class indices"),
        (lambda: v.multiclass_inputs(torch.ones(2, 1, 4), LONG), ValueError, "C >= 2"),
        (lambda: v.multiclass_inputs(MC, torch.ones(2, 5).long()), ValueError, r"shape \(B, \.\.\.\)"),
        (lambda: v.multiclass_inputs(MC, 3 * LONG), ValueError, r"in 0..2, found \[3\]"),
        (lambda: v.multiclass_inputs(MC, 3 * LONG, ignore_index=255), ValueError, "or ignore_index=255"),
        (lambda: v.probability_inputs(MC, MC.long()), TypeError, "floating-point"),
        (lambda: v.probability_inputs(MC, torch.ones(2, 3, 5)), ValueError, "shape of logits"),
        (lambda: v.label_inputs(ONES.long(), ONES, 2.0), ValueError, "num_classes"),
        (lambda: v.label_inputs(ONES.long(), ONES.to(torch.complex64), 2), TypeError, "target must be real"),
    ],
)
def test_errors_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


# values a float mask holds by mistake (a 0/255 mask, a resized mask, NaN, ...) beside 0 and 1
_ODD = [0.5, 0.01, 0.99, 1 + 2**-10, 2.0, 255.0, -1.0, -(2**-149), float("nan"), float("inf"), -float("inf")]
# values within float rounding of 0 or 1: the fast check lets them through (documented), the loss then
# treats them as the soft labels they are, within rounding of the binary loss
_NEAR = [1e-30, 2**-149, 1 - 2**-24]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("odd", _ODD + _NEAR)
def test_float_target_check(dtype, odd):
    """The three-reduction check of a float target (integer aminmax of the bits, sum against dot) rejects
    every odd value hidden in a binary mask, with the exact check's error; -0.0 fails the fast check and
    the exact one accepts it, so the loss runs."""
    gen = torch.Generator().manual_seed(0)
    y = (torch.rand(3, 1, 17, 19, generator=gen) > 0.7).to(dtype)
    z = torch.randn(y.shape, generator=gen)
    assert bool(v._float_binary(y))
    binary_loss = soft_iou(z, y)
    at = int((y.view(-1) == (1 if odd > 0.5 else 0)).nonzero()[0])  # odd replaces its nearest binary value
    y.view(-1)[at] = odd
    exact = bool(((y == 0) | (y == 1)).all())
    if exact:  # odd rounds to 0, -0.0 or 1 in this dtype
        soft_iou(z, y)
    elif odd in _NEAR and bool(v._float_binary(y)):  # float32 lets these pass, float64 catches 1 - 2**-24
        assert dtype == torch.float32 or odd != 1 - 2**-24
        assert soft_iou(z, y).item() == pytest.approx(binary_loss.item(), abs=1e-6)
    else:
        assert not bool(v._float_binary(y))
        with pytest.raises(ValueError, match="only 0 and 1"):
            soft_iou(z, y)
    y.view(-1)[at] = 1 if odd > 0.5 else 0
    y.view(-1)[int((y.view(-1) == 0).nonzero()[0])] = -0.0
    assert not bool(v._float_binary(y))
    assert soft_iou(z, y).item() == pytest.approx(binary_loss.item(), abs=1e-6)  # accepted by the exact check


def test_float_target_check_on_views():
    """A non-contiguous target (a strided view) is checked on its values, not its storage."""
    base = torch.full((4, 8), 0.5)
    base[:, ::2] = 1.0
    assert bool(v._float_binary(base[:, ::2]))
    assert not bool(v._float_binary(base))
