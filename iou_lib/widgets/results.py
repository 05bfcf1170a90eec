r"""A browser over stored experiment tables (notebooks 06-08): no training, only the tidy results.

:func:`browse` selects from a results table (``run, data, fg_frac, class_name, loss, model, seed, split,
step|epoch, metric, value`` and any extra per-run columns) the runs of one group (a foreground fraction or
a class) and one *setting* (the values of the extra columns, e.g. ``per_image``), and returns per-seed
test values, means with 95 % intervals kept inside [0, 1] (:func:`iou_lib.stats.mean_interval`), paired
differences to a reference loss with their intervals and a sentence
(:func:`iou_lib.stats.paired_interval`, :func:`iou_lib.stats.describe_difference`), and validation
learning curves. Old tables count ``epoch``, new ones optimizer ``step``; both are read.

>>> from iou_lib.reporting import stored_results
>>> table, _ = stored_results("synthetic")
>>> b = browse(table, group=0.02, losses=["bce", "soft_iou"], metric="miou_d", reference="bce")
>>> sorted(b.means["loss"]), int(b.means["n"].min())
(['bce', 'soft_iou'], 3)
>>> bool((b.means["low"] >= 0).all() and (b.means["high"] <= 1).all())
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from iou_lib import stats
from iou_lib.widgets._base import CONTROL_STYLE, Explorer

__all__ = ["METRICS", "BrowserData", "ResultsBrowser", "browse", "group_column", "settings", "step_column"]

#: Test metrics the browser offers (those present in a table), with their names in words.
METRICS = {
    "miou_d": "IoU at p > 0.5",
    "miou_d@val_thr": "IoU at the threshold tuned on validation",
    "ap": "average precision",
    "miou_i": "per-image IoU at p > 0.5",
    "pixel_acc": "pixel accuracy",
}
#: Validation metric drawn as the learning curve of each test metric (first one present).
CURVE_METRICS = {
    "miou_d": ("miou_d",),
    "miou_d@val_thr": ("miou_d@tuned", "miou_d@best", "miou_d"),
    "ap": ("ap",),
    "miou_i": ("miou_i",),
    "pixel_acc": ("pixel_acc", "miou_d"),
}
#: Columns of every results table, and labels that name a run rather than set it up (``variant`` names
#: the loss configuration); any other column that varies describes a run's setting.
CORE_COLUMNS = frozenset(
    ("run", "data", "fg_frac", "class_name", "loss", "model", "seed", "split", "step", "epoch", "metric")
    + ("value", "study", "variant", "profile")
)


def step_column(table: pd.DataFrame) -> str:
    """``"step"`` (new tables) or ``"epoch"`` (old tables)."""
    for name in ("step", "epoch"):
        if name in table.columns:
            return name
    raise ValueError(f"a results table needs a 'step' or 'epoch' column; it has {list(table.columns)}")


def group_column(table: pd.DataFrame) -> str:
    """``"class_name"`` when some run names a class (real data: one model per class, whose ``fg_frac``
    is only the share the class happens to have), else ``"fg_frac"`` when the runs set the foreground
    fraction, else ``"class_name"``."""
    if "class_name" in table and (table["class_name"].fillna("").astype(str) != "").any():
        return "class_name"
    if "fg_frac" in table and pd.to_numeric(table["fg_frac"], errors="coerce").notna().any():
        return "fg_frac"
    if "class_name" in table:
        return "class_name"
    raise ValueError("a results table needs an 'fg_frac' or a 'class_name' column")


def _group_values(table: pd.DataFrame, column: str) -> pd.Series:
    if column == "fg_frac":
        return pd.to_numeric(table[column], errors="coerce")
    return table[column].fillna("").astype(str)


def settings(table: pd.DataFrame) -> pd.Series:
    """One label per row naming the values of the extra per-run columns that vary in ``table`` (``""``
    when there are none)."""
    extra = [c for c in table.columns if c not in CORE_COLUMNS and table[c].astype(str).nunique() > 1]
    if not extra:
        return pd.Series("", index=table.index)
    parts = [c + "=" + table[c].astype(str) for c in extra]
    label = parts[0]
    for part in parts[1:]:
        label = label + ", " + part
    return label


@dataclasses.dataclass(frozen=True)
class BrowserData:
    """What the browser shows for one selection (all tables tidy)."""

    metric: str
    reference: str
    points: pd.DataFrame  # loss, seed, value: the test metric of each run
    means: pd.DataFrame  # loss, mean, low, high, n
    differences: pd.DataFrame  # loss, seed, diff (loss - reference, same seed)
    diff_intervals: pd.DataFrame  # loss, mean, low, high, n, sentence
    curves: pd.DataFrame  # loss, seed, <step>, value: validation curve metric
    curve_metric: str | None
    step: str


def browse(
    table: pd.DataFrame,
    group: float | str,
    losses: Sequence[str],
    metric: str = "miou_d",
    reference: str = "bce",
    setting: str | None = None,
) -> BrowserData:
    """Select the runs of ``group`` (and ``setting``, default: the most common) and summarise ``metric``.

    Raises ``ValueError`` naming what is available when the group, metric or losses select nothing.
    """
    for column in ("run", "loss", "seed", "split", "metric", "value"):
        if column not in table.columns:
            raise ValueError(f"results table lacks the column {column!r}; it has {list(table.columns)}")
    step, gcol = step_column(table), group_column(table)
    labels = settings(table)
    in_group = _group_values(table, gcol) == group
    if not in_group.any():
        raise ValueError(
            f"no runs with {gcol} = {group!r}; present: {sorted(_group_values(table, gcol).unique())}"
        )
    if setting is None:
        setting = labels[in_group].value_counts().index[0]
    rows = table[in_group & (labels == setting) & table["loss"].isin(list(losses))]
    test = stats.last_rows(rows[(rows["split"] == "test") & (rows["metric"] == metric)])
    if test.empty:
        present = sorted(rows.loc[rows["split"] == "test", "metric"].unique())[:12]
        raise ValueError(f"no test values of {metric!r} for these losses; test metrics present: {present}")
    points = test[["loss", "seed", "value"]].reset_index(drop=True)
    order = [name for name in losses if name in set(points["loss"])]
    means = pd.DataFrame(
        [
            {"loss": name, **_interval(stats.mean_interval(points.loc[points["loss"] == name, "value"]))}
            for name in order
        ]
    )
    ref = points[points["loss"] == reference].set_index("seed")["value"]
    diff_rows, interval_rows = [], []
    for name in order:
        if name == reference or ref.empty:
            continue
        mine = points[points["loss"] == name].set_index("seed")["value"]
        seeds = sorted(set(mine.index) & set(ref.index))
        diff_rows += [{"loss": name, "seed": s, "diff": mine[s] - ref[s]} for s in seeds]
        iv = stats.paired_interval(mine[seeds].to_numpy(), ref[seeds].to_numpy(), bounds=(-1.0, 1.0))
        interval_rows.append(
            {"loss": name, **_interval(iv), "sentence": stats.describe_difference(name, reference, iv)}
        )
    curve_metric = next(
        (
            m
            for m in CURVE_METRICS.get(metric, (metric,))
            if ((rows["split"] == "val") & (rows["metric"] == m)).any()
        ),
        None,
    )
    curves = rows[(rows["split"] == "val") & (rows["metric"] == curve_metric)][
        ["loss", "seed", step, "value"]
    ]
    return BrowserData(
        metric,
        reference,
        points,
        means,
        pd.DataFrame(diff_rows, columns=["loss", "seed", "diff"]),
        pd.DataFrame(interval_rows, columns=["loss", "mean", "low", "high", "n", "sentence"]),
        curves.reset_index(drop=True),
        curve_metric,
        step,
    )


def _interval(iv: stats.Interval) -> dict[str, float]:
    return {"mean": iv.mean, "low": iv.low, "high": iv.high, "n": iv.n}


def _metric_words(metric: str | None) -> str:
    if metric is None:
        return "(none)"
    words = {
        **METRICS,
        "miou_d@tuned": "IoU at the best threshold",
        "miou_d@best": "IoU at the best threshold",
    }
    return words.get(metric, metric)


def browser_figure(data: BrowserData, view: str, title: str) -> Figure:
    """``view``: ``"per seed and mean"``, ``"paired differences"`` or ``"learning curves"``."""
    lines = len(data.diff_intervals) if view == "paired differences" else 0
    fig, (ax, note) = plt.subplots(
        2,
        1,
        figsize=(8.5, 3.6 + 0.16 * lines),
        height_ratios=[3.6, 0.01 + 0.16 * lines],
        layout="constrained",
    )
    note.set_axis_off()
    order = list(data.means["loss"])
    x = {name: i for i, name in enumerate(order)}
    jitter = np.linspace(-0.12, 0.12, max(1, data.points["seed"].nunique()))
    seed_pos = {s: jitter[i] for i, s in enumerate(sorted(data.points["seed"].unique()))}
    if view == "per seed and mean":
        for _, r in data.points.iterrows():
            ax.plot(x[r["loss"]] + seed_pos[r["seed"]], r["value"], "o", color="0.55", ms=5)
        for _, r in data.means.iterrows():
            i = x[r["loss"]]
            ax.errorbar(
                i + 0.3,
                r["mean"],
                yerr=[[r["mean"] - r["low"]], [r["high"] - r["mean"]]],
                fmt="D",
                color="C0",
                capsize=4,
                ms=6,
            )
        ax.set(ylabel=_metric_words(data.metric), ylim=(0, 1))
        ax.plot([], [], "o", color="0.55", label="one seed (test split)")
        ax.errorbar([], [], yerr=[], fmt="D", color="C0", label="mean, 95 % interval within [0, 1]")
        ax.legend(fontsize=8, loc="upper left")
    elif view == "paired differences":
        if data.diff_intervals.empty:
            ax.text(
                0.5,
                0.5,
                f"no runs of the reference loss {data.reference!r} to pair with",
                ha="center",
                transform=ax.transAxes,
            )
        for _, r in data.differences.iterrows():
            ax.plot(x[r["loss"]] + seed_pos[r["seed"]], 100 * r["diff"], "o", color="0.55", ms=5)
        for _, r in data.diff_intervals.iterrows():
            i = x[r["loss"]]
            colour = "C2" if r["low"] > 0 else "C3" if r["high"] < 0 else "C7"
            ax.errorbar(
                i + 0.3,
                100 * r["mean"],
                yerr=[[100 * (r["mean"] - r["low"])], [100 * (r["high"] - r["mean"])]],
                fmt="D",
                color=colour,
                capsize=4,
                ms=6,
            )
        ax.axhline(0, color="k", lw=0.8)
        ax.set(ylabel=f"difference to {data.reference}\n(IoU points, same seed)")
        note.text(
            0, 1, "\n".join(data.diff_intervals["sentence"]), va="top", fontsize=8, transform=note.transAxes
        )
    else:
        if data.curves.empty:
            ax.text(
                0.5, 0.5, "no validation curve stored for this metric", ha="center", transform=ax.transAxes
            )
        for k, name in enumerate(order):
            for s, grp in data.curves[data.curves["loss"] == name].groupby("seed"):
                ax.plot(
                    grp[data.step],
                    grp["value"],
                    color=f"C{k}",
                    alpha=0.8,
                    lw=1.2,
                    label=name if s == min(data.curves.loc[data.curves["loss"] == name, "seed"]) else None,
                )
        ax.set(
            xlabel="optimizer step" if data.step == "step" else "epoch",
            ylabel=f"validation: {_metric_words(data.curve_metric)}",
            ylim=(0, 1),
        )
        ax.legend(fontsize=8, loc="best")
    if view != "learning curves":
        ax.set_xticks(range(len(order)), order, rotation=15, fontsize=8)
        ax.set_xlim(-0.5, len(order) - 0.5)
    ax.set_title(title, fontsize=9)
    plt.close(fig)
    return fig


class ResultsBrowser(Explorer):
    """Pick the group (foreground fraction or class), the setting, the losses, the metric, the reference
    loss and the view; ``ex.data`` (:class:`BrowserData`) and ``ex.figure`` hold what is shown."""

    def __init__(self, table: pd.DataFrame, group: float | str | None = None, reference: str = "bce"):
        self.table = table
        gcol = group_column(table)
        values = sorted(v for v in _group_values(table, gcol).dropna().unique())
        names = {"fg_frac": "foreground fraction", "class_name": "class"}
        self.group = w.Dropdown(
            options=[
                (f"{v:.0%}" if gcol == "fg_frac" else (v or "all classes, one model"), v) for v in values
            ],
            value=group if group in values else next((v for v in values if v != ""), values[0]),
            description=names[gcol],
            **CONTROL_STYLE,
        )
        self._labels = settings(table)
        self.setting = w.Dropdown(description="setting", **CONTROL_STYLE)
        self.losses = w.SelectMultiple(description="losses", rows=6, **CONTROL_STYLE)
        present = set(table.loc[table["split"] == "test", "metric"])
        self.metric = w.Dropdown(
            options=[(v, k) for k, v in METRICS.items() if k in present],
            description="metric",
            **CONTROL_STYLE,
        )
        self.reference = w.Dropdown(description="reference loss", **CONTROL_STYLE)
        self.view = w.ToggleButtons(
            options=["per seed and mean", "paired differences", "learning curves"],
            description="view",
            style={"description_width": "50px"},
        )
        self._default_reference = reference
        self.controls = [self.group, self.setting, self.losses, self.metric, self.reference, self.view]
        self.data: BrowserData
        self._refresh_choices()
        top = w.VBox(
            [
                self.view,
                w.HBox([w.VBox([self.group, self.setting, self.metric, self.reference]), self.losses]),
            ]
        )
        self.group.observe(lambda _c: self._refresh_choices(), names="value")
        self.setting.observe(lambda _c: self._refresh_choices(keep_setting=True), names="value")
        self._finish(top)

    def _refresh_choices(self, keep_setting: bool = False) -> None:
        """Offer the settings and losses that have runs in the chosen group (and setting)."""
        self._updating = True
        try:
            in_group = _group_values(self.table, group_column(self.table)) == self.group.value
            counts = self._labels[in_group].value_counts()
            if not keep_setting or self.setting.value not in counts.index:
                self.setting.options = [(s or "(default)", s) for s in counts.index]
                self.setting.value = counts.index[0]
            rows = self.table[in_group & (self._labels == self.setting.value)]
            available = list(dict.fromkeys(rows["loss"]))
            chosen = [name for name in self.losses.value if name in available] or available
            self.losses.options = available
            self.losses.value = tuple(chosen)
            wanted = (self.reference.value, self._default_reference, "bce", "cross_entropy")
            self.reference.options = available
            self.reference.value = next((r for r in wanted if r in available), available[0])
        finally:
            self._updating = False

    def compute(self) -> Figure:
        self.data = browse(
            self.table,
            self.group.value,
            list(self.losses.value),
            self.metric.value,
            self.reference.value,
            self.setting.value,
        )
        where = self.group.options[[v for _, v in self.group.options].index(self.group.value)][0]
        setting = f", {self.setting.value}" if self.setting.value else ""
        return browser_figure(
            self.data, self.view.value, f"{_metric_words(self.data.metric)}: {where}{setting}"
        )
