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
# # 01 · Measuring segmentation
#
# Before optimising IoU we need to know what it measures, why accuracy is the wrong yardstick when the
# object is small, and how the *same* predictions can get different IoUs depending on how pixels are
# pooled.
#
# **You will learn to**
#
# 1. see the accuracy trap: a predictor that finds nothing scores 90 % accuracy at 10 % foreground;
# 2. compute IoU (Jaccard) and Dice from a confusion matrix and convert one into the other,
#    $D = 2J/(1+J)$;
# 3. tell per-image IoU ($\mathrm{mIoU}^I$) from dataset IoU ($\mathrm{mIoU}^D$), and know which objects
#    each one favours;
# 4. handle absent classes and empty masks the way `iou_lib` documents them.

# %%
import pandas as pd
import torch
import torch.nn.functional as F

from iou_lib import exercises, metrics, viz
from iou_lib.config import data_dir
from iou_lib.data.synthetic import blob_masks

# %% [markdown]
# ## 1. The accuracy trap
#
# Rahman & Wang motivate the IoU loss with one example: if 90 % of the pixels are background, labelling
# everything background is 90 % accurate. Eight synthetic masks of 64 × 64 pixels with 10 % foreground
# (`blob_masks`, the workbook's procedural masks), and four predictors:

# %%
target = blob_masks(8, 64, 0.10, n_objects=3, seed=0).long()
predictors = {
    "all background": torch.zeros_like(target),
    "all foreground": torch.ones_like(target),
    "shifted by 4 px": target.roll(shifts=4, dims=-1),
    "generous (3 px wider)": F.max_pool2d(target.float(), 7, stride=1, padding=3).long(),  # dilation
}
viz.error_map(torch.cat([p[:1] for p in predictors.values()]), target[:1].expand(4, -1, -1, -1),
              titles=list(predictors))

# %%
rows = []
for name, pred in predictors.items():
    cm = metrics.confusion_matrix(pred, target, 2)
    rows.append({"predictor": name,
                 "pixel accuracy": metrics.accuracy_from_confusion(cm).item(),
                 "IoU (foreground)": metrics.iou_from_confusion(cm)[1].item(),
                 "Dice (foreground)": metrics.dice_from_confusion(cm)[1].item()})
scores = pd.DataFrame(rows).set_index("predictor")
trap = scores.loc["all background"]
assert abs(trap["pixel accuracy"] - 0.9) < 0.005 and trap["IoU (foreground)"] == 0
assert scores.loc["generous (3 px wider)", "pixel accuracy"] < trap["pixel accuracy"]  # finds all, scores lower
scores.round(3)

# %% [markdown]
# The all-background predictor scores 90 % accuracy with IoU 0. The generous prediction, which finds every
# object with a 3-pixel margin (IoU 0.45), is *less* accurate than finding nothing at all, and the shifted
# one beats doing nothing by only 3 points of accuracy. Accuracy counts true negatives, and at low
# foreground fractions true negatives are almost everything. IoU ignores them:
#
# $$\mathrm{IoU} = J = \frac{|A \cap B|}{|A \cup B|} = \frac{TP}{TP + FP + FN}, \qquad
# \text{accuracy} = \frac{TP + TN}{TP + TN + FP + FN}.$$
#
# A loss that rewards accuracy (per-pixel cross-entropy) inherits the trap: notebook 03 shows its
# gradient outvoted by the background, notebooks 06-07 show what that does in training.

# %% [markdown]
# ## 2. IoU and Dice
#
# The Dice coefficient (F1 score of the foreground pixels) is
#
# $$D = \frac{2|A\cap B|}{|A| + |B|} = \frac{2\,TP}{2\,TP + FP + FN}.$$
#
# Write $t = TP$ and $e = FP + FN$. Then $J = t/(t + e)$ and $D = 2t/(2t + e)$; eliminating $e$,
#
# $$D = \frac{2J}{1 + J}, \qquad J = \frac{D}{2 - D}.$$
#
# So Dice and IoU rank predictions *of one image* identically; $J \le D \le 2J$, and the largest gap
# $D - J = 3 - 2\sqrt 2 \approx 0.17$ sits at $J = \sqrt 2 - 1$. (Averages over images do not convert
# exactly, because the map is non-linear.)

# %%
viz.dice_jaccard_plot()

# %%
pred = predictors["shifted by 4 px"]
cm = metrics.confusion_matrix(pred, target, 2, per_image=True)
J, D = metrics.iou_from_confusion(cm)[:, 1], metrics.dice_from_confusion(cm)[:, 1]
assert torch.allclose(D, 2 * J / (1 + J)) and (D - J <= 3 - 2 * 2**0.5 + 1e-12).all()
pd.DataFrame({"IoU J": J, "Dice D": D, "2J/(1+J)": 2 * J / (1 + J)}).round(4).head(4)

# %% [markdown]
# ## 3. Per-image or dataset IoU?
#
# Over a data set there are two natural averages:
#
# * **dataset IoU** $\mathrm{mIoU}^D$: add up TP, FP, FN over all images, then take one ratio (PASCAL VOC
#   since 2008). Large objects have many pixels and dominate it.
# * **per-image IoU** $\mathrm{mIoU}^I$: one ratio per image, then the mean. Every image counts the same,
#   so a missed small object costs as much as a missed large one.
#
# Four images with one large object each and four with one small object; a predictor that gets the large
# objects nearly right (shifted by 2 px) and the small ones badly (shifted by 6 px):

# %%
large = blob_masks(4, 64, 0.25, n_objects=1, seed=1).long()
small = blob_masks(4, 64, 0.01, n_objects=1, seed=2).long()
target2 = torch.cat([large, small])
pred2 = torch.cat([large.roll(2, dims=-1), small.roll(6, dims=-1)])

acc = metrics.IoUAccumulator(num_classes=2)
acc.update(pred2, target2)
summary = acc.compute()
per_image = metrics.class_iou(pred2, target2, 2, per_image=True)[:, 1]
print(f"dataset IoU (mIoU^D, foreground): {summary.iou[1]:.3f}")
print(f"per-image IoU (mIoU^I, foreground): {summary.iou_per_image[1]:.3f}")
print("per image:", [round(v, 2) for v in per_image.tolist()])
assert summary.iou[1] > summary.iou_per_image[1] + 0.2
assert torch.isclose(summary.iou_per_image[1], per_image.double().mean().to(summary.iou_per_image.dtype))

# %% [markdown]
# The dataset IoU says the predictor is good; the per-image IoU says half of the images are badly
# segmented. Neither is wrong: they answer different questions. A loss can target either one: soft IoU
# with `per_image=False` pools the batch (the batch's $\mathrm{mIoU}^D$), `per_image=True` averages images
# ($\mathrm{mIoU}^I$); notebook 03 shows how this changes the gradient on small objects.

# %% [markdown]
# ## 4. Absent classes and empty masks
#
# An image whose target has no foreground, predicted with no foreground, has $TP = FP = FN = 0$: IoU is
# $0/0$. Conventions differ between libraries; `iou_lib.metrics` documents its own:

# %%
print(metrics.__doc__.split("**Absent classes.**")[1].split("``ignore_index``")[0].strip())

# %%
empty = torch.zeros(1, 8, 8, dtype=torch.long)
one_fp = empty.clone()
one_fp[0, 0, 0] = 1
cases = {"empty target, empty prediction": (empty, empty),
         "empty target, one false positive": (one_fp, empty)}
table = pd.DataFrame({name: {"IoU (default: NaN = left out)": metrics.binary_iou(p, t).item(),
                             "IoU with absent_score=1": metrics.binary_iou(p, t, absent_score=1.0).item()}
                      for name, (p, t) in cases.items()}).T
assert table.iloc[0, 0] != table.iloc[0, 0] and table.iloc[0, 1] == 1.0 and (table.iloc[1] == 0).all()
table

# %% [markdown]
# The same in a three-class image where class 2 appears in neither prediction nor target:

# %%
t3 = torch.tensor([[0, 0, 1, 1]])
p3 = torch.tensor([[0, 1, 1, 1]])
per_class = metrics.class_iou(p3, t3, 3)
print(f"per-class IoU: {[round(v, 3) for v in per_class.tolist()]}  ->  mIoU {metrics.mean_iou(p3, t3, 3):.4f} over the 2 present classes")
assert per_class[2].isnan() and torch.isclose(metrics.mean_iou(p3, t3, 3), (per_class[0] + per_class[1]) / 2)

# %% [markdown]
# With the default, an image without foreground (correctly predicted empty) is left out of the per-image
# mean rather than counted as a perfect 1 or a failed 0; a single false positive on it scores 0. The same
# rule applies per class in multi-class IoU, as above: a class absent from both prediction and target
# does not enter the mean. Be aware of the convention whenever you compare numbers across
# libraries: counting empty images as 1 can raise a per-image mean by many points on data sets with many
# empty images.
#
# Losses need a rule too, for the *gradient*: notebook 02 shows that the plain soft IoU gives no gradient
# at all on an empty image.

# %% [markdown]
# ## 5. A real label (optional)
#
# If the CamVid road scenes are available (`IOU_DATA_DIR`, see `data/README.md`), the accuracy trap on a
# real class: pedestrians cover well under 1 % of the pixels. Without the data this cell says so and moves
# on.

# %%
root = data_dir()
if root is not None and ((root / "camvid").is_dir() or (root / "train" / "labels").is_dir()):
    from iou_lib.data.folders import camvid

    peds = camvid(root, split="val", cls="pedestrian")
    labels = peds.labels.long()
    nothing = torch.zeros_like(labels)
    cm = metrics.confusion_matrix(nothing, labels, 2, ignore_index=peds.ignore_index)
    print(f"CamVid val, pedestrian: {peds.foreground_fraction():.2%} of the labelled pixels; predicting "
          f"no pedestrian anywhere gives accuracy {metrics.accuracy_from_confusion(cm):.2%}, "
          f"IoU {metrics.iou_from_confusion(cm)[1]:.2f}")
    i = int((labels == 1).flatten(1).sum(1).argmax())  # the image with the most pedestrian pixels
    fig = viz.image_overlay(peds.images[i : i + 1], labels[i : i + 1] == 1,
                            titles=[f"val image {i}: pedestrians in orange ({(labels[i] == 1).float().mean():.1%})"])
else:
    fig = None
    print("IOU_DATA_DIR is not set (or holds no CamVid): skipping the real-data example.")
fig

# %% [markdown]
# ## Summary
#
# * Pixel accuracy is dominated by true negatives: at 10 % foreground, predicting nothing is 90 %
#   accurate with IoU 0. IoU and Dice ignore true negatives.
# * $D = 2J/(1+J)$ per image: Dice and IoU order the predictions of one image identically and differ by at
#   most 0.17.
# * Dataset IoU pools pixels and favours large objects; per-image IoU averages images and weighs a small
#   object like a large one. Say which one you report, and train for the one you report.
# * An empty target with an empty prediction is 0/0: `iou_lib` scores it NaN (left out of means) by
#   default, or 1 with `absent_score=1.0`.

# %% [markdown]
# ## Exercise
#
# Write `my_per_image_iou(pred, target)`: hard {0, 1} masks of shape `(B, H, W)` in, the foreground IoU of
# each image out (shape `(B,)`), with NaN for an image whose target and prediction are both empty.
# (Hint: in PyTorch `0 / 0` on floats gives NaN by itself.)

# %% tags=["exercise"]
def my_per_image_iou(pred, target):
    # your code here
    raise NotImplementedError


# %% jupyter={"source_hidden": true} tags=["solution"]
def my_per_image_iou(pred, target):
    a, b = pred.bool().flatten(1), target.bool().flatten(1)
    return (a & b).sum(1) / (a | b).sum(1)


# %%
exercises.check_per_image_iou(my_per_image_iou)

# %% [markdown]
# ## References
#
# * M. A. Rahman and Y. Wang. Optimizing Intersection-over-Union in Deep Neural Networks for Image
#   Segmentation. *ISVC 2016*, LNCS 10072, pp. 234-244, Springer, 2016. doi:10.1007/978-3-319-50835-1_22
# * M. Everingham, L. Van Gool, C. K. I. Williams, J. Winn and A. Zisserman. The PASCAL Visual Object
#   Classes (VOC) Challenge. *International Journal of Computer Vision* 88(2), pp. 303-338, 2010.
# * Z. Wang, M. Berman, A. Rannen-Triki, P. H. S. Torr, D. Tuia, T. Tuytelaars, L. Van Gool, J. Yu and
#   M. B. Blaschko. Revisiting Evaluation Metrics for Semantic Segmentation: Optimization and Evaluation of
#   Fine-grained Intersection over Union. *NeurIPS 2023, Datasets and Benchmarks*. arXiv:2310.19252
#   (per-image and dataset mIoU).
# * G. J. Brostow, J. Fauqueur and R. Cipolla. Semantic Object Classes in Video: A High-Definition Ground
#   Truth Database. *Pattern Recognition Letters* 30(2), pp. 88-97, 2009 (CamVid).
