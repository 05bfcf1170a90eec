"""The workbook as a reader meets it: real JupyterLab, real browser, a widget that redraws a figure.

Starts ``jupyter lab`` (temporary settings, nothing saved), opens ``notebooks/03_gradient_fields.ipynb``
in headless Chromium, runs every cell from the Run menu, and then moves the explorer's first slider
(the foreground fraction) with the keyboard. The test passes only if the widget front end renders real
controls (a text repr such as ``IntSlider(...)`` means the jupyterlab_widgets extension is not active)
and the figure under the slider is redrawn. Screenshots go to ``artifacts/`` (git-ignored).
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import pytest
from lab_session import CHROMIUM_ARGS, chromium_path, jupyter_lab

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "notebooks/03_gradient_fields.ipynb"
ARTIFACTS = REPO / "artifacts"
RUN_TIMEOUT_S = 75  # the fast profile runs the notebook in well under a minute on 2 cores
# What a widget looks like when the front-end extension is missing: its Python repr as plain text.
WIDGET_REPR = re.compile(r"^\s*(\w*(Slider|Box|Dropdown|Checkbox)|Output|interactive)\(")

# JavaScript run in the page: the state of every code cell (prompt, error text) in one round trip.
CELL_STATE_JS = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell')).map(c => ({
    prompt: c.querySelector('.jp-InputArea-prompt')?.textContent ?? null,
    error: Array.from(c.querySelectorAll('.jp-OutputArea-output'))
        .map(o => o.textContent).filter(t => t.includes('Traceback (most recent call last)')).join('\\n'),
}))"""
# The bytes that define the figures shown inside the widget's cell: image sources, or canvas pixels.
FIGURE_STATE_JS = """(cell) => Array.from(
    cell.querySelectorAll('.jupyter-widgets img, .jupyter-widgets canvas'))
    .map(e => e.tagName === 'IMG' ? e.src : e.toDataURL()).join('|')"""


def run_all_cells(page, timeout_s: float) -> None:
    """Run > Run All Cells, then wait until every code cell has an execution count."""
    start = time.monotonic()
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()
    while True:
        cells = page.evaluate(CELL_STATE_JS)
        errors = [c["error"] for c in cells if c["error"]]
        if errors:
            raise AssertionError(f"a cell raised in JupyterLab:\n{errors[0][-2000:]}")
        # A cell whose input is hidden (a solution) shows no prompt; Run All runs it in order all the same.
        prompts = [c["prompt"].strip() for c in cells if c["prompt"] is not None]
        if prompts and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts):
            return
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"cells still running or not run after {timeout_s} s; prompts: {prompts}")
        page.wait_for_timeout(500)


def explorer_slider(page):
    """The explorer's foreground-fraction slider (else the first slider) and its code cell.

    Fails if a widget shows as its text repr: the widget front end is then not active.
    """
    outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
    reprs = [t for t in outputs if WIDGET_REPR.match(t)]
    assert not reprs, f"widgets shown as text (jupyterlab_widgets front end not active): {reprs[0][:200]}"
    broken = [t for t in outputs if "Error displaying widget" in t]
    assert not broken, f"the widget front end failed to render: {broken[0][:200]}"
    any_slider = ".jupyter-widgets .widget-slider"
    page.locator(f".jp-CodeCell {any_slider}").first.wait_for(state="visible", timeout=15_000)
    # A locator passed as `has=` is matched inside each candidate, so it names no ancestor.
    label = page.locator(".widget-label", has_text=re.compile("foreground", re.I))
    for wanted in (label, None):  # the labelled slider if there is one, else the first slider
        cell = page.locator(".jp-CodeCell", has=page.locator(any_slider, has=wanted)).first
        if cell.count():
            return cell, cell.locator(".widget-slider", has=wanted).first
    raise AssertionError("no rendered slider found")


def figure_digest(cell) -> str:
    state = cell.evaluate(FIGURE_STATE_JS)
    return hashlib.sha256(state.encode()).hexdigest() if state else ""


def wait_for_new_figure(cell, before: str, timeout_s: float = 30, settle_s: float = 1.5) -> str:
    """Wait until the figure differs from ``before`` and then stays the same for ``settle_s``."""
    deadline = time.monotonic() + timeout_s
    last, since = before, time.monotonic()
    while time.monotonic() < deadline:
        now = figure_digest(cell)
        if now != last:
            last, since = now, time.monotonic()
        elif now and now != before and time.monotonic() - since >= settle_s:
            return now
        cell.page.wait_for_timeout(250)
    changed = "kept changing" if last != before else "did not change"
    raise AssertionError(f"the figure {changed} within {timeout_s} s of moving the slider")


@pytest.fixture
def browser_page(tmp_path):
    if chromium_path() is None:
        pytest.skip("no Chromium binary on this machine (tools/setup.sh test installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def open_notebook(page, lab_url: str, rel_path: str) -> None:
    page.goto(lab_url.replace("/lab?", f"/lab/tree/{rel_path}?"))
    page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=60_000)
    # The kernel named in the notebook starts by itself; wait until the status bar says Idle.
    page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\|\s*Idle")).first.wait_for(timeout=60_000)


def test_gradient_explorer_slider_redraws_figure(browser_page, tmp_path):
    page = browser_page
    notebook = REPO / NOTEBOOK
    assert notebook.exists(), f"{NOTEBOOK} is missing"
    pair = [notebook, notebook.with_suffix(".py")]
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in pair if p.exists()]
    ARTIFACTS.mkdir(exist_ok=True)

    with jupyter_lab(REPO, tmp_path / "lab", env={"IOU_PROFILE": "fast"}) as lab_url:
        open_notebook(page, lab_url, NOTEBOOK)
        run_all_cells(page, RUN_TIMEOUT_S)
        cell, slider = explorer_slider(page)
        cell.scroll_into_view_if_needed()
        before = figure_digest(cell)
        assert before, "the explorer shows no figure (no <img> or <canvas> inside its widgets)"
        readout = slider.locator(".widget-readout")
        value_before = readout.inner_text()
        cell.screenshot(path=str(ARTIFACTS / "browser_03_before.png"))

        handle = slider.locator(".noUi-handle").first
        handle.focus()
        for _ in range(3):
            handle.press("PageUp")  # nouislider: one page = several steps
        wait_for_new_figure(cell, before)
        value_after = readout.inner_text()
        cell.screenshot(path=str(ARTIFACTS / "browser_03_after.png"))
        page.screenshot(path=str(ARTIFACTS / "browser_03_page.png"))

    assert float(value_after) > float(value_before), f"readout went {value_before!r} -> {value_after!r}"
    # Nothing was saved: the committed notebook and its .py twin are byte-for-byte what they were.
    after = [hashlib.sha256(p.read_bytes()).hexdigest() for p in pair if p.exists()]
    assert after == digests, f"{NOTEBOOK} (or its .py) changed on disk while JupyterLab had it open"
