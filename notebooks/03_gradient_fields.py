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
# # 03 · Gradient fields on imbalanced masks
#
# A loss is, for the optimiser, nothing but the gradient it sends to each logit. This notebook draws those
# gradients pixel by pixel, for every binary loss of the workbook, on masks with small and large objects
# at several foreground fractions and in several states of training. Then it lets you move the knobs.
#
# **You will learn to**
#
# 1. read a gradient field $-\partial L/\partial z_v$: where a loss pushes logits up (red) or down (blue);
# 2. predict, for BCE, weighted BCE, focal, soft IoU, soft Dice and the Lovász hinge, how the push is
#    split between foreground and background, and how the split changes with imbalance and with the
#    state of the prediction;
# 3. see what per-image and batch aggregation do to small objects and to empty images;
# 4. use the interactive explorer to test your own predictions.
#
# Prerequisites: notebook 02 (the soft IoU gradient and the balance argument).

# %%
import pandas as pd
import torch

from iou_lib import exercises, viz
from iou_lib.data.synthetic import blob_masks
from iou_lib.gradients import gradient_field, gradient_mass, mass_table, synthetic_logits
from iou_lib.widgets import EXPLORER_LOSSES, GradientExplorer

LOSSES = list(EXPLORER_LOSSES)  # bce, weighted_bce, focal, soft_iou, soft_dice, lovasz_hinge
LOSSES

# %% [markdown]
# ## 1. What each loss sends to a pixel
#
# With $p_v = \sigma(z_v)$, $N$ pixels, $|Y|$ of them foreground (all losses as `iou_lib` defines them,
# with their default options):
#
# | loss | $\partial L / \partial z_v$ | what sets the size of the push |
# |---|---|---|
# | `bce` | $(p_v - y_v)/N$ | the pixel's own error |
# | `weighted_bce` | $w_{y_v}(p_v - y_v)/N$, $w_1 = (N - \lvert Y\rvert)/\lvert Y\rvert$, $w_0 = 1$ | error, times a class weight counted in the batch |
# | `focal` ($\gamma=2$) | BCE's, times $(1 - p_t)^\gamma$ and a correction | error, strongly damped on well-classified pixels |
# | `soft_iou` | $-\sigma'(z_v)/U$ (fg), $I\sigma'(z_v)/U^2$ (bg) | the label and the global $I$, $U$ |
# | `soft_dice` | $-2(S-I)\sigma'/S^2$ (fg), $2I\sigma'/S^2$ (bg) | the label and the global $I$, $S$ |
# | `lovasz_hinge` | $\pm g_{\mathrm{rank}(v)}$ if the hinge error $1 - z_v(2y_v - 1) > 0$, else 0 | the pixel's *rank* among the errors |
#
# The per-pixel losses (first three) look at one pixel at a time; the region losses couple all pixels
# through $I$ and $U$; the Lovász hinge couples them through the sort of the errors (notebook 04).
#
# ## 2. Gradient fields
#
# Four masks (64 px, as in the `fast` profile): 1 % foreground in two large objects, 1 % in eight small
# ones, 10 % and 30 %. The prediction is synthetic (`synthetic_logits`): a logit margin `confidence`
# towards the right answer, a `bias` and Gaussian `noise`. Three states:
#
# * **uninformed**: margin 0, noise 1 (a network at initialisation);
# * **all background**: bias $-3$, noise 1 ($p \approx 0.05$ everywhere: the accuracy trap of notebook 01);
# * **good**: margin 2.5, noise 1 (late in training; $p \approx 0.92$ on the correct side).
#
# In each panel red means "raise this logit" (towards foreground) and blue "lower it"; the black line is
# the object outline; the title gives the image's share of the gradient mass that lands on foreground.
# One colour scale serves the whole figure (colorbar): each loss's field is drawn in units of its own mean
# push per pixel, because the losses' raw gradients differ in size by orders of magnitude.

# %%
masks = torch.cat([blob_masks(1, 64, f, n_objects=k, seed=s).double()
                   for f, k, s in [(0.01, 2, 1), (0.01, 8, 2), (0.1, 3, 3), (0.3, 2, 4)]])
labels = ["1 %, large", "1 %, small", "10 %", "30 %"]
STATES = {"uninformed": {"confidence": 0.0, "noise": 1.0},
          "all background": {"bias": -3.0, "noise": 1.0},
          "good": {"confidence": 2.5, "noise": 1.0}}


def fields(state):
    z = synthetic_logits(masks, seed=7, **STATES[state])
    grads = {name: gradient_field(name, z, masks) for name in LOSSES}
    fig = viz.gradient_fields(grads, masks, probs=torch.sigmoid(z), image_labels=labels)
    fig.suptitle(f"{state}: the four images form ONE batch (class weight, I and U pooled over 1 %, 1 %, "
                 "10 % and 30 % foreground)", fontsize=10)
    return z, grads, fig


z, grads, fig = fields("uninformed")
fig

# %% [markdown]
# **Uninformed.** BCE and focal paint the whole image blue: every background pixel asks to be lowered,
# and their foreground share equals the foreground fraction (1 % on the 1 % images): the background
# outvotes the object 99 to 1. Weighted BCE and the two region losses push each object pixel much harder
# than each background pixel (dark red on pale blue), about ten times the foreground fraction on the 1 %
# images. (These four images form one batch, so the class weight and $I$, $U$ are shared with the 10 % and
# 30 % images; section 3 measures the split at a single fraction, where it is about one half.) The Lovász
# hinge pushes a *subset*: the pixels whose errors rank highest.

# %%
z, grads, fig = fields("all background")
fig

# %% [markdown]
# **All background.** The background is already right ($p \approx 0.05$), yet BCE still spends most of its
# push there at 1 % foreground, because each of the many background pixels keeps a small error
# $p_v \approx 0.05$. Focal loss damps those easy pixels by $(1 - p_t)^2$ and moves its mass to the missed
# objects. The soft IoU and soft Dice push the objects up with a per-pixel strength $U/I$ times that of a
# background pixel; the Lovász hinge ignores the background completely (hinge errors
# $1 + z_v < 0$ are zero) and works only on the missed foreground.

# %%
z, grads, fig = fields("good")
fig

# %% [markdown]
# **Good.** Now $I/U$ is larger and the region losses' background push per pixel, $I/U^2$, grows towards
# the foreground push $1/U$: as the prediction improves, the soft IoU turns its attention to the
# remaining soft false positives, which at 1 % foreground are spread over a hundred times more pixels
# (2 % of its push lands on the objects of the 1 % images). Focal loss and the Lovász hinge concentrate
# on a few pixels: focal on the noisiest (hardest) ones, the hinge on those whose signed margin
# $z_v(2y_v - 1)$ is still below 1 (positive hinge error); the other pixels get little or nothing.
#
# ## 3. Foreground share of the push against imbalance
#
# The same measurement over a range of foreground fractions (4 images per point), as a tidy table from
# `mass_table`:

# %%
table = pd.concat([mass_table(LOSSES, [0.005, 0.01, 0.03, 0.1, 0.3, 0.5], size=64, n=4, seed=1, **kw)
                   .assign(state=state) for state, kw in STATES.items()])
viz.mass_plot(table, y="fg_share", col="state", ax_labels=("foreground fraction", "foreground share of |dL/dz|"))

# %%
share = table.pivot_table(index=["state", "fg_frac"], columns="loss", values="fg_share")
uninformed, trap = share.loc["uninformed"], share.loc["all background"]
# BCE's share is the foreground fraction when both sides are equally wrong; weighted BCE splits 50/50.
assert ((uninformed["bce"] - uninformed.index).abs() < 0.01).all()
assert ((uninformed["weighted_bce"] - 0.5).abs() < 0.02).all()
# The region losses give the foreground about half at any imbalance when the network is uninformed ...
assert uninformed["soft_iou"].loc[:0.1].between(0.5, 0.6).all()
# ... and in the accuracy trap at 1 % foreground the soft IoU pushes the objects, BCE the background.
assert trap.loc[0.01, "soft_iou"] > 0.5 > 0.2 > trap.loc[0.01, "bce"]
share.round(2)

# %% [markdown]
# Read the three panels together:
#
# * **BCE** has no notion of imbalance: its foreground share follows the foreground fraction (left), or the
#   ratio of the errors' sums (middle). Weighted BCE fixes the split at a constant by construction.
# * **Focal** loss reallocates by *difficulty*, not by class: it helps when the missed objects are the
#   hard pixels (middle) and does nothing when both sides are equally hard (left).
# * **Soft IoU and soft Dice** coincide in the share (their per-pixel ratio is $I/U$ in both, notebook 02)
#   and adapt to the state: about half for an uninformed network, most of it on missed objects, and a
#   growing share on the soft false positives as the prediction gets good. Notebook 02 gives the rule:
#   before the sigmoid factor, background/foreground is $\frac{N - |Y|}{|Y|} J$, so the foreground share
#   falls as the soft IoU $J$ of the prediction rises (0.11 at 0.5 % in the "good" state: Exercise 3).
# * **Lovász hinge** follows the ranking of the errors: all on the missed objects in the trap, and for a
#   good prediction a mass close to the foreground fraction, concentrated on the worst pixels.

# %% [markdown]
# ## 4. Per image or per batch?
#
# The region losses and the Lovász hinge take `per_image`: average one ratio per image (the surrogate of
# the per-image IoU, $\mathrm{mIoU}^I$), or pool the batch into one ratio (the batch's
# $\mathrm{mIoU}^D$). Take a batch of a small object, a large object and an empty image, in the
# all-background state:

# %%
batch = torch.cat([blob_masks(1, 64, 0.005, n_objects=1, seed=5), blob_masks(1, 64, 0.3, n_objects=1, seed=6),
                   torch.zeros(1, 1, 64, 64)]).double()
z = synthetic_logits(batch, seed=8, **STATES["all background"])
agg = {f"{name} ({'per image' if per else 'batch'})": gradient_field(name, z, batch, per_image=per)
       for name in ("soft_iou", "lovasz_hinge") for per in (True, False)}
viz.gradient_fields(agg, batch, probs=torch.sigmoid(z), image_labels=["small object", "large object", "empty"])

# %%
def fg_push(g):  # total push on the small object's pixels relative to the large object's
    return gradient_mass(g[0], batch[0])["fg_mass"] / gradient_mass(g[1], batch[1])["fg_mass"]


ratios = {name: fg_push(g) for name, g in agg.items()}
assert ratios["soft_iou (per image)"] > 3 * ratios["soft_iou (batch)"]
assert ratios["lovasz_hinge (per image)"] > 3 * ratios["lovasz_hinge (batch)"]
assert agg["soft_iou (per image)"][2].abs().sum() > 0  # the empty image is pushed (iou_lib's empty rule)
pd.Series(ratios, name="push on small object / push on large object").round(3)

# %% [markdown]
# Per image, the small object gets several times more push, relative to the large object, than when the
# batch is pooled: each image's ratio counts the same, so the small object's $1/U$ is computed from its own
# image. Pooled, the large object dominates $I$ and $U$ and the small object's pixels get the same
# per-pixel push as the large object's, a small total. So per-image losses favour small objects, and batch
# losses follow the pixel-weighted $\mathrm{mIoU}^D$, itself dominated by large objects. (The small object
# still gets less than the large one under the soft IoU: its image's $U$ is inflated by the soft false
# positives $\sum_{bg} p_v$ of 4,000 background pixels.)
#
# The empty image is pushed down in both modes: in the per-image soft IoU through `iou_lib`'s
# `empty="fp_rate"` rule (notebook 02), in the per-image Lovász hinge through its largest error
# (notebook 04), and in batch mode through the shared $I$ and $U$.

# %% [markdown]
# ## 5. Explore
#
# Two losses side by side (the menus), on three images of 48 px, in three views:
#
# * **fields**: both losses' descent directions on one colour scale, with the loss value and the
#   foreground share of $|\partial L/\partial z|$ in the title;
# * **bias slice**: every logit shifted together; the loss, the mean gradient and the IoU at 0.5 against
#   the mean logit;
# * **descend**: Adam on a free logit map, no network: one logit per pixel, or one per $4\times4$ or
#   $8\times8$ block (an object smaller than a block then shares its logits with background, as in a
#   network of limited resolution). "descend N steps" reruns; the bar shows progress.
#
# The loss knobs (focal $\gamma$ and $\alpha$, Tversky $\alpha$/$\beta$, smoothing $s$, the empty-image
# rule, per image) act on the shown losses that take them; the others are greyed out.
#
# **What to look for**
#
# 1. *Foreground fraction* from 0.3 down to 0.003 with `bce` beside `soft_iou`: BCE's share drops with the
#    fraction, the soft IoU's stays near one half as long as the prediction is uninformed (confidence 0);
#    raise the confidence and watch it fall, as notebook 02 predicts.
# 2. *Bias slice* with noise and confidence at 0 (constant logits): BCE is smallest at the constant logit
#    $\log\frac{f}{1-f}$, where nothing is foreground (IoU 0); the Lovász hinge has a kink at $z = 0$, where
#    its mean gradient jumps sign.
# 3. *Descend* at 1 % foreground, bias $-3$, $8\times8$ blocks: BCE lowers its loss but its IoU at 0.5 stays
#    near 0 (the best threshold does better: the ranking is there, the calibration is not); soft IoU
#    raises the object's blocks over 0.5.
# 4. *Confidence* to $-2$ (confidently wrong): the sigmoid factor $p(1-p)$ shrinks every push of the region
#    losses, while the Lovász hinge, which acts on logits directly, still pushes at full strength.
# 5. *Make the last image empty*, then switch the empty-image rule and *per image*: which rule leaves the
#    empty image's false positives unpushed?

# %% [markdown]
# *Run the cells above to start the explorer* (a static copy of this page shows a picture of it).

# %%
# NBVAL_IGNORE_OUTPUT
explorer = GradientExplorer()
explorer

# %% [markdown]
# The explorer keeps what it shows: `explorer.state` has the masks, logits, gradient fields and mass
# statistics of the current setting; `explorer.figure` is the figure. Setting a control from code
# redraws, as moving it does:

# %%
explorer.fg_frac.value = 0.012  # (an exact power of ten does not move a displayed log slider in JupyterLab)
bce_share, soft_iou_share = (m["fg_share"] for m in explorer.state.masses)  # left: bce, right: soft_iou
assert bce_share < 0.2 < 0.4 < soft_iou_share

# %% [markdown]
# ## Summary
#
# * Per-pixel losses (BCE, focal) split their push by pixel counts and errors; at low foreground fractions
#   the background outvotes the object unless a class weight (weighted BCE) or a difficulty weight
#   (focal, when the objects are the hard pixels) intervenes.
# * Soft IoU and soft Dice balance foreground against background through their structure and shift the
#   balance with the state of the prediction: strongly on missed objects early, towards false positives
#   late.
# * The Lovász hinge pushes by rank: the largest errors get the largest weights; correct pixels beyond the
#   margin get nothing.
# * Per-image aggregation gives small objects and empty images a voice of their own; batch aggregation
#   weights by pixels.
#
# Notebook 04 opens the Lovász extension; notebooks 06-07 check on real training runs whether these
# gradient pictures predict which loss wins at which foreground fraction.

# %% [markdown]
# ## Exercises
#
# **Exercise 1.** Section 4 measured how aggregation shares the push between a small and a large object.
# Derive it. A batch holds two images of $N$ pixels, with $k_1$ and $k_2$ foreground pixels, and the
# prediction is uninformed ($z \equiv 0$). Write `push_ratio(n, k1, k2, per_image)`: the total soft-IoU push
# $\sum |\partial L/\partial z|$ on image 1's foreground divided by that on image 2's, for the per-image
# loss and for the batch-pooled one. The check compares your formulas with measured gradient fields.

# %% tags=["exercise"]
def push_ratio(n, k1, k2, per_image):
    # your code here
    raise NotImplementedError


# %% jupyter={"source_hidden": true} tags=["solution"]
def push_ratio(n, k1, k2, per_image):
    # At p = 1/2 an image's U is (N + k)/2; each foreground pixel gets sigma'(0) / U = (1/4) / U.
    if per_image:  # each image its own U (and the same 1/B factor for both)
        return (k1 / (n + k1)) / (k2 / (n + k2))
    return k1 / k2  # one U for the batch: the same push per pixel, totals follow the counts


# %%
exercises.check_push_ratio(push_ratio)

# %% [markdown]
# **Exercise 2 (explore).** In the explorer, find a setting where `focal` puts *less* of its push on the
# foreground than plain `bce`. What state of the prediction is it? (Hint: which side holds the hard
# pixels?)

# %% [markdown] jupyter={"source_hidden": true} tags=["solution"]
# *Solution.* Focal loss multiplies BCE's push by $(1 - p_t)^\gamma$, where $p_t$ is the probability of the
# correct label: it damps the *easy* pixels. It gives the foreground less than BCE when the foreground is
# the easy side and the hard pixels are background, for instance with the bias at $+3$ (everything
# predicted foreground): the objects are right with $p \approx 0.95$, the background is confidently wrong.
# The cell below measures it (5 % foreground): focal's foreground share drops to about 0 while BCE keeps a
# little. In the accuracy trap (bias $-3$) it is the other way round.

# %% jupyter={"source_hidden": true} tags=["solution"]
y_ex = blob_masks(3, 48, 0.05, seed=0).double()
for bias in (3.0, -3.0):
    z_ex = synthetic_logits(y_ex, bias=bias, noise=1.0, seed=1)
    bce_s, focal_s = (gradient_mass(gradient_field(n, z_ex, y_ex), y_ex)["fg_share"] for n in ("bce", "focal"))
    print(f"bias {bias:+.0f}: foreground share BCE {bce_s:.3f}, focal {focal_s:.3f}")
    assert (focal_s < bce_s) == (bias > 0)

# %% [markdown]
# **Exercise 3 (think).** The soft IoU's per-pixel background/foreground ratio is $I/U$. Explain why, at
# 0.5 % foreground, a good prediction ($p \approx 0.92$ / $0.08$) still has a soft IoU well below 0.5, and
# what that means for where the gradient goes. (Hint: sum the background probabilities.)

# %% [markdown] jupyter={"source_hidden": true} tags=["solution"]
# *Solution.* The union counts every background probability: $U = |Y| + \sum_{bg} p_v$ (plus the missed
# part of the object). On the four 64-pixel images of section 3 at 0.5 % foreground there are 80 object
# pixels, but about 16,300 background pixels at $p \approx 0.1$ (the margin 2.5 with logit noise 1), so
# $\sum_{bg} p_v \approx 1{,}700$, twenty times the object. Then $I \approx 72$, $U \approx 1{,}770$ and $J \approx 0.04$,
# far below 0.5 although every pixel is on the right side of 0.5. By notebook 02, background/foreground
# push is $\frac{N - |Y|}{|Y|} J \approx 204 \times 0.04 \approx 8$: the foreground gets about 1/9 of the push,
# the 0.11 of the table. The gradient goes mostly to lowering the many small background probabilities,
# which is what the soft IoU must do to grow; at low foreground fractions the soft false positives, not
# the missed object, dominate a good prediction's loss.

# %% jupyter={"source_hidden": true} tags=["solution"]
y_ex = blob_masks(4, 64, 0.005, seed=1).double()  # the masks of section 3, 0.5 % foreground
p_ex = torch.sigmoid(synthetic_logits(y_ex, seed=1, **STATES["good"]))
I_ex, U_ex = (p_ex * y_ex).sum(), (p_ex + y_ex - p_ex * y_ex).sum()
n_ex, k_ex = y_ex.numel(), y_ex.sum()
print(f"|Y| = {k_ex:.0f}, sum of background p = {(p_ex * (1 - y_ex)).sum():.0f}, J = {I_ex / U_ex:.3f}, "
      f"foreground share before sigma' = {1 / (1 + (n_ex - k_ex) / k_ex * I_ex / U_ex):.3f}")
assert I_ex / U_ex < 0.1 and 0.08 < 1 / (1 + (n_ex - k_ex) / k_ex * I_ex / U_ex) < 0.14

# %% [markdown]
# ## References
#
# * M. A. Rahman and Y. Wang. Optimizing Intersection-over-Union in Deep Neural Networks for Image
#   Segmentation. *ISVC 2016*, LNCS 10072, pp. 234-244, Springer, 2016. doi:10.1007/978-3-319-50835-1_22
# * T.-Y. Lin, P. Goyal, R. Girshick, K. He and P. Dollár. Focal Loss for Dense Object Detection.
#   *ICCV 2017*. arXiv:1708.02002
# * F. Milletari, N. Navab and S.-A. Ahmadi. V-Net: Fully Convolutional Neural Networks for Volumetric
#   Medical Image Segmentation. *3DV 2016*. arXiv:1606.04797 (soft Dice)
# * M. Berman, A. Rannen Triki and M. B. Blaschko. The Lovász-Softmax Loss: A Tractable Surrogate for the
#   Optimization of the Intersection-over-Union Measure in Neural Networks. *CVPR 2018*. arXiv:1705.08790
