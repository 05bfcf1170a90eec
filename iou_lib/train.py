"""Training engine: ``fit(config) -> FitResult`` and ``evaluate(model, data, ...)``, on CPU and GPU.

A run is a :class:`TrainConfig` in and, in ``out_dir``, a tidy results table, a checkpoint and a summary out:

* **device** ``"auto"`` picks cuda > mps > cpu; on CUDA the model runs in bf16 autocast with channels_last
  (the losses compute in float32 themselves), optionally ``torch.compile``; the data set is moved to the
  GPU once. Under ``torchrun`` the same code runs data-parallel (DDP): each rank trains on its shard of
  every epoch's permutation, evaluation counts are summed over ranks, only rank 0 writes.
* **losses** by registry name, weighted sum (``"0.25*bce+0.75*soft_iou"``, see
  :func:`iou_lib.losses.parse`) or an epoch schedule ``"bce:2,soft_iou"`` (bce for 2 epochs, then
  soft_iou: the fine-tuning protocol), see :func:`parse_schedule`.
* **ignored pixels** (CamVid void). Multi-class losses get ``ignore_index``. For binary losses ignored
  pixels are *neutralised*: their target is set to 0 and their logit to :data:`NEUTRAL_LOGIT` (-50) with no
  gradient, i.e. they become confident true negatives. That is exact for region losses (soft IoU, Dice,
  Tversky, Jaccard metric: they add ~1e-22 to the union) and for the Lovász hinge (a negative error), and
  for per-pixel means (BCE, focal) they add zero loss but stay in the denominator (the loss is scaled by
  the share of valid pixels). Metrics leave ignored pixels out.
* **evaluation** (:func:`evaluate`, counts from :class:`iou_lib.metrics.IoUAccumulator`): data-set IoU
  ``miou_d`` (mIoU^D), mean per-image IoU ``miou_i`` (mIoU^I), pixel accuracy, per-class IoU; for binary
  tasks (where both means run over the foreground class only) also the best threshold on a grid
  (``miou_d@best``, ``threshold_d@best``, ...), because a per-pixel loss can rank pixels well and still
  look poor at 0.5. The final test evaluation also reports the IoU at the threshold tuned on validation
  (``miou_d@val_thr``), the honest version of "best threshold".
* **reproducibility**: all randomness (init, epoch permutations, augmentation) comes from ``seed``; a CPU
  run is deterministic, and a run resumed from its per-epoch checkpoint ends with exactly the metrics of
  the uninterrupted run.

Results rows: ``run, data, fg_frac, class_name, loss, model, seed, split, epoch, metric, value`` (``split`` in
train/val/test; train rows hold ``loss`` and ``images_per_s``), written to ``results.csv`` atomically.

>>> from iou_lib.train import DataSpec, TrainConfig, fit
>>> cfg = TrainConfig(DataSpec(n_train=32, n_val=16, image_size=32), epochs=1, width=4, progress=False)
>>> res = fit(cfg)
>>> sorted({r["split"] for r in res.rows})
['test', 'train', 'val']
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import inspect
import json
import math
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from iou_lib import config as _config
from iou_lib import losses
from iou_lib.data import load_splits
from iou_lib.data.base import InMemorySegmentation
from iou_lib.data.transforms import augment
from iou_lib.metrics import IoUAccumulator, predict
from iou_lib.models import build_model
from iou_lib.validation import value_checks

__all__ = [
    "NEUTRAL_LOGIT",
    "DataSpec",
    "FitResult",
    "TrainConfig",
    "batches",
    "evaluate",
    "fit",
    "loss_names",
    "parse_schedule",
]

NEUTRAL_LOGIT = -50.0
"""Logit given to ignored pixels for binary losses (sigmoid = 2e-22: a confident true negative)."""

THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))
RESULT_FIELDS = (
    "run",
    "data",
    "fg_frac",
    "class_name",
    "loss",
    "model",
    "seed",
    "split",
    "epoch",
    "metric",
    "value",
)


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """Which data a run trains on.

    ``kind``: ``"synthetic"`` (:class:`~iou_lib.data.synthetic.SyntheticSegmentation`: ``fg_frac``,
    ``image_size``, ``n_train``/``n_val`` (test has ``n_val`` images too), ``n_objects``, ``empty_frac``;
    generated from the run seed), ``"folder"`` (images/ + masks/ folders under ``path``) or ``"camvid"``
    (``path`` or ``$IOU_DATA_DIR/camvid``; ``class_name`` a class for a binary view, ``None`` for all 11).
    ``scale`` shrinks real images by an integer factor; ``augment`` adds random flips and, with ``crop``,
    random square crops of that side. Folder data: ``num_classes`` 1 for binary masks, else class-index
    masks with an optional ``ignore_index``.
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
    augment: bool = False
    crop: int | None = None
    size: tuple[int, int] | None = None  # folder data: resize every image and mask to (H, W)

    def __post_init__(self) -> None:
        if self.kind not in ("synthetic", "folder", "camvid"):
            raise ValueError(f"data kind must be 'synthetic', 'folder' or 'camvid', got {self.kind!r}")

    @classmethod
    def from_profile(cls, profile: _config.Profile | str | None = None, **overrides: Any) -> DataSpec:
        """Synthetic-data sizes (and CamVid scale) from a run profile, with ``overrides``."""
        p = profile if isinstance(profile, _config.Profile) else _config.get_profile(profile)
        base = {"image_size": p.image_size, "n_train": p.n_train, "n_val": p.n_val, "scale": p.camvid_scale}
        return cls(**{**base, **overrides})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (and nothing about where its output goes but ``out_dir``).

    ``loss``: a registry name, a weighted sum or a schedule (see :func:`parse_schedule`); ``loss_options``
    maps a loss name to keyword arguments (``{"soft_iou": {"per_image": True}}``). ``device``: ``"auto"``
    or a torch device string; ``amp``: bf16 autocast, ``None`` = on for CUDA. ``out_dir``: where
    ``results.csv``, ``checkpoint.pt``, ``config.json`` and ``summary.json`` go (``None``: nothing is
    written, no resume). With ``resume`` an existing checkpoint of the same config is continued.
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
    epochs: int = 5
    batch_size: int = 16
    seed: int = 0
    device: str = "auto"
    amp: bool | None = None
    compile: bool = False
    thresholds: tuple[float, ...] = THRESHOLDS
    out_dir: str | None = None
    resume: bool = True
    progress: bool = True
    run_name: str | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "width", "depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "depth" else 1):
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(_OPTIMIZERS)}, got {self.optimizer!r}")
        if not isinstance(self.data, DataSpec):
            raise TypeError(f"data must be a DataSpec, got {type(self.data).__name__}")
        parse_schedule(self.loss, self.epochs)  # fail early on a bad loss spec
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
        epochs = p.camvid_epochs if data.kind == "camvid" else p.epochs
        base = {"epochs": epochs, "batch_size": p.batch_size, "width": p.width, "depth": p.depth, "lr": p.lr}
        return cls(data=data, **{**base, **overrides})

    @property
    def name(self) -> str:
        """The run's name: ``run_name`` or one built from data, loss and seed."""
        if self.run_name:
            return self.run_name
        data = self.data
        what = (
            f"fg{data.fg_frac:g}" if data.kind == "synthetic" else f"{data.kind}-{data.class_name or 'all'}"
        )
        name = f"{what}_{self.loss}_{self.model}_s{self.seed}"
        return name.replace("*", "x").replace(":", "-").replace(",", "_").replace("+", "p").replace(" ", "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["data"] = DataSpec(**d["data"])
        d["thresholds"] = tuple(d["thresholds"])
        return cls(**d)


_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
# settings that do not change the numbers of a run: a checkpoint may be resumed under other values
_RUNTIME_FIELDS = ("device", "out_dir", "resume", "progress", "compile")


def parse_schedule(spec: str, epochs: int) -> list[tuple[str, int]]:
    """Split ``"spec1:k1,spec2:k2,...,specN"`` into ``[(spec, n_epochs), ...]`` summing to ``epochs``.

    Each phase is a loss spec for :func:`iou_lib.losses.parse` and its number of epochs; the last phase
    may omit it and then runs to the end. A plain loss spec is one phase for all epochs.

    >>> parse_schedule("bce:2,soft_iou", 5)
    [('bce', 2), ('soft_iou', 3)]
    >>> parse_schedule("0.5*bce+0.5*soft_iou", 3)
    [('0.5*bce+0.5*soft_iou', 3)]
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"loss must be a non-empty loss spec or schedule string, got {spec!r}")
    phases: list[tuple[str, int]] = []
    parts = [p.strip() for p in spec.split(",")]
    used = 0
    for i, part in enumerate(parts):
        name, colon, count = part.partition(":")
        last = i == len(parts) - 1
        if colon:
            try:
                n = int(count)
            except ValueError:
                raise ValueError(
                    f"loss schedule {spec!r}: epochs {count!r} of phase {name!r} is not an int"
                ) from None
            if n < 1:
                raise ValueError(f"loss schedule {spec!r}: phase {name!r} needs >= 1 epoch, got {n}")
        elif not last:
            raise ValueError(
                f"loss schedule {spec!r}: phase {name!r} needs ':epochs' (only the last may omit it)"
            )
        else:
            n = epochs - used
            if n < 1:
                raise ValueError(
                    f"loss schedule {spec!r}: the phases before {name!r} take {used} epochs, "
                    f"leaving none of the run's {epochs}"
                )
        losses.parse(name.strip())  # unknown names -> ValueError listing the available losses
        phases.append((name.strip(), n))
        used += n
    if used != epochs:
        raise ValueError(f"loss schedule {spec!r} covers {used} epochs; the run has {epochs}")
    return phases


def loss_names(spec: str) -> set[str]:
    """Registry names used in a loss spec or schedule.

    >>> sorted(loss_names("bce:2,0.5*bce+0.5*soft_iou"))
    ['bce', 'soft_iou']
    """
    phases = [phase.partition(":")[0] for phase in spec.split(",")]
    return {m.name for p in phases for m in losses.parse(p).modules() if isinstance(m, losses.Loss)}


def _build_loss(
    spec: str, options: dict[str, dict[str, Any]], num_classes: int, ignore_index: int | None
) -> nn.Module:
    """The loss module of a spec; multi-class losses with ignored pixels get ``ignore_index``."""
    names = loss_names(spec)
    opts = {n: dict(o) for n, o in options.items() if n in names}
    if num_classes > 1 and ignore_index is not None:
        for n in names:
            if "ignore_index" not in inspect.signature(losses.functional(n)).parameters:
                raise ValueError(
                    f"loss {n!r} takes no ignore_index, but the data have ignored pixels "
                    f"(ignore_index={ignore_index})"
                )
            opts.setdefault(n, {})["ignore_index"] = ignore_index
    return losses.parse(spec, opts)


def _loss_inputs(
    logits: Tensor, target: Tensor, num_classes: int, ignore_index: int | None
) -> tuple[Tensor, Tensor]:
    """Logits and target as the losses take them; ignored pixels neutralised for binary losses."""
    if num_classes > 1:
        return logits, target
    if ignore_index is not None:
        valid = (target != ignore_index)[:, None]
        logits = torch.where(valid, logits, NEUTRAL_LOGIT)
        target = target * valid[:, 0]
    return logits, target[:, None].to(logits.dtype)


# ------------------------------------------------------------------------------------------------ runtime
@dataclasses.dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # fit created the process group and closes it

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: str) -> _Dist:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE > 1``)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    owns = not dist.is_initialized()
    if owns:
        cuda = torch.cuda.is_available() and not device.startswith(("cpu", "mps"))
        dist.init_process_group("nccl" if cuda else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), owns)


def _device(name: str, d: _Dist) -> torch.device:
    dev = _config.default_device() if name == "auto" else torch.device(name)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", d.local_rank if d.world > 1 else torch.cuda.current_device())
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return dev


def _autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def batches(
    dataset: InMemorySegmentation, indices: Tensor | Sequence[int], batch_size: int, drop_last: bool = False
) -> Iterator[tuple[Tensor, Tensor]]:
    """``(images, targets)`` batches of ``dataset`` items ``indices``, in that order.

    >>> from iou_lib.data.synthetic import SyntheticSegmentation
    >>> [tuple(x.shape) for x, _ in batches(SyntheticSegmentation(5, 8, 0.1), range(5), 2)]
    [(2, 3, 8, 8), (2, 3, 8, 8), (1, 3, 8, 8)]
    """
    idx = torch.as_tensor(list(indices) if not isinstance(indices, Tensor) else indices, dtype=torch.long)
    idx = idx.to(dataset.images.device)
    stop = len(idx) - len(idx) % batch_size if drop_last else len(idx)
    for start in range(0, stop, batch_size):
        yield dataset.batch(idx[start : start + batch_size])


def _to_device(x: Tensor, y: Tensor, device: torch.device, channels_last: bool) -> tuple[Tensor, Tensor]:
    x = x.to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


# --------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Iterable[tuple[Tensor, Tensor]],
    *,
    num_classes: int = 1,
    ignore_index: int | None = None,
    class_names: Sequence[str] | None = None,
    thresholds: Sequence[float] = THRESHOLDS,
    device: torch.device | str | None = None,
    amp: bool | None = None,
) -> dict[str, float]:
    """IoU metrics of ``model`` over ``data``: batches ``(images (B, 3, H, W), targets (B, H, W) int)``.

    Returns ``miou_d`` (data-set IoU, one confusion matrix over all pixels), ``miou_i`` (mean per-image IoU;
    images where a class is absent from target and prediction are left out, see :mod:`iou_lib.metrics`),
    ``pixel_acc`` at threshold 0.5 (argmax for ``num_classes >= 2``). Binary tasks (``num_classes=1``,
    one logit; the means are the foreground IoU): also ``miou_d@best``/``threshold_d@best``,
    ``miou_i@best``/``threshold_i@best`` over ``thresholds`` and the curve ``curve_d@<t>``. Multi-class:
    ``iou_d/<class>`` and ``iou_i/<class>``. Pixels whose target is ``ignore_index`` are not counted.
    Under an initialised process group the counts are summed over ranks (each rank passes its shard).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    amp = device.type == "cuda" if amp is None else amp
    binary = num_classes == 1
    grid = sorted({0.5, *map(float, thresholds)}) if binary else [0.5]
    accs = {t: IoUAccumulator(2 if binary else num_classes, ignore_index=ignore_index) for t in grid}
    was_training = model.training
    model.eval()
    try:
        for x, y in data:
            x, y = _to_device(x, y, device, channels_last=device.type == "cuda")
            with _autocast(device, amp):
                logits = model(x)
            logits = logits.float()
            if binary:
                prob = torch.sigmoid(logits[:, 0])
                for t, acc in accs.items():
                    acc.update((prob > t).long(), y)
            else:
                accs[0.5].update(predict(logits, multiclass=True), y)
    finally:
        model.train(was_training)
    if dist.is_available() and dist.is_initialized():
        for acc in accs.values():
            acc.all_reduce(device if device.type == "cuda" else torch.device("cpu"))
    summaries = {t: acc.compute() for t, acc in accs.items()}
    s = summaries[0.5]
    if binary:
        out = {
            "miou_d": float(s.iou[1]),
            "miou_i": float(s.iou_per_image[1]),
            "pixel_acc": float(s.pixel_accuracy),
        }
        curve_d = {t: float(v.iou[1]) for t, v in summaries.items()}
        curve_i = {t: float(v.iou_per_image[1]) for t, v in summaries.items()}
        t_d = max(curve_d, key=lambda t: -math.inf if math.isnan(curve_d[t]) else curve_d[t])
        t_i = max(curve_i, key=lambda t: -math.inf if math.isnan(curve_i[t]) else curve_i[t])
        out.update(
            {
                "miou_d@best": curve_d[t_d],
                "threshold_d@best": t_d,
                "miou_i@best": curve_i[t_i],
                "threshold_i@best": t_i,
            }
        )
        out.update({f"curve_d@{t:.2f}": v for t, v in curve_d.items()})
        return out
    names = list(class_names) if class_names else [str(c) for c in range(num_classes)]
    out = {"miou_d": float(s.miou), "miou_i": float(s.miou_per_image), "pixel_acc": float(s.pixel_accuracy)}
    out.update({f"iou_d/{n}": float(v) for n, v in zip(names, s.iou, strict=True)})
    out.update({f"iou_i/{n}": float(v) for n, v in zip(names, s.iou_per_image, strict=True)})
    return out


# ------------------------------------------------------------------------------------------------ writing
def _atomic_write(path: Path, write: Any, mode: str = "w") -> None:
    """Write via a temporary file in the same folder and ``os.replace``: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_rows(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write tidy result rows to a CSV file atomically."""

    def write(f: Any) -> None:
        w = csv.DictWriter(f, fieldnames=RESULT_FIELDS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)

    _atomic_write(Path(path), write)


def _write_json(path: Path, obj: Any) -> None:
    _atomic_write(path, lambda f: json.dump(obj, f, indent=1, sort_keys=True))


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    _atomic_write(path, lambda f: torch.save(state, f), mode="wb")


# -------------------------------------------------------------------------------------------------- fit
@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns: the trained model (unwrapped, in eval mode), the tidy rows and the final
    metrics (``summary``: last-epoch validation and test metrics, keys ``val/<metric>``, ``test/<metric>``).
    """

    model: nn.Module
    rows: list[dict[str, Any]]
    summary: dict[str, float]
    config: TrainConfig

    def table(self) -> Any:
        """The rows as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(RESULT_FIELDS))


def _same_run(a: dict[str, Any], b: dict[str, Any]) -> bool:
    strip = lambda d: {k: v for k, v in d.items() if k not in _RUNTIME_FIELDS}  # noqa: E731
    return strip(a) == strip(b)


def fit(config: TrainConfig) -> FitResult:
    """Train and evaluate one run (see the module docstring); resumes from ``out_dir`` when possible."""
    d = _init_distributed(config.device)
    device = _device(config.device, d)
    amp = device.type == "cuda" if config.amp is None else config.amp
    out = Path(config.out_dir) if config.out_dir else None
    ckpt_path = out / "checkpoint.pt" if out else None

    train_ds, val_ds, test_ds = load_splits(config.data, seed=config.seed)
    num_classes, ignore = train_ds.num_classes, train_ds.ignore_index
    if device.type == "cuda":  # keep the (uint8) data on the GPU: no per-batch host->device copies
        for ds in (train_ds, val_ds, test_ds):
            ds.images, ds.labels = ds.images.to(device), ds.labels.to(device)

    torch.manual_seed(config.seed)
    model = build_model(config.model, 3, num_classes, config.width, config.depth, config.norm).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    optimizer = _OPTIMIZERS[config.optimizer](
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    phases = parse_schedule(config.loss, config.epochs)
    phase_of_epoch = [spec for spec, n in phases for _ in range(n)]
    loss_fns = {spec: _build_loss(spec, config.loss_options, num_classes, ignore) for spec, _ in phases}

    rows: list[dict[str, Any]] = []
    start_epoch, val_thr = 0, 0.5
    if ckpt_path is not None and config.resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        if not _same_run(state["config"], config.to_dict()):
            raise ValueError(
                f"checkpoint {ckpt_path} belongs to a different config; use another out_dir or resume=False"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rows, start_epoch, val_thr = state["rows"], state["epoch"], state["val_threshold"]
    if out is not None and d.main:
        _write_json(out / "config.json", config.to_dict())

    net: nn.Module = model
    if d.world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if config.compile:
        net = torch.compile(net)

    ident = {
        "run": config.name,
        "data": config.data.kind,
        "fg_frac": config.data.fg_frac if config.data.kind == "synthetic" else "",
        "class_name": config.data.class_name or "",
        "loss": config.loss,
        "model": config.model,
        "seed": config.seed,
    }

    def add_rows(split: str, epoch: int, metrics: dict[str, float]) -> None:
        rows.extend(
            {**ident, "split": split, "epoch": epoch, "metric": k, "value": v} for k, v in metrics.items()
        )

    def eval_split(ds: InMemorySegmentation) -> dict[str, float]:
        if d.world > 1:
            # every rank evaluates its shard with the plain module (shards may need different numbers of
            # batches, which DDP's per-forward collectives would not allow), BatchNorm statistics of rank 0
            for buffer in model.buffers():
                dist.broadcast(buffer, 0)
        shard = torch.arange(d.rank, len(ds), d.world)
        return evaluate(
            model if d.world > 1 else net,
            batches(ds, shard, config.batch_size),
            num_classes=num_classes,
            ignore_index=ignore,
            class_names=ds.class_names,
            thresholds=config.thresholds,
            device=device,
            amp=amp,
        )

    sampler = DistributedSampler(
        train_ds, num_replicas=d.world, rank=d.rank, shuffle=True, seed=config.seed, drop_last=True
    )
    crop = (config.data.crop, config.data.crop) if config.data.crop else None
    show = config.progress and d.main
    for epoch in tqdm(
        range(start_epoch, config.epochs),
        desc=config.name,
        disable=not show,
        initial=start_epoch,
        total=config.epochs,
    ):
        loss_fn = loss_fns[phase_of_epoch[epoch]]
        sampler.set_epoch(epoch)
        gen = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch * 7919 + d.rank)
        net.train()
        total, steps, t0 = torch.zeros((), device=device), 0, time.perf_counter()
        n_steps = len(sampler) // config.batch_size
        steps_iter = tqdm(
            batches(train_ds, list(sampler), config.batch_size, drop_last=True),
            total=n_steps,
            leave=False,
            disable=not show,
            desc=f"epoch {epoch + 1}",
        )
        # the loaders' data are valid; value checks would sync the GPU every step (see iou_lib.validation)
        with value_checks(False):
            for x, y in steps_iter:
                if config.data.augment:
                    x, y = augment(x, y, gen, crop)
                x, y = _to_device(x, y, device, channels_last=device.type == "cuda")
                with _autocast(device, amp):
                    logits = net(x)
                loss = loss_fn(*_loss_inputs(logits, y, num_classes, ignore))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach()
                steps += 1
        seconds = time.perf_counter() - t0
        stats = torch.stack([total.float(), torch.tensor(float(steps), device=device)])
        if d.world > 1:
            dist.all_reduce(stats)
        train_metrics = {
            "loss": float(stats[0] / stats[1].clamp_min(1)),
            "images_per_s": d.world * steps * config.batch_size / max(seconds, 1e-9),
        }
        if not math.isfinite(train_metrics["loss"]):
            raise FloatingPointError(
                f"run {config.name}: mean training loss is {train_metrics['loss']} in epoch {epoch + 1}; "
                "try a lower lr or amp=False"
            )
        add_rows("train", epoch + 1, train_metrics)
        val = eval_split(val_ds)
        add_rows("val", epoch + 1, {k: v for k, v in val.items() if not k.startswith("curve_")})
        val_thr = val.get("threshold_d@best", 0.5)
        if out is not None and d.main:
            _save_checkpoint(
                ckpt_path,
                {
                    "epoch": epoch + 1,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "rows": rows,
                    "val_threshold": val_thr,
                    "config": config.to_dict(),
                },
            )
            write_rows(out / "results.csv", rows)

    test = eval_split(test_ds)
    if num_classes == 1:  # the threshold tuned on validation, applied to test (it is on the same grid)
        test.update({"miou_d@val_thr": test[f"curve_d@{val_thr:.2f}"], "threshold@val": val_thr})
    add_rows("test", config.epochs, test)
    summary = {
        f"{r['split']}/{r['metric']}": r["value"]
        for r in rows
        if r["epoch"] == config.epochs and r["split"] in ("val", "test")
    }
    if out is not None and d.main:
        write_rows(out / "results.csv", rows)
        _write_json(out / "summary.json", summary)
    if d.owns_group:
        dist.destroy_process_group()
    model.eval()
    return FitResult(model=model, rows=rows, summary=summary, config=config)
