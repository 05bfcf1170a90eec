"""``fit(config)``: set-up, training steps, validation, selection of the best weights, writing.

:func:`fit_group` is the short loop at the end of this module; each step it calls is a function of its
own: :func:`setup` (data, model, optimizer, budget, resume), :func:`train_step` (one optimizer step),
:func:`train_until` (steps up to the next validation point), :func:`evaluate_split`, :func:`select`
(keep the weights with the best validation IoU at its tuned threshold), :func:`write_progress`
(checkpoint and results) and :func:`finish` (test metrics at the selected weights, collapse check,
summary).

**Seeds together.** :func:`fit_group` trains the runs of several configs that differ only in ``seed``
(and output folder) as one ``groups=S`` network (:mod:`iou_lib.models`: S independent networks, one
kernel per layer): each seed keeps its own data, initialisation, batch order, optimizer state (Adam is
element-wise), best weights and output folder, and its checkpoint is that of a single run (a group
interrupted in the middle may be resumed seed by seed). :func:`fit` is a group of one.
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
from iou_lib.models import build_model, stack_states, unstack_state
from iou_lib.train import files, runtime
from iou_lib.train.config import OPTIMIZERS, Budget, TrainConfig
from iou_lib.train.evaluation import collapse_hint, evaluate_groups
from iou_lib.train.objective import build_loss, loss_inputs
from iou_lib.train.runtime import Dist, autocast, batches, init_distributed, select_device, to_device
from iou_lib.validation import value_checks

__all__ = [
    "FitResult",
    "Member",
    "Run",
    "fit_group",
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
class Member:
    """One run (seed) of a group: its config, data, output folder, rows and best weights."""

    config: TrainConfig
    out: Path | None
    data: tuple[InMemorySegmentation, InMemorySegmentation, InMemorySegmentation]
    sampler: DistributedSampler
    ident: dict[str, Any]
    resume: bool
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    best: Best = dataclasses.field(default_factory=Best)
    epoch_order: tuple[int, list[int]] = (-1, [])

    def add_rows(self, split: str, step: int, metrics: dict[str, float]) -> None:
        self.rows.extend(
            {**self.ident, "split": split, "step": step, "metric": k, "value": v} for k, v in metrics.items()
        )


@dataclasses.dataclass
class Run:
    """Everything :func:`setup` prepares and the later steps share: the members (seeds), the one
    (``groups=S``) model and its optimizer, the budget and the step."""

    members: list[Member]
    budget: Budget
    dist: Dist
    device: torch.device
    amp: bool
    model: nn.Module
    net: nn.Module  # the model as trained: DDP-wrapped and/or compiled
    optimizer: torch.optim.Optimizer
    loss_fn: dict[str, nn.Module]
    step: int = 0
    wall_s: float = 0.0  # of earlier (interrupted) processes of this run

    @property
    def config(self) -> TrainConfig:
        return self.members[0].config

    @property
    def groups(self) -> int:
        return len(self.members)

    @property
    def num_classes(self) -> int:
        return self.members[0].data[0].num_classes


# ------------------------------------------------------------------------------------------------ set-up
_SEED_FIELDS = ("seed", "out_dir", "run_name", "progress")


def _check_group(configs: list[TrainConfig]) -> None:
    if not configs:
        raise ValueError("fit_group needs at least one config")
    strip = lambda c: {k: v for k, v in c.to_dict().items() if k not in _SEED_FIELDS}  # noqa: E731
    for c in configs[1:]:
        if strip(c) != strip(configs[0]):
            raise ValueError(f"runs {configs[0].name} and {c.name} differ in more than seed and out_dir")


def _member(config: TrainConfig, d: Dist, device: torch.device) -> Member:
    out = Path(config.out_dir) if config.out_dir else None
    resume = False
    if out is not None:
        resume = files.check_out_dir(out, config.same_run, config.resume, config.overwrite)
        if d.main:
            files.remove_stale_tmp(out)
    train_ds, val_ds, test_ds = load_splits(config.data, seed=config.seed)
    if device.type == "cuda":  # keep the (uint8) data on the GPU: no per-batch host->device copies
        for ds in (train_ds, val_ds, test_ds):
            ds.images, ds.labels = ds.images.to(device), ds.labels.to(device)
    data = config.data
    binary = train_ds.num_classes == 1
    fg = data.fg_frac if data.kind == "synthetic" else (train_ds.foreground_fraction() if binary else "")
    return Member(
        config=config,
        out=out,
        data=(train_ds, val_ds, test_ds),
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
        resume=resume,
    )


def setup(configs: list[TrainConfig]) -> Run:
    """Data, model, optimizer and budget of a group of runs; their state restored when resuming."""
    _check_group(configs)
    config = configs[0]
    d = init_distributed(config.device)
    if d.world > 1 and len(configs) > 1:
        raise ValueError("under torchrun (DDP) runs are trained one at a time, not as a group of seeds")
    device = select_device(config.device, d)
    members = [_member(c, d, device) for c in configs]
    if any(len({len(m.data[i]) for m in members}) > 1 for i in range(3)):
        raise ValueError("the seeds of a group need splits of equal sizes")
    budget = config.budget(len(members[0].data[0]), d.world)
    num_classes, ignore = members[0].data[0].num_classes, members[0].data[0].ignore_index
    states = []
    for c in configs:  # each seed's initialisation is that of its single run
        torch.manual_seed(c.seed)
        states.append(build_model(c.model, 3, num_classes, c.width, c.depth, c.norm).state_dict())
    model = build_model(config.model, 3, num_classes, config.width, config.depth, config.norm, len(configs))
    model.load_state_dict(stack_states(states))
    model = model.to(device, memory_format=runtime.MEMORY_FORMAT)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    optimizer = OPTIMIZERS[config.optimizer](
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    loss_fn = {spec: build_loss(spec, config.loss_options, num_classes, ignore) for spec, _ in budget.phases}
    net: nn.Module = model
    if d.world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if config.compile:
        net = torch.compile(net)
    amp = device.type == "cuda" if config.amp is None else config.amp
    run = Run(members, budget, d, device, amp, model, net, optimizer, loss_fn)
    _restore(run)
    for m in members:
        if m.out is not None and d.main:
            files.write_json(m.out / "config.json", {**m.config.to_dict(), "budget": budget.to_dict()})
    return run


def _restore(run: Run) -> None:
    """Load the members' checkpoints (all or none; at the same step) into the group."""
    resumed = [m for m in run.members if m.resume]
    if not resumed:
        return
    states = [
        torch.load(m.out / "checkpoint.pt", map_location=run.device, weights_only=False) for m in resumed
    ]
    if len(resumed) != len(run.members) or len({s["step"] for s in states}) != 1:
        raise ValueError(
            "the runs of a group must all resume from checkpoints at the same step (or none); "
            f"found {[(m.config.name, s['step']) for m, s in zip(resumed, states, strict=True)]}: "
            "run them one at a time"
        )
    run.model.load_state_dict(stack_states([s["model"] for s in states]))
    run.optimizer.load_state_dict(_stack_optimizer([s["optimizer"] for s in states]))
    run.step, run.wall_s = states[0]["step"], max(s["wall_s"] for s in states)
    for m, s in zip(run.members, states, strict=True):
        m.rows, m.best = s["rows"], Best(**s["best"])


def _stack_optimizer(states: list[dict[str, Any]]) -> dict[str, Any]:
    stacked = {
        i: {k: v if v.dim() == 0 else torch.cat([s["state"][i][k] for s in states]) for k, v in st.items()}
        for i, st in states[0]["state"].items()
    }
    return {"state": stacked, "param_groups": states[0]["param_groups"]}


def _unstack_optimizer(state: dict[str, Any], groups: int) -> list[dict[str, Any]]:
    return [
        {
            "state": {
                i: {k: v if v.dim() == 0 else v.chunk(groups)[g].clone() for k, v in st.items()}
                for i, st in state["state"].items()
            },
            "param_groups": state["param_groups"],
        }
        for g in range(groups)
    ]


# -------------------------------------------------------------------------------------------- training
def batch_at(run: Run, m: Member, step: int) -> tuple[Tensor, Tensor]:
    """Member ``m``'s training batch of 0-based ``step``: a function of (seed, step, rank) only, so a
    resumed run sees the batches (and augmentations) of the uninterrupted one."""
    per_epoch, bs = run.budget.steps_per_epoch, m.config.batch_size
    epoch, i = divmod(step, per_epoch)
    if m.epoch_order[0] != epoch:
        m.sampler.set_epoch(epoch)
        m.epoch_order = (epoch, list(m.sampler))
    idx = torch.tensor(m.epoch_order[1][i * bs : (i + 1) * bs], device=m.data[0].images.device)
    x, y = m.data[0].batch(idx)
    if m.config.data.augment:
        crop = (m.config.data.crop,) * 2 if m.config.data.crop else None
        gen = torch.Generator().manual_seed(m.config.seed * 1_000_003 + step * 7919 + run.dist.rank)
        x, y = augment(x, y, gen, crop)
    return to_device(x, y, run.device)


def train_step(run: Run, xs: list[Tensor], ys: list[Tensor]) -> Tensor:
    """One optimizer step of every member at the scheduled learning rate: images ``xs[s]`` and targets
    ``ys[s]`` of member ``s``. Returns the members' (detached) losses, shape ``(S,)``.

    The group's objective is the sum of the members' losses: the networks share no parameter, so each
    gets the gradient of its own loss.
    """
    lr = run.config.lr * run.budget.lr_factor(run.step)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    x = xs[0] if run.groups == 1 else torch.cat(xs, dim=1)
    with autocast(run.device, run.amp):
        logits = run.net(x)
    loss_fn, c = run.loss_fn[run.budget.phase(run.step)], run.num_classes
    train = run.members[0].data[0]
    per_member = torch.stack(
        [
            loss_fn(*loss_inputs(logits[:, s * c : (s + 1) * c], y, c, train.ignore_index))
            for s, y in enumerate(ys)
        ]
    )
    run.optimizer.zero_grad(set_to_none=True)
    per_member.sum().backward()
    run.optimizer.step()
    run.step += 1
    return per_member.detach()


def train_until(run: Run, stop: int, bar: Any = None) -> list[dict[str, float]]:
    """Train from ``run.step`` to step ``stop``; per member: mean loss, last learning rate, images/s."""
    run.net.train()
    start, total, t0 = run.step, torch.zeros(run.groups, device=run.device), time.perf_counter()
    # the loaders' data are valid; value checks would sync the GPU every step (see iou_lib.validation)
    with value_checks(False):
        while run.step < stop:
            xs, ys = zip(*(batch_at(run, m, run.step) for m in run.members), strict=True)
            total += train_step(run, list(xs), list(ys)).float()
            if bar is not None:
                bar.update(1)
    seconds = time.perf_counter() - t0
    if run.dist.world > 1:
        dist.all_reduce(total)
    losses = (total / run.dist.world / max(stop - start, 1)).tolist()
    out = []
    for m, loss in zip(run.members, losses, strict=True):
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"run {m.config.name}: mean training loss is {loss} at step {stop}; "
                "try a lower lr or amp=False"
            )
        out.append(
            {
                "loss": loss,
                "lr": run.config.lr * run.budget.lr_factor(stop - 1),
                "images_per_s": run.dist.world * (stop - start) * run.config.batch_size / max(seconds, 1e-9),
            }
        )
    return out


# ------------------------------------------------------------------------------------------ evaluation
def evaluate_split(
    run: Run, split: int, val_thresholds: list[float | None] | None = None
) -> list[dict[str, float]]:
    """Every member's metrics on its split ``split`` (1 = val, 2 = test), one forward pass per batch for
    the group, sharded over ranks (counts all-reduced); see :func:`~iou_lib.train.evaluation.evaluate`."""
    if run.dist.world > 1:
        # every rank evaluates its shard with the plain module (shards may need different numbers of
        # batches, which DDP's per-forward collectives would not allow), BatchNorm statistics of rank 0
        for buffer in run.model.buffers():
            dist.broadcast(buffer, 0)
    sets = [m.data[split] for m in run.members]
    shard = torch.arange(run.dist.rank, len(sets[0]), run.dist.world)
    per_set = [batches(ds, shard, run.config.batch_size) for ds in sets]
    stacked = (
        (torch.cat([x for x, _ in parts], dim=1), torch.stack([y for _, y in parts], dim=1))
        for parts in zip(*per_set, strict=True)
    )
    return evaluate_groups(
        run.model if run.dist.world > 1 else run.net,
        stacked,
        groups=run.groups,
        num_classes=run.num_classes,
        ignore_index=sets[0].ignore_index,
        class_names=sets[0].class_names,
        device=run.device,
        amp=run.amp,
        val_thresholds=val_thresholds,
    )


def select(best: Best, step: int, val: dict[str, float], state: dict[str, Tensor]) -> bool:
    """Keep the weights ``state`` in ``best`` when this validation pass beats every earlier one.

    The score is ``miou_d@tuned`` (binary) or ``miou_d`` (multi-class); NaN never wins, ties keep the
    earlier step. Returns whether ``best`` changed.
    """
    score = val.get("miou_d@tuned", val["miou_d"])
    if math.isnan(score) or score <= best.score:
        return False
    best.step, best.score, best.val = step, score, dict(val)
    best.state = {k: v.detach().clone() for k, v in state.items()}
    return True


def _member_states(run: Run) -> list[dict[str, Tensor]]:
    state = run.model.state_dict()
    return [state] if run.groups == 1 else unstack_state(state, run.groups)


# --------------------------------------------------------------------------------------------- writing
def write_progress(run: Run, started: float) -> None:
    """Per member: checkpoint (weights, optimizer, rows, best weights) and ``results.csv``; rank 0 only."""
    if not run.dist.main or all(m.out is None for m in run.members):
        return
    models = _member_states(run)
    optimizers = _unstack_optimizer(run.optimizer.state_dict(), run.groups) if run.groups > 1 else None
    for g, m in enumerate(run.members):
        if m.out is None:
            continue
        state = {
            "step": run.step,
            "model": models[g],
            "optimizer": optimizers[g] if optimizers else run.optimizer.state_dict(),
            "rows": m.rows,
            "best": dataclasses.asdict(m.best),
            "wall_s": run.wall_s + time.perf_counter() - started,
            "config": m.config.to_dict(),
        }
        files.save_checkpoint(m.out / "checkpoint.pt", state)
        files.write_rows(m.out / "results.csv", m.rows)


def finish(run: Run, started: float) -> list[FitResult]:
    """Test metrics at each member's best weights, collapse check, ``summary.json``; the results."""
    for m in run.members:
        if m.best.state is None:
            raise RuntimeError(f"run {m.config.name}: no validation pass scored; nothing to select")
    run.model.load_state_dict(stack_states([m.best.state for m in run.members]))
    tests = evaluate_split(run, 2, [m.best.val.get("threshold@tuned") for m in run.members])
    wall = run.wall_s + time.perf_counter() - started
    binary = run.num_classes == 1
    results = []
    for m, test in zip(run.members, tests, strict=True):
        m.add_rows("test", m.best.step, test)
        hint = collapse_hint(test, m.config.loss) if binary else None
        curve = lambda d: {k: v for k, v in d.items() if not k.startswith("curve_")}  # noqa: E731
        summary: dict[str, Any] = {
            "run": m.config.name,
            "steps": run.step,
            "best_step": m.best.step,
            "collapsed": hint is not None,
            "collapse_hint": hint,
            "wall_s": wall,
            "seeds_together": run.groups,
            "fg_frac": m.ident["fg_frac"] if binary else None,
            "test": curve(test),
            "val": curve(m.best.val),
            "ap": {"val": m.best.val.get("ap"), "test": test.get("ap")},
        }
        if m.out is not None and run.dist.main:
            files.write_rows(m.out / "results.csv", m.rows)
            files.write_json(m.out / "summary.json", summary)
        model = run.model
        if run.groups > 1:
            model = build_model(
                m.config.model, 3, run.num_classes, m.config.width, m.config.depth, m.config.norm
            )
            model.load_state_dict(m.best.state)
            model = model.to(run.device)
        model.eval()
        results.append(FitResult(model=model, rows=m.rows, summary=summary, config=m.config))
    if run.dist.owns_group:
        dist.destroy_process_group()
    return results


# ------------------------------------------------------------------------------------------------- fit
def fit_group(configs: list[TrainConfig]) -> list[FitResult]:
    """Train and evaluate runs that differ only in seed (and output folder) together; see the module
    docstring. Resumes from the runs' folders when all hold checkpoints of the same step."""
    started = time.perf_counter()
    run = setup(list(configs))
    show = run.config.progress and run.dist.main
    desc = run.config.name if run.groups == 1 else f"{run.config.name} (+{run.groups - 1} seeds)"
    with tqdm(total=run.budget.steps, initial=run.step, desc=desc, disable=not show) as bar:
        for stop in (s for s in run.budget.eval_steps() if s > run.step):
            train = train_until(run, stop, bar)
            vals = evaluate_split(run, 1)
            for m, t, val, state in zip(run.members, train, vals, _member_states(run), strict=True):
                m.add_rows("train", stop, t)
                m.add_rows("val", stop, {k: v for k, v in val.items() if not k.startswith("curve_")})
                select(m.best, stop, val, state)
            write_progress(run, started)
    return finish(run, started)


def fit(config: TrainConfig) -> FitResult:
    """Train and evaluate one run (see :mod:`iou_lib.train`); resumes from ``out_dir`` when possible."""
    return fit_group([config])[0]
