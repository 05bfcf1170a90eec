"""What the benchmark compares: input cases (shape x logit regime) and implementation groups.

A *group* holds implementations of one quantity (our loss, the plain baseline written from the paper,
the peer libraries). Each implementation names the one whose value it must reproduce (``equals``); the
runner asserts it on every case before timing. Targets are converted to each library's format outside
the timed region (``prepare``).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from benchmarks import baselines
from iou_lib import metrics
from iou_lib.data.synthetic import blob_masks
from iou_lib.losses import lovasz_hinge, lovasz_softmax, soft_dice, soft_iou, tversky
from iou_lib.validation import value_checks

FG_FRACTION = 0.35
LATE_MARGIN = {"binary": 4.0, "multiclass": 6.0}
TVERSKY = {"alpha": 0.3, "beta": 0.7}


@dataclass(frozen=True)
class Case:
    """One input: ``task`` (binary | multiclass), ``shape`` (B, C, H, W), ``regime`` (random | late)."""

    task: str
    shape: tuple[int, int, int, int]
    regime: str

    @property
    def label(self) -> str:
        return "x".join(map(str, self.shape)) + f" {self.regime}"


def make_inputs(case: Case, device: torch.device, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Logits and target for ``case``.

    Binary targets are blob masks (35 % foreground); multi-class targets are 8x8-pixel cells of random
    classes (a few classes absent from each image). ``random`` logits are N(0, 1) noise, as from an
    untrained network; ``late`` logits add a margin on the right class (4 binary, 6 multi-class), so most
    pixels are confidently right (about 0.1 % positive hinge errors).
    """
    b, c, h, w = case.shape
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(b, c, h, w, generator=g)
    if case.task == "binary":
        target = blob_masks(b, h, FG_FRACTION, seed=seed)[..., :w]
        signal = 2 * target - 1
        target = target.squeeze(1)
    else:
        cells = torch.randint(0, c, (b, -(-h // 8), -(-w // 8)), generator=g)
        target = cells.repeat_interleave(8, 1).repeat_interleave(8, 2)[:, :h, :w]
        signal = torch.nn.functional.one_hot(target, c).permute(0, 3, 1, 2).float()
    logits = noise if case.regime == "random" else LATE_MARGIN[case.task] * signal + noise
    return logits.contiguous().to(device), target.contiguous().to(device)


@dataclass(frozen=True)
class Impl:
    """One implementation: ``fn(logits, prepared_target) -> loss`` (or metric value)."""

    name: str
    library: str  # "iou_lib", "baseline" or a peer library
    fn: Callable[[Tensor, Tensor], Tensor]
    prepare: Callable[[Tensor], Tensor] = lambda t: t
    equals: str | None = None  # the implementation whose value this one reproduces
    rtol: float = 1e-5
    atol: float = 1e-5
    backward: bool = True


@dataclass(frozen=True)
class Group:
    name: str
    task: str
    ours: str
    baseline: str | None
    impls: list[Impl] = field(default_factory=list)


PEER_MODULES = {
    "kornia": "kornia.losses",
    "monai": "monai.losses",
    "torchmetrics": "torchmetrics.functional",
    "segmentation_models_pytorch": "segmentation_models_pytorch.losses",
}


def peer_status() -> dict[str, str]:
    """Version of each peer library, or why it does not import."""
    status = {}
    for name, module in PEER_MODULES.items():
        try:
            importlib.import_module(module)
            status[name] = importlib.import_module(name.split(".")[0]).__version__
        except Exception as exc:  # noqa: BLE001 - any import failure means "not importable"
            status[name] = f"not importable ({type(exc).__name__}: {str(exc).splitlines()[0][:80]})"
    return status


def _channel(t: Tensor) -> Tensor:
    return t.unsqueeze(1)


def _long_channel(t: Tensor) -> Tensor:
    return t.unsqueeze(1).long()


def _float_channel(t: Tensor) -> Tensor:
    return t.unsqueeze(1).float()


def without_checks(fn: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """``fn`` with the value checks switched off (what the default checks cost is the difference)."""

    def call(logits: Tensor, target: Tensor) -> Tensor:
        with value_checks(False):
            return fn(logits, target)

    return call


SOFT_IOU = functools.partial(soft_iou, per_image=True, empty="raw")
CHECKS_OFF = "iou_lib.soft_iou (value checks off)"


def _region_impls() -> tuple[list[Impl], list[Impl], list[Impl]]:
    """Our soft IoU (with and without its default value checks), soft Dice and Tversky (per image, MONAI's
    empty-image rule) and their baselines."""
    iou = [
        Impl("iou_lib.soft_iou", "iou_lib", SOFT_IOU),
        Impl(CHECKS_OFF, "iou_lib", without_checks(SOFT_IOU), equals="iou_lib.soft_iou", rtol=0, atol=0),
        Impl(
            "baseline.soft_iou_autograd", "baseline", baselines.soft_iou_autograd, equals="iou_lib.soft_iou"
        ),
    ]
    dice = [
        Impl("iou_lib.soft_dice", "iou_lib", functools.partial(soft_dice, per_image=True, empty="raw")),
        Impl(
            "baseline.soft_dice_autograd",
            "baseline",
            baselines.soft_dice_autograd,
            equals="iou_lib.soft_dice",
        ),
    ]
    tv = [
        Impl("iou_lib.tversky", "iou_lib", functools.partial(tversky, per_image=True, empty="raw", **TVERSKY))
    ]
    return iou, dice, tv


def _binary_groups(available: dict[str, str]) -> list[Group]:
    has = {k: not v.startswith("not importable") for k, v in available.items()}
    hinge = [
        Impl("iou_lib.lovasz_hinge", "iou_lib", lovasz_hinge),
        Impl(
            "baseline.lovasz_hinge_loop",
            "baseline",
            baselines.lovasz_hinge_loop,
            equals="iou_lib.lovasz_hinge",
        ),
    ]
    iou, dice, tv = _region_impls()
    metric = [
        Impl(
            "iou_lib.binary_iou",
            "iou_lib",
            lambda z, t: metrics.binary_iou(metrics.predict(z), t),
            backward=False,
        )
    ]
    if has["kornia"]:
        import kornia.losses as kl

        hinge.append(
            Impl("kornia.lovasz_hinge_loss", "kornia", kl.lovasz_hinge_loss, equals="iou_lib.lovasz_hinge")
        )
    if has["monai"]:
        import monai.losses as ml

        smooth = {"smooth_nr": 1e-5, "smooth_dr": 1e-5}
        iou.append(
            Impl(
                "monai.DiceLoss(jaccard=True)",
                "monai",
                ml.DiceLoss(sigmoid=True, jaccard=True, **smooth),
                _float_channel,
                equals="iou_lib.soft_iou",
                rtol=1e-4,
            )
        )
        dice.append(
            Impl(
                "monai.DiceLoss",
                "monai",
                ml.DiceLoss(sigmoid=True, **smooth),
                _float_channel,
                "iou_lib.soft_dice",
                1e-4,
            )
        )
        tv.append(
            Impl(
                "monai.TverskyLoss",
                "monai",
                ml.TverskyLoss(sigmoid=True, **TVERSKY, **smooth),
                _float_channel,
                "iou_lib.tversky",
                1e-4,
            )
        )
    if has["torchmetrics"]:
        import torchmetrics
        import torchmetrics.functional as tmf

        metric.append(
            Impl(
                "torchmetrics.binary_jaccard_index",
                "torchmetrics",
                tmf.classification.binary_jaccard_index,
                _long_channel,
                "iou_lib.binary_iou",
                backward=False,
            )
        )
        module = torchmetrics.JaccardIndex(task="binary")
        metric.append(
            Impl(
                "torchmetrics.JaccardIndex",
                "torchmetrics",
                lambda z, t: module.to(z.device)(z, t),
                _long_channel,
                "iou_lib.binary_iou",
                backward=False,
            )
        )
    return [
        Group("lovasz_hinge", "binary", "iou_lib.lovasz_hinge", "baseline.lovasz_hinge_loop", hinge),
        Group("soft_iou", "binary", "iou_lib.soft_iou", "baseline.soft_iou_autograd", iou),
        Group("soft_dice", "binary", "iou_lib.soft_dice", "baseline.soft_dice_autograd", dice),
        Group("tversky", "binary", "iou_lib.tversky", None, tv),
        Group("iou_metric", "binary", "iou_lib.binary_iou", None, metric),
    ]


def _multiclass_groups(available: dict[str, str], n_classes: int) -> list[Group]:
    has = {k: not v.startswith("not importable") for k, v in available.items()}
    softmax = [
        Impl("iou_lib.lovasz_softmax", "iou_lib", lovasz_softmax),
        Impl(
            "baseline.lovasz_softmax_loop",
            "baseline",
            baselines.lovasz_softmax_loop,
            equals="iou_lib.lovasz_softmax",
            rtol=1e-4,
        ),
        Impl(
            "iou_lib.lovasz_softmax[per_image,all]",
            "iou_lib",
            functools.partial(lovasz_softmax, per_image=True, classes="all"),
        ),
    ]
    iou, dice, tv = _region_impls()
    metric = [
        Impl(
            "iou_lib.mean_iou",
            "iou_lib",
            lambda z, t: metrics.mean_iou(metrics.predict(z), t, n_classes),
            backward=False,
        )
    ]
    if has["kornia"]:
        import kornia.losses as kl

        softmax.append(
            Impl(
                "kornia.lovasz_softmax_loss",
                "kornia",
                kl.lovasz_softmax_loss,
                equals="iou_lib.lovasz_softmax[per_image,all]",
            )
        )
        dice.append(Impl("kornia.dice_loss (micro: another quantity)", "kornia", kl.dice_loss))
    if has["monai"]:
        import monai.losses as ml

        kw = {"softmax": True, "to_onehot_y": True, "smooth_nr": 1e-5, "smooth_dr": 1e-5}
        iou.append(
            Impl(
                "monai.DiceLoss(jaccard=True)",
                "monai",
                ml.DiceLoss(jaccard=True, **kw),
                _channel,
                "iou_lib.soft_iou",
                1e-4,
            )
        )
        dice.append(Impl("monai.DiceLoss", "monai", ml.DiceLoss(**kw), _channel, "iou_lib.soft_dice", 1e-4))
        tv.append(
            Impl(
                "monai.TverskyLoss",
                "monai",
                ml.TverskyLoss(**TVERSKY, **kw),
                _channel,
                "iou_lib.tversky",
                1e-4,
            )
        )
    if has["torchmetrics"]:
        import torchmetrics
        import torchmetrics.functional as tmf

        metric.append(
            Impl(
                "torchmetrics.multiclass_jaccard_index",
                "torchmetrics",
                functools.partial(tmf.classification.multiclass_jaccard_index, num_classes=n_classes),
                equals="iou_lib.mean_iou",
                backward=False,
            )
        )
        module = torchmetrics.JaccardIndex(task="multiclass", num_classes=n_classes)
        metric.append(
            Impl(
                "torchmetrics.JaccardIndex",
                "torchmetrics",
                lambda z, t: module.to(z.device)(z, t),
                equals="iou_lib.mean_iou",
                backward=False,
            )
        )
    return [
        Group(
            "lovasz_softmax", "multiclass", "iou_lib.lovasz_softmax", "baseline.lovasz_softmax_loop", softmax
        ),
        Group("soft_iou", "multiclass", "iou_lib.soft_iou", "baseline.soft_iou_autograd", iou),
        Group("soft_dice", "multiclass", "iou_lib.soft_dice", "baseline.soft_dice_autograd", dice),
        Group("tversky", "multiclass", "iou_lib.tversky", None, tv),
        Group("iou_metric", "multiclass", "iou_lib.mean_iou", None, metric),
    ]


def groups_for(task: str, available: dict[str, str], n_classes: int) -> list[Group]:
    """The implementation groups of one task."""
    return _binary_groups(available) if task == "binary" else _multiclass_groups(available, n_classes)
