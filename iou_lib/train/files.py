"""A run's folder: tidy results, JSON, checkpoints, all written atomically; guards against clobbering.

Every file is written to a temporary file in the same folder and moved over the old one with
``os.replace``, so a reader (or a run killed mid-write) never sees half a file; the new file gets the
permissions of an ordinary file (``0o666`` less the umask). Temporary files left by a killed writer are
removed when a run starts in the folder.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["RESULT_FIELDS", "check_out_dir", "remove_stale_tmp", "write_json", "write_rows"]

RESULT_FIELDS = (
    "run",
    "data",
    "fg_frac",
    "class_name",
    "loss",
    "model",
    "seed",
    "split",
    "step",
    "metric",
    "value",
)
"""Columns of ``results.csv``: one row per run x split x step x metric."""

RUN_FILES = ("config.json", "checkpoint.pt", "results.csv", "summary.json")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Any, mode: str = "w") -> None:
    """Write via a temporary file in the same folder and ``os.replace``: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600; results are ordinary files
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def remove_stale_tmp(folder: Path, names: Sequence[str] = RUN_FILES) -> list[Path]:
    """Delete temporary files that killed writes of ``names`` left in ``folder``; returns them."""
    stale = [p for name in names for p in folder.glob(f".{name}.*.tmp")] if folder.is_dir() else []
    for p in stale:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    return stale


def write_rows(
    path: str | Path, rows: Sequence[dict[str, Any]], fields: Sequence[str] = RESULT_FIELDS
) -> None:
    """Write tidy result rows to a CSV file atomically (extra keys of a row are columns after ``fields``)."""
    extra = sorted({k for r in rows for k in r} - set(fields))

    def write(f: Any) -> None:
        w = csv.DictWriter(f, fieldnames=[*fields, *extra], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)

    atomic_write(Path(path), write)


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, lambda f: json.dump(obj, f, indent=1, sort_keys=True))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda f: torch.save(state, f), mode="wb")


def check_out_dir(out: Path, same_run: Any, resume: bool, overwrite: bool) -> bool:
    """Whether the run in ``out`` may start or continue there; ``True`` means resume from its checkpoint.

    Refused (``ValueError``): a folder that holds a sweep (runs in sub-folders), and a folder that holds
    another configuration's run unless ``overwrite``. ``same_run(config_dict)`` says whether a stored
    ``config.json`` describes this run.
    """
    if not out.exists():
        return False
    if not out.is_dir():
        raise ValueError(f"out_dir {out} exists and is not a folder")
    runs = sorted(p.parent.name for p in out.glob("*/config.json"))
    if runs:
        raise ValueError(
            f"out_dir {out} holds a sweep ({len(runs)} runs in sub-folders, e.g. {runs[0]!r}); give this run "
            "a folder of its own"
        )
    stored = out / "config.json"
    if stored.exists() and not same_run(json.loads(stored.read_text())):
        if not overwrite:
            raise ValueError(
                f"out_dir {out} holds the run of another configuration (its config.json differs); use "
                "another out_dir, or overwrite=True (--overwrite) to replace it"
            )
        for name in RUN_FILES:
            with contextlib.suppress(FileNotFoundError):
                (out / name).unlink()
        return False
    return resume and (out / "checkpoint.pt").exists()
