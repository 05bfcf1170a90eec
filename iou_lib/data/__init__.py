"""Data for the workbook: synthetic imbalanced masks and images, image/mask folders, CamVid.

:func:`load_splits` turns a :class:`~iou_lib.train.DataSpec` into ``(train, val, test)`` data sets, all
:class:`~iou_lib.data.base.InMemorySegmentation` (uint8 tensors in memory, batched access).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iou_lib.data.base import InMemorySegmentation
from iou_lib.data.folders import FolderSegmentation, camvid
from iou_lib.data.synthetic import SyntheticSegmentation, blob_masks, shape_masks, synthetic_images

__all__ = [
    "FolderSegmentation",
    "InMemorySegmentation",
    "SyntheticSegmentation",
    "blob_masks",
    "camvid",
    "load_splits",
    "shape_masks",
    "synthetic_images",
]

_SPLIT_SEEDS = {"train": 0, "val": 1_000_003, "test": 2_000_003}


def _subset(ds: InMemorySegmentation, keep: Any) -> InMemorySegmentation:
    return InMemorySegmentation(
        ds.images[keep], ds.labels[keep], ds.num_classes, ds.ignore_index, ds.class_names
    )


def load_splits(
    spec: Any, seed: int = 0
) -> tuple[InMemorySegmentation, InMemorySegmentation, InMemorySegmentation]:
    """``(train, val, test)`` for a :class:`~iou_lib.train.DataSpec`.

    Synthetic: three independent sets generated from ``seed`` (test has ``n_val`` images). CamVid: the
    official splits. Folder: ``path/{train,val[,test]}/{images,masks}`` when present (test defaults to
    val), else ``path/{images,masks}`` split deterministically, every 5th file (by name) to val = test.
    """
    if spec.kind == "synthetic":
        kw = {"n_objects": spec.n_objects, "empty_frac": spec.empty_frac}
        return tuple(  # type: ignore[return-value]
            SyntheticSegmentation(n, spec.image_size, spec.fg_frac, seed=seed + _SPLIT_SEEDS[split], **kw)
            for split, n in (("train", spec.n_train), ("val", spec.n_val), ("test", spec.n_val))
        )
    if spec.kind == "camvid":
        return tuple(
            camvid(spec.path, split, spec.class_name, spec.scale)  # type: ignore[return-value]
            for split in ("train", "val", "test")
        )
    if spec.path is None:
        raise ValueError("folder data need a path (DataSpec(kind='folder', path=...))")
    root = Path(spec.path)
    kw = {
        "num_classes": spec.num_classes,
        "ignore_index": spec.ignore_index,
        "scale": spec.scale,
        "size": spec.size,
    }
    if (root / "train").is_dir():
        train, val = FolderSegmentation(root / "train", **kw), FolderSegmentation(root / "val", **kw)
        test = FolderSegmentation(root / "test", **kw) if (root / "test").is_dir() else val
        return train, val, test
    full = FolderSegmentation(root, **kw)
    is_val = [i % 5 == 4 for i in range(len(full))]
    val = _subset(full, [i for i, v in enumerate(is_val) if v])
    return _subset(full, [i for i, v in enumerate(is_val) if not v]), val, val
