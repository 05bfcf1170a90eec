"""iou_lib.widgets: moving a control changes the explorer's state and the figure's data; redraws are fast."""

import time

import numpy as np
import pytest
import torch

from iou_lib.widgets import EXPLORER_LOSSES, GradientExplorer, explorer_state


@pytest.fixture
def explorer():
    return GradientExplorer(size=32, n=2)


def _field(ex):
    """The descent-direction images (the panels drawn with the red-blue map), stacked."""
    panels = [ax.images[0] for ax in ex.figure.axes if ax.images and ax.images[0].get_cmap().name == "RdBu_r"]
    assert len(panels) == ex.state.target.shape[0]
    return np.stack([im.get_array() for im in panels])


def test_first_control_is_the_foreground_slider_and_all_are_described(explorer):
    assert explorer.controls[0] is explorer.fg_frac
    assert explorer.widget.children[0].children[0].children[0] is explorer.fg_frac  # first in the layout
    assert all(c.description for c in explorer.controls)


@pytest.mark.parametrize(
    ("control", "value"),
    [("fg_frac", 0.3), ("n_objects", 1), ("confidence", 2.0), ("bias", -3.0), ("noise", 0.0),
     ("loss", "lovasz_hinge")],
)
def test_changing_a_control_changes_the_figure_data(explorer, control, value):
    before_field, before_target = _field(explorer), explorer.state.target.clone()
    before_png = explorer.image.value
    getattr(explorer, control).value = value
    assert not np.allclose(_field(explorer), before_field)
    assert bytes(explorer.image.value) != bytes(before_png) and bytes(explorer.image.value[:4]) == b"\x89PNG"
    if control in ("fg_frac", "n_objects"):
        assert not torch.equal(explorer.state.target, before_target)


def test_per_image_switch_and_its_availability(explorer):
    before = explorer.state.grad.clone()
    explorer.per_image.value = False
    assert explorer.state.per_image is False and not torch.allclose(explorer.state.grad, before)
    explorer.loss.value = "bce"
    assert explorer.state.per_image is None and explorer.per_image.disabled
    explorer.loss.value = "soft_dice"
    assert not explorer.per_image.disabled


def test_empty_image_gets_the_documented_fp_rate_push():
    s = explorer_state(fg_frac=0.1, confidence=0.0, noise=0.0, empty_image=True, size=16, n=2)
    assert s.target[-1].sum() == 0
    # iou_lib's default empty rule: an empty image's loss is mean(p), so every pixel is pushed down.
    assert (s.grad[-1] > 0).all()


def test_state_matches_the_pure_function(explorer):
    explorer.fg_frac.value = 0.02
    s = explorer_state(0.02, size=32, n=2)
    torch.testing.assert_close(explorer.state.grad, s.grad)
    assert explorer.state.mass == s.mass


def test_all_offered_losses_work_and_redraws_are_fast():
    ex = GradientExplorer(size=48, n=3)  # the notebook's size
    times = []
    for name in EXPLORER_LOSSES:
        t0 = time.perf_counter()
        ex.loss.value = name
        times.append(time.perf_counter() - t0)
        assert np.isfinite(ex.state.mass["fg_share"])
    assert np.median(times) < 1.0, times  # generous: the machine is shared
