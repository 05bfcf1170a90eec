"""Training engine: ``fit(config) -> FitResult`` and ``evaluate(model, data, ...)``, on CPU and GPU.

A run is a :class:`TrainConfig` in and, in ``out_dir``, a tidy results table, a checkpoint and a summary out:

* **budget in optimizer steps** (``steps``; profiles state theirs), a linear warm-up then cosine decay of
  the learning rate (``lr_schedule``, ``warmup_steps``); a budget given in epochs that comes to fewer than
  100 steps, and a run that would take no step at all, are refused (:mod:`iou_lib.train.config`).
* **model selection**: the validation split is evaluated every ``eval_every`` steps (at least 10 times);
  the weights with the best validation IoU at its tuned threshold are kept, and the test split is scored
  once, at those weights (``best_step``).
* **evaluation** (:func:`evaluate`): IoU at 0.5 (data-set ``miou_d`` and mean per-image ``miou_i``),
  for binary tasks also IoU at every threshold of a 401-point grid from p = 0.001 to 0.999 (uniform in
  logit space) from one pass of histograms (:mod:`iou_lib.thresholds`), the tuned threshold and average
  precision ``ap``; the test split reports the IoU at the threshold tuned on validation
  (``miou_d@val_thr``). A near-constant predictor is flagged ``collapsed`` with a hint.
* **device** ``"auto"`` picks cuda > mps > cpu (a device this machine lacks is a ``ValueError``); models
  and batches are channels_last on every device (faster convolutions on CPU and GPU); on CUDA the model
  runs in bf16 autocast (the losses compute in float32 themselves), optionally ``torch.compile``; the data
  set is moved to the GPU once. Under ``torchrun`` the same code
  runs data-parallel (DDP): each rank trains on its shard of every epoch's permutation, evaluation counts
  are summed over ranks, only rank 0 writes.
* **losses** by registry name, weighted sum (``"0.25*bce+0.75*soft_iou"``, see
  :func:`iou_lib.losses.parse`) or a schedule ``"bce:200,soft_iou"`` (bce for 200 steps, then soft_iou: the
  fine-tuning protocol), see :func:`parse_schedule`; ignored pixels see :mod:`iou_lib.train.objective`.
* **seeds together**: :func:`fit_group` trains runs that differ only in seed as one grouped network
  (one kernel per layer for all seeds: what fills a GPU), each with its own data, numbers and folder;
  :func:`iou_lib.experiments.run_grid` does so by default on a GPU only (on a CPU single runs are faster).
* **reproducibility**: all randomness (init, epoch permutations, augmentation) comes from ``seed`` and
  the step; a CPU run is deterministic, and a run resumed from its checkpoint (written at every
  validation point) ends with exactly the metrics of the uninterrupted run.

Results rows (``results.csv``): ``run, data, fg_frac, class_name, loss, model, seed, split, step, metric,
value``; ``train`` rows hold ``loss``, ``lr``, ``images_per_s`` and ``val`` rows the validation metrics at
every validation point (learning curves); ``test`` rows are at ``step = best_step``.

>>> from iou_lib.train import DataSpec, TrainConfig, fit
>>> cfg = TrainConfig(DataSpec(n_train=32, n_val=16, image_size=32), steps=10, width=4, progress=False)
>>> res = fit(cfg)
>>> sorted({r["split"] for r in res.rows}), res.summary["steps"], len({r["step"] for r in res.rows})
(['test', 'train', 'val'], 10, 10)
"""

from iou_lib.train.config import MIN_STEPS, Budget, DataSpec, TrainConfig, loss_names, parse_schedule
from iou_lib.train.engine import FitResult, fit, fit_group
from iou_lib.train.evaluation import evaluate
from iou_lib.train.files import RESULT_FIELDS, write_rows
from iou_lib.train.objective import NEUTRAL_LOGIT
from iou_lib.train.runtime import batches

__all__ = [
    "MIN_STEPS",
    "NEUTRAL_LOGIT",
    "RESULT_FIELDS",
    "Budget",
    "DataSpec",
    "FitResult",
    "TrainConfig",
    "batches",
    "evaluate",
    "fit",
    "fit_group",
    "loss_names",
    "parse_schedule",
    "write_rows",
]
