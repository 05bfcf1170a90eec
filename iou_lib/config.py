"""Run profiles (how big a run is), the default device and the data location.

Three profiles size every training run of the workbook:

* ``fast``: CI on 2 CPU cores; each run is 200 Adam steps on 64 px images with a width-8 U-Net
  (seconds), so the whole book trains in minutes and still shows real learning;
* ``cpu``: a laptop; 96 px images, a 0.5 M-parameter U-Net and 600 steps per run (a few minutes), enough
  for the loss ordering at low foreground fractions to be stable across seeds (tens of minutes for a grid);
* ``gpu``: full size (128 px synthetic, CamVid at its stored 240x180, 4000 steps, more width and seeds).

Budgets are **optimizer steps** (``steps`` for synthetic data, ``camvid_steps`` for CamVid), whatever
the size of the data: epochs follow from it.

The profile is chosen by the argument, else the ``IOU_PROFILE`` environment variable, else detected
(``gpu`` when CUDA is available, ``cpu`` otherwise).

>>> p = get_profile("fast")
>>> p.name, p.image_size, p.steps, p.epochs
('fast', 64, 200, 7)
>>> data_dir("/tmp/data").as_posix()
'/tmp/data'
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

__all__ = ["PROFILES", "Profile", "data_dir", "default_device", "get_profile"]


@dataclasses.dataclass(frozen=True)
class Profile:
    """Sizes of one run profile.

    ``image_size`` is the synthetic image side in pixels; ``camvid_scale`` the factor by which CamVid
    (stored at 240x180) is shrunk; ``width``/``depth`` size the models (channels of the first stage,
    number of down-sampling stages); ``fg_fracs`` and ``seeds`` span the experiment grids. ``steps`` and
    ``camvid_steps`` are the run budgets in optimizer steps.
    """

    name: str
    image_size: int
    n_train: int
    n_val: int
    batch_size: int
    steps: int
    width: int
    depth: int
    lr: float
    seeds: tuple[int, ...]
    fg_fracs: tuple[float, ...]
    camvid_scale: int
    camvid_steps: int

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch on synthetic data (the last partial batch is dropped)."""
        return self.n_train // self.batch_size

    @property
    def epochs(self) -> int:
        """Passes over the synthetic training set that ``steps`` make (the last one may be partial)."""
        return -(-self.steps // self.steps_per_epoch)


PROFILES: dict[str, Profile] = {
    "fast": Profile(
        name="fast",
        image_size=64,
        n_train=512,
        n_val=128,
        batch_size=16,
        steps=200,
        width=8,
        depth=3,
        lr=3e-3,
        seeds=(0,),
        fg_fracs=(0.02, 0.2),
        camvid_scale=4,
        camvid_steps=100,
    ),
    "cpu": Profile(
        name="cpu",
        image_size=96,
        n_train=768,
        n_val=256,
        batch_size=16,
        steps=600,
        width=16,
        depth=3,
        lr=2e-3,
        seeds=(0, 1, 2),
        fg_fracs=(0.005, 0.02, 0.1, 0.5),
        camvid_scale=2,
        camvid_steps=1000,
    ),
    "gpu": Profile(
        name="gpu",
        image_size=128,
        n_train=8192,
        n_val=1024,
        batch_size=32,
        steps=4000,
        width=32,
        depth=4,
        lr=1e-3,
        seeds=(0, 1, 2, 3, 4),
        fg_fracs=(0.005, 0.02, 0.1, 0.5),
        camvid_scale=1,
        camvid_steps=3000,
    ),
}


def get_profile(name: str | None = None) -> Profile:
    """The profile ``name``, else ``$IOU_PROFILE``, else ``gpu`` with CUDA and ``cpu`` without."""
    if name is None:
        name = os.environ.get("IOU_PROFILE") or ("gpu" if torch.cuda.is_available() else "cpu")
    if not isinstance(name, str):
        raise TypeError(f"profile name must be a str, got {type(name).__name__}")
    try:
        return PROFILES[name.strip().lower()]
    except KeyError:
        raise ValueError(
            f"unknown profile {name!r} (from argument or IOU_PROFILE); expected one of {', '.join(PROFILES)}"
        ) from None


def default_device() -> torch.device:
    """The best available device: ``cuda`` > ``mps`` > ``cpu``."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def data_dir(path: str | os.PathLike[str] | None = None) -> Path | None:
    """Where real data sets live: ``path`` if given, else ``$IOU_DATA_DIR``, else ``None``.

    The path is returned as given (``~`` expanded); existence is checked by the data set that reads it.
    """
    if path is None:
        path = os.environ.get("IOU_DATA_DIR") or None
        if path is None:
            return None
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"data path must be a str or os.PathLike, got {type(path).__name__}")
    return Path(path).expanduser()
