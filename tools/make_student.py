"""Write your own working copies of the notebooks: exercises kept, worked solutions removed, outputs cleared.

Usage::

    python tools/make_student.py                   # create the copies you do not have yet
    python tools/make_student.py --only 03         # just notebook 03 (03_gradient_fields.ipynb)
    python tools/make_student.py --only 03 --force # reset notebook 03 to a fresh copy (your edits are lost)

The copies go to ``notebooks/student/``, a git-ignored folder: work there, and ``git pull`` never
conflicts with your answers. A copy you have edited is never overwritten unless you pass ``--force``:
the tool records the hash of every file it writes in ``student/.manifest.json`` and treats a copy whose
hash differs as yours. A copy you have not touched is refreshed when its notebook changes.

A cell tagged ``solution`` is dropped; every other cell (the ``exercise`` cells with their self-check
calls included) stays, with outputs and execution counts cleared. Each copy opens with a note saying
where it comes from, and is unpaired from jupytext so that saving it in JupyterLab does not create a
``.py`` twin. A copy depends only on the cells' types, sources, ``tags`` and ``jupyter`` metadata and on
the kernelspec, so re-executing a notebook does not change its copy.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_NAME = re.compile(r"^\d\d_[A-Za-z0-9_]+\.ipynb$")
SOLUTION, EXERCISE = "solution", "exercise"
KEPT_METADATA = ("tags", "jupyter")  # cell metadata the copies keep (jupytext.toml keeps the same)
MANIFEST = ".manifest.json"  # copy name -> sha256 of the text this tool wrote
NOTE_ID = "student-copy-note"
NOTE = (
    "> **Student copy** of `notebooks/{name}`: the worked solutions are removed and the outputs cleared. "
    "Work through the exercise cells, run their self-checks, and compare with the full notebook when "
    "you are done. Your edits here are kept: `tools/make_student.py` overwrites this copy only with "
    "`--force` (`python tools/make_student.py --only {number} --force` resets it)."
)


def tags(cell: nbformat.NotebookNode) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def student_copy(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The student version of a notebook (the input is not modified).

    Raises ``ValueError`` when a cell is tagged both ``exercise`` and ``solution``: it could be neither
    kept nor dropped safely.
    """
    both = [i for i, c in enumerate(nb.cells) if {SOLUTION, EXERCISE} <= tags(c)]
    if both:
        raise ValueError(f"{name}: cells {both} are tagged both 'exercise' and 'solution'; use one tag")
    make = {
        "code": nbformat.v4.new_code_cell,
        "markdown": nbformat.v4.new_markdown_cell,
        "raw": nbformat.v4.new_raw_cell,
    }
    cells = [make["markdown"](NOTE.format(name=name, number=name[:2]), id=NOTE_ID)]
    for cell in (c for c in nb.cells if SOLUTION not in tags(c)):
        kept = {k: copy.deepcopy(v) for k, v in cell.get("metadata", {}).items() if k in KEPT_METADATA}
        cells.append(make[cell.cell_type](cell.source, metadata=kept, id=f"cell-{len(cells):03d}"))
        if "attachments" in cell:  # images pasted into markdown
            cells[-1].attachments = copy.deepcopy(cell.attachments)
    out = nbformat.v4.new_notebook(cells=cells)
    if "kernelspec" in nb.metadata:
        out.metadata["kernelspec"] = copy.deepcopy(nb.metadata["kernelspec"])
    out.metadata["jupytext"] = {"formats": "ipynb"}  # unpaired: saving it creates no .py
    return out


def render(nb: nbformat.NotebookNode) -> str:
    nbformat.validate(nb)
    return nbformat.writes(nb, version=4) + "\n"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sources(src: Path, only: list[str] | None = None) -> list[Path]:
    """The notebooks to copy, in order; ``only`` keeps those whose name starts with one of its items
    (``"03"`` or ``"03_gradient_fields"``). An item that matches nothing is an error."""
    found = sorted(p for p in src.glob("*.ipynb") if NOTEBOOK_NAME.match(p.name))
    if not only:
        return found
    unknown = [o for o in only if not any(p.name.startswith(o) for p in found)]
    if unknown:
        names = ", ".join(p.stem for p in found)
        raise ValueError(f"--only {' '.join(unknown)}: no such notebook in {src} (have: {names})")
    return [p for p in found if any(p.name.startswith(o) for o in only)]


@dataclass
class Report:
    """What :func:`update` did, by copy name."""

    written: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)
    kept_edited: list[str] = field(default_factory=list)


def update(src: Path, dest: Path, only: list[str] | None = None, force: bool = False) -> Report:
    """Create missing copies, refresh the ones nobody edited, keep the edited ones (unless ``force``)."""
    dest.mkdir(parents=True, exist_ok=True)
    manifest_path = dest / MANIFEST
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    report = Report()
    for path in sources(src, only):
        text = render(student_copy(nbformat.read(path, as_version=4), path.name))
        target = dest / path.name
        if target.is_file():
            have = target.read_text(encoding="utf-8")
            if have == text:
                manifest[path.name] = digest(text)
                report.current.append(path.name)
                continue
            if digest(have) != manifest.get(path.name) and not force:
                report.kept_edited.append(path.name)
                continue
        target.write_text(text, encoding="utf-8")
        manifest[path.name] = digest(text)
        _save(manifest, manifest_path)  # after every copy, so an interrupted run leaves no false "edited"
        report.written.append(path.name)
    _save(manifest, manifest_path)
    return report


def _save(manifest: dict[str, str], path: Path) -> None:
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Copies go to notebooks/student/ (git-ignored). Edited copies are kept unless --force.",
    )
    parser.add_argument("--only", nargs="+", metavar="NN", help="only these notebooks, e.g. --only 03 05")
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite copies you edited (with --only: reset just those notebooks)",
    )
    parser.add_argument("--src", type=Path, default=REPO / "notebooks", help="folder of NN_topic.ipynb")
    parser.add_argument("--dest", type=Path, default=None, help="output folder (default: SRC/student)")
    args = parser.parse_args(argv)
    dest = args.dest or args.src / "student"
    try:
        if not sources(args.src):
            print(f"make_student: error: no NN_topic.ipynb notebooks in {args.src}", file=sys.stderr)
            return 2
        report = update(args.src, dest, args.only, args.force)
    except ValueError as err:
        print(f"make_student: error: {err}", file=sys.stderr)
        return 2
    shown = dest.relative_to(REPO) if dest.is_relative_to(REPO) else dest
    print(f"make_student: {len(report.written)} written, {len(report.current)} already current, in {shown}/")
    for name in report.kept_edited:
        print(
            f"make_student: kept your edited {name} (reset it: python tools/make_student.py "
            f"--only {name[:2]} --force)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
