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
# 5. explain why the batched implementation in `iou_lib` is fast.

# %%
import itertools
import time

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
# that caught a silently wrong implementation in a widely used library (see DESIGN.md):

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
# ## 5. Why the batched implementation is fast
#
# The textbook definition calls the set function $p + 1$ times; Algorithm 1 needs one sort and two
# cumulative sums per image. `iou_lib.losses.lovasz` goes further (see its module docstring and
# `research/lovasz-speed.md` in the project notes):
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
# * Its gradient weights pixels by rank, not by label count; it is typically used to fine-tune a model
#   trained with cross-entropy (notebook 06 tests this).

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
