"""``python -m benchmarks --snapshot``: write a run into the committed files, so one command refreshes them.

* ``benchmarks/RESULTS.md``: the run's full report between the markers ``<!-- losses:start -->`` and
  ``<!-- losses:end -->`` (what the file holds outside them, e.g. a training-throughput section, is kept),
  opened by a note on the machine and a summary of the targets, both written from the run;
* ``README.md``: the table of the Benchmarks section between ``<!-- benchmarks:start -->`` and
  ``<!-- benchmarks:end -->``, with a sentence on the run's load and the binary soft IoU against MONAI.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from benchmarks import report
from benchmarks.cases import CHECKS_OFF

RESULTS_MARKERS = ("<!-- losses:start -->", "<!-- losses:end -->")
README_MARKERS = ("<!-- benchmarks:start -->", "<!-- benchmarks:end -->")
#: (group, task, case, logits) of the README table's rows
README_ROWS = [
    ("lovasz_hinge", "binary", "8x1x256x256 random", "random"),
    ("lovasz_hinge", "binary", "8x1x256x256 late", "late training"),
    ("lovasz_softmax", "multiclass", "8x21x128x128 random", "random"),
    ("lovasz_softmax", "multiclass", "8x21x128x128 late", "late training"),
    ("soft_iou", "binary", "8x1x256x256 random", "random"),
    ("soft_iou", "binary", "8x1x512x512 random", "random"),
    ("soft_iou", "multiclass", "8x21x128x128 random", "random"),
]
QUIET_LOAD = 1.0  # a 1-minute load average above this (beyond the benchmark's own threads) means other jobs


def shared(meta: dict) -> bool:
    """Whether other jobs shared the machine: a load average above :data:`QUIET_LOAD` before the run, or
    after it above the benchmark's own threads plus :data:`QUIET_LOAD` (its threads raise the load
    average themselves while it runs)."""
    return meta["load_before"][0] > QUIET_LOAD or meta["load_after"][0] > meta["threads"] + QUIET_LOAD


def replace_between(text: str, markers: tuple[str, str], block: str) -> str:
    """``text`` with what lies between the two markers replaced by ``block``."""
    start, end = markers
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ValueError(f"expected one {start} followed by one {end}")
    head, rest = text.split(start)
    tail = rest.split(end)[1]
    return f"{head}{start}\n{block.strip()}\n{end}{tail}"


def machine_note(meta: dict) -> str:
    """Where and when the run was made, and whether the machine was shared (from its load average)."""
    before, after = meta["load_before"][0], meta["load_after"][0]
    where = (
        f"{meta['date'][:16].replace('T', ' ')} UTC on {meta['device']} ({meta['device_name']}), "
        f"{meta['threads']} torch threads of {meta['cpu_count']} CPUs, clock: {meta['clock']}, "
        f"load average {before:.2f} before and {after:.2f} after"
    )
    if shared(meta):
        return (
            f"Measured {where}: **the machine was shared with other jobs**, so single timings are noisy "
            "(each implementation still ran interleaved with the others, so the ratios are fairer than the "
            "milliseconds). Rerun `python -m benchmarks --snapshot` on a quiet machine for reference figures."
        )
    return f"Measured {where}, with nothing else running."


def _range(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.2f}" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}-{high:.2f}"


def targets_summary(targets: list[dict]) -> list[str]:
    """One line per target: in how many cases the run met it, and the measured range."""
    by_name: dict[str, list[dict]] = defaultdict(list)
    for t in targets:
        by_name[t["target"]].append(t)
    lines = []
    for name, runs in by_name.items():
        met = sum(t["passed"] for t in runs)
        verdict = "met in all" if met == len(runs) else f"**missed in {len(runs) - met}** of"
        lines.append(f"* {name}: {verdict} {len(runs)} cases (measured {_range([t['value'] for t in runs])})")
    return lines


def results_block(results: dict) -> str:
    """The generated part of ``benchmarks/RESULTS.md``."""
    return "\n".join(
        [
            f"Produced by `{results['meta'].get('command', 'python -m benchmarks --snapshot')}`, which also "
            "writes the table of the README's Benchmarks section. " + machine_note(results["meta"]),
            "",
            "Targets of this run (medians; the table at the end gives each case):",
            "",
            *targets_summary(results["targets"]),
            "",
            "---",
            "",
            report.markdown(results).split("\n", 1)[1].strip(),
        ]
    )


def _ms(x: float) -> str:
    return f"{x:.2f} ms" if x < 10 else f"{x:.1f} ms"


def readme_block(results: dict) -> str:
    """The README's Benchmarks table and a sentence on the run."""
    rows = results["rows"]
    lines = [
        "| loss, shape | logits | `iou_lib` | value checks off | plain loop / autograd | fastest peer |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for group, task, case, logits in README_ROWS:
        unit = [r for r in rows if (r["group"], r["task"], r["case"]) == (group, task, case)]
        if not unit:
            continue
        ours = next(r for r in unit if r["impl"] == f"iou_lib.{group}")
        off = [r for r in unit if r["impl"] == CHECKS_OFF]
        base = [r for r in unit if r["role"] == "baseline"]
        peer = min((r for r in unit if r["role"] == "peer"), key=lambda r: r["median_ms"], default=None)
        cells = [
            f"`{group}`, {case.split()[0]}",
            logits,
            _ms(ours["median_ms"]),
            _ms(off[0]["median_ms"]) if off else "",
            _ms(base[0]["median_ms"]) if base else "",
            f"{_ms(peer['median_ms'])} ({peer['impl']})" if peer else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    meta = results["meta"]
    lines += [
        "",
        f"Medians of {meta['rounds']} interleaved rounds of {meta['reps']} calls, "
        f"{meta['date'][:10]}, {meta['threads']} torch threads on a {meta['cpu_count']}-CPU machine (load "
        f"average {meta['load_before'][0]:.1f} before, {meta['load_after'][0]:.1f} after"
        + ("; shared with other jobs, so noisy)." if shared(meta) else ")."),
    ]
    checks = [
        t
        for t in results["targets"]
        if t["target"] == report.CHECKS_TARGET and t["case"].startswith("binary")
    ]
    versus_peer = [
        t for t in results["targets"] if t["target"] == "iou_lib.soft_iou time / fastest peer (<= 1)"
    ]
    versus_peer = [t for t in versus_peer if t["case"].startswith("binary")]
    if checks and versus_peer:
        lines.append(
            "Over the binary cases, soft IoU with its default value checks took "
            f"{_range([t['value'] for t in versus_peer])}x the time of the fastest peer, and "
            f"{_range([t['value'] for t in checks])}x its own time with the checks off."
        )
    return "\n".join(lines)


def write(results: dict, results_md: Path, readme: Path) -> None:
    """Write the run into ``results_md`` and ``readme`` (between their markers)."""
    results_md.write_text(replace_between(results_md.read_text(), RESULTS_MARKERS, results_block(results)))
    readme.write_text(replace_between(readme.read_text(), README_MARKERS, readme_block(results)))
