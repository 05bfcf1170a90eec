"""Smoke run of the benchmark package (``python -m benchmarks --quick``): it runs, checks values, reports."""

import json

import pytest
import torch

from benchmarks import snapshot
from benchmarks.measure import page_faults_per_call
from benchmarks.run import main

QUICK_CASE = {"binary": "2x1x64x64 random", "multiclass": "2x5x32x32 random"}


def test_quick_benchmark_runs_and_reports(tmp_path):
    threads = torch.get_num_threads()
    assert main(["--quick", "--out", str(tmp_path), "--threads", "1"]) == 0
    assert torch.get_num_threads() == threads  # restored
    results = json.loads((tmp_path / "results.json").read_text())
    rows = results["rows"]
    groups = {(r["task"], r["group"]) for r in rows}
    assert {("binary", "lovasz_hinge"), ("multiclass", "lovasz_softmax"), ("binary", "soft_iou")} <= groups
    # every value check passed before timing, and each timed row has positive times
    assert all(r["median_ms"] > 0 and r["n"] >= 1 and r["page_faults"] >= 0 for r in rows)
    checked = [r for r in rows if r["checked_against"]]
    assert any(r["library"] == "kornia" for r in checked) and any(r["library"] == "baseline" for r in checked)
    assert all(t["target"] and isinstance(t["passed"], bool) for t in results["targets"])
    assert results["train_share"]["losses"]["iou_lib.lovasz_hinge"]["share"] > 0
    text = (tmp_path / "results.md").read_text()
    assert "## binary: lovasz_hinge" in text and "## Targets" in text and "Where the time goes" in text
    assert " pf |" in text  # CPU cells carry the page faults per call


def test_page_faults_count_the_fresh_memory_of_a_call():
    # 64 MiB is above glibc's largest mmap threshold: each call maps, touches and unmaps 16384 fresh 4 KiB
    # pages (32 where transparent huge pages back it); refilling a kept buffer maps nothing
    fresh = page_faults_per_call(lambda: torch.ones(2**24), torch.device("cpu"), n_calls=3)
    reused = torch.empty(2**24)
    kept = page_faults_per_call(lambda: reused.fill_(1.0), torch.device("cpu"), n_calls=3)
    assert fresh is not None and kept is not None
    assert fresh >= 32 and kept <= 2
    assert page_faults_per_call(lambda: None, torch.device("cuda"), n_calls=1) is None


def test_snapshot_writes_between_markers_and_keeps_the_rest(tmp_path, monkeypatch):
    assert main(["--quick", "--out", str(tmp_path), "--threads", "1", "--no-train"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    quick = [(g, t, c, c.split()[1]) for g, t, c, _ in snapshot.README_ROWS for c in [QUICK_CASE[t]]]
    monkeypatch.setattr(snapshot, "README_ROWS", quick)
    results_md, readme = tmp_path / "RESULTS.md", tmp_path / "README.md"
    results_md.write_text(
        "# Snapshot\n\n<!-- losses:start -->\nold\n<!-- losses:end -->\n\n## Training\n\nkept\n"
    )
    readme.write_text(
        "## Benchmarks\n\nintro\n<!-- benchmarks:start -->\nold\n<!-- benchmarks:end -->\n\nafter\n"
    )
    snapshot.write(results, results_md, readme)
    text = results_md.read_text()
    assert "old" not in text and text.endswith("## Training\n\nkept\n") and "## binary: soft_iou" in text
    assert "Produced by `python -m benchmarks --quick --out" in text and "lovasz_hinge speed-up" in text
    table = readme.read_text()
    assert table.startswith("## Benchmarks\n\nintro\n<!-- benchmarks:start -->\n| loss, shape |")
    assert table.endswith("<!-- benchmarks:end -->\n\nafter\n") and "old" not in table
    row = next(line for line in table.splitlines() if line.startswith("| `soft_iou`, 2x1x64x64"))
    assert row.count(" ms") == 4  # ours, checks off, plain autograd, fastest peer
    with pytest.raises(SystemExit):
        main(["--quick", "--snapshot"])  # a smoke run never overwrites the committed snapshot


def test_training_benchmark_compares_layouts_and_restores_the_engine():
    """``python -m benchmarks.training``'s throughput table has its three rows (NCHW before, channels_last,
    grouped seeds) and leaves the engine's layout as it found it."""
    from benchmarks import training
    from iou_lib.train import runtime

    lines = training.training_throughput(rounds=1, steps=1)
    rows = [line.split("|")[1].strip() for line in lines[2:]]
    assert rows == [
        "1 seed, NCHW (before)",
        "1 seed, channels_last",
        "5 seeds together (grouped convolutions)",
    ]
    assert all(float(line.split("|")[3]) > 0 for line in lines[2:])  # images/s per seed
    assert runtime.MEMORY_FORMAT == torch.channels_last


@pytest.mark.parametrize(
    ("before", "after", "is_shared"), [(0.3, 1.9, False), (1.5, 1.9, True), (0.3, 3.5, True)]
)
def test_machine_note_counts_the_benchmarks_own_threads(before, after, is_shared):
    """A 2-thread benchmark raises the load average to about 2 by itself: only load beyond that, or before
    the run, means other jobs shared the machine."""
    meta = {
        "load_before": [before],
        "load_after": [after],
        "threads": 2,
        "date": "2026-12-02T13:40:00",
        "device": "cpu",
        "device_name": "x86_64",
        "cpu_count": 2,
        "clock": "wall",
    }
    assert snapshot.shared(meta) is is_shared
    assert ("shared with other jobs" in snapshot.machine_note(meta)) is is_shared
