"""``fit(config)``: set-up, training steps, validation, selection of the best weights, writing.

:func:`fit` is the short loop at the end of this module; each step it calls is a function of its own:
:func:`setup` (data, model, optimizer, budget, resume), :func:`train_step` (one optimizer step),
:func:`train_until` (steps up to the next validation point), :func:`evaluate_split`, :func:`select`
(keep the weights with the best validation IoU at its tuned threshold), :func:`write_progress`
(checkpoint and results) and :func:`finish` (test metrics at the selected weights, collapse check,
summary).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from iou_lib.data import load_splits
from iou_lib.data.base import InMemorySegmentation
from iou_lib.data.transforms import augment
from iou_lib.models import build_model
from iou_lib.train import files
from iou_lib.train.config import OPTIMIZERS, Budget, TrainConfig
from iou_lib.train.evaluation import collapse_hint, evaluate
from iou_lib.train.objective import build_loss, loss_inputs
from iou_lib.train.runtime import Dist, autocast, batches, init_distributed, select_device, to_device
from iou_lib.validation import value_checks

__all__ = [
    "FitResult",
    "Run",
    "evaluate_split",
    "finish",
    "fit",
    "select",
    "setup",
    "train_step",
    "train_until",
]


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns: the model at the selected (best-validation) weights in eval mode, the tidy
    rows and the summary (the content of ``summary.json``: ``steps``, ``best_step``, ``collapsed``,
    ``collapse_hint``, ``wall_s``, ``test`` and ``val`` metrics at ``best_step``, ``ap`` per split, ...).
    """

    model: nn.Module
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    config: TrainConfig

    def table(self) -> Any:
        """The rows as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(files.RESULT_FIELDS))


@dataclasses.dataclass
class Best:
    """The best validation pass so far: its step, score (``miou_d@tuned``, or ``miou_d`` for multi-class),
    metrics and a copy of the weights."""

    step: int = 0
    score: float = -math.inf
    val: dict[str, float] = dataclasses.field(default_factory=dict)
    state: dict[str, Tensor] | None = None


@dataclasses.dataclass
class Run:
    """Everything :func:`setup` prepares and the later steps share."""

    config: TrainConfig
    budget: Budget
    dist: Dist
    device: torch.device
    amp: bool
    out: Path | None
    data: tuple[InMemorySegmentation, InMemorySegmentation, InMemorySegmentation]
    model: nn.Module
    net: nn.Module  # the model as trained: DDP-wrapped and/or compiled
    optimizer: torch.optim.Optimizer
    loss_fns: dict[str, nn.Module]
    sampler: DistributedSampler
    ident: dict[str, Any]
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    step: int = 0
    best: Best = dataclasses.field(default_factory=Best)
    wall_s: float = 0.0  # of earlier (interrupted) processes of this run
    _epoch_order: tuple[int, list[int]] = (-1, [])

    @property
    def binary(self) -> bool:
        return self.data[0].num_classes == 1

    def add_rows(self, split: str, step: int, metrics: dict[str, float]) -> None:
        self.rows.extend(
            {**self.ident, "split": split, "step": step, "metric": k, "value": v} for k, v in metrics.items()
        )


# ------------------------------------------------------------------------------------------------ set-up
def setup(config: TrainConfig) -> Run:
    """Data, model, optimizer and budget of a run; its state restored from ``out_dir`` when resuming."""
    d = init_distributed(config.device)
    device = select_device(config.device, d)
    out = Path(config.out_dir) if config.out_dir else None
    resume = False
    if out is not None:
        resume = files.check_out_dir(out, config.same_run, config.resume, config.overwrite)
        if d.main:
            files.remove_stale_tmp(out)
    train_ds, val_ds, test_ds = load_splits(config.data, seed=config.seed)
    budget = config.budget(len(train_ds), d.world)
    if device.type == "cuda":  # keep the (uint8) data on the GPU: no per-batch host->device copies
        for ds in (train_ds, val_ds, test_ds):
            ds.images, ds.labels = ds.images.to(device), ds.labels.to(device)

    num_classes, ignore = train_ds.num_classes, train_ds.ignore_index
    torch.manual_seed(config.seed)
    model = build_model(config.model, 3, num_classes, config.width, config.depth, config.norm).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    optimizer = OPTIMIZERS[config.optimizer](
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    loss_fns = {spec: build_loss(spec, config.loss_options, num_classes, ignore) for spec, _ in budget.phases}
    net: nn.Module = model
    if d.world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if config.compile:
        net = torch.compile(net)
    data = config.data
    fg = (
        data.fg_frac
        if data.kind == "synthetic"
        else (train_ds.foreground_fraction() if num_classes == 1 else "")
    )
    run = Run(
        config=config,
        budget=budget,
        dist=d,
        device=device,
        amp=device.type == "cuda" if config.amp is None else config.amp,
        out=out,
        data=(train_ds, val_ds, test_ds),
        model=model,
        net=net,
        optimizer=optimizer,
        loss_fns=loss_fns,
        sampler=DistributedSampler(
            train_ds, num_replicas=d.world, rank=d.rank, shuffle=True, seed=config.seed, drop_last=True
        ),
        ident={
            "run": config.name,
            "data": data.kind,
            "fg_frac": fg,
            "class_name": data.class_name or "",
            "loss": config.loss,
            "model": config.model,
            "seed": config.seed,
        },
    )
    if resume:
        _restore(run, torch.load(out / "checkpoint.pt", map_location=device, weights_only=False))
    if out is not None and d.main:
        files.write_json(out / "config.json", {**config.to_dict(), "budget": budget.to_dict()})
    return run


def _restore(run: Run, state: dict[str, Any]) -> None:
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.rows, run.step, run.wall_s = state["rows"], state["step"], state["wall_s"]
    run.best = Best(**state["best"])


# -------------------------------------------------------------------------------------------- training
def batch_at(run: Run, step: int) -> tuple[Tensor, Tensor]:
    """The training batch of 0-based ``step``: a function of (seed, step, rank) only, so a resumed run
    sees the batches (and augmentations) of the uninterrupted one."""
    per_epoch, bs = run.budget.steps_per_epoch, run.config.batch_size
    epoch, i = divmod(step, per_epoch)
    if run._epoch_order[0] != epoch:
        run.sampler.set_epoch(epoch)
        run._epoch_order = (epoch, list(run.sampler))
    idx = torch.tensor(run._epoch_order[1][i * bs : (i + 1) * bs], device=run.data[0].images.device)
    x, y = run.data[0].batch(idx)
    if run.config.data.augment:
        crop = (run.config.data.crop,) * 2 if run.config.data.crop else None
        gen = torch.Generator().manual_seed(run.config.seed * 1_000_003 + step * 7919 + run.dist.rank)
        x, y = augment(x, y, gen, crop)
    return to_device(x, y, run.device, channels_last=run.device.type == "cuda")


def train_step(run: Run, x: Tensor, y: Tensor) -> Tensor:
    """One optimizer step at the scheduled learning rate; returns the (detached) loss."""
    lr = run.config.lr * run.budget.lr_factor(run.step)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    train = run.data[0]
    with autocast(run.device, run.amp):
        logits = run.net(x)
    loss = run.loss_fns[run.budget.phase(run.step)](
        *loss_inputs(logits, y, train.num_classes, train.ignore_index)
    )
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    run.step += 1
    return loss.detach()


def train_until(run: Run, stop: int, bar: Any = None) -> dict[str, float]:
    """Train from ``run.step`` to step ``stop``; mean loss, last learning rate and images/s of the steps."""
    run.net.train()
    start, total, t0 = run.step, torch.zeros((), device=run.device), time.perf_counter()
    # the loaders' data are valid; value checks would sync the GPU every step (see iou_lib.validation)
    with value_checks(False):
        while run.step < stop:
            total += train_step(run, *batch_at(run, run.step)).float()
            if bar is not None:
                bar.update(1)
    seconds = time.perf_counter() - t0
    stats = torch.stack([total, torch.tensor(float(stop - start), device=run.device)])
    if run.dist.world > 1:
        dist.all_reduce(stats)
    loss = float(stats[0] / stats[1].clamp_min(1))
    if not math.isfinite(loss):
        raise FloatingPointError(
            f"run {run.config.name}: mean training loss is {loss} at step {stop}; try a lower lr or amp=False"
        )
    return {
        "loss": loss,
        "lr": run.config.lr * run.budget.lr_factor(stop - 1),
        "images_per_s": run.dist.world * (stop - start) * run.config.batch_size / max(seconds, 1e-9),
    }


# ------------------------------------------------------------------------------------------ evaluation
def evaluate_split(
    run: Run, ds: InMemorySegmentation, val_threshold: float | None = None
) -> dict[str, float]:
    """:func:`~iou_lib.train.evaluation.evaluate` on ``ds``, sharded over ranks (counts all-reduced)."""
    if run.dist.world > 1:
        # every rank evaluates its shard with the plain module (shards may need different numbers of
        # batches, which DDP's per-forward collectives would not allow), BatchNorm statistics of rank 0
        for buffer in run.model.buffers():
            dist.broadcast(buffer, 0)
    shard = torch.arange(run.dist.rank, len(ds), run.dist.world)
    return evaluate(
        run.model if run.dist.world > 1 else run.net,
        batches(ds, shard, run.config.batch_size),
        num_classes=ds.num_classes,
        ignore_index=ds.ignore_index,
        class_names=ds.class_names,
        device=run.device,
        amp=run.amp,
        val_threshold=val_threshold,
    )


def select(best: Best, step: int, val: dict[str, float], model: nn.Module) -> bool:
    """Keep ``model``'s weights in ``best`` when this validation pass beats every earlier one.

    The score is ``miou_d@tuned`` (binary) or ``miou_d`` (multi-class); NaN never wins, ties keep the
    earlier step. Returns whether ``best`` changed.
    """
    score = val.get("miou_d@tuned", val["miou_d"])
    if math.isnan(score) or score <= best.score:
        return False
    best.step, best.score, best.val = step, score, dict(val)
    best.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return True


# --------------------------------------------------------------------------------------------- writing
def write_progress(run: Run, started: float) -> None:
    """Checkpoint (weights, optimizer, rows, best weights) and ``results.csv``, on rank 0 only."""
    if run.out is None or not run.dist.main:
        return
    state = {
        "step": run.step,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "rows": run.rows,
        "best": dataclasses.asdict(run.best),
        "wall_s": run.wall_s + time.perf_counter() - started,
        "config": run.config.to_dict(),
    }
    files.save_checkpoint(run.out / "checkpoint.pt", state)
    files.write_rows(run.out / "results.csv", run.rows)


def finish(run: Run, started: float) -> FitResult:
    """Test metrics at the best weights, collapse check, ``summary.json``; returns the result."""
    if run.best.state is None:
        raise RuntimeError(f"run {run.config.name}: no validation pass scored; nothing to select")
    run.model.load_state_dict(run.best.state)
    val_thr = run.best.val.get("threshold@tuned")
    test = evaluate_split(run, run.data[2], val_threshold=val_thr)
    run.add_rows("test", run.best.step, test)
    hint = collapse_hint(test, run.config.loss) if run.binary else None
    curve = lambda m: {k: v for k, v in m.items() if not k.startswith("curve_")}  # noqa: E731
    summary: dict[str, Any] = {
        "run": run.config.name,
        "steps": run.step,
        "best_step": run.best.step,
        "collapsed": hint is not None,
        "collapse_hint": hint,
        "wall_s": run.wall_s + time.perf_counter() - started,
        "fg_frac": run.ident["fg_frac"] if run.binary else None,
        "test": curve(test),
        "val": curve(run.best.val),
        "ap": {"val": run.best.val.get("ap"), "test": test.get("ap")},
    }
    if run.out is not None and run.dist.main:
        files.write_rows(run.out / "results.csv", run.rows)
        files.write_json(run.out / "summary.json", summary)
    if run.dist.owns_group:
        dist.destroy_process_group()
    run.model.eval()
    return FitResult(model=run.model, rows=run.rows, summary=summary, config=run.config)


# ------------------------------------------------------------------------------------------------- fit
def fit(config: TrainConfig) -> FitResult:
    """Train and evaluate one run (see :mod:`iou_lib.train`); resumes from ``out_dir`` when possible."""
    started = time.perf_counter()
    run = setup(config)
    show = config.progress and run.dist.main
    with tqdm(total=run.budget.steps, initial=run.step, desc=config.name, disable=not show) as bar:
        for stop in (s for s in run.budget.eval_steps() if s > run.step):
            run.add_rows("train", stop, train_until(run, stop, bar))
            val = evaluate_split(run, run.data[1])
            run.add_rows("val", stop, {k: v for k, v in val.items() if not k.startswith("curve_")})
            select(run.best, stop, val, run.model)
            write_progress(run, started)
    return finish(run, started)
