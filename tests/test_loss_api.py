"""The practitioner's API of the losses: explicit ``mode``, ``reduction``, ``classes``, per-call
``validate_args``, the named modules (options checked at construction, repr, torch.compile)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from loss_inputs import binary_case, multiclass_case
from monai.losses import DiceLoss

import iou_lib
from iou_lib import losses

REGION = ["soft_iou", "soft_dice", "tversky", "jaccard_metric"]
MULTICLASS = REGION + ["focal", "cross_entropy", "lovasz_softmax"]
MULTILABEL = REGION + ["focal", "bce", "weighted_bce", "lovasz_hinge"]


def one_hot(labels: torch.Tensor, c: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, c).movedim(-1, 1)


def multilabel_case(seed: int, b: int = 3, c: int = 3, h: int = 4, w: int = 5):
    gen = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(b, c, h, w, generator=gen, dtype=torch.float64)
    target = (torch.rand(b, c, h, w, generator=gen) < 0.4).double()
    target[1, 1] = 0  # an empty (image, channel) unit
    return logits, target


def value_and_grad(fn, logits, target, **kw):
    x = logits.clone().requires_grad_(True)
    value = fn(x, target, **kw)
    (grad,) = torch.autograd.grad(value, x)
    return value.detach(), grad


# ----------------------------------------------------------------------------------------------- mode
@pytest.mark.parametrize("name", sorted(set(MULTICLASS) | set(MULTILABEL)))
def test_same_shape_multichannel_pair_without_mode_raises_naming_mode(name):
    logits, labels = multiclass_case(0)
    with pytest.raises(ValueError, match=r"same shape \(2, 3, 4, 5\) with 3 channels.*pass mode="):
        losses.functional(name)(logits, one_hot(labels, 3).double())


@pytest.mark.parametrize("name", MULTICLASS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.int64, torch.bool])
@pytest.mark.parametrize("per_image", [False, True])
def test_index_and_one_hot_targets_give_the_same_value_and_gradient(name, dtype, per_image):
    logits, labels = multiclass_case(1)
    kw = {} if name in ("focal", "cross_entropy") else {"per_image": per_image}
    fn = losses.functional(name)
    expected = value_and_grad(fn, logits, labels, **kw)
    got = value_and_grad(fn, logits, one_hot(labels, 3).to(dtype), mode="multiclass", **kw)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_one_hot_target_must_be_one_hot():
    logits, labels = multiclass_case(2)
    target = one_hot(labels, 3)
    target[0, :, 0, 0] = 0
    with pytest.raises(ValueError, match="exactly one 1 per pixel"):
        losses.soft_iou(logits, target, mode="multiclass")
    with pytest.raises(ValueError, match="ignore_index applies to index targets"):
        losses.cross_entropy(logits, one_hot(labels, 3), mode="multiclass", ignore_index=255)


@pytest.mark.parametrize("name", MULTILABEL)
@pytest.mark.parametrize("per_image", [False, True])
def test_multilabel_is_a_binary_loss_per_channel(name, per_image):
    """One unit per (image, channel) per image, one per channel pooled: the binary loss of each."""
    logits, target = multilabel_case(3)
    fn = losses.functional(name)
    pixelwise = name in ("focal", "bce", "weighted_bce")
    kw = {} if pixelwise else {"per_image": per_image}
    got = fn(logits, target, mode="multilabel", reduction="none", **kw)
    b, c = target.shape[:2]
    if pixelwise:  # per-pixel losses: the binary loss of each channel, element by element
        if name == "weighted_bce":  # its class weight is counted per channel over the batch
            expected = torch.stack(
                [fn(logits[:, k : k + 1], target[:, k : k + 1], reduction="none") for k in range(c)], 1
            )
        else:
            expected = fn(logits.reshape(b * c, 1, -1), target.reshape(b * c, 1, -1), reduction="none")
        torch.testing.assert_close(got, expected.reshape(target.shape))
        return
    if per_image:
        expected = torch.stack(
            [
                fn(logits[i : i + 1, k : k + 1], target[i : i + 1, k : k + 1], **kw)
                for i in range(b)
                for k in range(c)
            ]
        ).reshape(b, c)
    else:
        expected = torch.stack([fn(logits[:, k : k + 1], target[:, k : k + 1], **kw) for k in range(c)])
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(fn(logits, target, mode="multilabel", **kw), expected.mean())


@pytest.mark.parametrize("name", REGION + ["lovasz_hinge"])
@pytest.mark.parametrize("per_image", [False, True])
def test_multilabel_gradcheck(name, per_image):
    logits, target = multilabel_case(4, b=2, c=2, h=3, w=3)
    fn = losses.functional(name)
    x = logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: fn(z, target, mode="multilabel", per_image=per_image), (x,))


def test_multilabel_soft_dice_matches_monai_sigmoid_per_image_and_class():
    logits, target = multilabel_case(5, b=4, c=3)
    reference = DiceLoss(sigmoid=True, reduction="none")(logits, target).reshape(4, 3)
    ours = losses.soft_dice(
        logits, target, mode="multilabel", per_image=True, smooth=1e-5, empty="raw", reduction="none"
    )
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-9)


def test_multiclass_one_hot_soft_iou_matches_monai_softmax_jaccard_per_class():
    logits, labels = multiclass_case(6, c=4)
    target = one_hot(labels, 4).double()
    reference = DiceLoss(softmax=True, jaccard=True, reduction="none")(logits, target).reshape(2, 4)
    ours = losses.soft_iou(
        logits, target, mode="multiclass", per_image=True, smooth=1e-5, empty="raw", reduction="none"
    )
    # MONAI's jaccard form is 1 - (2I + s)/(2U + s); ours with smoothing s' = s/2 is the same ratio
    ours_half = losses.soft_iou(
        logits, target, mode="multiclass", per_image=True, smooth=5e-6, empty="raw", reduction="none"
    )
    torch.testing.assert_close(ours_half, reference, rtol=0, atol=1e-9)
    assert (ours - reference).abs().max() < 1e-5  # the smoothing convention is the only difference


def test_binary_mode_never_pools_channels():
    logits, target = multilabel_case(7)
    with pytest.raises(ValueError, match="mode='binary' takes one foreground channel"):
        losses.soft_iou(logits, target, mode="binary")
    with pytest.raises(
        ValueError, match=r"mode='multilabel' is not supported here; supported modes: \('multiclass',\)"
    ):
        losses.cross_entropy(logits, target, mode="multilabel")
    with pytest.raises(ValueError, match=r"mode must be one of \('binary', 'multiclass', 'multilabel'\)"):
        losses.soft_iou(logits, target, mode="softmax")


# ---------------------------------------------------------------------------------- reduction, classes
def _cases():
    yield "binary", *binary_case(8)
    yield "multiclass", *multiclass_case(8, b=3, c=4)
    yield "multilabel", *multilabel_case(8)


REDUCIBLE = [
    (name, mode, logits, target)
    for mode, logits, target in _cases()
    for name in losses.available()
    if mode in losses.modes(name)
]


@pytest.mark.parametrize(
    ("name", "mode", "logits", "target"), REDUCIBLE, ids=lambda v: v if isinstance(v, str) else ""
)
@pytest.mark.parametrize("per_image", [False, True])
def test_reduction_none_shapes_and_mean_and_sum_over_valid_units(name, mode, logits, target, per_image):
    fn = losses.functional(name)
    kw = {"mode": mode}
    if "per_image" in losses.options(name):
        kw["per_image"] = per_image
    elif per_image:
        pytest.skip("per-pixel loss: no per_image option")
    if name in REGION:
        kw["empty"] = "ignore"  # some units are then left out (NaN in "none")
    target = target.clone()
    if mode == "binary":
        target[1] = 0  # an empty image
    none = fn(logits, target, reduction="none", **kw)
    b, c = logits.shape[:2]
    if name in ("bce", "weighted_bce", "focal", "cross_entropy"):
        expected_shape = target.shape if mode != "multiclass" else (b, *logits.shape[2:])
    elif mode == "binary":
        expected_shape = (b,) if per_image else (1,)
    else:
        expected_shape = (b, c) if per_image else (c,)
    assert tuple(none.shape) == tuple(expected_shape)
    if name in REGION and mode == "binary":
        assert torch.isnan(none).any() == per_image  # the empty image is left out
    mean = fn(logits, target, **kw)
    if name == "lovasz_softmax" and per_image:  # the paper's mean: over images of their class means
        torch.testing.assert_close(mean, none.nanmean(1).nanmean())
    else:
        torch.testing.assert_close(mean, none.nanmean())
    torch.testing.assert_close(fn(logits, target, reduction="sum", **kw), none.nansum())


def test_reduction_none_gives_per_unit_gradients():
    logits, labels = multiclass_case(9, b=3, c=4)
    x = logits.clone().requires_grad_(True)
    none = losses.soft_iou(x, labels, per_image=True, reduction="none")
    weights = torch.rand(3, 4, dtype=torch.float64)
    (grad,) = torch.autograd.grad((none * weights).sum(), x, retain_graph=True)
    expected = sum(
        weights[i, k] * torch.autograd.grad(none[i, k], x, retain_graph=True)[0]
        for i in range(3)
        for k in range(4)
    )
    torch.testing.assert_close(grad, expected)


def test_weighted_cross_entropy_mean_divides_by_the_weights():
    logits, labels = multiclass_case(10, c=3)
    labels[0, 0] = 255
    kw = {"weight": [1.0, 2.0, 0.5], "ignore_index": 255}
    none = losses.cross_entropy(logits, labels, reduction="none", **kw)
    assert torch.isnan(none[0, 0]).all() and not torch.isnan(none[1]).any()
    valid = labels != 255
    weights = torch.tensor(kw["weight"], dtype=torch.float64)[labels.clamp_max(2)][valid]
    torch.testing.assert_close(losses.cross_entropy(logits, labels, **kw), none.nansum() / weights.sum())
    torch.testing.assert_close(
        losses.cross_entropy(logits, labels, **kw),
        torch.nn.functional.cross_entropy(
            logits, labels, weight=weights.new_tensor(kw["weight"]), ignore_index=255
        ),
    )


@pytest.mark.parametrize("name", REGION)
@pytest.mark.parametrize("per_image", [False, True])
def test_classes_select_units(name, per_image):
    logits, labels = multiclass_case(11, b=3, c=4)
    labels[labels == 2] = 1  # class 2 absent everywhere
    fn = losses.functional(name)
    kw = {"per_image": per_image}
    none = fn(logits, labels, reduction="none", **kw)
    torch.testing.assert_close(fn(logits, labels, classes=[1, 3], **kw), none[..., [1, 3]].mean())
    got = fn(logits, labels, classes=[0, 3], reduction="none", **kw)
    assert torch.isnan(got[..., [1, 2]]).all()
    torch.testing.assert_close(got[..., [0, 3]], none[..., [0, 3]])
    torch.testing.assert_close(
        fn(logits, labels, classes="present", **kw), fn(logits, labels, empty="ignore", **kw)
    )
    with pytest.raises(ValueError, match=r"classes must hold class indices in 0..3, got \[4\]"):
        fn(logits, labels, classes=[4])
    with pytest.raises(ValueError, match="classes selects channels in multiclass or multilabel mode"):
        fn(*binary_case(0), classes=[0])


# ------------------------------------------------------------------------------------------ validate_args
@pytest.mark.parametrize("name", ["soft_iou", "lovasz_hinge", "bce", "focal"])
def test_validate_args_per_call_overrides_the_process_wide_switch(name):
    logits, target = binary_case(12)
    logits[0, 0, 0, 0] = math.nan
    fn = losses.functional(name)
    with pytest.raises(ValueError, match="logits must be finite"):
        fn(logits, target)
    fn(logits, target, validate_args=False)  # checks skipped for this call only
    assert iou_lib.validation.value_checks_enabled()
    with pytest.raises(ValueError, match="logits must be finite"):
        fn(logits, target)
    with iou_lib.value_checks(False):
        fn(logits, target)
        with pytest.raises(ValueError, match="logits must be finite"):
            fn(logits, target, validate_args=True)
        assert not iou_lib.validation.value_checks_enabled()
    with pytest.raises(TypeError, match="validate_args must be a bool, got str"):
        fn(logits, target, validate_args="yes")


# ----------------------------------------------------------------------------------------- the modules
MODULES = {
    "SoftIoULoss": "soft_iou",
    "SoftDiceLoss": "soft_dice",
    "TverskyLoss": "tversky",
    "JaccardMetricLoss": "jaccard_metric",
    "LovaszHingeLoss": "lovasz_hinge",
    "LovaszSoftmaxLoss": "lovasz_softmax",
    "FocalLoss": "focal",
    "BCELoss": "bce",
    "WeightedBCELoss": "weighted_bce",
    "CrossEntropyLoss": "cross_entropy",
}


@pytest.mark.parametrize(("cls", "name"), MODULES.items())
def test_named_modules_equal_their_functional_form_and_show_their_options(cls, name):
    module_cls = getattr(losses, cls)
    module = module_cls(reduction="sum")
    mode = losses.modes(name)[0]
    logits, target = {"binary": binary_case, "multiclass": multiclass_case}[mode](13)
    torch.testing.assert_close(
        module(logits, target), losses.functional(name)(logits, target, reduction="sum")
    )
    text = repr(module)
    assert text.startswith(f"{cls}(") and "reduction='sum'" in text
    for option, default in losses.options(name).items():
        if option != "reduction":
            assert f"{option}={default!r}" in text
    assert list(inspect_signature(module_cls)) == list(losses.options(name))


def inspect_signature(cls) -> list[str]:
    import inspect

    return list(inspect.signature(cls).parameters)


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: losses.SoftIoULoss(per_imge=True), TypeError, r"unexpected options \['per_imge'\]"),
        (lambda: losses.get("soft_iou", smooth=math.inf), ValueError, "smooth must be a finite number >= 0"),
        (
            lambda: losses.Loss("soft_dice", smooth=math.nan),
            ValueError,
            "smooth must be a finite number >= 0",
        ),
        (lambda: losses.SoftDiceLoss(reduction="avg"), ValueError, "reduction must be one of"),
        (lambda: losses.SoftIoULoss(mode="softmax"), ValueError, "mode must be one of"),
        (lambda: losses.LovaszSoftmaxLoss(mode="binary"), ValueError, "mode='binary' is not supported here"),
        (lambda: losses.SoftIoULoss(empty="zero"), ValueError, "empty must be one of"),
        (lambda: losses.SoftIoULoss(classes="some"), ValueError, "classes must be one of"),
        (lambda: losses.SoftIoULoss(classes=[]), ValueError, "non-empty list"),
        (lambda: losses.SoftIoULoss(per_image=1), TypeError, "per_image must be a bool"),
        (lambda: losses.SoftIoULoss(ignore_index=255.0), TypeError, "ignore_index must be an int or None"),
        (lambda: losses.SoftIoULoss(validate_args=1), TypeError, "validate_args must be a bool"),
        (lambda: losses.TverskyLoss(alpha=math.inf), ValueError, "alpha must be a finite number >= 0"),
        (lambda: losses.TverskyLoss(beta=-1), ValueError, "beta must be a finite number >= 0"),
        (lambda: losses.FocalLoss(gamma=math.inf), ValueError, "gamma must be a finite number >= 0"),
        (lambda: losses.FocalLoss(alpha=[1.0, math.nan]), ValueError, "alpha must be finite and >= 0"),
        (lambda: losses.BCELoss(pos_weight=math.inf), ValueError, "pos_weight must be a finite number > 0"),
        (lambda: losses.CrossEntropyLoss(weight=[1.0, math.inf]), ValueError, "weight must be finite"),
        (lambda: losses.LovaszHingeLoss(per_image="yes"), TypeError, "per_image must be a bool"),
        (lambda: losses.parse("bce+soft_iou", {"soft_iou": {"smoth": 1.0}}), TypeError, "unexpected options"),
        (lambda: losses.SoftIoULoss("soft_dice"), TypeError, "keyword options only"),
    ],
)
def test_bad_options_fail_at_construction(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_lovasz_options_are_keyword_only():
    logits, target = binary_case(14)
    with pytest.raises(TypeError, match="positional"):
        losses.lovasz_hinge(logits, target, False)
    logits, labels = multiclass_case(14)
    with pytest.raises(TypeError, match="positional"):
        losses.lovasz_softmax(logits, labels, True)


@pytest.mark.parametrize("cls", ["SoftIoULoss", "LovaszHingeLoss", "FocalLoss"])
def test_modules_work_with_torch_compile(cls):
    logits, target = binary_case(15, dtype=torch.float32, b=2, h=8, w=8)
    module = getattr(losses, cls)(validate_args=False)
    compiled = torch.compile(module, backend="aot_eager", fullgraph=cls != "LovaszHingeLoss")
    torch.testing.assert_close(
        value_and_grad(compiled, logits, target), value_and_grad(module, logits, target)
    )


# ----------------------------------------------------------------------------------------------- README
README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, flags=re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def test_readme_training_loop_example_runs():
    (block,) = re.findall(r"```python\n(.*?)```", _section("Using iou_lib in your own training loop"), re.S)
    done = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "SoftIoULoss(mode='multiclass', per_image=True" in done.stdout
    assert "torch.Size([4, 5])" in done.stdout


def test_readme_defaults_table_is_the_code():
    text = _section("Using iou_lib in your own training loop")
    rows = re.findall(r"^\| `(\w+)` \|([^|]+)\|([^|]+)\|([^|]+)\|([^|]+)\|([^|]*)\|$", text, re.M)
    assert sorted(r[0] for r in rows) == losses.available()
    for name, modes, per_image, empty, smooth, other in rows:
        opts = losses.options(name)
        assert tuple(m.strip() for m in modes.split(",")) == losses.modes(name), name
        for key, cell in (("per_image", per_image), ("empty", empty), ("smooth", smooth)):
            cell = cell.strip()
            if key in opts:
                assert cell == f"`{opts[key]!r}`".replace("'", '"'), (name, key, cell)
            else:
                assert not cell.startswith("`"), (name, key, cell)
        for key, value in re.findall(r"`(\w+)=([^`]+)`", other):
            assert repr(opts[key]).replace("'", '"') == value, (name, key, value)
