"""Run the studies of notebooks 06-08 and store every finished run under ``data/results/`` (resumable).

    python tools/make_results.py [--profile cpu|gpu|quick] [--only STUDY ...] [--dry-run] [--jobs N]

Studies (``--only`` takes these names; the order below is the order they run in, most important first):

* ``lr`` - the learning rate of every loss, chosen on validation (best ``miou_d@tuned`` at the best step)
  from the plan's three-value grid with one seed at the primary setting (1 % foreground); the chosen rate is
  then used for that loss at every foreground fraction. Searched lazily: a loss's search runs just before
  its first seeded run;
* ``primary`` - the pre-declared primary contrast: soft IoU vs BCE at 1 % foreground, IoU at 0.5;
* ``calibration`` (06) - bce, weighted_bce and soft_iou at 1 %, 5 seeds, trained afresh (not shared with
  the other studies) so that every run records the reliability diagram and the expected calibration
  error of its test predictions (``ece``, ``calib_*``; runs stored before the engine measured them lack
  them). Their other metrics double as a reproducibility check of the same configurations elsewhere;
* ``imbalance`` (07) - bce, weighted_bce, soft_iou and ``0.25*bce+0.75*soft_iou`` at foreground fractions
  0.5 ... 0.005, 5 seeds (10 at 1 % when the plan says so);
* ``shootout`` (06) - every registered binary loss at 2 % and 1 %: batch-pooled, plus the per-image variant
  of each region loss, the Lovász hinge from scratch and after a BCE warm-up (``bce:K,lovasz_hinge``);
* ``camvid_binary`` / ``camvid_multi`` (08) - one binary model per class (car, pedestrian, bicyclist,
  sign-symbol, pole) with bce, soft_iou and the mix; the 11-class model with cross-entropy, Lovász-softmax
  and cross-entropy then Lovász-softmax.

Every finished run is reduced to a small tidy CSV (learning curves, every test metric, the run summary as
``split == "summary"`` rows) plus a JSON sidecar (config, summary, provenance: commit, whether the tree was
clean, profile, exact budget, device, wall time), under ``data/results/<profile>/<study>/``. A run whose
files exist there is never redone, so a grid that takes hours continues on a fresh clone; run folders with
checkpoints live in ``runs/results_<profile>/`` (git-ignored) and let an interrupted run resume.

``--dry-run`` prints the plan (runs per study, how many are stored, an estimated time) and trains nothing.
``--profile gpu`` runs the same studies at the ``gpu`` profile's size; ``--jobs N`` runs N worker
processes side by side (small models leave one GPU mostly idle), each claiming the next group of runs
that no other worker holds (lock files under the runs folder).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import datetime as dt
import fcntl
import io
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ("lr", "primary", "calibration", "imbalance", "shootout", "camvid_binary", "camvid_multi")
FRESH = ("calibration",)  # studies that train their runs afresh, in their own run folders
CALIBRATION = ("bce", "weighted_bce", "soft_iou")
PRIMARY = ("soft_iou", "bce")  # the pre-declared primary contrast: soft IoU - BCE at 1 %, IoU at 0.5
# rows kept from a run: learning curves (train loss, validation metrics) and every test metric
KEEP = {"train": ("loss", "lr"), "val": ("miou_d", "miou_d@tuned", "threshold@tuned", "ap")}


@dataclasses.dataclass(frozen=True)
class Variant:
    """A loss as a study trains it: spec, aggregation of the region losses, options of one of its losses
    (``params``: ``(name, value)`` pairs for the spec's single loss, e.g. the Tversky weights), and its
    label in tables."""

    loss: str
    per_image: bool = False
    params: tuple[tuple[str, float], ...] = ()

    @property
    def label(self) -> str:
        """``"soft_iou (per image)"``, ``"bce then lovasz_hinge"`` (a warm-up schedule),
        ``"tversky alpha=0.3 beta=0.7"``."""
        words = [self.loss.replace(":{warmup},", " then "), *(f"{k}={v:g}" for k, v in self.params)]
        return " ".join(words) + (" (per image)" if self.per_image else "")

    @property
    def slug(self) -> str:
        s = self.loss.replace("*", "x").replace(":", "-").replace(",", "_").replace("+", "p")
        s += "".join(f"-{k[0]}{v:g}" for k, v in self.params)
        return s + ("_pi" if self.per_image else "")

    def options(self) -> dict[str, dict[str, Any]]:
        """``per_image`` for every region loss of the spec (the Lovász hinge defaults to per image), and
        ``params`` for its loss."""
        from iou_lib.train import loss_names

        region = {"soft_iou", "soft_dice", "tversky", "jaccard_metric", "lovasz_hinge"}
        names = loss_names(self.loss)
        out = {n: {"per_image": self.per_image} for n in sorted(names & region)}
        if self.params:
            (name,) = names  # params belong to a single-loss spec
            out.setdefault(name, {}).update(dict(self.params))
        return out


@dataclasses.dataclass(frozen=True)
class Plan:
    """Sizes and studies of one profile. Budgets are optimizer steps; ``{warmup}`` in a loss spec is
    ``warmup_frac * steps`` (the BCE warm-up of the Lovász hinge)."""

    name: str
    image_size: int
    n_train: int
    n_val: int
    batch_size: int
    width: int
    depth: int
    steps: int
    eval_every: int
    lr_grid: tuple[float, ...]
    seeds: tuple[int, ...]
    extra_seeds: tuple[int, ...]  # more seeds for the imbalance losses at the primary fraction
    primary_frac: float
    fg_fracs: tuple[float, ...]
    shootout_fracs: tuple[float, ...]
    imbalance_losses: tuple[str, ...]
    shootout: tuple[Variant, ...]
    warmup_frac: float
    camvid_scale: int
    camvid_width: int
    camvid_batch_size: int
    camvid_steps: int
    camvid_eval_every: int
    camvid_lr: float
    camvid_seeds: tuple[int, ...]
    camvid_classes: tuple[str, ...]
    camvid_binary: tuple[str, ...]
    camvid_multi: tuple[str, ...]
    seconds_per_step: float  # for the time estimate of --dry-run until stored runs give measured times
    jobs: int = 1  # default worker processes (gpu: many small runs share one GPU)

    @property
    def note(self) -> str:
        """The sizes in words (for provenance and the notebooks)."""
        return (
            f"synthetic {self.image_size} px, {self.n_train} train / {self.n_val} val / {self.n_val} test "
            f"images, U-Net width {self.width}, depth {self.depth}, batch {self.batch_size}, "
            f"{self.steps} Adam steps (warm-up + cosine), validation every {self.eval_every} steps; "
            f"CamVid shrunk {self.camvid_scale}x, width {self.camvid_width}, batch {self.camvid_batch_size}, "
            f"{self.camvid_steps} steps"
        )


_REGION = ("soft_iou", "soft_dice", "tversky", "jaccard_metric", "lovasz_hinge")
_MIX = "0.25*bce+0.75*soft_iou"
# Tversky at alpha = beta = 0.5 (the library's default) is soft Dice; the shoot-out trains the weights
# Salehi et al. (2017) found best for small lesions: false negatives weigh more than false positives.
_TVERSKY = (("alpha", 0.3), ("beta", 0.7))


def _variant(name: str, per_image: bool = False) -> Variant:
    return Variant(name, per_image, _TVERSKY if name == "tversky" else ())


_SHOOTOUT = (
    *(_variant(n) for n in ("bce", "weighted_bce", "focal", *_REGION, _MIX)),
    *(_variant(n, per_image=True) for n in _REGION),
    Variant("bce:{warmup},lovasz_hinge"),
)
_IMBALANCE = ("bce", "weighted_bce", "soft_iou", _MIX)
# what the cpu and gpu plans share: the studies themselves (seeds, settings, losses); only sizes differ
_STUDIES: dict[str, Any] = dict(
    seeds=(0, 1, 2, 3, 4),
    extra_seeds=(5, 6, 7, 8, 9),
    primary_frac=0.01,
    fg_fracs=(0.5, 0.2, 0.05, 0.02, 0.01, 0.005),
    shootout_fracs=(0.01, 0.02),
    imbalance_losses=_IMBALANCE,
    shootout=_SHOOTOUT,
    warmup_frac=0.25,
    camvid_seeds=(0, 1, 2),
    camvid_classes=("car", "pedestrian", "bicyclist", "signsymbol", "pole"),
    camvid_binary=("bce", "soft_iou", _MIX),
    camvid_multi=("cross_entropy", "lovasz_softmax", "cross_entropy:{warmup},lovasz_softmax"),
)

PLANS: dict[str, Plan] = {
    "cpu": Plan(
        name="cpu",
        image_size=48,
        n_train=512,
        n_val=128,
        batch_size=16,
        width=8,
        depth=3,
        steps=1000,
        eval_every=50,
        lr_grid=(3e-3, 1e-2, 3e-2),
        **_STUDIES,
        camvid_scale=2,
        camvid_width=8,
        camvid_batch_size=8,
        camvid_steps=1000,
        camvid_eval_every=50,
        camvid_lr=3e-3,
        seconds_per_step=0.06,
    ),
    "gpu": Plan(
        name="gpu",
        image_size=128,
        n_train=2048,
        n_val=256,
        batch_size=32,
        width=32,
        depth=4,
        steps=1500,
        eval_every=75,
        lr_grid=(3e-4, 1e-3, 3e-3),
        **_STUDIES,
        camvid_scale=1,
        camvid_width=32,
        camvid_batch_size=16,
        camvid_steps=2000,
        camvid_eval_every=100,
        camvid_lr=1e-3,
        seconds_per_step=0.004,
        jobs=12,
    ),
    "quick": Plan(
        name="quick",
        image_size=16,
        n_train=32,
        n_val=8,
        batch_size=8,
        width=4,
        depth=1,
        steps=8,
        eval_every=2,
        lr_grid=(1e-3, 1e-2),
        seeds=(0, 1),
        extra_seeds=(),
        primary_frac=0.1,
        fg_fracs=(0.1, 0.3),
        shootout_fracs=(0.1,),
        imbalance_losses=("bce", "soft_iou"),
        shootout=(Variant("bce"), Variant("soft_iou", per_image=True), Variant("bce:{warmup},lovasz_hinge")),
        warmup_frac=0.25,
        camvid_scale=8,
        camvid_width=4,
        camvid_batch_size=8,
        camvid_steps=4,
        camvid_eval_every=2,
        camvid_lr=3e-3,
        camvid_seeds=(0,),
        camvid_classes=("car",),
        camvid_binary=("soft_iou",),
        camvid_multi=("cross_entropy",),
        seconds_per_step=0.01,
    ),
}


@dataclasses.dataclass(frozen=True)
class Unit:
    """One configuration trained on several seeds (one call of ``run_grid``: the engine may batch seeds).

    ``lr=None``: the rate chosen for ``variant`` by the ``lr`` study.
    """

    study: str
    data: str  # "synthetic" or "camvid"
    variant: Variant
    seeds: tuple[int, ...]
    fg_frac: float | None = None
    class_name: str | None = None
    lr: float | None = None

    @property
    def setting(self) -> str:
        """``"fg0.01"`` (synthetic) or ``"camvid-car"`` / ``"camvid-all"``."""
        return f"fg{self.fg_frac:g}" if self.data == "synthetic" else f"camvid-{self.class_name or 'all'}"

    def run_id(self, seed: int, lr: float) -> str:
        return f"{self.setting}_{self.variant.slug}_lr{lr:g}_s{seed}"


def units(plan: Plan, studies: Sequence[str] = STUDIES) -> list[Unit]:
    """Every group of runs of ``plan``, most important first. Identical runs shared by two studies are
    listed once (under the first); the ``lr`` search runs are listed here but run lazily."""
    out: list[Unit] = []
    p = plan.primary_frac
    main = plan.seeds
    if "lr" in studies:
        losses = dict.fromkeys([Variant(v) for v in plan.imbalance_losses] + list(plan.shootout))
        out += [Unit("lr", "synthetic", v, (main[0],), p, lr=lr) for v in losses for lr in plan.lr_grid]
    if "primary" in studies:
        out += [Unit("primary", "synthetic", Variant(n), main, p) for n in PRIMARY]
    if "calibration" in studies:
        out += [Unit("calibration", "synthetic", Variant(n), main, p) for n in CALIBRATION]
    if "imbalance" in studies:
        fracs = sorted(plan.fg_fracs, key=lambda f: (f != p, abs(math.log(f / p))))  # nearest to 1 % first
        out += [
            Unit("imbalance", "synthetic", Variant(n), main, f) for f in fracs for n in plan.imbalance_losses
        ]
    if "shootout" in studies:
        out += [Unit("shootout", "synthetic", v, main, f) for f in plan.shootout_fracs for v in plan.shootout]
    if "imbalance" in studies and plan.extra_seeds:
        out += [
            Unit("imbalance", "synthetic", Variant(n), plan.extra_seeds, p) for n in plan.imbalance_losses
        ]
    if "camvid_binary" in studies:
        out += [
            Unit("camvid_binary", "camvid", Variant(n), plan.camvid_seeds, class_name=c, lr=plan.camvid_lr)
            for c in plan.camvid_classes
            for n in plan.camvid_binary
        ]
    if "camvid_multi" in studies:
        out += [
            Unit("camvid_multi", "camvid", Variant(n), plan.camvid_seeds, lr=plan.camvid_lr)
            for n in plan.camvid_multi
        ]
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for u in out:
        if u.study in FRESH:
            unique.append(u)
            continue
        key = (u.data, u.variant, u.fg_frac, u.class_name, u.lr)
        seeds = tuple(s for s in u.seeds if (*key, s) not in seen)
        seen |= {(*key, s) for s in seeds}
        if seeds:
            unique.append(dataclasses.replace(u, seeds=seeds))
    return unique


def n_runs(us: Sequence[Unit]) -> int:
    return sum(len(u.seeds) for u in us)


def config_for(plan: Plan, unit: Unit, seed: int, lr: float, runs_dir: Path, compile: bool = False) -> Any:
    """The :class:`iou_lib.train.TrainConfig` of one run (seed) of ``unit`` at learning rate ``lr``;
    ``compile``: ``torch.compile`` the model (a runtime setting, not part of the run's identity)."""
    from iou_lib.train import DataSpec, TrainConfig

    if unit.data == "synthetic":
        data = DataSpec(
            kind="synthetic",
            fg_frac=unit.fg_frac,
            image_size=plan.image_size,
            n_train=plan.n_train,
            n_val=plan.n_val,
        )
        steps, every, width, batch = plan.steps, plan.eval_every, plan.width, plan.batch_size
    else:
        data = DataSpec(kind="camvid", class_name=unit.class_name, scale=plan.camvid_scale)
        steps, every = plan.camvid_steps, plan.camvid_eval_every
        width, batch = plan.camvid_width, plan.camvid_batch_size
    loss = unit.variant.loss.format(warmup=int(plan.warmup_frac * steps))
    name = unit.run_id(seed, lr)
    return TrainConfig(
        data=data,
        loss=loss,
        loss_options=unit.variant.options(),
        width=width,
        depth=plan.depth,
        lr=lr,
        batch_size=batch,
        seed=seed,
        steps=steps,
        eval_every=every,
        lr_schedule="cosine",
        progress=False,
        compile=compile,
        run_name=name,
        out_dir=str(runs_dir / unit.study / name if unit.study in FRESH else runs_dir / name),
    )


# ------------------------------------------------------------------------------------------ stored runs
def stored_path(results_dir: Path, plan: Plan, study: str, run_id: str) -> Path:
    return results_dir / plan.name / study / f"{run_id}.csv"


def is_stored(results_dir: Path, plan: Plan, unit: Unit, seed: int, lr: float) -> bool:
    path = stored_path(results_dir, plan, unit.study, unit.run_id(seed, lr))
    return path.exists() and path.with_suffix(".json").exists()


def reduce_rows(table: Any, summary: dict[str, Any], columns: dict[str, Any]) -> Any:
    """A run's kept rows (:data:`KEEP` and all test rows), its summary as ``split == "summary"`` rows
    (``steps``, ``best_step``, ``collapsed``, ``wall_s``) and the study's ``columns``."""
    import pandas as pd

    keep = table["split"].eq("test")
    for split, metrics in KEEP.items():
        keep |= table["split"].eq(split) & table["metric"].isin(metrics)
    rows = table[keep].copy()
    first = rows.iloc[0].to_dict()
    extra = []
    for metric in ("steps", "best_step", "collapsed", "wall_s"):
        value = summary.get(metric)
        if value is not None:
            extra.append(
                {
                    **first,
                    "split": "summary",
                    "step": summary.get("steps"),
                    "metric": metric,
                    "value": float(value),
                }
            )
    rows = pd.concat([rows, pd.DataFrame(extra)], ignore_index=True)
    for key, value in columns.items():
        rows[key] = value
    return rows


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def store_run(results_dir: Path, plan: Plan, unit: Unit, cfg: Any, provenance: dict[str, Any]) -> Path:
    """Reduce the finished run in ``cfg.out_dir`` and write ``<run>.csv`` + ``<run>.json`` (JSON last:
    a run counts as stored only when both exist)."""
    import pandas as pd

    folder = Path(cfg.out_dir)
    summary = json.loads((folder / "summary.json").read_text())
    table = pd.read_csv(folder / "results.csv", keep_default_na=False)
    columns = {
        "study": unit.study,
        "variant": unit.variant.label,
        "per_image": unit.variant.per_image,
        "lr": cfg.lr,
        "profile": plan.name,
    }
    rows = reduce_rows(table, summary, columns)
    path = stored_path(results_dir, plan, unit.study, cfg.name)
    write_atomic(path, rows.to_csv(index=False, float_format="%.5g"))
    record = {
        "run": cfg.name,
        "study": unit.study,
        "config": cfg.to_dict(),
        "summary": summary,
        **provenance,
        "wall_s": summary.get("wall_s"),
    }
    record["config"].pop("out_dir", None)
    write_atomic(path.with_suffix(".json"), json.dumps(record, indent=1, default=str) + "\n")
    return path


def copy_stored(results_dir: Path, plan: Plan, unit: Unit, run_id: str) -> bool:
    """Store a run that another study already stored (same run, e.g. BCE at 1 % in three studies) under
    ``unit.study`` too; returns whether there was one (never for a study in :data:`FRESH`)."""
    if unit.study in FRESH:
        return False
    for other in (results_dir / plan.name).glob(f"*/{run_id}.json"):
        if other.parent.name == unit.study or not other.with_suffix(".csv").exists():
            continue
        target = stored_path(results_dir, plan, unit.study, run_id)
        # a CSV reader, not a split on commas: a schedule's label ("bce:250,lovasz_hinge") is a quoted cell
        with other.with_suffix(".csv").open(newline="") as f:
            header, *rows = csv.reader(f)
        col = header.index("study")
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([*row[:col], unit.study, *row[col + 1 :]] for row in rows)
        write_atomic(target, out.getvalue())
        record = json.loads(other.read_text())
        write_atomic(
            target.with_suffix(".json"), json.dumps({**record, "study": unit.study}, indent=1) + "\n"
        )
        return True
    return False


def load_stored(results_dir: Path, plan: Plan, study: str | None = None) -> Any:
    """All stored runs of ``plan`` (optionally one study) as one tidy table."""
    import pandas as pd

    pattern = f"{study}/*.csv" if study else "*/*.csv"
    files = sorted(f for f in (results_dir / plan.name).glob(pattern) if f.with_suffix(".json").exists())
    if not files:
        return pd.DataFrame()
    return pd.concat([pd.read_csv(f, keep_default_na=False) for f in files], ignore_index=True)


def chosen_lr(results_dir: Path, plan: Plan, variant: Variant) -> float | None:
    """The rate of the ``lr`` study with the best validation ``miou_d@tuned`` (at each run's best step);
    ``None`` until every rate of the grid is stored. Ties go to the smaller rate."""
    scores = []
    for lr in plan.lr_grid:
        unit = Unit("lr", "synthetic", variant, (plan.seeds[0],), plan.primary_frac, lr=lr)
        path = stored_path(results_dir, plan, "lr", unit.run_id(plan.seeds[0], lr)).with_suffix(".json")
        if not path.exists():
            return None
        val = json.loads(path.read_text())["summary"].get("val", {})
        score = val.get("miou_d@tuned", math.nan)
        scores.append((-1.0 if math.isnan(score) else score, -lr, lr))
    return max(scores)[2]


# ----------------------------------------------------------------------------------------- provenance
def _git(*args: str, cwd: Path = ROOT) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return proc.stdout.strip()


def provenance(plan: Plan) -> dict[str, Any]:
    """Commit, whether the code that trains was clean (no uncommitted change under iou_lib/ or tools/),
    profile, exact budget, device, versions."""
    import torch

    from iou_lib.config import default_device

    dev = default_device()
    if dev.type == "cuda":
        device = f"cuda ({torch.cuda.get_device_name(dev)})"
    else:
        device = (
            f"{dev.type} ({platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"
        )
    dirty = _git("status", "--porcelain", "--", "iou_lib", "tools")
    return {
        "profile": plan.name,
        "plan": json.loads(json.dumps(dataclasses.asdict(plan))),
        "note": plan.note,
        "git_commit": _git("rev-parse", "HEAD"),
        "clean_tree": not dirty,
        "device": device,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


# ------------------------------------------------------------------------------------------- running
class StopGrid(Exception):
    """``--max-runs`` reached."""


class Busy(Exception):
    """Another worker holds the lock of this unit (or of its learning-rate search): come back later."""


@contextlib.contextmanager
def locked(lock_dir: Path | None, name: str, wait: bool = True) -> Iterator[None]:
    """Hold the lock file ``lock_dir/name.lock`` (released when the block ends, or when the process dies);
    ``wait=False`` raises :class:`Busy` instead of waiting for another worker. No-op without ``lock_dir``."""
    if lock_dir is None:
        yield
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(name) from None
        yield


def resolve(
    plan: Plan, unit: Unit, results_dir: Path, lock_dir: Path | None = None, wait: bool = True
) -> Iterator[Unit]:
    """``unit`` with its rate fixed: the ``lr`` search units of its loss first (if not yet stored). With
    ``lock_dir``, a search holds a lock file there, so parallel workers never run the same search: a second
    worker waits, then reads the chosen rate (``wait=False``: raises :class:`Busy` instead)."""
    if unit.lr is not None:
        yield unit
        return
    with locked(lock_dir, f"lr_{unit.variant.slug}", wait):
        lr = chosen_lr(results_dir, plan, unit.variant)
        if lr is None:
            for rate in plan.lr_grid:
                yield Unit("lr", "synthetic", unit.variant, (plan.seeds[0],), plan.primary_frac, lr=rate)
            lr = chosen_lr(results_dir, plan, unit.variant)
            if lr is None:
                raise RuntimeError(f"the learning-rate search of {unit.variant.label} did not finish")
    yield dataclasses.replace(unit, lr=lr)


def train_unit(
    plan: Plan, unit: Unit, results_dir: Path, runs_dir: Path, prov: dict[str, Any], compile: bool = False
) -> int:
    """Train the seeds of ``unit`` not stored yet (one ``run_grid`` call) and store each; returns how many."""
    from iou_lib.experiments import run_grid

    assert unit.lr is not None
    todo = [s for s in unit.seeds if not is_stored(results_dir, plan, unit, s, unit.lr)]
    todo = [s for s in todo if not copy_stored(results_dir, plan, unit, unit.run_id(s, unit.lr))]
    if not todo:
        return 0
    configs = [config_for(plan, unit, s, unit.lr, runs_dir, compile) for s in todo]
    t0 = time.time()
    group = f"{unit.study}_{unit.run_id(0, unit.lr).removesuffix('_s0')}"
    run_grid(configs, runs_dir / "_groups" / group)  # per-group table; run folders sit in runs_dir
    for cfg in configs:
        store_run(results_dir, plan, unit, cfg, prov)
    print(
        f"[{dt.datetime.now():%H:%M:%S}] {unit.study}: {unit.variant.label} "
        f"{'fg ' + format(unit.fg_frac, 'g') if unit.fg_frac else unit.class_name or 'all classes'} "
        f"lr {unit.lr:g} seeds {list(todo)} stored ({time.time() - t0:.0f} s)",
        flush=True,
    )
    return len(todo)


def run_seconds(plan: Plan, results_dir: Path) -> dict[str, float]:
    """Seconds per run of each data kind: the mean wall time per run of the stored runs when there are some
    (a group's wall time shared by its seeds), else the plan's ``seconds_per_step`` (CamVid scaled by its
    pixels per step)."""
    camvid_pixels = plan.camvid_batch_size * (240 // plan.camvid_scale) * (180 // plan.camvid_scale)
    guess = {
        "synthetic": plan.steps * plan.seconds_per_step,
        "camvid": plan.camvid_steps
        * plan.seconds_per_step
        * camvid_pixels
        / (plan.batch_size * plan.image_size**2),
    }
    walls: dict[str, list[float]] = {"synthetic": [], "camvid": []}
    for record in (results_dir / plan.name).glob("*/*.json"):
        r = json.loads(record.read_text())
        if r.get("wall_s"):  # a group's wall time covers its seeds trained together
            per_run = r["wall_s"] / r.get("summary", {}).get("seeds_together", 1)
            walls["camvid" if r["config"]["data"]["kind"] == "camvid" else "synthetic"].append(per_run)
    measured = {k: sum(v) / len(v) for k, v in walls.items() if v}
    if len(measured) == 1:  # scale the other kind's guess by how far off the guess was for this one
        (kind, seconds), (other,) = next(iter(measured.items())), set(guess) - set(measured)
        measured[other] = guess[other] * seconds / guess[kind]
    return {k: measured.get(k, guess[k]) for k in guess}


def convergence_note(results_dir: Path, plan: Plan, study: str) -> str:
    """``"; curves plateaued in 3 of 4 groups"``: :func:`iou_lib.reporting.convergence` of the stored runs of
    ``study`` per setting and loss (validation IoU changes by < 0.02 between the last 20 % of evaluations
    and the 20 % before, on average)."""
    from iou_lib.reporting import convergence, stored_study

    table, _ = stored_study(study, plan.name, results_dir)
    if table.empty:
        return ""
    by = ("fg_frac", "class_name", "variant", "lr") if study == "lr" else ("fg_frac", "class_name", "variant")
    conv = convergence(table, by=by)
    return f"; curves plateaued in {int(conv['plateaued'].sum())} of {len(conv)} groups"


def dry_run(plan: Plan, us: Sequence[Unit], results_dir: Path) -> str:
    """The plan as text: runs per study, how many are stored, and an estimated time for the rest (one
    process; from the stored runs' mean wall time once there are some)."""
    lines = [f"profile {plan.name}: {plan.note}"]
    seconds = run_seconds(plan, results_dir)
    total_left = 0.0
    for study in STUDIES:
        mine = [u for u in us if u.study == study]
        if not mine:
            continue
        runs, done, left_s = 0, 0, 0.0
        for u in mine:
            for s in u.seeds:
                lr = u.lr if u.lr is not None else chosen_lr(results_dir, plan, u.variant)
                stored = lr is not None and is_stored(results_dir, plan, u, s, lr)
                runs, done = runs + 1, done + stored
                left_s += 0 if stored else seconds[u.data]
        total_left += left_s
        lines.append(
            f"  {study:14s} {runs:4d} runs in {len(mine):3d} groups, {done:4d} stored, "
            f"~{left_s / 60:.0f} min left{convergence_note(results_dir, plan, study)}"
        )
    lines.append(
        f"  total          {n_runs(us):4d} runs, ~{total_left / 3600:.1f} h left for one process at "
        f"{seconds['synthetic']:.0f} s per synthetic run, {seconds['camvid']:.0f} s per CamVid run"
    )
    return "\n".join(lines)


def unit_key(unit: Unit) -> str:
    """The name of a unit's lock file: which study, setting and loss."""
    return f"unit_{unit.study}_{unit.setting}_{unit.variant.slug}_lr{unit.lr}"


def work(
    us: Sequence[Unit],
    train: Callable[[Unit], int],
    lock_dir: Path,
    resolve_unit: Callable[[Unit, bool], Iterable[Unit]],
    poll_s: float = 20.0,
) -> int:
    """Train ``us`` in plan order, sharing them with other workers through lock files: a worker claims a
    unit by locking it (non-blocking), so N workers never train the same runs and one that finishes early
    takes the next unclaimed unit (no fixed split, no idle worker while work is left). A unit held by another
    worker, or whose learning-rate search another worker is running, is retried after the rest; when only
    such units are left the worker waits ``poll_s`` and looks again (a lock dies with its worker).

    ``resolve_unit(unit, wait)`` yields the unit's runnable units (its search first); ``train(unit)``
    trains one and returns how many runs it trained. Returns the total.
    """
    trained, pending = 0, list(us)
    while pending:
        later = []
        for unit in pending:
            try:
                with locked(lock_dir, unit_key(unit), wait=False):
                    for ready in resolve_unit(unit, False):
                        trained += train(ready)
            except Busy:
                later.append(unit)
        if later and len(later) == len(pending):
            time.sleep(poll_s)
        pending = later
    return trained


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", choices=sorted(PLANS), default="cpu", help="which plan (default: cpu)")
    parser.add_argument("--only", nargs="+", choices=STUDIES, help="run only these studies")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=ROOT / "data" / "results",
        help="where finished runs are stored (default: data/results/)",
    )
    parser.add_argument(
        "--runs-dir", type=Path, help="run folders with checkpoints (default: runs/results_<profile>)"
    )
    parser.add_argument("--data-dir", help="CamVid location (default: $IOU_DATA_DIR)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile each model (a one-off compile of ~40 s per worker, needs a C++ compiler; on a "
        "CPU measured 1.0-1.25x faster, benchmarks/RESULTS.md); the stored numbers change by float rounding",
    )
    parser.add_argument(
        "--jobs", type=int, help="worker processes side by side (default: the plan's, 1 on CPU, 12 for gpu)"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # spawned by --jobs
    parser.add_argument("--max-runs", type=int, help="stop after this many newly trained runs")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan and the time left; train nothing"
    )
    args = parser.parse_args(argv)

    plan = PLANS[args.profile]
    studies = tuple(args.only or STUDIES)
    us = units(plan, studies)
    if args.dry_run:
        print(dry_run(plan, us, args.results_dir))
        return 0
    import torch

    from iou_lib.reporting import camvid_available

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.data_dir:
        os.environ["IOU_DATA_DIR"] = args.data_dir
    if any(u.data == "camvid" for u in us) and camvid_available() is None:
        print("skipping the CamVid studies: no CamVid under $IOU_DATA_DIR / --data-dir", file=sys.stderr)
        us = [u for u in us if u.data != "camvid"]
    if plan.name == "gpu" and not torch.cuda.is_available():
        print("the gpu plan needs a CUDA GPU (days on a CPU); --dry-run shows it", file=sys.stderr)
        return 1
    runs_dir = args.runs_dir or ROOT / "runs" / f"results_{plan.name}"
    args.jobs = 1 if args.worker else (args.jobs or plan.jobs)  # a worker never spawns workers
    if args.jobs > 1:
        return _spawn(args, argv or sys.argv[1:], us, plan)
    prov = provenance(plan)
    if not prov["clean_tree"]:
        print(
            "warning: uncommitted changes under iou_lib/ or tools/; stored runs record clean_tree=false",
            file=sys.stderr,
        )
    lock_dir = runs_dir / "locks"
    count = [0]

    def train(ready: Unit) -> int:
        n = train_unit(plan, ready, args.results_dir, runs_dir, prov, args.compile)
        count[0] += n
        if args.max_runs is not None and count[0] >= args.max_runs:
            raise StopGrid
        return n

    def resolve_unit(unit: Unit, wait: bool) -> Iterator[Unit]:
        return resolve(plan, unit, args.results_dir, lock_dir, wait)

    try:
        trained = work([u for u in us if u.study != "lr"] or us, train, lock_dir, resolve_unit)
    except StopGrid:
        print(f"stopped after {count[0]} runs (--max-runs)")
        return 0
    print(f"done: {trained} runs trained now; {dry_run(plan, us, args.results_dir)}")
    return 0


def _spawn(args: argparse.Namespace, argv: Sequence[str], us: Sequence[Unit], plan: Plan) -> int:
    """``--jobs N``: N workers, each taking the next unclaimed group of the ordered plan (see :func:`work`);
    learning-rate searches are shared through lock files."""
    base, skip = [], False
    for a in argv:  # drop "--jobs N" / "--jobs=N"
        if not skip and not a.startswith("--jobs"):
            base.append(a)
        skip = a == "--jobs"
    procs = [subprocess.Popen([sys.executable, __file__, *base, "--worker"]) for _ in range(args.jobs)]
    return max(p.wait() for p in procs)


if __name__ == "__main__":
    sys.exit(main())
