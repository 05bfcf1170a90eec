"""iou_lib.widgets: each explorer's data against the losses it shows; controls change the figure.

The pure functions are checked against independent computations (finite differences of the loss, the
textbook Lovász extension, the library's own losses on real tensors); the explorers are driven by setting
control values, as a browser does.
"""

import base64
import importlib.util
import math
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch

from iou_lib import losses, relax
from iou_lib.reporting import stored_results, stored_study
from iou_lib.widgets import GradientExplorer, LovaszExplorer, ResultsBrowser, SoftLabelExplorer
from iou_lib.widgets.gradient import (
    bias_slice,
    descend,
    field_state,
    iou_curve,
    loss_kwargs,
    mass_text,
)
from iou_lib.widgets.lovasz import lovasz_row, lovasz_values, soft_jaccard_values
from iou_lib.widgets.results import browse, group_column, settings
from iou_lib.widgets.soft_iou import SoftIoUExplorer, soft_iou_point
from iou_lib.widgets.soft_labels import soft_label_losses, soft_label_state

REPO = Path(__file__).resolve().parents[1]


def _field_images(fig):
    """The red-blue panels of a gradient-field figure."""
    return [ax.images[0] for ax in fig.axes if ax.images and ax.images[0].get_cmap().name == "RdBu_r"]


# ------------------------------------------------------------------------------------- gradient fields
@pytest.fixture
def explorer():
    return GradientExplorer(size=32, n=2)


def test_two_losses_share_one_symmetric_scale_with_a_colorbar(explorer):
    s = explorer.state
    images = _field_images(explorer.figure)
    assert len(images) == 2 * s.target.shape[0]  # two losses x two images
    assert {im.get_clim() for im in images} == {(-s.scale, s.scale)}
    for norm, grad in zip(s.normalised, s.grads, strict=True):  # each in units of its own mean |dL/dz|
        g = grad.double().numpy()
        np.testing.assert_allclose(norm, g / np.abs(g).mean())
    assert any(ax.get_label() == "<colorbar>" for ax in explorer.figure.axes)
    texts = {t.get_text() for ax in explorer.figure.axes for t in ax.texts}
    assert {"raise logit", "lower logit"} <= texts


@pytest.mark.parametrize(
    ("control", "value"),
    [
        ("fg_frac", 0.3),
        ("n_objects", 1),
        ("confidence", 2.0),
        ("bias", -3.0),
        ("noise", 0.0),
        ("loss_b", "lovasz_hinge"),
        ("smooth", 10.0),
    ],
)
def test_changing_a_control_changes_the_figure(explorer, control, value):
    before_png, before = (
        bytes(explorer.image.value),
        [im.get_array().copy() for im in _field_images(explorer.figure)],
    )
    getattr(explorer, control).value = value
    after = [im.get_array() for im in _field_images(explorer.figure)]
    assert any(not np.allclose(a, b) for a, b in zip(after, before, strict=True))
    assert bytes(explorer.image.value) != before_png and bytes(explorer.image.value[:4]) == b"\x89PNG"


def test_knobs_reach_the_loss_they_belong_to():
    assert loss_kwargs("focal", gamma=0.0, focal_alpha=0.25) == {"gamma": 0.0, "alpha": 0.25}
    assert loss_kwargs("tversky", tversky_alpha=0.9, per_image=False)["alpha"] == 0.9
    assert loss_kwargs("bce", gamma=3.0, smooth=1.0) == {}
    with pytest.raises(ValueError, match="unknown knobs"):
        loss_kwargs("bce", gama=1.0)
    s = field_state(fg_frac=0.05, size=16, n=2, losses=("focal", "tversky"), gamma=0.0, tversky_beta=0.9)
    y, z = s.target, s.logits
    assert s.values[0] == pytest.approx(losses.get("focal", gamma=0.0, alpha=0.5)(z, y).item())
    ref = losses.get("tversky", alpha=0.3, beta=0.9, per_image=True, smooth=0.0, empty="fp_rate")(z, y)
    assert s.values[1] == pytest.approx(ref.item())


def test_inapplicable_controls_are_disabled_and_unticked(explorer):
    explorer.loss_a.value, explorer.loss_b.value = "bce", "focal"
    assert explorer.per_image.disabled and explorer.per_image.value is False
    assert explorer.smooth.disabled and explorer.empty.disabled and explorer.tversky_beta.disabled
    assert not explorer.gamma.disabled and not explorer.focal_alpha.disabled
    assert all(kw.get("per_image") is None for kw in explorer.state.kwargs)
    explorer.loss_b.value = "soft_dice"  # applies again: the box comes back ticked, as the user left it
    assert not explorer.per_image.disabled and explorer.per_image.value is True
    assert explorer.state.kwargs[1]["per_image"] is True and explorer.gamma.disabled


def test_readouts_are_finite_where_a_loss_pushes_no_foreground():
    # The Lovász hinge at a confident margin: no hinge error on the foreground, so bg/fg mass is inf.
    s = field_state(fg_frac=0.05, confidence=4.0, noise=0.0, size=16, n=2, losses=("lovasz_hinge", "bce"))
    assert math.isinf(s.masses[0]["bg_over_fg"]) or s.masses[0]["fg_mass"] == 0
    text = mass_text(s.masses[0])
    assert "inf" not in text and "nan" not in text
    ex = GradientExplorer(size=16, n=2)
    ex.loss_a.value, ex.confidence.value, ex.noise.value = "lovasz_hinge", 4.0, 0.0
    assert "inf" not in ex.figure.texts[0].get_text() and "nan" not in ex.figure.texts[0].get_text()


@pytest.mark.parametrize("loss", ["bce", "soft_iou", "lovasz_hinge"])
def test_bias_slice_matches_the_loss_and_its_derivative(loss):
    s = field_state(fg_frac=0.05, noise=0.5, size=16, n=2, losses=(loss,))
    logits, target = s.logits.double(), s.target.double()  # float64: finite differences need the digits
    grid = [-2.0, -0.5, 0.7, 3.0]
    df = bias_slice(logits, target, loss, s.kwargs[0], grid)
    fn = losses.get(loss, **s.kwargs[0])
    h = 1e-6
    for m, row in zip(grid, df.itertuples(), strict=True):
        z = logits + (m - logits.mean())
        assert row.loss == pytest.approx(fn(z, target).item(), rel=1e-9)
        slope = (fn(z + h, target) - fn(z - h, target)).item() / (2 * h)  # dL/db by finite differences
        assert row._3 * z.numel() == pytest.approx(slope, rel=1e-5, abs=1e-9)  # mean gradient * N
        assert row._4 == pytest.approx(iou_curve(torch.sigmoid(z), target, torch.tensor([0.5])).item())


def test_bias_slice_shows_the_lovasz_kink_at_zero_and_the_bce_trap():
    s = field_state(fg_frac=0.02, confidence=0.0, noise=0.0, size=32, n=2, losses=("lovasz_hinge", "bce"))
    lov = bias_slice(s.logits, s.target, "lovasz_hinge", s.kwargs[0]).set_index("mean logit")
    left, right = lov["mean gradient"].loc[-0.25], lov["mean gradient"].loc[0.25]
    assert left < 0 < right  # the slope jumps across z = 0: a kink, and the minimum sits there
    assert lov["loss"].idxmin() == 0.0
    bce = bias_slice(s.logits, s.target, "bce", {}).set_index("mean logit")
    best = bce["loss"].idxmin()  # BCE's best constant logit is log(f / (1 - f)): all background
    assert best == pytest.approx(math.log(0.02 / 0.98), abs=0.25) and bce.loc[best, "IoU at 0.5"] == 0


def test_iou_curve_against_a_direct_count():
    g = torch.Generator().manual_seed(0)
    p, y = torch.rand(500, generator=g), torch.rand(500, generator=g) < 0.1
    t = torch.tensor([0.0, 0.3, 0.5, 0.9, 1.0])
    direct = [((p > v) & y).sum() / ((p > v) | y).sum() for v in t]
    torch.testing.assert_close(iou_curve(p, y, t), torch.stack(direct).double())
    assert iou_curve(torch.zeros(4), torch.zeros(4), torch.tensor([0.5])).item() == 1.0  # both empty


@pytest.mark.parametrize(("loss", "block"), [("bce", 1), ("soft_iou", 4), ("lovasz_hinge", 8)])
def test_descent_lowers_the_loss(loss, block):
    s = field_state(fg_frac=0.02, bias=-2.0, size=32, n=2, losses=(loss,))
    seen = []
    trace = descend(
        s.target, loss, s.kwargs[0], steps=30, block=block, init_logits=s.logits, progress=seen.append
    )
    h = trace.history
    assert list(h["step"]) == list(range(31)) and seen == [10, 20, 30]
    assert h["loss"].iloc[-1] < h["loss"].iloc[0]
    assert (
        (h["IoU at 0.5"] <= h["IoU at best threshold"] + 1e-12) & h["IoU at best threshold"].between(0, 1)
    ).all()
    assert np.isfinite(h.drop(columns="step").to_numpy()).all()


def test_descent_bce_stalls_on_a_small_object_where_soft_iou_finds_it():
    s = field_state(fg_frac=0.012, n_objects=2, bias=-3.0, size=48, n=3, losses=("bce", "soft_iou"))
    bce, iou = (
        descend(s.target, name, kw, steps=100, block=8, init_logits=s.logits)
        for name, kw in zip(s.losses, s.kwargs, strict=True)
    )
    assert bce.history["IoU at 0.5"].iloc[-1] < 0.15 < 0.25 < iou.history["IoU at 0.5"].iloc[-1]


def test_descend_view_runs_and_reports_progress(explorer):
    explorer.steps.value = 20
    explorer.view.value = "descend"
    assert len(explorer.traces) == 2 and explorer.progress.value == explorer.progress.max == 40
    assert not explorer.run.disabled
    explorer.view.value = "fields"
    assert explorer.run.disabled and explorer.steps.disabled


def test_descent_rejects_a_block_that_does_not_divide_the_image():
    with pytest.raises(ValueError, match="block size"):
        descend(torch.zeros(1, 1, 10, 10), "bce", block=4)


# ----------------------------------------------------------------------------------------------- Lovász
def test_lovasz_values_match_the_textbook_extension_and_the_soft_jaccard():
    g = torch.Generator().manual_seed(1)
    y = torch.tensor([1, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0])
    for _ in range(20):
        m = torch.rand(12, generator=g, dtype=torch.float64)
        ext, incr, order = lovasz_values(m, y)
        textbook = relax.lovasz_extension(m, lambda wrong: relax.jaccard_set_loss(wrong, y))
        assert ext.item() == pytest.approx(textbook.item(), abs=1e-6)  # relax's set function is float32
        assert incr.sum().item() == pytest.approx(1.0) and (m[order].diff() <= 0).all()
        p = (y - m).abs()
        soft = 1 - relax.soft_intersection(p, y.double()) / relax.soft_union(p, y.double())
        assert soft_jaccard_values(m, y).item() == pytest.approx(soft.item())


def test_lovasz_row_at_hard_errors_is_the_jaccard_loss():
    y = torch.tensor([1, 1, 0, 0, 0])
    r = lovasz_row(torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0]), y)  # one fg missed, one false positive
    assert r.extension == pytest.approx(2 / 3) and r.hard_jaccard == pytest.approx(2 / 3)
    assert r.soft_jaccard == pytest.approx(2 / 3)  # on 0/1 errors all three agree
    with pytest.raises(ValueError, match="labels"):
        lovasz_row(torch.zeros(3), torch.tensor([0, 2, 1]))


def test_lovasz_explorer_sliders_presets_and_views():
    ex = LovaszExplorer(n=12, n_fg=4)
    before = bytes(ex.image.value)
    ex.sliders[0].value = 0.99
    assert ex.row.errors[0] == pytest.approx(0.99) and bytes(ex.image.value) != before
    ex.preset.value = "one missed object pixel"
    assert ex.row.extension == pytest.approx(1 / 4) and ex.row.hard_jaccard == pytest.approx(1 / 4)
    ex.random.click()
    assert 0 <= ex.row.extension <= 1
    ex.view.value = "two-pixel surfaces"
    assert not ex.pair.disabled and len([a for a in ex.figure.axes if a.images]) == 2


# ------------------------------------------------------------------------------------------ soft labels
def test_soft_label_losses_match_the_library_on_a_mask():
    f, eps, a, b = 0.25, 0.3, 0.7, 0.2
    hard = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    hard[..., :2, :] = 1  # 16 of 64 pixels: f = 0.25
    y = (1 - eps) * hard + eps / 2
    p = torch.where(hard > 0, a, b)
    expected_soft = 1 - relax.soft_intersection(p.flatten(), y.flatten()) / relax.soft_union(
        p.flatten(), y.flatten()
    )
    jml = losses.functional("jaccard_metric")(torch.logit(p), y)
    got = soft_label_losses(a, b, eps, f)
    assert float(got["soft Jaccard"]) == pytest.approx(expected_soft.item())
    assert float(got["Jaccard metric loss"]) == pytest.approx(jml.item())


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.4])
def test_soft_label_minimisers(eps):
    s = soft_label_state(eps=eps, fg_frac=0.3)
    assert (
        s.minimiser["Jaccard metric loss"] == pytest.approx(s.target)
        and s.at_target["Jaccard metric loss"] < 1e-12
    )
    assert s.minimiser["soft Jaccard"] == (1.0, 0.0)  # the soft Jaccard loss prefers hard predictions
    if eps > 0:
        assert s.at_target["soft Jaccard"] > s.minimum["soft Jaccard"] + 0.01


def test_soft_label_explorer_slider_moves_the_marked_target():
    ex = SoftLabelExplorer()
    before = bytes(ex.image.value)
    ex.eps.value = 0.4
    assert ex.state.target == pytest.approx((0.8, 0.2)) and bytes(ex.image.value) != before
    with pytest.raises(ValueError, match="eps"):
        soft_label_losses(0.5, 0.5, eps=1.5, fg_frac=0.2)


# -------------------------------------------------------------------------------------- results browser
@pytest.fixture(scope="module")
def synthetic():
    return stored_results("synthetic")[0]


def _new_format(table: pd.DataFrame) -> pd.DataFrame:
    """The stored table in the new format: ``step`` for ``epoch``, test ``ap``, run labels (``variant``)."""
    new = table.rename(columns={"epoch": "step"})
    new = new.assign(step=new["step"] * 50, study="demo", variant=new["loss"], profile="cpu")
    ap = new[(new["split"] == "test") & (new["metric"] == "miou_d")].assign(metric="ap")
    ap["value"] = (ap["value"] + 0.1).clip(upper=1)
    return pd.concat([new, ap], ignore_index=True)


def test_browse_summarises_seeds_with_intervals_in_bounds(synthetic):
    b = browse(synthetic, 0.02, ["bce", "soft_iou", "weighted_bce"], "miou_d", "bce")
    test = synthetic[
        (synthetic["split"] == "test") & (synthetic["metric"] == "miou_d") & (synthetic["fg_frac"] == 0.02)
    ]
    test = test[settings(test) == settings(test).value_counts().index[0]]
    for row in b.means.itertuples():
        values = test.loc[test["loss"] == row.loss, "value"]
        assert row.mean == pytest.approx(values.mean()) and row.n == len(values)
        assert 0 <= row.low <= row.mean <= row.high <= 1
    soft = b.differences[b.differences["loss"] == "soft_iou"].set_index("seed")["diff"]
    ref = test[test["loss"] == "bce"].set_index("seed")["value"]
    mine = test[test["loss"] == "soft_iou"].set_index("seed")["value"]
    pd.testing.assert_series_equal(
        soft, (mine - ref).rename("diff"), check_names=False, check_index_type=False
    )
    assert set(b.diff_intervals["loss"]) == {"soft_iou", "weighted_bce"}
    assert b.curve_metric == "miou_d" and b.step == "epoch" and not b.curves.empty


def test_browse_reads_the_new_format_and_names_what_is_missing(synthetic):
    b = browse(_new_format(synthetic), 0.1, ["bce", "soft_iou"], "ap", "bce")
    assert b.step == "step" and set(b.means["loss"]) == {"bce", "soft_iou"}
    with pytest.raises(ValueError, match="no runs with fg_frac"):
        browse(synthetic, 0.33, ["bce"], "miou_d")
    with pytest.raises(ValueError, match="test metrics present"):
        browse(synthetic, 0.1, ["bce"], "ap")


def test_results_browser_controls(synthetic):
    ex = ResultsBrowser(_new_format(synthetic), group=0.02)
    assert "ap" in [v for _, v in ex.metric.options] and ex.reference.value == "bce"
    before = bytes(ex.image.value)
    ex.losses.value = ("bce", "soft_iou")
    assert set(ex.data.means["loss"]) == {"bce", "soft_iou"} and bytes(ex.image.value) != before
    for view in ("paired differences", "learning curves"):
        before = bytes(ex.image.value)
        ex.view.value = view
        assert bytes(ex.image.value) != before
    ex.group.value = 0.5
    assert set(ex.losses.options) <= set(synthetic.loss) and ex.data.means["n"].min() >= 2


def test_results_browser_on_classes():
    table = stored_results("camvid")[0]
    ex = ResultsBrowser(table)
    assert ex.group.value != "" and ex.data.means["n"].min() >= 1
    ex.group.value = ""  # the multi-class runs: their reference falls back to cross-entropy
    assert ex.reference.value == "cross_entropy"


def test_results_browser_groups_real_data_by_class_though_runs_record_the_class_share():
    table, _ = stored_study("camvid_binary", "cpu")  # the converged grid's CamVid runs (stored in the repo)
    assert pd.to_numeric(table["fg_frac"]).notna().all()  # each run records its class's share of pixels
    ex = ResultsBrowser(table.assign(loss=table["variant"]), group="car")
    assert group_column(table) == "class_name" and ex.group.value == "car"
    assert {v for _, v in ex.group.options} == set(table["class_name"])
    assert group_column(table.assign(class_name="")) == "fg_frac"  # synthetic runs: no class named


def test_every_explorer_records_its_redraw_time():
    for ex in (GradientExplorer(size=16, n=2), LovaszExplorer(), SoftLabelExplorer()):
        assert 0 < ex.redraw_s < 60


# ------------------------------------------------------------------------------------------------ book
def _build_book_module():
    spec = importlib.util.spec_from_file_location("build_book", REPO / "tools" / "build_book.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_book"] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_book_shows_the_explorer_image_saved_in_the_widget_state():
    """An explorer's figure lives in an Image widget's buffer; the static book shows it as a PNG."""
    build_book = _build_book_module()
    ex = SoftLabelExplorer()
    png = base64.b64encode(bytes(ex.image.value)).decode()
    state = {
        "box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_s", "IPY_MODEL_i"]}},
        "s": {"model_name": "FloatSliderModel", "state": {"description": "smoothing", "value": 0.2}},
        "i": {
            "model_name": "ImageModel",
            "state": {"format": "png"},
            "buffers": [{"encoding": "base64", "path": ["value"], "data": png}],
        },
    }
    view = {"model_id": "box", "version_major": 2, "version_minor": 0}
    cell = nbformat.v4.new_code_cell(
        "SoftLabelExplorer()",
        outputs=[nbformat.v4.new_output("display_data", data={build_book.WIDGET_VIEW: view})],
    )
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["widgets"] = {build_book.WIDGET_STATE: {"state": state, "version_major": 2}}
    assert build_book.flatten_widgets(nb) == 1
    outputs = nb.cells[0].outputs
    assert "smoothing = 0.2" in outputs[0]["data"]["text/html"]
    assert outputs[1]["data"]["image/png"] == png


# ------------------------------------------------------------------------------------------ soft IoU (02)
@pytest.mark.parametrize(("p_fg", "p_bg"), [(0.5, 0.5), (0.9, 0.02), (0.0, 1.0)])
def test_soft_iou_point_against_autograd(p_fg, p_bg):
    n, k = 200, 7
    y = torch.zeros(n, dtype=torch.float64)
    y[:k] = 1
    p = torch.where(y > 0, p_fg, p_bg).requires_grad_(True)
    loss = 1 - relax.soft_intersection(p, y) / relax.soft_union(p, y)
    (grad,) = torch.autograd.grad(loss, p)
    s = soft_iou_point(p_fg, p_bg, n_pixels=n, n_fg=k)
    assert s.iou == pytest.approx(1 - loss.item())
    assert s.grad_fg == pytest.approx(grad[0].item()) and s.grad_bg == pytest.approx(grad[-1].item())
    assert s.push_fg == pytest.approx(grad[:k].abs().sum().item())
    assert s.push_bg == pytest.approx(grad[k:].abs().sum().item())


def test_soft_iou_explorer_prints_the_gradients_live():
    ex = SoftIoUExplorer()
    before = bytes(ex.image.value)
    ex.p_bg.value = 0.05
    assert bytes(ex.image.value) != before
    labels = [t.get_text() for t in ex.figure.axes[1].texts]  # bar labels of the push panel
    assert f"{-ex.point.grad_fg:+.3g}" in labels and f"{-ex.point.grad_bg:+.3g}" in labels
    with pytest.raises(ValueError, match="n_fg"):
        soft_iou_point(0.5, 0.5, n_pixels=10, n_fg=0)
