"""Real data from folders: any ``images/`` + ``masks/`` pair of folders, and CamVid in its stored layout.

* :class:`FolderSegmentation` reads ``root/images/*.{png,jpg,jpeg}`` and ``root/masks/*.png`` and matches
  them by file stem. Binary masks (``num_classes=1``) may hold 0/1 or 0/255; class masks hold indices
  ``0..num_classes-1`` (and optionally ``ignore_index``). Masks must be single-channel (grey or palette).
* :func:`camvid` reads the CamVid layout ``root/<split>/images/<name>.png`` +
  ``root/<split>/labels/<name>.png``
  (11 classes, void = 11 = ignore index), either all classes or a binary view of one class
  (``cls="car"``; void pixels stay ignored: :data:`~iou_lib.data.transforms.BINARY_IGNORE`).

Everything is decoded once into uint8 tensors (CamVid decodes are cached per process, so building many
views or runs costs nothing), optionally shrunk by an integer ``scale`` (area averaging for images,
nearest for labels), or resized to one ``size = (H, W)`` (bilinear with antialiasing for images, nearest
for labels; needed when the images differ in size). Bad data fails early with the file named: missing
folder, image without mask (or the reverse), a file that cannot be decoded (truncated or damaged), mask
values out of range, image and mask of different sizes.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from iou_lib import config
from iou_lib.data.base import InMemorySegmentation
from iou_lib.data.transforms import BINARY_IGNORE, binary_view, resize, shrink

__all__ = [
    "CAMVID_ALIASES",
    "CAMVID_CLASSES",
    "CAMVID_IGNORE",
    "FolderSegmentation",
    "camvid",
    "camvid_class_index",
    "camvid_root",
]

CAMVID_CLASSES = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)
CAMVID_IGNORE = 11
CAMVID_ALIASES = {
    "sign": "SignSymbol",
    "sidewalk": "Pavement",
    "cyclist": "Bicyclist",
    "person": "Pedestrian",
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _decode(path: Path, what: str, read: Callable[[Image.Image], np.ndarray]) -> np.ndarray:
    """``read`` the opened file; a file PIL cannot decode (truncated, not an image) is named in the error."""
    try:
        with Image.open(path) as im:
            return read(im)
    except OSError as e:  # PIL's UnidentifiedImageError and "image file is truncated" are OSErrors
        raise ValueError(f"cannot read {what} {path}: {e} (a truncated or damaged file?)") from e


def _read_image(path: Path) -> np.ndarray:
    return _decode(path, "image", lambda im: np.array(im.convert("RGB")))


def _mask_array(im: Image.Image, path: Path) -> np.ndarray:
    if im.mode not in ("L", "P", "I", "I;16", "1"):
        raise ValueError(
            f"mask {path} must be single-channel (grey or palette), got mode {im.mode}; "
            "convert colour-coded masks to class indices first"
        )
    return np.asarray(im).astype(np.int64)


def _read_mask(path: Path) -> np.ndarray:
    return _decode(path, "mask", lambda im: _mask_array(im, path))


def _list(folder: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(
            f"folder {folder} does not exist (expected images/ and masks/ folders side by side)"
        )
    files = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in suffixes}
    if not files:
        raise FileNotFoundError(f"folder {folder} holds no {'/'.join(suffixes)} files")
    return files


def _decode_all(pairs: Sequence[tuple[Path, Path]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:  # PIL releases the GIL while decoding
        images = list(pool.map(_read_image, [p for p, _ in pairs]))
        masks = list(pool.map(_read_mask, [m for _, m in pairs]))
    for (ip, mp), im, m in zip(pairs, images, masks, strict=True):
        if im.shape[:2] != m.shape:
            raise ValueError(
                f"image {ip.name} is {im.shape[1]}x{im.shape[0]} but its mask {mp.name} is "
                f"{m.shape[1]}x{m.shape[0]} (width x height)"
            )
    return images, masks


def _stack(
    images: list[np.ndarray],
    masks: list[np.ndarray],
    names: Sequence[str],
    scale: int,
    size: tuple[int, int] | None,
) -> tuple[Tensor, Tensor]:
    """uint8 (N, 3, H, W) images and int64 (N, H, W) labels, resized to ``size`` then shrunk by ``scale``."""
    if size is not None:
        pairs = [
            resize(torch.from_numpy(im).permute(2, 0, 1)[None], torch.from_numpy(m)[None], size)
            for im, m in zip(images, masks, strict=True)
        ]
        x, y = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
    elif len({m.shape for m in masks}) > 1:
        other = next(i for i, m in enumerate(masks) if m.shape != masks[0].shape)
        raise ValueError(
            f"images have different sizes ({names[0]}: {masks[0].shape}, {names[other]}: "
            f"{masks[other].shape}); resize them to one size with --size H W (size=(H, W) in Python)"
        )
    else:  # stack in numpy (contiguous), then one channels-first copy
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
        y = torch.from_numpy(np.stack(masks))
    if scale > 1:
        x, y = shrink(x, y, scale)
    if x.is_floating_point():
        x = x.round().clamp(0, 255).to(torch.uint8)
    return x, y


class FolderSegmentation(InMemorySegmentation):
    """``root/images`` + ``root/masks``, matched by file stem, decoded into memory.

    Args:
        root: folder holding ``images/`` and ``masks/``.
        num_classes: 1 for binary masks (values 0/1 or 0/255), ``C >= 2`` for class-index masks.
        ignore_index: mask value to ignore (kept as is for class masks; mapped to
            :data:`~iou_lib.data.transforms.BINARY_IGNORE` for binary masks).
        scale: integer shrink factor; ``size``: resize every pair to ``(H, W)`` instead (needed when the
            images differ in size).
        class_names: optional names of the classes.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        num_classes: int = 1,
        ignore_index: int | None = None,
        scale: int = 1,
        size: tuple[int, int] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"data folder {root} does not exist")
        if ignore_index is not None and not 0 <= ignore_index <= 255:
            raise ValueError(
                f"ignore_index must be in 0..255 (labels are stored as uint8), got {ignore_index!r}"
            )
        if size is not None and not (len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)):
            raise ValueError(f"size must be (H, W), two positive ints, got {size!r}")
        images = _list(root / "images", IMAGE_SUFFIXES)
        masks = _list(root / "masks", (".png",))
        only_img, only_mask = sorted(set(images) - set(masks)), sorted(set(masks) - set(images))
        if only_img or only_mask:
            raise ValueError(
                f"unmatched files in {root}: images without a mask {only_img[:5]}, "
                f"masks without an image {only_mask[:5]} (images and masks are matched by file stem)"
            )
        stems = sorted(images)
        imgs, ms = _decode_all([(images[s], masks[s]) for s in stems])
        ms = [
            self._check_mask(m, masks[s], num_classes, ignore_index) for m, s in zip(ms, stems, strict=True)
        ]
        x, y = _stack(imgs, ms, stems, scale, size)
        ignore = BINARY_IGNORE if num_classes == 1 and ignore_index is not None else ignore_index
        if num_classes == 1 and not bool((y == 1).any()):
            warnings.warn(
                f"no mask under {root} has a foreground pixel (1 or 255)"
                + (f" outside ignore_index={ignore_index}" if ignore_index is not None else ""),
                stacklevel=2,
            )
        super().__init__(x, y.to(torch.uint8), num_classes, ignore, class_names)
        self.stems = stems

    @staticmethod
    def _check_mask(m: np.ndarray, path: Path, num_classes: int, ignore_index: int | None) -> np.ndarray:
        """Checked labels; binary masks become 0/1 with ignored pixels :data:`BINARY_IGNORE`.

        The ignored pixels are set aside first: only the remaining values say whether a binary mask is
        0/1 or 0/255 (with ``ignore_index=255`` a 0/1 mask holds {0, 255} and must not read as 0/255).
        """
        valid = np.ones(m.shape, bool) if ignore_index is None else m != ignore_index
        values = set(np.unique(m[valid]).tolist())
        if num_classes == 1 and 255 in values and values <= {0, 255}:  # a 0/255 mask
            m, values = np.where(valid & (m == 255), 1, m), {v // 255 for v in values}
        bad = sorted(values - set(range(max(num_classes, 2))))
        if bad:
            what = "0/1 or 0/255" if num_classes == 1 else f"class indices 0..{num_classes - 1}"
            also = (
                f" or ignore_index={ignore_index}"
                if ignore_index is not None
                else " (mark a value to ignore with ignore_index, --ignore-index)"
            )
            raise ValueError(f"mask {path} has values {bad[:5]} out of range: expected {what}{also}")
        if num_classes == 1 and ignore_index is not None:
            m = np.where(valid, m, BINARY_IGNORE)
        return m


def camvid_root(path: str | os.PathLike[str] | None = None) -> Path:
    """The CamVid folder: ``path``, else ``$IOU_DATA_DIR/camvid`` (or ``$IOU_DATA_DIR`` if it is one)."""
    base = config.data_dir(path)
    if base is None:
        raise ValueError("no CamVid location: pass a path or set IOU_DATA_DIR (see data/README.md)")
    for candidate in (base, base / "camvid"):
        if (candidate / "train" / "labels").is_dir():
            return candidate
    raise FileNotFoundError(
        f"no CamVid layout (train/images, train/labels, ...) in {base} or {base / 'camvid'}"
        " (see data/README.md)"
    )


def camvid_class_index(cls: str | int) -> int:
    """Index of a CamVid class by name (case-insensitive, plural and aliases allowed) or index.

    >>> camvid_class_index("car"), camvid_class_index("Pedestrians"), camvid_class_index("sign")
    (8, 9, 6)
    """
    if isinstance(cls, int) and not isinstance(cls, bool) and 0 <= cls < len(CAMVID_CLASSES):
        return cls
    if isinstance(cls, str):
        key = cls.strip().lower()
        names = {n.lower(): i for i, n in enumerate(CAMVID_CLASSES)}
        names.update({a: CAMVID_CLASSES.index(n) for a, n in CAMVID_ALIASES.items()})
        for k in (key, key.removesuffix("s")):
            if k in names:
                return names[k]
    raise ValueError(
        f"unknown CamVid class {cls!r}; expected one of {', '.join(CAMVID_CLASSES)} "
        f"(or an index 0..{len(CAMVID_CLASSES) - 1})"
    )


@functools.lru_cache(maxsize=8)
def _camvid_decoded(root: Path, split: str) -> tuple[Tensor, Tensor]:
    """All images and labels of a split as stored (decoded once per process)."""
    names_file = root / f"{split}.txt"
    images = _list(root / split / "images", (".png",))
    labels = _list(root / split / "labels", (".png",))
    stems = [Path(n).stem for n in names_file.read_text().split()] if names_file.exists() else sorted(images)
    missing = [s for s in stems if s not in images or s not in labels]
    if missing:
        raise ValueError(f"CamVid {split}: no image or label for {missing[:5]} in {root / split}")
    imgs, ms = _decode_all([(images[s], labels[s]) for s in stems])
    x, y = _stack(imgs, ms, stems, 1, None)
    if int(y.max()) > CAMVID_IGNORE:
        raise ValueError(
            f"CamVid {split} labels hold values up to {int(y.max())}; expected 0..10 and void 11"
        )
    return x, y.to(torch.uint8)


@functools.lru_cache(maxsize=16)
def _camvid_arrays(root: Path, split: str, scale: int) -> tuple[Tensor, Tensor]:
    x, y = _camvid_decoded(root, split)
    if scale == 1:
        return x, y
    small, labels = shrink(x, y, scale)
    return small.round().to(torch.uint8), labels


def camvid(
    root: str | os.PathLike[str] | None = None,
    split: str = "train",
    cls: str | int | None = None,
    scale: int = 1,
) -> InMemorySegmentation:
    """CamVid ``split`` (train/val/test) shrunk by ``scale``: 11 classes with ignore index 11, or with
    ``cls`` a binary view of that class (void pixels ignored, not background)."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    x, y = _camvid_arrays(camvid_root(root).resolve(), split, scale)
    if cls is None:
        return InMemorySegmentation(x, y, len(CAMVID_CLASSES), CAMVID_IGNORE, CAMVID_CLASSES)
    index = camvid_class_index(cls)
    return InMemorySegmentation(
        x, binary_view(y, index, CAMVID_IGNORE), 1, BINARY_IGNORE, [CAMVID_CLASSES[index]]
    )
