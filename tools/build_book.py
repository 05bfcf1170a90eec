"""Render the workbook as a static HTML book: an index with the notebook map, one page per notebook.

Usage::

    python tools/build_book.py [--profile fast] [--out _book] [--no-execute] [--src notebooks]

Each ``notebooks/NN_topic.ipynb`` is executed in a fresh kernel under ``IOU_PROFILE=<profile>`` (the
committed files are not touched), or, with ``--no-execute``, rendered from its stored outputs. Pages use
nbconvert's JupyterLab template: equations are typeset by MathJax, figures are embedded as data URIs,
and every page links to the contents and to the previous and next notebook. Widgets need a live
kernel, so a widget output is replaced by a note and by the figures the widget showed when it ran.

MathJax comes from its CDN, or, with ``--offline``, from a copy placed in the book itself
(``OUT/mathjax/``, taken from the ``jupyter-server-mathjax`` package that the ``lab`` extra installs): the
book then needs no network and can be copied or zipped as one folder. ``--mathjax-url`` loads MathJax 2
from anywhere else.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import jinja2
import nbformat
from nbconvert import HTMLExporter
from nbconvert.preprocessors import CellExecutionError, ExecutePreprocessor

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_NAME = re.compile(r"^\d\d_[A-Za-z0-9_]+\.ipynb$")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
IMAGE_TYPES = ("image/png", "image/jpeg")  # Image-widget formats a static page can show
BOOK_TITLE = "IoU workbook: optimizing Intersection-over-Union directly"
MATHJAX_DIR = "mathjax"  # --offline: where the bundled MathJax goes inside the book
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe,local/book"  # the package's combined configuration + ours
# The package ships MathJax with the STIX-Web fonts only (MathJax 2 asks for its TeX fonts by default).
MATHJAX_LOCAL_CONFIG = """MathJax.Hub.Config({
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null},
  SVG: {font: "STIX-Web"}
});
MathJax.Ajax.loadComplete("[MathJax]/config/local/book.js");
"""

NAV_CSS = """
nav.book-nav { display: flex; justify-content: space-between; gap: 1em; max-width: 1100px;
  margin: 0.5em auto; padding: 0.5em 1em; border: 1px solid #ddd; border-radius: 4px;
  font-family: sans-serif; font-size: 0.95em; background: #f7f7f7; }
nav.book-nav a { text-decoration: none; }
nav.book-nav span { flex: 1; }
nav.book-nav .next { text-align: right; }
nav.book-nav .toc { text-align: center; }
.book-widget-note { border-left: 4px solid #4a90d9; background: #eef5fc; padding: 0.5em 1em;
  margin: 0.3em 0; font-family: sans-serif; font-size: 0.95em; }
"""

# Extends nbconvert's JupyterLab page: navigation above and below the notebook, no require.js (widget
# outputs are flattened below, nothing else here needs it) and no Mermaid loader (the workbook has no
# diagrams; MathJax is then the only script a page may fetch, from the CDN or, offline, from the book).
PAGE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block extra_css %}<style type="text/css">{{ resources.book_css }}</style>{% endblock extra_css %}
{%- block body_header -%}{{ super() }}{{ resources.book_nav }}{%- endblock body_header -%}
{% block body_footer %}{{ resources.book_nav }}{{ super() }}{% endblock body_footer %}
"""

INDEX_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; max-width: 900px; margin: 2em auto; padding: 0 1em; line-height: 1.5; }}
ol.book-map {{ list-style: none; padding: 0; }}
ol.book-map li {{ margin: 0.8em 0; }}
ol.book-map .num {{ font-family: monospace; color: #666; margin-right: 0.5em; }}
ol.book-map .summary {{ display: block; color: #444; margin-left: 2.2em; }}
footer {{ color: #666; font-size: 0.9em; margin-top: 2em; border-top: 1px solid #ddd; padding-top: 0.5em; }}
</style>
{mathjax}
</head>
<body>
<h1>{title}</h1>
<p>A teaching workbook on training segmentation networks for Intersection-over-Union: the soft IoU
loss of Rahman &amp; Wang (2016), soft Dice and Tversky, the Lov&aacute;sz hinge and Lov&aacute;sz-softmax,
focal and weighted cross-entropy, and the Jaccard metric loss. Read the notebooks in order; each page
links to the next. To run them yourself and use the interactive explorers: <code>bash tools/lab.sh</code>.</p>
<h2>Notebook map</h2>
<ol class="book-map">
{items}
</ol>
<footer>{provenance}</footer>
</body></html>
"""


@dataclass(frozen=True)
class Chapter:
    """One notebook of the book: where it comes from, its page, its title and one-line summary."""

    source: Path
    page: str
    title: str
    summary: str


def find_notebooks(src: Path) -> list[Path]:
    """The book's notebooks in reading order: ``NN_topic.ipynb`` directly under ``src``."""
    found = sorted(p for p in src.glob("*.ipynb") if NOTEBOOK_NAME.match(p.name))
    if not found:
        raise FileNotFoundError(f"no NN_topic.ipynb notebooks in {src}")
    return found


def _plain(markdown: str) -> str:
    """Markdown to one line of plain text: links keep their text, emphasis and code marks go, and
    ``$...$`` math is kept as it is for MathJax."""
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", markdown)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    parts = re.split(r"(\$[^$]+\$)", text)  # odd items are math
    text = "".join(p if i % 2 else re.sub(r"[*_`]", "", p) for i, p in enumerate(parts))
    return " ".join(text.split())


def title_and_summary(nb: nbformat.NotebookNode, fallback: str) -> tuple[str, str]:
    """The first ``# heading`` of the notebook, and the first prose paragraph after it."""
    title, summary = fallback, ""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for block in re.split(r"\n\s*\n", cell.source):
            block = block.strip()
            heading = re.match(r"^#\s+(.+)$", block.splitlines()[0]) if block else None
            if heading and title == fallback:
                title = _plain(heading.group(1))
                rest = "\n".join(block.splitlines()[1:]).strip()
                if rest and not summary:
                    summary = _plain(rest)
            elif block and not block.startswith(("#", "|", "$$", "<", "```")) and not summary:
                summary = _plain(block)
            if title != fallback and summary:
                return title, _shorten(summary)
    return title, _shorten(summary)


def _unnumbered(title: str) -> str:
    """``"02 · Deriving the loss"`` -> ``"Deriving the loss"`` (the index prints the number itself)."""
    return re.sub(r"^\d\d\s*[·.:\-–—]\s*", "", title)


def _shorten(text: str, limit: int = 220) -> str:
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "\u2026"


def execute(nb: nbformat.NotebookNode, cwd: Path, timeout: int) -> None:
    """Run the notebook in place (in memory) in a fresh kernel, keeping the widget state."""
    ExecutePreprocessor(timeout=timeout, kernel_name="python3", store_widget_state=True).preprocess(
        nb, {"metadata": {"path": str(cwd)}}
    )


def _widget_outputs(model_id: str, state: dict, seen: set[str] | None = None) -> tuple[list, list]:
    """Outputs held by the Output and Image widgets under ``model_id``, and ``(description, value)`` of
    controls."""
    seen = set() if seen is None else seen
    if model_id in seen or model_id not in state:
        return [], []
    seen.add(model_id)
    model = state[model_id]
    fields = model.get("state", {})
    outputs = list(fields.get("outputs", [])) if model.get("model_name") == "OutputModel" else []
    if model.get("model_name") == "ImageModel":  # an explorer's figure: PNG bytes in the widget's buffers
        mime = f"image/{fields.get('format', 'png')}"
        outputs += [
            nbformat.v4.new_output("display_data", data={mime: b["data"]})
            for b in model.get("buffers", [])
            if b.get("path") == ["value"] and b.get("encoding") == "base64" and mime in IMAGE_TYPES
        ]
    controls = []
    value = fields.get("value")
    if "index" in fields and "_options_labels" in fields:  # selection widgets sync an index, not a value
        labels, index = fields["_options_labels"], fields["index"]
        value = labels[index] if isinstance(index, int) and 0 <= index < len(labels) else None
    if fields.get("description") and value is not None and not str(value).startswith("IPY_MODEL_"):
        controls.append((fields["description"], value))
    for value in fields.values():
        refs = value if isinstance(value, list) else [value]
        for ref in refs:
            if isinstance(ref, str) and ref.startswith("IPY_MODEL_"):
                sub_outputs, sub_controls = _widget_outputs(ref[len("IPY_MODEL_"):], state, seen)
                outputs += sub_outputs
                controls += sub_controls
    return outputs, controls


def flatten_widgets(nb: nbformat.NotebookNode) -> int:
    """Replace each widget view by a note and the outputs its Output and Image widgets held; return how many.

    A static page cannot run the kernel side of a widget. With the widget state saved in the notebook
    (nbclient and JupyterLab's "Save Widget State" store it), the figures the explorer showed when the
    notebook ran are kept as ordinary outputs, with the control values they were drawn for.
    """
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        new_outputs = []
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                new_outputs.append(out)
                continue
            count += 1
            inner, controls = _widget_outputs(view.get("model_id", ""), state)
            settings = ", ".join(f"{html.escape(str(d))} = {html.escape(str(v))}" for d, v in controls)
            note = (
                "<div class='book-widget-note'><b>Interactive explorer.</b> Open this notebook in "
                "JupyterLab (<code>bash tools/lab.sh</code>) to move the controls."
                + (f" Shown here as it was run: {settings}." if settings else "")
                + "</div>"
            )
            new_outputs.append(nbformat.v4.new_output("display_data", data={"text/html": note}))
            new_outputs += [nbformat.from_dict(o) for o in inner]
        cell.outputs = new_outputs
    nb.metadata.pop("widgets", None)
    return count


def nav_html(chapters: list[Chapter], i: int) -> str:
    def link(ch: Chapter | None, cls: str, arrow: str) -> str:
        if ch is None:
            return f"<span class='{cls}'></span>"
        text = f"{arrow} {html.escape(ch.title)}" if cls == "prev" else f"{html.escape(ch.title)} {arrow}"
        return f"<span class='{cls}'><a href='{ch.page}' rel='{cls}'>{text}</a></span>"

    prev = chapters[i - 1] if i > 0 else None
    nxt = chapters[i + 1] if i + 1 < len(chapters) else None
    toc = "<span class='toc'><a href='index.html'>Contents</a></span>"
    return f"<nav class='book-nav'>{link(prev, 'prev', '&larr;')}{toc}{link(nxt, 'next', '&rarr;')}</nav>"


def make_exporter(mathjax_url: str | None = None) -> HTMLExporter:
    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[jinja2.DictLoader({"book_page.html.j2": PAGE_TEMPLATE})],
        template_file="book_page.html.j2",
        embed_images=True,
    )
    if mathjax_url:
        exporter.mathjax_url = mathjax_url
    return exporter


def bundle_mathjax(out: Path) -> str:
    """Copy MathJax 2 from the ``jupyter-server-mathjax`` package into ``out/mathjax``; return the
    relative URL the pages load it from (the same folder as the pages, so the book works offline)."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        raise SystemExit(
            "build_book: --offline needs the jupyter-server-mathjax package (part of the lab extra): "
            ".venv/bin/python -m pip install jupyter-server-mathjax"
        ) from None
    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    shutil.copytree(static, out / MATHJAX_DIR, dirs_exist_ok=True)
    local = out / MATHJAX_DIR / "config" / "local"
    local.mkdir(exist_ok=True)
    (local / "book.js").write_text(MATHJAX_LOCAL_CONFIG, encoding="utf-8")
    return f"{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}"


def mathjax_head(exporter: HTMLExporter) -> str:
    """nbconvert's own MathJax loader and configuration, for pages it does not render (the index)."""
    macro = "{% from 'mathjax.html.j2' import mathjax %}{{ mathjax(url) }}"
    return exporter.environment.from_string(macro).render(url=exporter.mathjax_url)


def build_book(src: Path, out: Path, profile: str | None = "fast", run: bool = True, timeout: int = 900,
               mathjax_url: str | None = None, offline: bool = False) -> list[Chapter]:
    """Build the book from the notebooks in ``src`` into ``out``; return the chapters in order.

    ``offline=True`` bundles MathJax into ``out`` (see :func:`bundle_mathjax`) instead of ``mathjax_url``.
    """
    if offline and mathjax_url:
        raise ValueError("give either offline=True or mathjax_url, not both")
    paths = find_notebooks(src)
    if run and profile:
        os.environ["IOU_PROFILE"] = profile  # the kernels inherit the environment
    notebooks, chapters = [], []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if run:
            print(f"executing {path.name} (IOU_PROFILE={os.environ.get('IOU_PROFILE', 'auto')})", flush=True)
            try:
                execute(nb, path.parent, timeout)
            except CellExecutionError as err:
                raise SystemExit(f"{path.name} failed while executing:\n{err}") from err
        flatten_widgets(nb)
        title, summary = title_and_summary(nb, path.stem)
        nb.metadata["title"] = title
        notebooks.append(nb)
        chapters.append(Chapter(path, path.stem + ".html", title, summary))

    out.mkdir(parents=True, exist_ok=True)
    exporter = make_exporter(bundle_mathjax(out) if offline else mathjax_url)
    for i, (nb, ch) in enumerate(zip(notebooks, chapters, strict=True)):
        resources = {
            "metadata": {"name": ch.title, "path": str(ch.source.parent)},
            "book_nav": nav_html(chapters, i),
            "book_css": NAV_CSS,
        }
        body, _ = exporter.from_notebook_node(nb, resources=resources)
        (out / ch.page).write_text(body, encoding="utf-8")

    items = "\n".join(
        f"<li><span class='num'>{html.escape(ch.source.name[:2])}</span>"
        f"<a href='{ch.page}'>{html.escape(_unnumbered(ch.title))}</a>"
        f"<span class='summary'>{html.escape(ch.summary)}</span></li>"
        for ch in chapters
    )
    profile_used = html.escape(os.environ.get("IOU_PROFILE", "auto"))
    provenance = (
        f"Executed for this build in the <code>{profile_used}</code> profile."
        if run else "Rendered from the outputs stored in the notebooks."
    )
    index = INDEX_TEMPLATE.format(
        title=html.escape(BOOK_TITLE), items=items, provenance=provenance, mathjax=mathjax_head(exporter)
    )
    (out / "index.html").write_text(index, encoding="utf-8")
    return chapters


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=os.environ.get("IOU_PROFILE", "fast"),
                        choices=["fast", "cpu", "gpu"],
                        help="IOU_PROFILE for executing the notebooks (default: $IOU_PROFILE, else fast)")
    parser.add_argument("--out", type=Path, default=REPO / "_book", help="output folder (default: _book)")
    parser.add_argument("--src", type=Path, default=REPO / "notebooks", help="notebook folder")
    parser.add_argument("--no-execute", dest="run", action="store_false",
                        help="render the outputs stored in the notebooks instead of running them")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    math = parser.add_mutually_exclusive_group()
    math.add_argument("--offline", action="store_true",
                      help="bundle MathJax into OUT/mathjax so formulas render without the internet")
    math.add_argument("--mathjax-url", default=None, help="MathJax 2 script to load instead of the CDN copy")
    args = parser.parse_args(argv)
    chapters = build_book(args.src, args.out, args.profile, args.run, args.timeout, args.mathjax_url,
                          args.offline)
    print(f"wrote {len(chapters)} pages and index.html to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
