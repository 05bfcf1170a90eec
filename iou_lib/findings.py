"""What the stored experiments show, as tables and sentences generated from the stored results.

Nothing here is typed in: every number and every "A beats B" comes from ``data/results/`` through
:func:`iou_lib.stats.paired_interval` and :func:`iou_lib.stats.describe_difference`, so replacing a stored
table changes the prose. Notebooks 06-08 and the README's results section (``tools/make_readme_results.py``)
call these functions.

Sources (:func:`synthetic_source`, :func:`camvid_source`): the converged grid of ``tools/make_results.py``
(``data/results/<profile>/<study>/``) once it holds the primary contrast, otherwise the **first, reduced**
grid (``synthetic_<profile>.csv``, ``camvid_<profile>.csv``: 3 seeds, 144 constant-LR steps, curves still
rising), labelled as such.

The pre-declared **primary contrast** is soft IoU minus BCE at 1 % foreground, test IoU at p = 0.5
(:data:`PRIMARY`); every other contrast is secondary, and its p-value is Holm-corrected over all of them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iou_lib import reporting
from iou_lib.stats import describe_difference, holm, paired_interval, paired_pvalue, sign_test

__all__ = [
    "PRIMARY",
    "Source",
    "camvid_multi_source",
    "camvid_source",
    "camvid_lines",
    "camvid_summary",
    "collapsed_runs",
    "converged_primary",
    "convergence_sentence",
    "contrasts",
    "in_words",
    "loss_name",
    "lr_choices",
    "markdown_table",
    "multiclass_sentences",
    "primary_sentence",
    "readme_section",
    "rerun_agreement",
    "synthetic_source",
]

PRIMARY = {"fg_frac": 0.01, "a": "soft_iou", "b": "bce", "metric": "miou_d"}
"""The pre-declared primary contrast: soft IoU - BCE at 1 % foreground, test IoU at p = 0.5."""

LOSS_NAMES = {
    "bce": "BCE",
    "weighted_bce": "weighted BCE",
    "focal": "focal loss",
    "soft_iou": "soft IoU",
    "soft_dice": "soft Dice",
    "tversky": "Tversky",
    "lovasz_hinge": "Lovász hinge",
    "jaccard_metric": "Jaccard metric loss",
    "0.25*bce+0.75*soft_iou": "0.25 BCE + 0.75 soft IoU",
    "cross_entropy": "cross-entropy",
    "lovasz_softmax": "Lovász-softmax",
}
METRIC_WORDS = {
    "miou_d": "IoU at 0.5",
    "miou_d@val_thr": "IoU at the tuned threshold",
    "ap": "AP",
    "ece": "calibration error (ECE)",
}
LOWER_IS_BETTER = {"ece": "is better calibrated than"}  # metric -> what winning means


def loss_name(spec: str) -> str:
    """A loss label in words: ``"soft_iou (per image)"`` -> ``"soft IoU (per image)"``; schedules
    ``"bce then lovasz_hinge"`` -> ``"BCE then Lovász hinge"``, ``"bce:3,soft_iou"`` -> ``"BCE (3) then
    soft IoU"`` (3 epochs or steps).

    >>> loss_name("0.25*bce+0.75*soft_iou"), loss_name("bce then lovasz_hinge (per image)")
    ('0.25 BCE + 0.75 soft IoU', 'BCE then Lovász hinge (per image)')
    >>> loss_name("bce:3,soft_iou"), loss_name("tversky alpha=0.3 beta=0.7")
    ('BCE (3) then soft IoU', 'Tversky (alpha 0.3, beta 0.7)')
    """
    base, _, rest = spec.partition(" (")
    base, *params = base.split(" ")  # "tversky alpha=0.3 beta=0.7": a loss with its options
    if params and all("=" in p for p in params):
        rest = ", ".join(p.replace("=", " ") for p in params) + (f", {rest}" if rest else ")")
    else:
        base = " ".join([base, *params])
    phases = []
    for phase in base.replace(" then ", ",").split(","):
        name, _, length = phase.partition(":")
        phases.append(LOSS_NAMES.get(name, name) + (f" ({length})" if length else ""))
    return " then ".join(phases) + (f" ({rest}" if rest else "")


def collapsed_runs(table: pd.DataFrame) -> pd.Series:
    """Per loss, how many runs the engine flagged as collapsed (``summary`` rows; empty for old tables)."""
    rows = table[(table["split"] == "summary") & (table["metric"] == "collapsed")]
    return rows.groupby("loss")["value"].sum() if len(rows) else pd.Series(dtype=float)


@dataclasses.dataclass(frozen=True)
class Source:
    """Stored runs behind a set of findings: ``table`` with a ``loss`` column of labels, how to name it."""

    kind: str  # "grid" (the converged grid) or "first" (the first, reduced grid)
    label: str
    table: pd.DataFrame
    prov: dict[str, Any]


def _grid(studies: Sequence[str], profile: str, results_dir: Path | None) -> tuple[pd.DataFrame, dict]:
    tables, provs = [], []
    for study in studies:
        t, p = reporting.stored_study(study, profile, results_dir)
        if not t.empty:
            tables.append(t)
            provs.append(p)
    if not tables:
        return pd.DataFrame(), {}
    table = pd.concat(tables, ignore_index=True).drop_duplicates(["run", "split", "step", "metric"])
    table = table.assign(loss=table["variant"])  # labels: per-image variants and schedules are their own rows
    prov = {**provs[0], "n_runs": int(table["run"].nunique()), "table": f"{profile}/" + ", ".join(studies)}
    prov["wall_s"] = sum(p["wall_s"] for p in provs)
    prov["clean_tree"] = all(p["clean_tree"] for p in provs)
    return table, prov


def _budget(prov: dict[str, Any]) -> str:
    plan = prov.get("plan") or prov.get("grid") or {}
    return str(prov.get("note") or plan)


MIN_SEEDS = {"synthetic": 5, "camvid": 3}
"""Paired seeds the converged grid needs before the findings switch to it from the first grid (the
primary contrast for synthetic data, every class for CamVid): a partial grid never replaces the prose."""


def converged_primary(profile: str = "cpu", results_dir: str | Path | None = None) -> str | None:
    """The primary contrast from the converged grid's ``primary`` study once it has :data:`MIN_SEEDS`
    paired seeds (whatever else of the grid is stored), else ``None``."""
    table, prov = _grid(("primary",), profile, Path(results_dir) if results_dir is not None else None)
    if table.empty:
        return None
    tests = table[table["split"] == "test"]
    if (tests.groupby("seed")["loss"].nunique() == 2).sum() < MIN_SEEDS["synthetic"]:
        return None
    conv = reporting.convergence(table, by=("loss",))
    flat = ", ".join(
        f"{loss_name(x)} {c:+.3f}" for x, c in zip(conv["loss"], conv["mean_change"], strict=True)
    )
    rates = ", ".join(f"{loss_name(x)} {lr:g}" for x, lr in table.groupby("loss")["lr"].first().items())
    return (
        f"{primary_sentence(table)} From the converged '{profile}' grid ({prov['note']}; learning rates "
        f"chosen on validation: {rates}; change of validation IoU over the last fifth of training: {flat})."
    )


def synthetic_source(profile: str = "cpu", results_dir: str | Path | None = None) -> Source:
    """The converged synthetic grid once it holds :data:`MIN_SEEDS` paired seeds of the primary contrast
    and of four losses at two fractions of the imbalance study, else the first, reduced grid (plain runs
    only: no per-image or empty-image variants)."""
    folder = Path(results_dir) if results_dir is not None else None
    table, prov = _grid(("primary", "imbalance", "shootout"), profile, folder)
    if not table.empty:
        prim = table[
            (table["fg_frac"] == PRIMARY["fg_frac"]) & table["loss"].isin([PRIMARY["a"], PRIMARY["b"]])
        ]
        seeds = prim[prim["split"] == "test"].groupby("seed")["loss"].nunique()
        imbalance = table[(table["study"] == "imbalance") & (table["split"] == "test")]
        complete = (imbalance.groupby(["fg_frac", "loss"])["seed"].nunique() >= MIN_SEEDS["synthetic"]).sum()
        if (seeds == 2).sum() >= MIN_SEEDS["synthetic"] and complete >= 8:  # and 4 losses x 2 fractions
            label = f"converged '{profile}' grid of tools/make_results.py ({prov['n_runs']} runs)"
            return Source("grid", label, table, prov)
    table, prov = reporting.stored_results("synthetic", profile, results_dir)
    plain = table[(table["per_image"].astype(str) != "True") & (pd.to_numeric(table["empty_frac"]) == 0)]
    label = (
        f"first, reduced '{profile}' grid ({prov['n_runs']} runs: {prov['note']}); its learning curves are "
        "still rising, so these numbers describe short training, not converged losses"
    )
    return Source("first", label, plain.reset_index(drop=True), prov)


def _camvid(
    study: str, keys: list[str], plan_lists: tuple[str, ...], profile: str, results_dir: str | Path | None
) -> Source:
    """The converged grid's runs of a CamVid ``study`` once every group of ``keys`` that its plan (the
    ``plan`` its runs recorded) asks for, the product of the lengths of ``plan_lists``, has
    :data:`MIN_SEEDS` seeds on the test set; else the first grid's runs of the same kind (binary rows for
    ``camvid_binary``, the 11-class rows otherwise): a partial grid never replaces what is shown."""
    table, prov = _grid((study,), profile, Path(results_dir) if results_dir is not None else None)
    plan = prov.get("plan") or {}
    expected = math.prod(len(plan.get(name, ())) for name in plan_lists)
    if not table.empty and expected:
        tests = table[table["split"] == "test"]
        if int((tests.groupby(keys)["seed"].nunique() >= MIN_SEEDS["camvid"]).sum()) >= expected:
            return Source("grid", f"converged '{profile}' CamVid grid ({prov['n_runs']} runs)", table, prov)
    table, prov = reporting.stored_results("camvid", profile, results_dir)
    binary = table["class_name"].astype(str) != ""
    first = table[binary if study == "camvid_binary" else ~binary]
    label = f"first, reduced '{profile}' CamVid grid ({prov['n_runs']} runs: {prov['note']})"
    return Source("first", label, first.reset_index(drop=True), prov)


def camvid_source(profile: str = "cpu", results_dir: str | Path | None = None) -> Source:
    """CamVid binary per-class runs of the converged grid once every class x loss of its plan has
    :data:`MIN_SEEDS` seeds, else those of the first grid."""
    return _camvid(
        "camvid_binary", ["class_name", "loss"], ("camvid_classes", "camvid_binary"), profile, results_dir
    )


def camvid_multi_source(profile: str = "cpu", results_dir: str | Path | None = None) -> Source:
    """The 11-class CamVid runs of the converged grid once every loss of its plan has :data:`MIN_SEEDS`
    seeds, else the first grid's."""
    return _camvid("camvid_multi", ["loss"], ("camvid_multi",), profile, results_dir)


def contrasts(
    table: pd.DataFrame,
    losses: Sequence[str] | None = None,
    baselines: Sequence[str] = ("bce", "weighted_bce"),
    metrics: Sequence[str] = ("miou_d", "miou_d@val_thr", "ap"),
    by: str = "fg_frac",
) -> pd.DataFrame:
    """Paired differences ``loss - baseline`` per ``by`` value and metric, with 95 % t intervals, paired t
    p-values, Holm-adjusted p-values over the secondary contrasts, and the sentence for each.

    Columns: ``by, loss, baseline, metric, n, mean, low, high, p, p_holm, primary, sentence``. Metrics
    missing from ``table`` (e.g. AP in the first grid) are left out.
    """
    out = []
    present = set(table.loc[table["split"] == "test", "metric"])
    for metric in (m for m in metrics if m in present):
        runs = reporting.final_values(table, metric)
        for baseline in baselines:
            if baseline not in set(runs["loss"]):
                continue
            d = reporting.paired_differences(runs, metric=metric, baseline=baseline, by=(by,))
            for (group, loss), rows in d.groupby([by, "loss"], sort=False):
                if losses is not None and loss not in losses:
                    continue
                if loss in baselines and list(baselines).index(loss) < list(baselines).index(baseline):
                    continue  # weighted BCE - BCE is already there as a contrast to BCE
                iv = paired_interval(rows["value"], rows["baseline_value"])
                primary = (group, loss, baseline, metric) == tuple(PRIMARY.values())
                out.append(
                    {
                        by: group,
                        "loss": loss,
                        "baseline": baseline,
                        "metric": metric,
                        "n": iv.n,
                        "mean": iv.mean,
                        "low": iv.low,
                        "high": iv.high,
                        "p": paired_pvalue(rows["diff"]),
                        "primary": primary,
                        "interval": iv,
                    }
                )
    frame = pd.DataFrame(out)
    if frame.empty:
        return frame
    secondary = ~frame["primary"]
    frame["p_holm"] = frame["p"]
    frame.loc[secondary, "p_holm"] = holm(frame.loc[secondary, "p"].to_numpy())
    collapsed = collapsed_runs(table)

    def sentence(group: Any, a: str, b: str, metric: str, iv: Any) -> str:
        where = f"at {_percent(group)} foreground, " if by == "fg_frac" else ""
        better = (
            {"higher_is_better": False, "verb": LOWER_IS_BETTER[metric]} if metric in LOWER_IS_BETTER else {}
        )
        words = describe_difference(loss_name(a), loss_name(b), iv, **better)
        text = f"{where}{METRIC_WORDS.get(metric, metric)}: {words}"
        flagged = [
            f"{loss_name(x)} collapsed in {int(collapsed[x])} runs" for x in (a, b) if collapsed.get(x, 0)
        ]
        return text + (f" (not a score: {'; '.join(flagged)})" if flagged else "")

    frame["sentence"] = [
        sentence(*row)
        for row in zip(
            frame[by], frame["loss"], frame["baseline"], frame["metric"], frame["interval"], strict=True
        )
    ]
    return frame.drop(columns="interval")


def primary_sentence(table: pd.DataFrame) -> str:
    """The primary contrast (soft IoU - BCE at 1 %, IoU at 0.5) as a sentence from ``table``."""
    sub = table[table["fg_frac"] == PRIMARY["fg_frac"]]
    c = contrasts(sub, losses=[PRIMARY["a"]], baselines=[PRIMARY["b"]], metrics=[PRIMARY["metric"]])
    if c.empty:
        return "The primary contrast (soft IoU vs BCE at 1 % foreground) has no paired runs stored yet."
    return f"Primary contrast (pre-declared for the converged grid): {c.iloc[0]['sentence']}."


def rerun_agreement(
    rerun: pd.DataFrame, original: pd.DataFrame, metric: str = "miou_d"
) -> tuple[pd.DataFrame, list[str]]:
    """How far the same runs (same ``run`` id: configuration and seed) land apart when trained twice, per
    loss: the number of pairs, the mean and the largest absolute difference of the test ``metric``, and how
    many pairs fall on opposite sides of 0.01 (a run stuck at all-background in one training and not in the
    other); with one sentence per loss."""
    a, b = (
        reporting.final_values(t, metric).drop_duplicates("run").set_index("run") for t in (rerun, original)
    )
    both = a[["loss", "value"]].join(b[["value"]].add_suffix("_original"), how="inner")
    rows, sentences = [], []
    for loss, r in both.groupby("loss", sort=False):
        diff = (r["value"] - r["value_original"]).abs()
        flips = int(((r["value"] < 0.01) != (r["value_original"] < 0.01)).sum())
        rows.append(
            {"loss": loss, "pairs": len(r), "mean_abs": diff.mean(), "max_abs": diff.max(), "flips": flips}
        )
        text = (
            f"{loss_name(loss)}: trained twice, {len(r)} seeds differ by {100 * diff.mean():.1f} points on "
            f"average and by at most {100 * diff.max():.1f}"
        )
        if flips:
            text += f"; in {flips} of them one training stayed at 0 and the other did not"
        sentences.append(text)
    return pd.DataFrame(rows), sentences


def lr_choices(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The learning-rate search of ``tools/make_results.py`` (its ``lr`` study): per loss (``variant``) and
    rate, the validation IoU at the tuned threshold at the run's best step; the chosen rate (the best, ties
    to the smaller, as ``make_results`` chooses) and a sentence naming the losses whose choice lies on the
    edge of the grid (a wider grid might have done better for them).

    Returns a table with one row per loss: a column per rate, ``chosen`` and ``on_edge``.
    """
    best = table[(table["split"] == "summary") & (table["metric"] == "best_step")][["run", "value"]]
    val = table[(table["split"] == "val") & (table["metric"] == "miou_d@tuned")]
    at_best = val.merge(best.rename(columns={"value": "best_step"}), on="run")
    at_best = at_best[at_best["step"] == at_best["best_step"]]
    wide = at_best.pivot_table(index="variant", columns="lr", values="value", aggfunc="first", sort=False)
    rates = sorted(wide.columns)
    wide = wide[rates]
    complete = wide.dropna()
    chosen = complete.apply(lambda row: max(rates, key=lambda r: (row[r], -r)), axis=1)
    wide["chosen"] = chosen
    wide["on_edge"] = chosen.isin([rates[0], rates[-1]])
    edge = [loss_name(v) for v in complete.index if wide.loc[v, "on_edge"]]
    text = (
        f"Learning rate chosen on validation from {', '.join(f'{r:g}' for r in rates)} for "
        f"{len(complete)} losses; "
        + (
            f"the choice lies on the edge of the grid for {', '.join(edge)}: a wider grid might favour them"
            if edge
            else "every choice lies inside the grid"
        )
        + (f"; {missing} searches are not complete yet" if (missing := len(wide) - len(complete)) else "")
        + "."
    )
    return wide.reset_index(), text


def camvid_summary(
    table: pd.DataFrame, a: str = "soft_iou", b: str = "bce", metric: str = "miou_d"
) -> tuple[pd.DataFrame, str]:
    """Per class ``a - b`` paired over seeds (test ``metric``: IoU at 0.5 by default: columns ``class, n,
    mean, low, high``), and a sentence with the sign test over all class x seed pairs."""
    d = reporting.paired_differences(table, metric=metric, baseline=b, by=("class_name",))
    d = d[d["loss"] == a]
    rows = []
    for cls, r in d.groupby("class_name", sort=False):
        iv = paired_interval(r["value"], r["baseline_value"])
        rows.append(
            {
                "class": reporting._class_label(cls),
                "n": iv.n,
                "mean": iv.mean,
                "low": iv.low,
                "high": iv.high,
            }
        )
    st = sign_test(d["diff"])
    text = (
        f"{loss_name(a)} scored higher than {loss_name(b)} in {st.positive} and lower in {st.negative} of "
        f"{len(d)} class x seed pairs (two-sided sign test p = {st.pvalue:.3g})"
    )
    return pd.DataFrame(rows), text


def camvid_lines(table: pd.DataFrame, metric: str) -> list[str]:
    """Markdown: per class, every loss minus BCE on ``metric`` (paired over seeds), then the sign tests."""
    others = sorted({*table["loss"]} - {"bce"}, key=lambda x: (x != "soft_iou", x))
    columns, signs = {}, []
    for loss in others:
        per_class, sign = camvid_summary(table, a=loss, metric=metric)
        columns[f"{loss_name(loss)} - BCE"] = pd.Series(
            [
                f"{_interval_text(m, lo, hi)} ({n})"
                for m, lo, hi, n in zip(*(per_class[k] for k in ("mean", "low", "high", "n")), strict=True)
            ],
            index=per_class["class"],
        )
        signs.append(f"- {sign}")
    return [
        f"Difference to BCE, test {METRIC_WORDS[metric]} in points, paired over seeds (their number in "
        "parentheses):",
        "",
        markdown_table(pd.DataFrame(columns).rename_axis("class").reset_index()),
        "",
        "Sign tests over all class x seed pairs:",
        "",
        *signs,
    ]


def multiclass_sentences(table: pd.DataFrame, baseline: str = "cross_entropy") -> list[str]:
    """The mIoU of each loss of a multi-class study against ``baseline``, paired over seeds (test set),
    one sentence each."""
    d = reporting.paired_differences(table, metric="miou_d", baseline=baseline, by=())
    return [
        "mIoU: "
        + describe_difference(
            loss_name(x), loss_name(baseline), paired_interval(r["value"], r["baseline_value"])
        )
        for x, r in d.groupby("loss", sort=False)
    ]


def _percent(frac: float) -> str:
    return f"{frac * 100:g} %"


def _fmt(x: float, digits: int = 1, scale: float = 100) -> str:
    return "n/a" if x is None or np.isnan(x) else f"{x * scale:+.{digits}f}"


def _interval_text(mean: float, low: float, high: float) -> str:
    """``+6.1 [+3.2, +9.0]``: a difference and its interval in points (x 100)."""
    return f"{_fmt(mean)} [{_fmt(low)}, {_fmt(high)}]"


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table of ``frame`` (values as they are, strings)."""
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def convergence_sentence(table: pd.DataFrame, group: str = "fg_frac") -> str:
    """How many (``group``, loss) cells of ``table`` have plateaued, by :func:`reporting.convergence`'s rule,
    and which have not, with their mean change; ``group`` is the foreground fraction (synthetic data) or
    ``"class_name"`` (one model per class of a real data set).

    >>> import pandas as pd
    >>> rows = [{"run": f"{l}{s}", "loss": l, "fg_frac": 0.01, "split": "val", "metric": "miou_d",
    ...          "step": t, "value": v}
    ...         for l, rise in (("bce", 0.05), ("soft_iou", 0.0)) for s in (0, 1)
    ...         for t, v in enumerate(0.1 + rise * i / 2 for i in range(10))]
    >>> convergence_sentence(pd.DataFrame(rows))
    '1 of 2 (foreground, loss) cells plateaued (mean change of validation IoU between the last 20 % of \
evaluations and the 20 % before, over seeds; plateau = below 0.02). Still changing: BCE at 1 % (+0.050).'
    """
    conv = reporting.convergence(table, by=(group, "loss"))
    rising = conv[~conv["plateaued"]].sort_values(["loss", group], kind="stable")
    share = f"{conv.attrs['share'] * 100:g} %"
    kind = "foreground" if group == "fg_frac" else "class"
    text = (
        f"{int(conv['plateaued'].sum())} of {len(conv)} ({kind}, loss) cells plateaued (mean change of "
        f"validation IoU between the last {share} of evaluations and the {share} before, over seeds; "
        f"plateau = below {conv.attrs['tol']:g})."
    )
    if rising.empty:
        return text
    where = _percent if group == "fg_frac" else reporting._class_label
    cells = [
        f"{loss_name(loss)} at {where(g)} ({change:+.3f})"
        for loss, g, change in zip(rising["loss"], rising[group], rising["mean_change"], strict=True)
    ]
    return f"{text} Still changing: {', '.join(cells)}."


def in_words(contrasts: pd.DataFrame) -> list[str]:
    """Markdown lines for the contrasts (rows of :func:`contrasts`) whose interval excludes 0: a bullet
    per sentence, marked ``— primary`` or ``— holds after Holm`` (Holm-adjusted p below 0.05), then how
    many hold; a single line when none excludes 0."""
    clear = contrasts[(contrasts["low"] > 0) | (contrasts["high"] < 0)]
    if clear.empty:
        return ["No interval excludes 0: no clear difference at this number of seeds."]
    holds = clear["primary"] | (clear["p_holm"] < 0.05)
    marks = [
        " — primary" if p else " — holds after Holm" if h else ""
        for p, h in zip(clear["primary"], holds, strict=True)
    ]
    return [
        "In words, only where the interval excludes 0:",
        "",
        *(f"- {s}{m}" for s, m in zip(clear["sentence"], marks, strict=True)),
        "",
        "These intervals are not corrected for multiple comparisons; after Holm's correction "
        f"{int(holds.sum())} of the {len(clear)} stay significant at the 5 % level (marked).",
    ]


def readme_section(profile: str = "cpu", results_dir: str | Path | None = None) -> str:
    """The README's "What the experiments show" text, generated from the stored results."""
    syn = synthetic_source(profile, results_dir)
    c = contrasts(syn.table, losses=["soft_iou"])
    lines = [
        "<!-- generated by tools/make_readme_results.py from data/results/: do not edit by hand -->",
        "",
        f"**Source:** the {syn.label}.",
        "",
        f"**Convergence check.** {convergence_sentence(syn.table)}",
        "",
        *(
            [f"**Learning rates.** {lr_choices(lr_table)[1]}", ""]
            if not (lr_table := reporting.stored_study("lr", profile, results_dir)[0]).empty
            else []
        ),
        primary_sentence(syn.table),
        "",
        *(
            [f"**Converged grid, primary contrast:** {converged}", ""]
            if (converged := converged_primary(profile, results_dir)) and syn.kind == "first"
            else []
        ),
        f"Secondary contrasts of soft IoU against BCE and weighted BCE, test set, paired over seeds, 95 % t "
        f"interval in IoU points (x 100); p-values Holm-corrected over the {int((~c['primary']).sum())} "
        "secondary contrasts:",
        "",
    ]
    shown = c.assign(
        setting=[_percent(g) for g in c["fg_frac"]],
        comparison=[f"soft IoU - {loss_name(b)}" for b in c["baseline"]],
        measure=[METRIC_WORDS.get(m, m) for m in c["metric"]],
        difference=[
            _interval_text(m, lo, hi) for m, lo, hi in zip(c["mean"], c["low"], c["high"], strict=True)
        ],
        seeds=c["n"],
        holm_p=["primary" if p else f"{q:.3g}" for p, q in zip(c["primary"], c["p_holm"], strict=True)],
    )
    shown = shown.sort_values(["fg_frac", "baseline", "metric"], ascending=[False, True, True], kind="stable")
    lines.append(markdown_table(shown[["setting", "comparison", "measure", "difference", "seeds", "holm_p"]]))
    lines += ["", *in_words(shown)]
    calib, _ = reporting.stored_study("calibration", profile, results_dir)
    if not calib.empty:
        ece = reporting.results_table(calib, {"ece": "ECE"})["ECE"]
        lines += [
            "",
            "**Calibration at 1 % foreground** (the calibration study: expected calibration error over 10 "
            "probability bins of the test pixels, mean [95 % interval] over seeds): "
            + "; ".join(f"{loss_name(x)} {v}" for x, v in ece.items())
            + ".",
            "",
        ]
        ece_contrasts = contrasts(calib, baselines=("bce", "weighted_bce"), metrics=("ece",))
        lines += [f"- {sentence}" for sentence in ece_contrasts["sentence"]]
    cam = camvid_source(profile, results_dir)
    lines += [
        "",
        f"**CamVid**, one binary model per class (the paper's protocol), from the {cam.label}. "
        f"{convergence_sentence(cam.table, 'class_name')}",
    ]
    present = set(cam.table.loc[cam.table["split"] == "test", "metric"])
    for metric in (m for m in ("miou_d", "miou_d@val_thr") if m in present):
        lines += ["", *camvid_lines(cam.table, metric)]
    multi = camvid_multi_source(profile, results_dir)
    if "cross_entropy" in set(multi.table["loss"]):
        lines += ["", f"**CamVid, one 11-class model**, from the {multi.label}:", ""]
        lines += [f"- {sentence}" for sentence in multiclass_sentences(multi.table)]
    return "\n".join(lines) + "\n"
