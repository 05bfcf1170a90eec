"""What every explorer shares: controls wired to one ``update``, the figure shown as a PNG, timings.

An explorer computes a *state* from its control values with a pure function, draws it with another,
and shows the figure as a PNG in an ``ipywidgets.Image``. The image is widget state, so it renders in
JupyterLab, survives in the saved notebook (the book shows it) and needs no output capturing.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence

import ipywidgets as w
import torch
from IPython.display import display
from matplotlib.figure import Figure

#: Style of every labelled control: a description column wide enough for words, not code names.
CONTROL_STYLE = {"style": {"description_width": "150px"}, "layout": w.Layout(width="400px")}
#: Checkboxes: the description is the label beside the box, so no description column.
CHECKBOX_STYLE = {"indent": False, "layout": w.Layout(width="400px", margin="2px 0 2px 40px")}


def fg_frac_slider(value: float) -> w.FloatLogSlider:
    """The foreground-fraction slider the explorers share: 0.3 % to 50 %, on a log scale."""
    return w.FloatLogSlider(
        value=value,
        base=10,
        min=-2.5,
        max=-0.3,
        step=0.05,
        readout_format=".3f",
        description="foreground fraction",
        **CONTROL_STYLE,
    )


def png(fig: Figure, dpi: int = 80) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def set_applicable(checkbox: w.Checkbox, applicable: bool, remembered: dict[str, bool]) -> None:
    """Disable *and untick* a checkbox that does not apply; restore its last value when it applies again.

    ``remembered`` keeps the value the user chose while the box was enabled (keyed by its description).
    """
    key = checkbox.description
    if applicable:
        if checkbox.disabled:
            checkbox.disabled = False
            checkbox.value = remembered.get(key, checkbox.value)
    else:
        if not checkbox.disabled:
            remembered[key] = checkbox.value
        checkbox.value = False
        checkbox.disabled = True


class Explorer:
    """Base class: ``controls`` observed by ``update``; ``figure``, ``image`` and the redraw times kept
    (``redraw_s``, ``redraw_cpu_s``, also shown in a small label under the figure).

    Subclasses build their controls, call :meth:`_finish` with the layout above the image, and implement
    :meth:`compute` (the figure for the current control values). Setting a control's ``value`` from code
    redraws, as moving it does.
    """

    controls: Sequence[w.Widget]
    figure: Figure
    redraw_s: float  # seconds the last redraw took (compute + PNG), wall clock
    redraw_cpu_s: float  # CPU seconds of this process in the last redraw (less on a busy machine)

    def _finish(self, top: w.Widget, dpi: int = 80) -> None:
        self._dpi = dpi
        self._updating = False
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.timing = w.Label(layout=w.Layout(margin="0 0 0 10px"), style={"text_color": "#777"})
        self.widget = w.VBox([top, self.image, self.timing])
        for control in self.controls:
            control.observe(self._on_change, names="value")
        self.update()

    def _on_change(self, _change: dict) -> None:
        if not self._updating:  # one redraw per user action, even when update() adjusts other controls
            self.update()

    def update(self) -> None:
        """Recompute from the controls and show the new figure."""
        start, cpu_start = time.perf_counter(), time.process_time()
        self._updating = True
        threads = torch.get_num_threads()
        # An explorer's tensors are small: one thread avoids thread start-up and, on a busy machine,
        # contention that makes every small operation many times slower.
        torch.set_num_threads(1)
        try:
            self.figure = self.compute()
        finally:
            torch.set_num_threads(threads)
            self._updating = False
        self.image.value = png(self.figure, self._dpi)
        self.redraw_s = time.perf_counter() - start
        self.redraw_cpu_s = time.process_time() - cpu_start
        self.timing.value = f"redrawn in {self.redraw_s:.2f} s (CPU time {self.redraw_cpu_s:.2f} s)"

    def compute(self) -> Figure:  # pragma: no cover - abstract
        raise NotImplementedError

    def _ipython_display_(self) -> None:
        display(self.widget)
