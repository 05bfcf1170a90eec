"""Grids of runs (losses x foreground fractions x seeds) and their results table with confidence intervals.

:func:`run_grid` trains every combination (the seeds of one configuration together), one folder per run under
``out_dir``; a run whose ``summary.json`` exists is not redone (an interrupted one resumes from its
checkpoint), so a sweep can be stopped and restarted. The combined tidy table goes to
``out_dir/results.csv`` (atomically). :func:`summarize` (defined in :mod:`iou_lib.stats`, re-exported
here) gives mean, standard deviation and a Student-t 95 % confidence interval over seeds.

>>> import pandas as pd
>>> t = pd.DataFrame({"loss": ["bce"] * 3, "split": "test", "metric": "miou_d", "value": [0.5, 0.6, 0.7]})
>>> s = summarize(t, by=("loss",))
>>> s[["mean", "sd", "n"]].round(3).values.tolist()
[[0.6, 0.1, 3.0]]
>>> round(float(s["ci95"].iloc[0]), 3)  # t(0.975, 2) * sd / sqrt(3)
0.248
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from iou_lib.stats import student_t_quantile, summarize  # re-exported: moved to iou_lib.stats
from iou_lib.train import RESULT_FIELDS, TrainConfig, loss_names, write_rows
from iou_lib.train.engine import fit_group
from iou_lib.train.runtime import select_device

__all__ = ["grid_configs", "load_results", "run_grid", "student_t_quantile", "summarize"]


def grid_configs(
    base: TrainConfig,
    losses: Sequence[str],
    fg_fracs: Sequence[float] | None,
    seeds: Sequence[int],
    out_dir: str | Path,
    loss_options: dict[str, dict[str, Any]] | None = None,
) -> list[TrainConfig]:
    """One config per (fg_frac, seed, loss), each with its own ``out_dir`` under ``out_dir``.

    ``fg_fracs=None`` keeps the data of ``base`` (e.g. a CamVid class). Losses vary fastest, so a grid
    stopped early holds complete comparisons for its first seeds. ``loss_options`` (default: those of
    ``base``) are given to each run for the losses it uses.
    """
    if not losses or not seeds:
        raise ValueError(
            f"a grid needs at least one loss and one seed, got losses={losses!r}, seeds={seeds!r}"
        )
    options = base.loss_options if loss_options is None else loss_options
    unused = sorted(set(options) - set().union(*(loss_names(loss) for loss in losses)))
    if unused:
        raise ValueError(f"loss_options given for {unused}, which no loss of the grid uses")
    configs = []
    for frac, seed, loss in itertools.product(fg_fracs if fg_fracs else [None], seeds, losses):
        data = base.data if frac is None else dataclasses.replace(base.data, fg_frac=float(frac))
        opts = {n: o for n, o in options.items() if n in loss_names(loss)}
        cfg = dataclasses.replace(
            base, data=data, loss=loss, loss_options=opts, seed=int(seed), run_name=None
        )
        configs.append(dataclasses.replace(cfg, out_dir=str(Path(out_dir) / cfg.name)))
    return configs


def load_results(out_dir: str | Path) -> pd.DataFrame:
    """All finished runs' rows under ``out_dir`` (those with a ``summary.json``) as one table."""
    files = sorted(p.parent / "results.csv" for p in Path(out_dir).glob("*/summary.json"))
    frames = [pd.read_csv(f, keep_default_na=False) for f in files]
    if not frames:
        return pd.DataFrame(columns=list(RESULT_FIELDS))
    table = pd.concat(frames, ignore_index=True)
    table["value"] = pd.to_numeric(table["value"], errors="coerce")
    return table


def run_grid(
    configs: Sequence[TrainConfig],
    out_dir: str | Path,
    on_done: Any = None,
    progress: bool = True,
    seeds_together: bool | None = None,
) -> pd.DataFrame:
    """Run ``configs`` (skipping finished ones) and write the combined ``out_dir/results.csv``.

    With ``seeds_together`` the unstarted runs that differ only in seed are trained as one group
    (:func:`iou_lib.train.engine.fit_group`: one grouped network, each seed its own data, numbers and
    folder); runs with a checkpoint resume one at a time. The default (``None``) groups seeds on a GPU,
    where one small U-Net leaves the device idle, and not on a CPU, where a grouped convolution does the
    same arithmetic as S small ones but misses oneDNN's fast channels_last kernels (measured in
    ``benchmarks/RESULTS.md``). ``on_done(config, result_or_None)`` is called after each run (``None``
    when it was skipped); ``progress=False`` turns the progress bars off.
    """
    if seeds_together is None:
        seeds_together = any(select_device(c.device).type == "cuda" for c in configs)
    todo: dict[str, list[TrainConfig]] = {}
    for cfg in configs:
        if cfg.out_dir is None:
            raise ValueError(f"grid run {cfg.name} has no out_dir")
        cfg = cfg if progress else dataclasses.replace(cfg, progress=False)
        folder = Path(cfg.out_dir)
        if (folder / "summary.json").exists():
            if on_done is not None:
                on_done(cfg, None)
            continue
        fresh = seeds_together and not (folder / "checkpoint.pt").exists()
        same = dataclasses.replace(cfg, seed=0, out_dir=None, run_name=None).to_dict()
        todo.setdefault(json.dumps(same) if fresh else cfg.name, []).append(cfg)
    for group in todo.values():
        for cfg, result in zip(group, fit_group(group), strict=True):
            if on_done is not None:
                on_done(cfg, result)
    table = load_results(out_dir)
    write_rows(Path(out_dir) / "results.csv", table.to_dict("records"))
    return table
