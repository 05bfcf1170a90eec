"""tools/build_book.py: the rendered book from the committed notebooks (stored outputs, no execution).

Checks the index maps every notebook, every page exists, every navigation link resolves, figures are
embedded and the equations are left for MathJax; and, on a tiny notebook, that a widget output becomes
a note plus the figure its Output widget held.
"""

import importlib.util
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "build_book.py"
_spec = importlib.util.spec_from_file_location("build_book", TOOL)
build_book = importlib.util.module_from_spec(_spec)
sys.modules["build_book"] = build_book  # its dataclass looks its module up by name
_spec.loader.exec_module(build_book)

NOTEBOOKS = sorted(p for p in (REPO / "notebooks").glob("*.ipynb") if build_book.NOTEBOOK_NAME.match(p.name))
MATH = re.compile(r"\$[^$\n]*\\[A-Za-z]+[^$\n]*\$")  # TeX between dollars, as MathJax reads it


class Links(HTMLParser):
    """Collects hrefs, separately for links inside <nav> elements, and <img> sources."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs, self.nav_hrefs, self.imgs, self._nav = [], [], [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self._nav += tag == "nav"
        if tag == "a" and a.get("href"):
            (self.nav_hrefs if self._nav else self.hrefs).append(a["href"])
        if tag == "img":
            self.imgs.append(a.get("src", ""))

    def handle_endtag(self, tag):
        self._nav -= tag == "nav"


def parse(path: Path) -> Links:
    links = Links()
    links.feed(path.read_text(encoding="utf-8"))
    return links


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    subprocess.run([sys.executable, str(TOOL), "--no-execute", "--out", str(out)], check=True, cwd=REPO)
    return out


def test_index_maps_every_notebook(book):
    assert NOTEBOOKS, "no notebooks to render"
    index = parse(book / "index.html")
    pages = [nb.stem + ".html" for nb in NOTEBOOKS]
    assert [h for h in index.hrefs if h.endswith(".html")] == pages  # in reading order
    for page in pages:
        assert (book / page).is_file(), page


def test_navigation_links_resolve(book):
    pages = [nb.stem + ".html" for nb in NOTEBOOKS]
    for i, page in enumerate(pages):
        nav = parse(book / page).nav_hrefs
        neighbours = pages[max(i - 1, 0):i] + pages[i + 1:i + 2]  # previous and next, where they exist
        assert set(nav) == {"index.html", *neighbours}, f"{page}: nav links {nav}"
        for href in nav:
            assert (book / href).is_file(), f"{page} links to missing {href}"


def test_figures_are_embedded_and_math_is_typeset_by_mathjax(book):
    pages = [book / (nb.stem + ".html") for nb in NOTEBOOKS]
    imgs = [src for p in pages for src in parse(p).imgs]
    assert any(src.startswith("data:image/png;base64,") for src in imgs), "no embedded figure in the book"
    assert not [s for s in imgs if not s.startswith("data:")], "an image refers to a file outside the book"
    texts = {p.name: p.read_text(encoding="utf-8") for p in pages}
    with_math = [name for name, text in texts.items() if MATH.search(text)]
    assert with_math, "no page holds TeX math"
    assert all("MathJax" in texts[name] for name in with_math)


def test_widget_output_becomes_note_and_figure(tmp_path):
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
    view = {"model_id": "box", "version_major": 2, "version_minor": 0}
    cell = nbformat.v4.new_code_cell("explorer()", outputs=[nbformat.v4.new_output(
        "display_data", data={build_book.WIDGET_VIEW: view, "text/plain": "VBox(...)"})])
    intro = nbformat.v4.new_markdown_cell("# 00 · Toy\n\nA *toy* explorer of $p_v$ in [code](x).")
    nb = nbformat.v4.new_notebook(cells=[intro, cell])
    state = {
        "box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_s", "IPY_MODEL_o"]}},
        "s": {"model_name": "FloatSliderModel", "state": {"description": "fg fraction", "value": 0.05}},
        "o": {"model_name": "OutputModel", "state": {"outputs": [
            {"output_type": "display_data", "data": {"image/png": png}, "metadata": {}}]}},
    }
    nb.metadata["widgets"] = {build_book.WIDGET_STATE: {"state": state, "version_major": 2}}
    nbformat.write(nb, tmp_path / "00_toy.ipynb")

    chapters = build_book.build_book(tmp_path, tmp_path / "out", run=False)
    assert [(c.title, c.summary) for c in chapters] == [("00 · Toy", "A toy explorer of $p_v$ in code.")]
    assert "<a href='00_toy.html'>Toy</a>" in (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    text = (tmp_path / "out" / "00_toy.html").read_text(encoding="utf-8")
    assert "Interactive explorer" in text and "fg fraction = 0.05" in text
    assert f"data:image/png;base64,{png}" in text
    assert "VBox(...)" not in text and "embed-amd" not in text
