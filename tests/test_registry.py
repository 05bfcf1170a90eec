"""The loss registry: the contract names, lookup, the module wrapper and its errors."""

from __future__ import annotations

import pytest
import torch
from loss_inputs import binary_case

from iou_lib import losses
from iou_lib.losses import registry

CONTRACT = {
    "bce",
    "weighted_bce",
    "cross_entropy",
    "focal",
    "soft_iou",
    "soft_dice",
    "tversky",
    "jaccard_metric",
}


def test_contract_names_are_registered_and_exported():
    assert CONTRACT <= set(losses.available())
    assert losses.available() == sorted(losses.available())
    for name in CONTRACT:
        assert losses.functional(name) is getattr(losses, name)
        assert name in losses.__all__
    assert {"parse", "WeightedSum"} <= set(losses.__all__)


def test_get_binds_keyword_arguments():
    logits, target = binary_case(0)
    module = losses.get("tversky", alpha=0.2, beta=0.8)
    assert repr(module) == "Loss('tversky', alpha=0.2, beta=0.8)"
    torch.testing.assert_close(module(logits, target), losses.tversky(logits, target, alpha=0.2, beta=0.8))


def test_lookup_errors():
    with pytest.raises(ValueError, match="unknown loss 'iou'; available losses: bce, "):
        losses.get("iou")
    with pytest.raises(TypeError, match="loss name must be a str, got NoneType"):
        losses.functional(None)


def test_a_name_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="loss name 'soft_iou' is already registered"):
        registry.register("soft_iou")(lambda logits, target: logits.sum())
    assert losses.functional("soft_iou") is losses.soft_iou
