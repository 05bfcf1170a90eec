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
from iou_lib.stats import paired_interval, student_t_quantile

__all__ = [
    "ExerciseError",
    "check_gradient_balance",
    "check_jaccard_metric",
    "check_lovasz_grad",
    "check_paired_interval",
    "check_per_image_iou",
    "check_push_ratio",
    "check_soft_iou",
    "check_soft_iou_grad",
    "check_threshold_choice",
    "check_tversky",
    "check_weighted_bce_threshold",
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


def check_tversky(fn: Callable[[Tensor, Tensor, float, float], Tensor]) -> bool:
    r"""Check ``fn(logits, target, alpha, beta) -> 0-dim tensor``: the Tversky loss
    :math:`1 - I/(I + \alpha FP + \beta FN)` of :math:`p = \sigma(z)`, with soft counts
    :math:`I = \sum py`, :math:`FP = \sum p(1-y)`, :math:`FN = \sum (1-p)y` pooled over the batch."""
    name = "your Tversky loss"
    tversky = functional("tversky")
    for seed, (alpha, beta) in enumerate([(0.3, 0.7), (0.8, 0.2), (1.0, 1.0)]):
        z, y = _binary_case(seed + 20)
        out = _call(fn, z.clone(), y, alpha, beta, name=name)
        if out.dim() != 0:
            raise ExerciseError(
                "Wrong shape: return one number (0-dim tensor) pooled over the batch, got "
                f"{tuple(out.shape)}."
            )
        ref = tversky(z, y, alpha=alpha, beta=beta, per_image=False)
        if _close(out, ref, 1e-8):
            continue
        p = torch.sigmoid(z)
        inter, fp, fn_ = (p * y).sum(), (p * (1 - y)).sum(), ((1 - p) * y).sum()
        mistakes = [
            (
                tversky(z, y, alpha=beta, beta=alpha, per_image=False),
                "alpha and beta swapped: alpha weighs the false positives sum(p (1 - y)), beta the false "
                "negatives sum((1 - p) y).",
            ),
            (
                inter / (inter + alpha * fp + beta * fn_),
                "Returned the Tversky index, not the loss: return 1 - I / (I + alpha FP + beta FN).",
            ),
            (
                1
                - (z * y).sum() / ((z * y).sum() + alpha * (z * (1 - y)).sum() + beta * ((1 - z) * y).sum()),
                "Missing sigmoid: you used the logits as probabilities. Apply torch.sigmoid(logits) first.",
            ),
            (
                tversky(z, y, alpha=alpha, beta=beta, per_image=True),
                "Wrong aggregation: you average per-image losses; pool I, FP and FN over the whole batch.",
            ),
            (
                1 - inter / (inter + alpha * fp + beta * (1 - y).sum()),
                "Wrong false negatives: FN = sum((1 - p) y) counts missed foreground, not background pixels.",
            ),
        ]
        _diagnose(out, mistakes, name, ref)
    return _passed("Tversky loss 1 - I/(I + alpha FP + beta FN); alpha = beta = 1 is the soft IoU loss.")


def _push_case(n_side: int, k: int) -> Tensor:
    y = torch.zeros(n_side * n_side, dtype=torch.float64)
    y[:k] = 1
    return y.view(1, 1, n_side, n_side)


def check_push_ratio(fn: Callable[[int, int, int, bool], float]) -> bool:
    r"""Check ``fn(n, k1, k2, per_image) -> float``: for a batch of two images of ``n`` pixels with ``k1`` and
    ``k2`` foreground pixels, at the uninformed prediction :math:`z \equiv 0`, the total soft-IoU push
    :math:`\sum |\partial L/\partial z|` on image 1's foreground divided by that on image 2's, for the
    per-image (``per_image=True``) and the batch-pooled loss. Compared with measured gradient fields."""
    for side, k1, k2 in ((10, 2, 30), (16, 5, 80), (20, 12, 12)):
        n = side * side
        y = torch.cat([_push_case(side, k1), _push_case(side, k2)])
        z = torch.zeros_like(y)
        for per_image in (True, False):
            got = fn(n, k1, k2, per_image)
            if not isinstance(got, (int, float)) and not (isinstance(got, Tensor) and got.numel() == 1):
                raise ExerciseError(f"Wrong type: the ratio must be a number, got {type(got).__name__}.")
            got = float(got)
            g = gradient_field("soft_iou", z, y, per_image=per_image)
            want = gradient_mass(g[0], y[0])["fg_mass"] / gradient_mass(g[1], y[1])["fg_mass"]
            if abs(got - want) <= 1e-9 * max(1.0, want):
                continue
            mode = "per image" if per_image else "batch"
            candidates = [
                (
                    k1 / k2,
                    "That is the batch answer k1/k2: per image, each image has its own U = (N + |Y_i|)/2, so "
                    "an image with a small object has a smaller U and a larger per-pixel push 1/U.",
                ),
                (
                    k1 * (n + k2) / (k2 * (n + k1)),
                    "That is the per-image answer: pooled, the batch has ONE I and U, so every foreground "
                    "pixel of either image gets the same push and the totals follow the pixel counts.",
                ),
                (
                    1.0,
                    "You took U = |Y| (the union of a perfect prediction). At z = 0, p = 1/2 everywhere and "
                    "U = sum(p + y - p y) = (N + |Y|)/2 includes the soft false positives.",
                ),
                (1 / want, "Inverted: the ratio asked is image 1's push over image 2's."),
            ]
            for value, hint in candidates:
                if abs(got - value) <= 1e-9 * max(1.0, value) and (per_image or value != k1 / k2):
                    raise ExerciseError(
                        f"{mode}: {hint} (N={n}, k1={k1}, k2={k2}: got {got:.4g}, expected {want:.4g})"
                    )
            raise ExerciseError(
                f"{mode}: got {got:.4g}, expected {want:.4g} for N={n}, k1={k1}, k2={k2}. Write U (and I) "
                "of each image at p = 1/2, then the per-pixel foreground push, times the pixel count."
            )
    return _passed("per image, k1 (N + k2) / (k2 (N + k1)); pooled, k1 / k2.")


def _as_triple(out: object, name: str) -> tuple[float, float, float]:
    try:
        mean, low, high = (float(v) for v in out)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ExerciseError(
            f"Wrong type: {name} must return three numbers (mean, low, high), got {out!r}."
        ) from None
    return mean, low, high


def check_paired_interval(fn: Callable[[Any, Any], Any]) -> bool:
    r"""Check ``fn(a, b) -> (mean, low, high)``: the 95 % Student-t interval of the mean paired difference
    ``a - b`` over seeds, :math:`\bar d \pm t_{0.975,\,n-1}\, s_d/\sqrt n` (``a[i]`` and ``b[i]``
    share seed ``i``)."""
    import numpy as np

    name = "your paired interval"
    cases = [
        (np.array([0.41, 0.38, 0.47, 0.35, 0.44]), np.array([0.30, 0.31, 0.33, 0.22, 0.37])),
        (np.array([0.62, 0.55, 0.70]), np.array([0.60, 0.58, 0.61])),
    ]
    for a, b in cases:
        try:
            out = fn(a.copy(), b.copy())
        except NotImplementedError:
            raise ExerciseError(
                f"Not done yet: {name} raises NotImplementedError; replace it with your code."
            ) from None
        got = _as_triple(out, name)
        ref = paired_interval(a, b)
        want = (ref.mean, ref.low, ref.high)
        if np.allclose(got, want, atol=1e-6):
            continue
        n, d = len(a), a - b
        t = student_t_quantile(0.975, n - 1)
        mean = float(d.mean())

        def around(half: float, mean: float = mean) -> tuple[float, float, float]:
            return mean, mean - half, mean + half

        unpaired = t * float(np.sqrt(a.var(ddof=1) / n + b.var(ddof=1) / n))
        mistakes = [
            (
                around(unpaired),
                "Unpaired interval: you combined the two spreads as if the runs were "
                "independent. The seeds pair them: take the differences d = a - b first, then the "
                "interval of their mean (the shared seed-to-seed variation cancels).",
            ),
            (
                around(1.96 * float(d.std(ddof=1)) / np.sqrt(n)),
                "Normal quantile 1.96 with a handful of "
                f"seeds: use Student's t with n - 1 = {n - 1} degrees of freedom ({t:.3f}).",
            ),
            (
                around(t * float(d.std(ddof=0)) / np.sqrt(n)),
                "Population standard deviation (ddof=0): the sample standard deviation divides by n - 1.",
            ),
            (
                around(t * float(d.std(ddof=1))),
                "Standard deviation instead of standard error: divide s by "
                "sqrt(n) (the interval is for the MEAN difference).",
            ),
            (
                (-mean, -want[2], -want[1]),
                "Sign reversed: the difference is a - b (the first argument minus the baseline).",
            ),
        ]
        for value, message in mistakes:
            if np.allclose(got, value, atol=1e-6):
                raise ExerciseError(message)
        raise ExerciseError(
            f"Wrong value: got {tuple(round(v, 4) for v in got)}, expected "
            f"{tuple(round(v, 4) for v in want)}. Compute d = a - b, then mean +- t * sd / sqrt(n)."
        )
    return _passed("paired 95 % t interval: mean(a - b) +- t(0.975, n-1) * sd(a - b, ddof=1) / sqrt(n).")


def _weighted_bce_optimum(w: float, q: float) -> float:
    """The p minimising the expected weighted BCE -w q log p - (1 - q) log(1 - p), by bisection on the
    derivative (a check of the closed form independent of it)."""
    lo, hi = 1e-12, 1 - 1e-12
    for _ in range(200):
        mid = (lo + hi) / 2
        slope = -w * q / mid + (1 - q) / (1 - mid)
        lo, hi = (mid, hi) if slope < 0 else (lo, mid)
    return (lo + hi) / 2


def check_weighted_bce_threshold(fn: Callable[[float], float]) -> bool:
    r"""Check ``fn(w) -> threshold``: with positives weighted by ``w``, a pixel that is foreground with
    probability :math:`q` is best predicted as :math:`p^* = wq/(wq + 1 - q)`; the threshold on
    :math:`p^*` that corresponds to :math:`q = 1/2` (plain BCE's 0.5) is :math:`w/(1 + w)`."""
    for w in (1.0, 4.0, 49.0, 99.0):
        got = fn(w)
        if not isinstance(got, (int, float)) and not (isinstance(got, Tensor) and got.numel() == 1):
            raise ExerciseError(f"Wrong type: the threshold must be a number, got {type(got).__name__}.")
        got, want = float(got), _weighted_bce_optimum(w, 0.5)
        if abs(got - want) <= 1e-6:
            continue
        hints = [
            (
                1 / (1 + w),
                "Inverted: weighting the positives by w > 1 moves the probabilities UP, so the "
                "equivalent threshold is above 0.5.",
            ),
            (
                0.5,
                "0.5 is plain BCE's threshold. The weight changes where the optimal probability sits: "
                "minimise -w q log p - (1 - q) log(1 - p) over p at q = 1/2.",
            ),
        ]
        for value, hint in hints:
            if abs(got - value) <= 1e-6 and w != 1.0:
                raise ExerciseError(f"w = {w}: {hint} (got {got:.4g}, expected {want:.4g})")
        raise ExerciseError(
            f"w = {w}: got {got:.4g}, expected {want:.4g}. Minimise the expected loss "
            "-w q log p - (1 - q) log(1 - p) over p, then put q = 1/2."
        )
    return _passed("threshold w / (1 + w): 0.98 for w = 49 (2 % foreground), 0.5 for w = 1.")


def _pooled_iou(prob: Tensor, target: Tensor, t: float) -> float:
    pred = prob > t
    inter, union = (pred & target).sum().item(), (pred | target).sum().item()
    return inter / union if union else float("nan")


def check_threshold_choice(fn: Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Any]) -> bool:
    r"""Check ``fn(val_prob, val_target, test_prob, test_target, grid) -> (threshold, test_iou)``: choose
    the threshold of ``grid`` with the best *validation* dataset IoU (pooled over all pixels; the first
    one on ties), and report the test IoU at that threshold."""
    g = torch.Generator().manual_seed(9)

    def split(shift: float) -> tuple[Tensor, Tensor]:  # four images, small to large objects
        rate = torch.tensor([0.01, 0.02, 0.05, 0.3]).view(4, 1, 1)
        offset = torch.tensor([-1.5, -1.0, 0.0, 0.5]).view(4, 1, 1)  # small objects: lower probabilities
        y = torch.rand(4, 24, 24, generator=g) < rate
        z = 1.5 * torch.randn(4, 24, 24, generator=g) + torch.where(y, 1.5, -1.5) + offset + shift
        return torch.sigmoid(z), y

    (vp, vy), (tp, ty) = split(-0.5), split(0.8)  # the test split is shifted: its best threshold differs
    grid = torch.linspace(0.05, 0.95, 19)
    try:
        out = fn(vp.clone(), vy.clone(), tp.clone(), ty.clone(), grid.clone())
    except NotImplementedError:
        raise ExerciseError("Not done yet: your function raises NotImplementedError.") from None
    try:
        thr, test_iou = (float(v) for v in out)
    except (TypeError, ValueError):
        raise ExerciseError(f"Wrong type: return (threshold, test_iou), two numbers; got {out!r}.") from None
    val_ious = [_pooled_iou(vp, vy, t) for t in grid.tolist()]
    best = grid[int(torch.tensor(val_ious).argmax())].item()
    want = _pooled_iou(tp, ty, best)
    if abs(thr - best) < 1e-6 and abs(test_iou - want) < 1e-6:
        return _passed(f"threshold {best:.2f} chosen on validation; test IoU there {want:.3f}.")
    on_test = grid[int(torch.tensor([_pooled_iou(tp, ty, t) for t in grid.tolist()]).argmax())].item()
    accuracy = grid[
        int(torch.tensor([((vp > t) == vy).float().mean() for t in grid.tolist()]).argmax())
    ].item()
    per_image = grid[
        int(
            torch.tensor(
                [
                    torch.tensor([_pooled_iou(vp[i], vy[i], t) for i in range(len(vp))]).nanmean()
                    for t in grid.tolist()
                ]
            ).argmax()
        )
    ].item()
    if abs(thr - on_test) < 1e-6 and abs(on_test - best) > 1e-6:
        raise ExerciseError(
            "Tuned on the test set: the threshold must be chosen on validation data only, "
            "otherwise the test IoU is optimistic (it is no longer an unseen-data estimate)."
        )
    if abs(thr - accuracy) < 1e-6 and abs(accuracy - best) > 1e-6:
        raise ExerciseError(
            "Maximised pixel accuracy: with little foreground, accuracy prefers predicting "
            "background; choose the threshold with the best validation IoU."
        )
    if abs(thr - per_image) < 1e-6 and abs(per_image - best) > 1e-6:
        raise ExerciseError(
            "Mean per-image IoU: the tables report the dataset IoU, pooled over all pixels; "
            "tune for the metric you report."
        )
    if abs(thr - best) < 1e-6:
        raise ExerciseError(
            f"Right threshold ({best:.2f}), wrong test IoU: got {test_iou:.4f}, expected "
            f"{want:.4f} (pooled over all test pixels at that threshold)."
        )
    if abs(thr - 0.5) < 1e-6:
        raise ExerciseError("0.5 is the default, not a tuned threshold: scan the grid on validation data.")
    raise ExerciseError(
        f"Wrong threshold: got {thr:.3f}; the grid point with the best validation IoU is {best:.3f}."
    )
