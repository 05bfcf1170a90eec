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
# # 05 · Soft labels and the Jaccard metric loss
#
# Label smoothing, knowledge distillation and semi-supervised pseudo-labels all train against **soft**
# targets $y_v \in [0, 1]$. The soft IoU was derived for $y \in \{0, 1\}$; with soft targets it has a
# flaw that Wang, Ning & Blaschko (NeurIPS 2023) fix with the **Jaccard metric loss** (JML).
#
# **You will learn to**
#
# 1. show that the soft Jaccard loss is *not* minimised at $p = y$ when $y$ is soft;
# 2. write the JML, check that it is minimised (at 0) exactly at $p = y$, and that it equals the soft
#    Jaccard loss on hard labels;
# 3. derive the JML from $|A \cap B| = \tfrac12(|A| + |B| - |A \triangle B|)$ and check that it is a *metric*;
# 4. see what each loss does to predictions trained against label-smoothed targets, with free logits and
#    with a small network.

# %%
import pandas as pd
import torch

from iou_lib import exercises, relax, viz
from iou_lib.config import get_profile
from iou_lib.data.synthetic import blob_masks
from iou_lib.losses import functional
from iou_lib.soft_labels import train_on_smoothed

soft_iou, jaccard_metric = functional("soft_iou"), functional("jaccard_metric")


def soft_jaccard(p, y):
    """The soft IoU loss 1 - sum(py) / sum(p + y - py) on probabilities, any targets in [0, 1]."""
    return 1 - relax.soft_intersection(p.flatten(), y.flatten()) / relax.soft_union(p.flatten(), y.flatten())


# %% [markdown]
# ## 1. The soft Jaccard loss with a soft target
#
# Take a target $y_v = 0.5$ on every pixel and a prediction $p_v = x$ on every pixel. The soft Jaccard
# loss is
#
# $$L(x) = 1 - \frac{\sum_v x \cdot 0.5}{\sum_v (x + 0.5 - 0.5x)} = 1 - \frac{0.5x}{0.5x + 0.5} = \frac{1}{1 + x},$$
#
# which *decreases* all the way to $x = 1$: at $x = y = 0.5$ it is $2/3$, at $x = 1$ it is $1/2$. The
# loss pushes the prediction to the extreme instead of matching the target. The cause is the product
# $p \cdot y$: it measures agreement on a hard label but not on a soft one.
#
# **Deriving the Jaccard metric loss.** Write the set operations without a product. The symmetric
# difference $A \triangle B$ holds the elements in exactly one of the sets, so $|A \triangle B| = |A| + |B| -
# 2|A \cap B|$, and
#
# $$|A \cap B| = \tfrac12\bigl(|A| + |B| - |A \triangle B|\bigr), \qquad
# |A \cup B| = |A| + |B| - |A \cap B| = \tfrac12\bigl(|A| + |B| + |A \triangle B|\bigr).$$
#
# With indicator vectors, $|A| = \|a\|_1$ and $|A \triangle B| = \|a - b\|_1$ ($|a_v - b_v|$ is 1 exactly where
# they differ). These L1 forms, unlike $\sum a b$, keep their meaning for values in $[0, 1]$. Relax them:
#
# $$I = \tfrac12\bigl(\|p\|_1 + \|y\|_1 - \|p - y\|_1\bigr), \quad U = \tfrac12\bigl(\|p\|_1 + \|y\|_1 + \|p - y\|_1\bigr),
# \quad L_{\mathrm{JML}}(p, y) = 1 - \frac{I}{U} = 1 - \frac{\|p\|_1 + \|y\|_1 - \|p - y\|_1}{\|p\|_1 + \|y\|_1 + \|p - y\|_1}.$$
#
# Per pixel, $\tfrac12(a + b - |a - b|) = \min(a, b)$ and $\tfrac12(a + b + |a - b|) = \max(a, b)$, so
# $I = \sum_v \min(p_v, y_v)$, $U = \sum_v \max(p_v, y_v)$ and $L_{\mathrm{JML}} = 1 - \sum \min / \sum \max$, the
# *weighted* Jaccard distance. It is 0 if and only if $\min = \max$ at every pixel, i.e. $p = y$. For hard
# labels $\|p - y\|_1 = \sum p + \sum y - 2\sum p y$, so $I = \sum p y$ and the JML *is* the soft Jaccard loss.
# Each step, checked:

# %%
g = torch.Generator().manual_seed(0)
a_set, b_set = (torch.rand(50, generator=g) < 0.4 for _ in range(2))  # two sets as indicator vectors
a_v, b_v = a_set.double(), b_set.double()
assert (a_set & b_set).sum() == 0.5 * (a_v.sum() + b_v.sum() - (a_v - b_v).abs().sum())  # |A n B|
assert (a_set | b_set).sum() == 0.5 * (a_v.sum() + b_v.sum() + (a_v - b_v).abs().sum())  # |A u B|
p_s, y_s = (torch.rand(2, 1, 8, 8, generator=g, dtype=torch.float64) for _ in range(2))  # soft values
l1_inter = 0.5 * (p_s.sum() + y_s.sum() - (p_s - y_s).abs().sum())
l1_union = 0.5 * (p_s.sum() + y_s.sum() + (p_s - y_s).abs().sum())
assert torch.isclose(l1_inter, torch.minimum(p_s, y_s).sum()) and torch.isclose(l1_union, torch.maximum(p_s, y_s).sum())
assert torch.isclose(jaccard_metric(torch.logit(p_s), y_s), 1 - l1_inter / l1_union)  # the library is this
y_hard = (y_s > 0.5).double()
assert torch.isclose(jaccard_metric(torch.logit(p_s), y_hard), soft_iou(torch.logit(p_s), y_hard))  # hard: equal
print(f"I = sum min = {l1_inter:.4f}, U = sum max = {l1_union:.4f}, JML = {1 - l1_inter / l1_union:.4f}")

# %% [markdown]
# Both losses as functions of $x$, for two soft targets:

# %%
rows = []
for target_value in (0.5, 0.2):
    y = torch.full((1, 1, 8, 8), target_value, dtype=torch.float64)
    for x in torch.linspace(0.02, 0.98, 49, dtype=torch.float64):
        p = torch.full_like(y, x.item())
        rows.append({"target y": target_value, "prediction x": x.item(), "loss": "soft Jaccard",
                     "value": soft_jaccard(p, y).item()})
        rows.append({"target y": target_value, "prediction x": x.item(), "loss": "Jaccard metric (JML)",
                     "value": jaccard_metric(torch.logit(p), y).item()})
curves = pd.DataFrame(rows)
viz.line_plot(curves, "prediction x", "value", hue="loss", col="target y", ylabel="loss")

# %%
for name, grp in curves.groupby(["target y", "loss"]):
    best = grp.loc[grp["value"].idxmin(), "prediction x"]
    print(f"y = {name[0]}, {name[1]:22s}: minimised at x = {best:.2f}")
half = curves[curves["target y"] == 0.5]
sj = half[half["loss"] == "soft Jaccard"].set_index("prediction x")["value"]
assert sj.idxmin() > 0.95 and abs(sj.loc[0.5] - 2 / 3) < 1e-9  # pushed to the extreme; 2/3 at x = y
jml = half[half["loss"] != "soft Jaccard"].set_index("prediction x")["value"]
assert abs(jml.idxmin() - 0.5) < 1e-9 and jml.min() < 1e-9  # minimised, at 0, where x = y

# %% [markdown]
# ## 2. What "metric" means
#
# A **metric** (a distance) $d$ on a set satisfies, for all $x, y, z$:
#
# 1. $d(x, y) \ge 0$, and $d(x, y) = 0$ exactly when $x = y$ (*identity of indiscernibles*);
# 2. $d(x, y) = d(y, x)$ (*symmetry*);
# 3. $d(x, z) \le d(x, y) + d(y, z)$ (*triangle inequality*).
#
# $d(p, y) = 1 - \sum \min(p, y)/\sum \max(p, y)$ on $[0, 1]^n$ (with $d(0, 0) = 0$) is one: it is the weighted
# Jaccard (Soergel) distance, a metric on non-negative vectors; Wang, Ning & Blaschko name their losses
# after this property. For a loss it matters: property 1 says the only prediction with loss 0 is the
# target itself, and the triangle inequality says that a prediction close to a teacher that is close to
# the truth is close to the truth. The soft Jaccard loss fails property 1 as soon as the target is soft: its value
# at $p = y$ is not 0. Checked on random soft vectors (some entries exactly 0 or 1):

# %%
def jml_distance(x, y):
    """1 - sum min / sum max along the last dimension (0 where both vectors are 0)."""
    hi = torch.maximum(x, y).sum(-1)
    return torch.where(hi > 0, 1 - torch.minimum(x, y).sum(-1) / hi.clamp_min(1e-300), 0.0)


def soft_jaccard_distance(x, y):
    return 1 - (x * y).sum(-1) / (x + y - x * y).sum(-1)


vecs = torch.rand(3, 20_000, 6, generator=g, dtype=torch.float64)
vecs = torch.where(torch.rand(vecs.shape, generator=g, dtype=torch.float64) < 0.2, vecs.round(), vecs)
x_m, y_m, z_m = vecs
d_xy, d_yz, d_xz = jml_distance(x_m, y_m), jml_distance(y_m, z_m), jml_distance(x_m, z_m)
assert (d_xy >= 0).all() and (d_xy > 0)[(x_m != y_m).any(-1)].all()  # positive for every distinct pair
assert (jml_distance(x_m, x_m) == 0).all()  # ... and 0 on equal ones
assert torch.equal(d_xy, jml_distance(y_m, x_m))  # symmetric
slack = (d_xy + d_yz - d_xz).min().item()
assert slack >= -1e-12  # triangle inequality on all 20,000 triples
self_soft = soft_jaccard_distance(x_m, x_m)
assert (self_soft > 0).double().mean() > 0.99  # soft Jaccard: d(x, x) > 0 for soft x, not a metric
print(f"JML: triangle inequality on 20,000 triples (smallest slack {slack:.2e}); d(x, x) = 0.\n"
      f"soft Jaccard: d(x, x) > 0 for {(self_soft > 0).double().mean():.1%} of the vectors "
      f"(median {self_soft.median():.3f})")

# %% [markdown]
# ## 3. Training against label-smoothed masks
#
# Label smoothing replaces a hard mask $y$ by $(1 - \varepsilon)\,y + \varepsilon/2$. Fit free per-pixel
# logits to smoothed blob masks ($\varepsilon = 0.2$, so targets 0.1 and 0.9) with each loss, by plain
# gradient descent with Adam (no network, so we see the loss alone):

# %%
hard = blob_masks(4, 32, 0.2, seed=0).double()
smoothed = 0.8 * hard + 0.1


def fit(loss_fn, steps=300):
    z = torch.zeros_like(hard, requires_grad=True)
    opt = torch.optim.Adam([z], lr=0.1)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(z).backward()
        opt.step()
    return torch.sigmoid(z.detach())


fitted = {"soft Jaccard": fit(lambda z: soft_jaccard(torch.sigmoid(z), smoothed)),
          "Jaccard metric (JML)": fit(lambda z: jaccard_metric(z, smoothed))}
summary = pd.DataFrame({name: {"mean p on foreground (target 0.9)": p[hard > 0].mean().item(),
                               "mean p on background (target 0.1)": p[hard == 0].mean().item(),
                               "mean |p - y|": (p - smoothed).abs().mean().item()}
                        for name, p in fitted.items()}).T
assert summary.loc["Jaccard metric (JML)", "mean |p - y|"] < 0.02
assert summary.loc["soft Jaccard", "mean |p - y|"] > 0.05
summary.round(3)

# %% [markdown]
# The JML fits the smoothed targets; the soft Jaccard loss ignores the smoothing and drives the
# probabilities towards 0 and 1, which is what label smoothing was meant to prevent (over-confident,
# badly calibrated outputs). With distillation targets the same happens to the teacher's uncertainty.

# %%
viz.probability_histograms(fitted, hard, marks={"target 0.1": 0.1, "target 0.9": 0.9})

# %% [markdown]
# **Explore.** Move the smoothing $\varepsilon$ and the foreground fraction. The explorer evaluates both
# losses for every prediction that puts one probability on all foreground pixels and another on all
# background pixels, marks each loss's minimiser (white cross) and the target $p = y$ (red circle), and
# prints the values there. For which $\varepsilon$ does the soft Jaccard loss's minimiser coincide with
# the target? Does the foreground fraction move the JML's minimiser?
#
# *Run the cells above to start the explorer* (a static copy of this page shows a picture of it).

# %%
# NBVAL_IGNORE_OUTPUT
from iou_lib.widgets import SoftLabelExplorer

SoftLabelExplorer()

# %% [markdown]
# ## 4. A network trained on smoothed masks
#
# Free logits show what each loss wants; does it matter for a network, on the measure a segmentation is
# judged by, the IoU against the *true* masks? Where the soft Jaccard loss pushes follows from its
# gradient with soft targets, $\partial L/\partial p_v = -\bigl(U y_v - I(1 - y_v)\bigr)/U^2$: a pixel is pushed up
# exactly when $y_v > I/(U + I) = J/(1 + J)$. With $\varepsilon = 0.2$ the object's target 0.9 is always
# pushed to 1; the background's 0.1 is pushed *up* while $J < 1/9$, then down to 0. So once training is
# past its start, the soft Jaccard loss trains on the *hard* mask, ignoring the smoothing, and its IoU at
# 0.5 should be no worse for it; the difference should show in the probabilities, not the masks. The JML
# aims at 0.1 and 0.9. `iou_lib.soft_labels.train_on_smoothed` trains a small U-Net (the same data,
# initialisation and batches for both losses) and scores it on hard test masks:

# %%
STEPS = 80 if get_profile().name == "fast" else 400
runs = pd.DataFrame([train_on_smoothed(loss, eps=0.2, steps=STEPS, seed=0)
                     for loss in ("soft_jaccard", "jaccard_metric")]).set_index("loss")
assert runs["iou"].between(0, 1).all() and runs["p_bg"].between(0, 1).all()
sj_run, jml_run = runs.loc["soft_jaccard"], runs.loc["jaccard_metric"]
print(f"LIVE, {get_profile().name} profile: {STEPS} Adam steps, one seed, 32 px, 10 % foreground, eps = 0.2.")
print(f"IoU at 0.5 on the hard test masks: soft Jaccard {sj_run['iou']:.3f}, JML {jml_run['iou']:.3f}; "
      f"mean p on the background (target 0.1): {sj_run['p_bg']:.3f} vs {jml_run['p_bg']:.3f}; "
      f"on the objects (target 0.9): {sj_run['p_fg']:.3f} vs {jml_run['p_fg']:.3f}.")
runs.round(3)

# %% [markdown]
# Read it as a demonstration, not a result: one seed and a short budget, so an IoU difference of a few
# points is within the seed-to-seed spread that notebook 06 measures. The mechanism above predicts equal
# masks at convergence and different probabilities; the JML paper (Wang, Ning & Blaschko) reports
# consistent gains with soft labels (label smoothing, distillation) and its loss at full scale. A larger profile
# (`IOU_PROFILE=cpu`: 400 steps) gets closer to convergence; repeat with `seed=1, 2` for a paired
# comparison (`iou_lib.stats.paired_interval`).

# %% [markdown]
# ## 5. Nothing changes for hard labels
#
# On {0, 1} targets the JML and the soft IoU are the same loss, value and gradient, so switching to the JML
# costs nothing when labels are hard:

# %%
z = torch.randn(4, 1, 32, 32, dtype=torch.float64)
assert torch.isclose(jaccard_metric(z, hard), soft_iou(z, hard))
zg1, zg2 = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
jaccard_metric(zg1, hard).backward()
soft_iou(zg2, hard).backward()
assert torch.allclose(zg1.grad, zg2.grad)
print(f"hard labels: JML {jaccard_metric(z, hard):.6f} = soft IoU {soft_iou(z, hard):.6f}, gradients equal")

# %% [markdown]
# ## Summary
#
# * With soft targets the soft Jaccard loss is not minimised at $p = y$ (at $y = 0.5$ it prefers $p = 1$).
# * The Jaccard metric loss $1 - (\|p\|_1 + \|y\|_1 - \|p-y\|_1)/(\|p\|_1 + \|y\|_1 + \|p-y\|_1)$ is 0 exactly
#   at $p = y$, fits label-smoothed targets, and equals the soft IoU on hard labels.
# * It comes from $|A \cap B| = \tfrac12(|A| + |B| - |A \triangle B|)$ with L1 norms: $1 - \sum\min(p, y)/\sum\max(p, y)$,
#   a metric (identity, symmetry, triangle inequality), which the soft Jaccard loss is not on soft targets.
# * With smoothed targets the soft Jaccard loss trains on the hard mask (a pixel goes up when
#   $y_v > J/(1 + J)$); the JML keeps the smoothing.
# * Use `jaccard_metric` whenever targets can be soft (label smoothing, distillation, pseudo-labels).

# %% [markdown]
# ## Exercise
#
# Write `my_jml(x, y)` for probabilities `x` and soft labels `y` (both `(B, 1, H, W)` in [0, 1]), pooled
# over the batch, returning a 0-dim tensor.

# %% tags=["exercise"]
def my_jml(x, y):
    # your code here
    raise NotImplementedError


# %% jupyter={"source_hidden": true} tags=["solution"]
def my_jml(x, y):
    sx, sy, diff = x.sum(), y.sum(), (x - y).abs().sum()
    return 1 - (sx + sy - diff) / (sx + sy + diff)


# %%
exercises.check_jaccard_metric(my_jml)

# %% [markdown]
# ## References
#
# * Z. Wang, X. Ning and M. B. Blaschko. Jaccard Metric Losses: Optimizing the Jaccard Index with Soft
#   Labels. *NeurIPS 2023*. arXiv:2302.05666
# * M. A. Rahman and Y. Wang. Optimizing Intersection-over-Union in Deep Neural Networks for Image
#   Segmentation. *ISVC 2016*, LNCS 10072, pp. 234-244, Springer, 2016. doi:10.1007/978-3-319-50835-1_22
