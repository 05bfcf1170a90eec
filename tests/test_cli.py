"""Command line: train, resumable sweep, clear errors."""

import csv
import json
import re
import subprocess
import sys

import pytest
from test_train import one_thread  # noqa: F401  (autouse fixture: train on one thread)

from iou_lib.cli import main

TINY = "--profile fast --n-train 32 --n-val 16 --image-size 24 --epochs 1 --width 4 --depth 2".split()
TINY.append("--no-progress")


def test_module_help_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "iou_lib", "train", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "--schedule" in proc.stdout and "soft_iou" in proc.stdout


def test_train_writes_results_and_prints_metrics(tmp_path, capsys):
    args = "--fg-frac 0.1 --schedule bce:1,soft_iou --epochs 2 --loss-option soft_iou.per_image=true".split()
    assert main(["train", *TINY, *args, "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "test/miou_d " in printed and "results:" in printed
    assert json.loads((tmp_path / "config.json").read_text())["loss_options"] == {
        "soft_iou": {"per_image": True}
    }
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["loss"] for r in rows} == {"bce:1,soft_iou"} and {r["epoch"] for r in rows} == {"1", "2"}


def test_sweep_is_resumable(tmp_path, capsys):
    grid = "--losses bce soft_iou --fg-fracs 0.1 --seeds 0".split()
    args = ["sweep", *TINY, *grid, "--out", str(tmp_path)]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert first.count("test miou_d") == 2 and "skipped" not in first
    with open(tmp_path / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert {r["loss"] for r in table} == {"bce", "soft_iou"}
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/checkpoint.pt")}
    # finished runs are skipped; an unfinished one (no summary) resumes from its checkpoint, which here is
    # already at the last epoch, so only its test evaluation is redone
    (tmp_path / "fg0.1_soft_iou_unet_s0" / "summary.json").unlink()
    assert main(args) == 0
    second = capsys.readouterr().out
    assert "fg0.1_bce_unet_s0: skipped (finished)" in second and second.count("test miou_d") == 1
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # nothing retrained
    with open(tmp_path / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == len(table)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["train", "--out", "x", "--loss", "nope"],
            "argument --loss: unknown loss 'nope'.*available losses: .*soft_iou",
        ),
        (["train", "--out", "x", "--schedule", "bce,soft_iou"], "argument --schedule: .*needs ':epochs'"),
        (
            ["train", "--out", "x", "--loss-option", "soft_iou.per_image=true"],
            r"argument --loss-option: options given for \['soft_iou'\], which the loss 'bce' does not use",
        ),
        (
            ["train", "--out", "x", "--fg-frac", "1.5"],
            "argument --fg-frac: expected a number in \\[0, 0.9\\]",
        ),
        (["train", "--out", "x", "--epochs", "0"], "argument --epochs: expected a positive integer"),
        (["train", "--out", "x", "--data", "folder"], "argument --path: required with --data folder"),
        (["train", "--out", "x", "--cls", "car"], "argument --cls: only valid with --data camvid"),
        (
            ["train", "--out", "x", "--loss-option", "per_image"],
            "argument --loss-option: expected NAME.KEY=VALUE",
        ),
        (["train", "--out", "x", "--model", "resnet"], "argument --model: invalid choice"),
        (
            ["sweep", "--out", "x", "--losses", "bce:3,soft_iou", "--epochs", "2"],
            "argument --losses: .*take 3 epochs",
        ),
        (["train"], "the following arguments are required: --out"),
    ],
)
def test_bad_arguments_give_clear_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
