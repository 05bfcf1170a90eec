"""Where a run executes: device choice, bf16 autocast, process group (``torchrun``), batches on the device."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from iou_lib import config as _config
from iou_lib.data.base import InMemorySegmentation

__all__ = ["Dist", "autocast", "batches", "init_distributed", "select_device", "to_device"]


@dataclasses.dataclass(frozen=True)
class Dist:
    """This process's place in a ``torchrun`` job (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # fit created the process group and closes it

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> Dist:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE > 1``)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    owns = not dist.is_initialized()
    if owns:
        cuda = torch.cuda.is_available() and not device.startswith(("cpu", "mps"))
        dist.init_process_group("nccl" if cuda else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), owns)


def select_device(name: str, d: Dist = Dist()) -> torch.device:
    """``"auto"`` (cuda > mps > cpu) or the named device; ``ValueError`` when this machine lacks it.

    >>> select_device("cpu")
    device(type='cpu')
    """
    try:
        dev = _config.default_device() if name == "auto" else torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise ValueError(
            f"device {name!r} is not a torch device string ('auto', 'cpu', 'cuda', 'cuda:1', 'mps')"
        ) from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {name!r} asked for, but this torch build or machine has no CUDA GPU "
            "(torch.cuda.is_available() is False); use device 'auto' or 'cpu'"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} asked for, but only {torch.cuda.device_count()} CUDA GPU(s) exist")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {name!r} asked for, but MPS is not available here; use 'auto' or 'cpu'")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", d.local_rank if d.world > 1 else torch.cuda.current_device())
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return dev


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when ``enabled`` (the losses compute in float32 themselves)."""
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


# The layout of the engine's models and batches on every device: oneDNN's convolutions on CPU and cuDNN's
# on CUDA are faster in channels_last (about 1.4x per training step of the small U-Nets on one CPU thread,
# ``python -m benchmarks.training``, which sets this to ``torch.contiguous_format`` for its "before" rows).
MEMORY_FORMAT = torch.channels_last


def to_device(x: Tensor, y: Tensor, device: torch.device) -> tuple[Tensor, Tensor]:
    """Move a batch to ``device``, images in :data:`MEMORY_FORMAT`."""
    x = x.to(device, non_blocking=True).contiguous(memory_format=MEMORY_FORMAT)
    return x, y.to(device, non_blocking=True)
