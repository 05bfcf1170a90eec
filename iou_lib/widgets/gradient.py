r"""The gradient-field explorer of notebook 03: two losses side by side, a bias slice, and descent.

Three views of the same synthetic batch (blob masks and logits from
:func:`iou_lib.gradients.synthetic_logits`), each computed by a pure function the tests check:

* **fields** (:func:`field_state`): the descent direction :math:`-\partial L/\partial z` of two losses,
  each divided by its own mean :math:`|\partial L/\partial z|` so that both share one symmetric colour
  scale (the losses' raw scales differ by orders of magnitude); the raw masses are in the titles;
* **bias slice** (:func:`bias_slice`): every logit shifted together, :math:`z + b`, and the loss, the mean
  gradient :math:`\frac1N \sum_v \partial L/\partial z_v = \frac1N\,dL/db` and the IoU at 0.5 against the
  mean logit; with constant logits it shows the Lovász hinge's kink at :math:`z = 0` and the constant
  prediction each loss prefers;
* **descend** (:func:`descend`): Adam on a free logit map (no network), per pixel or one logit per block
  of pixels (bilinearly upsampled: a stand-in for a network's limited resolution), with the loss, the IoU
  at 0.5 and the IoU at the best threshold after every step.

>>> s = field_state(fg_frac=0.1, size=16, n=2, losses=("bce", "soft_iou"))
>>> s.losses, tuple(s.grads[0].shape)
(('bce', 'soft_iou'), (2, 1, 16, 16))
>>> round(float(abs(s.normalised[0]).mean()), 6)  # each field in units of its mean |dL/dz|
1.0
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor

from iou_lib import losses as loss_registry
from iou_lib import viz
from iou_lib.data.synthetic import blob_masks
from iou_lib.gradients import accepts, gradient_field, gradient_mass, synthetic_logits
from iou_lib.widgets._base import CHECKBOX_STYLE, CONTROL_STYLE, Explorer, fg_frac_slider, set_applicable

__all__ = [
    "EXPLORER_LOSSES",
    "KNOBS",
    "OFFERED_LOSSES",
    "DescentTrace",
    "FieldState",
    "GradientExplorer",
    "bias_slice",
    "descend",
    "field_state",
    "iou_curve",
    "loss_kwargs",
    "mass_text",
]

#: The binary losses of notebook 03, in its order.
EXPLORER_LOSSES = ("bce", "weighted_bce", "focal", "soft_iou", "soft_dice", "lovasz_hinge")
#: What the explorer's loss menus offer: notebook 03's losses, Tversky and the Jaccard metric loss.
OFFERED_LOSSES = (*EXPLORER_LOSSES, "tversky", "jaccard_metric")

#: Explorer knob -> (loss keyword, default). A knob is passed to every shown loss that takes its keyword;
#: ``focal_alpha`` and ``tversky_alpha`` both map to ``alpha`` and go only to their own loss.
KNOBS: dict[str, tuple[str, object]] = {
    "per_image": ("per_image", True),
    "smooth": ("smooth", 0.0),
    "empty": ("empty", "fp_rate"),
    "gamma": ("gamma", 2.0),
    "focal_alpha": ("alpha", 0.5),
    "tversky_alpha": ("alpha", 0.3),
    "tversky_beta": ("beta", 0.7),
}
_OWN_LOSS = {"gamma": "focal", "focal_alpha": "focal", "tversky_alpha": "tversky", "tversky_beta": "tversky"}

#: Thresholds for "IoU at the best threshold": uniform in logit space from p = 0.001 to 0.999, with 0.5.
THRESHOLDS = torch.sigmoid(torch.linspace(-math.log(999), math.log(999), 61, dtype=torch.float64))


#: Mean logits of the bias slice: -6 to 6 in steps of 0.25 (0 included, where the Lovász hinge has its kink).
SLICE_LOGITS = tuple(np.linspace(-6, 6, 49))


def knob_applies(knob: str, loss: str) -> bool:
    """Whether the explorer knob ``knob`` (a key of :data:`KNOBS`) changes the loss ``loss``."""
    if knob in _OWN_LOSS:
        return _OWN_LOSS[knob] == loss
    return accepts(loss, KNOBS[knob][0])


def loss_kwargs(loss: str, **knobs: object) -> dict[str, object]:
    """The keyword arguments of ``loss`` set by the explorer's knobs (defaults from :data:`KNOBS`).

    >>> loss_kwargs("focal", gamma=1.0, per_image=False)
    {'gamma': 1.0, 'alpha': 0.5}
    >>> loss_kwargs("soft_iou", smooth=1.0)
    {'per_image': True, 'smooth': 1.0, 'empty': 'fp_rate'}
    """
    unknown = set(knobs) - set(KNOBS)
    if unknown:
        raise ValueError(f"unknown knobs {sorted(unknown)}; the explorer has {sorted(KNOBS)}")
    return {
        keyword: knobs.get(knob, default)
        for knob, (keyword, default) in KNOBS.items()
        if knob_applies(knob, loss)
    }


def mass_text(mass: Mapping[str, float]) -> str:
    """The foreground/background balance of a gradient field in words, always finite.

    >>> mass_text({"fg_mass": 0.0, "bg_mass": 2.0, "fg_share": 0.0, "bg_over_fg": float("inf")})
    'fg share 0% (no push on foreground)'
    >>> mass_text({"fg_mass": 0.0, "bg_mass": 0.0, "fg_share": float("nan"), "bg_over_fg": float("nan")})
    'no gradient'
    """
    if not mass["fg_mass"] and not mass["bg_mass"]:
        return "no gradient"
    if not mass["fg_mass"]:
        return "fg share 0% (no push on foreground)"
    return f"fg share {mass['fg_share']:.0%}, bg/fg mass {mass['bg_over_fg']:.2g}"


def _batch(fg_frac: float, n_objects: int, empty_image: bool, size: int, n: int, seed: int) -> Tensor:
    target = blob_masks(n, size, fg_frac, n_objects=n_objects, seed=seed)
    if empty_image:
        target[-1] = 0
    return target


@dataclasses.dataclass(frozen=True)
class FieldState:
    """What the fields view shows: per loss its keyword arguments, value, gradient and mass statistics.

    ``normalised[i]`` is ``grads[i]`` divided by its mean absolute value (zeros where a loss has no
    gradient); ``scale`` is the one symmetric colour limit of all normalised fields.
    """

    losses: tuple[str, ...]
    kwargs: tuple[dict, ...]
    target: Tensor  # (B, 1, H, W) in {0, 1}
    logits: Tensor  # (B, 1, H, W)
    grads: tuple[Tensor, ...]
    normalised: tuple[np.ndarray, ...]
    masses: tuple[dict, ...]
    values: tuple[float, ...]
    scale: float


def field_state(
    fg_frac: float = 0.01,
    n_objects: int = 2,
    confidence: float = 0.0,
    noise: float = 1.0,
    bias: float = 0.0,
    losses: Sequence[str] = ("bce", "soft_iou"),
    empty_image: bool = False,
    size: int = 48,
    n: int = 3,
    seed: int = 0,
    **knobs: object,
) -> FieldState:
    """Masks, logits and the gradient field of each of ``losses`` for one setting of the controls.

    ``n`` blob masks of ``size`` px at foreground fraction ``fg_frac`` (``n_objects`` objects each; with
    ``empty_image`` the last mask is emptied), logits ``confidence (2y - 1) + bias + noise``. ``knobs``
    are the explorer's loss options (:data:`KNOBS`), passed to the losses that take them.
    """
    target = _batch(fg_frac, n_objects, empty_image, size, n, seed)
    logits = synthetic_logits(target, confidence, noise, seed=seed + 1, bias=bias)
    kws = tuple(loss_kwargs(name, **knobs) for name in losses)
    grads = tuple(gradient_field(name, logits, target, **kw) for name, kw in zip(losses, kws, strict=True))
    norms, scale = viz.normalise_fields(dict(enumerate(grads)))
    return FieldState(
        losses=tuple(losses),
        kwargs=kws,
        target=target,
        logits=logits,
        grads=grads,
        normalised=tuple(norms.values()),
        masses=tuple(gradient_mass(g, target) for g in grads),
        values=tuple(
            loss_registry.get(name, **kw)(logits, target).item() for name, kw in zip(losses, kws, strict=True)
        ),
        scale=scale,
    )


def _label(name: str, kw: Mapping[str, object]) -> str:
    if "per_image" not in kw:
        return name
    return f"{name} ({'per image' if kw['per_image'] else 'batch'})"


def fields_figure(state: FieldState) -> Figure:
    """One row per loss, one column per image (plus the prediction), one colour scale and its colorbar."""
    labels = [_label(name, kw) for name, kw in zip(state.losses, state.kwargs, strict=True)]
    fig = viz.gradient_fields(
        dict(zip(labels, state.grads, strict=True)),
        state.target,
        probs=torch.sigmoid(state.logits),
        cell=1.9,
        transpose=True,
        scale=state.scale,
    )
    fig.suptitle(
        "\n".join(
            f"{lab}: loss {v:.3f}, {mass_text(m)}"
            for lab, v, m in zip(labels, state.values, state.masses, strict=True)
        ),
        fontsize=8,
    )
    return fig


def iou_curve(probs: Tensor, target: Tensor, thresholds: Tensor = THRESHOLDS) -> Tensor:
    """Batch-pooled foreground IoU of ``probs > t`` for every threshold ``t`` (1 where both are empty).

    >>> import torch
    >>> iou_curve(torch.tensor([0.2, 0.6, 0.9]), torch.tensor([0, 1, 1]), torch.tensor([0.1, 0.5])).tolist()
    [0.6666666666666666, 1.0]
    """
    p = probs.detach().flatten().double()
    y = target.detach().flatten().bool()
    t = thresholds.double().to(p.device)
    fg, bg = p[y].sort().values, p[~y].sort().values
    tp = len(fg) - torch.searchsorted(fg, t, right=True)  # foreground pixels with p > t
    fp = len(bg) - torch.searchsorted(bg, t, right=True)
    union = (len(fg) + fp).double()
    return torch.where(union > 0, tp / union.clamp_min(1), torch.ones_like(union))


def bias_slice(
    logits: Tensor,
    target: Tensor,
    loss: str,
    kwargs: Mapping[str, object] | None = None,
    mean_logits: Sequence[float] | Tensor = SLICE_LOGITS,
) -> pd.DataFrame:
    r"""Loss, mean gradient and IoU at 0.5 as every logit is shifted together.

    For each value :math:`m` in ``mean_logits`` the logits become :math:`z + b` with
    :math:`b = m - \bar z`. Columns: ``mean logit``, ``loss``, ``mean gradient``
    (:math:`\frac1N\sum_v \partial L/\partial z_v`, i.e. :math:`\frac1N\,dL/db`) and ``IoU at 0.5``.
    """
    kwargs = dict(kwargs or {})
    fn = loss_registry.get(loss, **kwargs)
    grid = torch.as_tensor(mean_logits, dtype=logits.dtype)
    offsets = grid - logits.mean()
    rows = []
    for m, b in zip(grid.tolist(), offsets.tolist(), strict=True):
        z = (logits.detach() + b).requires_grad_(True)
        with torch.enable_grad():
            value = fn(z, target)
            (grad,) = torch.autograd.grad(value, z, allow_unused=True)
        mean_grad = 0.0 if grad is None else grad.mean().item()
        iou = iou_curve(torch.sigmoid(z.detach()), target, torch.tensor([0.5])).item()
        rows.append({"mean logit": m, "loss": value.item(), "mean gradient": mean_grad, "IoU at 0.5": iou})
    return pd.DataFrame(rows)


def slice_figure(slices: Mapping[str, pd.DataFrame], current: float, constant: bool) -> Figure:
    """Loss, mean gradient and IoU at 0.5 against the mean logit, one line per loss; minima marked."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.3), layout="constrained")
    styles = ("-", "--", ":")
    for (name, df), ls in zip(slices.items(), styles, strict=False):
        line = axes[0].plot(df["mean logit"], df["loss"], ls, label=name)[0]
        best = df.loc[df["loss"].idxmin()]
        axes[0].plot(best["mean logit"], best["loss"], "o", color=line.get_color())
        axes[0].annotate(
            f"min at {best['mean logit']:.2g}",
            (best["mean logit"], best["loss"]),
            xytext=(4, 6),
            textcoords="offset points",
            fontsize=8,
            color=line.get_color(),
        )
        axes[1].plot(df["mean logit"], df["mean gradient"], ls, color=line.get_color(), label=name)
        axes[2].plot(df["mean logit"], df["IoU at 0.5"], ls, color=line.get_color(), label=name)
    for ax in axes:
        ax.axvline(current, color="grey", lw=0.8, ls=":")
        ax.axvline(0, color="k", lw=0.6)
        ax.set_xlabel("mean logit (all logits shifted together)")
    axes[1].axhline(0, color="k", lw=0.6)
    axes[0].set(ylabel="loss", title="loss along the slice")
    axes[1].set(ylabel="mean dL/dz per pixel", title="mean gradient (< 0: raise all logits)")
    axes[2].set(ylabel="IoU at p > 0.5", ylim=(0, 1.02), title="IoU of the thresholded prediction")
    axes[0].legend(fontsize=8)
    what = "constant logits" if constant else "logits vary (set noise and confidence to 0 for a constant)"
    fig.suptitle(f"Bias slice, {what}; dotted: the current logits", fontsize=9)
    return fig


@dataclasses.dataclass(frozen=True)
class DescentTrace:
    """A descent run: one row per step (``step``, ``loss``, ``IoU at 0.5``, ``IoU at best threshold``,
    ``best threshold``), and the final probabilities."""

    loss: str
    history: pd.DataFrame
    probs: Tensor


def descend(
    target: Tensor,
    loss: str,
    kwargs: Mapping[str, object] | None = None,
    steps: int = 100,
    lr: float = 0.1,
    block: int = 1,
    init_logits: Tensor | None = None,
    progress: Callable[[int], None] | None = None,
) -> DescentTrace:
    r"""Minimise ``loss`` over a free logit map with Adam for ``steps`` steps; trace loss and IoU.

    ``block = 1``: one free logit per pixel (the loss alone decides; every loss that separates the
    classes eventually finds every object). ``block = k``: one logit per ``k x k`` block, bilinearly
    upsampled, so an object smaller than a block shares its logits with background, as in a network of
    limited resolution; the loss then decides the compromise. Starts from ``init_logits`` (pooled to the
    block grid) or from 0. ``progress(step)`` is called every 10 steps.
    """
    if steps < 1 or block < 1 or target.shape[-1] % block or target.shape[-2] % block:
        raise ValueError(
            f"need steps >= 1 and a block size dividing the image size {tuple(target.shape[-2:])}, "
            f"got steps={steps}, block={block}"
        )
    fn = loss_registry.get(loss, **dict(kwargs or {}))
    size = tuple(target.shape[-2:])
    start = torch.zeros_like(target, dtype=torch.float32) if init_logits is None else init_logits.float()
    theta = F.avg_pool2d(start, block).clone().requires_grad_(True) if block > 1 else start.clone()
    theta.requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    y = target.float()
    rows = []
    for step in range(steps + 1):
        with torch.enable_grad():
            z = F.interpolate(theta, size=size, mode="bilinear", align_corners=False) if block > 1 else theta
            value = fn(z, y)
        curve = iou_curve(torch.sigmoid(z.detach()), y)
        best = int(curve.argmax())
        rows.append(
            {
                "step": step,
                "loss": value.item(),
                "IoU at 0.5": iou_curve(torch.sigmoid(z.detach()), y, torch.tensor([0.5])).item(),
                "IoU at best threshold": curve[best].item(),
                "best threshold": THRESHOLDS[best].item(),
            }
        )
        if step == steps:
            break
        opt.zero_grad()
        value.backward()
        opt.step()
        if progress is not None and step % 10 == 9:
            progress(step + 1)
    return DescentTrace(loss, pd.DataFrame(rows), torch.sigmoid(z.detach()))


def descent_figure(traces: Sequence[DescentTrace], target: Tensor, block: int) -> Figure:
    """Loss and IoU traces of each run, and its final probabilities on the first image."""
    fig = plt.figure(figsize=(12, 3.4), layout="constrained")
    sub = fig.subfigures(1, 2, width_ratios=[2.2, 1])
    axes = sub[0].subplots(1, 2)
    pics = sub[1].subplots(1, len(traces), squeeze=False)[0]
    for i, trace in enumerate(traces):
        h, colour = trace.history, f"C{i}"
        axes[0].plot(h["step"], h["loss"], color=colour, label=trace.loss)
        axes[1].plot(h["step"], h["IoU at 0.5"], color=colour, label=f"{trace.loss}, at p > 0.5")
        axes[1].plot(
            h["step"],
            h["IoU at best threshold"],
            color=colour,
            ls="--",
            label=f"{trace.loss}, best threshold",
        )
        last = h.iloc[-1]
        pics[i].imshow(trace.probs[0, 0].numpy(), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        if target[0].sum() > 0:
            pics[i].contour(target[0, 0].numpy(), levels=[0.5], colors="w", linewidths=0.8)
        pics[i].set_title(
            f"{trace.loss}: p after {int(last['step'])} steps\nIoU {last['IoU at 0.5']:.2f} at 0.5, "
            f"{last['IoU at best threshold']:.2f} at {last['best threshold']:.2g}",
            fontsize=8,
        )
        pics[i].set_xticks([])
        pics[i].set_yticks([])
    axes[0].set(xlabel="step", ylabel="loss", title="loss (each on its own scale)")
    axes[0].set_yscale("log")
    axes[1].set(xlabel="step", ylabel="foreground IoU (batch)", ylim=(0, 1.02), title="IoU of the prediction")
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=7)
    where = "one free logit per pixel" if block == 1 else f"one free logit per {block}x{block} block"
    fig.suptitle(f"Adam on a free logit map ({where}); white: object outline", fontsize=9)
    return fig


class GradientExplorer(Explorer):
    """Two losses side by side: gradient fields, a bias slice, or a descent run (``view``).

    Data controls: foreground fraction, objects, confidence, bias, noise, an empty last image. Loss
    controls: the two losses and their knobs (each knob acts on the shown losses that take it; a knob
    neither loss takes is disabled, and a checkbox is also unticked). Descent controls: steps, step size,
    logit-map resolution and a button. After every change ``ex.state`` (:class:`FieldState`),
    ``ex.slices`` or ``ex.traces`` and ``ex.figure`` hold what is shown; ``ex.redraw_s`` the time taken.
    """

    def __init__(self, losses: tuple[str, ...] = OFFERED_LOSSES, size: int = 48, n: int = 3, seed: int = 0):
        self._fixed = {"size": size, "n": n, "seed": seed}
        self._remembered: dict[str, bool] = {}
        kw = CONTROL_STYLE
        # The foreground-fraction slider comes first: the browser test moves the first slider.
        self.fg_frac = fg_frac_slider(0.012)
        self.n_objects = w.IntSlider(value=2, min=1, max=12, description="objects (fewer: bigger)", **kw)
        self.confidence = w.FloatSlider(
            value=0.0, min=-4.0, max=4.0, step=0.25, description="confidence (margin)", **kw
        )
        self.bias = w.FloatSlider(
            value=0.0, min=-5.0, max=2.0, step=0.25, description="bias (< 0: background)", **kw
        )
        self.noise = w.FloatSlider(value=1.0, min=0.0, max=3.0, step=0.25, description="logit noise", **kw)
        self.empty_image = w.Checkbox(value=False, description="make the last image empty", **CHECKBOX_STYLE)
        first = "bce" if "bce" in losses else losses[0]
        second = "soft_iou" if "soft_iou" in losses else losses[-1]
        self.loss_a = w.Dropdown(options=list(losses), value=first, description="left / top loss", **kw)
        self.loss_b = w.Dropdown(options=list(losses), value=second, description="right / bottom loss", **kw)
        self.per_image = w.Checkbox(
            value=True, description="per image (off: pool the batch)", **CHECKBOX_STYLE
        )
        self.smooth = w.SelectionSlider(  # 0 is the library's default; a log slider cannot reach it
            options=[0.0, 0.001, 0.01, 0.1, 1.0, 10.0, 100.0],
            value=0.0,
            description="smoothing s (region)",
            **kw,
        )
        self.empty = w.Dropdown(
            options=[
                ("push FP down (fp_rate)", "fp_rate"),
                ("loss 1, no push (raw)", "raw"),
                ("leave out (ignore)", "ignore"),
            ],
            value="fp_rate",
            description="empty-image rule",
            **kw,
        )
        self.gamma = w.FloatSlider(value=2.0, min=0.0, max=5.0, step=0.5, description="focal gamma", **kw)
        self.focal_alpha = w.FloatSlider(
            value=0.5, min=0.05, max=0.95, step=0.05, description="focal alpha (fg weight)", **kw
        )
        self.tversky_alpha = w.FloatSlider(
            value=0.3, min=0.0, max=1.0, step=0.05, description="Tversky alpha (FP)", **kw
        )
        self.tversky_beta = w.FloatSlider(
            value=0.7, min=0.0, max=1.0, step=0.05, description="Tversky beta (FN)", **kw
        )
        self.view = w.ToggleButtons(
            options=["fields", "bias slice", "descend"],
            value="fields",
            description="view",
            style={"description_width": "50px", "button_width": "90px"},
        )
        self.steps = w.IntSlider(value=100, min=10, max=400, step=10, description="descent steps", **kw)
        self.lr = w.FloatLogSlider(
            value=0.1, base=10, min=-2, max=0, step=0.25, description="Adam step size", **kw
        )
        self.block = w.Dropdown(
            options=[("per pixel", 1), ("4x4 blocks", 4), ("8x8 blocks", 8)],
            value=8,
            description="free logits",
            **kw,
        )
        self.run = w.Button(description="descend N steps", button_style="primary")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="descent", **kw)
        self.run.on_click(lambda _b: self._start_descent())
        self.knobs = {
            "per_image": self.per_image,
            "smooth": self.smooth,
            "empty": self.empty,
            "gamma": self.gamma,
            "focal_alpha": self.focal_alpha,
            "tversky_alpha": self.tversky_alpha,
            "tversky_beta": self.tversky_beta,
        }
        data = [self.fg_frac, self.n_objects, self.confidence, self.bias, self.noise, self.empty_image]
        loss_controls = [self.loss_a, self.loss_b, *self.knobs.values()]
        descent = [self.steps, self.lr, self.block]
        self.controls = [*data, *loss_controls, self.view, *descent]
        top = w.VBox(
            [
                self.view,
                w.HBox([w.VBox(data), w.VBox(loss_controls)]),
                w.HBox([w.VBox(descent[:2]), w.VBox([descent[2], self.progress]), self.run]),
            ]
        )
        self.state: FieldState
        self.slices: dict[str, pd.DataFrame] = {}
        self.traces: tuple[DescentTrace, ...] = ()
        self._finish(top)

    def knob_values(self) -> dict[str, object]:
        """The loss knobs' current values (keys of :data:`KNOBS`)."""
        return {name: control.value for name, control in self.knobs.items()}

    def _sync_knobs(self) -> None:
        shown = (self.loss_a.value, self.loss_b.value)
        for name, control in self.knobs.items():
            applies = any(knob_applies(name, loss) for loss in shown)
            if isinstance(control, w.Checkbox):
                set_applicable(control, applies, self._remembered)
            else:
                control.disabled = not applies

    def compute(self) -> Figure:
        self._sync_knobs()
        self.state = field_state(
            fg_frac=self.fg_frac.value,
            n_objects=self.n_objects.value,
            confidence=self.confidence.value,
            noise=self.noise.value,
            bias=self.bias.value,
            losses=(self.loss_a.value, self.loss_b.value),
            empty_image=self.empty_image.value,
            **self._fixed,
            **self.knob_values(),
        )
        running = self.view.value == "descend"
        for control in (self.steps, self.lr, self.block, self.run):
            control.disabled = not running
        if self.view.value == "bias slice":
            self.slices = {
                _label(name, kw): bias_slice(self.state.logits, self.state.target, name, kw)
                for name, kw in zip(self.state.losses, self.state.kwargs, strict=True)
            }
            constant = bool(self.state.logits.std() == 0)
            return slice_figure(self.slices, self.state.logits.mean().item(), constant)
        if running:
            self.traces = self._descend()
            return descent_figure(self.traces, self.state.target, self.block.value)
        return fields_figure(self.state)

    def _start_descent(self) -> None:
        if self.view.value == "descend":
            self.update()
        else:
            self.view.value = "descend"  # observed: runs the descent

    def _descend(self) -> tuple[DescentTrace, ...]:
        n_losses = len(self.state.losses)
        self.progress.max = self.steps.value * n_losses
        self.progress.value = 0
        traces = []
        for i, (name, kw) in enumerate(zip(self.state.losses, self.state.kwargs, strict=True)):
            done = i * self.steps.value
            traces.append(
                descend(
                    self.state.target,
                    name,
                    kw,
                    steps=self.steps.value,
                    lr=self.lr.value,
                    block=self.block.value,
                    init_logits=self.state.logits,
                    progress=lambda k, done=done: setattr(self.progress, "value", done + k),
                )
            )
        self.progress.value = self.progress.max
        return tuple(traces)
