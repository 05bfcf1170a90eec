"""iou_lib.viz: every function returns a Figure drawing the data it was given; bad shapes are refused."""

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from iou_lib import viz
from iou_lib.data.synthetic import blob_masks
from iou_lib.gradients import gradient_field, mass_table, synthetic_logits


@pytest.fixture(scope="module")
def case():
    y = blob_masks(2, 24, 0.1, seed=0).double()
    z = synthetic_logits(y, 1.0, 1.0, seed=0)
    return z, y


def test_mask_grid(case):
    z, y = case
    fig = viz.mask_grid(y, titles=["a", "b"])
    assert isinstance(fig, Figure) and [ax.get_title() for ax in fig.axes] == ["a", "b"]
    np.testing.assert_array_equal(fig.axes[1].images[0].get_array(), y[1, 0].numpy())
    fig = viz.mask_grid(y, probs=torch.sigmoid(z), ncols=1)
    assert len(fig.axes) == 2 and fig.axes[0].collections  # outline drawn over the probabilities
    with pytest.raises(ValueError, match="probs must match"):
        viz.mask_grid(y, probs=z[:1])
    with pytest.raises(ValueError, match="titles must have one entry per mask"):
        viz.mask_grid(y, titles=["a"])
    with pytest.raises(ValueError, match="masks must have shape"):
        viz.mask_grid(torch.zeros(2, 3, 4, 4))


def test_error_map_codes_and_iou_titles():
    t = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    fig = viz.error_map(p, t)
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), [[3, 2], [1, 0]])  # TP FN / FP TN
    assert fig.axes[0].get_title() == "IoU 0.33"
    assert "undefined" in viz.error_map(torch.zeros(2, 2), torch.zeros(2, 2)).axes[0].get_title()


def test_gradient_fields_draw_the_descent_direction(case):
    z, y = case
    grads = {name: gradient_field(name, z, y) for name in ("bce", "soft_iou")}
    fig = viz.gradient_fields(grads, y, probs=torch.sigmoid(z), image_labels=["x", "y"])
    assert isinstance(fig, Figure) and len(fig.axes) == 2 * 3 + 1  # panels and one colorbar
    g = grads["soft_iou"].numpy()
    np.testing.assert_allclose(fig.axes[2].images[0].get_array(), -g[0, 0] / np.abs(g).mean())
    assert fig.axes[1].get_title().startswith("bce\nfg share")
    # one symmetric colour scale for every field panel, shown by the colorbar
    fields = [ax.images[0] for ax in fig.axes[:6] if ax.images and ax.images[0].get_cmap().name == "RdBu_r"]
    _, limit = viz.normalise_fields(grads)
    assert len(fields) == 4 and {im.get_clim() for im in fields} == {(-limit, limit)}
    assert fig.axes[-1].get_label() == "<colorbar>"
    fixed = viz.gradient_fields(grads, y, scale=2.5)
    assert fixed.axes[0].images[0].get_clim() == (-2.5, 2.5)
    with pytest.raises(ValueError, match="must match target's shape"):
        viz.gradient_fields({"bce": grads["bce"][:1]}, y)
    with pytest.raises(ValueError, match="at least one loss"):
        viz.gradient_fields({}, y)


def test_normalise_fields_keeps_a_field_without_gradient_at_zero():
    fields, limit = viz.normalise_fields({"a": torch.tensor([2.0, -2.0]), "none": torch.zeros(2)})
    assert fields["a"].tolist() == [1.0, -1.0] and fields["none"].tolist() == [0.0, 0.0] and limit > 0


def test_mass_plot():
    df = mass_table(["bce", "soft_iou"], [0.02, 0.2], size=16, n=1)
    fig = viz.mass_plot(df)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log" and len(fig.legends[0].get_texts()) == 2
    assert ax.get_ylabel() == "background / foreground gradient mass"  # words, not a column name
    # coinciding lines stay visible: each loss is dodged sideways, with hollow markers and its own dashes
    lines = [line for line in ax.lines if len(line.get_xdata()) and line.get_marker() not in ("None", None)]
    assert len(lines) == 2 and not np.allclose(lines[0].get_xdata(), lines[1].get_xdata())
    assert {line.get_markerfacecolor() for line in lines} == {"none"}
    assert any("shifted sideways" in t.get_text() for t in fig.texts)
    df2 = pd.concat([df.assign(state="a"), df.assign(state="b")])
    assert len(viz.mass_plot(df2, y="fg_share", col="state").axes) == 2
    with pytest.raises(ValueError, match="lacks the columns"):
        viz.mass_plot(pd.DataFrame({"a": [1]}))


def test_dice_jaccard_plot_curve():
    ax = viz.dice_jaccard_plot().axes[0]
    j, d = ax.lines[0].get_data()
    np.testing.assert_allclose(d, 2 * j / (1 + j))


def test_lovasz_steps_ends_at_the_extension_value():
    m = torch.tensor([0.9, 0.1, 0.5, 0.7])
    y = torch.tensor([1, 0, 0, 1])
    g = torch.tensor([0.5, 0.5 / 3, 1 / 3, 0.0])  # for this order: prefixes lose IoU 1/2, 2/3, 1, 1
    fig = viz.lovasz_steps(m, y, g)
    assert len(fig.axes) == 4
    _, cumulative = fig.axes[3].lines[0].get_data()
    sorted_m = torch.sort(m, descending=True).values
    assert cumulative[-1] == pytest.approx(float((sorted_m * g).sum()))
    with pytest.raises(ValueError, match="same length"):
        viz.lovasz_steps(m, y[:2], g)


def test_pixel_gradients_divides_by_the_sigmoid_derivative(case):
    z, y = case
    p = torch.sigmoid(z)
    g = gradient_field("soft_iou", z, y)
    fig = viz.pixel_gradients({"soft_iou": g, "bce": gradient_field("bce", z, y)}, p, y)
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == "soft_iou"
    values = np.concatenate([c.get_offsets()[:, 1] for c in fig.axes[0].collections])
    np.testing.assert_allclose(np.sort(values), np.sort((g / (p * (1 - p))).flatten().numpy()))
    with pytest.raises(ValueError, match="one entry per pixel"):
        viz.pixel_gradients({"x": g[:1]}, p, y)


def test_image_overlay():
    images = torch.rand(2, 3, 6, 8)
    masks = torch.zeros(2, 6, 8)
    masks[:, 2:4, 2:4] = 1
    fig = viz.image_overlay(images, masks, titles=["a", "b"])
    assert len(fig.axes) == 2 and fig.axes[1].get_title() == "b"
    overlay = fig.axes[0].images[1].get_array()
    assert overlay.mask.sum() == 6 * 8 - 4  # only the mask's pixels are drawn over the image
    viz.image_overlay((images * 255).to(torch.uint8), masks)
    with pytest.raises(ValueError, match=r"images must have shape \(B, 3, H, W\)"):
        viz.image_overlay(images[:, :1], masks)
    with pytest.raises(ValueError, match="masks must have shape"):
        viz.image_overlay(images, masks[:1])


def test_extension_surface_draws_the_function():
    fig = viz.extension_surface(lambda m: m.max(), steps=11)
    values = fig.axes[0].images[0].get_array()
    assert values.shape == (11, 11) and values[0, 0] == 0 and values[-1, 3] == 1 and values[5, 2] == 0.5
    assert [t.get_text() for t in fig.axes[0].texts] == ["0.00", "1.00", "1.00", "1.00"]


def test_line_plot():
    df = pd.DataFrame({"x": [0, 1, 0, 1], "y": [1, 2, 3, 4], "h": list("aabb"), "c": list("ppqq")})
    fig = viz.line_plot(df, "x", "y", "h", col="c", marks={"half": 0.5})
    assert len(fig.axes) == 2 and fig.axes[0].get_lines()[0].get_ydata().tolist() == [1, 2]
    assert any(t.get_text() == "half" for t in fig.axes[1].texts)
    with pytest.raises(ValueError, match="lacks the columns"):
        viz.line_plot(df, "x", "nope", "h")


def test_probability_histograms_split_foreground_and_background(case):
    _, y = case
    p = torch.where(y > 0, 0.95, 0.02)
    fig = viz.probability_histograms({"model": p}, y, marks={"target": 0.9})
    ax = fig.axes[0]
    counts = [sum(patch.get_height() for patch in c) for c in ax.containers]
    assert counts == [y.sum().item(), (1 - y).sum().item()] and ax.get_xlim() == (0, 1)
    with pytest.raises(ValueError, match="must match target's shape"):
        viz.probability_histograms({"model": p[:1]}, y)
