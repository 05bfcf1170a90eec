r"""Figures the notebooks show. Every function returns a matplotlib ``Figure`` (closed for pyplot, so a
notebook displays it once, as the cell's value) and draws nothing else.

* :func:`mask_grid`: masks, optionally with a prediction's probabilities or errors;
* :func:`image_overlay`: photographs with a mask drawn over them;
* :func:`error_map`: true/false positives and negatives of a hard prediction in four colours;
* :func:`gradient_fields`: per-pixel descent directions :math:`-\partial L/\partial z` of several losses,
  on one colour scale (:func:`normalise_fields`);
* :func:`probability_histograms`: probabilities on foreground and background pixels, as histograms;
* :func:`pixel_gradients`: per-pixel :math:`\partial L/\partial p` against :math:`p`, by label;
* :func:`mass_plot`: foreground vs background gradient mass against the foreground fraction (seaborn);
* :func:`line_plot`: tidy lines with optional reference marks (seaborn);
* :func:`dice_jaccard_plot`: :math:`D = 2J/(1+J)` and its bounds;
* :func:`extension_surface`: a function on :math:`[0, 1]^2` (a two-pixel Lovász extension);
* :func:`lovasz_steps`: Algorithm 1 of the Lovász extension, one panel per step.

>>> import torch
>>> fig = mask_grid(torch.zeros(2, 1, 8, 8))
>>> type(fig).__name__, len(fig.axes)
('Figure', 2)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.colors import ListedColormap, SymLogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from torch import Tensor

__all__ = [
    "dice_jaccard_plot",
    "error_map",
    "extension_surface",
    "gradient_fields",
    "image_overlay",
    "line_plot",
    "lovasz_steps",
    "mask_grid",
    "mass_plot",
    "normalise_fields",
    "pixel_gradients",
    "probability_histograms",
]

#: Colours of the confusion classes in :func:`error_map`: TN, FP, FN, TP.
ERROR_COLOURS = ("#f2f2f2", "#d62728", "#1f77b4", "#2ca02c")


def _images(x: Tensor | np.ndarray, name: str) -> np.ndarray:
    """``(B, H, W)`` numpy array from a ``(H, W)``, ``(B, H, W)`` or ``(B, 1, H, W)`` tensor/array."""
    a = x.detach().cpu().double().numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=float)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"{name} must have shape (H, W), (B, H, W) or (B, 1, H, W), got {tuple(a.shape)}")
    return a


def _done(fig: Figure) -> Figure:
    plt.close(fig)
    return fig


def _axes(n_rows: int, n_cols: int, cell: float = 2.2) -> tuple[Figure, np.ndarray]:
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(cell * n_cols, cell * n_rows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def mask_grid(
    masks: Tensor,
    probs: Tensor | None = None,
    titles: Sequence[str] | None = None,
    ncols: int = 6,
) -> Figure:
    """Binary masks in a grid; with ``probs``, the probabilities in grey and the mask's outline in orange."""
    m = _images(masks, "masks")
    p = None if probs is None else _images(probs, "probs")
    if p is not None and p.shape != m.shape:
        raise ValueError(f"probs must match masks' shape {m.shape}, got {p.shape}")
    if titles is not None and len(titles) != len(m):
        raise ValueError(f"titles must have one entry per mask ({len(m)}), got {len(titles)}")
    ncols = min(ncols, len(m))
    nrows = -(-len(m) // ncols)
    fig, axes = _axes(nrows, ncols)
    for i, ax in enumerate(axes.flat):
        if i >= len(m):
            ax.set_axis_off()
            continue
        if p is None:
            ax.imshow(m[i], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        else:
            ax.imshow(p[i], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            if 0 < m[i].mean() < 1:
                ax.contour(m[i], levels=[0.5], colors="tab:orange", linewidths=1.2)
        ax.set_title(titles[i] if titles else f"fg {m[i].mean():.1%}", fontsize=9)
    return _done(fig)


def image_overlay(
    images: Tensor, masks: Tensor, titles: Sequence[str] | None = None, cell: float = 3.5
) -> Figure:
    """RGB images ``(B, 3, H, W)`` in [0, 1] (or uint8) with a binary mask drawn over them in orange."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
    m = _images(masks, "masks")
    if m.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(
            f"masks must have shape (B, H, W) = {(images.shape[0], *images.shape[2:])}, got {m.shape}"
        )
    x = images.detach().cpu().float()
    x = (x / 255 if not images.is_floating_point() else x).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    aspect = x.shape[2] / x.shape[1]
    fig, axes = plt.subplots(
        1, len(x), figsize=(cell * aspect * len(x), cell), squeeze=False, layout="constrained"
    )
    for i, ax in enumerate(axes.flat):
        ax.imshow(x[i])
        ax.imshow(
            np.ma.masked_where(m[i] < 0.5, m[i]),
            cmap=ListedColormap(["tab:orange"]),
            alpha=0.6,
            interpolation="nearest",
        )
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    return _done(fig)


def error_map(pred: Tensor, target: Tensor, titles: Sequence[str] | None = None, ncols: int = 6) -> Figure:
    """Hard predictions against targets: TP green, FP red, FN blue, TN light grey; IoU in each title."""
    p, t = _images(pred, "pred") > 0.5, _images(target, "target") > 0.5
    if p.shape != t.shape:
        raise ValueError(f"pred and target must have the same shape, got {p.shape} and {t.shape}")
    codes = p.astype(int) + 2 * t.astype(int)  # 0 TN, 1 FP, 2 FN, 3 TP
    ncols = min(ncols, len(p))
    fig, axes = _axes(-(-len(p) // ncols), ncols)
    for i, ax in enumerate(axes.flat):
        if i >= len(p):
            ax.set_axis_off()
            continue
        ax.imshow(codes[i], cmap=ListedColormap(ERROR_COLOURS), vmin=-0.5, vmax=3.5, interpolation="nearest")
        inter, union = (p[i] & t[i]).sum(), (p[i] | t[i]).sum()
        iou = f"IoU {inter / union:.2f}" if union else "IoU undefined (empty)"
        ax.set_title(f"{titles[i]}\n{iou}" if titles else iou, fontsize=9)
    fig.legend(
        handles=[
            Patch(color=c, label=lab) for c, lab in zip(ERROR_COLOURS, ("TN", "FP", "FN", "TP"), strict=True)
        ],
        loc="outside lower center",
        ncols=4,
        fontsize=8,
        frameon=False,
    )
    return _done(fig)


def normalise_fields(grads: Mapping[str, Tensor | np.ndarray]) -> tuple[dict[str, np.ndarray], float]:
    r"""Each field divided by its mean :math:`|\partial L/\partial z|`, and one symmetric colour limit.

    The losses' raw gradients differ in overall scale by orders of magnitude; in units of each loss's
    mean push per pixel they can share one colour scale, which then compares where each loss pushes
    (a field without gradient stays 0). The limit is the 99.5th percentile of all normalised magnitudes.

    >>> import torch
    >>> fields, limit = normalise_fields({"a": torch.tensor([1.0, -3.0]), "b": torch.tensor([0.0, 0.1])})
    >>> fields["a"].tolist(), fields["b"].tolist(), round(limit, 2)
    ([0.5, -1.5], [0.0, 2.0], 1.99)
    """
    out = {}
    for name, g in grads.items():
        a = g.detach().cpu().double().numpy() if isinstance(g, Tensor) else np.asarray(g, dtype=float)
        mean = np.abs(a).mean() if a.size else 0.0
        out[name] = a / mean if mean > 0 else np.zeros_like(a)
    magnitudes = np.concatenate([np.abs(a).ravel() for a in out.values()]) if out else np.zeros(1)
    limit = float(np.quantile(magnitudes, 0.995)) or float(magnitudes.max()) or 1.0
    return out, limit


def gradient_fields(
    grads: Mapping[str, Tensor],
    target: Tensor,
    probs: Tensor | None = None,
    image_labels: Sequence[str] | None = None,
    cell: float = 1.7,
    transpose: bool = False,
    scale: float | None = None,
) -> Figure:
    r"""Descent directions :math:`-\partial L/\partial z` of several losses on the same images.

    ``grads`` maps a loss name to its gradient field for a batch (``(B, 1, H, W)`` or ``(B, H, W)``);
    one column per loss and one row per image (``transpose=True`` swaps them). Every field is divided
    by its loss's mean :math:`|\partial L/\partial z|` (:func:`normalise_fields`), so all panels share
    one symmetric colour scale, shown by the colorbar (linear up to one mean push, logarithmic beyond):
    red raises the logit (towards foreground), blue lowers it, white is no push. ``scale`` fixes the
    colour limit (default: the 99.5th percentile of the normalised magnitudes). Each title gives the
    image's foreground share of the gradient mass; the target outline is black. With ``probs`` an extra
    first panel per image shows the prediction.
    """
    if not grads:
        raise ValueError("grads must name at least one loss")
    t = _images(target, "target")
    raw = {name: _images(g, f"grads[{name!r}]") for name, g in grads.items()}
    for name, g in raw.items():
        if g.shape != t.shape:
            raise ValueError(f"grads[{name!r}] must match target's shape {t.shape}, got {g.shape}")
    if image_labels is not None and len(image_labels) != len(t):
        raise ValueError(f"image_labels must have one entry per image ({len(t)}), got {len(image_labels)}")
    fields, limit = normalise_fields(raw)
    limit = limit if scale is None else float(scale)
    # Linear within one mean push, logarithmic beyond: a loss that spreads its push evenly and one that
    # concentrates it on a few pixels both stay visible on the one scale.
    norm = SymLogNorm(linthresh=min(1.0, limit), linscale=1.0, vmin=-limit, vmax=limit, base=10)
    p = None if probs is None else _images(probs, "probs")
    panels = [("prediction p", None)] * (p is not None) + list(fields.items())
    shape = (len(panels), len(t)) if transpose else (len(t), len(panels))
    fig, axes = _axes(*shape, cell)
    field_image = None
    for c, (name, g) in enumerate(panels):
        for r in range(len(t)):
            ax = axes[c, r] if transpose else axes[r, c]
            fg = t[r] > 0.5
            if g is None:
                ax.imshow(p[r], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
                title = name
            else:
                field_image = ax.imshow(-g[r], cmap="RdBu_r", norm=norm, interpolation="nearest")
                a = np.abs(raw[name][r])
                share = f"fg share {a[fg].sum() / a.sum():.0%}" if a.sum() > 0 else "no gradient"
                title = f"{name}\n{share}"
            if 0 < fg.mean() < 1:
                ax.contour(t[r], levels=[0.5], colors="tab:orange" if g is None else "k", linewidths=0.8)
            label = image_labels[r] if image_labels is not None else f"fg {fg.mean():.1%}"
            if transpose and c == 0:
                title = f"{label}\n{title}"
            elif not transpose and c == 0:
                ax.set_ylabel(label, fontsize=9)
            ax.set_title(title, fontsize=8)
    bar = fig.colorbar(field_image, ax=axes, shrink=0.8, aspect=25, pad=0.02)
    bar.set_label("push, in units of the loss's\nmean |dL/dz| per pixel", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    bar.ax.text(
        0.5,
        1.02,
        "raise logit",
        transform=bar.ax.transAxes,
        ha="center",
        va="bottom",
        fontsize=8,
        color="#b2182b",
    )
    bar.ax.text(
        0.5,
        -0.02,
        "lower logit",
        transform=bar.ax.transAxes,
        ha="center",
        va="top",
        fontsize=8,
        color="#2166ac",
    )
    return _done(fig)


def probability_histograms(
    probs: Mapping[str, Tensor], target: Tensor, marks: Mapping[str, float] | None = None, bins: int = 50
) -> Figure:
    """Histograms of probabilities on foreground and on background pixels, one panel per entry of ``probs``.

    Unlike grey-level images, the histograms tell 0.9 from 0.999. ``target`` is the {0, 1} mask that
    splits the pixels (``probs``' shape); ``marks`` draws labelled vertical lines (e.g. the smoothed
    targets). Counts are on a log scale so that a rare class stays visible.
    """
    fg = _images(target, "target") > 0.5
    fig, axes = plt.subplots(
        1, len(probs), figsize=(4.2 * len(probs), 3), squeeze=False, layout="constrained"
    )
    edges = np.linspace(0, 1, bins + 1)
    for ax, (name, p) in zip(axes.flat, probs.items(), strict=True):
        a = _images(p, f"probs[{name!r}]")
        if a.shape != fg.shape:
            raise ValueError(f"probs[{name!r}] must match target's shape {fg.shape}, got {a.shape}")
        ax.hist(a[fg], bins=edges, color="tab:orange", alpha=0.75, label="foreground pixels")
        ax.hist(a[~fg], bins=edges, color="tab:blue", alpha=0.6, label="background pixels")
        for label, value in (marks or {}).items():
            ax.axvline(value, color="k", ls="--", lw=1)
            ax.annotate(
                label,
                (value, 1),
                xycoords=("data", "axes fraction"),
                xytext=(3, -12),
                textcoords="offset points",
                fontsize=8,
            )
        ax.set(yscale="log", xlim=(0, 1), xlabel="predicted probability p", ylabel="pixels", title=name)
        ax.set_ylim(bottom=0.7)
    fig.legend(
        *axes.flat[0].get_legend_handles_labels(),
        loc="outside lower center",
        ncols=2,
        fontsize=8,
        frameon=False,
    )
    return _done(fig)


def pixel_gradients(grads: Mapping[str, Tensor], probs: Tensor, target: Tensor) -> Figure:
    r"""Per-pixel :math:`\partial L/\partial p_v` against :math:`p_v`, one panel per loss (seaborn).

    ``grads`` maps a loss name to its logit gradient :math:`\partial L/\partial z` (all of ``probs``'
    shape); dividing by :math:`\sigma'(z) = p(1-p)` gives the gradient with respect to the probability.
    Foreground and background pixels are coloured apart, so a loss whose gradient depends on the label
    only (soft IoU, soft Dice) shows two flat lines.
    """
    p = probs.detach().cpu().double().flatten()
    label = np.where(target.detach().cpu().flatten().numpy() > 0.5, "foreground", "background")
    frames = []
    for name, g in grads.items():
        if g.numel() != p.numel():
            raise ValueError(f"grads[{name!r}] must have one entry per pixel ({p.numel()}), got {g.numel()}")
        dldp = (g.detach().cpu().double().flatten() / (p * (1 - p))).numpy()
        frames.append(pd.DataFrame({"loss": name, "p": p.numpy(), "dL/dp": dldp, "pixel": label}))
    fig, axes = plt.subplots(
        1, len(frames), figsize=(4 * len(frames), 3), squeeze=False, layout="constrained"
    )
    for ax, df in zip(axes.flat, frames, strict=True):
        sns.scatterplot(
            data=df,
            x="p",
            y="dL/dp",
            hue="pixel",
            hue_order=["foreground", "background"],
            s=10,
            linewidth=0,
            ax=ax,
        )
        ax.axhline(0, c="grey", lw=0.8)
        ax.set_title(df["loss"].iloc[0])
    return _done(fig)


#: Axis labels in words for the columns of :func:`iou_lib.gradients.mass_table`.
MASS_WORDS = {
    "fg_share": "foreground share of |dL/dz|",
    "bg_over_fg": "background / foreground gradient mass",
    "fg_actual": "foreground fraction",
    "fg_mean": "mean |dL/dz| per foreground pixel",
    "bg_mean": "mean |dL/dz| per background pixel",
}


def mass_plot(
    df: pd.DataFrame,
    x: str = "fg_actual",
    y: str = "bg_over_fg",
    hue: str = "loss",
    col: str | None = None,
    ax_labels: tuple[str, str] | None = None,
    dodge: float = 0.04,
) -> Figure:
    """Gradient mass statistic ``y`` against foreground fraction ``x`` (log x), one line per ``hue``.

    ``df`` is a tidy table such as :func:`iou_lib.gradients.mass_table` returns; ``col`` names a column
    whose values get one panel each. Each line has its own hollow marker and dash pattern, and is shifted
    sideways by a factor ``(1 + dodge)`` per line (a note under the figure says so), so lines that
    coincide (soft IoU and soft Dice share their foreground share) stay visible. ``bg_over_fg`` is
    drawn on a log scale with a grey line at balance (1); ``fg_share`` with a grey line at 0.5.
    """
    missing = {x, y, hue, col} - {None} - set(df.columns)
    if missing:
        raise ValueError(f"df lacks the columns {sorted(missing)}; it has {list(df.columns)}")
    levels = list(dict.fromkeys(df[hue]))
    shift = {v: (1 + dodge) ** (k - (len(levels) - 1) / 2) for k, v in enumerate(levels)}
    df = df.assign(**{x: df[x] * df[hue].map(shift)})
    grid = sns.relplot(
        data=df,
        x=x,
        y=y,
        hue=hue,
        style=hue,
        col=col,
        kind="line",
        markers=True,
        dashes=True,  # losses whose lines coincide (soft IoU and soft Dice) stay distinguishable
        markersize=7,
        alpha=0.85,
        height=3.6,
        aspect=1.1,
    )
    xlabel, ylabel = ax_labels or ("foreground fraction", MASS_WORDS.get(y, y.replace("_", " ")))
    handles = [*(grid.legend.legend_handles if grid.legend else [])]
    for line in [*(ln for ax in grid.axes.flat for ln in ax.lines), *handles]:
        if hasattr(line, "set_markerfacecolor"):  # hollow markers: coinciding lines show both shapes
            line.set_markeredgecolor(line.get_color())
            line.set_markerfacecolor("none")
            line.set_markeredgewidth(1.4)
    for ax in grid.axes.flat:
        ax.set_xscale("log")
        if y == "bg_over_fg":
            ax.set_yscale("log")
        if y in ("bg_over_fg", "fg_share"):
            ax.axhline(1.0 if y == "bg_over_fg" else 0.5, c="grey", lw=1, zorder=0)
    grid.set_axis_labels(xlabel, ylabel)
    if dodge:
        grid.figure.text(
            0.01,
            0.0,
            f"Lines are shifted sideways by {dodge:.0%} each so that equal values stay visible.",
            fontsize=7,
            color="grey",
            va="bottom",
        )
    return _done(grid.figure)


def line_plot(
    df: pd.DataFrame,
    x: str,
    y: str,
    hue: str,
    col: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    marks: Mapping[str, float] | None = None,
) -> Figure:
    """Lines of ``y`` against ``x``, one per ``hue`` (and one panel per ``col``); ``marks`` draws labelled
    vertical reference lines (e.g. ``{"x = y": 0.5}``)."""
    missing = {x, y, hue, col} - {None} - set(df.columns)
    if missing:
        raise ValueError(f"df lacks the columns {sorted(missing)}; it has {list(df.columns)}")
    grid = sns.relplot(data=df, x=x, y=y, hue=hue, col=col, kind="line", height=3.3, aspect=1.15)
    for ax in grid.axes.flat:
        for label, value in (marks or {}).items():
            ax.axvline(value, ls="--", c="grey", lw=1)
            ax.annotate(
                label,
                (value, 1),
                xycoords=("data", "axes fraction"),
                xytext=(3, -12),
                textcoords="offset points",
                fontsize=8,
                color="grey",
            )
    grid.set_axis_labels(xlabel or x, ylabel or y)
    return _done(grid.figure)


def dice_jaccard_plot() -> Figure:
    r"""Dice against Jaccard, :math:`D = 2J/(1+J)`, between the bounds :math:`J \le D \le 2J`; the largest
    gap :math:`D - J = 3 - 2\sqrt2` sits at :math:`J = \sqrt2 - 1`."""
    j = np.linspace(0, 1, 201)
    d = 2 * j / (1 + j)
    fig, ax = plt.subplots(figsize=(4.5, 4), layout="constrained")
    ax.fill_between(j, j, np.minimum(2 * j, 1), color="0.9", label=r"$J \leq D \leq \min(2J, 1)$")
    ax.plot(j, d, lw=2, label=r"$D = 2J/(1+J)$")
    ax.plot(j, j, "k--", lw=1, label=r"$D = J$")
    js = np.sqrt(2) - 1
    ax.annotate(
        "", xy=(js, 2 * js / (1 + js)), xytext=(js, js), arrowprops={"arrowstyle": "<->", "color": "C3"}
    )
    ax.text(
        js + 0.02, 0.5 * (js + 2 * js / (1 + js)), r"max gap $3-2\sqrt{2}\approx0.17$", color="C3", fontsize=9
    )
    ax.set(xlabel="Jaccard J (IoU)", ylabel="Dice D", xlim=(0, 1), ylim=(0, 1), aspect="equal")
    ax.legend(loc="lower right", fontsize=8)
    return _done(fig)


def extension_surface(
    fn: Callable[[Tensor], Tensor | float], vertex_labels: bool = True, steps: int = 81, title: str = ""
) -> Figure:
    r"""A function of two errors :math:`m \in [0, 1]^2` as a heat map with contours, its values at the four
    vertices written on them: for seeing a Lovász extension interpolate a set function."""
    grid = np.linspace(0, 1, steps)
    values = np.array([[float(fn(torch.tensor([a, b], dtype=torch.float64))) for a in grid] for b in grid])
    fig, ax = plt.subplots(figsize=(4.2, 3.6), layout="constrained")
    im = ax.imshow(values, origin="lower", extent=(0, 1, 0, 1), cmap="viridis")
    ax.contour(grid, grid, values, levels=10, colors="w", linewidths=0.6)
    fig.colorbar(im, ax=ax, shrink=0.85)
    if vertex_labels:
        for a in (0, 1):
            for b in (0, 1):
                v = float(fn(torch.tensor([float(a), float(b)], dtype=torch.float64)))
                ax.annotate(
                    f"{v:.2f}",
                    (a, b),
                    xytext=(-4 if a else 4, -4 if b else 4),
                    textcoords="offset points",
                    ha="right" if a else "left",
                    va="top" if b else "bottom",
                    color="w",
                    fontsize=9,
                    weight="bold",
                )
    ax.set(xlabel="$m_1$", ylabel="$m_2$", title=title)
    return _done(fig)


def lovasz_steps(errors: Tensor, labels: Tensor, grad: Tensor) -> Figure:
    r"""Algorithm 1 drawn step by step for one error vector.

    ``errors`` :math:`m` and {0, 1} ``labels`` are 1-D; ``grad`` is :math:`g(m)`, the Lovász gradient in
    *sorted* order (as :func:`iou_lib.relax` computes it). Panels: (1) the errors sorted in decreasing
    order, foreground pixels in orange; (2) the Jaccard loss :math:`\Delta(\{\pi_1..\pi_i\})` of each
    prefix set, i.e. the cumulative sum of :math:`g`; (3) the increments :math:`g_i`; (4) the running
    sum of :math:`m_{\pi_i} g_i`, which ends at the extension's value :math:`\bar\Delta(m)`.
    """
    m = errors.detach().cpu().double().flatten()
    y = labels.detach().cpu().flatten().bool()
    g = grad.detach().cpu().double().flatten()
    if not (len(m) == len(y) == len(g)):
        raise ValueError(
            f"errors, labels and grad must have the same length, got {len(m)}, {len(y)}, {len(g)}"
        )
    order = torch.argsort(m, descending=True, stable=True)
    ms, ys = m[order].numpy(), y[order].numpy()
    i = np.arange(1, len(ms) + 1)
    colours = np.where(ys, "tab:orange", "tab:blue")
    fig, axes = plt.subplots(1, 4, figsize=(13, 3), layout="constrained")
    axes[0].bar(i, ms, color=colours)
    axes[0].set(
        title=r"1. sort errors $m_{\pi_1} \geq m_{\pi_2} \geq \dots$", xlabel="rank i", ylabel="error"
    )
    axes[0].legend(
        handles=[Patch(color="tab:orange", label="foreground"), Patch(color="tab:blue", label="background")],
        fontsize=8,
    )
    axes[1].step(np.r_[0, i], np.r_[0, np.cumsum(g.numpy())], where="post", color="k")
    axes[1].set(title=r"2. $\Delta(\{\pi_1..\pi_i\})$ = 1 - IoU of prefix", xlabel="rank i", ylim=(0, 1.05))
    axes[2].bar(i, g.numpy(), color=colours)
    axes[2].set(title=r"3. increments $g_i$", xlabel="rank i")
    axes[3].plot(i, np.cumsum(ms * g.numpy()), "o-", ms=3)
    axes[3].set(title=r"4. running sum of $m_{\pi_k} g_k$ $\to \bar\Delta(m)$", xlabel="rank i")
    return _done(fig)
