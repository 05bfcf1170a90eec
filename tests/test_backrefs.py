"""The library's docstrings point back to where the book derives each formula ("derived in notebook 02,
section 3"); every such reference must name a notebook and a section that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = re.compile(r"sections? (\d+)(?:\s+(and|to)\s+(\d+))?")


def references() -> list[tuple[str, str, int]]:
    """``(file, notebook number, section)`` for every back-reference in iou_lib."""
    found = []
    for path in sorted((ROOT / "iou_lib").rglob("*.py")):
        text = " ".join(path.read_text(encoding="utf-8").split())  # docstrings wrap lines
        for match in re.finditer(r"notebook (\d\d)\b", text):
            after = re.split(r'"""|notebook \d\d|\. ', text[match.end() : match.end() + 120])[0]
            for first, connector, last in SECTION.findall(after):
                stop = int(last) if connector == "to" else int(first)
                found += [(path.name, match.group(1), k) for k in range(int(first), stop + 1)]
                if connector == "and":
                    found.append((path.name, match.group(1), int(last)))
    return found


def test_back_references_name_existing_sections():
    refs = references()
    assert len(refs) >= 10, refs  # the losses and relax refer to the book
    for source, number, k in refs:
        (notebook,) = (ROOT / "notebooks").glob(f"{number}_*.py")
        headings = re.findall(r"^# ## (\d+)\. ", notebook.read_text(encoding="utf-8"), flags=re.M)
        assert str(k) in headings, (
            f"{source} refers to notebook {number}, section {k}; {notebook.name} has {headings}"
        )
