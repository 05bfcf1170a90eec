r"""The Lovász explorer of notebook 04: a row of pixels whose errors you set, and Algorithm 1 on it.

For errors :math:`m \in [0, 1]^n` of pixels with labels :math:`y`, Algorithm 1 sorts the errors,
:math:`m_{\pi_1} \ge m_{\pi_2} \ge \dots`, and weighs them with the Jaccard increments

.. math::

    g_k = \Delta_k - \Delta_{k-1}, \qquad \Delta_k = 1 - \frac{|F| - \sum_{i \le k} y_{\pi_i}}
    {|F| + \sum_{i \le k} (1 - y_{\pi_i})}, \qquad \bar\Delta(m) = \sum_k m_{\pi_k} g_k,

where :math:`|F|` is the number of foreground pixels. Beside it the explorer shows the soft Jaccard
loss of the prediction with the same errors, :math:`p_v = |y_v - m_v|` (so :math:`|p_v - y_v| = m_v`), and
the Jaccard loss of that prediction thresholded at 0.5. :func:`lovasz_values` and
:func:`soft_jaccard_values` are vectorised over rows, so the second view draws both losses on the
square of two pixels' errors from the same code.

>>> import torch
>>> r = lovasz_row(torch.tensor([0.0, 1.0, 0.0, 0.0]), torch.tensor([1, 0, 1, 0]))
>>> round(r.extension, 4), round(r.hard_jaccard, 4)   # one wrong pixel: 1 - IoU = 1/3
(0.3333, 0.3333)
"""

from __future__ import annotations

import dataclasses

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from torch import Tensor

from iou_lib.widgets._base import CONTROL_STYLE, Explorer

__all__ = ["LovaszExplorer", "RowState", "lovasz_row", "lovasz_values", "soft_jaccard_values"]

FG, BG = "tab:orange", "tab:blue"
#: Error presets of the row explorer (12 pixels, the first ``n_fg`` foreground).
PRESETS = ("one missed object pixel", "one false positive", "all errors 0.5", "all correct")


def _check_row(errors: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    m = torch.as_tensor(errors, dtype=torch.float64)
    y = torch.as_tensor(labels).to(torch.float64)
    if m.shape[-1:] != y.shape[-1:] or y.dim() != 1:
        raise ValueError(
            f"labels must be 1-D with errors' last size, got {tuple(y.shape)} and {tuple(m.shape)}"
        )
    if ((y != 0) & (y != 1)).any():
        raise ValueError("labels must be 0 or 1")
    if not torch.isfinite(m).all() or (m < 0).any():
        raise ValueError("errors must be finite and >= 0")
    return m, y


def lovasz_values(errors: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""Algorithm 1 on each row of ``errors`` ``(..., n)`` with 1-D {0, 1} ``labels`` ``(n,)``.

    Returns ``(extension, g, order)``: the Lovász extension of the Jaccard loss :math:`\bar\Delta(m)`
    ``(...)``, the increments :math:`g_k` in sorted order ``(..., n)`` and the sort permutation
    :math:`\pi` (decreasing errors, ties in pixel order).

    >>> import torch
    >>> ext, g, order = lovasz_values(torch.tensor([0.2, 0.9]), torch.tensor([1, 0]))
    >>> order.tolist(), [round(v, 3) for v in g.tolist()], round(ext.item(), 3)
    ([1, 0], [0.5, 0.5], 0.55)
    """
    m, y = _check_row(errors, labels)
    order = torch.argsort(m, dim=-1, descending=True, stable=True)
    ms, ys = m.gather(-1, order), y[order]
    n_fg = y.sum()
    inter = n_fg - ys.cumsum(-1)
    union = n_fg + (1 - ys).cumsum(-1)
    delta = 1 - inter / union
    g = torch.diff(delta, dim=-1, prepend=torch.zeros_like(delta[..., :1]))
    return (ms * g).sum(-1), g, order


def soft_jaccard_values(errors: Tensor, labels: Tensor) -> Tensor:
    r"""Soft Jaccard loss :math:`1 - \sum p y / \sum (p + y - p y)` of :math:`p = |y - m|`, per row.

    >>> import torch
    >>> soft_jaccard_values(torch.tensor([0.0, 1.0]), torch.tensor([1, 0])).item()   # p = (1, 1)
    0.5
    """
    m, y = _check_row(errors, labels)
    p = (y - m).abs()
    inter = (p * y).sum(-1)
    union = (p + y - p * y).sum(-1)
    return 1 - inter / union.clamp_min(1e-12)


@dataclasses.dataclass(frozen=True)
class RowState:
    """What the row view shows."""

    errors: Tensor  # (n,) in pixel order
    labels: Tensor  # (n,)
    order: Tensor  # sort permutation, decreasing errors
    g: Tensor  # Jaccard increments in sorted order
    extension: float  # the Lovász extension of the Jaccard loss
    soft_jaccard: float  # soft Jaccard loss of p = |y - m|
    hard_jaccard: float  # Jaccard loss of that prediction thresholded at 0.5 (errors > 0.5 are wrong)


def lovasz_row(errors: Tensor, labels: Tensor) -> RowState:
    """Everything the row view of :class:`LovaszExplorer` draws, for one error vector."""
    m, y = _check_row(errors, labels)
    ext, g, order = lovasz_values(m, y)
    wrong = m > 0.5
    union = (y.bool() | wrong).sum()
    hard = 1 - ((y.bool() & ~wrong).sum() / union).item() if union else 0.0
    return RowState(m, y, order, g, ext.item(), soft_jaccard_values(m, y).item(), float(hard))


def row_figure(state: RowState) -> Figure:
    """Sorted errors, increments g_k, and the three losses of the row side by side."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), layout="constrained", width_ratios=[1.2, 1.2, 1])
    k = np.arange(1, len(state.errors) + 1)
    sorted_labels = state.labels[state.order].numpy()
    colours = np.where(sorted_labels > 0.5, FG, BG)
    axes[0].bar(k, state.errors[state.order].numpy(), color=colours)
    axes[0].set(
        xlabel="rank k (largest error first)", ylabel="error", ylim=(0, 1.05), title="1. errors, sorted"
    )
    axes[0].legend(
        handles=[Patch(color=FG, label="foreground"), Patch(color=BG, label="background")],
        fontsize=8,
        loc="upper right",
    )
    axes[1].bar(k, state.g.numpy(), color=colours)
    axes[1].set(xlabel="rank k", ylabel="Jaccard increment", title=r"2. increments $g_k$ (sum = 1)")
    values = [state.extension, state.soft_jaccard, state.hard_jaccard]
    names = [
        "Lovász extension\n" + r"$\sum_k m_{\pi_k} g_k$",
        "soft Jaccard\nof p = |y - m|",
        "Jaccard loss\nof p > 0.5",
    ]
    bars = axes[2].bar(names, values, color=["tab:purple", "tab:green", "0.6"])
    axes[2].bar_label(bars, fmt="%.3f", fontsize=8)
    axes[2].set(ylim=(0, 1.1), ylabel="loss", title="3. the row's loss")
    axes[2].tick_params(axis="x", labelsize=8)
    plt.close(fig)
    return fig


def surfaces(labels: tuple[int, int], steps: int = 61) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both losses on the square of two pixels' errors: ``(grid, lovasz, soft_jaccard)``, each
    ``(steps, steps)`` indexed ``[m_2, m_1]``."""
    grid = torch.linspace(0, 1, steps, dtype=torch.float64)
    m2, m1 = torch.meshgrid(grid, grid, indexing="ij")
    m = torch.stack([m1, m2], -1)
    y = torch.tensor(labels)
    ext, _, _ = lovasz_values(m, y)
    return grid.numpy(), ext.numpy(), soft_jaccard_values(m, y).numpy()


def surfaces_figure(labels: tuple[int, int], point: tuple[float, float] | None = None) -> Figure:
    """The Lovász extension and the soft Jaccard loss on two pixels, one colour scale, contours."""
    grid, ext, soft = surfaces(labels)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), layout="constrained")
    names = ("background", "foreground")
    for ax, values, title in zip(
        axes, (ext, soft), ("Lovász extension", "soft Jaccard of p = |y - m|"), strict=True
    ):
        im = ax.imshow(values, origin="lower", extent=(0, 1, 0, 1), cmap="viridis", vmin=0, vmax=1)
        ax.contour(grid, grid, values, levels=np.linspace(0.1, 0.9, 9), colors="w", linewidths=0.6)
        if point is not None:
            ax.plot(*point, "r+", ms=12, mew=2)
        ax.set(
            xlabel=f"error of pixel 1 ({names[labels[0]]})",
            ylabel=f"error of pixel 2 ({names[labels[1]]})",
            title=title,
        )
    fig.colorbar(im, ax=axes, shrink=0.85, label="loss")
    plt.close(fig)
    return fig


class LovaszExplorer(Explorer):
    """A row of ``n`` pixels (the first ``n_fg`` foreground) with one error slider each, presets and a
    random button; the view switches to the two-pixel surfaces of both losses.

    ``ex.row`` (:class:`RowState`) and ``ex.figure`` hold what is shown.
    """

    def __init__(self, n: int = 12, n_fg: int = 4, seed: int = 0):
        if not 1 <= n_fg < n:
            raise ValueError(f"need 1 <= n_fg < n, got n_fg={n_fg}, n={n}")
        self.labels = torch.tensor([1] * n_fg + [0] * (n - n_fg))
        self._rng = np.random.default_rng(seed)
        start = np.round(self._rng.uniform(0, 1, n), 2)
        self.sliders = [
            w.FloatSlider(
                value=float(v),
                min=0,
                max=1,
                step=0.01,
                orientation="vertical",
                description=f"{'fg' if y else 'bg'}{i + 1}",
                readout_format=".2f",
                layout=w.Layout(width="52px", height="170px"),
                style={"description_width": "initial"},
            )
            for i, (v, y) in enumerate(zip(start, self.labels.tolist(), strict=True))
        ]
        self.view = w.ToggleButtons(
            options=["row of pixels", "two-pixel surfaces"],
            value="row of pixels",
            description="view",
            style={"description_width": "50px"},
        )
        self.pair = w.Dropdown(
            options=[
                ("foreground, background", (1, 0)),
                ("foreground, foreground", (1, 1)),
                ("background, background", (0, 0)),
            ],
            value=(1, 0),
            description="two pixels' labels",
            **CONTROL_STYLE,
        )
        self.preset = w.Dropdown(
            options=["(choose a preset)", *PRESETS],
            value="(choose a preset)",
            description="preset errors",
            **CONTROL_STYLE,
        )
        self.random = w.Button(description="random errors")
        self.random.on_click(lambda _b: self.set_errors(np.round(self._rng.uniform(0, 1, n), 2)))
        self.preset.observe(self._on_preset, names="value")
        self.controls = [*self.sliders, self.view, self.pair]
        top = w.VBox([self.view, w.HBox(self.sliders), w.HBox([self.preset, self.random]), self.pair])
        self.row: RowState
        self._finish(top)

    def errors(self) -> Tensor:
        return torch.tensor([s.value for s in self.sliders], dtype=torch.float64)

    def set_errors(self, values: np.ndarray) -> None:
        """Set every slider, then redraw once."""
        self._updating = True
        try:
            for s, v in zip(self.sliders, values, strict=True):
                s.value = float(v)
        finally:
            self._updating = False
        self.update()

    def _on_preset(self, change: dict) -> None:
        n, n_fg = len(self.sliders), int(self.labels.sum())
        values = np.zeros(n)
        if change["new"] == PRESETS[0]:
            values[0] = 1.0
        elif change["new"] == PRESETS[1]:
            values[n_fg] = 1.0
        elif change["new"] == PRESETS[2]:
            values[:] = 0.5
        elif change["new"] != PRESETS[3]:
            return
        self.set_errors(values)

    def compute(self) -> Figure:
        self.row = lovasz_row(self.errors(), self.labels)
        self.pair.disabled = self.view.value == "row of pixels"
        if self.view.value == "row of pixels":
            return row_figure(self.row)
        return surfaces_figure(self.pair.value)
