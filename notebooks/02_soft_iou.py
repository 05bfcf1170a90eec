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
# # 02 · Deriving the soft IoU loss
#
# IoU counts pixels, so it is piecewise constant in the network's outputs: its gradient is zero almost
# everywhere. Rahman & Wang (2016) replace the counts by sums of probabilities. This notebook derives that
# relaxation, its gradient, and what the gradient implies for imbalanced masks.
#
# **You will learn to**
#
# 1. write intersection and union of two masks as sums over indicator vectors, and relax them to
#    probabilities: $I \approx \sum_v p_v y_v$, $U \approx \sum_v (p_v + y_v - p_v y_v)$;
# 2. say exactly what the soft IoU estimates ($\mathbb E[I] / \mathbb E[U]$, not $\mathbb E[I/U]$);
# 3. derive the gradient ($-1/U$ on foreground, $I/U^2$ on background) by hand, chain it through the
#    sigmoid, and check it against autograd and finite differences;
# 4. explain why, for an uninformed network, the soft IoU balances foreground and background pushes while
#    cross-entropy does not (about 1 : 1 against 1 : 99 at 1 % foreground), and how that balance moves to
#    the background as the prediction improves;
# 5. recognise the empty-foreground blind spot and the fixes `iou_lib` offers;
# 6. relate soft Dice to soft IoU;
# 7. trade false positives against false negatives with the Tversky loss.
#
# Prerequisites: notebook 01 (IoU, Dice, aggregation).

# %%
import itertools

import matplotlib.pyplot as plt
import pandas as pd
import torch

from iou_lib import exercises, losses, relax, viz
from iou_lib.data.synthetic import blob_masks
from iou_lib.gradients import gradient_field, gradient_mass, mass_table, progress_table, synthetic_logits
from iou_lib.metrics import class_iou

_ = torch.manual_seed(0)
# Masks are made float64 below (`.double()`): the library then computes in float64, for exact checks.

# %% [markdown]
# ## 1. From sets to probabilities
#
# Let $A$ be the predicted foreground and $B$ the true foreground, with indicator vectors
# $a, y \in \{0,1\}^N$ over the $N$ pixels. Then
#
# $$|A \cap B| = \sum_v a_v y_v, \qquad |A \cup B| = |A| + |B| - |A\cap B| = \sum_v (a_v + y_v - a_v y_v).$$
#
# A network does not output $a$ but probabilities $p_v = \sigma(z_v) \in (0, 1)$. Replacing $a$ by $p$
# gives the **soft** intersection and union, and the loss
#
# $$I(p) = \sum_v p_v y_v, \qquad U(p) = \sum_v (p_v + y_v - p_v y_v), \qquad L_{\mathrm{IoU}}(p) = 1 - \frac{I(p)}{U(p)}.$$
#
# Both sums are affine in $p$, so $L$ is smooth wherever $U > 0$. At the corners $p \in \{0,1\}^N$ the
# relaxation is **exact**: it is the IoU of the binary prediction. `iou_lib.relax` holds these two sums;
# check exactness against the hard metric on random masks:

# %%
y = blob_masks(8, 32, 0.1, seed=1).double().flatten(1)
a = (torch.rand_like(y) < 0.15).double()  # any binary prediction
soft = relax.soft_intersection(a, y) / relax.soft_union(a, y)
hard = class_iou(a.long(), y.long(), 2, per_image=True)[:, 1]  # foreground IoU of each image
assert torch.allclose(soft, hard.double())
soft[:4]

# %% [markdown]
# ## 2. What the soft IoU estimates: a ratio of expectations
#
# Read $p_v$ as the probability that pixel $v$ is predicted foreground, independently across pixels, and
# draw a random binary mask $A \sim \mathrm{Bernoulli}(p)$. By linearity of expectation,
#
# $$\mathbb E\,|A \cap B| = \sum_v p_v y_v = I(p), \qquad \mathbb E\,|A \cup B| = \sum_v (p_v + y_v - p_v y_v) = U(p).$$
#
# So the soft IoU is $\mathbb E[I]/\mathbb E[U]$, **not** the expected IoU $\mathbb E[I/U]$ of the sampled
# masks. The two agree when the image has many pixels (the ratio's numerator and denominator concentrate)
# and can differ on tiny masks. A Monte-Carlo check:

# %%
def monte_carlo(p, y, n_samples=20_000):
    """Sampled |A n B|, |A u B| for A ~ Bernoulli(p): returns E[I], E[U], E[I/U]."""
    A = (torch.rand(n_samples, len(p)) < p).double()
    inter, union = (A * y).sum(1), (A + y - A * y).sum(1)
    return inter.mean(), union.mean(), (inter / union).nan_to_num(1.0).mean()


def exact_expected_iou(p, y):
    """E[I/U] by enumerating all 2^n masks A (small n only)."""
    A = torch.tensor(list(itertools.product([0.0, 1.0], repeat=len(p))), dtype=torch.float64)
    prob = torch.where(A > 0, p, 1 - p).prod(1)  # probability of each mask
    return (prob * (A * y).sum(1) / (A + y - A * y).sum(1)).sum()  # y has foreground: U >= 1


rows = []
for n in (4, 16, 400):
    y_mc = (torch.arange(n) < n // 4).double()  # 25 % foreground
    p_mc = 0.2 + 0.5 * y_mc  # p = 0.7 on foreground, 0.2 on background
    e_i, e_u, e_ratio = monte_carlo(p_mc, y_mc)
    i_soft, u_soft = relax.soft_intersection(p_mc, y_mc), relax.soft_union(p_mc, y_mc)
    assert abs(e_i - i_soft) < 0.02 * n and abs(e_u - u_soft) < 0.02 * n  # E[I] = I(p), E[U] = U(p)
    exact = exact_expected_iou(p_mc, y_mc).item() if n <= 16 else float("nan")
    assert not n <= 16 or abs(exact - e_ratio) < 0.01  # the sampled E[I/U] agrees with the enumeration
    rows.append({"pixels": n, "soft IoU = E[I]/E[U]": (i_soft / u_soft).item(),
                 "E[I/U] (Monte Carlo)": e_ratio.item(), "E[I/U] (exact)": exact})
mc = pd.DataFrame(rows).round(4)
gap = mc["E[I/U] (Monte Carlo)"] - mc["soft IoU = E[I]/E[U]"]
assert gap[0] > 0.05 and abs(gap[2]) < 0.005  # far apart on 4 pixels, close on 400
print(f"E[I/U] - soft IoU: {gap[0]:.3f} on 4 pixels, {gap[1]:.3f} on 16, {gap[2]:.4f} on 400")
mc

# %% [markdown]
# With 400 pixels the two numbers agree to about three decimals; with 4 pixels they are different
# numbers: the soft IoU is $0.7/1.6 = 0.4375$, the expected IoU about $0.52$ (exactly $0.5166$ by
# enumerating the 16 possible masks), a gap of 0.08. Segmentation masks have thousands of pixels, so the soft IoU is a good stand-in for the
# expected IoU of a sampled prediction, yet it is a different quantity: keep that in mind when someone
# calls it "the expected IoU".
#
# **Shape of the loss.** $I$ and $U$ are affine in $p$, so $L = 1 - I/U$ is *linear-fractional*: its
# sub-level sets $\{p : I(p) \ge t\,U(p)\}$ are half-spaces intersected with the box, hence convex
# (the loss is quasi-convex in $p$, though not convex in the logits). Its minimum $L = 0$ needs
# $I = U$, i.e. $p_v = 1$ on foreground and $p_v = 0$ on background: $p = y$.

# %% [markdown]
# ## 3. The gradient, step by step
#
# Differentiate $I$ and $U$ with respect to one pixel's probability $p_v$:
#
# $$\frac{\partial I}{\partial p_v} = y_v, \qquad \frac{\partial U}{\partial p_v} = 1 - y_v.$$
#
# The quotient rule for $L = 1 - I/U$:
#
# $$
# \frac{\partial L}{\partial p_v}
# = -\frac{U\,\frac{\partial I}{\partial p_v} - I\,\frac{\partial U}{\partial p_v}}{U^2}
# = -\frac{U y_v - I (1 - y_v)}{U^2}
# = \begin{cases} -\dfrac{1}{U} & y_v = 1 \ \text{(foreground)}\\[3mm]
#                 \dfrac{I}{U^2} & y_v = 0 \ \text{(background)} \end{cases}
# $$
#
# Two things stand out:
#
# * the gradient at pixel $v$ **does not depend on $p_v$**, only on its label and the global $I$ and $U$;
#   every foreground pixel gets the same push up, every background pixel the same push down;
# * the ratio of the two pushes is $|I/U^2| / |{-1/U}| = I/U \le 1$: the soft IoU itself.
#
# Through the sigmoid $p_v = \sigma(z_v)$, with $\sigma'(z) = \sigma(z)(1 - \sigma(z))$:
#
# $$\frac{\partial L}{\partial z_v} = \frac{\partial L}{\partial p_v}\; p_v (1 - p_v).$$
#
# The factor $p_v(1-p_v)$ is at most $1/4$ and vanishes for confident pixels, **including confidently
# wrong ones**: a pixel at $p = 0.001$ on the foreground learns 250 times slower than one at $p = 0.5$.
# This is one reason IoU losses are often used to fine-tune a model first trained with cross-entropy.
#
# `relax.soft_iou_grad` is the formula for $\partial L / \partial p$. Check it, chained through the
# sigmoid, against autograd of the library loss (`gradient_field`) and against central finite
# differences, in float64:

# %%
y = blob_masks(2, 16, 0.15, seed=2).double()
z = synthetic_logits(y, confidence=0.5, noise=1.5, seed=3)
p = torch.sigmoid(z)

closed = relax.soft_iou_grad(p.flatten(), y.flatten()).view_as(z) * p * (1 - p)  # batch pooled: one I, U
auto = gradient_field("soft_iou", z, y, per_image=False)

loss = losses.get("soft_iou", per_image=False)
eps, fd = 1e-6, torch.zeros(z.numel(), dtype=torch.float64)
for i in range(z.numel()):
    step = torch.zeros(z.numel(), dtype=torch.float64)
    step[i] = eps
    step = step.view_as(z)
    fd[i] = (loss(z + step, y) - loss(z - step, y)) / (2 * eps)

err_auto, err_fd = (closed - auto).abs().max().item(), (closed.flatten() - fd).abs().max().item()
print(f"closed form vs autograd: {err_auto:.1e}   closed form vs finite differences: {err_fd:.1e}")
assert err_auto < 1e-12 and err_fd < 1e-8

# %% [markdown]
# The finite-difference error is at the $10^{-10}$ level, the rounding error of a central difference
# with step $10^{-6}$ in float64. And the structure the derivation predicts, one value per label:

# %%
dLdp = auto / (p * (1 - p))
I, U = relax.soft_intersection(p.flatten(), y.flatten()), relax.soft_union(p.flatten(), y.flatten())
fg_vals, bg_vals = dLdp[y > 0], dLdp[y == 0]
assert torch.allclose(fg_vals, -1 / U) and torch.allclose(bg_vals, I / U**2)
print(f"foreground dL/dp: {fg_vals.min():.5f} .. {fg_vals.max():.5f}  (-1/U = {-1 / U:.5f})")
print(f"background dL/dp: {bg_vals.min():.5f} .. {bg_vals.max():.5f}  (I/U^2 = {I / U**2:.5f})")

# %% [markdown]
# Compare with BCE, whose per-pixel gradient $\partial L/\partial p_v = (p_v - y_v) / (N p_v (1 - p_v))$
# does depend on $p_v$. Each dot is a pixel of the batch above:

# %%
viz.pixel_gradients({name: gradient_field(name, z, y) for name in ("bce", "soft_iou")}, p, y)

# %% [markdown]
# ## 4. Balance: who gets pushed, and how hard
#
# Sum the absolute gradients over each side of the target: the foreground and background **gradient
# mass** (`iou_lib.gradients.gradient_mass`). At an uninformed network, $z \equiv 0$ and $p \equiv 1/2$,
# with $N$ pixels and $|Y|$ foreground pixels:
#
# * **BCE** (mean over pixels): $\partial L/\partial z_v = (p_v - y_v)/N$, so every pixel gets $1/(2N)$ and
#   $$\frac{M_{bg}}{M_{fg}} = \frac{N - |Y|}{|Y|},$$
#   which is 99 at 1 % foreground: the background outvotes the object 99 to 1.
# * **Soft IoU**: $I = |Y|/2$ and $U = N/2 + |Y| - |Y|/2 = (N + |Y|)/2$, so
#   $$\frac{M_{bg}}{M_{fg}} = \frac{(N - |Y|)\, I/U^2}{|Y| / U} = \frac{(N-|Y|)\,I}{|Y|\,U} = \frac{N - |Y|}{N + |Y|} \approx 1.$$
#
# At this uninformed point the soft IoU is *self-balancing*: each foreground pixel is pushed $U/I$ times
# harder than each background pixel, and $U/I = (N + |Y|)/|Y|$ approximately offsets their scarcity
# $(N - |Y|)/|Y|$. Measured on blob masks:

# %%
rows = []
for frac in (0.01, 0.05, 0.2, 0.5):
    y = blob_masks(1, 64, frac, seed=0).double()
    n, k = y.numel(), y.sum().item()
    for name, formula in (("bce", (n - k) / k), ("soft_iou", (n - k) / (n + k))):
        m = gradient_mass(gradient_field(name, torch.zeros_like(y), y), y)
        assert abs(m["bg_over_fg"] - formula) < 1e-9 * formula
        rows.append({"fg fraction": k / n, "loss": name, "bg/fg mass": m["bg_over_fg"], "formula": formula})
balance = pd.DataFrame(rows).pivot(index="fg fraction", columns="loss", values="bg/fg mass").round(3)
balance

# %%
viz.mass_plot(mass_table(["bce", "soft_iou"], [0.003, 0.01, 0.03, 0.1, 0.3, 0.5], size=64),
              ax_labels=("foreground fraction", "background / foreground gradient mass"))

# %% [markdown]
# At 1 % foreground the measured ratios are 99 for BCE and 0.98 for the soft IoU, as derived. The
# weighted BCE of notebook 03 restores the balance with a fixed class weight; the soft IoU gets it from
# its structure, **but only at this starting point**.
#
# ### The balance moves as training progresses
#
# Repeat the calculation at any prediction, leaving out the sigmoid factor $\sigma'(z_v)$ (that is, for
# the push on the probabilities, $|\partial L/\partial p_v|$): every foreground pixel gets $1/U$, every
# background pixel $I/U^2$, so
#
# $$\frac{M_{bg}}{M_{fg}} = \frac{(N - |Y|)\, I/U^2}{|Y|/U} = \frac{N - |Y|}{|Y|} \cdot J,
# \qquad J = \frac{I}{U}, \qquad \text{foreground share} = \frac{1}{1 + \frac{N-|Y|}{|Y|}\,J}.$$
#
# The ratio is proportional to the soft IoU $J$ of the current prediction. At 1 % foreground it is
# $99\,J$: about 1 at initialisation ($J \approx |Y|/(N + |Y|) \approx 0.01$), 10 at $J = 0.1$ and 50 at
# $J = 0.5$. So as the prediction improves, the soft IoU moves its push from the missed object to the soft
# false positives spread over the many background pixels; notebook 03 measures a foreground share of
# about 0.1 in its "good" state at 0.5 % foreground. The weight $I/U$ is recomputed at every step, and it
# does **not** keep the 1 : 1 split.
#
# Measured along a path of improving predictions (`progress_table`: the logit margin grows from 0 to 5,
# with logit noise 1): dots are the measured shares of $|\partial L/\partial p|$, crosses those of
# $|\partial L/\partial z|$, lines the formula:

# %%
progress = progress_table("soft_iou", [0.01, 0.05, 0.2], torch.linspace(0, 5, 11).tolist(), per_image=False)
n_px = 4 * 64 * 64  # progress_table's default batch: 4 images of 64 x 64
k_fg = progress["fg_actual"] * n_px
progress["formula"] = 1 / (1 + (n_px - k_fg) / k_fg * progress["soft_iou"])
assert (progress["fg_share_dp"] - progress["formula"]).abs().max() < 1e-9  # the formula, exactly
assert (progress["fg_share"] - progress["fg_share_dp"]).abs().max() < 0.02  # sigma' changes it little here
one = progress[progress["fg_frac"] == 0.01]
assert one["fg_share_dp"].iloc[0] > 0.45 and one["fg_share_dp"].iloc[-1] < 0.05  # about 1/2, then < 5 %

fig, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
j = torch.logspace(-3, 0, 200)
for i, (_frac, grp) in enumerate(progress.groupby("fg_frac")):
    f = grp["fg_actual"].iloc[0]
    ax.plot(j, 1 / (1 + (1 - f) / f * j), color=f"C{i}", label=f"{f:.1%} foreground")
    ax.plot(grp["soft_iou"], grp["fg_share_dp"], "o", color=f"C{i}", ms=4)
    ax.plot(grp["soft_iou"], grp["fg_share"], "x", color=f"C{i}", ms=6)
ax.set(xscale="log", xlabel="soft IoU $J$ of the prediction (training progress)",
       ylabel="foreground share of the push", title="Soft IoU: the push moves to the background as $J$ grows")
ax.legend(title=r"line: $1/(1 + \frac{N-|Y|}{|Y|}J)$", fontsize=8)
progress[["fg_frac", "confidence", "soft_iou", "fg_share_dp", "fg_share"]].iloc[::2].round(3)

# %% [markdown]
# Early in training, when a small object is missed, the soft IoU gives it about half of the push, where
# BCE gives it 1 %. Late in training, on a 1 % object, the soft IoU spends most of its push on the
# background too. It does so through one global weight, $I/U^2$ for every background pixel whatever its
# own error, which grows with the overlap already won; BCE weighs each pixel by its own error. Notebook 03 draws these pushes pixel by pixel.

# %% [markdown]
# **Explore.** Put one probability $p_1$ on every foreground pixel and another, $p_0$, on every background
# pixel of a 64 x 64 mask. The explorer draws the soft IoU over $(p_1, p_0)$ (background on a log axis)
# and prints, live, the two gradient values $-1/U$ and $I/U^2$ and the push they add up to on each side.
# Start at $p_1 = p_0 = 0.5$ at 1 % foreground (the balance above), then raise $p_1$ and lower $p_0$:
# where does the background's share overtake the foreground's?
#
# *Run the cells above to start the explorer* (a static copy of this page shows a picture of it).

# %%
# NBVAL_IGNORE_OUTPUT
from iou_lib.widgets import SoftIoUExplorer

SoftIoUExplorer()

# %% [markdown]
# ## 5. The blind spot: images without foreground
#
# If $y \equiv 0$ then $I = 0$ for every $p$, so $L = 1 - 0/U = 1$ is constant and the gradient is exactly
# zero: **false positives on an empty image are never penalised**. (If in addition $p \equiv 0$, then
# $U = 0$ and the ratio is $0/0$.) Three standard fixes:
#
# 1. **smoothing** $L_s = 1 - (I + s)/(U + s)$: on an empty image $\partial L_s/\partial p_v = s/(U+s)^2 > 0$;
#    the push is weak when $U \gg s$ and $s$ biases the loss on small objects;
# 2. **pool the batch** (`per_image=False`): one empty image among non-empty ones shares their $I$ and $U$,
#    so its pixels get the background push $I/U^2$;
# 3. **leave empty units out** (the Lovász code's `classes='present'`): no false-positive penalty at all,
#    but no 0/0 either.
#
# `iou_lib` documents its rule in `iou_lib.losses.region` and makes it a choice, `empty=`:

# %%
print(losses.region.__doc__.split("**Empty units.**")[1].split("With ``ignore_index``")[0].strip())

# %% [markdown]
# The default, `"fp_rate"`, scores an empty unit by its soft false-positive rate $\mathrm{mean}(p)$, with
# gradient $1/N$ per pixel. Compare the options on a batch of one object image and one empty image, with
# an uninformed prediction:

# %%
y = blob_masks(2, 32, 0.1, seed=4).double()
y[1] = 0  # the second image has no foreground
z = torch.zeros_like(y)
options = {
    "raw, per image": {"per_image": True, "empty": "raw"},
    "raw + smooth=1, per image": {"per_image": True, "empty": "raw", "smooth": 1.0},
    "fp_rate (default), per image": {"per_image": True},
    "ignore, per image": {"per_image": True, "empty": "ignore"},
    "raw, batch pooled": {"per_image": False, "empty": "raw"},
}
rows = []
for label, kw in options.items():
    g = gradient_field("soft_iou", z, y, **kw)
    rows.append({"option": label, "empty image: sum |dL/dz|": g[1].abs().sum().item(),
                 "object image: sum |dL/dz|": g[0].abs().sum().item()})
empty_table = pd.DataFrame(rows).set_index("option")
assert empty_table.iloc[0, 0] == 0 and empty_table.iloc[3, 0] == 0  # raw and ignore: blind
assert (empty_table.iloc[[1, 2, 4], 0] > 0).all()  # smoothing, fp_rate, pooling: false positives pushed down
empty_table

# %% [markdown]
# The raw per-image loss and `"ignore"` leave the empty image without any gradient. Smoothing gives a push
# whose size depends on $s$; pooling gives one tied to the other images. The `"fp_rate"` rule gives
# the empty image a push of the same order as an object image, independent of a tuning constant.

# %% [markdown]
# ## 6. Soft Dice beside it
#
# The Dice coefficient $D = 2|A\cap B| / (|A| + |B|)$ relaxes the same way:
# $D(p) = 2I / S$ with $S = \sum_v p_v + \sum_v y_v$. Since $U = S - I$,
#
# $$J = \frac{I}{S - I} \quad\Longrightarrow\quad D = \frac{2I}{S} = \frac{2J}{1 + J},$$
#
# the same identity as for hard sets (notebook 01), now per unit for soft values. Its gradient,
# $\partial I/\partial p_v = y_v$ and $\partial S/\partial p_v = 1$:
#
# $$\frac{\partial (1 - D)}{\partial p_v} = -\frac{2 y_v S - 2I}{S^2}
# = \begin{cases} -\dfrac{2(S - I)}{S^2} & y_v = 1 \\[2mm] \dfrac{2I}{S^2} & y_v = 0, \end{cases}$$
#
# again one value per label, with ratio $I/(S - I) = J$: the background/foreground push ratio of soft Dice
# is the soft IoU $J$, exactly as for the soft IoU loss. The two losses differ by a monotone
# reparametrisation per unit, so they share their minimiser and balance; the gradient *sizes* differ
# by the factor $dD/dJ = 2/(1+J)^2$. (V-Net's original Dice uses squared terms $\sum p^2 + \sum y^2$ in
# the denominator; `iou_lib` uses the plain sums above.) Checked against the library:

# %%
y = blob_masks(3, 16, 0.2, seed=5).double()
z = synthetic_logits(y, 0.5, 1.0, seed=6)
p = torch.sigmoid(z)
I, S = (p * y).sum(), (p + y).sum()
J = I / (S - I)
dice_loss = losses.functional("soft_dice")(z, y)
assert torch.isclose(1 - dice_loss, 2 * J / (1 + J))  # D = 2J/(1+J) on soft values
closed_dice = torch.where(y > 0, -2 * (S - I) / S**2, 2 * I / S**2) * p * (1 - p)
assert torch.allclose(gradient_field("soft_dice", z, y), closed_dice)
print(f"soft IoU J = {J:.4f}, soft Dice = {1 - dice_loss:.4f} = 2J/(1+J) = {2 * J / (1 + J):.4f}")

# %% [markdown]
# ## 7. Tversky: weighting the two kinds of error
#
# Soft IoU and soft Dice charge a false positive and a false negative the same. The **Tversky index**
# (Tversky 1977; as a segmentation loss, Salehi et al. 2017) weighs them separately. With the soft counts
# $I = \sum_v p_v y_v$, $FP = \sum_v p_v (1 - y_v)$ and $FN = \sum_v (1 - p_v) y_v$,
#
# $$T_{\alpha,\beta} = \frac{I}{I + \alpha\, FP + \beta\, FN}, \qquad L = 1 - T_{\alpha,\beta}.$$
#
# Since $U = I + FP + FN$ and $\sum p + \sum y = 2I + FP + FN$, $\alpha = \beta = 1$ is the soft IoU and
# $\alpha = \beta = \tfrac12$ the soft Dice. $\alpha$ prices false positives, $\beta$ false negatives:
# $\beta > \alpha$ makes a missed foreground pixel cost more than a false alarm (favouring recall, the
# usual choice for small structures); $\alpha > \beta$ favours precision.
#
# The gradient, with $D = I + \alpha FP + \beta FN$, $\partial D/\partial p_v = y_v (1 - \beta) + \alpha (1 - y_v)$
# and $I + FN = |Y|$:
#
# $$\frac{\partial L}{\partial p_v} = -\frac{y_v D - I\, \partial D/\partial p_v}{D^2}
# = \begin{cases} -\dfrac{\alpha FP + \beta |Y|}{D^2} & y_v = 1 \\[2mm]
#                  \dfrac{\alpha I}{D^2} & y_v = 0. \end{cases}$$
#
# One value per label again; the per-pixel ratio background/foreground is $\alpha I/(\alpha FP + \beta|Y|)$,
# which is $I/U$ at $\alpha = \beta = 1$. Raising $\beta$ raises the push on the foreground, raising
# $\alpha$ the push on the background. Checked against autograd of the library loss:

# %%
alpha, beta = 0.3, 0.7
FP, Y = (p * (1 - y)).sum(), y.sum()
D = I + alpha * FP + beta * (Y - I)
closed_tversky = torch.where(y > 0, -(alpha * FP + beta * Y) / D**2, alpha * I / D**2) * p * (1 - p)
assert torch.allclose(gradient_field("tversky", z, y, alpha=alpha, beta=beta), closed_tversky)
assert torch.isclose(losses.functional("tversky")(z, y, alpha=1.0, beta=1.0), losses.functional("soft_iou")(z, y))
assert torch.isclose(losses.functional("tversky")(z, y, alpha=0.5, beta=0.5), dice_loss)

# %% [markdown]
# **Where it pushes.** The same prediction (5 % foreground, a fair but noisy one) under three weightings.
# With $\beta > \alpha$ the push concentrates on the object, with $\alpha > \beta$ it spreads over the
# background's false positives:

# %%
SETTINGS = {"alpha=0.7, beta=0.3": (0.7, 0.3), "alpha=beta=0.5 (Dice)": (0.5, 0.5), "alpha=0.3, beta=0.7": (0.3, 0.7)}
y_t = blob_masks(4, 64, 0.05, seed=3).double()
z_t = synthetic_logits(y_t, confidence=1.5, noise=1.5, seed=4)
tv_fields = {name: gradient_field("tversky", z_t, y_t, alpha=a, beta=b) for name, (a, b) in SETTINGS.items()}
viz.gradient_fields({k: v[:2] for k, v in tv_fields.items()}, y_t[:2], probs=torch.sigmoid(z_t[:2]))

# %% [markdown]
# And along the path of improving predictions used above for the soft IoU (5 % foreground): the larger
# $\beta/\alpha$, the larger the foreground's share at every stage of training.

# %%
tv_progress = pd.concat([
    progress_table("tversky", [0.05], torch.linspace(0, 5, 11).tolist(), alpha=a, beta=b).assign(weights=name)
    for name, (a, b) in SETTINGS.items()])
shares = tv_progress.pivot_table(index="confidence", columns="weights", values="fg_share")
assert (shares["alpha=0.3, beta=0.7"] > shares["alpha=beta=0.5 (Dice)"]).all()
assert (shares["alpha=beta=0.5 (Dice)"] > shares["alpha=0.7, beta=0.3"]).all()
viz.line_plot(tv_progress, "soft_iou", "fg_share", hue="weights", xlabel="soft IoU $J$ of the prediction",
              ylabel="foreground share of |dL/dz|")

# %% [markdown]
# **What it trades.** On the images above, threshold the prediction at every level and keep the
# threshold with the best (hard) Tversky index. The weighting moves the chosen operating point: with
# $\beta > \alpha$ the threshold drops, false negatives fall and false positives rise.

# %%
p_t = torch.sigmoid(z_t)
rows = []
for name, (a, b) in SETTINGS.items():
    best = max(((p_t > t).double() for t in torch.linspace(0.02, 0.98, 49)),
               key=lambda m: ((m * y_t).sum() / ((m * y_t).sum() + a * (m * (1 - y_t)).sum()
                                                  + b * ((1 - m) * y_t).sum())).item())
    tp, fp, fn = (best * y_t).sum().item(), (best * (1 - y_t)).sum().item(), ((1 - best) * y_t).sum().item()
    rows.append({"weights": name, "false positives": fp, "false negatives": fn, "IoU": tp / (tp + fp + fn)})
trade = pd.DataFrame(rows).set_index("weights")
assert trade["false negatives"].is_monotonic_decreasing and trade["false positives"].is_monotonic_increasing
trade.round(3)

# %% [markdown]
# ## Summary
#
# * Soft IoU replaces counts by probabilities: $I = \sum p y$, $U = \sum (p + y - py)$. It is exact on
#   binary predictions and equals $\mathbb E[I]/\mathbb E[U]$ under independent Bernoulli predictions,
#   close to but not the same as the expected IoU.
# * Its gradient is $-1/U$ on every foreground pixel and $I/U^2$ on every background pixel (times
#   $\sigma'(z)$ in logit space): it depends on a pixel only through its label, and the foreground push is
#   $U/I$ times stronger.
# * For an uninformed prediction that makes the loss self-balancing: at 1 % foreground the total
#   background/foreground push is 0.98, against 99 for BCE. The balance is not kept: before the sigmoid
#   factor the ratio is $\frac{N-|Y|}{|Y|} J$, so as the soft IoU $J$ grows the push moves to the soft
#   false positives on the background.
# * On an image without foreground the raw loss is constant: no gradient for false positives. Smoothing,
#   batch pooling or `iou_lib`'s `empty="fp_rate"` rule fix it.
# * Soft Dice is $2J/(1+J)$ of the soft IoU: same balance, same minimiser, rescaled gradients.
# * The Tversky loss $1 - I/(I + \alpha FP + \beta FN)$ contains both ($\alpha = \beta = 1$: IoU; $\tfrac12$:
#   Dice); $\beta > \alpha$ moves the push to the foreground and the operating point towards recall.
#
# Next: notebook 03 draws these gradients pixel by pixel for all the losses of the workbook.

# %% [markdown]
# ## Exercises
#
# **Exercise 1.** Write the batch-pooled soft IoU loss from logits, without `iou_lib`:
# `my_soft_iou(logits, target)` for logits and {0, 1} targets of shape `(B, 1, H, W)`, returning a 0-dim
# tensor. Sum $I$ and $U$ over all pixels of the batch before dividing. The check tells you which common
# mistake you made, if any.

# %% tags=["exercise"]
def my_soft_iou(logits, target):
    # your code here
    raise NotImplementedError


# %% jupyter={"source_hidden": true} tags=["solution"]
def my_soft_iou(logits, target):
    p = torch.sigmoid(logits)
    inter = (p * target).sum()
    union = (p + target - p * target).sum()
    return 1 - inter / union


# %%
exercises.check_soft_iou(my_soft_iou)

# %% [markdown]
# **Exercise 2.** Write the closed-form gradient $\partial L/\partial z$ of the same loss, without autograd:
# `my_soft_iou_grad(logits, target)` returns a tensor of the logits' shape.

# %% tags=["exercise"]
def my_soft_iou_grad(logits, target):
    # your code here
    raise NotImplementedError


# %% jupyter={"source_hidden": true} tags=["solution"]
def my_soft_iou_grad(logits, target):
    p = torch.sigmoid(logits)
    inter = (p * target).sum()
    union = (p + target - p * target).sum()
    dL_dp = torch.where(target > 0, -1 / union, inter / union**2)
    return dL_dp * p * (1 - p)


# %%
exercises.check_soft_iou_grad(my_soft_iou_grad)

# %% [markdown]
# **Exercise 3 (think).** With smoothing $s$, an object image with $I = 0$ (nothing found yet) has loss
# $1 - s/(U + s)$. How does the push on its foreground pixels compare with $s = 0$? Why might a large $s$
# hurt small objects? (Hint: write $\partial L_s / \partial p_v$ for $y_v = 1$ and compare $1/(U+s)$ with
# $(I + s)/(U + s)^2$.)

# %% [markdown] jupyter={"source_hidden": true} tags=["solution"]
# *Solution.* For $y_v = 1$, $\partial I/\partial p_v = 1$ and $\partial U/\partial p_v = 0$, so
# $\partial L_s/\partial p_v = -1/(U + s)$: the foreground push shrinks from $1/U$ to $1/(U + s)$. For
# $y_v = 0$, $\partial L_s/\partial p_v = (I + s)/(U + s)^2$, which at $I = 0$ is $s/(U + s)^2$ instead of 0.
# Per pixel, background over foreground is $(I + s)/(U + s)$: $s/(U + s)$ at $I = 0$ instead of 0. For a
# large object ($U \gg s$) little changes. For a small object $U$ is of the order of $s$: at $U = s$ the
# foreground push is halved and every background pixel gets half the push of a foreground pixel; with far
# more background than object pixels, most of the total push then lowers the background, towards
# predicting nothing. The value is biased the same way: a small object missed entirely (nothing
# predicted, $U = |Y|$) still scores $s/(|Y| + s)$, a large part of a perfect score when $|Y|$ is
# comparable to $s$. Keep $s$ small compared with the smallest object (in pixels), or pool the batch.

# %% jupyter={"source_hidden": true} tags=["solution"]
y_s = blob_masks(1, 32, 0.01, seed=1).double()  # one small object
z_s = torch.full_like(y_s, -4.0)  # nothing found yet: I close to 0
p_s = torch.sigmoid(z_s)
I_s, U_s = (p_s * y_s).sum(), (p_s + y_s - p_s * y_s).sum()
for s_ in (0.0, 1.0, U_s.item()):
    dLdp_s = gradient_field("soft_iou", z_s, y_s, smooth=s_, per_image=True) / (p_s * (1 - p_s))
    assert torch.allclose(dLdp_s[y_s > 0], -1 / (U_s + s_))  # the solution's formulas
    assert torch.allclose(dLdp_s[y_s == 0], (I_s + s_) / (U_s + s_) ** 2)
    fg_n, bg_n = int(y_s.sum()), int((y_s == 0).sum())
    print(f"s = {s_:5.1f}: foreground push x{U_s * -dLdp_s[y_s > 0][0]:.2f} of the push at s = 0; "
          f"total background/foreground push {bg_n * dLdp_s[y_s == 0][0] / (fg_n * -dLdp_s[y_s > 0][0]):.2f}")

# %% [markdown]
# **Exercise 4.** Write the Tversky loss from logits, pooled over the batch:
# `my_tversky(logits, target, alpha, beta)` returns a 0-dim tensor $1 - I/(I + \alpha FP + \beta FN)$ with
# the soft counts of section 7. The check uses $\alpha \ne \beta$, so it notices swapped weights.

# %% tags=["exercise"]
def my_tversky(logits, target, alpha, beta):
    # your code here
    raise NotImplementedError


# %% jupyter={"source_hidden": true} tags=["solution"]
def my_tversky(logits, target, alpha, beta):
    p = torch.sigmoid(logits)
    inter = (p * target).sum()
    false_pos, false_neg = (p * (1 - target)).sum(), ((1 - p) * target).sum()
    return 1 - inter / (inter + alpha * false_pos + beta * false_neg)


# %%
exercises.check_tversky(my_tversky)

# %% [markdown]
# ## References
#
# * M. A. Rahman and Y. Wang. Optimizing Intersection-over-Union in Deep Neural Networks for Image
#   Segmentation. *Advances in Visual Computing (ISVC 2016)*, LNCS 10072, pp. 234-244, Springer, 2016.
#   doi:10.1007/978-3-319-50835-1_22
# * M. Berman, A. Rannen Triki and M. B. Blaschko. The Lovász-Softmax Loss: A Tractable Surrogate for the
#   Optimization of the Intersection-over-Union Measure in Neural Networks. *CVPR 2018*. arXiv:1705.08790
#   (the `classes='present'` option of section 5 is from its code).
# * F. Milletari, N. Navab and S.-A. Ahmadi. V-Net: Fully Convolutional Neural Networks for Volumetric
#   Medical Image Segmentation. *3DV 2016*. arXiv:1606.04797
# * A. Tversky. Features of Similarity. *Psychological Review* 84(4), pp. 327-352, 1977.
# * S. S. M. Salehi, D. Erdogmus and A. Gholipour. Tversky Loss Function for Image Segmentation Using 3D
#   Fully Convolutional Deep Networks. *Machine Learning in Medical Imaging (MLMI 2017)*, LNCS 10541,
#   Springer, 2017. arXiv:1706.05721
