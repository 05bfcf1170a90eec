"""Issue 15: the remaining bad inputs end in a clear, named error or a consistent, documented result.

Every case here was a silent wrong number (or an unclear error) before: per-image metrics that averaged
in images without a valid pixel, non-finite hyperparameters, a bool or float ``ignore_index``, images
with no pixels, NaN logits in ``predict`` and an infinite float target printed as an integer.
"""

from __future__ import annotations

import math

import pytest
import torch

import iou_lib
from iou_lib import losses, metrics

INF, NAN = math.inf, math.nan

# -- 1. per-image metrics leave out images without a valid pixel ------------------------------------------

# image 0: every pixel ignored; image 1: predicts the first of two foreground pixels (IoU 1/2)
PRED = torch.tensor([[[1, 1]], [[1, 0]]])
TARGET = torch.tensor([[[255, 255]], [[1, 1]]])


@pytest.mark.parametrize("absent_score", [NAN, 0.0, 1.0])
def test_binary_iou_per_image_leaves_out_an_image_whose_pixels_are_all_ignored(absent_score):
    value = metrics.binary_iou(PRED, TARGET, ignore_index=255, per_image=True, absent_score=absent_score)
    assert value.item() == pytest.approx(0.5)  # was 0.75 with absent_score=1 and 0.25 with 0


@pytest.mark.parametrize("absent_score", [NAN, 0.0, 1.0])
def test_class_and_mean_iou_per_image_have_no_score_for_an_all_ignored_image(absent_score):
    kw = {"ignore_index": 255, "per_image": True, "absent_score": absent_score}
    per_class = metrics.class_iou(PRED, TARGET, 2, **kw)
    assert per_class.shape == (2, 2) and per_class[0].isnan().all()
    assert per_class[1, 1].item() == pytest.approx(0.5)
    expected = per_class[1].nanmean()  # the mean over the one scored image
    torch.testing.assert_close(metrics.mean_iou(PRED, TARGET, 2, **kw), expected)


@pytest.mark.parametrize("absent_score", [NAN, 0.0, 1.0])
def test_accumulator_per_image_means_leave_out_an_all_ignored_image(absent_score):
    acc = metrics.IoUAccumulator(2, ignore_index=255, absent_score=absent_score)
    acc.update(PRED[:1], TARGET[:1])  # alone in its batch
    acc.update(PRED, TARGET)
    s = acc.compute()
    assert s.iou_per_image[1].item() == pytest.approx(0.5)
    one_image = metrics.class_iou(PRED[1:], TARGET[1:], 2, ignore_index=255, absent_score=absent_score)
    torch.testing.assert_close(s.miou_per_image, one_image.nanmean())
    assert s.n_images == 3


def test_an_all_ignored_batch_has_no_per_image_score_but_a_pooled_one_stays_nan():
    target = torch.full((2, 1, 2), 255)
    assert metrics.binary_iou(PRED, target, ignore_index=255, per_image=True).isnan()
    assert metrics.binary_iou(PRED, target, ignore_index=255, per_image=True, absent_score=1.0).isnan()
    assert metrics.binary_iou(PRED, target, ignore_index=255, absent_score=1.0).item() == 1.0  # pooled: 0/0


# -- 2. non-finite hyperparameters are rejected -------------------------------------------------------------

BIN_Z, BIN_Y = torch.randn(2, 1, 4, 4), (torch.rand(2, 1, 4, 4) > 0.5).float()
MC_Z, MC_Y = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))

NON_FINITE_OPTIONS = [
    ("soft_iou", {"smooth": INF}, "smooth"),
    ("soft_iou", {"smooth": NAN}, "smooth"),
    ("soft_dice", {"smooth": INF}, "smooth"),
    ("jaccard_metric", {"smooth": INF}, "smooth"),
    ("tversky", {"smooth": INF}, "smooth"),
    ("tversky", {"alpha": INF}, "alpha"),
    ("tversky", {"beta": INF}, "beta"),
    ("tversky", {"alpha": NAN}, "alpha"),
    ("bce", {"pos_weight": INF}, "pos_weight"),
    ("bce", {"pos_weight": torch.tensor(INF)}, "pos_weight"),
    ("bce", {"pos_weight": NAN}, "pos_weight"),
    ("focal", {"gamma": INF}, "gamma"),
    ("focal", {"gamma": NAN}, "gamma"),
]


@pytest.mark.parametrize(("name", "options", "argument"), NON_FINITE_OPTIONS)
def test_non_finite_hyperparameters_are_rejected_naming_the_argument(name, options, argument):
    with pytest.raises(ValueError, match=argument):
        losses.functional(name)(BIN_Z, BIN_Y, **options)


@pytest.mark.parametrize(
    ("name", "options", "argument"),
    [
        ("cross_entropy", {"weight": [INF, 1.0, 1.0]}, "weight"),
        ("cross_entropy", {"weight": [NAN, 1.0, 1.0]}, "weight"),
        ("cross_entropy", {"weight": torch.tensor([1.0, INF, 1.0])}, "weight"),
        ("focal", {"alpha": [1.0, INF, 1.0]}, "alpha"),
        ("focal", {"gamma": INF}, "gamma"),
        ("soft_iou", {"smooth": INF}, "smooth"),
        ("tversky", {"alpha": INF}, "alpha"),
    ],
)
def test_non_finite_multiclass_hyperparameters_are_rejected(name, options, argument):
    with pytest.raises(ValueError, match=argument):
        losses.functional(name)(MC_Z, MC_Y, **options)


# -- 4. other inputs accepted silently ----------------------------------------------------------------------

MC_LOSSES = ["cross_entropy", "focal", "soft_iou", "soft_dice", "tversky", "jaccard_metric", "lovasz_softmax"]


@pytest.mark.parametrize("name", MC_LOSSES)
@pytest.mark.parametrize("ignore_index", [True, 255.0, 1.0])
def test_a_bool_or_float_ignore_index_is_rejected_by_every_loss(name, ignore_index):
    with pytest.raises(TypeError, match="ignore_index must be an int or None"):
        losses.functional(name)(MC_Z, MC_Y, ignore_index=ignore_index)


@pytest.mark.parametrize("ignore_index", [True, 255.0])
def test_a_bool_or_float_ignore_index_is_rejected_by_the_metrics(ignore_index):
    with pytest.raises(TypeError, match="ignore_index must be an int or None"):
        metrics.mean_iou(MC_Y, MC_Y, 3, ignore_index=ignore_index)
    with pytest.raises(TypeError, match="ignore_index must be an int or None"):
        metrics.IoUAccumulator(3, ignore_index=ignore_index).update(MC_Y, MC_Y)


@pytest.mark.parametrize(
    "call",
    [
        lambda p, t: metrics.binary_iou(p, t),
        lambda p, t: metrics.binary_iou(p, t, per_image=True),
        lambda p, t: metrics.mean_iou(p, t, 2, per_image=True),
        lambda p, t: metrics.confusion_matrix(p, t, 2),
        lambda p, t: metrics.IoUAccumulator(2).update(p, t),
    ],
)
def test_metrics_on_images_without_pixels_raise(call):
    empty = torch.zeros(3, 0, 5, dtype=torch.long)  # was NaN, counted as 3 images
    with pytest.raises(ValueError, match="no pixels per image"):
        call(empty, empty)


@pytest.mark.parametrize("logits", [torch.randn(2, 1, 4, 4), torch.randn(2, 3, 4, 4), torch.randn(2, 4, 4)])
def test_predict_on_nan_logits_raises_naming_nan(logits):
    logits.view(-1)[5] = NAN  # was predicted as class 0
    with pytest.raises(ValueError, match="1 NaN"):
        metrics.predict(logits)
    logits.view(-1)[5] = INF  # a sure prediction is fine
    assert metrics.predict(logits).shape[0] == 2


@pytest.mark.parametrize("bad", [INF, -INF, NAN, 0.5])
def test_a_non_finite_or_fractional_float_target_is_reported_as_it_is(bad):
    target = torch.tensor([[0.0, 1.0, bad]])
    with pytest.raises(ValueError, match="integral, finite class indices") as info:
        metrics.binary_iou(torch.tensor([[0, 1, 1]]), target)
    assert str(bad) in str(info.value) and "9223372036854775808" not in str(info.value)


# -- 7. the accumulator's update never waits for the device ----------------------------------------------

# Operations that read data on the host on CUDA: a value read, data-dependent output shapes
SYNC_OPS = ("_local_scalar_dense", "nonzero", "bincount", "unique", "masked_select", "is_nonzero", "equal")


class _OpLog(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the aten operations run inside the block (and any boolean-mask indexing)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__ if not hasattr(func, "_schema") else func._schema.name.split("::")[-1]
        if name == "index" and any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1]):
            name = "index[bool mask] (nonzero)"
        self.ops.append(name)
        return func(*args, **(kwargs or {}))


def _syncs(ops: list[str]) -> list[str]:
    return [op for op in ops if any(s in op for s in SYNC_OPS)]


@pytest.mark.parametrize(("num_classes", "ignore_index"), [(2, None), (4, 255)])
@pytest.mark.parametrize("float_target", [False, True])
def test_accumulator_update_makes_no_host_sync_with_value_checks_on(num_classes, ignore_index, float_target):
    pred = torch.randint(0, num_classes, (3, 8, 8))
    target = torch.randint(0, num_classes, (3, 8, 8))
    if ignore_index is not None:
        target[0, :2] = ignore_index
    if float_target:
        target = target.float()
    acc = metrics.IoUAccumulator(num_classes, ignore_index=ignore_index)
    acc.update(pred, target)  # the first batch moves the state: not the steady state
    with _OpLog() as log:
        acc.update(pred, target)
    assert log.ops and _syncs(log.ops) == []
    # the functional form, which raises at once, reads one flag on the host: exactly one value read
    with _OpLog() as log:
        metrics.confusion_matrix(pred, target, num_classes, ignore_index=ignore_index)
    assert _syncs(log.ops) == ["_local_scalar_dense"]


def test_accumulator_update_runs_on_meta_tensors_which_have_no_data_to_read():
    meta = torch.device("meta")
    acc = metrics.IoUAccumulator(3, ignore_index=255)
    acc.update(torch.zeros(2, 4, 4, dtype=torch.long, device=meta), torch.zeros(2, 4, 4, device=meta))
    assert acc.confusion.device == meta and acc.n_images == 2


@pytest.mark.parametrize(
    ("pred", "target", "match", "named"),
    [
        (torch.tensor([[0, 2]]), torch.tensor([[0, 1]]), "1 with pred outside 0..1", r"pred .* found \[2\]"),
        (
            torch.tensor([[0, 1]]),
            torch.tensor([[0, 7]]),
            r"target outside 0..1 \(ignore_index=255\)",
            r"0..1 or ignore_index=255, found \[7\]",
        ),
        (torch.tensor([[0, 1]]), torch.tensor([[0.0, INF]]), "not integral or not finite", r"found \[inf\]"),
    ],
)
def test_accumulator_raises_at_compute_for_a_batch_that_failed_a_deferred_check(pred, target, match, named):
    acc = metrics.IoUAccumulator(2, ignore_index=255)
    acc.update(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))
    acc.update(pred, target)  # no error yet: update does not read the device
    with pytest.raises(ValueError, match=match):
        acc.compute()
    with pytest.raises(ValueError, match=named):  # the functional form names the values at once
        metrics.confusion_matrix(pred, target, 2, ignore_index=255)
    acc.reset()
    acc.update(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))
    assert acc.compute().miou.item() == 1.0


# -- 7. the losses' value checks cost one host sync in all, and none when switched off -----------------------

ONE_SYNC_LOSSES = [
    (name, kind)
    for name in ("bce", "weighted_bce", "focal", "soft_iou", "soft_dice", "tversky", "jaccard_metric")
    for kind in ("binary", "multiclass")
    if not (name in ("bce", "weighted_bce") and kind == "multiclass")
] + [("cross_entropy", "multiclass")]


@pytest.mark.parametrize(("name", "kind"), ONE_SYNC_LOSSES)
def test_a_loss_reads_the_device_once_for_all_its_value_checks_and_never_in_backward(name, kind):
    z, y = (BIN_Z, BIN_Y) if kind == "binary" else (MC_Z, MC_Y)
    x = z.clone().requires_grad_(True)
    with _OpLog() as forward:
        value = losses.functional(name)(x, y)
    with _OpLog() as backward:
        value.backward()
    assert _syncs(forward.ops) == ["_local_scalar_dense"] and _syncs(backward.ops) == []
    with iou_lib.value_checks(False), _OpLog() as unchecked:
        losses.functional(name)(x, y)
    assert _syncs(unchecked.ops) == []


class _FullPasses(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the aten operations that read a tensor of ``size`` elements: passes over the data (views,
    which read nothing, are not counted)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size, self.ops = size, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        flat = torch.utils._pytree.tree_leaves((args, kwargs))
        if not func.is_view and any(isinstance(t, torch.Tensor) and t.numel() == self.size for t in flat):
            self.ops.append(func._schema.name.split("::")[-1])
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("name", ["soft_iou", "soft_dice", "tversky"])
def test_sigmoid_region_checks_cost_two_passes_over_a_float_target_and_none_over_the_logits(name, per_image):
    """The value checks ride on the loss's own sums: NaN logits show in its sum of p, its sum of y is
    shared, so only the target's bit range (aminmax) and its dot y.y read the data again."""
    z, y = torch.randn(2, 1, 8, 8), (torch.rand(2, 1, 8, 8) > 0.5).float()
    runs = {}
    for checks in (True, False):
        with iou_lib.value_checks(checks), _FullPasses(z.numel()) as log:
            losses.functional(name)(z, y, per_image=per_image)
        runs[checks] = log.ops
    extra = list(runs[True])
    for op in runs[False]:
        extra.remove(op)
    assert sorted(extra) == ["aminmax", "dot"]
