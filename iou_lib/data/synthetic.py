"""Procedural segmentation data with the foreground fraction as a knob, deterministic by seed.

Masks are drawn as the union of ``n_objects`` shapes (smooth blobs, irregular convex polygons, thin
bars). Each shape ``k`` has a *normalised distance* :math:`\\rho_k(x)` (``< 1`` inside its nominal
outline, growing outward, level sets are scaled copies of the shape). The mask of an image is

.. math::  M = \\{x : \\min_k \\rho_k(x) \\le t\\},

with the threshold :math:`t` chosen per image so that exactly ``round(f * H * W)`` pixels are foreground:
the foreground fraction is hit to the pixel, and fewer objects means bigger objects.

Images (:class:`SyntheticSegmentation`) make the task non-trivial on purpose: a textured background,
foreground objects with a fine striped texture, and *distractors*, shapes of exactly the same colour and
mean brightness but a different (speckled) texture and no thin bars, so no intensity threshold separates
foreground from distractors; plus pixel noise and optionally images with no foreground at all.

>>> m = blob_masks(2, 32, 0.25, seed=0)
>>> tuple(m.shape), m.dtype, float(m.mean())
((2, 1, 32, 32), torch.float32, 0.25)
>>> bool(blob_masks(1, 16, 0.0).eq(0).all())
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from iou_lib.data.base import InMemorySegmentation

__all__ = ["SHAPES", "SyntheticSegmentation", "blob_masks", "shape_masks", "synthetic_images"]

SHAPES = ("blob", "polygon", "bar")
_CHUNK = 32  # images textured per random draw (fixed: the images depend on it)
_PIXELS = 2**19  # object-pixels of masks rendered at once (cache-sized; the masks do not depend on it)
_MAX_SIDES = 6


def _check_args(n: int, size: int, fg_frac: float, n_objects: int) -> None:
    for name, value, low in (("n", n, 0), ("size", size, 4), ("n_objects", n_objects, 1)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    if not isinstance(fg_frac, (int, float)) or isinstance(fg_frac, bool):
        raise TypeError(f"fg_frac must be a float, got {type(fg_frac).__name__}")
    if not 0.0 <= fg_frac <= 0.9:
        raise ValueError(f"fg_frac must be in [0, 0.9], got {fg_frac}")


def _uniform(g: torch.Generator, shape: tuple[int, ...], low: float, high: float) -> Tensor:
    return torch.rand(shape, generator=g) * (high - low) + low


def _shape_params(g: torch.Generator, n: int, k: int, size: int, shapes: Sequence[str]) -> dict[str, Tensor]:
    """Random parameters of ``k`` shapes in each of ``n`` images (all small tensors of shape (n, k))."""
    kinds = torch.tensor([SHAPES.index(s) for s in shapes])
    sides = torch.randint(3, _MAX_SIDES + 1, (n, k), generator=g)
    return {
        "kind": kinds[torch.randint(len(kinds), (n, k), generator=g)],
        "cy": _uniform(g, (n, k), 0.1, 0.9) * size,
        "cx": _uniform(g, (n, k), 0.1, 0.9) * size,
        "scale": _uniform(g, (n, k), 0.6, 1.4) * size / 8,  # relative object size
        "angle": _uniform(g, (n, k), 0, math.pi),
        "aspect": _uniform(g, (n, k), 0.55, 1.0),
        "harm": _uniform(g, (n, k, 2), 0.0, 0.22),  # blob outline: cos(2 phi), cos(3 phi) amplitudes
        "phase": _uniform(g, (n, k, 2), 0, 2 * math.pi),
        # polygon: edge normals at equal angles (jittered); unused slots repeat the first edge
        "normal": (
            torch.arange(_MAX_SIDES) * 2 * math.pi / sides[..., None]
            + _uniform(g, (n, k, _MAX_SIDES), -0.25, 0.25)
        ),
        "sides": sides,
        "apothem": _uniform(g, (n, k, _MAX_SIDES), 0.8, 1.2),
        "length": _uniform(g, (n, k), 2.0, 4.0),  # bar half length / scale
        "width": _uniform(g, (n, k), 0.12, 0.22),  # bar half width / scale
    }


def _blob(u: Tensor, v: Tensor, p: dict[str, Tensor]) -> Tensor:
    """Smooth blob: anisotropic radius, wobbly outline r(phi) = 1 + a2 cos(2phi+b2) + a3 cos(3phi+b3)."""
    va = v / p["aspect"]
    r2 = (u * u + va * va).clamp_min(1e-12)
    r = r2.sqrt()
    # cos(k phi), sin(k phi) from the coordinates (no atan2): k = 2 directly, k = 3 by the angle sum
    cos2, sin2 = (u * u - va * va) / r2, 2 * u * va / r2
    c, s = u / r, va / r
    cos3, sin3 = cos2 * c - sin2 * s, sin2 * c + cos2 * s
    a, b = p["harm"], p["phase"]
    a2c, a2s = a[..., 0] * torch.cos(b[..., 0]), a[..., 0] * torch.sin(b[..., 0])
    a3c, a3s = a[..., 1] * torch.cos(b[..., 1]), a[..., 1] * torch.sin(b[..., 1])
    return r / (1 + a2c * cos2 - a2s * sin2 + a3c * cos3 - a3s * sin3)


def _polygon(u: Tensor, v: Tensor, p: dict[str, Tensor]) -> Tensor:
    """Convex polygon: max over edges of (normal . x) / apothem; unused edge slots repeat edge 0."""
    out = None
    for j in range(_MAX_SIDES):
        used = j < p["sides"]
        normal = torch.where(used, p["normal"][..., j], p["normal"][..., 0])
        apothem = torch.where(used, p["apothem"][..., j], p["apothem"][..., 0])
        proj = (u * torch.cos(normal) + v * torch.sin(normal)) / apothem
        out = proj if out is None else torch.maximum(out, proj)
    return out


def _bar(u: Tensor, v: Tensor, p: dict[str, Tensor]) -> Tensor:
    """Thin bar: distance to a segment along u, relative to a small half width."""
    return torch.sqrt((u.abs() - p["length"]).clamp_min(0) ** 2 + v * v) / p["width"]


_RHO = (_blob, _polygon, _bar)


def _rho(p: dict[str, Tensor], size: int) -> Tensor:
    """Normalised distance of every pixel to every shape: (n, k, size, size); < 1 inside the outline.

    Objects are grouped by kind, so each pixel-object pair is evaluated for its own shape only.
    """
    n, k = p["kind"].shape
    flat = {name: t.reshape(n * k, 1, 1, *t.shape[2:]) for name, t in p.items()}
    out = torch.empty(n * k, size, size)
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    for kind, fn in enumerate(_RHO):
        idx = torch.nonzero(p["kind"].reshape(-1) == kind).squeeze(1)
        if idx.numel() == 0:
            continue
        q = {name: t[idx] for name, t in flat.items()}
        dy = coords.view(1, size, 1) - q["cy"]
        dx = coords.view(1, 1, size) - q["cx"]
        cos, sin = torch.cos(q["angle"]), torch.sin(q["angle"])
        # shape-aligned coordinates in units of the object scale
        u, v = (cos * dx + sin * dy) / q["scale"], (cos * dy - sin * dx) / q["scale"]
        out[idx] = fn(u, v, q)
    return out.reshape(n, k, size, size)


def _top_fraction(field: Tensor, frac: Tensor) -> Tensor:
    """Per image, the ``round(frac * N)`` pixels of largest ``field`` as a bool mask (ties included)."""
    n = field.shape[0]
    flat = field.reshape(n, -1)
    k = torch.round(frac * flat.shape[1]).long().clamp(0, flat.shape[1])
    ordered = flat.sort(dim=1, descending=True).values
    thresh = ordered.gather(1, (k - 1).clamp_min(0)[:, None])
    return ((flat >= thresh) & (k[:, None] > 0)).reshape(field.shape)


def shape_masks(
    n: int,
    size: int,
    fg_frac: float | Tensor,
    n_objects: int = 4,
    shapes: Sequence[str] = ("blob",),
    seed: int | torch.Generator = 0,
) -> Tensor:
    """``n`` binary masks ``(n, size, size)`` (bool) as unions of ``n_objects`` random shapes.

    ``fg_frac`` is a float, or a tensor ``(n,)`` of per-image fractions; each mask has exactly
    ``round(fg_frac * size**2)`` foreground pixels (ties aside). ``shapes`` is a subset of
    :data:`SHAPES`; each object picks one at random.
    """
    frac = torch.as_tensor(fg_frac, dtype=torch.float32).expand(n) if n else torch.zeros(0)
    extreme = max(frac.tolist(), key=lambda f: abs(f - 0.45)) if n else 0.0  # the one most out of range
    _check_args(n, size, extreme, n_objects)
    if isinstance(shapes, str) or not shapes or any(s not in SHAPES for s in shapes):
        raise ValueError(f"shapes must be a non-empty sequence of names from {SHAPES}, got {shapes!r}")
    g = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    params = _shape_params(g, n, n_objects, size, shapes)
    out = torch.zeros(n, size, size, dtype=torch.bool)
    step = max(1, _PIXELS // (n_objects * size * size))
    for start in range(0, n, step):
        sl = slice(start, start + step)
        rho = _rho({k: v[sl] for k, v in params.items()}, size)
        out[sl] = _top_fraction(-rho.amin(1), frac[sl])
    return out


def blob_masks(n: int, size: int, fg_frac: float, n_objects: int = 4, seed: int = 0) -> Tensor:
    """``n`` masks ``(n, 1, size, size)`` float32 in {0, 1}: unions of ``n_objects`` smooth blobs.

    Each mask has ``round(fg_frac * size**2)`` foreground pixels; ``fg_frac=0`` gives empty masks; at a
    fixed fraction, fewer objects are bigger. Deterministic by ``seed``.

    >>> m = blob_masks(3, 20, 0.1, n_objects=2, seed=1)
    >>> m.sum(dim=(1, 2, 3)).tolist()
    [40.0, 40.0, 40.0]
    """
    return shape_masks(n, size, fg_frac, n_objects, ("blob",), seed).unsqueeze(1).float()


def _smooth_noise(g: torch.Generator, n: int, channels: int, size: int, cells: int) -> Tensor:
    """Value noise: a random ``cells x cells`` grid upsampled bilinearly to ``size``, in about [-1, 1]."""
    coarse = torch.rand(n, channels, cells, cells, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def synthetic_images(
    n: int,
    size: int,
    fg_frac: float,
    *,
    n_objects: int = 4,
    shapes: Sequence[str] = SHAPES,
    distractor_frac: float | None = None,
    empty_frac: float = 0.0,
    fg_jitter: float = 0.5,
    noise: float = 0.04,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """Render ``n`` RGB images and their masks: ``(uint8 (n, 3, size, size), bool (n, size, size))``.

    Per image: background colour and object colour are random; the background has a smooth, blotchy
    texture; foreground objects (``shapes``) carry a fine stripe pattern; distractors (blobs and
    polygons, ``distractor_frac`` of the pixels, default ``clip(fg_frac, 0.01, 0.1)``) have the same
    colour and the same mean brightness as the foreground but a speckled texture. The per-image
    foreground fraction is ``fg_frac * exp(fg_jitter * u) / c`` with ``u ~ U(-1, 1)`` and ``c`` the
    normaliser that keeps the mean at ``fg_frac``; a share ``empty_frac`` of the images has no
    foreground. Gaussian pixel noise of std ``noise`` (intensities in [0, 1]) is added last.
    """
    _check_args(n, size, fg_frac, n_objects)
    for name, value, high in (
        ("empty_frac", empty_frac, 1.0),
        ("fg_jitter", fg_jitter, 3.0),
        ("noise", noise, 1.0),
    ):
        if not 0.0 <= value <= high:
            raise ValueError(f"{name} must be in [0, {high}], got {value}")
    if distractor_frac is None:
        distractor_frac = min(max(fg_frac, 0.01), 0.1)
    if not 0.0 <= distractor_frac <= 0.5:
        raise ValueError(f"distractor_frac must be in [0, 0.5], got {distractor_frac}")
    g = torch.Generator().manual_seed(int(seed))
    norm = math.sinh(fg_jitter) / fg_jitter if fg_jitter > 0 else 1.0
    frac = fg_frac * torch.exp(fg_jitter * _uniform(g, (n,), -1, 1)) / norm
    frac = torch.where(torch.rand(n, generator=g) < empty_frac, 0.0, frac.clamp(max=0.9))
    fg = shape_masks(n, size, frac, n_objects, shapes, g)
    distract = shape_masks(n, size, distractor_frac, n_objects, ("blob", "polygon"), g) & ~fg

    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    yy = torch.arange(size, dtype=torch.float32).view(1, size, 1)
    xx = torch.arange(size, dtype=torch.float32).view(1, 1, size)
    for start in range(0, n, _CHUNK):
        m = min(_CHUNK, n - start)
        bg_col = _uniform(g, (m, 3, 1, 1), 0.25, 0.75)
        obj_col = _uniform(g, (m, 3, 1, 1), 0.25, 0.75)
        background = (
            bg_col + 0.12 * _smooth_noise(g, m, 3, size, 6) + 0.05 * _smooth_noise(g, m, 1, size, size // 2)
        )
        # stripes: period 3-5 px, random orientation, zero mean
        theta = _uniform(g, (m, 1, 1), 0, math.pi)
        period = _uniform(g, (m, 1, 1), 3.0, 5.0)
        phase = _uniform(g, (m, 1, 1), 0, 2 * math.pi)
        stripes = torch.sin(2 * math.pi * (xx * torch.cos(theta) + yy * torch.sin(theta)) / period + phase)
        speckle = torch.randn(m, 1, size, size, generator=g) * (0.5**0.5)  # same variance as the stripes
        amp = _uniform(g, (m, 1, 1, 1), 0.12, 0.2)
        img = torch.where(fg[start : start + m, None], obj_col + amp * stripes[:, None], background)
        img = torch.where(distract[start : start + m, None], obj_col + amp * speckle, img)
        img = img + noise * torch.randn(m, 3, size, size, generator=g)
        images[start : start + m] = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return images, fg


class SyntheticSegmentation(InMemorySegmentation):
    """Synthetic binary segmentation: items ``(image float32 (3, H, W) in [0, 1], target int64 (H, W))``.

    All images are rendered at construction (vectorised, see :func:`synthetic_images`; keyword arguments
    are passed on) and kept as uint8. ``num_classes = 1`` (binary), ``ignore_index = None``.

    >>> ds = SyntheticSegmentation(4, 32, 0.1, seed=0)
    >>> x, y = ds[0]
    >>> tuple(x.shape), x.dtype, tuple(y.shape), y.dtype, len(ds)
    ((3, 32, 32), torch.float32, (32, 32), torch.int64, 4)
    """

    def __init__(self, n: int, size: int, fg_frac: float, *, seed: int = 0, **kwargs: object) -> None:
        images, masks = synthetic_images(n, size, fg_frac, seed=seed, **kwargs)
        super().__init__(images, masks.to(torch.uint8))
        self.fg_frac = fg_frac
