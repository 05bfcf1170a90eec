"""Interactive explorers (ipywidgets) built on pure functions, so their logic is testable without a browser.

Each explorer computes what it shows with pure functions of its control values, draws it with a figure
function, and shows the figure as a PNG in an ``ipywidgets.Image`` (widget state only: it renders in
JupyterLab, in saved notebooks and in the book). Setting a control's ``value`` from code redraws, as
moving it does, so tests drive explorers without a browser. One module per notebook:

* :mod:`~iou_lib.widgets.soft_iou`: the soft IoU and its two gradient values, -1/U and I/U² (notebook 02);
* :mod:`~iou_lib.widgets.gradient`: gradient fields of two losses, a bias slice, descent (notebook 03);
* :mod:`~iou_lib.widgets.lovasz`: the Lovász extension of a row of pixels (notebook 04);
* :mod:`~iou_lib.widgets.soft_labels`: where the soft losses are minimised on smoothed labels (05);
* :mod:`~iou_lib.widgets.results`: a browser over the stored experiment tables (06-08).

>>> ex = GradientExplorer(size=24, n=2)
>>> before = ex.state.target.sum().item()
>>> ex.fg_frac.value = 0.3
>>> ex.state.target.sum().item() > before
True
"""

from iou_lib.widgets.gradient import EXPLORER_LOSSES, GradientExplorer, field_state
from iou_lib.widgets.lovasz import LovaszExplorer
from iou_lib.widgets.results import ResultsBrowser
from iou_lib.widgets.soft_iou import SoftIoUExplorer
from iou_lib.widgets.soft_labels import SoftLabelExplorer

__all__ = [
    "EXPLORER_LOSSES",
    "GradientExplorer",
    "LovaszExplorer",
    "ResultsBrowser",
    "SoftIoUExplorer",
    "SoftLabelExplorer",
    "field_state",
]
