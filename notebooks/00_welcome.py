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
# # 00 · Welcome: optimising IoU directly
#
# Segmentation models are judged by the **intersection over union** (IoU, the Jaccard index) of their
# masks, yet they are usually trained with per-pixel cross-entropy. When the object covers a small
# fraction of the image the two disagree: a model can be 99 % accurate and find nothing. This workbook
# derives, implements, checks and tests losses that optimise IoU directly:
#
# * the **soft IoU** of Rahman & Wang (2016) and its sibling **soft Dice**;
# * the **Lovász hinge** and **Lovász-softmax** of Berman et al. (2018);
# * the **Jaccard metric loss** of Wang et al. (2023) for soft labels;
#
# against the per-pixel baselines (BCE, class-weighted BCE, focal loss), on synthetic masks with a
# foreground-fraction knob and on real road scenes (CamVid).
#
# It is two things at once: a **book** (these notebooks, read in order) and a **library**, `iou_lib`,
# that the book calls. A formula is derived once in a notebook, implemented once in `iou_lib`, and the
# notebook checks the implementation against its own derivation (autograd, finite differences, brute
# force) with `assert`s that would fail if either were wrong.

# %% [markdown]
# ## Reading order
#
# | notebook | what you do there |
# |---|---|
# | **00 welcome** | this page: profiles, device, how widgets and exercises work |
# | **01 measuring segmentation** | the accuracy trap; IoU, Dice and $D = 2J/(1+J)$; per-image vs dataset IoU; empty masks |
# | **02 soft IoU** | derive the relaxation, its gradient ($-1/U$, $I/U^2$) and how its balance moves during training; the empty-image blind spot; soft Dice and Tversky |
# | **03 gradient fields** | per-pixel gradients of six losses on imbalanced masks; an interactive explorer |
# | **04 Lovász** | submodularity, the Lovász extension, Algorithm 1 step by step, hinge and softmax forms, convexity in the logits, the kink at $z = 0$ |
# | **05 soft labels** | why soft Jaccard fails on soft targets; the Jaccard metric loss derived, checked as a metric, and trained on smoothed masks |
# | **06 training losses** | train a small U-Net with each loss; from scratch vs fine-tuning |
# | **07 imbalance sweep** | where IoU losses beat BCE as the foreground shrinks |
# | **08 CamVid** | the same questions on real road scenes, rare classes included |
#
# 01-05 are theory: fast, no training. 06-08 are experiments: they train models, sized by a profile.
#
# ## The experiments, by label
#
# Notebooks 06-08 refer to their experiments by these labels. Each states an expectation taken from the
# literature (see the references below); the notebooks report what the runs actually show, including
# where it differs.
#
# | label | question | expectation from the literature | where |
# |---|---|---|---|
# | **E1** | the accuracy trap | predicting all background is $1 - f$ accurate at foreground fraction $f$, with IoU 0 (Rahman & Wang's motivating example) | 01, 06 |
# | **E2** | core comparison: BCE, soft IoU, soft IoU after BCE, BCE + soft IoU, at threshold 0.5 | IoU-trained models score higher IoU, most at small foreground fractions (Rahman & Wang; Ma et al.) | 06, 08 |
# | **E3** | from scratch or after a cross-entropy warm-up | an IoU surrogate alone, from scratch, can train worse than cross-entropy; warm-up then fine-tuning, or a mix, does best (Berman et al.; Wang, Ning & Blaschko) | 04, 06, 08 |
# | **E4** | foreground-fraction sweep | the IoU-loss advantage over BCE grows as the foreground shrinks (the hypothesis van Beers et al. left untested) | 07 |
# | **E5** | per-image or batch aggregation, and images without foreground | each aggregation wins on the metric it matches ($\mathrm{mIoU}^I$ or $\mathrm{mIoU}^D$); empty images expose the per-image loss's zero gradient | 07 |
# | **E6** | surrogate shoot-out: soft IoU, soft Dice, Lovász hinge, (weighted) BCE | the metric surrogates are statistically indistinguishable and beat (weighted) BCE on IoU (Eelbode et al.) | 06, 07 |

# %% [markdown]
# ## Profiles: how big a run is
#
# Every experiment reads its sizes (image size, number of images, steps, seeds, model width) from a
# **profile**, chosen by the environment variable `IOU_PROFILE`:
#
# * `fast`: continuous integration, a course lab or a first read on 2 CPU cores; small, and still shows real
#   learning;
# * `cpu`: a laptop; larger images and more steps, enough for stable conclusions. On a laptop CPU the
#   training notebooks 06-08 then take long (the measured times are below): each training cell prints its
#   own estimate before it starts and asks you to confirm anything longer than 15 minutes;
# * `gpu`: full size on a CUDA GPU.
#
# Without `IOU_PROFILE` the profile is `gpu` when CUDA is available and `cpu` otherwise. Set it before
# starting Jupyter, e.g. `IOU_PROFILE=fast jupyter lab`.

# %%
import dataclasses
import os

import pandas as pd
import torch

import iou_lib
from iou_lib import exercises
from iou_lib.config import PROFILES, data_dir, default_device, get_profile

profile = get_profile()
print(f"iou_lib {iou_lib.__version__}, torch {torch.__version__}")
print(f"IOU_PROFILE = {os.environ.get('IOU_PROFILE')!r} -> profile {profile.name!r}")
pd.DataFrame([dataclasses.asdict(p) for p in PROFILES.values()]).set_index("name")

# %% [markdown]
# How long each notebook takes from top to bottom, per profile, as measured by `tools/time_notebooks.py` on
# a 2-core CPU machine without a GPU (a notebook that stops at a cell asking for confirmation is listed with
# that cell's estimate; `docs/notebook_times.json` has the dates and the machine's load):

# %%
from iou_lib.budget import notebook_times

notebook_times()

# %% [markdown]
# ## Device and data
#
# Training uses the best available device (CUDA, then Apple MPS, then CPU); the theory notebooks run on
# the CPU. The real data set (CamVid) is read from `IOU_DATA_DIR` when set (see `data/README.md`);
# every notebook works without it and says when it skips the real-data parts.

# %%
device = default_device()
print(f"device: {device}" + (f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else ""))
print(f"CPU threads: {torch.get_num_threads()}")
print(f"IOU_DATA_DIR: {data_dir() or 'not set (real-data sections will be skipped)'}")
assert device.type in {"cpu", "cuda", "mps"}

# %% [markdown]
# ## Widgets
#
# Some notebooks end a section with an interactive explorer (notebook 03 has the main one): sliders and
# menus above a figure that redraws when you move them. They need a running kernel: run the cells from
# the top (*Run → Run All Cells*), then move the controls. In a static view (GitHub, an exported HTML)
# you see the figure of the last setting only. Each explorer keeps what it shows in attributes
# (`explorer.state`, `explorer.figure`), so you can also set a control from code,
# e.g. `explorer.fg_frac.value = 0.01`, and inspect the numbers behind the picture.
#
# ## Exercises
#
# Each theory notebook ends with exercises. An exercise cell (tagged `exercise`) holds a function for you
# to complete; the next cell calls a check from `iou_lib.exercises`, which runs your function on fixed
# cases and tells you *which* mistake you made, if any. In this full edition a hidden cell (tagged
# `solution`) holds a worked answer; the student copies in `notebooks/student/` leave it out. This is
# what the feedback looks like for a soft IoU loss that forgot the sigmoid:

# %%
def forgot_the_sigmoid(logits, target):
    inter = (logits * target).sum()
    return 1 - inter / (logits + target - logits * target).sum()


try:
    exercises.check_soft_iou(forgot_the_sigmoid)
except exercises.ExerciseError as feedback:
    print(f"feedback: {feedback}")
else:
    raise AssertionError("the check should have rejected this answer")

# %% [markdown]
# ## Conventions used throughout
#
# * Losses take **logits** (the activation is part of the loss). Binary: logits `(B, 1, H, W)` with a
#   {0, 1} target of the same shape; multi-class: logits `(B, C, H, W)` with integer targets `(B, H, W)`.
# * **Aggregation is explicit**: `per_image=True` averages one ratio per image ($\mathrm{mIoU}^I$),
#   `per_image=False` pools the batch ($\mathrm{mIoU}^D$ of the batch).
# * Losses are looked up by name: `iou_lib.losses.get("soft_iou", per_image=True)`; weighted sums by a
#   spec such as `"0.25*bce+0.75*jaccard_metric"`.

# %%
from iou_lib import losses

losses.available()

# %% [markdown]
# Start with **01 measuring segmentation**.

# %% [markdown]
# ## References
#
# The works the workbook teaches and tests; each notebook lists the ones it cites.
#
# * M. A. Rahman and Y. Wang. Optimizing Intersection-over-Union in Deep Neural Networks for Image
#   Segmentation. *Advances in Visual Computing (ISVC 2016)*, LNCS 10072, pp. 234-244, Springer, 2016.
#   doi:10.1007/978-3-319-50835-1_22
# * M. Berman, A. Rannen Triki and M. B. Blaschko. The Lovász-Softmax Loss: A Tractable Surrogate for the
#   Optimization of the Intersection-over-Union Measure in Neural Networks. *CVPR 2018*. arXiv:1705.08790
# * Z. Wang, X. Ning and M. B. Blaschko. Jaccard Metric Losses: Optimizing the Jaccard Index with Soft
#   Labels. *NeurIPS 2023*. arXiv:2302.05666
# * T.-Y. Lin, P. Goyal, R. Girshick, K. He and P. Dollár. Focal Loss for Dense Object Detection.
#   *ICCV 2017*. arXiv:1708.02002
# * J. Ma et al. Loss Odyssey in Medical Image Segmentation. *Medical Image Analysis* 71:102035, 2021.
# * T. Eelbode, J. Bertels, M. Berman, D. Vandermeulen, F. Maes, R. Bisschops and M. B. Blaschko.
#   Optimization for Medical Image Segmentation: Theory and Practice When Evaluating With Dice Score or
#   Jaccard Index. *IEEE Transactions on Medical Imaging* 39(11), 2020. arXiv:2010.13499
# * M. van Beers, A. Lindström, E. Okafor and M. A. Wiering. Deep Neural Networks with Intersection over
#   Union Loss for Binary Image Segmentation. *ICPRAM 2019*, pp. 438-445, SciTePress, 2019.
# * G. J. Brostow, J. Fauqueur and R. Cipolla. Semantic Object Classes in Video: A High-Definition Ground
#   Truth Database. *Pattern Recognition Letters* 30(2), pp. 88-97, 2009 (CamVid).
