"""Time every notebook top to bottom in a run profile; keep the times in docs/notebook_times.json.

Usage::

    python tools/time_notebooks.py --profile fast            # run all notebooks, record their wall times
    python tools/time_notebooks.py --profile cpu --only 06   # one notebook
    python tools/time_notebooks.py --readme                  # rewrite the README's table from the JSON

Each notebook runs in a fresh kernel under ``IOU_PROFILE=<profile>`` (the committed files are not
touched). A notebook that stops at a training cell asking for confirmation (``iou_lib.budget``: longer
than 15 minutes) is recorded with the estimate that cell printed, not as a failure. Every record keeps
the date, the commit, the CPU count and the 1-minute load average at the start, so a time measured on
a busy machine is labelled as such. ``--readme`` regenerates the table between
``<!-- times:start -->`` and ``<!-- times:end -->`` in README.md; ``tests/test_readme.py`` checks that
the README shows what the JSON holds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbconvert.preprocessors import CellExecutionError, ExecutePreprocessor

from iou_lib.budget import NOTEBOOK_TIMES as TIMES
from iou_lib.budget import describe_time

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
START, END = "<!-- times:start -->", "<!-- times:end -->"
PROFILES = ("fast", "cpu", "gpu")
NOTEBOOK_NAME = re.compile(r"^\d\d_[A-Za-z0-9_]+\.ipynb$")
# The confirmation message of iou_lib.budget.require_confirmation: "... would train for about 75 min ..."
ESTIMATE = re.compile(r"LongRunNotConfirmed.*?would train for (under a minute|about ([\d.]+) (min|h))", re.S)


def notebooks(only: list[str] | None = None) -> list[Path]:
    found = sorted(p for p in (REPO / "notebooks").glob("*.ipynb") if NOTEBOOK_NAME.match(p.name))
    return [p for p in found if not only or any(p.name.startswith(o) for o in only)]


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def time_notebook(path: Path, profile: str, timeout: int) -> dict:
    """Run one notebook; return its record (seconds, status, estimate of a refused long cell)."""
    os.environ["IOU_PROFILE"] = profile  # the kernel inherits the environment
    nb = nbformat.read(path, as_version=4)
    record = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "cpus": os.cpu_count(),
        "load_1min": round(os.getloadavg()[0], 1),
    }
    started = time.perf_counter()
    try:
        ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(
            nb, {"metadata": {"path": str(path.parent)}}
        )
        record["status"] = "ok"
    except CellExecutionError as err:
        found = ESTIMATE.search(str(err))
        if found is None:
            record["status"] = "error"
            record["error"] = f"{getattr(err, 'ename', 'error')}: {getattr(err, 'evalue', err)}"[:300]
        else:
            record["status"] = "needs confirmation"
            minutes = 0.5 if found.group(2) is None else float(found.group(2))
            record["estimate_min"] = minutes * (60 if found.group(3) == "h" else 1)
    record["seconds"] = round(time.perf_counter() - started, 1)
    return record


def load(path: Path = TIMES) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def render_table(times: dict) -> str:
    """The README's Markdown table (and its provenance line) for the records in ``times``: a row for
    every notebook in ``notebooks/`` ("not measured" where ``times`` has none)."""
    names = [p.stem for p in notebooks()]
    shown = [p for p in PROFILES if p in times]
    lines = [
        "| notebook | " + " | ".join(f"`{p}` profile" for p in shown) + " |",
        "|---|" + "---:|" * len(shown),
    ]
    for name in names:
        lines.append(f"| `{name}` | " + " | ".join(describe_time(times[p].get(name)) for p in shown) + " |")
    totals = []
    for p in shown:
        records = [times[p][name] for name in names if name in times[p]]
        total = sum(r["seconds"] for r in records if r["status"] == "ok") / 60
        complete = len(records) == len(names) and all(r["status"] == "ok" for r in records)
        totals.append(f"{total:.0f} min" if complete else f"{total:.0f} min for those that finished")
    lines.append("| all | " + " | ".join(totals) + " |")
    records = [r for runs in times.values() for r in runs.values()]
    dates = sorted({r["date"][:10] for r in records})
    loads = [r["load_1min"] for r in records]
    cpus = sorted({r["cpus"] for r in records})
    lines += [
        "",
        (
            f"Measured by `tools/time_notebooks.py` on {', '.join(dates)} on a machine with "
            f"{'/'.join(map(str, cpus))} CPU cores and no GPU, shared with other jobs at the time "
            f"(1-minute load average {min(loads):.1f} to {max(loads):.1f}): a quiet machine is faster. "
            "`docs/notebook_times.json` has each run's date, commit and load."
        ),
    ]
    return "\n".join(lines)


def write_readme(times: dict, readme: Path = README) -> None:
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"time_notebooks: {readme} has no {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{render_table(times)}\n{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=PROFILES, default="fast", help="IOU_PROFILE to run in")
    parser.add_argument("--only", nargs="+", metavar="NN", help="only these notebooks, e.g. --only 06 07")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    parser.add_argument("--readme", action="store_true", help="only rewrite the README table from the JSON")
    parser.add_argument(
        "--run-long", action="store_true", help="train through cells over 15 min (else record their estimate)"
    )
    args = parser.parse_args(argv)
    if args.run_long:
        os.environ["IOU_RUN_LONG"] = "1"
    times = load()
    if not args.readme:
        paths = notebooks(args.only)
        if not paths:
            print(f"time_notebooks: error: no notebook matches --only {' '.join(args.only)}", file=sys.stderr)
            return 2
        for path in paths:
            print(f"time_notebooks: {path.stem} in the {args.profile} profile ...", flush=True)
            record = time_notebook(path, args.profile, args.timeout)
            print(f"time_notebooks: {path.stem}: {describe_time(record)}", flush=True)
            times.setdefault(args.profile, {})[path.stem] = record
            TIMES.parent.mkdir(exist_ok=True)
            TIMES.write_text(json.dumps(times, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    write_readme(times)
    print(f"time_notebooks: README table rewritten from {TIMES.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
