"""iou_lib.soft_labels: label smoothing, the soft Jaccard loss on soft targets, a tiny training run."""

import pytest
import torch

from iou_lib.losses import functional
from iou_lib.soft_labels import smooth_labels, soft_jaccard, train_on_smoothed


def test_smooth_labels_maps_0_and_1_and_checks_eps():
    torch.testing.assert_close(smooth_labels(torch.tensor([0, 1]), 0.2), torch.tensor([0.1, 0.9]))
    torch.testing.assert_close(smooth_labels(torch.tensor([0.0, 1.0]), 0.0), torch.tensor([0.0, 1.0]))
    for bad in (-0.1, 1.0, True, "0.2"):
        with pytest.raises(ValueError, match="eps must be a number in"):
            smooth_labels(torch.tensor([0.0]), bad)


def test_soft_jaccard_is_soft_iou_on_hard_labels_and_not_minimised_at_soft_targets():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 1, 6, 6, generator=g, dtype=torch.float64)
    y = (torch.rand(2, 1, 6, 6, generator=g) < 0.3).double()
    torch.testing.assert_close(soft_jaccard(z, y), functional("soft_iou")(z, y, per_image=False))
    half = torch.full((1, 8), 0.5, dtype=torch.float64)
    at_target, saturated = (
        soft_jaccard(torch.zeros_like(half), half),
        soft_jaccard(torch.full_like(half, 9.0), half),
    )
    assert at_target.item() == pytest.approx(2 / 3) and saturated < at_target  # 1/(1 + x): prefers x -> 1
    # the Jaccard metric loss is minimised (at 0) where p = y
    assert functional("jaccard_metric")(torch.zeros_like(half), half).item() == pytest.approx(0, abs=1e-12)


def test_soft_jaccard_rejects_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        soft_jaccard(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        soft_jaccard(torch.zeros(3), torch.tensor([0.0, 1.5, 0.0]))


def test_train_on_smoothed_is_seeded_and_scores_hard_masks():
    kw = {"size": 16, "n_train": 8, "n_test": 4, "steps": 2, "batch_size": 4, "width": 4}
    a, b = train_on_smoothed("jaccard_metric", **kw), train_on_smoothed("jaccard_metric", **kw)
    assert a == b  # same seed: same data, initialisation and batches
    assert set(a) == {"loss", "seed", "iou", "p_fg", "p_bg", "target_gap"}
    assert 0 <= a["iou"] <= 1 and 0 < a["p_bg"] < 1 and 0 <= a["target_gap"] <= 1
    assert train_on_smoothed("soft_jaccard", **kw)["loss"] == "soft_jaccard"
    with pytest.raises(ValueError, match="steps must be >= 1"):
        train_on_smoothed("bce", steps=0)
