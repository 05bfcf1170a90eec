"""Interactive explorers (ipywidgets) built on pure functions, so their logic is testable without a browser.

:func:`explorer_state` computes everything the gradient explorer shows from its control values;
:func:`explorer_figure` draws it; :class:`GradientExplorer` only wires controls to these two and keeps
the latest ``state`` and ``figure`` as attributes (tests set a control's ``value`` and compare them).
The figure is shown as a PNG in an ``ipywidgets.Image``: widget state only, so it renders in JupyterLab,
in exported notebooks and under nbclient alike, with no output capturing.

>>> ex = GradientExplorer(size=24, n=2)
>>> before = ex.state.target.sum().item()
>>> ex.fg_frac.value = 0.3
>>> ex.state.target.sum().item() > before
True
"""

from __future__ import annotations

import dataclasses
import io

import ipywidgets as w
import torch
from IPython.display import display
from matplotlib.figure import Figure
from torch import Tensor

from iou_lib import losses, viz
from iou_lib.data.synthetic import blob_masks
from iou_lib.gradients import accepts, gradient_field, gradient_mass, synthetic_logits

__all__ = ["EXPLORER_LOSSES", "ExplorerState", "GradientExplorer", "explorer_figure", "explorer_state"]

#: Binary losses the explorer offers, in the order of notebook 03.
EXPLORER_LOSSES = ("bce", "weighted_bce", "focal", "soft_iou", "soft_dice", "lovasz_hinge")


@dataclasses.dataclass(frozen=True)
class ExplorerState:
    """What the gradient explorer shows for one setting of its controls."""

    loss: str
    per_image: bool | None  # None: the loss has no per-image option
    target: Tensor  # (B, 1, H, W) in {0, 1}
    logits: Tensor  # (B, 1, H, W)
    grad: Tensor  # (B, 1, H, W): dLoss/dlogit
    mass: dict[str, float]  # iou_lib.gradients.gradient_mass of the whole batch
    loss_value: float


def explorer_state(
    fg_frac: float = 0.05,
    n_objects: int = 4,
    confidence: float = 0.0,
    noise: float = 1.0,
    bias: float = 0.0,
    loss: str = "soft_iou",
    per_image: bool = True,
    empty_image: bool = False,
    size: int = 48,
    n: int = 3,
    seed: int = 0,
) -> ExplorerState:
    """Masks, logits and the gradient field of ``loss`` for one setting of the explorer's controls.

    ``n`` blob masks at foreground fraction ``fg_frac`` with ``n_objects`` objects each (fewer objects
    = bigger objects); with ``empty_image`` the last one is replaced by an empty mask. Logits from
    :func:`iou_lib.gradients.synthetic_logits` (``confidence``, ``noise``, ``bias``). ``per_image`` is
    passed to losses that take it and ignored (``state.per_image is None``) by the others.
    """
    target = blob_masks(n, size, fg_frac, n_objects=n_objects, seed=seed).double()
    if empty_image:
        target[-1] = 0
    logits = synthetic_logits(target, confidence, noise, seed=seed + 1, bias=bias)
    kw = {"per_image": per_image} if accepts(loss, "per_image") else {}
    grad = gradient_field(loss, logits, target, **kw)
    value = losses.get(loss, **kw)(logits, target).item()
    return ExplorerState(loss, kw.get("per_image"), target, logits, grad, gradient_mass(grad, target), value)


def explorer_figure(state: ExplorerState) -> Figure:
    """Prediction and descent direction per image, the batch's gradient balance in the title."""
    name = (
        state.loss
        if state.per_image is None
        else f"{state.loss} ({'per image' if state.per_image else 'batch'})"
    )
    fig = viz.gradient_fields(
        {name: state.grad},
        state.target,
        probs=torch.sigmoid(state.logits),
        cell=2.2,
        transpose=True,
    )
    m = state.mass
    fig.suptitle(
        f"loss {state.loss_value:.3f} | fg share of |grad| {m['fg_share']:.0%} | "
        f"bg/fg mass {m['bg_over_fg']:.2f}",
        fontsize=9,
    )
    return fig


class GradientExplorer:
    """Sliders for foreground fraction, object count, confidence, bias and noise; a loss menu; per-image
    vs batch; an optional empty image.

    Display it as the last expression of a cell (or ``display(ex.widget)``). After every change
    ``ex.state`` (an :class:`ExplorerState`) and ``ex.figure`` hold what is shown.
    """

    def __init__(self, losses: tuple[str, ...] = EXPLORER_LOSSES, size: int = 48, n: int = 3, seed: int = 0):
        self._fixed = {"size": size, "n": n, "seed": seed}
        kw = {"style": {"description_width": "160px"}, "layout": w.Layout(width="420px")}
        # The foreground-fraction slider comes first: the browser test moves the first slider.
        self.fg_frac = w.FloatLogSlider(
            value=0.05,
            base=10,
            min=-2.5,
            max=-0.3,
            step=0.05,
            readout_format=".3f",
            description="foreground fraction",
            **kw,
        )
        self.n_objects = w.IntSlider(value=4, min=1, max=12, description="objects (fewer: bigger)", **kw)
        self.confidence = w.FloatSlider(
            value=0.0, min=-4.0, max=4.0, step=0.25, description="confidence (margin)", **kw
        )
        self.bias = w.FloatSlider(
            value=0.0, min=-5.0, max=2.0, step=0.25, description="bias (< 0: background)", **kw
        )
        self.noise = w.FloatSlider(value=1.0, min=0.0, max=3.0, step=0.25, description="logit noise", **kw)
        self.loss = w.Dropdown(
            options=list(losses),
            value="soft_iou" if "soft_iou" in losses else losses[0],
            description="loss",
            **kw,
        )
        self.per_image = w.Checkbox(value=True, description="per image (off: pool batch)", **kw)
        self.empty_image = w.Checkbox(value=False, description="make the last image empty", **kw)
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.controls = [
            self.fg_frac,
            self.n_objects,
            self.confidence,
            self.bias,
            self.noise,
            self.loss,
            self.per_image,
            self.empty_image,
        ]
        columns = w.HBox([w.VBox(self.controls[:4]), w.VBox(self.controls[4:])])
        self.widget = w.VBox([columns, self.image])
        for control in self.controls:
            control.observe(self._on_change, names="value")
        self.state: ExplorerState
        self.figure: Figure
        self.update()

    def _on_change(self, _change: dict) -> None:
        self.update()

    def update(self) -> None:
        """Recompute the state from the controls and redraw the figure in the output area."""
        self.state = explorer_state(
            fg_frac=self.fg_frac.value,
            n_objects=self.n_objects.value,
            confidence=self.confidence.value,
            noise=self.noise.value,
            bias=self.bias.value,
            loss=self.loss.value,
            per_image=self.per_image.value,
            empty_image=self.empty_image.value,
            **self._fixed,
        )
        self.per_image.disabled = self.state.per_image is None
        self.figure = explorer_figure(self.state)
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=80)
        self.image.value = buffer.getvalue()

    def _ipython_display_(self) -> None:
        display(self.widget)
