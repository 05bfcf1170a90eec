"""Synthetic masks and images: fraction knob, determinism, distractors, empty images."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iou_lib.data.synthetic import SyntheticSegmentation, blob_masks, shape_masks, synthetic_images


@settings(max_examples=20, deadline=None)
@given(
    size=st.integers(8, 48), frac=st.floats(0.0, 0.9), n_objects=st.integers(1, 6), seed=st.integers(0, 99)
)
def test_blob_masks_hit_the_fraction_exactly(size, frac, n_objects, seed):
    m = blob_masks(3, size, frac, n_objects=n_objects, seed=seed)
    assert m.shape == (3, 1, size, size) and m.dtype == torch.float32
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    expected = round(frac * size * size)
    # ties at the threshold may add a pixel or two; never fewer
    counts = m.sum(dim=(1, 2, 3))
    assert bool(((counts >= expected) & (counts <= expected + 2)).all()), (counts, expected)


def test_deterministic_by_seed_and_seed_matters():
    assert torch.equal(blob_masks(4, 32, 0.1, seed=3), blob_masks(4, 32, 0.1, seed=3))
    assert not torch.equal(blob_masks(4, 32, 0.1, seed=3), blob_masks(4, 32, 0.1, seed=4))
    a, b = synthetic_images(3, 32, 0.1, seed=5), synthetic_images(3, 32, 0.1, seed=5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def _components(mask: torch.Tensor) -> int:
    """Number of 4-connected components (label propagation by repeated max pooling)."""
    lab = torch.where(mask, torch.arange(1, mask.numel() + 1, dtype=torch.float32).view(mask.shape), 0.0)
    for _ in range(mask.numel()):
        new = torch.nn.functional.max_pool2d(lab[None, None], 3, 1, 1)[0, 0] * mask
        if torch.equal(new, lab):
            break
        lab = new
    return lab.unique().numel() - 1


def test_fewer_objects_are_bigger():
    one = blob_masks(6, 48, 0.1, n_objects=1, seed=0)
    six = blob_masks(6, 48, 0.1, n_objects=6, seed=0)
    comps_one = sum(_components(m[0].bool()) for m in one)
    comps_six = sum(_components(m[0].bool()) for m in six)
    assert comps_one < comps_six


def test_empty_masks_and_empty_images():
    assert blob_masks(2, 16, 0.0).sum() == 0
    x, y = synthetic_images(40, 32, 0.2, empty_frac=0.5, seed=0)
    empty = y.flatten(1).sum(1) == 0
    assert 8 <= int(empty.sum()) <= 32  # about half
    assert x[empty].float().std() > 0  # empty images still have texture and distractors


def test_mean_fraction_is_the_knob():
    for frac in (0.005, 0.05, 0.5):
        _, y = synthetic_images(64, 48, frac, seed=1)
        assert abs(y.float().mean().item() - frac) < 0.15 * frac + 1e-3


def test_intensity_threshold_cannot_separate_foreground_from_distractors():
    x, y = synthetic_images(32, 64, 0.05, seed=2, noise=0.0)
    gray = x.float().mean(1)
    # per image, the best single threshold on brightness (either polarity) for the object pixels
    best = []
    for g, m in zip(gray, y, strict=True):
        v, t = g.flatten(), m.flatten().float()
        thr = v.unique()
        pred = v[None, :] >= thr[:, None]
        inter = (pred * t).sum(1)
        union = (pred.float() + t).clamp(max=1).sum(1)
        iou_hi = inter / union
        pred = ~pred
        iou_lo = (pred * t).sum(1) / (pred.float() + t).clamp(max=1).sum(1)
        best.append(torch.maximum(iou_hi, iou_lo).max())
    assert torch.stack(best).mean() < 0.5


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="shapes"):
        shape_masks(1, 16, 0.1, shapes=("star",))
    with pytest.raises(ValueError, match="fg_frac"):
        blob_masks(1, 16, 1.5)
    with pytest.raises(TypeError, match="size"):
        blob_masks(1, 16.0, 0.1)


def test_dataset_items():
    ds = SyntheticSegmentation(5, 24, 0.1, seed=0, n_objects=2)
    x, y = ds[4]
    assert x.shape == (3, 24, 24) and 0 <= x.min() and x.max() <= 1
    assert y.dtype == torch.int64 and set(y.unique().tolist()) <= {0, 1}
    assert len(ds) == 5 and ds.num_classes == 1 and ds.ignore_index is None
