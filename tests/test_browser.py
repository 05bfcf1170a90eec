"""The workbook as a reader meets it: real JupyterLab, real browser, explorers that redraw their figures.

Starts ``jupyter lab`` once (temporary settings, nothing saved) and, for each notebook with an explorer,
opens it in headless Chromium, runs every cell from the Run menu, then moves one control of the explorer
(a slider with the keyboard, or a drop-down menu) and waits for the figure to change. A test passes only
if the widget front end renders real controls (a text repr such as ``IntSlider(...)`` means the
jupyterlab_widgets extension is not active) and the figure is redrawn. The time from the key press to the
new figure in the page is recorded (``artifacts/browser_timings.json``); screenshots go to
``artifacts/`` (git-ignored). The gradient explorer's "descend N steps" run is timed as well, and its
progress bar must move while it runs.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from lab_session import CHROMIUM_ARGS, chromium_path, jupyter_lab

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts"
TIMINGS = ARTIFACTS / "browser_timings.json"
START_TIMEOUT_MS = 180_000  # a kernel can take a minute or more to start on a busy 2-core machine
RUN_TIMEOUT_S = 240  # the fast profile runs each of these notebooks in one to two minutes on 2 busy cores
# The notebook on screen (a hidden panel is another tab).
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
# What a widget looks like when the front-end extension is missing: its Python repr as plain text.
WIDGET_REPR = re.compile(r"^\s*(\w*(Slider|Box|Dropdown|Checkbox)|Output|interactive)\(")

# JavaScript run in the page: the state of every code cell (prompt, error text) in one round trip.
CELL_STATE_JS = """() => Array.from(document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-CodeCell')).map(c => ({
    prompt: c.querySelector('.jp-InputArea-prompt')?.textContent ?? null,
    error: Array.from(c.querySelectorAll('.jp-OutputArea-output'))
        .map(o => o.textContent).filter(t => t.includes('Traceback (most recent call last)')).join('\\n'),
}))"""
# The bytes that define the figures shown inside the widget's cell: image sources, or canvas pixels.
FIGURE_STATE_JS = """(cell) => Array.from(
    cell.querySelectorAll('.jupyter-widgets img, .jupyter-widgets canvas'))
    .map(e => e.tagName === 'IMG' ? e.src : e.toDataURL()).join('|')"""


@dataclass(frozen=True)
class Case:
    """One explorer: its notebook, the label of the control the test moves, and how it moves it."""

    name: str
    notebook: str
    label: str  # regular expression matching the control's description
    kind: str  # "slider" (keyboard on the handle) or "dropdown" (choose an option)
    option: str = ""  # for a dropdown: the option's visible text


CASES = [
    Case("soft IoU (02)", "notebooks/02_soft_iou.ipynb", r"^p on background$", "slider"),
    Case("gradient fields (03)", "notebooks/03_gradient_fields.ipynb", r"^foreground fraction$", "slider"),
    Case("Lovász row (04)", "notebooks/04_lovasz.ipynb", r"^fg1$", "slider"),
    Case("soft labels (05)", "notebooks/05_soft_labels.ipynb", r"^label smoothing eps$", "slider"),
    Case("results browser (08)", "notebooks/08_camvid.ipynb", r"^class$", "dropdown", "car"),
]


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


def check_widgets_render(page) -> None:
    """Fail if a widget shows as its text repr (the widget front end is then not active) or broke."""
    outputs = page.locator(f"{PANEL} .jp-OutputArea-output").all_inner_texts()
    reprs = [t for t in outputs if WIDGET_REPR.match(t)]
    assert not reprs, f"widgets shown as text (jupyterlab_widgets front end not active): {reprs[0][:200]}"
    broken = [t for t in outputs if "Error displaying widget" in t]
    assert not broken, f"the widget front end failed to render: {broken[0][:200]}"


def explorer_control(page, case: Case):
    """The code cell holding the explorer and the control the test moves."""
    widget = ".widget-slider" if case.kind == "slider" else ".widget-dropdown"
    rendered = page.locator(f"{PANEL} .jp-CodeCell .jupyter-widgets {widget}").first
    rendered.wait_for(state="visible", timeout=15_000)
    # A locator passed as `has=` is matched inside each candidate, so it names no ancestor.
    label = page.locator(".widget-label", has_text=re.compile(case.label))
    cell = page.locator(f"{PANEL} .jp-CodeCell", has=page.locator(widget, has=label)).first
    assert cell.count(), f"no rendered control labelled {case.label!r}"
    return cell, cell.locator(widget, has=label).first


def figure_digest(cell) -> str:
    state = cell.evaluate(FIGURE_STATE_JS)
    return hashlib.sha256(state.encode()).hexdigest() if state else ""


def wait_for_change(cell, before: str, timeout_s: float = 60) -> float:
    """Seconds until the figure differs from ``before`` (polled every 20 ms)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if figure_digest(cell) != before:
            return time.monotonic() - start
        cell.page.wait_for_timeout(20)
    raise AssertionError(f"the figure did not change within {timeout_s} s of moving the control")


def wait_until_settled(cell, settle_s: float = 1.5, timeout_s: float = 60) -> str:
    """Wait until the figure stays the same for ``settle_s``; return its digest."""
    deadline = time.monotonic() + timeout_s
    last, since = figure_digest(cell), time.monotonic()
    while time.monotonic() < deadline:
        now = figure_digest(cell)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= settle_s:
            return now
        cell.page.wait_for_timeout(200)
    raise AssertionError(f"the figure kept changing for {timeout_s} s")


def kernel_times(cell) -> tuple[float, float]:
    """The explorer's own report under its figure: wall-clock and CPU seconds of the last redraw."""
    text = cell.locator(".widget-label", has_text="redrawn in").first.inner_text()
    match = re.search(r"redrawn in ([\d.]+) s \(CPU time ([\d.]+) s\)", text)
    assert match, f"no redraw time under the figure: {text!r}"
    return float(match[1]), float(match[2])


def move(control, case: Case, step: int) -> None:
    if case.kind == "slider":
        handle = control.locator(".noUi-handle").first
        handle.focus()
        handle.press("PageUp" if step % 2 == 0 else "PageDown")  # nouislider: one page = several steps
    else:
        select = control.locator("select")
        options = select.locator("option").all_inner_texts()
        wanted = case.option if step % 2 == 0 or case.option not in options else options[0]
        select.select_option(label=wanted)


def record(name: str, values: dict) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    data = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    data[name] = values
    TIMINGS.write_text(json.dumps(data, indent=2))


@pytest.fixture(scope="module")
def lab_url(tmp_path_factory):
    if chromium_path() is None:
        pytest.skip("no Chromium binary on this machine (tools/setup.sh test installs Debian's chromium)")
    pytest.importorskip("playwright.sync_api")
    with jupyter_lab(REPO, tmp_path_factory.mktemp("lab"), env={"IOU_PROFILE": "fast"}) as url:
        yield url


@pytest.fixture
def browser_page(lab_url):
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
    # ?reset: a fresh workspace, so the notebooks of earlier tests do not reopen beside this one
    page.goto(lab_url.replace("/lab?", f"/lab/tree/{rel_path}?reset&"))
    page.locator(f"{PANEL} .jp-Notebook .jp-CodeCell").first.wait_for(timeout=START_TIMEOUT_MS)
    # The kernel named in the notebook starts by itself; wait until the status bar says Idle.
    idle = page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\|\s*Idle")).first
    try:
        idle.wait_for(timeout=START_TIMEOUT_MS)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "browser_no_idle_kernel.png"))
        raise


def shut_down_kernel(page) -> None:
    """Free the kernel's memory and CPU before the next notebook (Kernel > Shut Down Kernel)."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Kernel$")).click()
    page.locator(".lm-Menu-item", has_text=re.compile(r"^Shut Down Kernel$")).first.click()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_explorer_redraws_in_jupyterlab(browser_page, lab_url, case):
    page = browser_page
    notebook = REPO / case.notebook
    assert notebook.exists(), f"{case.notebook} is missing"
    pair = [notebook, notebook.with_suffix(".py")]
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in pair]
    stem = notebook.stem[:2]

    open_notebook(page, lab_url, case.notebook)
    run_all_cells(page, RUN_TIMEOUT_S)
    check_widgets_render(page)
    cell, control = explorer_control(page, case)
    cell.scroll_into_view_if_needed()
    wait_until_settled(cell)
    before = figure_digest(cell)
    assert before, "the explorer shows no figure (no <img> or <canvas> inside its widgets)"
    cell.screenshot(path=str(ARTIFACTS / f"browser_{stem}_before.png"))

    times, kernel = [], []
    for step in range(4):  # alternate directions: the median of four redraws
        move(control, case, step)
        times.append(wait_for_change(cell, before))
        before = wait_until_settled(cell)
        kernel.append(kernel_times(cell))
        if step == 0:
            cell.screenshot(path=str(ARTIFACTS / f"browser_{stem}_after.png"))
    timings = {
        "redraw_s": [round(t, 3) for t in times],  # key press to new figure in the page
        "median_s": round(sorted(times)[len(times) // 2], 3),
        "kernel_wall_s": [k[0] for k in kernel],  # the explorer's own redraw (compute + PNG)
        "kernel_cpu_s": [k[1] for k in kernel],  # its CPU time: what the redraw costs on an idle machine
    }

    if stem == "03":  # the descent view: slower, but the progress bar must move while it runs
        button = cell.locator("button", has_text="descend N steps")
        page.locator(".widget-toggle-buttons button", has_text="descend").first.click()
        start = time.monotonic()
        bar = cell.locator(".widget-hprogress .progress-bar").first
        widths = set()
        while figure_digest(cell) == before and time.monotonic() - start < 120:
            widths.add(bar.evaluate("e => e.style.width || getComputedStyle(e).width"))
            page.wait_for_timeout(50)
        timings["descend_s"] = round(time.monotonic() - start, 3)
        assert figure_digest(cell) != before, "the descent figure did not appear"
        assert len(widths) >= 2, f"the progress bar did not move during the descent: {widths}"
        assert not button.is_disabled()
        wait_until_settled(cell)
        timings["descend_kernel_wall_cpu_s"] = kernel_times(cell)
        cell.screenshot(path=str(ARTIFACTS / f"browser_{stem}_descend.png"))
    page.screenshot(path=str(ARTIFACTS / f"browser_{stem}_page.png"))
    record(case.name, timings)
    shut_down_kernel(page)

    # Nothing was saved: the committed notebook and its .py twin are byte-for-byte what they were.
    after = [hashlib.sha256(p.read_bytes()).hexdigest() for p in pair]
    assert after == digests, f"{case.notebook} (or its .py) changed on disk while JupyterLab had it open"
