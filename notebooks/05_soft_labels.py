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
# 3. see what each loss does to predictions trained against label-smoothed targets.

# %%
import pandas as pd
import torch

from iou_lib import exercises, relax, viz
from iou_lib.data.synthetic import blob_masks
from iou_lib.losses import functional

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
# The JML replaces the intersection by an L1 form that is correct for soft values,
# $I = \tfrac12(\|p\|_1 + \|y\|_1 - \|p - y\|_1)$, $U = \|p\|_1 + \|y\|_1 - I$:
#
# $$L_{\mathrm{JML}}(p, y) = 1 - \frac{\|p\|_1 + \|y\|_1 - \|p - y\|_1}{\|p\|_1 + \|y\|_1 + \|p - y\|_1},$$
#
# which is 0 if and only if $p = y$. For hard labels $\|p - y\|_1 = \sum p + \sum y - 2\sum py$, and the JML
# *is* the soft Jaccard loss. Both as functions of $x$, for two soft targets:

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
# ## 2. Training against label-smoothed masks
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
viz.mask_grid(torch.cat([smoothed[:2], fitted["soft Jaccard"][:2], fitted["Jaccard metric (JML)"][:2]]),
              titles=["target 1", "target 2", "soft Jaccard 1", "soft Jaccard 2", "JML 1", "JML 2"])

# %% [markdown]
# ## 3. Nothing changes for hard labels
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
