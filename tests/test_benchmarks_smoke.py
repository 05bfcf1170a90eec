"""Smoke run of the benchmark package (``python -m benchmarks --quick``): it runs, checks values, reports."""

import json

import torch

from benchmarks.run import main


def test_quick_benchmark_runs_and_reports(tmp_path):
    threads = torch.get_num_threads()
    assert main(["--quick", "--out", str(tmp_path), "--threads", "1"]) == 0
    assert torch.get_num_threads() == threads  # restored
    results = json.loads((tmp_path / "results.json").read_text())
    rows = results["rows"]
    groups = {(r["task"], r["group"]) for r in rows}
    assert {("binary", "lovasz_hinge"), ("multiclass", "lovasz_softmax"), ("binary", "soft_iou")} <= groups
    # every value check passed before timing, and each timed row has positive times
    assert all(r["median_ms"] > 0 and r["n"] >= 1 for r in rows)
    checked = [r for r in rows if r["checked_against"]]
    assert any(r["library"] == "kornia" for r in checked) and any(r["library"] == "baseline" for r in checked)
    assert all(t["target"] and isinstance(t["passed"], bool) for t in results["targets"])
    assert results["train_share"]["losses"]["iou_lib.lovasz_hinge"]["share"] > 0
    text = (tmp_path / "results.md").read_text()
    assert "## binary: lovasz_hinge" in text and "## Targets" in text and "Where the time goes" in text
