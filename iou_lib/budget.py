"""How long training will take, said before it starts, and how far a grid has come while it runs.

A run's time is dominated by its optimizer steps. With :math:`t` the measured seconds of one training
step (forward, backward and Adam update of the run's model on one batch), a run of :math:`S` steps with
:math:`E` validation passes over :math:`V` images in batches of :math:`B`, and a test pass of as many
images, takes about

.. math::

    T \\approx t \\Bigl(S + c \\, (E + 1) \\, \\lceil V / B \\rceil\\Bigr),

where :math:`c` (:data:`EVAL_COST`, about a third) is the cost of a forward pass relative to a training
step. :func:`step_seconds` measures :math:`t` on this machine, now, for the run's model and image size;
:func:`estimate` adds up a list of runs; :func:`require_confirmation` stops a notebook cell whose plan
is longer than a limit unless the reader has said yes; :func:`grid_progress` prints one line per
finished run with the time left.

>>> from iou_lib.train import DataSpec, TrainConfig
>>> cfg = TrainConfig(DataSpec(n_train=64, n_val=32, image_size=32), steps=200, width=4, progress=False)
>>> est = estimate([cfg, cfg], step_s=0.05)
>>> est.runs, est.steps, round(est.seconds, 1)
(2, 400, 20.7)
>>> print(format_minutes(est.seconds), "|", format_minutes(20 * 60), "|", format_minutes(150 * 60))
under a minute | about 20 min | about 2.5 h
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from iou_lib import config as _config
from iou_lib.models import build_model

if TYPE_CHECKING:
    import pandas as pd

    from iou_lib.train import TrainConfig

__all__ = [
    "EVAL_COST",
    "check",
    "LONG_RUN_MINUTES",
    "Estimate",
    "LongRunNotConfirmed",
    "estimate",
    "format_minutes",
    "grid_progress",
    "notebook_times",
    "require_confirmation",
    "step_seconds",
    "track",
]

EVAL_COST = 1 / 3
"""Seconds of one evaluation batch relative to one training step (forward only, no backward/update)."""
LONG_RUN_MINUTES = 15.0
"""A notebook cell planned to train longer than this asks the reader to confirm first."""
CAMVID_SPLITS = {"train": 367, "val": 101, "test": 233}
"""Images per split of CamVid's SegNet split (the split :mod:`iou_lib.data.folders` reads)."""
CAMVID_STORED = (180, 240)
"""CamVid frames as the workbook stores them (H, W); a run shrinks them by its ``scale``."""

NOTEBOOK_TIMES = Path(__file__).resolve().parents[1] / "docs" / "notebook_times.json"
"""Wall times of whole notebooks per profile, written by ``tools/time_notebooks.py``."""

_measured: dict[tuple[Any, ...], float] = {}


def _image_shape(cfg: TrainConfig) -> tuple[int, int]:
    data = cfg.data
    if data.size is not None:
        return data.size
    if data.crop is not None:
        return data.crop, data.crop
    if data.kind == "synthetic":
        return data.image_size, data.image_size
    return math.ceil(CAMVID_STORED[0] / data.scale), math.ceil(CAMVID_STORED[1] / data.scale)


def _classes(cfg: TrainConfig) -> int:
    data = cfg.data
    if data.kind == "camvid":
        return 1 if data.class_name else 11
    return data.num_classes if data.kind == "folder" else 1


def _device(cfg: TrainConfig) -> torch.device:
    return _config.default_device() if cfg.device == "auto" else torch.device(cfg.device)


def step_seconds(cfg: TrainConfig, repeats: int = 5) -> float:
    """Measured seconds of one optimizer step of ``cfg``'s model on one batch of its image size.

    The median of ``repeats`` timed steps after two untimed warm-up steps (the first steps of a new shape
    are slow), on random data (the loss is cross-entropy: a small share of a step), on ``cfg``'s device
    with bf16 autocast on CUDA as in training. The median keeps a moment of load on a shared machine from
    dominating. The result is cached for the process, per model shape, batch, image size and device.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    device = _device(cfg)
    h, w = _image_shape(cfg)
    classes = _classes(cfg)
    key = (cfg.model, cfg.width, cfg.depth, cfg.norm, cfg.batch_size, h, w, classes, str(device))
    if key in _measured:
        return _measured[key]
    generator = torch.Generator().manual_seed(0)
    model = build_model(cfg.model, 3, classes, cfg.width, cfg.depth, cfg.norm).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(cfg.batch_size, 3, h, w, generator=generator).to(device)
    if classes == 1:
        y = (torch.rand(cfg.batch_size, 1, h, w, generator=generator) < 0.1).float().to(device)
        loss_fn: Callable[..., torch.Tensor] = torch.nn.functional.binary_cross_entropy_with_logits
    else:
        y = torch.randint(0, classes, (cfg.batch_size, h, w), generator=generator).to(device)
        loss_fn = torch.nn.functional.cross_entropy
    amp = device.type == "cuda" if cfg.amp is None else cfg.amp

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        loss_fn(logits.float(), y).backward()
        opt.step()

    def timed() -> float:
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    timed(), timed()  # warm-up
    _measured[key] = statistics.median(timed() for _ in range(repeats))
    return _measured[key]


def _train_and_eval_sizes(cfg: TrainConfig) -> tuple[int, int]:
    """Training images and evaluation images per pass (validation; the test pass is as large)."""
    data = cfg.data
    if data.kind == "camvid":
        return CAMVID_SPLITS["train"], CAMVID_SPLITS["val"]
    return data.n_train, data.n_val


def format_minutes(seconds: float) -> str:
    """A duration as a reader wants it: ``under a minute``, ``about 7 min``, ``about 2.5 h``."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds must be finite and >= 0, got {seconds!r}")
    if seconds < 60:
        return "under a minute"
    minutes = seconds / 60
    if minutes < 90:
        return f"about {max(1, round(minutes))} min"
    return f"about {minutes / 60:.1f} h"


@dataclass(frozen=True)
class Estimate:
    """What a list of runs will cost: runs, optimizer steps, seconds, and the measured step time(s)."""

    runs: int
    steps: int
    seconds: float
    step_s: tuple[float, ...]
    device: str
    profile: str

    @property
    def minutes(self) -> float:
        return self.seconds / 60

    def __str__(self) -> str:
        rate = ", ".join(f"{1000 * s:.0f}" for s in self.step_s)
        return (
            f"{format_minutes(self.seconds)} in the {self.profile} profile on this machine "
            f"({self.runs} run{'s' * (self.runs != 1)}, {self.steps:,} optimizer steps at {rate} ms per "
            f"step, measured just now on {self.device})"
        )


def estimate(
    configs: TrainConfig | Sequence[TrainConfig], step_s: float | None = None, profile: str | None = None
) -> Estimate:
    """The time ``configs`` will take to train and evaluate, from a measured step time.

    ``step_s`` overrides the measurement (one value for every run). Runs that differ in model, batch or
    image size are measured separately. Runs that have already finished are not known here: the estimate
    is for training every run from scratch.
    """
    configs = [configs] if not isinstance(configs, Sequence) else list(configs)
    if not configs:
        raise ValueError("estimate needs at least one TrainConfig")
    if step_s is not None and not (math.isfinite(step_s) and step_s > 0):
        raise ValueError(f"step_s must be a positive number of seconds, got {step_s!r}")
    total_s, total_steps, rates = 0.0, 0, []
    for cfg in configs:
        n_train, n_eval = _train_and_eval_sizes(cfg)
        budget = cfg.budget(n_train)
        t = step_s if step_s is not None else step_seconds(cfg)
        rates.append(t)
        passes = len(budget.eval_steps()) + 1  # validations, then the test pass
        total_s += t * (budget.steps + EVAL_COST * passes * math.ceil(n_eval / cfg.batch_size))
        total_steps += budget.steps
    return Estimate(
        runs=len(configs),
        steps=total_steps,
        seconds=total_s,
        step_s=tuple(sorted(set(round(r, 4) for r in rates))),
        device=str(_device(configs[0])),
        profile=profile or _config.get_profile().name,
    )


class LongRunNotConfirmed(RuntimeError):
    """Raised by :func:`require_confirmation`: the plan is longer than the limit and nobody said yes."""


def require_confirmation(
    plan: Estimate, confirmed: bool, limit_minutes: float = LONG_RUN_MINUTES, flag: str = "RUN_LONG"
) -> None:
    """Stop (raise :class:`LongRunNotConfirmed`) when ``plan`` is longer than ``limit_minutes`` and
    ``confirmed`` is false; the message says how long, how to go ahead and where the stored results are.

    ``IOU_RUN_LONG=1`` in the environment confirms every plan (scripted runs, the test suite).
    """
    if plan.minutes > limit_minutes and not confirmed and os.environ.get("IOU_RUN_LONG") != "1":
        raise LongRunNotConfirmed(
            f"this cell would train for {format_minutes(plan.seconds)} ({plan.runs} runs in the "
            f"{plan.profile} profile), longer than {limit_minutes:g} min. To go ahead, set {flag} = True in "
            f"this cell and run it again (or start Jupyter with IOU_RUN_LONG=1); or skip it and read the "
            f"STORED results further down, or use IOU_PROFILE=fast for a quick look."
        )


def check(
    configs: TrainConfig | Sequence[TrainConfig],
    confirmed: bool = False,
    limit_minutes: float = LONG_RUN_MINUTES,
    stream: Any = None,
) -> Estimate:
    """Print what ``configs`` will cost ("LIVE: about 9 min in the cpu profile ...") and stop with
    :class:`LongRunNotConfirmed` when that is over ``limit_minutes`` and not ``confirmed``."""
    plan = estimate(configs)
    print(f"LIVE: {plan}", file=stream or sys.stdout, flush=True)
    require_confirmation(plan, confirmed, limit_minutes)
    return plan


def track(
    configs: Sequence[TrainConfig],
    confirmed: bool = False,
    limit_minutes: float = LONG_RUN_MINUTES,
    stream: Any = None,
) -> Iterator[TrainConfig]:
    """:func:`check` the plan, then yield the configs, printing one line per run with the time left.

    The time left is the estimate until a run has finished, then the measured mean per run so far; the
    last line compares the time taken with the estimate.

    >>> for cfg in track(configs, confirmed=RUN_LONG):  # doctest: +SKIP
    ...     results[cfg.loss] = fit(cfg)
    """
    out = stream or sys.stdout
    configs = list(configs)
    plan = check(configs, confirmed, limit_minutes, stream=out)
    started = time.perf_counter()
    for i, cfg in enumerate(configs):
        elapsed = time.perf_counter() - started
        left = plan.seconds if i == 0 else elapsed / i * (len(configs) - i)
        print(f"[{i + 1}/{len(configs)}] {cfg.name}: {format_minutes(left)} left", file=out, flush=True)
        yield cfg
    took = time.perf_counter() - started
    print(
        f"done: {len(configs)} runs took {format_minutes(took).replace('about ', '')} "
        f"(estimated {format_minutes(plan.seconds).replace('about ', '')})",
        file=out,
        flush=True,
    )


def grid_progress(total: int, stream: Any = None) -> Callable[[Any, Any], None]:
    """A ``run_grid(..., on_done=...)`` callback that prints one line per finished run with the time left.

    The time left is the mean time of the runs trained so far in this call times the runs still to go
    (runs found finished on disk take no time and are counted as done).
    """
    if total < 1:
        raise ValueError(f"total must be >= 1, got {total}")
    started = time.perf_counter()
    state = {"done": 0, "trained": 0}

    def on_done(config: Any, result: Any) -> None:
        state["done"] += 1
        state["trained"] += result is not None
        left = total - state["done"]
        elapsed = time.perf_counter() - started
        eta = ""
        if left and state["trained"]:
            eta = f", {format_minutes(elapsed / state['trained'] * left)} left"
        how = "trained" if result is not None else "already finished"
        name = getattr(config, "name", str(config))
        print(f"[{state['done']}/{total}] {name}: {how}{eta}", file=stream or sys.stdout, flush=True)

    return on_done


def describe_time(record: dict[str, Any] | None) -> str:
    """One measured notebook run (a record of ``tools/time_notebooks.py``) in words: ``"42 s"``,
    ``"3.5 min"``, ``"asks to confirm a ≈75 min cell (after 20 s)"``, ``"failed after 9 s"``.

    >>> describe_time({"seconds": 210.0, "status": "ok"}), describe_time(None)
    ('3.5 min', 'not measured')
    """
    if record is None:
        return "not measured"
    took = f"{record['seconds']:.0f} s" if record["seconds"] < 60 else f"{record['seconds'] / 60:.1f} min"
    if record["status"] == "ok":
        return took
    load = f", load {record['load_1min']:g}" if "load_1min" in record else ""
    if record["status"] == "needs confirmation":
        return f"asks to confirm a ≈{record['estimate_min']:.0f} min cell (after {took}{load})"
    return f"failed after {took}{load}"


def notebook_times(path: str | Path = NOTEBOOK_TIMES) -> pd.DataFrame:
    """The measured wall time of every notebook per profile (rows: notebooks, columns: profiles)."""
    import pandas as pd

    times = json.loads(Path(path).read_text(encoding="utf-8"))
    names = sorted({name for runs in times.values() for name in runs})
    table = pd.DataFrame(
        {p: [describe_time(times[p].get(name)) for name in names] for p in _config.PROFILES if p in times},
        index=pd.Index(names, name="notebook"),
    )
    return table
