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
# # 06 · Training with different losses
#
# Notebooks 02-05 looked at what each loss *sends* to the pixels. Here we train: one small U-Net per loss
# on the same imbalanced synthetic task (a small foreground fraction `FG`), everything else equal, and
# compare the test IoU.
#
# **You will learn to**
#
# 1. run a fair loss comparison with `iou_lib.train.fit` (same data, initialisation and batch order for
#    every loss: all of them come from the seed);
# 2. read learning curves, and why a training-loss curve cannot rank losses;
# 3. evaluate at the fixed threshold 0.5 *and* at a threshold tuned on validation data, and see that the
#    gap between the two is itself a finding about a loss;
# 4. judge a difference by its confidence interval over seeds and by paired differences, against BCE *and*
#    against class-weighted BCE, the honest competitor of an IoU loss;
# 5. check calibration (a reliability diagram) and diagnose a run that collapsed (the Lovász hinge from
#    scratch).
#
# Experiments E2 (core comparison), E3 (from scratch vs fine-tuning, and the CE+IoU mix) and E6 (surrogate
# shoot-out) of the list in notebook 00.
#
# **Two kinds of results.** Cells marked **LIVE** train now, at the size of the run profile
# (`IOU_PROFILE`); in the `fast` profile (CI) they are deliberately tiny, so their numbers are noisy and
# only show that the pipeline works. Cells marked **STORED** show the precomputed results of the same
# experiment at a larger size and with several seeds, from `data/results/`, with their provenance. Every
# sentence about the stored results below is *generated* from the stored tables (`iou_lib.findings`): a
# sentence says "A beats B" only when the 95 % interval of the paired difference excludes 0.

# %%
import dataclasses

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import display

from iou_lib import budget, findings, losses, reporting
from iou_lib.config import get_profile
from iou_lib.data import load_splits
from iou_lib.train import DataSpec, TrainConfig, fit

profile = get_profile()
FG = 0.02  # foreground fraction of the task
# Live sizes: the profile's own, except in the fast profile (CI), where they are shrunk further so that the
# eight runs below take a minute or two on two CPU cores.
LIVE = {"image_size": 48, "n_train": 128, "n_val": 32} if profile.name == "fast" else {}
STEPS = profile.steps  # optimizer steps per run (warm-up, then cosine decay of the learning rate)
data = DataSpec.from_profile(profile, fg_frac=FG, **LIVE)
base = TrainConfig.from_profile(profile, data=data, steps=STEPS, progress=False)
LABEL = f"LIVE, {profile.name} profile: {data.image_size} px, {data.n_train} training images, {STEPS} steps, seed 0"
print(LABEL)

# %% [markdown]
# ## 1. The task
#
# Each image holds a few striped foreground objects and, as distractors, shapes of the same colour and
# brightness with a speckled texture; a fraction `FG` of the pixels is foreground. An all-background
# prediction is right on every background pixel and has IoU 0 (experiment E1): the cell prints its accuracy.
# Train, validation and test sets are generated independently from the seed.

# %%
train_set, val_set, test_set = load_splits(data, seed=0)
x_show, y_show = test_set.batch(torch.arange(4))
fg_test = test_set.foreground_fraction()
print(f"test foreground fraction: {fg_test:.2%}; all-background prediction: accuracy {1 - fg_test:.2%}, IoU 0")
reporting.predictions_side_by_side(x_show, y_show, {})

# %% [markdown]
# ## 2. The losses
#
# Every loss is a registry name or a spec of `iou_lib.losses.parse` / `iou_lib.train.parse_schedule`:
#
# | spec | what it is |
# |---|---|
# | `bce` | binary cross-entropy, every pixel weighs the same |
# | `weighted_bce` | BCE with positives weighted by (#negatives / #positives) of the batch |
# | `focal` | focal loss, $\gamma = 2$: down-weights pixels that are already right |
# | `soft_iou` | Rahman & Wang's soft IoU, pooled over the batch (targets the dataset IoU) |
# | `soft_dice` | soft Dice $1 - 2\sum py / (\sum p + \sum y)$ (plain sums, not V-Net's squares; notebook 02) |
# | `lovasz_hinge` | Lovász hinge, the convex (Lovász) extension of the IoU loss, from scratch |
# | `bce:k,lovasz_hinge` | a **schedule**: BCE for the first k optimizer steps (a quarter), then the Lovász hinge, as its authors advise |
# | `0.25*bce+0.75*soft_iou` | a **mix**, the weighting the JDTLosses FAQ recommends |
#
# Every run validates at least ten times and keeps the weights with the best validation IoU; the test
# metrics are measured at those weights.

# %%
WARMUP = STEPS // 4
LOSSES = ["bce", "weighted_bce", "focal", "soft_iou", "soft_dice", "lovasz_hinge", f"bce:{WARMUP},lovasz_hinge",
          "0.25*bce+0.75*soft_iou"]
RUN_LONG = False  # True: train here even when the estimate printed below is longer than 15 minutes
configs = [dataclasses.replace(base, loss=spec) for spec in LOSSES]
live_runs = {cfg.loss: fit(cfg) for cfg in budget.track(configs, confirmed=RUN_LONG)}
live = pd.concat([r.table() for r in live_runs.values()], ignore_index=True)
COLUMNS = {"miou_d": "IoU @ 0.5", "miou_d@val_thr": "IoU @ tuned threshold", "threshold@val": "tuned threshold",
           "ap": "average precision"}
print(LABEL)
reporting.results_table(live, COLUMNS)

# %% [markdown]
# `IoU @ 0.5` is the test-set (dataset) IoU of the predictions $\sigma(z) > 0.5$. `IoU @ tuned threshold`
# uses the threshold that maximised the *validation* IoU (a grid of 401 thresholds from p = 0.001 to
# p = 0.999), applied to the test set: the honest version of "best threshold", since the test set never
# chooses it. Average precision (area under the precision-recall curve) needs no threshold at all: it
# measures how well the loss *ranks* pixels.

# %%
reporting.learning_curves(live, title=LABEL)

# %% [markdown]
# The left panel is each run's own training loss: the losses live on different scales, so only the shape
# of each curve means something (is it still falling?). The right panel is comparable across runs: the
# validation IoU at 0.5 at each evaluation. In the fast profile the runs are far too short to converge.
#
# Predictions of every live model on the same four test images (green TP, red FP, blue FN):

# %%
with torch.no_grad():
    probs = {spec: torch.sigmoid(r.model(x_show))[:, 0] for spec, r in live_runs.items()}
reporting.predictions_side_by_side(x_show, y_show, probs)

# %% [markdown]
# ### Calibration: do the probabilities mean what they say?
#
# A model is *calibrated* when, of the pixels it gives probability 0.8, about 80 % are foreground. The
# reliability diagram bins the test pixels by predicted probability and plots the observed foreground
# frequency of each bin against its mean probability; the expected calibration error (ECE) is the
# pixel-weighted mean gap. BCE is a proper scoring rule: it is minimised by the true probability, so it
# tends to be calibrated. Weighted BCE multiplies the positives' weight by $w = (1 - f)/f$ at foreground
# fraction $f$, so its probabilities are pushed up (its best threshold sits near $w/(1+w)$; the cell prints
# both for this task). Soft IoU rewards confident, nearly binary outputs and has no reason to be calibrated
# at all.

# %%
w = (1 - FG) / FG
print(f"weighted BCE at {FG:.0%} foreground: w = {w:.0f}, threshold matching 0.5 of BCE w/(1+w) = {w / (1 + w):.3f}")
x_test, y_test = test_set.batch(torch.arange(len(test_set)))
with torch.no_grad():
    test_probs = {spec: torch.sigmoid(live_runs[spec].model(x_test))[:, 0]
                  for spec in ("bce", "weighted_bce", "soft_iou")}
reporting.reliability_diagram(test_probs, y_test, title=f"{LABEL}: reliability on the test set")

# %% [markdown]
# ### Diagnosing a collapsed run: the Lovász hinge from scratch
#
# The Lovász hinge works on margins $m_i = 1 - z_i y_i^{\pm}$ (with $y^{\pm} = \pm 1$). At a *constant*
# logit $z = 0$ every margin is 1, and the loss equals the Lovász extension of the IoU loss at an all-ones
# error vector, which is exactly 1 for any image with foreground. If training cannot leave that point, the
# loss stays near 1, every logit stays near 0 and every probability near 0.5: a *collapsed* run. The engine
# flags it in the run summary (`collapsed`, with a hint). Compare with the same loss after a BCE warm-up.

# %%
x_tr, y_tr = train_set.batch(torch.arange(base.batch_size))
constant = losses.get("lovasz_hinge")(torch.zeros(y_tr.shape), y_tr.float()).item()
fig, (ax_loss, ax_hist) = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
for spec in ("lovasz_hinge", f"bce:{WARMUP},lovasz_hinge"):
    run = live_runs[spec]
    t = run.table()
    curve = t[(t["split"] == "train") & (t["metric"] == "loss")]
    ax_loss.plot(curve["step"], curve["value"], marker="o", ms=3, label=spec)
    with torch.no_grad():
        logits = run.model(x_test)[:, 0].flatten()
    ax_hist.hist(logits.clamp(-15, 15).numpy(), bins=60, alpha=0.6, label=spec, log=True)
    print(f"{spec:28s} collapsed: {run.summary.get('collapsed')}  hint: {run.summary.get('collapse_hint')}")
ax_loss.axhline(constant, ls="--", c="grey", label=f"constant logit z = 0: {constant:.2f}")
ax_loss.set(xlabel="optimizer step", ylabel="training loss (BCE during the warm-up)", title="training loss")
ax_loss.legend(fontsize=8)
ax_hist.set(xlabel="test logit (clipped to [-15, 15])", ylabel="pixels (log scale)", title="test logits")
ax_hist.legend(fontsize=8)
plt.close(fig)
fig

# %% [markdown]
# ## 3. Stored results: the same comparison, larger and with several seeds
#
# The live numbers above come from one seed and a tiny budget. The stored runs come from
# `tools/make_results.py`: the **converged grid** (learning rate chosen per loss on validation, warm-up +
# cosine schedule, best-validation weights, five seeds) once it is stored, otherwise the **first, reduced
# grid** (three seeds, 144 constant-rate steps, learning curves still rising), labelled as such. The
# provenance says which. Intervals are 95 % Student-t intervals, clipped to [0, 1] for IoU. The grid's
# Tversky loss weighs false negatives more than false positives ($\alpha = 0.3$, $\beta = 0.7$, the
# setting Salehi et al. found best for small structures); at the library's default
# $\alpha = \beta = 0.5$ it would be soft Dice again.

# %%
source = findings.synthetic_source("cpu")
print(f"STORED, {source.label}")
print(reporting.provenance_text(source.prov))
SETTING = 0.02 if source.kind == "first" else 0.01  # the first grid compared all losses at 2 % only
if source.kind == "grid":  # the learning-rate search: validation IoU (tuned threshold) per loss and rate
    lr_table, lr_text = findings.lr_choices(reporting.stored_study("lr", "cpu")[0])
    print(lr_text)
    display(lr_table)
plain = source.table[source.table["fg_frac"] == SETTING]
ORDER = list(dict.fromkeys(plain["loss"]))
print(f"STORED: foreground fraction {SETTING:.0%}, {plain['run'].nunique()} runs")
reporting.results_table(plain, COLUMNS)

# %%
reporting.mean_ci_plot(plain, "miou_d", title=f"STORED: test IoU at 0.5, fg {SETTING:.0%} (dots = seeds)")

# %%
reporting.mean_ci_plot(plain, "miou_d@val_thr", title=f"STORED: test IoU at the validation-tuned threshold, "
                       f"fg {SETTING:.0%}")

# %% [markdown]
# Paired differences: for each seed, a loss's IoU minus the baseline's IoU on the same data,
# initialisation and batch order. The seed-to-seed variation that both runs share cancels, so this is the
# sharper test. Two baselines: plain BCE, and class-weighted BCE, which at a tuned threshold is the honest
# competitor of an IoU loss. Secondary contrasts are many, so their p-values are Holm-corrected.

# %%
contrasts = findings.contrasts(plain, baselines=("bce", "weighted_bce"))
shown = contrasts.assign(**{c: (contrasts[c] * 100).round(1) for c in ("mean", "low", "high")})
display(shown[["loss", "baseline", "metric", "n", "mean", "low", "high", "p_holm"]]
        .rename(columns={"mean": "difference (points)", "low": "95 % low", "high": "95 % high"}))

# %%
for baseline in ("bce", "weighted_bce"):
    diffs = reporting.paired_differences(plain, "miou_d", baseline=baseline, by=())
    display(reporting.paired_difference_plot(diffs, x="loss", hue=None, baseline=baseline,
                                             title=f"STORED: paired differences to {baseline} at 0.5, "
                                             f"fg {SETTING:.0%}"))

# %%
reporting.learning_curves(plain, title=f"STORED: learning curves, fg {SETTING:.0%} (band: range over seeds)")

# %% [markdown]
# Have the curves plateaued? For each run, the change of the validation IoU between the last 20 % of its
# evaluations and the 20 % before; a loss passes when the mean change is below 0.02 (a curve stuck at 0
# passes too: read it with the curves above).

# %%
display(reporting.convergence(plain))
print(findings.convergence_sentence(plain))

# %%
reporting.threshold_curves(plain, title=f"STORED: test IoU against the decision threshold, fg {SETTING:.0%}")

# %% [markdown]
# **Which stored runs collapsed?** The engine flags a run whose test predictions are near constant (see the
# live diagnosis above); such a run is not a score, and the sentences below say so wherever one is involved.

# %%
flagged = findings.collapsed_runs(plain)
print("STORED: runs flagged as collapsed, per loss:", {k: int(n) for k, n in flagged.items() if n > 0} or "none")

# %% [markdown]
# ### Calibration of the stored runs at 1 % foreground
#
# The `calibration` study of `tools/make_results.py` trains BCE, weighted BCE and soft IoU again at 1 %
# foreground (five seeds, each loss at its chosen learning rate) and records the reliability diagram of
# every run's test predictions, read from the same histograms as the threshold curves: ten probability
# bins, a bin's mean confidence and observed foreground frequency pooled over the seeds. The legend gives
# each loss's expected calibration error with its 95 % interval over seeds; the sentences compare paired
# seeds (lower ECE is better).
#
# These runs repeat configurations of the imbalance study, trained again by a later version of the engine
# (its models now run channels_last, which changes nothing but float rounding). How far the two trainings
# of one seed land apart shows how much of a single run's score is the luck of rounding: the last lines.

# %%
calib, calib_prov = reporting.stored_study("calibration", "cpu")
if calib.empty:
    print("STORED: no calibration runs yet; python tools/make_results.py --only calibration stores them")
else:
    print(reporting.provenance_text(calib_prov))
    display(reporting.results_table(calib, {**COLUMNS, "ece": "ECE"}))
    display(reporting.stored_reliability(calib, title="STORED: reliability on the test set, fg 1 %"))
    for sentence in findings.contrasts(calib, baselines=("bce", "weighted_bce"), metrics=("ece",))["sentence"]:
        print("-", sentence)
    first = pd.concat([reporting.stored_study(s, "cpu")[0] for s in ("primary", "imbalance")], ignore_index=True)
    print("\nThe same seeds trained twice (test IoU at 0.5):")
    for sentence in findings.rerun_agreement(calib, first[first["fg_frac"] == 0.01])[1]:
        print("-", sentence)

# %% [markdown]
# **Browse the stored runs.** Pick the foreground fraction (or a study's setting), the losses, the metric
# (IoU at 0.5, at the validation-tuned threshold, or average precision when the table has it) and the
# reference loss; switch between per-seed points with means and 95 % intervals, paired differences to the
# reference, and validation learning curves. It reads the stored table of this section (every loss and
# fraction of the grid stored so far) only: no training.
#
# *Run the cells above to start the explorer* (a static copy of this page shows a picture of it).

# %%
# NBVAL_IGNORE_OUTPUT
from iou_lib.widgets import ResultsBrowser

ResultsBrowser(source.table, group=SETTING)

# %% [markdown]
# ## 4. What the stored results say
#
# Generated from the stored tables: each line is a paired 95 % interval turned into words, and it names a
# winner only when the interval excludes 0 (uncorrected; the Holm-corrected p-values are in the table above).

# %%
print(f"STORED, {source.label}\n")
print(findings.primary_sentence(source.table) + "\n")
for sentence in contrasts["sentence"]:
    print("-", sentence)

# %% [markdown]
# ## Summary
#
# * A fair comparison fixes everything but the loss; the seed fixes data, initialisation and batch order,
#   which makes paired differences possible.
# * Judge losses by the metric you care about (here the test IoU), never by their training-loss values.
# * Report IoU at 0.5, at a threshold tuned on validation data, and average precision: the first is what
#   a user of the model gets by default, the others how well the loss *ranks* pixels. A gap between them is
#   a calibration finding (see the reliability diagram).
# * Compare against weighted BCE as well as BCE, with paired intervals; claim a winner only when the
#   interval excludes 0.
# * A run whose loss sits at its constant-logit value has collapsed: name it, do not report it as a score.
#
# ## Exercises
#
# 1. Re-run the live comparison at `FG = 0.2`. Which gaps shrink? (Notebook 07 does this systematically.)
# 2. Change the warm-up to `bce:{STEPS // 8},lovasz_hinge` and `bce:{STEPS // 2},lovasz_hinge`. Does the
#    length of the BCE phase matter? Does the collapse flag change?
# 3. Try the mix `0.5*bce+0.5*soft_dice` and `0.5*focal+0.5*lovasz_hinge` (any registry names combine).
# 4. Command line: `python -m iou_lib sweep --losses bce soft_iou --fg-fracs 0.02 --seeds 0 1 2 --out
#    runs/mine`, then `reporting.results_table(iou_lib.experiments.load_results("runs/mine"), COLUMNS)`.

# %% [markdown]
# **Exercise 5 (checked).** Compute a paired interval yourself. A table of one metric per seed for two
# losses trained on the same seeds, such as the stored test IoU at 0.5 of soft IoU and BCE printed below
# (the first seeds of the stored runs at the fraction of section 3), gives two arrays `a` and `b`. Write
# `my_paired_interval(a, b)` returning `(mean, low, high)`: the mean of the per-seed differences `a - b`
# and its 95 % Student-t interval. The check names the usual mistakes.

# %%
pairs = reporting.paired_differences(plain, baseline="bce")
pairs = pairs[pairs["loss"] == "soft_iou"].sort_values("seed").head(3)
display(pairs[["seed", "value", "baseline_value"]].rename(columns={"value": "soft IoU", "baseline_value": "BCE"}).round(2))

# %% tags=["exercise"]
def my_paired_interval(a, b):
    # your code here
    raise NotImplementedError


# %% jupyter={"source_hidden": true} tags=["solution"]
def my_paired_interval(a, b):
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)  # one difference per seed
    half = stats.student_t_quantile(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return d.mean(), d.mean() - half, d.mean() + half


# %%
import numpy as np  # noqa: E402

from iou_lib import exercises, stats  # noqa: E402

exercises.check_paired_interval(my_paired_interval)

# %% [markdown]
# ## References
#
# * M. A. Rahman and Y. Wang. Optimizing Intersection-over-Union in Deep Neural Networks for Image
#   Segmentation. *ISVC 2016*, LNCS 10072, pp. 234-244, Springer, 2016. doi:10.1007/978-3-319-50835-1_22
# * M. Berman, A. Rannen Triki and M. B. Blaschko. The Lovász-Softmax Loss: A Tractable Surrogate for the
#   Optimization of the Intersection-over-Union Measure in Neural Networks. *CVPR 2018*. arXiv:1705.08790
# * S. S. M. Salehi, D. Erdogmus and A. Gholipour. Tversky Loss Function for Image Segmentation Using 3D
#   Fully Convolutional Deep Networks. *MLMI 2017*, LNCS 10541. arXiv:1706.05721
# * F. Milletari, N. Navab and S.-A. Ahmadi. V-Net: Fully Convolutional Neural Networks for Volumetric
#   Medical Image Segmentation. *3DV 2016*. arXiv:1606.04797
# * T.-Y. Lin, P. Goyal, R. Girshick, K. He and P. Dollár. Focal Loss for Dense Object Detection.
#   *ICCV 2017*. arXiv:1708.02002
# * Z. Wang, X. Ning and M. B. Blaschko. Jaccard Metric Losses: Optimizing the Jaccard Index with Soft
#   Labels. *NeurIPS 2023*. arXiv:2302.05666; its code and FAQ (the 0.25 : 0.75 mix) are the JDTLosses
#   repository, github.com/zifuwanggg/JDTLosses.
# * T. Eelbode et al. Optimization for Medical Image Segmentation: Theory and Practice When Evaluating With
#   Dice Score or Jaccard Index. *IEEE Transactions on Medical Imaging* 39(11), 2020. arXiv:2010.13499
