"""``mode`` and ``validate_args`` on the metrics: multi-label masks against torchmetrics, the streaming
accumulator against the functional form, and the per-call value checks."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.functional.classification import multilabel_jaccard_index

from iou_lib import metrics


def masks(seed: int, b: int = 4, c: int = 3, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    pred = (torch.rand(b, c, n, n, generator=gen) < 0.5).long()
    target = (torch.rand(b, c, n, n, generator=gen) < 0.4).long()
    target[1, 2] = 0  # an empty (image, channel): absent when the prediction is empty too
    pred[1, 2] = 0
    return pred, target


@pytest.mark.parametrize("seed", range(3))
def test_multilabel_iou_matches_torchmetrics(seed):
    pred, target = masks(seed)
    per_channel = multilabel_jaccard_index(pred, target, 3, average="none")
    torch.testing.assert_close(metrics.class_iou(pred, target, 3, mode="multilabel"), per_channel)
    torch.testing.assert_close(
        metrics.mean_iou(pred, target, 3, mode="multilabel"), multilabel_jaccard_index(pred, target, 3)
    )
    cm = metrics.confusion_matrix(pred, target, 3, mode="multilabel", per_image=True)
    assert cm.shape == (4, 3, 2, 2) and cm.sum() == pred.numel()


def test_multilabel_per_image_is_the_binary_iou_of_each_image_and_channel():
    pred, target = masks(3)
    got = metrics.class_iou(pred, target, 3, mode="multilabel", per_image=True)
    expected = torch.tensor(
        [
            [metrics.binary_iou(pred[i, k][None], target[i, k][None]).item() for k in range(3)]
            for i in range(4)
        ]
    )
    torch.testing.assert_close(got, expected, equal_nan=True)
    assert math.isnan(got[1, 2])  # empty target and prediction: absent, left out


def test_multilabel_accumulator_equals_the_functional_form():
    pred, target = masks(4)
    acc = metrics.IoUAccumulator(3, mode="multilabel")
    acc.update(pred[:1], target[:1])
    acc.update(pred[1:], target[1:])
    summary = acc.compute()
    torch.testing.assert_close(summary.iou, metrics.class_iou(pred, target, 3, mode="multilabel"))
    per_image = metrics.class_iou(pred, target, 3, mode="multilabel", per_image=True)
    torch.testing.assert_close(summary.iou_per_image, per_image.nanmean(0))
    torch.testing.assert_close(summary.miou_per_image, per_image.nanmean(1).nanmean())
    assert summary.confusion.shape == (3, 2, 2)
    torch.testing.assert_close(summary.pixel_accuracy, (pred == target).double().mean().float())


def test_predict_modes():
    logits = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(metrics.predict(logits, mode="multilabel"), (logits > 0).long())
    torch.testing.assert_close(metrics.predict(logits, mode="multiclass"), logits.argmax(1))
    torch.testing.assert_close(metrics.predict(logits[:, :1], mode="binary"), (logits[:, 0] > 0).long())
    with pytest.raises(ValueError, match="mode must be one of"):
        metrics.predict(logits, mode="softmax")


def test_mode_errors_name_the_problem():
    pred, target = masks(5)
    with pytest.raises(ValueError, match=r"need num_classes = 4 channels in dim 1, got shape \(4, 3, 8, 8\)"):
        metrics.class_iou(pred, target, 4, mode="multilabel")
    with pytest.raises(ValueError, match="one shape"):
        metrics.class_iou(pred, target[:, :2], 3, mode="multilabel")
    with pytest.raises(ValueError, match="mode='binary' scores 2 classes"):
        metrics.mean_iou(pred, target, 3, mode="binary")
    with pytest.raises(ValueError, match="mode='multilabel' is not supported here"):
        metrics.binary_iou(pred, target, mode="multilabel")
    bad = target.clone()
    bad[0, 0, 0, 0] = 2
    with pytest.raises(ValueError, match=r"target must hold class indices in 0..1, found \[2\]"):
        metrics.class_iou(pred, bad, 3, mode="multilabel")


def test_validate_args_per_call():
    logits = torch.randn(2, 1, 4, 4)
    logits[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        metrics.predict(logits)
    metrics.predict(logits, validate_args=False)
    pred, target = torch.ones(2, 4, 4, dtype=torch.long), torch.ones(2, 4, 4, dtype=torch.long)
    target[0, 0, 0] = 5
    with pytest.raises(ValueError, match="target must hold class indices"):
        metrics.mean_iou(pred, target, 2)
    metrics.mean_iou(pred, target, 2, validate_args=False)  # unchecked: the caller vouches for the labels
    acc = metrics.IoUAccumulator(2, validate_args=False)
    acc.update(pred, target)
    acc.compute()  # no deferred check ran, so nothing to report
