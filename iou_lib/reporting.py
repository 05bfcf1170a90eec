r"""Tables and figures for experiment results: stored results with their provenance, mean with a 95 %
confidence interval over seeds, paired differences, learning curves and predictions side by side.

Everything reads the tidy rows of :func:`iou_lib.train.fit` / :func:`iou_lib.experiments.run_grid`
(columns ``run, data, fg_frac, class_name, loss, model, seed, split, epoch, metric, value``) and returns a
``DataFrame`` or a matplotlib ``Figure`` (closed for pyplot, so a notebook shows it once).

Intervals are Student-t intervals over runs, :math:`\bar x \pm t_{0.975,\,n-1}\, s/\sqrt n`, as in
:func:`iou_lib.experiments.summarize` (with three seeds a bootstrap interval would be far too narrow).
A *paired* difference compares two losses on the same seed, hence the same data, initialisation and batch
order: the seed-to-seed spread that both share cancels, so a paired interval is usually much narrower than
the two separate intervals suggest.

>>> import pandas as pd
>>> t = pd.DataFrame({"run": list("abcd"), "loss": ["bce", "bce", "soft_iou", "soft_iou"],
...                   "seed": [0, 1, 0, 1], "split": "test", "epoch": 1, "metric": "miou_d",
...                   "value": [0.2, 0.3, 0.5, 0.5]})
>>> paired_differences(t, baseline="bce", by=())[["loss", "seed", "diff"]].values.tolist()
[['soft_iou', 0, 0.3], ['soft_iou', 1, 0.2]]
>>> results_table(t, {"miou_d": "IoU"}).loc["soft_iou", "IoU"]
'0.500 ± 0.000'
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from iou_lib.data.folders import CAMVID_CLASSES, camvid_class_index, camvid_root
from iou_lib.experiments import student_t_quantile, summarize
from iou_lib.viz import ERROR_COLOURS

__all__ = [
    "STORED_DIR",
    "camvid_available",
    "class_table",
    "final_values",
    "learning_curves",
    "ordered",
    "mean_ci_plot",
    "paired_difference_plot",
    "paired_differences",
    "predictions_side_by_side",
    "provenance_text",
    "results_table",
    "stored_results",
    "t_interval",
    "threshold_curves",
]

STORED_DIR = Path(__file__).resolve().parents[1] / "data" / "results"
"""Where ``tools/make_results.py`` stores result tables (``<group>_<profile>.csv`` + ``.json``)."""


def _check_columns(table: pd.DataFrame, needed: Sequence[str], name: str = "table") -> None:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks the columns {missing}; it has {list(table.columns)}")


def _done(fig: Figure) -> Figure:
    plt.close(fig)
    return fig


# --------------------------------------------------------------------------------------------- stored data
def stored_results(
    group: str, results_dir: str | Path | None = None, profiles: Sequence[str] = ("gpu", "cpu")
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The stored table ``<group>_<profile>.csv`` of the first profile in ``profiles`` that exists, and its
    provenance (the ``.json`` next to it).

    >>> table, prov = stored_results("synthetic")
    >>> prov["group"], {"run", "loss", "metric", "value"} <= set(table.columns)
    ('synthetic', True)
    """
    folder = Path(results_dir) if results_dir is not None else STORED_DIR
    for profile in profiles:
        csv = folder / f"{group}_{profile}.csv"
        if csv.exists():
            table = pd.read_csv(csv, keep_default_na=False)
            table["value"] = pd.to_numeric(table["value"], errors="coerce")
            if "fg_frac" in table:
                table["fg_frac"] = pd.to_numeric(table["fg_frac"], errors="coerce")
            return table, json.loads(csv.with_suffix(".json").read_text())
    tried = ", ".join(f"{group}_{p}.csv" for p in profiles)
    raise FileNotFoundError(
        f"no stored results in {folder} (looked for {tried}); "
        "regenerate them with `python tools/make_results.py`"
    )


def provenance_text(prov: Mapping[str, Any]) -> str:
    """One paragraph saying where a stored table comes from (for a notebook to print above it)."""
    commit = (prov.get("git_commit") or "unknown")[:10] + (
        " + uncommitted changes" if prov.get("git_dirty") else ""
    )
    return (
        f"STORED results ({prov.get('table')}): profile '{prov.get('profile')}' - {prov.get('note')}.\n"
        f"{prov.get('n_runs')} runs on {prov.get('device')}, table written {prov.get('date')}, git {commit}, "
        f"torch {prov.get('torch')}, Python {prov.get('python')}.\nRegenerate: {prov.get('command')}"
    )


def camvid_available(path: str | Path | None = None) -> Path | None:
    """The CamVid folder (``path``, else ``$IOU_DATA_DIR``) if it holds the CamVid layout, else ``None``.

    >>> camvid_available("/nonexistent") is None
    True
    """
    try:
        return camvid_root(path)
    except (ValueError, FileNotFoundError):
        return None


# ------------------------------------------------------------------------------------------------ tables
def final_values(table: pd.DataFrame, metric: str = "miou_d", split: str = "test") -> pd.DataFrame:
    """One row per run: the run's columns and ``value`` of ``metric`` at its last epoch of ``split``."""
    _check_columns(table, ("run", "split", "metric", "value"))
    rows = table[(table["split"] == split) & (table["metric"] == metric)]
    if "epoch" in rows:
        rows = rows[rows["epoch"] == rows.groupby("run")["epoch"].transform("max")]
    return rows.reset_index(drop=True)


def ordered(table: pd.DataFrame, column: str, values: Sequence[Any]) -> pd.DataFrame:
    """``table`` with its rows sorted (stably) by the position of ``column``'s value in ``values``; rows
    whose value is not listed come last. Tables and figures here follow the row order of their input.

    >>> ordered(pd.DataFrame({"loss": ["b", "x", "a"]}), "loss", ["a", "b"])["loss"].tolist()
    ['a', 'b', 'x']
    """
    _check_columns(table, (column,))
    rank = {v: i for i, v in enumerate(values)}
    return table.sort_values(column, key=lambda col: col.map(lambda v: rank.get(v, len(rank))), kind="stable")


def t_interval(values: Sequence[float] | np.ndarray | pd.Series) -> tuple[float, float]:
    """The 95 % Student-t interval of the mean of ``values`` (a point when there is one value).

    >>> [round(v, 3) for v in t_interval([0.5, 0.6, 0.7])]
    [0.352, 0.848]
    """
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return math.nan, math.nan
    mean = float(v.mean())
    if len(v) == 1:
        return mean, mean
    half = student_t_quantile(0.975, len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return mean - half, mean + half


def results_table(
    table: pd.DataFrame,
    metrics: Mapping[str, str],
    by: str | Sequence[str] = "loss",
    split: str = "test",
    digits: int = 3,
) -> pd.DataFrame:
    """``mean ± ci95`` strings of each test ``metric`` (keys; values are the column titles), one row per
    ``by`` value, in the order the rows first appear in ``table``; the ``± ...`` is left out for one run."""
    by = [by] if isinstance(by, str) else list(by)
    columns = {}
    for metric, title in metrics.items():
        s = summarize(table, metric=metric, split=split, by=by).set_index(by)
        text = [
            f"{m:.{digits}f}" + ("" if math.isnan(c) else f" ± {c:.{digits}f}")
            for m, c in zip(s["mean"], s["ci95"], strict=True)
        ]
        columns[title] = pd.Series(text, index=s.index)
    out = pd.DataFrame(columns)
    order = table[by].drop_duplicates()
    order = pd.MultiIndex.from_frame(order) if len(by) > 1 else pd.Index(order[by[0]])
    return out.reindex([k for k in order if k in out.index])


def paired_differences(
    table: pd.DataFrame,
    metric: str = "miou_d",
    baseline: str = "bce",
    by: Sequence[str] = ("fg_frac",),
    pair_on: str = "seed",
    split: str = "test",
) -> pd.DataFrame:
    """Per seed, ``metric(loss) - metric(baseline)`` for every other loss, within each ``by`` group.

    Returns columns ``*by, loss, seed, value, baseline_value, diff``; pairs whose baseline run is missing
    are left out.
    """
    by = list(by)
    _check_columns(table, [*by, "loss", pair_on])
    runs = final_values(table, metric, split)
    if baseline not in set(runs["loss"]):
        raise ValueError(f"baseline {baseline!r} has no runs; losses present: {sorted(set(runs['loss']))}")
    keys = [*by, pair_on]
    base = runs[runs["loss"] == baseline][[*keys, "value"]].rename(columns={"value": "baseline_value"})
    other = runs[runs["loss"] != baseline][[*keys, "loss", "value"]]
    out = other.merge(base, on=keys, how="inner")
    out["diff"] = out["value"] - out["baseline_value"]
    return out[[*by, "loss", pair_on, "value", "baseline_value", "diff"]].reset_index(drop=True)


def _class_label(name: str) -> str:
    """CamVid's spelling of a class name (``"car"`` -> ``"Car"``); other names unchanged."""
    try:
        return CAMVID_CLASSES[camvid_class_index(name)]
    except ValueError:
        return name


def class_table(
    table: pd.DataFrame, metric: str = "miou_d", split: str = "test", digits: int = 3
) -> pd.DataFrame:
    """Per-class IoU laid out like the paper's tables: rows = classes, columns = losses (mean over seeds).

    Binary runs (one model per class, ``class_name`` set): each class's final ``metric`` (default the
    foreground IoU at 0.5, ``miou_d``; e.g. ``"miou_d@val_thr"``), and a last row ``mean`` over the
    classes. Multi-class runs (``class_name`` empty): ``iou_d/<Class>`` and a last row ``mIoU``, the
    model's ``miou_d``. Pass one kind of runs at a time.
    """
    _check_columns(table, ("run", "class_name", "loss", "split", "metric", "value"))
    binary = table["class_name"].astype(str) != ""
    if binary.any() and not binary.all():
        raise ValueError("table mixes binary (class_name set) and multi-class runs; pass them separately")
    if table.empty:
        raise ValueError("table holds no runs")
    if binary.all():
        runs = final_values(table, metric, split)
        runs = runs.assign(cls=[_class_label(c) for c in runs["class_name"]])
        out = runs.pivot_table(index="cls", columns="loss", values="value", aggfunc="mean", sort=False)
        out.loc["mean"] = out.mean()
    else:
        rows = table[(table["split"] == split) & table["metric"].str.startswith("iou_d/")]
        rows = rows[rows["epoch"] == rows.groupby("run")["epoch"].transform("max")]
        out = rows.assign(cls=rows["metric"].str.removeprefix("iou_d/")).pivot_table(
            index="cls", columns="loss", values="value", aggfunc="mean", sort=False
        )
        out.loc["mIoU"] = final_values(table, "miou_d", split).groupby("loss")["value"].mean()
    losses = list(dict.fromkeys(table["loss"]))
    return (
        out[[c for c in losses if c in out.columns]].round(digits).rename_axis(index="class", columns="loss")
    )


# ----------------------------------------------------------------------------------------------- figures
def _dots_and_means(
    ax: Any, data: pd.DataFrame, x: str, y: str, hue: str | None, hue_order: Sequence[Any] | None = None
) -> None:
    """Each run as a dot and the mean with its 95 % t interval (seaborn), by categorical ``x`` and ``hue``."""
    order = sorted(data[x].unique(), reverse=True) if x == "fg_frac" else list(dict.fromkeys(data[x]))
    if hue is not None and hue_order is None:
        hue_order = list(dict.fromkeys(data[hue]))
    common = {"data": data, "x": x, "y": y, "hue": hue, "order": order, "hue_order": hue_order, "ax": ax}
    n_hue = len(hue_order) if hue is not None else 1
    sns.stripplot(**common, dodge=n_hue > 1, alpha=0.45, size=4, legend=False)
    # the same offsets as the dodged dots (seaborn spreads those over 0.8 of a category)
    sns.pointplot(
        **common,
        dodge=0.8 * (n_hue - 1) / n_hue if n_hue > 1 else False,
        errorbar=t_interval,
        capsize=0.12,
        linestyle="none",
        markers="D",
        markersize=5,
    )
    ax.set_xlabel("foreground fraction" if x == "fg_frac" else x)
    if x == "loss" or (x != "fg_frac" and data[x].astype(str).str.len().max() > 8):
        ax.tick_params(axis="x", rotation=30)
        plt.setp(ax.get_xticklabels(), ha="right")
    if hue is not None and ax.get_legend() is not None:
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1), fontsize=8, title=hue)


def _width(data: pd.DataFrame, x: str, hue: str | None) -> float:
    return max(5.0, 0.45 * data[x].nunique() * (data[hue].nunique() if hue else 1) + 3.0)


def mean_ci_plot(
    table: pd.DataFrame,
    metric: str = "miou_d",
    x: str = "loss",
    hue: str | None = None,
    split: str = "test",
    title: str | None = None,
) -> Figure:
    """Each run's final ``metric`` as a dot and the mean with its 95 % t interval, by ``x`` (categorical:
    losses or foreground fractions) and optionally ``hue``."""
    runs = final_values(table, metric, split)
    _check_columns(runs, [x] + ([hue] if hue else []))
    fig, ax = plt.subplots(figsize=(_width(runs, x, hue), 3.8), layout="constrained")
    _dots_and_means(ax, runs, x, "value", hue)
    ax.set_ylabel(f"test {metric}")
    if title:
        ax.set_title(title, fontsize=10)
    return _done(fig)


def paired_difference_plot(
    diffs: pd.DataFrame,
    x: str = "fg_frac",
    hue: str | None = "loss",
    baseline: str = "bce",
    metric: str = "IoU",
    title: str | None = None,
) -> Figure:
    """Paired differences from :func:`paired_differences`: per seed (dots) and mean with 95 % t interval;
    a dashed line at 0. An interval that does not cross 0 is a difference the seeds agree on."""
    _check_columns(diffs, [x, "diff"] + ([hue] if hue else []), "diffs")
    fig, ax = plt.subplots(figsize=(_width(diffs, x, hue), 3.8), layout="constrained")
    # the baseline keeps its slot in the colour cycle, so each loss has the colour of mean_ci_plot
    hue_order = [baseline, *dict.fromkeys(diffs[hue])] if hue == "loss" else None
    _dots_and_means(ax, diffs, x, "diff", hue, hue_order)
    if hue_order is not None:  # no legend entry for the baseline, which has no differences
        kept = [(h, lab) for h, lab in zip(*ax.get_legend_handles_labels(), strict=True) if lab != baseline]
        ax.legend(*zip(*kept, strict=True), loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, title=hue)
    ax.axhline(0, ls="--", c="grey", lw=1)
    ax.set_ylabel(f"{metric}(loss) - {metric}({baseline}), same seed")
    if title:
        ax.set_title(title, fontsize=10)
    return _done(fig)


def learning_curves(
    table: pd.DataFrame,
    panels: Sequence[tuple[str, str]] = (("train", "loss"), ("val", "miou_d")),
    hue: str = "loss",
    title: str | None = None,
) -> Figure:
    """One panel per ``(split, metric)`` against the epoch, one line per ``hue``: the mean over seeds, and
    with several seeds a band from the lowest to the highest seed. Train losses of different losses are on
    different scales: that panel shows how each falls, not which is lower."""
    _check_columns(table, ("split", "metric", "epoch", "value", hue))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.6 * len(panels) + 1.6, 3.6), layout="constrained", squeeze=False
    )
    hue_order = list(dict.fromkeys(table[hue]))
    for ax, (split, metric) in zip(axes[0], panels, strict=True):
        rows = table[(table["split"] == split) & (table["metric"] == metric)]
        sns.lineplot(
            data=rows,
            x="epoch",
            y="value",
            hue=hue,
            hue_order=hue_order,
            errorbar=("pi", 100),
            ax=ax,
            legend=ax is axes[0, -1],
            marker="o",
            markersize=3,
        )
        ax.set_title(f"{split} {metric}", fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric)
    if axes[0, -1].get_legend() is not None:
        sns.move_legend(axes[0, -1], "upper left", bbox_to_anchor=(1.02, 1), fontsize=8, title=hue)
    if title:
        fig.suptitle(title, fontsize=11)
    return _done(fig)


def threshold_curves(table: pd.DataFrame, hue: str = "loss", title: str | None = None) -> Figure:
    """Test IoU against the decision threshold (the ``curve_d@<t>`` metrics), one line per ``hue``; the
    dotted line marks 0.5. A loss whose curve peaks far from 0.5 ranks pixels well but is miscalibrated."""
    _check_columns(table, ("split", "metric", "value", hue))
    rows = table[(table["split"] == "test") & table["metric"].str.startswith("curve_d@")]
    if rows.empty:
        raise ValueError("table has no test curve_d@<threshold> rows")
    rows = rows.assign(threshold=rows["metric"].str.removeprefix("curve_d@").astype(float))
    fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
    sns.lineplot(
        data=rows,
        x="threshold",
        y="value",
        hue=hue,
        hue_order=list(dict.fromkeys(table[hue])),
        errorbar=None,
        ax=ax,
    )
    ax.axvline(0.5, ls=":", c="grey")
    ax.set_ylabel("test IoU (dataset)")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return _done(fig)


def predictions_side_by_side(
    images: Tensor, target: Tensor, probs: Mapping[str, Tensor], threshold: float = 0.5
) -> Figure:
    """Rows = images; columns = the image, its target, then per model the thresholded prediction as an error
    map (TP green, FP red, FN blue, TN light grey, as in :func:`iou_lib.viz.error_map`; ignored pixels
    black) with the image's IoU.

    ``images``: ``(B, 3, H, W)`` in [0, 1] (or uint8); ``target``: ``(B, H, W)`` or ``(B, 1, H, W)`` with
    1 = foreground, 0 = background and any other value ignored (e.g. CamVid void); ``probs``: name ->
    foreground probabilities with target's number of elements.
    """
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"images must be a (B, 3, H, W) tensor, got {getattr(images, 'shape', type(images))}"
        )
    if not isinstance(target, Tensor) or target.numel() != images.shape[0] * images[0, 0].numel():
        raise ValueError(
            f"target must be a (B, H, W) tensor matching images {tuple(images.shape)}, "
            f"got {getattr(target, 'shape', type(target))}"
        )
    y = target.detach().cpu().reshape(images.shape[0], *images.shape[2:])
    t, valid = y == 1, (y == 0) | (y == 1)
    img = images.detach().cpu().float()
    img = (img / 255 if images.dtype == torch.uint8 else img).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    preds = {}
    for name, p in probs.items():
        if p.numel() != t.numel():
            raise ValueError(
                f"probs[{name!r}] must have {t.numel()} elements like target, got {tuple(p.shape)}"
            )
        preds[name] = p.detach().cpu().reshape(t.shape) > threshold
    n, cols = t.shape[0], 2 + len(preds)
    fig, axes = plt.subplots(
        n, cols, figsize=(1.7 * cols, 1.75 * n + 0.4), squeeze=False, layout="constrained"
    )
    cmap = ListedColormap(["black", *ERROR_COLOURS])  # -1 ignored, 0 TN, 1 FP, 2 FN, 3 TP
    for i in range(n):
        fg = f"{t[i].sum().item() / max(valid[i].sum().item(), 1):.1%}"
        axes[i, 0].imshow(img[i])
        axes[i, 1].imshow(
            torch.where(valid[i], t[i].int() * 3, -1).numpy(),
            cmap=cmap,
            vmin=-1.5,
            vmax=3.5,
            interpolation="nearest",
        )
        axes[i, 1].set_title(f"target ({fg})" if i == 0 else fg, fontsize=8)
        for j, (name, p) in enumerate(preds.items(), start=2):
            p = p[i] & valid[i]
            inter, union = (p & t[i]).sum().item(), (p | t[i]).sum().item()
            codes = torch.where(valid[i], p.int() + 2 * t[i].int(), -1)
            axes[i, j].imshow(codes.numpy(), cmap=cmap, vmin=-1.5, vmax=3.5, interpolation="nearest")
            iou = f"{inter / union:.2f}" if union else "n/a"
            axes[i, j].set_title(f"{name}\nIoU {iou}" if i == 0 else f"IoU {iou}", fontsize=8)
    axes[0, 0].set_title("image", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return _done(fig)
