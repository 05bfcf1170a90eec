"""Regenerate the README's "What the experiments show" section from the stored results.

    python tools/make_readme_results.py           # rewrite the text between the markers
    python tools/make_readme_results.py --check   # exit 1 when the README is stale (the tests run this)

The text between ``<!-- results:start -->`` and ``<!-- results:end -->`` is
:func:`iou_lib.findings.readme_section` of the ``cpu`` results in ``data/results/``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- results:start -->", "<!-- results:end -->"


def replace_section(readme: str, body: str) -> str:
    """``readme`` with the text between the markers replaced by ``body``."""
    if readme.count(START) != 1 or readme.count(END) != 1 or readme.index(START) > readme.index(END):
        raise ValueError(f"the README needs exactly one {START} followed by one {END}")
    head, rest = readme.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{body}{END}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when stale")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--results-dir", type=Path, help="stored results (default: data/results/)")
    parser.add_argument("--profile", default="cpu")
    args = parser.parse_args(argv)
    from iou_lib.findings import readme_section

    old = args.readme.read_text()
    new = replace_section(old, readme_section(args.profile, args.results_dir))
    if args.check:
        if new != old:
            print(f"{args.readme} is stale: run python tools/make_readme_results.py", file=sys.stderr)
            return 1
        return 0
    if new != old:
        args.readme.write_text(new)
        print(f"updated {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
