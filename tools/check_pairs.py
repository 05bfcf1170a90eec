"""Check that every notebook pair agrees: ``NN_topic.py`` (py:percent, the source) and ``NN_topic.ipynb``.

Both sides are read with ``jupytext.read`` and their ``(cell_type, source)`` lists compared, which is
reliable in a fresh clone (unlike ``jupytext --sync`` + ``git diff``, which trips over timestamps). A
``.py`` without its ``.ipynb`` and an ``.ipynb`` without its ``.py`` are flagged too. The ``student/``
subfolder (generated copies without solutions) is ignored.

Usage: ``python tools/check_pairs.py [DIR]`` (default ``notebooks``). Exit code 0 when all pairs agree,
1 with one line per problem otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext

IGNORED_DIRS = {"student", ".ipynb_checkpoints"}


def cells(path: Path) -> list[tuple[str, str]]:
    """The ``(cell_type, source)`` list of a notebook file, as jupytext reads it."""
    nb = jupytext.read(path)
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def first_difference(a: list[tuple[str, str]], b: list[tuple[str, str]]) -> str:
    """A short description of where two cell lists first differ."""
    for i, (ca, cb) in enumerate(zip(a, b, strict=False)):
        if ca != cb:
            what = "cell type" if ca[0] != cb[0] else "source"
            snippet = (ca[1].splitlines() or [""])[0][:60]
            return f"cell {i} differs in {what} (.py cell starts {snippet!r})"
    return f"cell counts differ: .py has {len(a)}, .ipynb has {len(b)}"


def _notebook_files(root: Path, suffix: str) -> set[Path]:
    return {
        p.with_suffix("")
        for p in root.rglob(f"*{suffix}")
        if not IGNORED_DIRS.intersection(p.relative_to(root).parts[:-1])
    }


def check(root: Path) -> list[str]:
    """All pair problems under ``root``, one message each (empty when everything agrees)."""
    if not root.is_dir():
        raise ValueError(f"notebook folder {str(root)!r} does not exist")
    py, ipynb = _notebook_files(root, ".py"), _notebook_files(root, ".ipynb")
    problems = [f"{p}.py has no paired {p.name}.ipynb" for p in sorted(py - ipynb)]
    problems += [f"{p}.ipynb has no paired {p.name}.py" for p in sorted(ipynb - py)]
    for stem in sorted(py & ipynb):
        a, b = cells(stem.with_suffix(".py")), cells(stem.with_suffix(".ipynb"))
        if a != b:
            problems.append(f"{stem}.py and .ipynb disagree: {first_difference(a, b)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="notebooks", type=Path, help="folder of notebook pairs")
    args = parser.parse_args(argv)
    problems = check(args.root)
    for line in problems:
        print(f"check_pairs: {line}", file=sys.stderr)
    if problems:
        print(
            "check_pairs: fix with `jupytext --sync notebooks/NN_x.py` (the .py is the source of truth),"
            " then re-execute the .ipynb",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
