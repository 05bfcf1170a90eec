"""tools/build_book.py: the rendered book from the committed notebooks (stored outputs, no execution).

Checks the index maps every notebook, every page exists, every navigation link resolves, figures are
embedded and the equations are left for MathJax; and, on a tiny notebook, that a widget output becomes
a note plus the figure its Output widget held. The ``--offline`` book must fetch nothing from the network:
no page names a remote script, MathJax is bundled in the book, and headless Chromium with the network
cut off typesets the formulas (screenshot in ``artifacts/offline_book.png``).
"""

import importlib.util
import json
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



class Resources(HTMLParser):
    """URLs a page loads by itself (scripts, style sheets, images, frames); plain links are not loads."""

    def __init__(self) -> None:
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        url = a.get("href") if tag == "link" else a.get("src") if tag in ("script", "img", "iframe") else None
        if url:
            self.urls.append(url)


REMOTE = re.compile(r"^(https?:)?//", re.I)
DYNAMIC_IMPORT = re.compile(r"""import\(\s*["'](https?:)?//""")
# In the browser: how many formulas MathJax typeset, its error boxes, and TeX left raw in the prose.
TYPESET_JS = r"""() => ({
    typeset: document.querySelectorAll('.MathJax, .MathJax_Display').length,
    errors: Array.from(document.querySelectorAll('.MathJax_Error, merror')).map(e => e.textContent),
    raw: Array.from(document.querySelectorAll('.jp-MarkdownCell'))
        .flatMap(c => c.innerText.match(/\$[^$\n]*\\[A-Za-z]+[^$\n]*\$/g) || []),
})"""


@pytest.fixture(scope="module")
def offline_book(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("offline_book")
    subprocess.run(
        [sys.executable, str(TOOL), "--no-execute", "--offline", "--out", str(out)],
        check=True, cwd=REPO, capture_output=True,
    )
    return out


def test_offline_book_bundles_mathjax_and_loads_nothing_remote(offline_book):
    assert (offline_book / "mathjax" / "MathJax.js").is_file()
    assert (offline_book / "mathjax" / "config" / "local" / "book.js").is_file()
    pages = sorted(offline_book.glob("*.html"))
    assert len(pages) == len(NOTEBOOKS) + 1
    for page in pages:
        text = page.read_text(encoding="utf-8")
        loads = Resources()
        loads.feed(text)
        remote = [u for u in loads.urls if REMOTE.match(u)] + DYNAMIC_IMPORT.findall(text)
        assert remote == [], f"{page.name} loads {remote} from the network"
        assert f"mathjax/MathJax.js?config={build_book.MATHJAX_CONFIG}" in loads.urls, page.name


def test_offline_and_mathjax_url_exclude_each_other(tmp_path):
    with pytest.raises(ValueError, match="not both"):
        build_book.build_book(REPO / "notebooks", tmp_path, run=False, mathjax_url="x.js", offline=True)


@pytest.mark.browser
def test_offline_book_typesets_formulas_with_the_network_cut_off(offline_book):
    sys.path.insert(0, str(Path(__file__).parent))
    from lab_session import CHROMIUM_ARGS, chromium_path

    if chromium_path() is None:
        pytest.skip("no Chromium binary on this machine (tools/setup.sh test installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    fetched = []

    def only_local(route):
        fetched.append(route.request.url)
        return route.continue_() if route.request.url.startswith(("file:", "data:")) else route.abort()

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(offline=True)
            context.route("**/*", only_local)
            page = context.new_page()
            page.goto((offline_book / "02_soft_iou.html").as_uri())
            page.wait_for_function(
                "() => window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0"
                " && document.querySelectorAll('.MathJax').length > 0",
                timeout=60_000,
            )
            state = page.evaluate(TYPESET_JS)
            (REPO / "artifacts").mkdir(exist_ok=True)
            page.screenshot(path=str(REPO / "artifacts" / "offline_book.png"))
        finally:
            browser.close()
    remote = [u for u in fetched if not u.startswith(("file:", "data:"))]
    assert remote == [], f"the offline page asked the network for {remote}"
    assert any("/mathjax/jax/output/" in u for u in fetched), "MathJax's output processor was not loaded"
    assert state["typeset"] >= 20, json.dumps(state)
    assert state["errors"] == [] and state["raw"] == [], json.dumps(state)
