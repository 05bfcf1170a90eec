r"""Tables and figures for experiment results: stored results with their provenance, mean with a 95 %
confidence interval over seeds, paired differences, learning curves and predictions side by side.

Everything reads the tidy rows of :func:`iou_lib.train.fit` / :func:`iou_lib.experiments.run_grid`
(columns ``run, data, fg_frac, class_name, loss, model, seed, split, step, metric, value``; tables stored
before the step-budget engine have ``epoch`` instead of ``step``, and both are read) and returns a
``DataFrame`` or a matplotlib ``Figure`` (closed for pyplot, so a notebook shows it once).

Intervals are Student-t intervals over runs, :math:`\bar x \pm t_{0.975,\,n-1}\, s/\sqrt n`, **clipped
to [0, 1]** for IoU-like metrics (:func:`iou_lib.stats.mean_interval`; with five seeds a bootstrap interval
would be too narrow); paired differences are not clipped.
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
'0.500 [0.500, 0.500]'
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from iou_lib.data.folders import CAMVID_CLASSES, camvid_class_index, camvid_root
from iou_lib.stats import last_rows, mean_interval, summarize
from iou_lib.viz import ERROR_COLOURS

__all__ = [
    "STORED_DIR",
    "METRIC_LABELS",
    "calibration_bins",
    "camvid_available",
    "convergence",
    "class_table",
    "final_values",
    "learning_curves",
    "metric_label",
    "ordered",
    "mean_ci_plot",
    "paired_difference_plot",
    "stored_reliability",
    "paired_differences",
    "predictions_side_by_side",
    "provenance_text",
    "reliability_diagram",
    "results_table",
    "stored_results",
    "stored_study",
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
METRIC_LABELS = {
    "miou_d": "IoU at p = 0.5",
    "miou_i": "mean per-image IoU at p = 0.5",
    "miou_d@val_thr": "IoU at the validation-tuned threshold",
    "miou_i@val_thr": "mean per-image IoU at the validation-tuned threshold",
    "miou_d@tuned": "IoU at its best threshold",
    "miou_d@best": "IoU at the best threshold (picked on test)",
    "threshold@val": "validation-tuned threshold",
    "threshold@tuned": "best threshold",
    "ap": "average precision",
    "ece": "expected calibration error (10 bins)",
    "pixel_acc": "pixel accuracy",
    "loss": "training loss",
    "lr": "learning rate",
}
"""Words for the metric codes of the results tables (axis labels and table headers)."""


def metric_label(metric: str, split: str | None = None) -> str:
    """``metric`` in words, prefixed with the split (``"test IoU at p = 0.5"``).

    >>> metric_label("miou_d@val_thr", "test"), metric_label("iou_d/Car")
    ('test IoU at the validation-tuned threshold', 'IoU of Car at p = 0.5')
    """
    if metric.startswith("iou_d/"):
        words = f"IoU of {metric.removeprefix('iou_d/')} at p = 0.5"
    else:
        words = METRIC_LABELS.get(metric, metric)
    return f"{split} {words}" if split and split != "train" else words


def _read_table(csv: Path) -> pd.DataFrame:
    """A stored results CSV with its numeric columns as numbers; an empty cell or ``nan`` is a missing
    value, and any other text in a numeric column raises (a damaged file must not become silent NaNs)."""
    table = pd.read_csv(csv, keep_default_na=False)
    for column in ("value", "fg_frac", "step", "epoch", "lr"):
        if column in table:
            numbers = pd.to_numeric(table[column], errors="coerce")
            text = table[column].astype(str).str.strip()
            bad = numbers.isna() & ~text.str.lower().isin(["", "nan"])
            if bad.any():
                examples = sorted(set(text[bad]))[:3]
                raise ValueError(
                    f"{csv}: column {column!r} holds {int(bad.sum())} non-numeric cells, e.g. {examples}: "
                    "a damaged results file; delete it (and its .json) and rerun tools/make_results.py"
                )
            table[column] = numbers
    return table


def stored_results(
    group: str, profile: str = "cpu", results_dir: str | Path | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The stored table ``<group>_<profile>.csv`` of the first grid (made before the step-budget engine:
    column ``epoch``) and its provenance (the ``.json`` next to it). The profile is an explicit choice:
    adding a ``gpu`` table never changes what a ``cpu`` caller reads.

    >>> table, prov = stored_results("synthetic", "cpu")
    >>> prov["group"], prov["profile"], {"run", "loss", "metric", "value"} <= set(table.columns)
    ('synthetic', 'cpu', True)
    """
    folder = Path(results_dir) if results_dir is not None else STORED_DIR
    csv = folder / f"{group}_{profile}.csv"
    if not csv.exists():
        have = sorted(f.name for f in folder.glob(f"{group}_*.csv"))
        raise FileNotFoundError(
            f"no stored results {csv.name} in {folder} (there are: {have or 'none'}); "
            "regenerate them with `python tools/make_results.py`"
        )
    prov = json.loads(csv.with_suffix(".json").read_text())
    if "commands" in prov:  # the first grid: its plan is in the tool as it was at that commit
        prov["command"] = f"{prov['command']} with tools/make_results.py as of git {prov['git_commit'][:10]}"
    return _read_table(csv), prov


def stored_study(
    study: str, profile: str = "cpu", results_dir: str | Path | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The runs of one study of ``tools/make_results.py`` stored so far (``<profile>/<study>/*.csv``) as
    one table, and a provenance summary (runs, commits, whether every tree was clean, devices, wall time).
    An empty table when nothing is stored yet."""
    folder = (Path(results_dir) if results_dir is not None else STORED_DIR) / profile / study
    files = sorted(f for f in folder.glob("*.csv") if f.with_suffix(".json").exists())
    records = [json.loads(f.with_suffix(".json").read_text()) for f in files]
    table = pd.concat([_read_table(f) for f in files], ignore_index=True) if files else pd.DataFrame()
    prov = {
        "table": f"{profile}/{study}/",
        "study": study,
        "profile": profile,
        "n_runs": len(files),
        "note": records[0].get("note") if records else None,
        "plan": records[0].get("plan") if records else None,
        "git_commit": sorted({r.get("git_commit", "")[:10] for r in records}),
        "clean_tree": all(r.get("clean_tree") for r in records),
        "device": sorted({r.get("device", "") for r in records}),
        "wall_s": sum(r.get("wall_s") or 0 for r in records),
        "date": max((r.get("date", "") for r in records), default=None),
        "command": f"python tools/make_results.py --profile {profile} --only {study}",
    }
    return table, prov


def provenance_text(prov: Mapping[str, Any]) -> str:
    """One paragraph saying where a stored table comes from (for a notebook to print above it)."""
    commit = prov.get("git_commit") or "unknown"
    commit = ", ".join(commit) if isinstance(commit, list) else commit[:10]
    dirty = prov.get("git_dirty") or prov.get("clean_tree") is False
    device = prov.get("device")
    device = ", ".join(device) if isinstance(device, list) else device
    wall = f", {prov['wall_s'] / 60:.0f} min of training" if prov.get("wall_s") else ""
    return (
        f"STORED results ({prov.get('table')}): profile '{prov.get('profile')}' - {prov.get('note')}.\n"
        f"{prov.get('n_runs')} runs on {device}{wall}, written {prov.get('date')}, git {commit}"
        f"{' + uncommitted changes' if dirty else ''}.\nRegenerate: {prov.get('command')}"
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
    """One row per run: the run's columns and ``value`` of ``metric`` at its last step (or epoch) of
    ``split`` (test rows are measured once, at the best-validation weights)."""
    _check_columns(table, ("run", "split", "metric", "value"))
    return last_rows(table[(table["split"] == split) & (table["metric"] == metric)]).reset_index(drop=True)


def ordered(table: pd.DataFrame, column: str, values: Sequence[Any]) -> pd.DataFrame:
    """``table`` with its rows sorted (stably) by the position of ``column``'s value in ``values``; rows
    whose value is not listed come last. Tables and figures here follow the row order of their input.

    >>> ordered(pd.DataFrame({"loss": ["b", "x", "a"]}), "loss", ["a", "b"])["loss"].tolist()
    ['a', 'b', 'x']
    """
    _check_columns(table, (column,))
    rank = {v: i for i, v in enumerate(values)}
    return table.sort_values(column, key=lambda col: col.map(lambda v: rank.get(v, len(rank))), kind="stable")


def t_interval(
    values: Sequence[float] | np.ndarray | pd.Series, bounds: tuple[float, float] | None = (0.0, 1.0)
) -> tuple[float, float]:
    """The 95 % Student-t interval of the mean of ``values``, clipped to ``bounds`` (a point for one value).

    >>> [round(v, 3) for v in t_interval([0.5, 0.6, 0.7])]
    [0.352, 0.848]
    >>> t_interval([0.0, 0.01, 0.05])[0]  # an IoU interval does not reach below 0
    0.0
    """
    iv = mean_interval(values, bounds=bounds)
    return iv.low, iv.high


def _is_bounded(metric: str) -> bool:
    """Metrics that live in [0, 1] (IoU, accuracy, AP, thresholds), whose intervals are clipped."""
    return metric.startswith(("miou", "iou_", "curve_d@", "pixel_acc", "ap", "threshold", "ece", "calib_"))


def results_table(
    table: pd.DataFrame,
    metrics: Mapping[str, str],
    by: str | Sequence[str] = "loss",
    split: str = "test",
    digits: int = 3,
) -> pd.DataFrame:
    """``mean [low, high]`` strings (95 % t interval, clipped to [0, 1] for IoU-like metrics) of each test
    ``metric`` (keys; values are the column titles), one row per ``by`` value, in the order the rows first
    appear in ``table``; the interval is left out for one run."""
    by = [by] if isinstance(by, str) else list(by)
    columns = {}
    for metric, title in metrics.items():
        s = summarize(
            table, metric=metric, split=split, by=by, bounds=(0, 1) if _is_bounded(metric) else None
        )
        s = s.set_index(by)
        text = [
            f"{m:.{digits}f}" + ("" if math.isnan(c) else f" [{lo:.{digits}f}, {hi:.{digits}f}]")
            for m, c, lo, hi in zip(s["mean"], s["ci95"], s["low"], s["high"], strict=True)
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
        rows = last_rows(table[(table["split"] == split) & table["metric"].str.startswith("iou_d/")])
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
    ax: Any,
    data: pd.DataFrame,
    x: str,
    y: str,
    hue: str | None,
    hue_order: Sequence[Any] | None = None,
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> None:
    """Each run as a dot and the mean with its 95 % t interval (clipped to ``bounds``), by categorical
    ``x`` and ``hue``."""
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
        errorbar=lambda v: t_interval(v, bounds),
        capsize=0.12,
        linestyle="none",
        markers="D",
        markersize=5,
    )
    ax.set_xlabel({"fg_frac": "foreground fraction", "loss": "loss", "class_name": "class"}.get(x, x))
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
    """Each run's final ``metric`` as a dot and the mean with its 95 % t interval (clipped to [0, 1] for
    IoU-like metrics), by ``x`` (categorical: losses or foreground fractions) and optionally ``hue``."""
    runs = final_values(table, metric, split)
    _check_columns(runs, [x] + ([hue] if hue else []))
    fig, ax = plt.subplots(figsize=(_width(runs, x, hue), 3.8), layout="constrained")
    _dots_and_means(ax, runs, x, "value", hue, bounds=(0.0, 1.0) if _is_bounded(metric) else None)
    ax.set_ylabel(metric_label(metric, split))
    if title:
        ax.set_title(title, fontsize=10)
    return _done(fig)


def paired_difference_plot(
    diffs: pd.DataFrame,
    x: str = "fg_frac",
    hue: str | None = "loss",
    baseline: str = "bce",
    metric: str = "IoU at p = 0.5",
    title: str | None = None,
) -> Figure:
    """Paired differences from :func:`paired_differences`: per seed (dots) and mean with 95 % t interval;
    a dashed line at 0. An interval that does not cross 0 is a difference the seeds agree on."""
    _check_columns(diffs, [x, "diff"] + ([hue] if hue else []), "diffs")
    fig, ax = plt.subplots(figsize=(_width(diffs, x, hue), 3.8), layout="constrained")
    # the baseline keeps its slot in the colour cycle, so each loss has the colour of mean_ci_plot
    hue_order = [baseline, *dict.fromkeys(diffs[hue])] if hue == "loss" else None
    _dots_and_means(ax, diffs, x, "diff", hue, hue_order, bounds=None)
    if hue_order is not None:  # no legend entry for the baseline, which has no differences
        kept = [(h, lab) for h, lab in zip(*ax.get_legend_handles_labels(), strict=True) if lab != baseline]
        ax.legend(*zip(*kept, strict=True), loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, title=hue)
    ax.axhline(0, ls="--", c="grey", lw=1)
    ax.set_ylabel(f"{metric}: loss minus {baseline}, same seed", fontsize=9)
    if title:
        ax.set_title(title, fontsize=10)
    return _done(fig)


def _time_column(table: pd.DataFrame) -> str:
    if "step" in table.columns:
        return "step"
    if "epoch" in table.columns:
        return "epoch"
    raise ValueError(f"table has neither a 'step' nor an 'epoch' column; it has {list(table.columns)}")


def convergence(
    table: pd.DataFrame,
    metric: str | None = None,
    by: Sequence[str] = ("loss",),
    share: float = 0.2,
    tol: float = 0.02,
) -> pd.DataFrame:
    r"""Has each run's validation curve plateaued? Per run, the change of the mean validation ``metric``
    from the second-to-last ``share`` of its evaluations to the last ``share``
    (:math:`\Delta = \bar m_{\text{last }20\%} - \bar m_{\text{20\% before}}`, at least one
    evaluation each); per group of ``by``: the mean :math:`\Delta`, its largest value, the number of runs,
    and ``plateaued`` = mean :math:`|\Delta| <` ``tol``.

    ``metric``: default ``miou_d@tuned`` (the selection metric) when present, else ``miou_d``.

    >>> rows = [{"run": "a", "loss": "bce", "split": "val", "metric": "miou_d", "step": s, "value": v}
    ...         for s, v in enumerate([0.1, 0.5, 0.6, 0.61, 0.62, 0.62, 0.63, 0.63, 0.63, 0.64], 1)]
    >>> convergence(pd.DataFrame(rows))[["loss", "mean_change", "plateaued"]].values.tolist()
    [['bce', 0.005, True]]
    """
    time = _time_column(table)
    val = table[table["split"] == "val"]
    if metric is None:
        metric = "miou_d@tuned" if (val["metric"] == "miou_d@tuned").any() else "miou_d"
    rows = val[val["metric"] == metric]
    if rows.empty:
        raise ValueError(f"table has no validation rows of {metric!r}")
    keys = [k for k in by if k in rows.columns]
    changes = []
    for run, r in rows.sort_values(time).groupby("run", sort=False):
        v = r["value"].to_numpy(dtype=float)
        k = max(1, int(round(share * len(v))))
        if len(v) < 2 * k:
            continue
        change = float(v[-k:].mean() - v[-2 * k : -k].mean())
        changes.append({**{c: r[c].iloc[0] for c in keys}, "run": run, "change": change, "evals": len(v)})
    per_run = pd.DataFrame(changes)
    if per_run.empty:
        raise ValueError("no run has enough validation passes to judge convergence (need at least 2)")
    out = (
        per_run.groupby(keys, dropna=False, sort=False)
        .agg(
            mean_change=("change", "mean"),
            max_change=("change", "max"),
            runs=("run", "count"),
            evals=("evals", "min"),
        )
        .reset_index()
    )
    out["mean_change"] = out["mean_change"].round(4)
    out["max_change"] = out["max_change"].round(4)
    out["plateaued"] = out["mean_change"].abs() < tol
    out.attrs.update(metric=metric, share=share, tol=tol)
    return out


def calibration_bins(prob: Tensor, target: Tensor, n_bins: int = 10) -> tuple[pd.DataFrame, float]:
    r"""Reliability of predicted foreground probabilities: pixels binned by :math:`p` into ``n_bins``
    equal-width bins; per bin the mean :math:`p`, the observed foreground frequency and the pixel count;
    and the expected calibration error :math:`\mathrm{ECE} = \sum_b \frac{n_b}{N}\,|\bar y_b - \bar p_b|`.
    Pixels whose target is neither 0 nor 1 (ignored) are left out.

    >>> p = torch.tensor([0.1, 0.1, 0.9, 0.9]); y = torch.tensor([0, 0, 1, 0])
    >>> bins, ece = calibration_bins(p, y, n_bins=2)
    >>> bins["frequency"].tolist(), round(ece, 3)
    ([0.0, 0.5], 0.25)
    """
    if not isinstance(prob, Tensor) or not isinstance(target, Tensor) or prob.numel() != target.numel():
        raise ValueError(
            f"prob and target must be tensors with the same number of elements, got "
            f"{getattr(prob, 'shape', type(prob))} and {getattr(target, 'shape', type(target))}"
        )
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive int, got {n_bins!r}")
    p, y = prob.detach().reshape(-1).double().cpu(), target.detach().reshape(-1).cpu()
    if torch.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("prob must hold probabilities in [0, 1] without NaN")
    keep = (y == 0) | (y == 1)
    p, y = p[keep], y[keep].double()
    b = (p * n_bins).long().clamp(max=n_bins - 1)
    count = torch.bincount(b, minlength=n_bins).double()
    mean_p = torch.bincount(b, weights=p, minlength=n_bins) / count.clamp_min(1)
    freq = torch.bincount(b, weights=y, minlength=n_bins) / count.clamp_min(1)
    used = count > 0
    ece = float((count[used] / count.sum() * (freq[used] - mean_p[used]).abs()).sum())
    bins = pd.DataFrame(
        {
            "bin_low": torch.arange(n_bins)[used].double().numpy() / n_bins,
            "mean_p": mean_p[used].numpy(),
            "frequency": freq[used].numpy(),
            "pixels": count[used].long().numpy(),
        }
    )
    return bins, ece


def _reliability_figure(
    curves: Iterable[tuple[str, Any, Any]], title: str | None, legend_size: float = 8
) -> Figure:
    """The reliability plot both diagrams draw: the diagonal of perfect calibration and one curve per
    ``(label, mean probability per bin, observed frequency per bin)``."""
    fig, ax = plt.subplots(figsize=(5.2, 4.2), layout="constrained")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfectly calibrated")
    for label, mean_p, frequency in curves:
        ax.plot(mean_p, frequency, marker="o", label=label)
    ax.set(xlabel="mean predicted foreground probability (per bin)", ylabel="observed foreground frequency")
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=legend_size, loc="upper left")
    if title:
        ax.set_title(title, fontsize=10)
    return _done(fig)


def reliability_diagram(
    prob: Mapping[str, Tensor], target: Tensor, n_bins: int = 10, title: str | None = None
) -> Figure:
    """One reliability curve per model (observed foreground frequency against mean predicted probability),
    the diagonal of perfect calibration, and each model's expected calibration error in the legend."""
    curves = []
    for name, p in prob.items():
        bins, ece = calibration_bins(p, target, n_bins)
        curves.append((f"{name} (ECE {ece:.3f})", bins["mean_p"], bins["frequency"]))
    return _reliability_figure(curves, title)


def stored_reliability(table: pd.DataFrame, hue: str = "loss", title: str | None = None) -> Figure:
    """:func:`reliability_diagram` of stored runs: the test rows ``calib_conf@<b>``, ``calib_freq@<b>`` and
    ``calib_share@<b>`` that the engine writes (see :mod:`iou_lib.thresholds`), pooled over the seeds of
    each ``hue`` value (a bin's confidence and frequency weighted by its pixels in each seed), with the
    mean ``ece`` over seeds and its 95 % interval in the legend."""
    _check_columns(table, ("split", "metric", "value", "seed", hue))
    test = table[table["split"] == "test"]
    calib = test[test["metric"].str.startswith("calib_")]
    if calib.empty:
        raise ValueError("no calib_* rows: these runs were stored before the engine measured calibration")
    parts = calib["metric"].str.split("@", expand=True)
    wide = calib.assign(kind=parts[0], bin=parts[1].astype(int)).pivot_table(
        index=[hue, "seed", "bin"], columns="kind", values="value", aggfunc="first"
    )
    wide = wide.reset_index().dropna(subset=["calib_conf"])
    curves = []
    for name in dict.fromkeys(calib[hue]):
        rows = wide[wide[hue] == name]
        weight = rows["calib_share"]
        pooled = (
            rows.assign(c=rows["calib_conf"] * weight, f=rows["calib_freq"] * weight)
            .groupby("bin")[["c", "f", "calib_share"]]
            .sum()
        )
        ece = test[(test[hue] == name) & (test["metric"] == "ece")]["value"].astype(float)
        mean, (low, high) = float(ece.mean()), t_interval(ece.to_numpy())
        label = f"{name} (ECE {mean:.3f} [{low:.3f}, {high:.3f}], {len(ece)} seeds)"
        curves.append((label, pooled["c"] / pooled["calib_share"], pooled["f"] / pooled["calib_share"]))
    return _reliability_figure(curves, title, legend_size=7)


PER_IMAGE = " (per image)"


def _line_keys(table: pd.DataFrame, hue: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Seaborn's line keys for ``hue``: one colour per loss and, when some labels end in
    ``" (per image)"`` (the labels of ``tools/make_results.py``), the aggregation as the line style (dashed
    per image, solid pooled), so the 15 arms of the shoot-out take 10 colours of the default palette
    instead of 15 evenly spaced hues that are hard to tell apart."""
    names = list(dict.fromkeys(table[hue]))
    if not any(str(n).endswith(PER_IMAGE) for n in names):
        return table, {"hue": hue, "hue_order": names}
    labels = table[hue].astype(str)
    table = table.assign(
        **{
            hue: labels.str.removesuffix(PER_IMAGE),
            "aggregation": np.where(labels.str.endswith(PER_IMAGE), "per image", "pooled"),
        }
    )
    keys = {
        "hue": hue,
        "hue_order": list(dict.fromkeys(table[hue])),
        "style": "aggregation",
        "style_order": ["pooled", "per image"],
    }
    return table, keys


def learning_curves(
    table: pd.DataFrame,
    panels: Sequence[tuple[str, str]] = (("train", "loss"), ("val", "miou_d")),
    hue: str = "loss",
    title: str | None = None,
) -> Figure:
    """One panel per ``(split, metric)`` against the optimizer step (the epoch for tables made before the
    step-budget engine), one line per ``hue``: the mean over seeds, and with several seeds a band from the
    lowest to the highest seed. Train losses of different losses are on different scales: that panel shows
    how each falls, not which is lower."""
    time = _time_column(table)
    _check_columns(table, ("split", "metric", "value", hue))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.6 * len(panels) + 1.6, 3.6), layout="constrained", squeeze=False
    )
    table, keys = _line_keys(table, hue)
    for ax, (split, metric) in zip(axes[0], panels, strict=True):
        rows = table[(table["split"] == split) & (table["metric"] == metric)]
        sns.lineplot(
            data=rows,
            x=time,
            y="value",
            **keys,
            errorbar=("pi", 100),
            ax=ax,
            legend=ax is axes[0, -1],
            marker="o",
            markersize=3,
        )
        ax.set_title(metric_label(metric, split), fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("optimizer step" if time == "step" else "epoch")
        ax.set_ylabel(metric_label(metric))
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
    rows, keys = _line_keys(rows, hue)
    fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
    sns.lineplot(data=rows, x="threshold", y="value", **keys, errorbar=None, ax=ax)
    ax.axvline(0.5, ls=":", c="grey")
    ax.set_xlabel("decision threshold on the predicted probability")
    ax.set_ylabel("test IoU (whole test set)")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return _done(fig)


def predictions_side_by_side(
    images: Tensor,
    target: Tensor,
    probs: Mapping[str, Tensor],
    threshold: float = 0.5,
    panel: float = 1.7,
) -> Figure:
    """Rows = images; columns = the image, its target, then per model the thresholded prediction as an error
    map (TP green, FP red, FN blue, TN light grey, as in :func:`iou_lib.viz.error_map`; ignored pixels
    black: CamVid's *void* label, pixels no class was assigned to, which no metric counts) with the image's
    IoU, and a legend of the colours below. ``panel``: the side of one panel in inches.

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
        n, cols, figsize=(panel * cols, (panel + 0.05) * n + 0.8), squeeze=False, layout="constrained"
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
    names = ("true negative", "false positive", "false negative", "true positive")
    handles = [Patch(color=c, label=n) for c, n in zip(ERROR_COLOURS, names, strict=True)]
    if not bool(valid.all()):
        handles.append(Patch(color="black", label="ignored (void: no class, not counted)"))
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=min(len(handles), 3),
        fontsize=7,
        frameon=False,
        title=f"prediction at p > {threshold:g} against the target",
        title_fontsize=7,
    )
    return _done(fig)
