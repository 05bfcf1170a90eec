# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,jupyter,-all
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · The imbalance sweep: when does an IoU loss pay off?
#
# The gradient-balance argument of notebook 02 predicts that BCE's push is dominated by the background when
# the foreground is small, ($(N-|Y|)/|Y|$ to one: 1/f - 1 at foreground fraction f), while the soft IoU loss
# stays balanced. So the
# advantage of an IoU loss should *grow as the foreground shrinks* (experiment E4, the hypothesis van Beers
# et al. left untested). This notebook tests it, then asks a second question: a loss aggregated per image
# or over the batch optimises a different metric; does each win on the metric it targets (E5)? And what
# happens with images that contain no foreground at all?
#
# **You will learn to**
#
# 1. run a grid of runs (losses x foreground fractions x seeds) with `iou_lib.experiments`;
# 2. read means with 95 % confidence intervals and paired differences across a sweep;
# 3. tell the dataset IoU (mIoU^D) from the mean per-image IoU (mIoU^I) and match a loss's aggregation to
#    the metric;
# 4. see the zero-gradient failure of a per-image IoU loss on empty images, and its fixes.
#
# As in notebook 06, **LIVE** cells train now (tiny in the `fast` profile: numbers only show the pipeline
# works) and **STORED** cells show precomputed results over several seeds, with their provenance.

# %%
import dataclasses
from pathlib import Path

import pandas as pd
import torch
from IPython.display import display

from iou_lib import budget, findings, losses, reporting, stats
from iou_lib.config import get_profile
from iou_lib.data.synthetic import blob_masks
from iou_lib.experiments import grid_configs, run_grid, summarize
from iou_lib.train import DataSpec, TrainConfig, fit

profile = get_profile()
LIVE = {"image_size": 48, "n_train": 128, "n_val": 32} if profile.name == "fast" else {}
STEPS = profile.steps  # optimizer steps per run (warm-up, then cosine decay)
base = TrainConfig.from_profile(profile, data=DataSpec.from_profile(profile, **LIVE), steps=STEPS,
                                progress=False)
print(f"LIVE, {profile.name} profile: {base.data.image_size} px, {base.data.n_train} training images, "
      f"{STEPS} steps")

# %% [markdown]
# ## 1. A grid of runs
#
# `grid_configs` makes one config per (foreground fraction, loss, seed), each with its own output folder;
# `run_grid` trains those not finished yet and returns one tidy table. Stop it and call it again: finished
# runs are skipped, an interrupted one resumes from its checkpoint. The command line does the same:
# `python -m iou_lib sweep --losses bce soft_iou --fg-fracs 0.2 0.02 --seeds 0 1 2 --out runs/sweep`.

# %%
FRACS = (0.2, 0.02) if profile.name == "fast" else profile.fg_fracs
SEEDS = (0,) if profile.name == "fast" else profile.seeds
out = Path("runs") / f"notebook07_{profile.name}"  # fixed: run the cell again after an interrupt and it continues
RUN_LONG = False  # True: train here even when the estimate printed below is longer than 15 minutes
configs = grid_configs(base, ["bce", "soft_iou"], FRACS, SEEDS, out)
budget.check(configs, confirmed=RUN_LONG)
live = run_grid(configs, out, on_done=budget.grid_progress(len(configs)))  # one line per run, time left
print(f"LIVE, {profile.name} profile, seeds {SEEDS}")
display(summarize(live, "miou_d")[["fg_frac", "loss", "mean", "ci95", "n"]].round(3))
reporting.mean_ci_plot(live, "miou_d", x="fg_frac", hue="loss", title=f"LIVE, {profile.name} profile")

# %% [markdown]
# ## 2. Stored sweep: from balanced to rare foreground
#
# The stored grid compares BCE, weighted BCE, soft IoU and the 0.25·BCE + 0.75·soft IoU mix across
# foreground fractions (printed below; notebook 06 adds the other losses). It is the **converged grid** of
# `tools/make_results.py` once stored (learning rate chosen per loss on validation, five seeds, best
# validation weights), otherwise the **first, reduced grid** (three seeds, short training), labelled as
# such. Dots are seeds; diamonds and bars are the mean and its 95 % t interval (clipped to [0, 1]).

# %%
source = findings.synthetic_source("cpu")
print(f"STORED, {source.label}")
print(reporting.provenance_text(source.prov))
SWEEP_LOSSES = ["bce", "weighted_bce", "soft_iou", "0.25*bce+0.75*soft_iou"]
sweep = source.table[source.table["loss"].isin(SWEEP_LOSSES)]
sweep = sweep[sweep.groupby("fg_frac")["loss"].transform("nunique") >= 3]  # fractions with the whole sweep
sweep = reporting.ordered(sweep, "loss", SWEEP_LOSSES)
print("foreground fractions:", ", ".join(f"{f:.1%}" for f in sorted(sweep["fg_frac"].unique(), reverse=True)))
reporting.results_table(sweep, {"miou_d": "IoU @ 0.5", "miou_d@val_thr": "IoU @ tuned threshold",
                                "ap": "average precision"}, by=["fg_frac", "loss"])

# %%
reporting.mean_ci_plot(sweep, "miou_d", x="fg_frac", hue="loss", title="STORED: test IoU at 0.5")

# %%
reporting.mean_ci_plot(sweep, "miou_d@val_thr", x="fg_frac", hue="loss",
                       title="STORED: test IoU at the threshold tuned on validation")

# %% [markdown]
# Paired differences (same seed: same images, initialisation and batch order) to BCE and to weighted BCE.
# If the IoU-loss advantage grows as the foreground shrinks, the soft-IoU points climb from left to right.

# %%
for metric, words in (("miou_d", "IoU at 0.5"), ("miou_d@val_thr", "IoU at the tuned threshold")):
    for baseline in ("bce", "weighted_bce"):
        diffs = reporting.paired_differences(sweep, metric, baseline=baseline, by=("fg_frac",))
        display(reporting.paired_difference_plot(diffs, baseline=baseline, metric=words,
                                                 title=f"STORED: paired difference to {baseline}, {words}"))

# %% [markdown]
# Did the runs train long enough? For each run, the change of the validation IoU between the last 20 % of
# its evaluations and the 20 % before; a loss passes below 0.02 (a curve stuck at 0 passes as well: check
# the learning curves).

# %%
display(reporting.convergence(sweep, by=("fg_frac", "loss")))
print(findings.convergence_sentence(sweep))
reporting.learning_curves(sweep[sweep["fg_frac"] == sweep["fg_frac"].min()],
                          title=f"STORED: learning curves at {sweep['fg_frac'].min():.1%} foreground")

# %% [markdown]
# **Browse the sweep.** The same stored table, one foreground fraction at a time: per-seed points, means
# with 95 % intervals, paired differences to a reference loss, learning curves.
#
# *Run the cells above to start the explorer* (a static copy of this page shows a picture of it).

# %%
# NBVAL_IGNORE_OUTPUT
from iou_lib.widgets import ResultsBrowser

ResultsBrowser(source.table, group=0.01)

# %% [markdown]
# **What the sweep says**, generated from the stored table: the pre-declared primary contrast, then every
# secondary contrast of soft IoU and the mix against BCE and weighted BCE, with paired 95 % intervals. A
# line names a winner only when its interval excludes 0; the Holm-corrected p-values follow in the table.

# %%
print(f"STORED, {source.label}\n")
print(findings.primary_sentence(source.table) + "\n")
sweep_contrasts = findings.contrasts(sweep, losses=["soft_iou", "0.25*bce+0.75*soft_iou"])
for sentence in sweep_contrasts["sentence"]:
    print("-", sentence)
display(sweep_contrasts[["fg_frac", "loss", "baseline", "metric", "n", "p", "p_holm"]].round(4))

# %% [markdown]
# Read the pattern in these lines, not in any one of them: does the soft-IoU advantage over BCE grow as
# the foreground shrinks (the E4 hypothesis)? Does it survive against weighted BCE at a tuned threshold,
# where calibration no longer counts and only ranking does?
#
# ## 3. Aggregation: per image or per batch?
#
# `soft_iou(per_image=False)` (the default) pools all pixels of the batch into one ratio $I/U$: it targets
# the dataset IoU, mIoU^D. `soft_iou(per_image=True)` averages the ratio of each image: it targets the mean
# per-image IoU, mIoU^I, where a small object counts as much as a large one.
#
# **Empty images.** For an image without foreground, $I = 0$ whatever is predicted, so the plain per-image
# loss $1 - I/U$ is 1 with **zero gradient**: false positives on empty images are never pushed down.
# `iou_lib`'s default rule, `empty="fp_rate"`, scores such an image by its soft false-positive rate
# $\frac1N\sum_v p_v$ instead; `empty="raw"` keeps the plain formula. Pooling over the batch avoids the
# problem too, as long as the batch holds some foreground. A direct check:

# %%
y = blob_masks(2, 32, 0.05, seed=0)
y[1] = 0  # the second image is empty
z = torch.full((2, 1, 32, 32), 1.0, requires_grad=True)  # predicts foreground everywhere: many FPs
for name, kw in {"per image, raw": {"per_image": True, "empty": "raw"},
                 "per image, fp_rate (default)": {"per_image": True},
                 "batch (default)": {}}.items():
    (grad,) = torch.autograd.grad(losses.get("soft_iou", **kw)(z, y), z)
    print(f"{name:30s} gradient mass on the empty image: {grad[1].abs().sum().item():.4f}")
    if kw.get("empty") == "raw":
        assert grad[1].abs().sum() == 0  # the zero-gradient failure
    else:
        assert (grad[1] > 0).all()  # every false positive of the empty image is pushed down

# %% [markdown]
# Live, tiny: 50 % of the training images empty, soft IoU aggregated three ways.

# %%
empty = dataclasses.replace(base.data, fg_frac=0.05, empty_frac=0.5)
variants = {"batch": {}, "per image": {"per_image": True}, "per image, raw": {"per_image": True, "empty": "raw"}}
agg_configs = {name: dataclasses.replace(base, data=empty, loss="soft_iou", loss_options={"soft_iou": kw})
               for name, kw in variants.items()}
runs = budget.track(list(agg_configs.values()), confirmed=RUN_LONG)
live_agg = pd.concat([fit(cfg).table().assign(variant=name) for cfg, name in zip(runs, agg_configs, strict=True)],
                     ignore_index=True)
print(f"LIVE, {profile.name} profile, 50 % empty training images, seed 0")
reporting.results_table(live_agg, {"miou_d": "dataset IoU", "miou_i": "per-image IoU", "pixel_acc": "accuracy"},
                        by="variant")

# %% [markdown]
# ### Stored: aggregation x metric, with and without empty images
#
# These runs come from the **first, reduced grid** (three seeds, 144 constant-rate steps, curves still
# rising); the converged grid compares the aggregations in its loss shoot-out (notebook 06).

# %%
stored, prov = reporting.stored_results("synthetic", "cpu")
print(reporting.provenance_text(prov))
agg = stored[(stored["loss"] == "soft_iou") & (stored["fg_frac"] == prov["grid"]["setting"])].copy()
agg["variant"] = agg["per_image"].map({True: "per image", False: "batch"}) + agg["empty_rule"].map(
    {"raw": ", raw", "fp_rate": ""})
agg["data"] = agg["empty_frac"].map(lambda f: f"{f:.0%} empty images")
reporting.results_table(agg, {"miou_d": "dataset IoU (mIoU^D)", "miou_i": "per-image IoU (mIoU^I)"},
                        by=["data", "variant"])

# %%
reporting.mean_ci_plot(agg, "miou_d", x="data", hue="variant", title="STORED: dataset IoU (mIoU^D)")

# %%
reporting.mean_ci_plot(agg, "miou_i", x="data", hue="variant", title="STORED: per-image IoU (mIoU^I)")

# %% [markdown]
# **What the aggregation runs say** (generated: per seed, the per-image variant minus the batch version).
# The expectation (E5) was that each aggregation wins on the metric it targets.

# %%
for data_label, rows in agg.groupby("data", sort=False):
    for metric, words in (("miou_d", "dataset IoU"), ("miou_i", "per-image IoU")):
        runs = reporting.final_values(rows, metric).set_index(["variant", "seed"])["value"]
        for variant in [v for v in runs.index.get_level_values(0).unique() if v != "batch"]:
            pair = pd.concat([runs[variant], runs["batch"]], axis=1, join="inner")
            interval = stats.paired_interval(pair.iloc[:, 0], pair.iloc[:, 1])
            print(f"{data_label}, {words}: " + stats.describe_difference(f"soft IoU {variant}", "batch soft IoU",
                                                                         interval))

# %% [markdown]
# Per-image soft IoU from scratch trained unreliably in this short budget (look at the pixel accuracy of its
# runs with `reporting.results_table(agg, {"pixel_acc": "accuracy"}, by=["data", "variant"])`); a BCE warm-up,
# a smoothing term or a lower learning rate are the usual remedies: try them. The zero gradient on empty
# images is real (the check above), whatever these short runs show.
#
# ## Summary
#
# * Run grids as independent, resumable runs; summarise over seeds with t intervals, and compare losses
#   with paired differences on the same seeds.
# * Whether an IoU loss beats BCE depends on the imbalance *and* on the threshold at which you evaluate.
# * Aggregation is a choice of metric: per-image losses target mIoU^I, batch losses mIoU^D. Empty images
#   need an explicit rule, or a per-image IoU loss ignores their false positives.
#
# ## Exercises
#
# 1. Add `lovasz_hinge` and `soft_dice` to the live sweep. Are the three surrogates distinguishable (E6)?
# 2. Make the objects smaller at a fixed foreground fraction (`DataSpec(n_objects=16)`): which loss suffers
#    most at 0.5? Which metric, mIoU^D or mIoU^I, shows it?
# 3. Set `empty_frac=0.8`. When does the batch version start to fail as well? (Hint: a batch of 16 images
#    with no foreground at all.)

# %% [markdown]
# **Exercise 4 (checked).** Weighted BCE's best threshold sits far above 0.5 in the tables above; predict
# where from the loss alone. With positives weighted by $w$ (here $w = (N - |Y|)/|Y| = 1/f - 1$ at
# foreground fraction $f$), a pixel that is foreground with probability $q$ has the expected loss
# $-w\,q \log p - (1 - q) \log(1 - p)$. Write `weighted_bce_threshold(w)`: the value of the loss-minimising
# $p$ at $q = 1/2$, i.e. the threshold on a weighted-BCE model that corresponds to 0.5 on a plain one.

# %% tags=["exercise"]
def weighted_bce_threshold(w):
    # your code here
    raise NotImplementedError


# %% jupyter={"source_hidden": true} tags=["solution"]
def weighted_bce_threshold(w):
    # d/dp: -w q / p + (1 - q) / (1 - p) = 0  =>  p* = w q / (w q + 1 - q); at q = 1/2: w / (w + 1)
    return w / (w + 1)


# %%
from iou_lib import exercises  # noqa: E402

exercises.check_weighted_bce_threshold(weighted_bce_threshold)

# %% [markdown]
# ## References
#
# * M. van Beers, A. Lindström, E. Okafor and M. A. Wiering. Deep Neural Networks with Intersection over
#   Union Loss for Binary Image Segmentation. *ICPRAM 2019*, pp. 438-445, SciTePress, 2019.
# * M. A. Rahman and Y. Wang. Optimizing Intersection-over-Union in Deep Neural Networks for Image
#   Segmentation. *ISVC 2016*, LNCS 10072, pp. 234-244, Springer, 2016. doi:10.1007/978-3-319-50835-1_22
# * Z. Wang, M. Berman, A. Rannen-Triki, P. H. S. Torr, D. Tuia, T. Tuytelaars, L. Van Gool, J. Yu and
#   M. B. Blaschko. Revisiting Evaluation Metrics for Semantic Segmentation: Optimization and Evaluation of
#   Fine-grained Intersection over Union. *NeurIPS 2023, Datasets and Benchmarks*. arXiv:2310.19252
# * T. Eelbode et al. Optimization for Medical Image Segmentation: Theory and Practice When Evaluating With
#   Dice Score or Jaccard Index. *IEEE Transactions on Medical Imaging* 39(11), 2020. arXiv:2010.13499
