"""parse and WeightedSum: values, gradients, options and error messages."""

from __future__ import annotations

import pytest
import torch
from loss_inputs import binary_case
from torch import nn

from iou_lib import losses
from iou_lib.losses import WeightedSum, parse


def test_plain_name_gives_the_registry_module():
    module = parse("soft_iou")
    assert isinstance(module, losses.Loss) and module.name == "soft_iou"
    logits, target = binary_case(0)
    torch.testing.assert_close(module(logits, target), losses.soft_iou(logits, target))


def test_weighted_sum_value_and_gradient():
    logits, target = binary_case(1)
    module = parse(" 0.25 * bce +0.75*soft_iou ")
    assert repr(module) == "WeightedSum(0.25*bce + 0.75*soft_iou)"
    x = logits.clone().requires_grad_(True)
    module(x, target).backward()
    y = logits.clone().requires_grad_(True)
    (0.25 * losses.bce(y, target) + 0.75 * losses.soft_iou(y, target)).backward()
    torch.testing.assert_close(x.grad, y.grad)


def test_options_are_passed_per_loss():
    logits, target = binary_case(2)
    module = parse("bce+2e-1*soft_iou", {"soft_iou": {"per_image": True}, "bce": {"pos_weight": 2.0}})
    bce = losses.bce(logits, target, pos_weight=2.0)
    expected = bce + 0.2 * losses.soft_iou(logits, target, per_image=True)
    torch.testing.assert_close(module(logits, target), expected)
    assert isinstance(parse("2*soft_iou"), WeightedSum)


def test_weighted_sum_accepts_any_module():
    class Mean(nn.Module):
        def forward(self, logits, target):
            return logits.mean()

    logits, target = binary_case(3)
    module = WeightedSum([(2.0, Mean()), (1.0, losses.get("soft_dice"))])
    torch.testing.assert_close(module(logits, target), 2 * logits.mean() + losses.soft_dice(logits, target))
    assert "Mean" in repr(module)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("", r"term '' is not 'name' or 'weight\*name'"),
        ("bce+", "term '' is not"),
        ("0.5*", "term '0.5\\*' is not"),
        ("abc*bce", "weight 'abc' is not a number"),
        ("inf*bce", "weight inf is not finite"),
        ("0.5*focall", "unknown loss 'focall' in spec '0.5\\*focall'; available losses: bce, "),
        ("bce soft_iou", "is not 'name' or 'weight\\*name'"),
    ],
)
def test_bad_specs_raise(spec, match):
    with pytest.raises(ValueError, match=match):
        parse(spec)


def test_other_errors():
    with pytest.raises(TypeError, match="spec must be a str, got int"):
        parse(3)
    with pytest.raises(ValueError, match=r"options given for losses not in spec 'bce': \['soft_iou'\]"):
        parse("bce", {"soft_iou": {}})
    with pytest.raises(ValueError, match="non-empty sequence"):
        WeightedSum([])
    with pytest.raises(TypeError, match=r"terms\[0\] must be a \(weight, module\) pair"):
        WeightedSum([losses.get("bce")])
    with pytest.raises(ValueError, match=r"terms\[0\] weight must be a finite number, got nan"):
        WeightedSum([(float("nan"), losses.get("bce"))])
    with pytest.raises(TypeError, match=r"terms\[0\] loss must be an nn.Module, got function"):
        WeightedSum([(1.0, losses.bce)])
