"""Self-checks for the notebooks' exercises: each ``check_*`` runs a student's function on fixed cases,
compares it with the library's reference and, when it disagrees, recognises the usual mistakes and says
which one it is (wrong shape, wrong aggregation, missing sigmoid, ...).

A check prints a one-line confirmation and returns ``True`` on success; otherwise it raises
:class:`ExerciseError` (an ``AssertionError``) whose message is the feedback. Mistakes are recognised by
comparing the student's output with the output of each known mistake on the same inputs.

>>> import torch
>>> from iou_lib.losses import soft_iou
>>> check_soft_iou(lambda z, y: soft_iou(z, y, per_image=False))
Correct: soft IoU loss 1 - I/U, pooled over the batch, from logits.
True
>>> try:
...     check_soft_iou(lambda z, y: soft_iou(z, y, per_image=True))
... except ExerciseError as e:
...     print(str(e).split(":")[0])
Wrong aggregation
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from iou_lib.gradients import gradient_field, gradient_mass
from iou_lib.losses import functional
from iou_lib.metrics import class_iou
from iou_lib.relax import jaccard_set_loss, lovasz_extension, soft_intersection, soft_union

__all__ = [
    "ExerciseError",
    "check_per_image_iou",
    "check_gradient_balance",
    "check_jaccard_metric",
    "check_lovasz_grad",
    "check_soft_iou",
    "check_soft_iou_grad",
]


class ExerciseError(AssertionError):
    """A check found a mistake; the message says which and how to fix it."""


def _passed(message: str) -> bool:
    print(f"Correct: {message}")
    return True


def _close(a: Tensor, b: Tensor, tol: float = 1e-6) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), rtol=tol, atol=tol))


def _call(fn: Callable[..., Any], *args: Tensor, name: str) -> Tensor:
    """Run the student's function; turn crashes and non-tensor results into feedback."""
    try:
        out = fn(*args)
    except NotImplementedError:
        raise ExerciseError(
            f"Not done yet: {name} raises NotImplementedError; replace it with your code."
        ) from None
    except Exception as e:  # the student's bug: report it with the input shapes
        shapes = ", ".join(str(tuple(a.shape)) for a in args)
        raise ExerciseError(
            f"Crashed: {name} raised {type(e).__name__}: {e} (inputs of shapes {shapes})."
        ) from e
    if out is None:
        raise ExerciseError(f"Returned None: {name} must return a tensor; did you forget `return`?")
    if not isinstance(out, Tensor):
        raise ExerciseError(
            f"Wrong type: {name} must return a torch.Tensor, got {type(out).__name__} "
            "(returning a Python float or numpy array cuts the autograd graph)."
        )
    return out


def _diagnose(out: Tensor, mistakes: list[tuple[Tensor, str]], name: str, expected: Tensor) -> None:
    """Raise the message of the first known mistake whose output equals ``out``, else a generic one."""
    for value, message in mistakes:
        if _close(out, value):
            raise ExerciseError(message)
    raise ExerciseError(
        f"Wrong value: {name} gave {out.detach().flatten()[:4].tolist()}..., expected "
        f"{expected.detach().flatten()[:4].tolist()}... (first entries). Re-derive it step by "
        "step on a tiny example you can do by hand."
    )


def _binary_case(
    seed: int, shape: tuple[int, ...] = (3, 1, 6, 6), dtype=torch.float64
) -> tuple[Tensor, Tensor]:
    """Logits with a wide range (so a missing sigmoid shows) and targets with foreground in every image."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(shape, generator=g) < 0.3).to(dtype)
    y.view(shape[0], -1)[:, 0] = 1
    z = 2.5 * torch.randn(shape, generator=g, dtype=dtype) + 1.5 * (2 * y - 1)
    return z, y


def check_per_image_iou(fn: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """Check ``fn(pred, target) -> (B,)``: the foreground IoU of each image of hard ``{0, 1}`` masks
    ``(B, H, W)``, NaN for an image whose target and prediction are both empty (iou_lib's convention)."""
    name = "your per-image IoU"
    g = torch.Generator().manual_seed(6)
    target = (torch.rand(4, 8, 8, generator=g) < 0.25).long()
    pred = ((target + (torch.rand(4, 8, 8, generator=g) < 0.2).long()) % 2).long()
    target[2], pred[2] = 0, 0  # empty target, nothing predicted: 0/0
    target[3] = 0  # empty target, some false positives: IoU 0
    out = _call(fn, pred.clone(), target.clone(), name=name)
    ref = class_iou(pred, target, 2, per_image=True)[:, 1]
    if out.shape != ref.shape:
        hint = " You pooled the batch; compute one ratio per image." if out.numel() == 1 else ""
        raise ExerciseError(
            f"Wrong shape: one IoU per image, shape {tuple(ref.shape)}; got {tuple(out.shape)}.{hint}"
        )
    out = out.double()
    if torch.allclose(out, ref.double(), equal_nan=True):
        return _passed("per-image IoU = |A n B| / |A u B|, NaN when both masks are empty.")
    a, b = pred.bool().flatten(1), target.bool().flatten(1)
    inter = (a & b).sum(1).double()
    if torch.allclose(out[:2], ref[:2].double()) and not out[2].isnan():
        raise ExerciseError(
            f"Empty masks: image 2 has an empty target and an empty prediction, so IoU is 0/0. "
            f"iou_lib scores it NaN (left out of means); you returned {out[2].item()}."
        )
    mistakes = [
        ((a == b).double().mean(1), "That is pixel accuracy, not IoU: divide the intersection by the union."),
        (2 * inter / (a.sum(1) + b.sum(1)), "That is Dice 2|A n B| / (|A| + |B|), not IoU."),
        (
            inter / (a.sum(1) + b.sum(1)),
            "Union double-counts the intersection: |A u B| = |A| + |B| - |A n B|.",
        ),
        (
            class_iou(pred, target, 2, per_image=True)[:, 0].double(),
            "That is the background IoU: score the foreground (label 1).",
        ),
    ]
    for value, message in mistakes:
        if torch.allclose(out[:2], value[:2].double()):
            raise ExerciseError(message)
    raise ExerciseError(f"Wrong value: got {out.tolist()}, expected {ref.tolist()} (NaN: both masks empty).")


def check_soft_iou(fn: Callable[[Tensor, Tensor], Tensor]) -> bool:
    r"""Check ``fn(logits, target) -> 0-dim tensor``: the soft IoU loss :math:`1 - I/U` of
    :math:`p = \sigma(z)`, with I and U summed over the whole batch (one ratio), differentiable."""
    name = "your soft IoU loss"
    for seed in range(3):
        z, y = _binary_case(seed)
        zg = z.clone().requires_grad_(True)
        out = _call(fn, zg, y, name=name)
        ref = functional("soft_iou")(z, y, per_image=False)
        p = torch.sigmoid(z)
        per_image = 1 - soft_intersection(p.flatten(1), y.flatten(1)) / soft_union(p.flatten(1), y.flatten(1))
        if out.dim() != 0:
            if _close(out.flatten(), per_image):
                raise ExerciseError(
                    f"Wrong shape: you return one loss per image, shape {tuple(out.shape)}; the "
                    "loss must be a single number (0-dim tensor) with I and U pooled over the batch."
                )
            raise ExerciseError(
                f"Wrong shape: the loss must be a 0-dim tensor, got shape {tuple(out.shape)}; "
                "sum I and U over every pixel of the batch before dividing."
            )
        if _close(out, ref):
            if not out.requires_grad:
                raise ExerciseError(
                    "No gradient: the value is right but the result is detached from the logits "
                    "(a threshold, .item(), .detach() or numpy in the middle?). A loss must be "
                    "differentiable: use probabilities, not hard 0/1 predictions."
                )
            continue
        y1 = y.flatten()

        def pooled(q: Tensor, y1: Tensor = y1) -> Tensor:
            return 1 - soft_intersection(q.flatten(), y1) / soft_union(q.flatten(), y1)

        inter, union = soft_intersection(p.flatten(), y1), soft_union(p.flatten(), y1)
        mistakes = [
            (
                per_image.mean(),
                "Wrong aggregation: you average per-image ratios (mIoU^I). This exercise pools I and U over "
                "the whole batch into one ratio (per_image=False).",
            ),
            (
                pooled(z),
                "Missing sigmoid: you used the logits as probabilities. Apply torch.sigmoid(logits) first.",
            ),
            (
                inter / union,
                "Returned the IoU, not the loss: return 1 - I/U, so that minimising the loss maximises IoU.",
            ),
            (
                1 - inter / (p + y).sum(),
                "Union double-counts the intersection: U = sum(p + y - p*y), not sum(p + y) (that is "
                "Dice's denominator).",
            ),
            (
                pooled((z > 0).to(z.dtype)),
                "Hard predictions: you thresholded p at 0.5; the soft IoU uses the probabilities themselves.",
            ),
        ]
        _diagnose(out, mistakes, name, ref)
    return _passed("soft IoU loss 1 - I/U, pooled over the batch, from logits.")


def check_soft_iou_grad(fn: Callable[[Tensor, Tensor], Tensor]) -> bool:
    r"""Check ``fn(logits, target) -> dL/dlogits`` (same shape) for the batch-pooled soft IoU loss:
    :math:`-\sigma'(z)/U` on foreground and :math:`I\sigma'(z)/U^2` on background."""
    name = "your closed-form gradient"
    for seed in range(3):
        z, y = _binary_case(seed + 10)
        out = _call(fn, z, y, name=name)
        if out.shape != z.shape:
            raise ExerciseError(
                f"Wrong shape: the gradient has one entry per logit, shape {tuple(z.shape)}; got "
                f"{tuple(out.shape)}."
            )
        ref = gradient_field("soft_iou", z, y, per_image=False)
        if _close(out, ref, 1e-8):
            continue
        p = torch.sigmoid(z)
        inter, union = (p * y).sum(), (p + y - p * y).sum()
        dp = torch.where(y > 0, -1 / union, inter / union**2)
        swapped = torch.where(y > 0, inter / union**2, -1 / union)
        mistakes = [
            (dp, "Missing sigmoid derivative: this is dL/dp. Multiply by dp/dz = p (1 - p) (chain rule)."),
            (
                -ref,
                "Sign error: the foreground gradient is negative (raising a foreground logit lowers "
                "the loss).",
            ),
            (
                swapped * p * (1 - p),
                "Foreground and background swapped: -1/U belongs to pixels with y = 1, I/U^2 to y = 0.",
            ),
            (
                gradient_field("soft_iou", z, y, per_image=True) * z.shape[0],
                "Per-image I and U: this exercise pools the batch; sum I and U over all images.",
            ),
        ]
        _diagnose(out, mistakes, name, ref)
    return _passed("dL/dz = -p(1-p)/U on foreground, I p(1-p)/U^2 on background; matches autograd.")


def check_gradient_balance(
    bce_ratio: Callable[[int, int], float], soft_iou_ratio_fn: Callable[[int, int], float]
) -> bool:
    r"""Check two formulas ``f(n_pixels, n_fg)`` for the background/foreground gradient mass ratio at an
    uninformed prediction (:math:`z \equiv 0`): one for BCE, one for the batch soft IoU loss. They are
    compared with :func:`iou_lib.gradients.gradient_mass` of real gradient fields."""
    from iou_lib.data.synthetic import blob_masks

    for frac in (0.01, 0.1, 0.3):
        y = blob_masks(1, 40, frac, seed=3).double()
        n, k = y.numel(), int(y.sum())
        z = torch.zeros_like(y)
        for loss, fn in (("bce", bce_ratio), ("soft_iou", soft_iou_ratio_fn)):
            got = fn(n, k)
            if not isinstance(got, (int, float)) and not (isinstance(got, Tensor) and got.numel() == 1):
                raise ExerciseError(
                    f"Wrong type: your {loss} ratio must be a number, got {type(got).__name__}."
                )
            got, want = float(got), gradient_mass(gradient_field(loss, z, y), y)["bg_over_fg"]
            if abs(got - want) <= 1e-6 * max(1.0, abs(want)):
                continue
            hints = {
                1 / want: "Inverted: you computed foreground/background; the ratio asked is background over "
                "foreground.",
                (n - k)
                / k: "That is BCE's ratio: each pixel gets |p - y| = 1/2, so the mass is proportional "
                "to the pixel count.",
                (n - k) / (n + k): "That is soft IoU's ratio: every foreground pixel gets 1/U and every "
                "background pixel I/U^2.",
            }
            for value, hint in hints.items():
                if abs(got - value) <= 1e-6 * max(1.0, abs(value)):
                    raise ExerciseError(
                        f"{loss}: {hint} (N={n}, |Y|={k}: got {got:.4g}, expected {want:.4g})"
                    )
            raise ExerciseError(
                f"{loss}: got {got:.4g}, expected {want:.4g} for N={n}, |Y|={k}. At z = 0, p = 1/2 "
                "everywhere: write I and U (or BCE's per-pixel gradient) for that p first."
            )
    return _passed("BCE pushes (N-|Y|)/|Y| times harder on background; soft IoU about (N-|Y|)/(N+|Y|) ~ 1.")


def _lovasz_grad(gt_sorted: Tensor) -> Tensor:
    """Reference: the gradient of :func:`iou_lib.relax.lovasz_extension` of the Jaccard set loss at a strictly
    decreasing error vector (the extension is linear on that region, so its gradient is ``g``)."""
    errors = torch.linspace(1.0, 0.0, len(gt_sorted), dtype=torch.float64).requires_grad_(True)
    value = lovasz_extension(errors, lambda wrong: jaccard_set_loss(wrong, gt_sorted))
    return torch.autograd.grad(value, errors)[0].to(gt_sorted.dtype)


def check_lovasz_grad(fn: Callable[[Tensor], Tensor]) -> bool:
    r"""Check ``fn(gt_sorted) -> g``: Algorithm 1, the Lovász gradient of the Jaccard loss for {0, 1}
    labels already sorted by decreasing error,
    :math:`g_i = \Delta(\{\pi_1..\pi_i\}) - \Delta(\{\pi_1..\pi_{i-1}\})`."""
    name = "your lovasz_grad"
    g = torch.Generator().manual_seed(4)
    cases = [torch.tensor([1.0, 0, 1, 1, 0, 0, 1, 0])] + [
        (torch.rand(n, generator=g) < 0.4).double() for n in (5, 12)
    ]
    cases[-1][0] = 1
    for gt in cases:
        out = _call(fn, gt.clone(), name=name)
        ref = _lovasz_grad(gt)
        if out.shape != gt.shape:
            raise ExerciseError(
                f"Wrong shape: one weight per pixel, shape {tuple(gt.shape)}; got {tuple(out.shape)}."
            )
        if _close(out, ref):
            continue
        mistakes = [
            (
                torch.cumsum(ref, 0),
                "Missing first difference: you return Delta of each prefix (the cumulative Jaccard loss). "
                "The gradient is its increments: g[1:] = j[1:] - j[:-1].",
            ),
            (-ref, "Jaccard index instead of loss: use Delta = 1 - I/U; your weights have the wrong sign."),
            (
                _lovasz_grad(gt.flip(0)).flip(0),
                "Wrong order: the labels are already sorted by decreasing error; do not flip them.",
            ),
        ]
        _diagnose(out, mistakes, name, ref)
    return _passed("the increments of 1 - IoU along the sorted prefixes (they sum to 1 - IoU of all errors).")


def check_jaccard_metric(fn: Callable[[Tensor, Tensor], Tensor]) -> bool:
    r"""Check ``fn(x, y) -> 0-dim tensor``: the Jaccard metric loss
    :math:`1 - (\|x\|_1 + \|y\|_1 - \|x-y\|_1)/(\|x\|_1 + \|y\|_1 + \|x-y\|_1)` of probabilities ``x``
    against *soft* labels ``y`` (both ``(B, 1, H, W)`` in [0, 1]), pooled over the batch."""
    name = "your Jaccard metric loss"
    g = torch.Generator().manual_seed(5)
    for _ in range(3):
        x = torch.rand(2, 1, 5, 5, generator=g, dtype=torch.float64)
        y = torch.rand(2, 1, 5, 5, generator=g, dtype=torch.float64)
        out = _call(fn, x, y, name=name)
        if out.dim() != 0:
            raise ExerciseError(
                f"Wrong shape: return one number (0-dim tensor), got shape {tuple(out.shape)}."
            )
        ref = functional("jaccard_metric")(torch.logit(x), y, per_image=False)
        if _close(out, ref, 1e-8):
            if not _close(fn(y, y), torch.zeros((), dtype=y.dtype), 1e-8):
                raise ExerciseError(
                    "Not zero at x = y: a metric loss must vanish when the prediction equals the label."
                )
            continue
        inter, sx, sy, d = (x * y).sum(), x.sum(), y.sum(), (x - y).abs().sum()
        l2 = ((x - y) ** 2).sum()
        mistakes = [
            (
                1 - inter / (sx + sy - inter),
                "That is the soft Jaccard loss 1 - sum(xy)/sum(x + y - xy): right for hard labels, but with "
                "soft labels it is not minimised at x = y. Use the L1 form with |x - y|.",
            ),
            (1 - (sx + sy - l2) / (sx + sy + l2), "Squared distance: use the L1 norm |x - y|, not (x-y)^2."),
            ((sx + sy - d) / (sx + sy + d), "Returned the similarity, not the loss: return 1 - (...)."),
        ]
        _diagnose(out, mistakes, name, ref)
    return _passed("the Jaccard metric loss; it equals soft Jaccard on hard labels and vanishes at x = y.")
