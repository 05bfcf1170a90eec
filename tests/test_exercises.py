"""iou_lib.exercises: each check accepts a correct answer and names the typical mistakes specifically."""

import pytest
import torch

from iou_lib import exercises as ex
from iou_lib.gradients import gradient_field
from iou_lib.losses import functional


def _rejects(check, fn, match, *args):
    with pytest.raises(ex.ExerciseError, match=match):
        check(fn, *args)


# --- soft IoU -------------------------------------------------------------------------------------


def _soft_iou(z, y, prob=torch.sigmoid, dims=None, union=lambda p, y: p + y - p * y, loss=True):
    p = prob(z)
    i, u = (p * y).sum(dims or tuple(range(z.dim()))), union(p, y).sum(dims or tuple(range(z.dim())))
    return (1 - i / u) if loss else i / u


def test_soft_iou_accepts_a_from_scratch_answer(capsys):
    assert ex.check_soft_iou(_soft_iou)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (lambda z, y: _soft_iou(z, y, dims=(1, 2, 3)).mean(), "Wrong aggregation"),
        (lambda z, y: _soft_iou(z, y, dims=(1, 2, 3)), "Wrong shape: you return one loss per image"),
        (lambda z, y: _soft_iou(z, y, prob=lambda t: t), "Missing sigmoid"),
        (lambda z, y: _soft_iou(z, y, loss=False), "Returned the IoU, not the loss"),
        (lambda z, y: _soft_iou(z, y, union=lambda p, y: p + y), "Union double-counts"),
        (lambda z, y: _soft_iou(z, y, prob=lambda t: (t > 0).double()), "Hard predictions"),
        (lambda z, y: _soft_iou(z, y).detach(), "No gradient"),
        (lambda z, y: _soft_iou(z, y).item(), "Wrong type"),
        (lambda z, y: None, "Returned None"),
        (lambda z, y: (_ for _ in ()).throw(NotImplementedError), "Not done yet"),
        (lambda z, y: z + y[:2], "Crashed: .* raised RuntimeError"),
        (lambda z, y: 0.5 * _soft_iou(z, y), "Wrong value"),
    ],
)
def test_soft_iou_names_the_mistake(fn, match):
    _rejects(ex.check_soft_iou, fn, match)


# --- closed-form gradient ---------------------------------------------------------------------------


def _grad(z, y, chain=True, swap=False, sign=1.0):
    p = torch.sigmoid(z)
    i, u = (p * y).sum(), (p + y - p * y).sum()
    fg, bg = (i / u**2, -1 / u) if swap else (-1 / u, i / u**2)
    g = sign * torch.where(y > 0, fg, bg)
    return g * p * (1 - p) if chain else g


def test_soft_iou_grad_accepts_the_closed_form():
    assert ex.check_soft_iou_grad(_grad)


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (lambda z, y: _grad(z, y, chain=False), "Missing sigmoid derivative"),
        (lambda z, y: _grad(z, y, sign=-1.0), "Sign error"),
        (lambda z, y: _grad(z, y, swap=True), "Foreground and background swapped"),
        (lambda z, y: gradient_field("soft_iou", z, y, per_image=True) * z.shape[0], "Per-image I and U"),
        (lambda z, y: _grad(z, y).flatten(), "Wrong shape"),
    ],
)
def test_soft_iou_grad_names_the_mistake(fn, match):
    _rejects(ex.check_soft_iou_grad, fn, match)


# --- gradient balance ---------------------------------------------------------------------------------


def test_gradient_balance():
    bce, iou = (lambda n, k: (n - k) / k), (lambda n, k: (n - k) / (n + k))
    assert ex.check_gradient_balance(bce, iou)
    _rejects(ex.check_gradient_balance, iou, "bce: That is soft IoU's ratio", iou)
    _rejects(ex.check_gradient_balance, lambda n, k: k / (n - k), "bce: Inverted", iou)
    _rejects(ex.check_gradient_balance, bce, "soft_iou: That is BCE's ratio", bce)
    _rejects(ex.check_gradient_balance, bce, "soft_iou: got .* expected", lambda n, k: 1.0)
    _rejects(ex.check_gradient_balance, bce, "Wrong type", lambda n, k: "one")


# --- Lovász gradient ------------------------------------------------------------------------------------


def _lovasz_grad(gt_sorted):
    gts = gt_sorted.sum()
    inter = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    j = 1 - inter / union
    j[1:] = j[1:] - j[:-1].clone()
    return j


def test_lovasz_grad_accepts_algorithm_1():
    assert ex.check_lovasz_grad(_lovasz_grad)


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (lambda gt: _lovasz_grad(gt).cumsum(0), "Missing first difference"),
        (lambda gt: -_lovasz_grad(gt), "Jaccard index instead of loss"),
        (lambda gt: _lovasz_grad(gt.flip(0)).flip(0), "Wrong order"),
        (lambda gt: _lovasz_grad(gt)[:-1], "Wrong shape"),
    ],
)
def test_lovasz_grad_names_the_mistake(fn, match):
    _rejects(ex.check_lovasz_grad, fn, match)


# --- Jaccard metric loss ------------------------------------------------------------------------------


def _jml(x, y):
    sx, sy, d = x.sum(), y.sum(), (x - y).abs().sum()
    return 1 - (sx + sy - d) / (sx + sy + d)


def test_jaccard_metric_accepts_the_l1_form_and_matches_the_library():
    assert ex.check_jaccard_metric(_jml)
    x, y = torch.rand(2, 1, 4, 4, dtype=torch.float64), torch.rand(2, 1, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(_jml(x, y), functional("jaccard_metric")(torch.logit(x), y))


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (lambda x, y: 1 - (x * y).sum() / (x + y - x * y).sum(), "That is the soft Jaccard loss"),
        (lambda x, y: 1 - _jml(x, y), "Returned the similarity"),
        (lambda x, y: _jml(x, y).reshape(1), "Wrong shape"),
    ],
)
def test_jaccard_metric_names_the_mistake(fn, match):
    _rejects(ex.check_jaccard_metric, fn, match)


# --- per-image IoU ---------------------------------------------------------------------------------------


def _per_image_iou(pred, target):
    a, b = pred.bool().flatten(1), target.bool().flatten(1)
    return (a & b).sum(1) / (a | b).sum(1)  # 0/0 -> nan


def test_per_image_iou_accepts_the_definition():
    assert ex.check_per_image_iou(_per_image_iou)


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (lambda p, t: _per_image_iou(p, t).nan_to_num(1.0), "Empty masks"),
        (lambda p, t: (p == t).flatten(1).double().mean(1), "pixel accuracy"),
        (lambda p, t: 2 * (p & t).flatten(1).sum(1) / (p.flatten(1).sum(1) + t.flatten(1).sum(1)), "Dice"),
        (lambda p, t: (p & t).flatten(1).sum(1) / (p + t).flatten(1).sum(1), "double-counts"),
        (lambda p, t: _per_image_iou(1 - p, 1 - t), "background IoU"),
        (lambda p, t: _per_image_iou(p, t).nanmean(), "You pooled the batch|Wrong shape"),
    ],
)
def test_per_image_iou_names_the_mistake(fn, match):
    _rejects(ex.check_per_image_iou, fn, match)


# --- Tversky ------------------------------------------------------------------------------------------


def _tversky(z, y, alpha, beta, prob=torch.sigmoid, fn_count=None, loss=True):
    p = prob(z)
    i, fp = (p * y).sum(), (p * (1 - y)).sum()
    fn = ((1 - p) * y).sum() if fn_count is None else fn_count(p, y)
    t = i / (i + alpha * fp + beta * fn)
    return 1 - t if loss else t


def test_tversky_accepts_the_definition_and_matches_the_library():
    assert ex.check_tversky(_tversky)
    z, y = torch.randn(2, 1, 5, 5, dtype=torch.float64), (torch.rand(2, 1, 5, 5) < 0.3).double()
    torch.testing.assert_close(_tversky(z, y, 1.0, 1.0), functional("soft_iou")(z, y))  # alpha = beta = 1
    torch.testing.assert_close(_tversky(z, y, 0.5, 0.5), functional("soft_dice")(z, y))  # 1/2, 1/2: Dice


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (lambda z, y, a, b: _tversky(z, y, b, a), "alpha and beta swapped"),
        (lambda z, y, a, b: _tversky(z, y, a, b, loss=False), "Tversky index, not the loss"),
        (lambda z, y, a, b: _tversky(z, y, a, b, prob=lambda t: t), "Missing sigmoid"),
        (
            lambda z, y, a, b: functional("tversky")(z, y, alpha=a, beta=b, per_image=True),
            "Wrong aggregation",
        ),
        (
            lambda z, y, a, b: _tversky(z, y, a, b, fn_count=lambda p, y: (1 - y).sum()),
            "Wrong false negatives",
        ),
        (lambda z, y, a, b: _tversky(z, y, a, b).reshape(1), "Wrong shape"),
        (lambda z, y, a, b: 0.9 * _tversky(z, y, a, b), "Wrong value"),
    ],
)
def test_tversky_names_the_mistake(fn, match):
    _rejects(ex.check_tversky, fn, match)


# --- push on a small vs a large object ------------------------------------------------------------------


def _push(n, k1, k2, per_image):
    return k1 * (n + k2) / (k2 * (n + k1)) if per_image else k1 / k2


def test_push_ratio_accepts_the_derivation():
    assert ex.check_push_ratio(_push)


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (lambda n, k1, k2, per: k1 / k2, "per image: That is the batch answer"),
        (lambda n, k1, k2, per: k1 * (n + k2) / (k2 * (n + k1)), "batch: That is the per-image answer"),
        (lambda n, k1, k2, per: 1.0 if per else k1 / k2, "You took U = |Y|"),
        (lambda n, k1, k2, per: 1 / _push(n, k1, k2, per), "Inverted"),
        (lambda n, k1, k2, per: "x", "Wrong type"),
        (lambda n, k1, k2, per: 2 * _push(n, k1, k2, per), "got .* expected"),
    ],
)
def test_push_ratio_names_the_mistake(fn, match):
    _rejects(ex.check_push_ratio, fn, match)


# --- paired interval ------------------------------------------------------------------------------------


def _paired(a, b, q=None, ddof=1, se=True):
    import math

    from iou_lib.stats import student_t_quantile

    d = a - b
    q = student_t_quantile(0.975, len(d) - 1) if q is None else q
    half = q * d.std(ddof=ddof) / (math.sqrt(len(d)) if se else 1)
    return d.mean(), d.mean() - half, d.mean() + half


def test_paired_interval_accepts_the_t_interval():
    assert ex.check_paired_interval(_paired)


def _unpaired(a, b):
    from iou_lib.stats import student_t_quantile

    n = len(a)
    half = student_t_quantile(0.975, n - 1) * (a.var(ddof=1) / n + b.var(ddof=1) / n) ** 0.5
    m = a.mean() - b.mean()
    return m, m - half, m + half


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (_unpaired, "Unpaired interval"),
        (lambda a, b: _paired(a, b, q=1.96), "Normal quantile 1.96"),
        (lambda a, b: _paired(a, b, ddof=0), "Population standard deviation"),
        (lambda a, b: _paired(a, b, se=False), "Standard deviation instead of standard error"),
        (lambda a, b: _paired(b, a), "Sign reversed"),
        (lambda a, b: (a - b).mean(), "Wrong type"),
        (lambda a, b: tuple(1.1 * v for v in _paired(a, b)), "Wrong value"),
    ],
)
def test_paired_interval_names_the_mistake(fn, match):
    _rejects(ex.check_paired_interval, fn, match)


# --- weighted BCE threshold -----------------------------------------------------------------------------


def test_weighted_bce_threshold_accepts_w_over_one_plus_w_and_names_mistakes():
    assert ex.check_weighted_bce_threshold(lambda w: w / (1 + w))
    _rejects(ex.check_weighted_bce_threshold, lambda w: 1 / (1 + w), "Inverted")
    _rejects(ex.check_weighted_bce_threshold, lambda w: 0.5, "plain BCE's threshold")
    _rejects(ex.check_weighted_bce_threshold, lambda w: 0.9, "got .* expected")
    _rejects(ex.check_weighted_bce_threshold, lambda w: [w], "Wrong type")


# --- threshold choice -----------------------------------------------------------------------------------


def _iou(p, y, t):
    pred = p > t
    return ((pred & y).sum() / (pred | y).sum()).item()


def _choose(vp, vy, tp, ty, grid, score=None, on_test=False):
    score = score or _iou
    p, y = (tp, ty) if on_test else (vp, vy)
    best = grid[int(torch.tensor([score(p, y, t) for t in grid.tolist()]).argmax())].item()
    return best, _iou(tp, ty, best)


def test_threshold_choice_accepts_validation_tuning():
    assert ex.check_threshold_choice(_choose)


def _per_image(p, y, t):
    return torch.tensor([_iou(p[i], y[i], t) for i in range(len(p))]).nanmean().item()


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (lambda *a: _choose(*a, on_test=True), "Tuned on the test set"),
        (
            lambda *a: _choose(*a, score=lambda p, y, t: ((p > t) == y).float().mean().item()),
            "pixel accuracy",
        ),
        (lambda *a: _choose(*a, score=_per_image), "Mean per-image IoU"),
        (lambda *a: (_choose(*a)[0], 0.0), "Right threshold .* wrong test IoU"),
        (lambda vp, vy, tp, ty, g: (0.5, _iou(tp, ty, 0.5)), "0.5 is the default"),
        (lambda *a: 0.3, "Wrong type"),
    ],
)
def test_threshold_choice_names_the_mistake(fn, match):
    _rejects(ex.check_threshold_choice, fn, match)


def test_new_checks_report_unfinished_and_unrecognised_answers():
    def unfinished(*args):
        raise NotImplementedError

    _rejects(ex.check_paired_interval, unfinished, "Not done yet")
    _rejects(ex.check_threshold_choice, unfinished, "Not done yet")
    _rejects(ex.check_tversky, unfinished, "Not done yet")
    _rejects(
        ex.check_threshold_choice, lambda vp, vy, tp, ty, g: (0.95, _iou(tp, ty, 0.95)), "Wrong threshold"
    )
