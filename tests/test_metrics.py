"""metrics: confusion matrix, IoU/Dice/accuracy, aggregation, the accumulator, against torchmetrics."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from loss_inputs import seeds, small_dims
from torchmetrics.functional.classification import (
    binary_jaccard_index,
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_jaccard_index,
)

import iou_lib
from iou_lib import metrics


def labels(seed: int, b: int, c: int, h: int = 5, w: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, c, (b, h, w), generator=gen), torch.randint(0, c, (b, h, w), generator=gen)


@settings(deadline=None, max_examples=40)
@given(seed=seeds, b=small_dims, c=st.integers(2, 5), ignore=st.booleans())
def test_confusion_iou_and_mean_match_torchmetrics(seed, b, c, ignore):
    pred, target = labels(seed, b, c)
    ignore_index = None
    if ignore:
        ignore_index = 255
        target[:, 0] = 255
    kw = {"ignore_index": ignore_index}
    cm = metrics.confusion_matrix(pred, target, c, **kw)
    torch.testing.assert_close(cm, multiclass_confusion_matrix(pred, target, c, **kw))
    per_class = metrics.class_iou(pred, target, c, absent_score=0.0, **kw)
    torch.testing.assert_close(per_class, multiclass_jaccard_index(pred, target, c, average="none", **kw))
    miou = metrics.mean_iou(pred, target, c, **kw)
    torch.testing.assert_close(miou, multiclass_jaccard_index(pred, target, c, average="macro", **kw))
    torch.testing.assert_close(
        metrics.accuracy_from_confusion(cm), multiclass_accuracy(pred, target, c, average="micro", **kw)
    )
    dice = metrics.dice_from_confusion(cm, absent_score=0.0)
    torch.testing.assert_close(dice, multiclass_f1_score(pred, target, c, average="none", **kw))


@settings(deadline=None, max_examples=40)
@given(seed=seeds, b=small_dims, c=st.integers(2, 5))
def test_per_image_values_are_the_batch_values_of_each_image(seed, b, c):
    pred, target = labels(seed, b, c)
    per_image = metrics.class_iou(pred, target, c, per_image=True)
    assert per_image.shape == (b, c)
    for i in range(b):  # the loop is the independent reference
        alone = metrics.class_iou(pred[i : i + 1], target[i : i + 1], c)
        torch.testing.assert_close(per_image[i], alone, equal_nan=True)
    scored = per_image[~per_image.isnan()]
    assert torch.all((scored >= 0) & (scored <= 1))
    expected = torch.stack([metrics.mean_iou(pred[i : i + 1], target[i : i + 1], c) for i in range(b)]).mean()
    torch.testing.assert_close(metrics.mean_iou(pred, target, c, per_image=True), expected)


@settings(deadline=None, max_examples=40)
@given(seed=seeds, c=st.integers(2, 5))
def test_dice_is_2j_over_1_plus_j(seed, c):
    pred, target = labels(seed, 3, c)
    cm = metrics.confusion_matrix(pred, target, c)
    j = metrics.iou_from_confusion(cm)
    torch.testing.assert_close(metrics.dice_from_confusion(cm), 2 * j / (1 + j), equal_nan=True)


@settings(deadline=None, max_examples=40)
@given(seed=seeds, b=small_dims)
def test_binary_iou_matches_torchmetrics_on_logits(seed, b):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, 1, 4, 4, generator=gen)
    target = (torch.rand(b, 1, 4, 4, generator=gen) < 0.4).float()
    ours = metrics.binary_iou(metrics.predict(logits), target)
    # torchmetrics applies the sigmoid and the 0.5 threshold itself; 0/0 scores 0 there
    assert ours.isnan() or abs(ours - binary_jaccard_index(logits, target.long())) < 1e-6
    if not ours.isnan():
        for i in range(b):
            z, y = logits[i : i + 1], target[i : i + 1]
            image = metrics.binary_iou(metrics.predict(z), y, absent_score=0.0)
            torch.testing.assert_close(image, binary_jaccard_index(z, y.long()))


def test_binary_empty_image_convention():
    pred = torch.tensor([[[1, 1, 0, 0]], [[0, 0, 0, 0]], [[0, 1, 0, 0]]])
    target = torch.tensor([[[1, 0, 0, 0]], [[0, 0, 0, 0]], [[0, 0, 0, 0]]])
    per_image = metrics.class_iou(pred, target, 2, per_image=True)[:, 1]
    torch.testing.assert_close(per_image, torch.tensor([0.5, math.nan, 0.0]), equal_nan=True)
    assert metrics.binary_iou(pred, target, per_image=True).item() == pytest.approx(0.25)
    assert metrics.binary_iou(pred, target, per_image=True, absent_score=1.0).item() == pytest.approx(0.5)
    assert metrics.binary_iou(pred[1:2], target[1:2]).isnan()


def test_accumulator_equals_pooled_and_per_image_computations():
    pred, target = labels(1, 7, 4)
    target[2] = 0  # classes absent from some images
    target[3, :2] = 255
    acc = metrics.IoUAccumulator(4, ignore_index=255)
    for start in range(0, 7, 3):
        acc.update(pred[start : start + 3], target[start : start + 3])
    summary = acc.compute()
    kw = {"ignore_index": 255}
    torch.testing.assert_close(summary.confusion, metrics.confusion_matrix(pred, target, 4, **kw))
    torch.testing.assert_close(summary.iou, metrics.class_iou(pred, target, 4, **kw), equal_nan=True)
    torch.testing.assert_close(summary.miou, metrics.mean_iou(pred, target, 4, **kw))
    per_image = metrics.class_iou(pred, target, 4, per_image=True, **kw)
    torch.testing.assert_close(summary.iou_per_image, per_image.nanmean(0))
    miou_per_image = metrics.mean_iou(pred, target, 4, per_image=True, **kw)
    torch.testing.assert_close(summary.miou_per_image, miou_per_image)
    assert summary.n_images == 7
    acc.reset()
    assert acc.compute().n_images == 0 and acc.compute().miou.isnan()


def test_absent_class_scores():
    pred = torch.tensor([[0, 1, 1, 0]])
    target = torch.tensor([[0, 1, 0, 0]])
    nan_scored = metrics.class_iou(pred, target, 3)
    assert nan_scored[2].isnan()
    torch.testing.assert_close(metrics.class_iou(pred, target, 3, absent_score=1.0)[2], torch.tensor(1.0))
    torch.testing.assert_close(metrics.mean_iou(pred, target, 3), nan_scored[:2].mean())
    scored_one = metrics.mean_iou(pred, target, 3, absent_score=1.0)
    torch.testing.assert_close(scored_one, (nan_scored[:2].sum() + 1) / 3)


def test_predict():
    logits = torch.tensor([[[[-1.0, 0.0, 0.1]]]])
    torch.testing.assert_close(metrics.predict(logits), torch.tensor([[[0, 0, 1]]]))  # p > threshold
    torch.testing.assert_close(metrics.predict(logits, threshold=0.4), torch.tensor([[[0, 1, 1]]]))
    mc = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(metrics.predict(mc), mc.argmax(1))
    torch.testing.assert_close(metrics.predict(torch.zeros(2, 5), multiclass=False), torch.zeros(2, 5).long())


ZEROS = torch.zeros(1, 2, dtype=torch.long)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: metrics.class_iou(torch.rand(1, 2), ZEROS, 2), TypeError, "pred must hold hard labels"),
        (lambda: metrics.class_iou(ZEROS, torch.zeros(1, 5), 2), ValueError, "same shape"),
        (lambda: metrics.class_iou(torch.tensor([[0, 3]]), ZEROS, 3), ValueError, r"pred must hold .* 0..2"),
        (lambda: metrics.class_iou(ZEROS, torch.tensor([[0, 7]]), 3), ValueError, r"target .* found \[7\]"),
        (lambda: metrics.class_iou(ZEROS, torch.tensor([[0.5, 1]]), 3), ValueError, "integral"),
        (lambda: metrics.class_iou(ZEROS, ZEROS, 1), ValueError, "num_classes must be an int >= 2"),
        (lambda: metrics.mean_iou(ZEROS, ZEROS, 2, absent_score=2.0), ValueError, "absent_score must be NaN"),
        (lambda: metrics.predict(torch.zeros(2, 5)), ValueError, "pass multiclass=True or multiclass=False"),
        (lambda: metrics.predict(torch.zeros(2, 1, 3, 3), threshold=1.5), ValueError, "threshold must be"),
        (lambda: metrics.predict(torch.zeros(2, 1, 3, 3).long()), TypeError, "floating-point"),
        (lambda: metrics.iou_from_confusion(torch.zeros(2, 3)), ValueError, r"shape \(..., C, C\)"),
        (lambda: metrics.IoUAccumulator(0), ValueError, "num_classes must be an int >= 2"),
        (lambda: metrics.confusion_matrix(ZEROS[:0], ZEROS[:0], 2), ValueError, "empty batch"),
        (lambda: metrics.confusion_matrix(ZEROS, ZEROS.to("meta"), 2), ValueError, "same device"),
    ],
)
def test_bad_inputs_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_metrics_skip_value_checks_when_disabled():
    with iou_lib.value_checks(False):
        metrics.confusion_matrix(torch.zeros(1, 2).long(), torch.tensor([[0.5, 1]]), 3)  # no error


def test_an_ignore_index_naming_a_class_leaves_that_class_unscored_like_torchmetrics():
    pred, target = labels(3, 4, 4)
    kw = {"ignore_index": 0}
    iou = metrics.class_iou(pred, target, 4, **kw)
    assert iou[0].isnan() and not iou[1:].isnan().any()
    expected = multiclass_jaccard_index(pred, target, 4, average="macro", **kw)
    torch.testing.assert_close(metrics.mean_iou(pred, target, 4, **kw), expected)
    acc = metrics.IoUAccumulator(4, **kw)
    acc.update(pred, target)
    torch.testing.assert_close(acc.compute().miou, expected)
    assert acc.compute().iou_per_image[0].isnan()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_accumulator_state_follows_the_device_of_the_data():
    pred, target = labels(4, 5, 3)
    cpu = metrics.IoUAccumulator(3)
    cpu.update(pred, target)
    gpu = metrics.IoUAccumulator(3)
    gpu.update(pred.cuda(), target.cuda())
    assert gpu.confusion.device.type == "cuda" and gpu._class_sum.dtype == torch.float64
    a, b = cpu.compute(), gpu.compute()
    torch.testing.assert_close(b.confusion.cpu(), a.confusion)
    torch.testing.assert_close(b.iou_per_image.cpu(), a.iou_per_image, equal_nan=True)
    torch.testing.assert_close(b.miou_per_image.cpu(), a.miou_per_image)


def test_binary_iou_ignore_index_matches_torchmetrics():
    gen = torch.Generator().manual_seed(5)
    pred = (torch.rand(3, 6, 6, generator=gen) < 0.5).long()
    target = (torch.rand(3, 6, 6, generator=gen) < 0.5).long()
    target[:, :2] = 255
    ours = metrics.binary_iou(pred, target, ignore_index=255)
    torch.testing.assert_close(ours, binary_jaccard_index(pred, target, ignore_index=255))
