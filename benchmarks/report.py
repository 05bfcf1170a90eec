"""Ratios, speed/memory targets and the Markdown report of a benchmark run."""

from __future__ import annotations

from collections import defaultdict

from benchmarks.cases import CHECKS_OFF

HINGE_CASE = "8x1x256x256"
SOFTMAX_CASE = "8x21x128x128"
CHECKS_TARGET = "iou_lib.soft_iou default value checks: time / checks off (<= 1.10)"


def _by_unit(rows: list[dict]) -> dict[tuple[str, str, str], list[dict]]:
    units: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for row in rows:
        units[(row["task"], row["group"], row["case"])].append(row)
    return units


def add_ratios(rows: list[dict]) -> list[dict]:
    """Add ``vs_fastest_peer`` and ``vs_baseline`` (time ratios within a group and case), from the
    medians and, as ``*_min``, from the minimum times (steadier on a loaded machine)."""
    for unit in _by_unit(rows).values():
        for stat, suffix in (("median_ms", ""), ("min_ms", "_min")):
            peers = [r[stat] for r in unit if r["role"] == "peer"]
            base = [r[stat] for r in unit if r["role"] == "baseline"]
            for row in unit:
                row["vs_fastest_peer" + suffix] = row[stat] / min(peers) if peers else None
                row["vs_baseline" + suffix] = row[stat] / base[0] if base else None
    return rows


def _cell(row: dict) -> str:
    """``ms ×ratio · MiB`` (and ``· N pf`` where page faults were counted)."""
    cell = f"{row['median_ms']:.2f}{_fmt_ratio(row['vs_fastest_peer'])} · {row['peak_mb']:.1f}"
    faults = row.get("page_faults")
    return cell if faults is None else f"{cell} · {faults:.0f} pf"


def _find(rows: list[dict], group: str, case: str, impl: str, task: str | None = None) -> dict | None:
    for row in rows:
        if (
            row["group"] == group
            and row["case"] == case
            and row["impl"] == impl
            and task in (None, row["task"])
        ):
            return row
    return None


def evaluate_targets(rows: list[dict], quick: bool = False) -> list[dict]:
    """The issue's targets, each with the measured value (medians; also from minimum times) and whether
    this run met it (judged on the medians)."""
    out = []

    def add(name: str, row: dict, key: str, limit: float, speedup: bool = False) -> None:
        if row.get(key) is None:
            return
        value, value_min = row[key], row.get(key + "_min", row[key])
        if speedup:
            value, value_min = 1 / value, 1 / value_min
        passed = value >= limit if speedup else value <= limit
        tag = f"{row['task']} {row['case']}"
        out.append(
            {
                "target": name,
                "case": tag,
                "value": value,
                "value_min": value_min,
                "limit": limit,
                "passed": passed,
            }
        )

    for row in rows:
        if row["impl"] == "iou_lib.lovasz_hinge" and (quick or row["case"].startswith(HINGE_CASE)):
            add(
                "lovasz_hinge speed-up over the per-image loop",
                row,
                "vs_baseline",
                5.0 if row["regime"] == "random" else 20.0,
                speedup=True,
            )
        if row["impl"] == "iou_lib.lovasz_softmax" and (quick or row["case"].startswith(SOFTMAX_CASE)):
            add("lovasz_softmax speed-up over the per-class loop", row, "vs_baseline", 5.0, speedup=True)
    for row in rows:
        if row["impl"] != CHECKS_OFF:
            continue
        checked = _find(rows, row["group"], row["case"], "iou_lib.soft_iou", row["task"])
        ratio = {"checks_ratio": checked["median_ms"] / row["median_ms"]}
        ratio["checks_ratio_min"] = checked["min_ms"] / row["min_ms"]
        add(
            CHECKS_TARGET,
            dict(row, **ratio),
            "checks_ratio",
            1.1,
        )
    for row in rows:
        if row["role"] != "ours":
            continue
        if row["group"] in ("lovasz_hinge", "lovasz_softmax"):
            add(f"{row['impl']} time / fastest peer (< 1)", row, "vs_fastest_peer", 1.0)
        if row["group"] in ("soft_iou", "soft_dice"):
            add(f"{row['impl']} time / plain autograd (<= 0.75)", row, "vs_baseline", 0.75)
            add(f"{row['impl']} time / fastest peer (<= 1)", row, "vs_fastest_peer", 1.0)
        if row["backward"]:
            unit = [
                r
                for r in rows
                if (r["task"], r["group"], r["case"]) == (row["task"], row["group"], row["case"])
            ]
            peer_mem = [r["peak_mb"] for r in unit if r["role"] == "peer"]
            if peer_mem and row["peak_mb"] > 0:
                mem = dict(row, mem_ratio=row["peak_mb"] / min(peer_mem))
                add(f"{row['impl']} peak memory / lowest peer (<= 1)", mem, "mem_ratio", 1.0)
    return out


def _fmt_ratio(x: float | None) -> str:
    return "" if x is None else f" ×{x:.2f}"


def markdown(results: dict) -> str:
    meta, rows = results["meta"], results["rows"]
    lines = [
        "# Benchmark results" + (" (quick smoke run: tiny shapes, not meaningful)" if meta["quick"] else ""),
        "",
        f"{meta['date']} · device {meta['device']} ({meta['device_name']}) · torch {meta['torch']} · "
        f"clock: {meta['clock']} · "
        f"{meta['threads']} threads of {meta['cpu_count']} CPUs · {meta['rounds']} interleaved rounds x "
        f"{meta['reps']} calls · load average before {meta['load_before'][0]:.2f}, after "
        f"{meta['load_after'][0]:.2f}",
        "",
        "Peers: " + ", ".join(f"{k} {v}" for k, v in meta["peers"].items()),
        "",
        "Cells: median ms of forward + backward (metrics: forward only), ×ratio to the fastest peer of the "
        "same group and case, and peak memory in MiB above the call's start (CPU: torch profiler allocation "
        "trace; CUDA: max_memory_allocated); on CPU also the minor page faults per call (pf), each a page of "
        "fresh memory the allocator had to map (2 calls per round in a row, outside the timed rounds). "
        "Every implementation with a 'checked against' entry reproduced "
        "that value on every case before timing.",
    ]
    for task in ("binary", "multiclass"):
        task_rows = [r for r in rows if r["task"] == task]
        cases = list(dict.fromkeys(r["case"] for r in task_rows))
        for group in dict.fromkeys(r["group"] for r in task_rows):
            grows = [r for r in task_rows if r["group"] == group]
            lines += [
                "",
                f"## {task}: {group}",
                "",
                "| implementation | checked against | " + " | ".join(cases) + " |",
            ]
            lines.append("|---|---|" + "---:|" * len(cases))
            for impl in dict.fromkeys(r["impl"] for r in grows):
                cells = []
                for case in cases:
                    r = _find(grows, group, case, impl)
                    cells.append("" if r is None else _cell(r))
                checked = next(r["checked_against"] for r in grows if r["impl"] == impl) or ""
                lines.append(f"| {impl} | {checked} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Targets",
        "",
        "Measured on the medians (and, in parentheses, on the minimum times); met = on the medians.",
        "",
        "| target | case | measured | limit | met |",
        "|---|---|---:|---:|---|",
    ]
    for t in results["targets"]:
        lines.append(
            f"| {t['target']} | {t['case']} | {t['value']:.2f} ({t['value_min']:.2f}) | {t['limit']:.2f} | "
            + ("yes |" if t["passed"] else "**no** |")
        )
    share = results.get("train_share")
    if share:
        lines += [
            "",
            f"## Loss share of a training step: {share['model']}, input {'x'.join(map(str, share['input']))}",
            "",
            "| loss | step ms | loss fwd+bwd ms | share |",
            "|---|---:|---:|---:|",
        ]
        for name, s in share["losses"].items():
            lines.append(f"| {name} | {s['step_ms']:.1f} | {s['loss_ms']:.2f} | {100 * s['share']:.1f} % |")
    for name, ops in results.get("profiles", {}).items():
        lines += ["", f"## Where the time goes: {name}", "", "| op | self ms per call | share | calls |"]
        lines.append("|---|---:|---:|---:|")
        for op in ops:
            lines.append(
                f"| {op['op']} | {op['self_ms_per_call']:.2f} | {100 * op['share']:.0f} % "
                f"| {op['calls_per_call']:.0f} |"
            )
    return "\n".join(lines) + "\n"
