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
# 4. explain why the soft IoU balances foreground and background pushes while cross-entropy does not
#    (about 1 : 1 against 1 : 99 at 1 % foreground);
# 5. recognise the empty-foreground blind spot and the fixes `iou_lib` offers;
# 6. relate soft Dice to soft IoU.
#
# Prerequisites: notebook 01 (IoU, Dice, aggregation).

# %%
import pandas as pd
import torch

from iou_lib import exercises, losses, relax, viz
from iou_lib.data.synthetic import blob_masks
from iou_lib.gradients import gradient_field, gradient_mass, mass_table, synthetic_logits
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


rows = []
for n in (4, 16, 400):
    y_mc = (torch.arange(n) < n // 4).double()  # 25 % foreground
    p_mc = 0.2 + 0.5 * y_mc  # p = 0.7 on foreground, 0.2 on background
    e_i, e_u, e_ratio = monte_carlo(p_mc, y_mc)
    i_soft, u_soft = relax.soft_intersection(p_mc, y_mc), relax.soft_union(p_mc, y_mc)
    assert abs(e_i - i_soft) < 0.02 * n and abs(e_u - u_soft) < 0.02 * n  # E[I] = I(p), E[U] = U(p)
    rows.append({"pixels": n, "soft IoU = E[I]/E[U]": (i_soft / u_soft).item(), "E[I/U] (Monte Carlo)": e_ratio.item()})
mc = pd.DataFrame(rows).round(4)
mc

# %% [markdown]
# With 400 pixels the two numbers agree to about three decimals; with 4 pixels they differ in the
# second. Segmentation masks have thousands of pixels, so the soft IoU is a good stand-in for the
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
# The soft IoU is *self-balancing*: each foreground pixel is pushed $U/I$ times harder than each background
# pixel, which exactly offsets their scarcity. Measured on blob masks:

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
# weighted BCE of notebook 03 restores the balance by a class weight; the soft IoU gets it from its
# structure, and keeps it as training moves $p$ (the weight is $I/U$, recomputed at every step).
# Notebook 03 draws these pushes pixel by pixel.

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
# ## Summary
#
# * Soft IoU replaces counts by probabilities: $I = \sum p y$, $U = \sum (p + y - py)$. It is exact on
#   binary predictions and equals $\mathbb E[I]/\mathbb E[U]$ under independent Bernoulli predictions,
#   close to but not the same as the expected IoU.
# * Its gradient is $-1/U$ on every foreground pixel and $I/U^2$ on every background pixel (times
#   $\sigma'(z)$ in logit space): it depends on a pixel only through its label, and the foreground push is
#   $U/I$ times stronger.
# * That makes the loss self-balancing: at 1 % foreground the total background/foreground push is 0.98,
#   against 99 for BCE.
# * On an image without foreground the raw loss is constant: no gradient for false positives. Smoothing,
#   batch pooling or `iou_lib`'s `empty="fp_rate"` rule fix it.
# * Soft Dice is $2J/(1+J)$ of the soft IoU: same balance, same minimiser, rescaled gradients.
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
