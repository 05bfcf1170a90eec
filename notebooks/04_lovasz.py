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
# # 04 · The Lovász extension
#
# The soft IoU relaxes IoU by replacing counts with probabilities. Berman, Rannen Triki & Blaschko (CVPR
# 2018) take a different route: they view $1 - \mathrm{IoU}$ as a *set function* of the mispredicted
# pixels and extend it to real-valued errors with the **Lovász extension**, the tightest convex function
# that agrees with it on sets.
#
# **You will learn to**
#
# 1. write the Jaccard loss as a set function and check that it is submodular;
# 2. define the Lovász extension, evaluate it with Algorithm 1 (sort, cumulative sums, differences), and
#    see it drawn step by step;
# 3. verify that it is exact at the vertices $\{0,1\}^p$ and convex in between;
# 4. form the Lovász hinge (binary) and Lovász-softmax (multi-class) losses from error vectors;
# 5. show that the Lovász hinge is convex in the logits and Lovász-softmax is not, compare the extension
#    with the soft IoU on two pixels, and explain why training from scratch can stick at the constant
#    logit $z = 0$;
# 6. explain why the batched implementation in `iou_lib` is fast.

# %%
import itertools
import time

import matplotlib.pyplot as plt
import pandas as pd
import torch

from iou_lib import exercises, metrics, relax, viz
from iou_lib.losses import functional

lovasz_hinge, lovasz_softmax = functional("lovasz_hinge"), functional("lovasz_softmax")
g = torch.Generator().manual_seed(0)

# %% [markdown]
# ## 1. The Jaccard loss is a submodular set function
#
# Fix the ground truth foreground $F$. A prediction gets some set $M$ of pixels wrong (false positives
# and false negatives). Its Jaccard loss depends only on $M$:
#
# $$\Delta_J(M) = 1 - \frac{|F \setminus M|}{|F \cup M|} = \frac{|M|}{|F \cup M|}$$
#
# (the intersection lost the foreground pixels in $M$; the union gained the background pixels in $M$).
# `relax.jaccard_set_loss(wrong, target)` is this function. A set function is **submodular** if adding a
# pixel to a larger set never helps more than adding it to a smaller one (diminishing returns):
#
# $$\Delta(A \cup \{v\}) - \Delta(A) \;\ge\; \Delta(B \cup \{v\}) - \Delta(B) \qquad \text{for } A \subseteq B,\ v \notin B.$$
#
# Yu & Blaschko proved the Jaccard loss submodular; a brute-force check over all nested pairs of a
# 7-pixel image:

# %%
y7 = torch.tensor([1, 1, 0, 1, 0, 0, 0])
delta = lambda M: relax.jaccard_set_loss(M, y7).item()  # noqa: E731 - M is a bool mask
masks = [torch.tensor(bits, dtype=torch.bool) for bits in itertools.product([0, 1], repeat=7)]
violations, checked = 0, 0
for B in masks:
    for A in masks:
        if (A & ~B).any():
            continue  # need A subset of B
        for v in torch.nonzero(~B).flatten():
            Av, Bv = A.clone(), B.clone()
            Av[v] = Bv[v] = True
            checked += 1
            violations += delta(Av) - delta(A) < delta(Bv) - delta(B) - 1e-6  # float32 rounding
print(f"{checked} (A, B, v) triples checked, {violations} violations")
assert violations == 0

# %% [markdown]
# ## 2. The Lovász extension
#
# Give each pixel a real error $m_i \ge 0$ instead of a yes/no. Sort the errors in decreasing order,
# $m_{\pi_1} \ge m_{\pi_2} \ge \dots \ge m_{\pi_p}$, and walk along them, adding one pixel at a time to the
# set of "wrong" pixels. The extension charges each error by how much its pixel increases the loss at that
# point:
#
# $$\bar\Delta(m) = \sum_{i=1}^{p} m_{\pi_i}\, g_i(m), \qquad
# g_i(m) = \Delta(\{\pi_1, \dots, \pi_i\}) - \Delta(\{\pi_1, \dots, \pi_{i-1}\}).$$
#
# Properties (Lovász 1983):
#
# * **tight**: on a 0/1 vector $m = \mathbf 1_M$ it equals $\Delta(M)$ (the ones come first in the sort, the
#   sum telescopes to $\Delta(M)$);
# * **convex** exactly when $\Delta$ is submodular, and then it is the convex closure: the largest convex
#   function below $\Delta$ on the vertices;
# * **piecewise linear**: linear on each region where the sort order is fixed, with gradient $g$.
#
# With two pixels (one foreground, one background) the four vertices are $\Delta(\emptyset) = 0$,
# $\Delta(\{1\}) = 1$ (the object is missed), $\Delta(\{2\}) = 1/2$ (one false positive) and
# $\Delta(\{1,2\}) = 1$. The extension fills the square with two linear pieces that meet on the diagonal
# $m_1 = m_2$:

# %%
y2 = torch.tensor([1, 0])
viz.extension_surface(lambda m: relax.lovasz_extension(m, lambda M: relax.jaccard_set_loss(M, y2)),
                      title="Lovász extension of the Jaccard loss, 2 pixels")

# %% [markdown]
# Exactness at every vertex of an 8-pixel problem, and convexity along random segments:

# %%
y8 = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0])
ext = lambda m: relax.lovasz_extension(m, lambda M: relax.jaccard_set_loss(M, y8))  # noqa: E731
for bits in itertools.product([0.0, 1.0], repeat=8):
    m = torch.tensor(bits, dtype=torch.float64)
    assert torch.isclose(ext(m), relax.jaccard_set_loss(m.bool(), y8).double())
for _ in range(200):
    a, b, t = torch.rand(8, generator=g).double(), torch.rand(8, generator=g).double(), torch.rand(1, generator=g).item()
    assert ext(t * a + (1 - t) * b) <= t * ext(a) + (1 - t) * ext(b) + 1e-12
print("exact on all 256 vertices; convex on 200 random segments")

# %% [markdown]
# ## 3. Algorithm 1, step by step
#
# Computing $g$ does not need $p + 1$ calls of the set function. Along the sorted order, with
# $|F|$ foreground pixels, after $i$ steps the intersection has lost the foreground pixels passed so far
# and the union has gained the background pixels passed so far:
#
# $$I_i = |F| - \sum_{k \le i} y_{\pi_k}, \qquad U_i = |F| + \sum_{k \le i} (1 - y_{\pi_k}),
# \qquad \Delta_i = 1 - I_i / U_i,$$
#
# two cumulative sums; $g$ is the sequence of first differences of $\Delta_i$ (with $\Delta_0 = 0$). The
# cost is the sort, $O(p \log p)$. The four steps for one random error vector of 16 pixels:

# %%
labels16 = (torch.rand(16, generator=g) < 0.35).long()
errors16 = torch.rand(16, generator=g, dtype=torch.float64).requires_grad_(True)
value = relax.lovasz_extension(errors16, lambda M: relax.jaccard_set_loss(M, labels16))
(grad16,) = torch.autograd.grad(value, errors16)  # the gradient of the extension is g (in pixel order)
order = torch.argsort(errors16.detach(), descending=True)
viz.lovasz_steps(errors16, labels16, grad16[order])

# %% [markdown]
# Panel 2 climbs to $1 - \mathrm{IoU}$ of "everything wrong" = 1; panel 3 shows that foreground pixels
# (orange) always get positive weight and background pixels get weight only while foreground pixels remain
# further down the list; panel 4 ends at the loss value. Writing Algorithm 1 yourself is Exercise 1.

# %% [markdown]
# **Explore.** A row of 12 pixels, the first four foreground: set each pixel's error with its slider (or
# pick a preset, or draw random errors) and watch the sort, the increments $g_k$ and the extension's
# value beside the soft Jaccard loss of the prediction with the same errors ($p_v = |y_v - m_v|$) and the
# Jaccard loss of that prediction thresholded at 0.5. On 0/1 errors all three agree; in between, which
# one is larger? The second view draws the Lovász extension and the soft Jaccard loss of two pixels on one
# colour scale: compare the straight, kinked contours of the one with the smooth ones of the other.
#
# *Run the cells above to start the explorer* (a static copy of this page shows a picture of it).

# %%
# NBVAL_IGNORE_OUTPUT
from iou_lib.widgets import LovaszExplorer

LovaszExplorer()

# %% [markdown]
# ## 4. The hinge and softmax forms
#
# **Lovász hinge** (binary). With logits $z_i$ and labels $y_i \in \{0, 1\}$, the hinge error of pixel $i$
# is $m_i = \max(0,\ 1 - z_i(2y_i - 1))$: zero when the logit is on the right side with margin 1. The loss
# is $\bar\Delta_J(m)$. At logits $\pm 1$ (a hard prediction with unit margin) the errors are 0 or 2, so
# the loss is $2(1 - \mathrm{IoU})$ of the thresholded prediction. Check the library against the textbook
# definition:

# %%
y = (torch.rand(1, 1, 6, 6, generator=g) < 0.3).double()
z = torch.randn(1, 1, 6, 6, generator=g, dtype=torch.float64)
hinge_errors = torch.relu(1 - z * (2 * y - 1)).flatten()
textbook = relax.lovasz_extension(hinge_errors, lambda M: relax.jaccard_set_loss(M, y.flatten()))
assert torch.isclose(lovasz_hinge(z, y), textbook)
hard = 2 * (z > 0).double() - 1  # logits +-1
iou = metrics.binary_iou((hard > 0).long(), y.long())
assert torch.isclose(lovasz_hinge(hard, y), 2 * (1 - iou.double()))
print(f"library {lovasz_hinge(z, y):.6f} = textbook {textbook:.6f};  at logits +-1: {lovasz_hinge(hard, y):.4f} = 2(1 - IoU)")

# %% [markdown]
# **Lovász-softmax** (multi-class). With softmax probabilities $f_i(c)$, the error of pixel $i$ for class
# $c$ is $m_i(c) = 1 - f_i(c)$ if $c$ is its label and $f_i(c)$ otherwise; the loss averages
# $\bar\Delta_{J_c}(m(c))$ over the classes present. On one-hot probabilities the errors are 0/1 indicators
# of the pixels misclassified with respect to $c$, so the loss is exactly $1 - \mathrm{mIoU}$, the check
# that would have caught a silently wrong implementation in a widely used library, whose tests never
# compared the loss with this identity:

# %%
target = torch.randint(0, 4, (2, 8, 8), generator=g)
pred = torch.where(torch.rand(2, 8, 8, generator=g) < 0.3, torch.randint(0, 4, (2, 8, 8), generator=g), target)
one_hot_logits = 60.0 * torch.nn.functional.one_hot(pred, 4).permute(0, 3, 1, 2).double()
miou = metrics.mean_iou(pred, target, 4)  # classes absent from both prediction and target are left out
assert torch.isclose(lovasz_softmax(one_hot_logits, target), 1 - miou.double())
print(f"Lovász-softmax on one-hot predictions {lovasz_softmax(one_hot_logits, target):.4f} = 1 - mIoU {1 - miou:.4f}")

# %% [markdown]
# Where soft IoU's gradient depends on a pixel only through its label (notebook 02), the Lovász gradient
# depends on its *rank*: the pixel with the largest error gets weight $g_1$, and a background error ranked
# below every foreground error gets nothing. Notebook 03 showed what this does to the gradient field.

# %% [markdown]
# ## 5. Convex in the errors, and in the logits?
#
# **The Lovász hinge is convex in the logits.** Two facts compose:
#
# * each hinge error $m_i(z) = \max(0,\ 1 - z_i (2y_i - 1))$ is a convex function of the logits (the
#   maximum of two affine functions);
# * $\bar\Delta_J$ is convex (section 2) and **non-decreasing** in every error: its gradient is the vector of
#   increments $g_i = \Delta(\{\pi_1..\pi_i\}) - \Delta(\{\pi_1..\pi_{i-1}\})$, and the Jaccard loss never
#   decreases when a pixel is added to the set of mistakes (a missed object pixel raises $|M|$ at a
#   fixed union; a false positive raises $|M|$ and $|F \cup M|$ by one, and $(a + 1)/(b + 1) \ge a/b$ for
#   $a \le b$), so $g_i \ge 0$.
#
# A convex, non-decreasing function of convex functions is convex:
# $\bar\Delta(m(t z + (1-t) z')) \le \bar\Delta(t\, m(z) + (1-t)\, m(z')) \le t\, \bar\Delta(m(z)) + (1-t)\, \bar\Delta(m(z'))$,
# the first step by monotonicity and the convexity of $m$, the second by the convexity of $\bar\Delta$.
# So the Lovász hinge, as a function of the logits, has no spurious local minima. Checked on random
# segments, together with $g \ge 0$:

# %%
y36 = (torch.rand(1, 1, 6, 6, generator=g) < 0.3).double()
y36.view(-1)[0] = 1
for _ in range(300):
    za, zb = (3 * torch.randn(1, 1, 6, 6, generator=g, dtype=torch.float64) for _ in range(2))
    t = torch.rand(1, generator=g).item()
    assert lovasz_hinge(t * za + (1 - t) * zb, y36) <= t * lovasz_hinge(za, y36) + (1 - t) * lovasz_hinge(zb, y36) + 1e-12
    m = torch.rand(36, generator=g, dtype=torch.float64).requires_grad_(True)
    (g_m,) = torch.autograd.grad(relax.lovasz_extension(m, lambda M: relax.jaccard_set_loss(M, y36.flatten())), m)
    assert (g_m >= 0).all()  # non-decreasing in every error
print("Lovász hinge convex in the logits on 300 random segments; all increments g >= 0")

# %% [markdown]
# **Lovász-softmax is not convex in the logits.** Its errors are $1 - f_i(c)$ and $f_i(c)$ with the
# softmax $f$, which is not convex (nor concave) in the logits: with two classes $f_i(c) = \sigma(z_c - z_{c'})$, an
# S-shaped curve. The extension is still convex in the *errors*; the composition loses it. One pixel
# of class 0 and two classes is enough: the loss is $1 - \sigma(d)$ with $d = z_0 - z_1$, concave for $d < 0$:

# %%
one_pixel = torch.zeros(1, 1, 1, dtype=torch.long)  # a single pixel of class 0


def softmax_loss(d):
    return lovasz_softmax(torch.tensor([d, 0.0], dtype=torch.float64).view(1, 2, 1, 1), one_pixel).item()


mid, chord = softmax_loss(-2.0), (softmax_loss(-4.0) + softmax_loss(0.0)) / 2
assert abs(mid - (1 - torch.sigmoid(torch.tensor(-2.0)).item())) < 1e-6  # = 1 - sigma(d)
assert mid > chord  # above the chord: not convex
print(f"at d = -2: {mid:.3f} > chord between d = -4 and d = 0: {chord:.3f}")

# %% [markdown]
# **Soft IoU and the Lovász extension side by side.** Take the two pixels of section 2 (one foreground,
# one background) and write the soft IoU loss in the same error coordinates, $m_1 = 1 - p_1$ (how much
# the object is missed) and $m_2 = p_2$ (the false positive): $I = 1 - m_1$, $U = 1 + m_2$, so
#
# $$L_{\mathrm{soft}}(m) = 1 - \frac{1 - m_1}{1 + m_2} = \frac{m_1 + m_2}{1 + m_2}, \qquad
# \bar\Delta(m) = \begin{cases} m_1 & m_1 \ge m_2 \\ (m_1 + m_2)/2 & m_1 < m_2. \end{cases}$$
#
# Both take the set values 0, 1, 1/2, 1 at the corners. In between they differ: the extension is
# piecewise linear with a crease on the diagonal, the soft IoU is smooth and curved, concave along
# $m_2$ ($\partial^2 L_{\mathrm{soft}}/\partial m_2^2 = -2(1 - m_1)/(1 + m_2)^3 \le 0$), so not convex, and it lies
# above the extension (the extension is the largest convex function that matches the corners).

# %%
grid2 = torch.linspace(0, 1, 81, dtype=torch.float64)
m1, m2 = torch.meshgrid(grid2, grid2, indexing="xy")  # m1 along x, m2 along y
soft_surface = (m1 + m2) / (1 + m2)
lovasz_surface = torch.stack([relax.lovasz_extension(torch.stack([a, b]), lambda M: relax.jaccard_set_loss(M, y2))
                              for a, b in zip(m1.flatten(), m2.flatten(), strict=True)]).view_as(m1)
assert torch.allclose(lovasz_surface, torch.where(m1 >= m2, m1, (m1 + m2) / 2))  # the cases above
assert (soft_surface >= lovasz_surface - 1e-12).all()  # soft IoU lies above the convex closure
corners = [(0, 0), (0, -1), (-1, 0), (-1, -1)]
assert all(abs(soft_surface[i, j] - lovasz_surface[i, j]) < 1e-12 for i, j in corners)  # equal on the sets
fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.6), layout="constrained")
for ax, (name, surface) in zip(axes, {"soft IoU loss": soft_surface, "Lovász extension": lovasz_surface}.items(),
                               strict=True):
    im = ax.imshow(surface, origin="lower", extent=(0, 1, 0, 1), vmin=0, vmax=1, cmap="viridis")
    ax.contour(grid2, grid2, surface, levels=10, colors="w", linewidths=0.6)
    ax.set(title=name, xlabel="$m_1$ = 1 - $p_1$ (object pixel missed)", ylabel="$m_2$ = $p_2$ (false positive)")
fig.colorbar(im, ax=axes, shrink=0.85)
plt.close(fig)
fig

# %% [markdown]
# **Why training from scratch can stick at $z = 0$.** Take a network that outputs the same logit $c$ for
# every pixel (what a network whose features do not yet separate the classes can do best). With a
# fraction $f$ of foreground pixels the hinge errors are $1 - c$ on the object and $1 + c$ on the background,
# and Algorithm 1 gives
#
# $$L(c) = \begin{cases} 1 - c & c \le 0 \quad(\text{object errors first: they carry all the weight}) \\
#                        1 + c\,(1 - 2f) & 0 \le c \le 1 \quad(\text{background errors first}). \end{cases}$$
#
# A V with its minimum $L = 1$ at $c = 0$: a **kink**, not a smooth valley. Its slopes, $-1$ and
# $1 - 2f$, do not shrink near the minimum, so every step away from $z = 0$ is pushed back at full
# strength; and at $z = 0$ all errors tie, so which pixels get weight is decided by ties and noise, not
# by the labels. A network at initialisation, whose logits are all near 0, is drawn onto this point and
# can stay there: loss 1, every probability 0.5, nothing learned. BCE, by contrast, has a smooth minimum
# among constants at $c = \log\frac{f}{1 - f}$ and a gradient that always carries the labels. This is why
# Berman et al. advise training with cross-entropy first: after a warm-up the logits already separate the
# classes, the errors are far from tied, and the hinge refines a ranking instead of creating one.
# Notebook 06 trains the Lovász hinge both from scratch and after a BCE warm-up, and shows how to
# recognise a run stuck at this point.

# %%
y_c = torch.zeros(1, 1, 20, 20, dtype=torch.float64)
y_c[..., :2, :] = 1  # f = 10 % foreground
f_c = y_c.mean().item()
cs = torch.linspace(-3, 1, 81, dtype=torch.float64)  # the hinge formula holds up to c = 1
const = pd.DataFrame([{"constant logit c": c.item(), "loss": name,
                       "value": functional(name)(torch.full_like(y_c, c.item()), y_c).item()}
                      for c in cs for name in ("lovasz_hinge", "bce", "soft_iou")])
hinge = const[const["loss"] == "lovasz_hinge"].set_index("constant logit c")["value"]
formula = [1 - c if c <= 0 else 1 + c * (1 - 2 * f_c) for c in hinge.index]
assert max(abs(hinge.to_numpy() - formula)) < 1e-9 and abs(hinge.idxmin()) < 1e-9 and abs(hinge.min() - 1) < 1e-9
viz.line_plot(const, "constant logit c", "value", hue="loss", ylabel="loss at a constant logit",
              marks={"z = 0": 0.0})

# %% [markdown]
# ## 6. Why the batched implementation is fast
#
# The textbook definition calls the set function $p + 1$ times; Algorithm 1 needs one sort and two
# cumulative sums per image. `iou_lib.losses.lovasz` goes further (its module docstring has the details):
#
# * **one sort for the whole batch**: every image's errors become one 1-D integer key (image index, then
#   the bit pattern of the positive float32 error, which orders like the value), so a single
#   `torch.sort` call on integers, which takes a radix path, replaces a Python loop of per-image float sorts;
# * **drop what cannot matter**: errors $\le 0$ get no weight, and once every foreground pixel has been
#   passed $\Delta$ stays at 1, so errors below the smallest foreground error have $g = 0$; late in training
#   only a small fraction of pixels is left to sort;
# * **closed-form weights** from cumulative counts of foreground and background in sorted order, with no
#   difference of nearly equal numbers.
#
# A rough timing, on one thread (on a shared machine, multi-threaded timings of small calls mostly
# measure the wait for a free core; the ratio is what matters):

# %%
def best_of(fn, repeats=5):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


threads = torch.get_num_threads()
torch.set_num_threads(1)
yb = (torch.rand(16, 1, 64, 64, generator=g) < 0.1).float()
zb = torch.randn(16, 1, 64, 64, generator=g)
batched = best_of(lambda: lovasz_hinge(zb, yb, per_image=True))
looped = best_of(lambda: torch.stack([lovasz_hinge(zb[i : i + 1], yb[i : i + 1]) for i in range(16)]).mean())
assert torch.isclose(lovasz_hinge(zb, yb), torch.stack([lovasz_hinge(zb[i : i + 1], yb[i : i + 1]) for i in range(16)]).mean())
small_z, small_y = zb[0, 0, :16, :16].double(), yb[0, 0, :16, :16]
textbook_t = best_of(lambda: relax.lovasz_extension(torch.relu(1 - small_z * (2 * small_y - 1)).flatten(),
                                                     lambda M: relax.jaccard_set_loss(M, small_y.flatten())), 1)
print(f"16 images of 64x64: batched {batched * 1e3:.1f} ms, one call per image {looped * 1e3:.1f} ms")
print(f"textbook definition, ONE 16x16 image: {textbook_t * 1e3:.0f} ms")
torch.set_num_threads(threads)

# %% [markdown]
# ## Summary
#
# * $1 - \mathrm{IoU}$ is a submodular function of the set of mispredicted pixels.
# * Its Lovász extension is convex, piecewise linear and exact on sets; it is computed by sorting the
#   errors and differencing the Jaccard loss of the growing prefixes (Algorithm 1), $O(p \log p)$.
# * The Lovász hinge applies it to hinge errors of logits; Lovász-softmax to $|[y = c] - f(c)|$ per class;
#   on one-hot predictions the latter is exactly $1 - \mathrm{mIoU}$.
# * The Lovász hinge is convex in the logits (a convex, non-decreasing extension of convex hinge errors);
#   Lovász-softmax is not (the softmax). On two pixels the extension lies below the smooth, non-convex
#   soft IoU and agrees with it on the corners.
# * Among constant predictions the hinge has a kink at $z = 0$ (loss 1): from scratch a network can stay
#   there. Its authors advise a cross-entropy warm-up; notebook 06 trains the Lovász hinge both from
#   scratch and after a BCE warm-up.
# * Its gradient weights pixels by rank, not by label count.

# %% [markdown]
# ## Exercises
#
# **Exercise 1.** Write Algorithm 1: `my_lovasz_grad(gt_sorted)` takes the {0, 1} labels of the pixels
# already sorted by decreasing error (a 1-D float tensor) and returns $g$ (same shape). Use two cumulative
# sums and one first difference; no loop.

# %% tags=["exercise"]
def my_lovasz_grad(gt_sorted):
    # your code here
    raise NotImplementedError


# %% jupyter={"source_hidden": true} tags=["solution"]
def my_lovasz_grad(gt_sorted):
    n_fg = gt_sorted.sum()
    inter = n_fg - gt_sorted.cumsum(0)
    union = n_fg + (1 - gt_sorted).cumsum(0)
    jaccard = 1 - inter / union
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])


# %%
exercises.check_lovasz_grad(my_lovasz_grad)

# %% [markdown]
# **Exercise 2 (think).** For an image without foreground, $|F| = 0$ and $\Delta_J(M) = 1$ for every
# non-empty $M$. What is $\bar\Delta_J(m)$? Which pixels receive a gradient, and what does that mean for
# false positives on empty images? Compare with the soft IoU's blind spot in notebook 02.

# %% [markdown] jupyter={"source_hidden": true} tags=["solution"]
# *Solution.* Sorted in decreasing order, the first increment is $g_1 = \Delta(\{\pi_1\}) - \Delta(\emptyset)
# = 1$ and every later one is $1 - 1 = 0$, so $\bar\Delta_J(m) = m_{\pi_1} = \max_i m_i$: the largest error.
# Only the pixel with the largest error receives a gradient (weight 1); for the hinge that is the most
# confident false positive, $\bar\Delta = \max(0, 1 + \max_i z_i)$. False positives on an empty image are
# therefore penalised, unlike the raw soft IoU whose gradient there is exactly zero, but one pixel at a
# time: each step lowers only the current worst logit, and the loss reaches 0 only when every logit is
# at most $-1$.

# %% jupyter={"source_hidden": true} tags=["solution"]
empty = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
z_e = torch.randn(1, 1, 6, 6, generator=g, dtype=torch.float64).requires_grad_(True)
value_e = lovasz_hinge(z_e, empty)
(grad_e,) = torch.autograd.grad(value_e, z_e)
assert torch.isclose(value_e, torch.relu(1 + z_e.max()))  # the largest hinge error
assert (grad_e != 0).sum() == 1 and grad_e.flatten().argmax() == z_e.flatten().argmax()  # one pixel only
print(f"empty image: loss {value_e:.3f} = 1 + max z; gradient on {(grad_e != 0).sum().item()} of 36 pixels")

# %% [markdown]
# ## References
#
# * M. Berman, A. Rannen Triki and M. B. Blaschko. The Lovász-Softmax Loss: A Tractable Surrogate for the
#   Optimization of the Intersection-over-Union Measure in Neural Networks. *CVPR 2018*. arXiv:1705.08790
# * J. Yu and M. B. Blaschko. The Lovász Hinge: A Novel Convex Surrogate for Submodular Losses. *IEEE
#   Transactions on Pattern Analysis and Machine Intelligence* 42(3), 2020 (online 2018); first as
#   "Learning Submodular Losses with the Lovász Hinge", *ICML 2015*. arXiv:1512.07797
# * L. Lovász. Submodular Functions and Convexity. In *Mathematical Programming: The State of the Art*
#   (A. Bachem, M. Grötschel, B. Korte, eds.), pp. 235-257, Springer, 1983.
# * M. A. Rahman and Y. Wang. Optimizing Intersection-over-Union in Deep Neural Networks for Image
#   Segmentation. *ISVC 2016*, LNCS 10072, pp. 234-244, Springer, 2016. doi:10.1007/978-3-319-50835-1_22
