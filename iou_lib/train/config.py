"""What defines a run: the data (:class:`DataSpec`), the run (:class:`TrainConfig`) and its step budget.

A run's length is counted in **optimizer steps**. :meth:`TrainConfig.budget` resolves it for a training
set of a given size into a :class:`Budget`: the steps, the learning-rate schedule (linear warm-up, then
cosine decay or constant), the validation points (at least 10 per run) and the loss phases.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import torch

from iou_lib import config as _config
from iou_lib import losses

__all__ = ["MIN_STEPS", "Budget", "DataSpec", "TrainConfig", "loss_names", "parse_schedule"]

MIN_STEPS = 100
"""Fewest optimizer steps a run may take unless they are asked for explicitly (``steps=``)."""
MIN_EVALS = 10
"""Fewest validation passes per run (fewer only when the run has fewer steps)."""

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
LR_SCHEDULES = ("cosine", "constant")
# settings that do not change the numbers of a run: a checkpoint may be resumed under other values
RUNTIME_FIELDS = ("device", "out_dir", "resume", "overwrite", "progress", "compile")


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """Which data a run trains on.

    ``kind``: ``"synthetic"`` (:class:`~iou_lib.data.synthetic.SyntheticSegmentation`: ``fg_frac``,
    ``image_size``, ``n_train``/``n_val`` (test has ``n_val`` images too), ``n_objects``, ``empty_frac``;
    generated from the run seed), ``"folder"`` (images/ + masks/ folders under ``path``) or ``"camvid"``
    (``path`` or ``$IOU_DATA_DIR/camvid``; ``class_name`` a class for a binary view, ``None`` for all 11).
    ``scale`` shrinks real images by an integer factor; ``size = (H, W)`` resizes every image and mask
    of folder data to one size (data sets of mixed sizes); ``augment`` adds random flips and, with
    ``crop``, random square crops of that side. Folder data: ``num_classes`` 1 for binary masks, else
    class-index masks with an optional ``ignore_index``.
    """

    kind: str = "synthetic"
    fg_frac: float = 0.05
    image_size: int = 64
    n_train: int = 512
    n_val: int = 128
    n_objects: int = 4
    empty_frac: float = 0.0
    path: str | None = None
    class_name: str | None = None
    num_classes: int = 1
    ignore_index: int | None = None
    scale: int = 1
    size: tuple[int, int] | None = None
    augment: bool = False
    crop: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("synthetic", "folder", "camvid"):
            raise ValueError(f"data kind must be 'synthetic', 'folder' or 'camvid', got {self.kind!r}")
        if self.size is not None:
            size = tuple(self.size)
            if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
                raise ValueError(f"size must be (H, W), two positive ints, got {self.size!r}")
            object.__setattr__(self, "size", size)

    @classmethod
    def from_profile(cls, profile: _config.Profile | str | None = None, **overrides: Any) -> DataSpec:
        """Synthetic-data sizes (and CamVid scale) from a run profile, with ``overrides``."""
        p = profile if isinstance(profile, _config.Profile) else _config.get_profile(profile)
        base = {"image_size": p.image_size, "n_train": p.n_train, "n_val": p.n_val, "scale": p.camvid_scale}
        return cls(**{**base, **overrides})


@dataclasses.dataclass(frozen=True)
class Budget:
    """A run's schedule in optimizer steps, resolved for its training set (see :meth:`TrainConfig.budget`).

    The learning rate at (0-based) step :math:`s` of :math:`S`, with :math:`W` warm-up steps, is
    :math:`\\eta_s = \\eta \\, \\frac{s + 1}{W}` for :math:`s < W`, then :math:`\\eta` (``constant``) or
    :math:`\\eta \\, \\tfrac12 \\bigl(1 + \\cos \\frac{\\pi (s - W)}{S - W}\\bigr)` (``cosine``).

    >>> b = Budget(steps=10, steps_per_epoch=4, warmup_steps=2, eval_every=5, schedule="cosine",
    ...            phases=(("bce", 10),))
    >>> [round(b.lr_factor(s), 3) for s in (0, 1, 2, 6, 9)]
    [0.5, 1.0, 1.0, 0.5, 0.038]
    >>> b.eval_steps()
    [5, 10]
    """

    steps: int
    steps_per_epoch: int
    warmup_steps: int
    eval_every: int
    schedule: str
    phases: tuple[tuple[str, int], ...]

    def lr_factor(self, step: int) -> float:
        """Multiplier of the base learning rate at 0-based step ``step``."""
        w = self.warmup_steps
        if step < w:
            return (step + 1) / w
        if self.schedule == "constant":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * (step - w) / max(1, self.steps - w)))

    def eval_steps(self) -> list[int]:
        """Steps after which the model is validated: every ``eval_every`` steps and after the last."""
        return sorted({*range(self.eval_every, self.steps + 1, self.eval_every), self.steps})

    def phase(self, step: int) -> str:
        """The loss spec in force at 0-based step ``step``."""
        end = 0
        for spec, n in self.phases:
            end += n
            if step < end:
                return spec
        return self.phases[-1][0]

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "phases": [list(p) for p in self.phases]}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (and nothing about where its output goes but ``out_dir``).

    **Length** (optimizer steps): ``steps``, else ``epochs`` x steps per epoch (legacy; refused below
    :data:`MIN_STEPS`), else the profile's ``steps`` (``camvid_steps`` for CamVid; ``$IOU_PROFILE``).
    **Schedule**: ``lr_schedule`` ``"cosine"`` (default) or ``"constant"``, after ``warmup_steps`` of
    linear warm-up (default 5 % of the steps for cosine, none for constant). **Validation** every
    ``eval_every`` steps (default ``steps // 10``; a run of :data:`MIN_STEPS` or more steps needs at least
    10 passes) and after the last step; the weights with the best validation IoU (at its tuned
    threshold) are the run's result.

    ``loss``: a registry name, a weighted sum or a schedule (see :func:`parse_schedule`, phases counted in
    steps); ``loss_options`` maps a loss name to keyword arguments (``{"soft_iou": {"per_image": True}}``).
    ``device``: ``"auto"`` or a torch device string; ``amp``: bf16 autocast, ``None`` = on for CUDA.
    ``out_dir``: where ``results.csv``, ``checkpoint.pt``, ``config.json`` and ``summary.json`` go
    (``None``: nothing is written, no resume). With ``resume`` an existing checkpoint of the same config is
    continued; a folder holding another configuration's run is never overwritten unless ``overwrite``.
    """

    data: DataSpec = dataclasses.field(default_factory=DataSpec)
    loss: str = "bce"
    loss_options: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    model: str = "unet"
    width: int = 16
    depth: int = 3
    norm: str = "batch"
    optimizer: str = "adam"
    lr: float = 2e-3
    weight_decay: float = 0.0
    steps: int | None = None
    epochs: int | None = None
    lr_schedule: str = "cosine"
    warmup_steps: int | None = None
    eval_every: int | None = None
    batch_size: int = 16
    seed: int = 0
    device: str = "auto"
    amp: bool | None = None
    compile: bool = False
    out_dir: str | None = None
    resume: bool = True
    overwrite: bool = False
    progress: bool = True
    run_name: str | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "epochs", "batch_size", "width", "depth", "warmup_steps", "eval_every"):
            value = getattr(self, name)
            if value is None and name in ("steps", "epochs", "warmup_steps", "eval_every"):
                continue
            low = 0 if name in ("depth", "warmup_steps") else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if self.steps is not None and self.epochs is not None:
            raise ValueError(f"give steps or epochs, not both (got steps={self.steps}, epochs={self.epochs})")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}"
            )
        if not isinstance(self.data, DataSpec):
            raise TypeError(f"data must be a DataSpec, got {type(self.data).__name__}")
        parse_schedule(self.loss, self.steps)  # fail early on a bad loss spec
        unused = sorted(set(self.loss_options) - loss_names(self.loss))
        if unused:
            raise ValueError(f"loss_options given for {unused}, which the loss {self.loss!r} does not use")

    @classmethod
    def from_profile(
        cls, profile: _config.Profile | str | None = None, data: DataSpec | None = None, **overrides: Any
    ) -> TrainConfig:
        """A config sized by a run profile (``fast``/``cpu``/``gpu``, default from ``IOU_PROFILE``)."""
        p = profile if isinstance(profile, _config.Profile) else _config.get_profile(profile)
        data = data if data is not None else DataSpec.from_profile(p)
        steps = p.camvid_steps if data.kind == "camvid" else p.steps
        base = {"batch_size": p.batch_size, "width": p.width, "depth": p.depth, "lr": p.lr}
        if "epochs" not in overrides:
            base["steps"] = steps
        return cls(data=data, **{**base, **overrides})

    def budget(self, n_train: int, world: int = 1) -> Budget:
        """The run's :class:`Budget` for ``n_train`` training images shared by ``world`` processes.

        Raises ``ValueError`` when an epoch has no optimizer step (fewer images than one batch), or when
        a budget given in epochs comes to fewer than :data:`MIN_STEPS` steps.
        """
        per_epoch = (n_train // world) // self.batch_size
        if per_epoch == 0:
            raise ValueError(
                f"run {self.name}: {n_train} training images"
                f"{f' over {world} processes' if world > 1 else ''} "
                f"make no batch of {self.batch_size}: the run would take no optimizer step; "
                "use a smaller batch_size or more images"
            )
        if self.steps is not None:
            steps = self.steps
        elif self.epochs is not None:
            steps = self.epochs * per_epoch
            if steps < MIN_STEPS:
                raise ValueError(
                    f"run {self.name}: {self.epochs} epochs x {per_epoch} steps per epoch = {steps} "
                    f"optimizer steps, fewer than {MIN_STEPS} (too few to converge); train longer, or ask "
                    f"for exactly this with steps={steps} (--steps {steps})"
                )
        else:
            p = _config.get_profile()
            steps = p.camvid_steps if self.data.kind == "camvid" else p.steps
        warmup = self.warmup_steps
        if warmup is None:
            warmup = round(0.05 * steps) if self.lr_schedule == "cosine" else 0
        if warmup >= steps:
            raise ValueError(f"warmup_steps={warmup} must be smaller than the run's {steps} steps")
        every = self.eval_every if self.eval_every is not None else max(1, steps // MIN_EVALS)
        passes = math.ceil(steps / every)
        if steps >= MIN_STEPS and passes < MIN_EVALS:
            raise ValueError(
                f"eval_every={every} gives {passes} validation passes in {steps} steps; at least "
                f"{MIN_EVALS} are needed (eval_every <= {steps // MIN_EVALS})"
            )
        return Budget(
            steps=steps,
            steps_per_epoch=per_epoch,
            warmup_steps=warmup,
            eval_every=every,
            schedule=self.lr_schedule,
            phases=tuple(parse_schedule(self.loss, steps)),
        )

    @property
    def name(self) -> str:
        """The run's name: ``run_name`` or one built from data, loss and seed."""
        if self.run_name:
            return self.run_name
        data = self.data
        if data.kind == "synthetic":
            what = f"fg{data.fg_frac:g}"
        elif data.kind == "folder":  # the data set's folder name, and the class when one is picked
            what = "-".join(filter(None, ("folder", Path(data.path or ".").resolve().name, data.class_name)))
        else:
            what = f"{data.kind}-{data.class_name or 'all'}"
        name = f"{what}_{self.loss}_{self.model}_s{self.seed}"
        return name.replace("*", "x").replace(":", "-").replace(",", "_").replace("+", "p").replace(" ", "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (keys that are not fields, such as a stored ``budget``, are skipped)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in fields}
        data = dict(d["data"])
        if data.get("size") is not None:
            data["size"] = tuple(data["size"])
        d["data"] = DataSpec(**data)
        return cls(**d)

    def same_run(self, other: dict[str, Any]) -> bool:
        """Whether ``other`` (a :meth:`to_dict`) describes the same numbers, runtime settings aside."""
        strip = lambda d: {k: v for k, v in d.items() if k not in RUNTIME_FIELDS}  # noqa: E731
        fields = {f.name for f in dataclasses.fields(self)}
        return strip(self.to_dict()) == strip({k: v for k, v in other.items() if k in fields})


def parse_schedule(spec: str, steps: int | None) -> list[tuple[str, int]]:
    """Split ``"spec1:k1,spec2:k2,...,specN"`` into ``[(spec, n_steps), ...]`` summing to ``steps``.

    Each phase is a loss spec for :func:`iou_lib.losses.parse` and its number of optimizer steps; the last
    phase may omit it and then runs to the end. A plain loss spec is one phase for all steps. With
    ``steps=None`` (not known yet) only the phases and names are checked.

    >>> parse_schedule("bce:200,soft_iou", 500)
    [('bce', 200), ('soft_iou', 300)]
    >>> parse_schedule("0.5*bce+0.5*soft_iou", 300)
    [('0.5*bce+0.5*soft_iou', 300)]
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"loss must be a non-empty loss spec or schedule string, got {spec!r}")
    phases: list[tuple[str, int]] = []
    parts = [p.strip() for p in spec.split(",")]
    used = 0
    for i, part in enumerate(parts):
        name, colon, count = part.partition(":")
        name = name.strip()
        last = i == len(parts) - 1
        if colon:
            try:
                n = int(count)
            except ValueError:
                raise ValueError(
                    f"loss schedule {spec!r}: steps {count!r} of phase {name!r} is not an int"
                ) from None
            if n < 1:
                raise ValueError(f"loss schedule {spec!r}: phase {name!r} needs >= 1 step, got {n}")
        elif not last:
            raise ValueError(
                f"loss schedule {spec!r}: phase {name!r} needs ':steps' (only the last may omit it)"
            )
        else:
            n = (steps - used) if steps is not None else 0
            if steps is not None and n < 1:
                raise ValueError(
                    f"loss schedule {spec!r}: the phases before {name!r} take {used} steps, "
                    f"leaving none of the run's {steps}"
                )
        losses.parse(name)  # unknown names -> ValueError listing the available losses
        phases.append((name, n))
        used += n
    if steps is not None and used != steps:
        raise ValueError(f"loss schedule {spec!r} covers {used} steps; the run has {steps}")
    return phases


def loss_names(spec: str) -> set[str]:
    """Registry names used in a loss spec or schedule.

    >>> sorted(loss_names("bce:2,0.5*bce+0.5*soft_iou"))
    ['bce', 'soft_iou']
    """
    phases = [phase.partition(":")[0] for phase in spec.split(",")]
    return {m.name for p in phases for m in losses.parse(p).modules() if isinstance(m, losses.Loss)}
