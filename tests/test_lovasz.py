"""Lovász hinge and Lovász-softmax against the paper's definition, their identities, kornia and autograd."""

from __future__ import annotations

import kornia
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import iou_lib
from iou_lib import losses
from iou_lib.losses import lovasz_hinge, lovasz_softmax
from iou_lib.losses.lovasz import _lovasz_softmax_probs
from iou_lib.relax import lovasz_extension

# ----------------------------------------------------------------------------------------------------
# Plain reference: Algorithm 1 of Berman et al. (2018), one sort per row in a Python loop, float64.


def ref_extension(errors: torch.Tensor, fg: torch.Tensor) -> torch.Tensor:
    """Lovász extension of the Jaccard loss for one row: sorted relu(errors) . differences of 1 - I/U."""
    order = torch.argsort(errors, descending=True)
    e, g = errors[order], fg[order].to(errors.dtype)
    n_fg = g.sum()
    jaccard = 1 - (n_fg - g.cumsum(0)) / (n_fg + (1 - g).cumsum(0))
    steps = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    return (e.clamp_min(0) * steps).sum()


def ref_hinge(z, y, per_image=True, ignore_index=None):
    z, y = z.reshape(z.shape[0], -1), y.reshape(y.shape[0], -1)
    rows = [(z[b], y[b]) for b in range(z.shape[0])] if per_image else [(z.reshape(-1), y.reshape(-1))]
    out = []
    for zr, yr in rows:
        keep = torch.ones_like(yr, dtype=torch.bool) if ignore_index is None else yr != ignore_index
        zr, yr = zr[keep], yr[keep].to(zr.dtype)
        out.append(ref_extension(1 - zr * (2 * yr - 1), yr > 0.5))
    return torch.stack(out).mean()


def ref_softmax(logits, target, per_image=False, classes="present", ignore_index=None):
    p = torch.softmax(logits, 1).reshape(logits.shape[0], logits.shape[1], -1)
    t = target.reshape(target.shape[0], -1)
    groups = (
        [(p[b], t[b]) for b in range(p.shape[0])]
        if per_image
        else [(p.transpose(0, 1).reshape(p.shape[1], -1), t.reshape(-1))]
    )
    out = []
    for pg, tg in groups:
        keep = torch.ones_like(tg, dtype=torch.bool) if ignore_index is None else tg != ignore_index
        pg, tg = pg[:, keep], tg[keep]
        per_class = []
        for c in range(pg.shape[0]):
            fg = tg == c
            if (
                classes == "present"
                and not fg.any()
                or classes not in ("present", "all")
                and c not in classes
            ):
                continue
            per_class.append(ref_extension((fg.to(pg.dtype) - pg[c]).abs(), fg))
        out.append(torch.stack(per_class).mean())
    return torch.stack(out).mean()


def iou_rows(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Hard IoU per row of bool tensors; an empty prediction of an empty target scores 1."""
    inter = (pred & target).sum(-1).double()
    union = (pred | target).sum(-1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def blobs(b, h, w, frac=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(b, 1, max(h // 4, 1), max(w // 4, 1), generator=g)
    return (torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear") < frac).squeeze(1).float()


# ----------------------------------------------------------------------------------------------------
# Values and gradients against the plain definition


@pytest.mark.parametrize("per_image", [True, False])
def test_hinge_matches_definition_value_and_grad(per_image):
    torch.manual_seed(1)
    y = blobs(4, 16, 16)
    y[2] = 0  # an image without foreground
    z = (2 * torch.randn(4, 1, 16, 16, dtype=torch.float64)).requires_grad_()
    z_ref = z.detach().clone().requires_grad_()
    loss = lovasz_hinge(z, y, per_image=per_image)
    expected = ref_hinge(z_ref, y, per_image=per_image)
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    loss.backward()
    expected.backward()
    torch.testing.assert_close(z.grad, z_ref.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("classes", ["present", "all", [0, 3]])
def test_softmax_matches_definition_value_and_grad(per_image, classes):
    torch.manual_seed(2)
    t = torch.randint(0, 4, (3, 12, 12))
    t[0][t[0] == 3] = 1  # class 3 absent from image 0
    z = (3 * torch.randn(3, 5, 12, 12, dtype=torch.float64)).requires_grad_()  # class 4 absent everywhere
    z_ref = z.detach().clone().requires_grad_()
    loss = lovasz_softmax(z, t, per_image=per_image, classes=classes)
    expected = ref_softmax(z_ref, t, per_image=per_image, classes=classes)
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    loss.backward()
    expected.backward()
    torch.testing.assert_close(z.grad, z_ref.grad, rtol=1e-10, atol=1e-12)


def jaccard_set_loss(fg: torch.Tensor):
    """Jaccard loss of a set M of mispredicted pixels: 1 - |fg minus M| / |fg or M| (0 if both empty)."""

    def delta(mistakes: torch.Tensor) -> float:
        union = int((fg | mistakes).sum())
        return 0.0 if union == 0 else 1 - int((fg & ~mistakes).sum()) / union

    return delta


def test_equals_the_textbook_lovasz_extension_of_relax():
    """iou_lib.relax.lovasz_extension sums set-function differences along the sorted errors."""
    torch.manual_seed(9)
    y = torch.rand(3, 10) < 0.4
    y[1] = False  # no foreground
    z = torch.randn(3, 10, dtype=torch.float64)
    per_image = [
        lovasz_extension((1 - z[b] * (2 * y[b].double() - 1)).clamp_min(0), jaccard_set_loss(y[b]))
        for b in range(3)
    ]
    torch.testing.assert_close(
        lovasz_hinge(z, y.double()), torch.stack(per_image).mean(), rtol=1e-12, atol=1e-12
    )
    t = torch.tensor([[0, 1, 1, 2, 0, 1]])
    zc = torch.randn(1, 3, 6, dtype=torch.float64)
    p = torch.softmax(zc, 1)[0]
    per_class = [
        lovasz_extension(((t[0] == c).double() - p[c]).abs(), jaccard_set_loss(t[0] == c)) for c in range(3)
    ]
    torch.testing.assert_close(lovasz_softmax(zc, t), torch.stack(per_class).mean(), rtol=1e-12, atol=1e-12)


def test_float32_large_inputs_match_definition():
    """Rows longer than 32768 pixels take the integer-key radix sort; values match (ties only reorder)."""
    torch.manual_seed(3)
    y = blobs(3, 128, 128)
    z = torch.randn(3, 1, 128, 128)
    for per_image in (True, False):
        expected = ref_hinge(z.double(), y, per_image=per_image).float()
        torch.testing.assert_close(lovasz_hinge(z, y, per_image=per_image), expected, rtol=1e-5, atol=1e-6)
    t = torch.randint(0, 3, (2, 128, 128))
    zc = torch.randn(2, 3, 128, 128)
    expected = ref_softmax(zc.double(), t).float()
    torch.testing.assert_close(lovasz_softmax(zc, t), expected, rtol=1e-5, atol=1e-6)


def test_ties_do_not_change_the_value():
    torch.manual_seed(4)
    y = blobs(2, 16, 16)
    z = torch.randint(-2, 3, (2, 16, 16)).double()  # many equal errors
    torch.testing.assert_close(lovasz_hinge(z, y), ref_hinge(z, y), rtol=1e-12, atol=1e-12)
    t = torch.randint(0, 3, (2, 16, 16))
    zc = torch.randint(-1, 2, (2, 3, 16, 16)).double()
    torch.testing.assert_close(lovasz_softmax(zc, t), ref_softmax(zc, t), rtol=1e-12, atol=1e-12)


def test_gradcheck_float64():
    torch.manual_seed(5)
    z = torch.randn(2, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    y = blobs(2, 6, 6, frac=0.5)
    assert torch.autograd.gradcheck(lambda a: lovasz_hinge(a, y), (z,))
    assert torch.autograd.gradcheck(lambda a: lovasz_hinge(a, y, per_image=False), (z,))
    zc = torch.randn(2, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 3, (2, 5, 5))
    assert torch.autograd.gradcheck(lambda a: lovasz_softmax(a, t), (zc,))
    assert torch.autograd.gradcheck(lambda a: lovasz_softmax(a, t, per_image=True, classes="all"), (zc,))


# ----------------------------------------------------------------------------------------------------
# Identities at the vertices of the cube


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 12),
    st.integers(0, 2**31 - 1),
    st.booleans(),
)
def test_hinge_at_vertices_is_jaccard_loss(b, n, seed, per_image):
    """Errors in {0, 1}: logit 2y-1 on a correct pixel, logit 0 on a mistake. Loss = 1 - IoU of y xor M."""
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(b, n, generator=g) < 0.4
    mistakes = torch.rand(b, n, generator=g) < 0.3
    z = torch.where(mistakes, torch.zeros(b, n), 2 * y.double() - 1)
    pred = y ^ mistakes
    rows = (pred, y) if per_image else (pred.reshape(1, -1), y.reshape(1, -1))
    expected = 1 - iou_rows(*rows).mean()
    torch.testing.assert_close(lovasz_hinge(z, y.double(), per_image=per_image), expected, rtol=0, atol=1e-12)
    # Hard +-1 logits put the errors at 0 or 2: twice the Jaccard loss of the thresholded prediction.
    hard = torch.where(pred, 1.0, -1.0).double()
    torch.testing.assert_close(
        lovasz_hinge(hard, y.double(), per_image=per_image), 2 * expected, rtol=0, atol=1e-12
    )


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(2, 5), st.integers(1, 20), st.integers(0, 2**31 - 1), st.booleans())
def test_softmax_on_one_hot_probabilities_is_one_minus_miou(b, c, n, seed, per_image):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, c, (b, n), generator=g)
    pred = torch.randint(0, c, (b, n), generator=g)
    probs = torch.nn.functional.one_hot(pred, c).permute(0, 2, 1).double()
    onehot_t = torch.nn.functional.one_hot(target, c).permute(0, 2, 1).bool()
    onehot_p = probs.bool()
    if per_image:
        iou = iou_rows(onehot_p, onehot_t)  # (b, c)
        present = onehot_t.any(-1)
    else:
        iou = iou_rows(onehot_p.transpose(0, 1).reshape(c, -1), onehot_t.transpose(0, 1).reshape(c, -1))[None]
        present = onehot_t.any(-1).any(0, keepdim=True)
    expected_present = 1 - ((iou * present).sum(1) / present.sum(1)).mean()
    expected_all = 1 - iou.mean(1).mean()
    everything = torch.ones(c, dtype=torch.bool)
    got_present = _lovasz_softmax_probs(probs, target, None, per_image, None, "mean")
    got_all = _lovasz_softmax_probs(probs, target, None, per_image, everything, "mean")
    torch.testing.assert_close(got_present, expected_present, rtol=0, atol=1e-12)
    torch.testing.assert_close(got_all, expected_all, rtol=0, atol=1e-12)


def test_softmax_on_confident_logits_is_one_minus_miou():
    target = torch.tensor([[0, 0, 1, 1, 2, 2]])
    pred = torch.tensor([[0, 1, 1, 1, 2, 0]])  # IoU: class 0 1/3, class 1 2/3, class 2 1/2
    logits = 30.0 * torch.nn.functional.one_hot(pred, 3).permute(0, 2, 1).float()
    expected = 1 - (1 / 3 + 2 / 3 + 1 / 2) / 3
    torch.testing.assert_close(lovasz_softmax(logits, target), torch.tensor(expected), rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------------------------------
# Peer implementation (kornia: always per image; softmax averages all classes)


def test_equals_kornia():
    torch.manual_seed(6)
    y = blobs(4, 64, 64)
    y[1] = 0
    z = 2 * torch.randn(4, 1, 64, 64)
    expected = kornia.losses.lovasz_hinge_loss(z, y)
    torch.testing.assert_close(lovasz_hinge(z, y), expected, rtol=1e-5, atol=1e-5)
    t = torch.randint(0, 4, (3, 32, 32))
    t[0][t[0] == 2] = 0
    zc = 2 * torch.randn(3, 6, 32, 32)
    expected = kornia.losses.lovasz_softmax_loss(zc, t)
    torch.testing.assert_close(
        lovasz_softmax(zc, t, per_image=True, classes="all"), expected, rtol=1e-5, atol=1e-5
    )


# ----------------------------------------------------------------------------------------------------
# Conventions: empty images, perfect predictions, ignore_index, dtypes


def test_empty_image_scores_its_largest_hinge_error():
    z = torch.tensor([[[-3.0, 0.5], [-1.0, -2.0]]], requires_grad=True)
    loss = lovasz_hinge(z, torch.zeros(1, 2, 2))
    loss.backward()
    assert loss.item() == pytest.approx(1.5)  # max(1 + z)
    torch.testing.assert_close(z.grad, torch.tensor([[[0.0, 1.0], [0.0, 0.0]]]))
    # every error non-positive: exactly zero loss and gradient
    z = torch.full((1, 2, 2), -1.0, requires_grad=True)
    loss = lovasz_hinge(z, torch.zeros(1, 2, 2))
    loss.backward()
    assert loss.item() == 0.0 and not z.grad.any()


def test_absent_class_scores_its_largest_probability_with_all_classes():
    t = torch.zeros(1, 4, dtype=torch.long)
    z = torch.tensor([[[2.0, 1.0, 0.0, 3.0], [0.0, 0.5, 1.0, 0.0]]])
    p = torch.softmax(z, 1)
    expected = (ref_extension(1 - p[0, 0], t[0] == 0) + p[0, 1].max()) / 2
    torch.testing.assert_close(lovasz_softmax(z, t, classes="all"), expected)
    torch.testing.assert_close(lovasz_softmax(z, t, classes=[1]), p[0, 1].max())


def test_perfect_predictions_give_zero_loss_and_gradient():
    y = blobs(2, 8, 8)
    z = (3 * (2 * y - 1)).unsqueeze(1).requires_grad_()
    loss = lovasz_hinge(z, y)
    loss.backward()
    assert loss.item() == 0.0 and not z.grad.any()
    t = torch.randint(0, 3, (2, 8, 8))
    zc = (200.0 * torch.nn.functional.one_hot(t, 3).permute(0, 3, 1, 2).float()).requires_grad_()
    for per_image in (True, False):
        zc.grad = None
        loss = lovasz_softmax(zc, t, per_image=per_image, classes="all")
        loss.backward()
        assert loss.item() == 0.0 and not zc.grad.any()


def test_ignore_index_equals_dropping_the_pixels():
    torch.manual_seed(7)
    y = blobs(3, 10, 10).long()
    y[:, :3] = 255
    z = torch.randn(3, 1, 10, 10, dtype=torch.float64, requires_grad=True)
    for per_image in (True, False):
        z.grad = None
        loss = lovasz_hinge(z, y, per_image=per_image, ignore_index=255)
        torch.testing.assert_close(loss, ref_hinge(z, y, per_image=per_image, ignore_index=255))
        loss.backward()
        assert not z.grad[:, :, :3].any()
    t = torch.randint(0, 3, (2, 10, 10))
    t[:, 5:] = -1
    zc = torch.randn(2, 3, 10, 10, dtype=torch.float64, requires_grad=True)
    for per_image in (True, False):
        for classes in ("present", "all"):
            zc.grad = None
            loss = lovasz_softmax(zc, t, per_image=per_image, classes=classes, ignore_index=-1)
            expected = ref_softmax(zc, t, per_image=per_image, classes=classes, ignore_index=-1)
            torch.testing.assert_close(loss, expected)
            loss.backward()
            assert not zc.grad[:, :, 5:].any()


def test_fully_ignored_images_are_left_out():
    y = torch.tensor([[0, 1, 1], [255, 255, 255]])
    z = torch.tensor([[0.5, -0.5, 2.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(lovasz_hinge(z, y, ignore_index=255), ref_hinge(z[:1], y[:1]))
    y_all = torch.full((2, 3), 255)
    zg = z.clone().requires_grad_()
    loss = lovasz_hinge(zg, y_all, ignore_index=255)
    loss.backward()
    assert loss.item() == 0.0 and not zg.grad.any()
    t = torch.tensor([[0, 1, 1], [-1, -1, -1]])
    zc = torch.randn(2, 2, 3, dtype=torch.float64)
    expected = ref_softmax(zc[:1], t[:1], per_image=True)
    torch.testing.assert_close(lovasz_softmax(zc, t, per_image=True, ignore_index=-1), expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_inputs_give_finite_float32(dtype):
    torch.manual_seed(8)
    y = blobs(2, 64, 64)
    z = torch.randn(2, 1, 64, 64).to(dtype).requires_grad_()
    loss = lovasz_hinge(z, y)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and torch.isfinite(z.grad).all()
    torch.testing.assert_close(loss, lovasz_hinge(z.detach().float(), y))
    t = torch.randint(0, 4, (2, 32, 32))
    zc = torch.randn(2, 4, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = lovasz_softmax(zc.to(dtype), t)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    torch.testing.assert_close(loss, lovasz_softmax(zc.to(dtype).float(), t))


def test_nan_logits_are_rejected_or_propagate():
    z = torch.tensor([[0.5, float("nan"), -0.5]])
    y = torch.tensor([[1.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="NaN"):
        lovasz_hinge(z, y)
    with iou_lib.value_checks(False):
        assert torch.isnan(lovasz_hinge(z, y))
        assert torch.isnan(lovasz_hinge(-z, y))  # a NaN with the sign bit flipped is not dropped either
        zc = torch.zeros(1, 3, 2, 2)
        zc[0, 1, 0, 0] = float("nan")
        assert torch.isnan(lovasz_softmax(zc, torch.zeros(1, 2, 2, dtype=torch.long)))


def test_bad_arguments_are_named():
    z, y = torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2)
    with pytest.raises(TypeError, match="per_image"):
        lovasz_hinge(z, y, per_image=1)
    with pytest.raises(ValueError, match="ignore_index"):
        lovasz_hinge(z, y, ignore_index=1)
    with pytest.raises(TypeError, match="ignore_index"):
        lovasz_hinge(z, y, ignore_index=0.5)
    zc, t = torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="classes"):
        lovasz_softmax(zc, t, classes="some")
    with pytest.raises(ValueError, match="classes"):
        lovasz_softmax(zc, t, classes=[0, 3])
    with pytest.raises(ValueError, match="classes"):
        lovasz_softmax(zc, t, classes=[])
    with pytest.raises(TypeError, match="target"):
        lovasz_softmax(zc, t.float())


def test_registered():
    assert {"lovasz_hinge", "lovasz_softmax"} <= set(losses.available())
    y = blobs(2, 8, 8)
    z = torch.randn(2, 1, 8, 8)
    assert losses.get("lovasz_hinge", per_image=False)(z, y) == lovasz_hinge(z, y, per_image=False)
    t = torch.randint(0, 3, (2, 8, 8))
    zc = torch.randn(2, 3, 8, 8)
    assert losses.get("lovasz_softmax", classes="all")(zc, t) == lovasz_softmax(zc, t, classes="all")


@pytest.mark.parametrize("n", [2**16, 2**16 + 8, 3 * 2**17])
@pytest.mark.parametrize("density", [0.0, 1e-4, 0.01, 0.2, 1.0])
def test_sparse_position_search_equals_nonzero(n, density):
    # The block search only runs on large, sparse, contiguous inputs: exercise exactly that path,
    # including a kept element in the last block and an offset view that must fall back to nonzero().
    from iou_lib.losses.lovasz import _positions

    gen = torch.Generator().manual_seed(n + int(density * 1e4))
    keep = torch.rand(n, generator=gen) < density
    keep[-1] = density > 0
    assert torch.equal(_positions(keep), keep.nonzero().squeeze(1))
    view = keep[8:]
    assert torch.equal(_positions(view), view.nonzero().squeeze(1))


def distinct_logits(b, h, w, seed=0):
    """float32 logits (4k + 1) / 4096 with distinct k: no two hinge errors tie (exact in float32)."""
    k = torch.randperm(b * h * w, generator=torch.Generator().manual_seed(seed)) - b * h * w // 2
    return ((4 * k + 1).float() / 4096).reshape(b, 1, h, w)


@pytest.mark.parametrize("dense_share", [0.0, 2.0])  # always / never sort all errors
@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("ignore_index", [None, 255])
def test_float32_sort_all_and_compacting_paths_match_definition(
    monkeypatch, dense_share, per_image, ignore_index
):
    import iou_lib.losses.lovasz as lovasz_module

    monkeypatch.setattr(lovasz_module, "_DENSE_SHARE", dense_share)
    y = blobs(3, 32, 32)
    y[1] = 0  # an image without foreground
    if ignore_index is not None:
        y[0, :5] = ignore_index
        y[2, :, :3] = ignore_index
    z = distinct_logits(3, 32, 32).requires_grad_()
    z_ref = z.detach().double().requires_grad_()
    loss = lovasz_hinge(z, y, per_image=per_image, ignore_index=ignore_index)
    expected = ref_hinge(z_ref, y, per_image=per_image, ignore_index=ignore_index)
    torch.testing.assert_close(loss.double(), expected, rtol=1e-6, atol=1e-7)
    loss.backward()
    expected.backward()
    torch.testing.assert_close(z.grad.double(), z_ref.grad, rtol=1e-5, atol=1e-8)
    with torch.no_grad():  # the forward without the backward's weights
        assert lovasz_hinge(z, y, per_image=per_image, ignore_index=ignore_index) == loss
    t = torch.randint(0, 4, (2, 24, 24), generator=torch.Generator().manual_seed(1))
    zc = torch.randn(2, 4, 24, 24, generator=torch.Generator().manual_seed(2)).requires_grad_()
    zc_ref = zc.detach().double().requires_grad_()
    loss = lovasz_softmax(zc, t, per_image=per_image, classes="all")
    expected = ref_softmax(zc_ref, t, per_image=per_image, classes="all")
    torch.testing.assert_close(loss.double(), expected, rtol=1e-6, atol=1e-7)
    loss.backward()
    expected.backward()
    torch.testing.assert_close(zc.grad.double(), zc_ref.grad, rtol=1e-5, atol=1e-8)


def test_sort_all_path_with_a_wide_error_range_uses_int64_keys(monkeypatch):
    """Errors from 2**-24 to 1e30 leave no room for four segments in int32 keys: int64 keys, same loss."""
    key_dtypes = []
    sort = torch.sort

    def spy(keys, *args, **kwargs):
        key_dtypes.append(keys.dtype)
        return sort(keys, *args, **kwargs)

    y = blobs(4, 16, 16)
    z = distinct_logits(4, 16, 16, seed=3)
    z[:, 0, 0, 0] = torch.where(y[:, 0, 0] > 0, 1 - 2.0**-24, 1e30)  # errors 2**-24 (fg) or 1 + 1e30
    z[:, 0, 0, 1] = torch.where(y[:, 0, 1] > 0, -1e30, 1 - 2.0**-24)
    z[:, 0, 1] = 3 * (2 * y[:, 1] - 1)  # non-positive errors: keyed to the end of their image
    z.requires_grad_()
    z_ref = z.detach().double().requires_grad_()
    import iou_lib.losses.lovasz as lovasz_module

    def compacting_path(*args):
        raise AssertionError("the compacting path ran")

    monkeypatch.setattr(lovasz_module, "_extensions", compacting_path)
    monkeypatch.setattr(torch, "sort", spy)
    loss = lovasz_hinge(z, y)
    monkeypatch.setattr(torch, "sort", sort)
    assert key_dtypes == [torch.int64]
    expected = ref_hinge(z_ref, y)
    torch.testing.assert_close(loss.double(), expected, rtol=1e-6, atol=1e-7)
    loss.backward()
    expected.backward()
    torch.testing.assert_close(z.grad.double(), z_ref.grad, rtol=1e-5, atol=1e-8)
