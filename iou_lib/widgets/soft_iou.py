r"""The soft-IoU explorer of notebook 02: one probability on the foreground, one on the background.

A mask of :math:`N` pixels with :math:`n_1` foreground pixels; the prediction puts :math:`p_1` on every
foreground pixel and :math:`p_0` on every background pixel. Then

.. math::

    I = n_1 p_1, \qquad U = \sum_v (p_v + y_v - p_v y_v) = n_1 + n_0 p_0, \qquad
    \frac{\partial (1 - I/U)}{\partial p_v} = -\frac1U \ (y_v = 1), \qquad \frac{I}{U^2} \ (y_v = 0),

and the push on each side is :math:`n_1/U` against :math:`n_0 I/U^2`. :func:`soft_iou_point` computes these
numbers; the explorer draws the soft IoU over the square of :math:`(p_1, p_0)` with the current point.

>>> s = soft_iou_point(p_fg=0.5, p_bg=0.5, n_pixels=100, n_fg=10)
>>> round(s.iou, 4), round(s.grad_fg, 5), round(s.grad_bg, 5)
(0.0909, -0.01818, 0.00165)
"""

from __future__ import annotations

import dataclasses

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from iou_lib.widgets._base import CONTROL_STYLE, Explorer, fg_frac_slider

__all__ = ["SoftIoUExplorer", "SoftIoUPoint", "soft_iou_point"]


@dataclasses.dataclass(frozen=True)
class SoftIoUPoint:
    """Soft IoU and its per-pixel gradients for one (p_fg, p_bg)."""

    p_fg: float
    p_bg: float
    n_pixels: int
    n_fg: int
    inter: float
    union: float
    iou: float
    grad_fg: float  # dL/dp on a foreground pixel: -1/U
    grad_bg: float  # dL/dp on a background pixel: I/U^2

    @property
    def push_fg(self) -> float:
        """Total :math:`|\\partial L/\\partial p|` on the foreground, :math:`n_1/U`."""
        return self.n_fg * abs(self.grad_fg)

    @property
    def push_bg(self) -> float:
        """Total on the background, :math:`n_0 I/U^2`."""
        return (self.n_pixels - self.n_fg) * self.grad_bg


def soft_iou_point(p_fg: float, p_bg: float, n_pixels: int = 4096, n_fg: int = 41) -> SoftIoUPoint:
    """The soft IoU of the two-level prediction and its gradients (see the module docstring)."""
    if not 0 < n_fg < n_pixels:
        raise ValueError(f"need 0 < n_fg < n_pixels, got n_fg={n_fg}, n_pixels={n_pixels}")
    if not (0 <= p_fg <= 1 and 0 <= p_bg <= 1):
        raise ValueError(f"probabilities must lie in [0, 1], got p_fg={p_fg}, p_bg={p_bg}")
    inter = n_fg * p_fg
    union = n_fg + (n_pixels - n_fg) * p_bg
    return SoftIoUPoint(p_fg, p_bg, n_pixels, n_fg, inter, union, inter / union, -1 / union, inter / union**2)


def soft_iou_figure(point: SoftIoUPoint, steps: int = 101) -> Figure:
    """The soft IoU over (p_fg, p_bg) with the point, and the push on each side at the point."""
    g1, g0 = np.linspace(0, 1, steps), np.logspace(-4, 0, steps)  # background p on a log axis
    p1, p0 = np.meshgrid(g1, g0)
    n1, n0 = point.n_fg, point.n_pixels - point.n_fg
    iou = n1 * p1 / (n1 + n0 * p0)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained", width_ratios=[1.1, 1])
    im = axes[0].pcolormesh(g1, g0, iou, cmap="viridis", vmin=0, vmax=1, shading="auto")
    axes[0].contour(g1, g0, iou, levels=np.linspace(0.1, 0.9, 9), colors="w", linewidths=0.5)
    axes[0].plot(point.p_fg, max(point.p_bg, 1e-4), "o", mfc="none", mec="red", ms=12, mew=2, clip_on=False)
    axes[0].set_yscale("log")
    axes[0].set(
        xlabel="p on foreground pixels",
        ylabel="p on background pixels (log)",
        title=f"soft IoU = {point.iou:.3f}  (foreground {n1 / point.n_pixels:.1%})",
    )
    fig.colorbar(im, ax=axes[0], shrink=0.85, label="soft IoU I / U")
    sides = [
        "one foreground pixel: 1/U",
        "one background pixel: -I/U²",
        "all foreground: n₁/U",
        "all background: -n₀ I/U²",
    ]
    values = [-point.grad_fg, -point.grad_bg, point.push_fg, -point.push_bg]
    bars = axes[1].barh(sides[::-1], values[::-1], color=["tab:blue", "tab:red", "tab:blue", "tab:red"])
    axes[1].bar_label(bars, labels=[f"{v:+.3g}" for v in values[::-1]], fontsize=8, padding=3)
    axes[1].axvline(0, color="k", lw=0.8)
    axes[1].set_xscale("symlog", linthresh=1e-5)
    reach = 300 * max(abs(v) for v in values)  # room for the value labels
    axes[1].set_xlim(-reach, reach)
    axes[1].set_xticks([-1e-1, -1e-3, -1e-5, 0, 1e-5, 1e-3, 1e-1])
    axes[1].set(
        xlabel="push on p, -dL/dp (> 0: raise)",
        title=f"I = {point.inter:.1f}, U = {point.union:.1f} pixels",
    )
    axes[1].tick_params(axis="y", labelsize=8)
    plt.close(fig)
    return fig


class SoftIoUExplorer(Explorer):
    """Sliders for the probability on the foreground and on the background and the foreground fraction of a
    64 x 64 mask; ``ex.point`` (:class:`SoftIoUPoint`) and ``ex.figure`` hold what is shown."""

    def __init__(self, n_pixels: int = 4096):
        self.n_pixels = n_pixels
        self.p_fg = w.FloatSlider(
            value=0.5, min=0, max=1, step=0.01, description="p on foreground", **CONTROL_STYLE
        )
        self.p_bg = w.FloatSlider(
            value=0.5, min=0, max=1, step=0.01, description="p on background", **CONTROL_STYLE
        )
        self.fg_frac = fg_frac_slider(0.01)
        self.controls = [self.p_fg, self.p_bg, self.fg_frac]
        self.point: SoftIoUPoint
        self._finish(w.HBox([w.VBox(self.controls[:2]), self.fg_frac]))

    def compute(self) -> Figure:
        n_fg = min(self.n_pixels - 1, max(1, round(self.fg_frac.value * self.n_pixels)))
        self.point = soft_iou_point(self.p_fg.value, self.p_bg.value, self.n_pixels, n_fg)
        return soft_iou_figure(self.point)
