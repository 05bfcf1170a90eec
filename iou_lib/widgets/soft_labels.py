r"""The soft-label explorer of notebook 05: where the soft Jaccard loss and the JML are minimised.

Label smoothing turns a hard mask into :math:`y_\varepsilon = (1 - \varepsilon)\,y + \varepsilon/2`:
foreground pixels get :math:`1 - \varepsilon/2`, background pixels :math:`\varepsilon/2`. A prediction that
puts :math:`a` on every foreground pixel and :math:`b` on every background pixel then has, with a
foreground fraction :math:`f` (sums per pixel of the image),

.. math::

    I = f a y_1 + (1-f) b y_0, \quad S = f (a + y_1) + (1-f)(b + y_0), \quad
    D = f |a - y_1| + (1-f) |b - y_0|,

soft Jaccard loss :math:`1 - I/(S - I)` and Jaccard metric loss :math:`1 - (S - D)/(S + D)`.
:func:`soft_label_state` evaluates both on a grid of :math:`(a, b)` and finds their minimisers; the
explorer marks them beside the target :math:`p = y`.

>>> s = soft_label_state(eps=0.2, fg_frac=0.2)
>>> s.minimiser["Jaccard metric loss"], round(s.at_target["Jaccard metric loss"], 9)
((0.9, 0.1), 0.0)
>>> s.minimiser["soft Jaccard"]   # pushed to the extremes
(1.0, 0.0)
"""

from __future__ import annotations

import dataclasses

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from iou_lib.widgets._base import CONTROL_STYLE, Explorer

__all__ = ["LOSSES", "SoftLabelExplorer", "SoftLabelState", "soft_label_losses", "soft_label_state"]

LOSSES = ("soft Jaccard", "Jaccard metric loss")


def soft_label_losses(
    a: np.ndarray | float, b: np.ndarray | float, eps: float, fg_frac: float
) -> dict[str, np.ndarray]:
    """Both losses for foreground probability ``a`` and background probability ``b`` (broadcast)."""
    if not 0 <= eps <= 1 or not 0 < fg_frac < 1:
        raise ValueError(f"need 0 <= eps <= 1 and 0 < fg_frac < 1, got eps={eps}, fg_frac={fg_frac}")
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    y1, y0, f = 1 - eps / 2, eps / 2, fg_frac
    inter = f * a * y1 + (1 - f) * b * y0
    total = f * (a + y1) + (1 - f) * (b + y0)
    diff = f * np.abs(a - y1) + (1 - f) * np.abs(b - y0)
    return {LOSSES[0]: 1 - inter / (total - inter), LOSSES[1]: 1 - (total - diff) / (total + diff)}


@dataclasses.dataclass(frozen=True)
class SoftLabelState:
    """Loss surfaces on the ``grid`` of (a, b), indexed ``[b, a]``; minimisers and values at p = y."""

    eps: float
    fg_frac: float
    grid: np.ndarray
    surfaces: dict[str, np.ndarray]
    minimiser: dict[str, tuple[float, float]]
    minimum: dict[str, float]
    at_target: dict[str, float]

    @property
    def target(self) -> tuple[float, float]:
        return 1 - self.eps / 2, self.eps / 2


def soft_label_state(eps: float = 0.2, fg_frac: float = 0.2, steps: int = 101) -> SoftLabelState:
    """Both losses on a ``steps x steps`` grid of (a, b) in [0, 1]^2, their grid minimisers (the first
    in row order among ties) and their values at the target ``(1 - eps/2, eps/2)``."""
    grid = np.round(np.linspace(0, 1, steps), 10)
    a, b = np.meshgrid(grid, grid)
    surfaces = soft_label_losses(a, b, eps, fg_frac)
    minimiser, minimum = {}, {}
    for name, values in surfaces.items():
        i, j = np.unravel_index(np.argmin(values), values.shape)
        minimiser[name] = (float(grid[j]), float(grid[i]))
        minimum[name] = float(values[i, j])
    target = soft_label_losses(1 - eps / 2, eps / 2, eps, fg_frac)
    return SoftLabelState(
        eps, fg_frac, grid, surfaces, minimiser, minimum, {k: float(v) for k, v in target.items()}
    )


def soft_label_figure(state: SoftLabelState) -> Figure:
    """Both surfaces on one colour scale; the minimiser (white x) and the target p = y (red o)."""
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 4), layout="constrained")
    for ax, (name, values) in zip(axes, state.surfaces.items(), strict=True):
        im = ax.imshow(values, origin="lower", extent=(0, 1, 0, 1), cmap="viridis", vmin=0, vmax=1)
        ax.contour(
            state.grid, state.grid, values, levels=np.linspace(0.1, 0.9, 9), colors="w", linewidths=0.5
        )
        (ma, mb), (ta, tb) = state.minimiser[name], state.target
        ax.plot(
            ma,
            mb,
            "X",
            mfc="white",
            mec="black",
            ms=12,
            clip_on=False,
            zorder=5,
            label=f"minimum {state.minimum[name]:.3f} at ({ma:.2f}, {mb:.2f})",
        )
        ax.plot(
            ta,
            tb,
            "o",
            mfc="none",
            mec="red",
            ms=14,
            mew=2,
            clip_on=False,
            zorder=6,
            label=f"p = y: {state.at_target[name]:.3f} at ({ta:.2f}, {tb:.2f})",
        )
        ax.legend(fontsize=8, loc="upper left", framealpha=0.9)
        ax.set(xlabel="p on foreground pixels", ylabel="p on background pixels", title=name)
    fig.colorbar(im, ax=axes, shrink=0.85, label="loss")
    fig.suptitle(
        f"label smoothing eps = {state.eps:.2f}: targets {1 - state.eps / 2:.2f} (foreground) and "
        f"{state.eps / 2:.2f} (background); foreground fraction {state.fg_frac:.0%}",
        fontsize=9,
    )
    plt.close(fig)
    return fig


class SoftLabelExplorer(Explorer):
    """Sliders for the smoothing ``eps`` and the foreground fraction; ``ex.state`` (:class:`SoftLabelState`)
    and ``ex.figure`` hold what is shown."""

    def __init__(self, eps: float = 0.2, fg_frac: float = 0.2):
        self.eps = w.FloatSlider(
            value=eps, min=0.0, max=0.6, step=0.02, description="label smoothing eps", **CONTROL_STYLE
        )
        self.fg_frac = w.FloatSlider(
            value=fg_frac, min=0.02, max=0.8, step=0.02, description="foreground fraction", **CONTROL_STYLE
        )
        self.controls = [self.eps, self.fg_frac]
        self.state: SoftLabelState
        self._finish(w.HBox(self.controls))

    def compute(self) -> Figure:
        self.state = soft_label_state(self.eps.value, self.fg_frac.value)
        return soft_label_figure(self.state)
