"""Stored experiment results (data/results/) and the command that regenerates them (tools/make_results.py)."""

import datetime as dt
import importlib.util
import json
import shlex
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from iou_lib.cli import build_parser
from iou_lib.reporting import camvid_available
from iou_lib.train import RESULT_FIELDS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "data" / "results"
spec = importlib.util.spec_from_file_location("make_results", ROOT / "tools" / "make_results.py")
make_results = importlib.util.module_from_spec(spec)
sys.modules["make_results"] = make_results  # dataclasses look their module up while the file executes
spec.loader.exec_module(make_results)

PROVENANCE = ("table", "group", "profile", "grid", "note", "commands", "command", "device", "date",
              "git_commit", "torch", "python", "n_runs", "planned_runs", "complete")
COLUMNS = [*RESULT_FIELDS, "empty_frac", "per_image", "empty_rule"]


def load(group, profile="cpu", folder=RESULTS):
    table = pd.read_csv(folder / f"{group}_{profile}.csv", keep_default_na=False)
    table["value"] = pd.to_numeric(table["value"], errors="coerce")
    return table, json.loads((folder / f"{group}_{profile}.json").read_text())


def check_table(table, prov, plan):
    """What every stored table must satisfy, whatever its size."""
    assert list(table.columns) == COLUMNS
    assert set(PROVENANCE) <= set(prov)
    assert prov["table"] == f"{prov['group']}_{prov['profile']}.csv" and prov["grid"] == json.loads(
        json.dumps(make_results.dataclasses.asdict(plan)))
    assert dt.datetime.fromisoformat(prov["date"]) and prov["torch"] and prov["device"]
    assert prov["n_runs"] == table["run"].nunique() > 0 and prov["n_rows"] == len(table)
    assert prov["complete"] == (prov["n_runs"] == prov["planned_runs"])
    assert set(table["split"]) <= {"train", "val", "test"}
    # every run: a learning curve over all its epochs and its final test metrics
    epochs = plan.synthetic_epochs if prov["group"] == "synthetic" else plan.camvid_epochs
    for _, run in table.groupby("run"):
        assert sorted(run.loc[run["split"] == "val", "epoch"].unique()) == list(range(1, epochs + 1))
        test = run[run["split"] == "test"].set_index("metric")["value"]
        assert {"miou_d", "miou_i", "pixel_acc"} <= set(test.index)
        assert test.loc[["miou_d", "pixel_acc"]].between(0, 1).all()
    assert set(table["seed"]) <= set(plan.seeds if prov["group"] == "synthetic" else plan.camvid_seeds)
    iou = table[table["metric"].str.startswith(("miou", "iou_d/", "curve_d@"))]["value"].dropna()
    assert iou.between(0, 1).all()
    # the recorded commands are valid command lines of `python -m iou_lib`
    parser = build_parser()
    for command in prov["commands"]:
        words = shlex.split(command)
        assert words[:3] == ["python", "-m", "iou_lib"]
        parser.parse_args(words[3:])


@pytest.mark.parametrize("group", ["synthetic", "camvid"])
def test_stored_results_are_well_formed_with_provenance(group):
    table, prov = load(group)
    assert prov["profile"] == "cpu" and prov["group"] == group
    check_table(table, prov, make_results.PLANS["cpu"])


def test_stored_synthetic_results_hold_the_planned_values():
    table, prov = load("synthetic")
    plan = make_results.PLANS["cpu"]
    losses = {s.format(half=plan.synthetic_epochs // 2) for s in (*plan.losses, *plan.sweep_losses)}
    assert set(table["loss"]) <= losses and set(table["fg_frac"]) <= set(plan.fg_fracs)
    # the headline comparison: BCE vs soft IoU at the most imbalanced fraction, all seeds
    lowest = table[(table["fg_frac"] == min(plan.fg_fracs)) & table["run"].str.startswith("synthetic/")]
    for loss in ("bce", "soft_iou"):
        assert set(lowest.loc[lowest["loss"] == loss, "seed"]) == set(plan.seeds)


def test_plan_steps_cover_the_documented_experiments():
    steps = make_results.steps(make_results.PLANS["cpu"], "/data/camvid")
    outs = {s.out for s in steps}
    assert {"synthetic", "per_image", "empty", "empty_per_image", "empty_per_image_raw", "camvid_binary",
            "camvid_multi"} == outs
    assert all(s.n_runs >= 1 for s in steps)
    gpu = make_results.steps(make_results.PLANS["gpu"])
    assert all("--profile" in s.argv and s.argv[s.argv.index("--profile") + 1] == "gpu" for s in gpu)


def test_gpu_grid_refuses_to_run_without_cuda(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    argv = ["--profile", "gpu", "--runs-dir", str(tmp_path), "--results-dir", str(tmp_path)]
    assert make_results.main(argv) == 1
    assert "needs a CUDA GPU" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_quick_regeneration_end_to_end_and_resume(tmp_path, capsys):
    runs, results = tmp_path / "runs", tmp_path / "results"
    argv = ["--profile", "quick", "--only", "synthetic", "--runs-dir", str(runs), "--results-dir",
            str(results), "--threads", "1"]
    assert make_results.main(argv) == 0
    table, prov = load("synthetic", "quick", results)
    check_table(table, prov, make_results.PLANS["quick"])
    assert prov["complete"] and set(table["empty_rule"]) == {"fp_rate", "raw"}
    stamps = {p: p.stat().st_mtime_ns for p in runs.rglob("summary.json")}
    assert len(stamps) == prov["n_runs"]
    capsys.readouterr()
    assert make_results.main(argv) == 0  # resumes: every run is reused, none retrained
    assert capsys.readouterr().out.count("skipped (finished)") == prov["n_runs"]
    assert stamps == {p: p.stat().st_mtime_ns for p in runs.rglob("summary.json")}


@pytest.mark.skipif(camvid_available() is None, reason="CamVid not found through IOU_DATA_DIR")
def test_quick_camvid_regeneration(tmp_path):
    argv = ["--profile", "quick", "--only", "camvid", "--runs-dir", str(tmp_path), "--results-dir",
            str(tmp_path), "--threads", "1"]
    assert make_results.main(argv) == 0
    table, prov = load("camvid", "quick", tmp_path)
    check_table(table, prov, make_results.PLANS["quick"])
    assert {"iou_d/Car", "iou_d/Sky"} <= set(table["metric"]) and "car" in set(table["class_name"])


def test_camvid_absent_is_reported_not_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IOU_DATA_DIR", str(tmp_path))
    argv = ["--profile", "quick", "--only", "camvid", "--runs-dir", str(tmp_path), "--results-dir",
            str(tmp_path)]
    assert make_results.main(argv) == 1
    assert "skipping camvid" in capsys.readouterr().err and not list(tmp_path.iterdir())
