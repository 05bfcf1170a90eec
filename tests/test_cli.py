"""Command line: train, resumable sweep, folder data, one-line errors, plain help."""

import csv
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from iou_lib.cli import METRICS_NOTE, main


@pytest.fixture(autouse=True)
def one_thread():
    """Train on one thread: tiny runs on a busy 2-core machine are faster so."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


SMALL = "--profile fast --n-train 16 --n-val 8 --image-size 24 --width 4 --depth 2 --batch-size 8".split()
SMALL.append("--no-progress")
TINY = [*SMALL, "--steps", "4", "--eval-every", "1"]


def _help(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "iou_lib", *args, "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_help_is_plain_text_and_documents_the_options():
    top, train, sweep = _help(), _help("train"), _help("sweep")
    for text in (top, train, sweep):
        assert "``" not in text and "::" not in text and ":func:" not in text
    assert "Examples:" in top and "exit status 2" in top
    for option in ("--steps", "--lr-schedule", "--warmup-steps", "--eval-every", "--size", "--debug"):
        assert option in train and option in sweep
    assert "cosine" in train and "needs --augment" in train and "soft_iou" in train
    assert "default: runs/<run name>" in train


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_train_prints_a_named_summary_and_records_the_schedule(tmp_path, capsys):
    args = ["--fg-frac", "0.1", "--loss", "soft_iou", "--loss-option", "soft_iou.per_image=true"]
    args += ["--lr-schedule", "constant", "--warmup-steps", "1", "--seed", "3"]
    assert main(["train", *TINY, *args, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "run fg0.1_soft_iou_unet_s3: loss soft_iou, data synthetic, foreground 0.1, seed 3"
    assert re.match(r"4 optimizer steps, test metrics at step \d+ \(best validation IoU\)", lines[1])
    assert METRICS_NOTE in lines and "IoU^D" in METRICS_NOTE and "IoU^I" in METRICS_NOTE
    summary = json.loads((tmp_path / "summary.json").read_text())
    test = summary["test"]
    assert lines[3] == f"test at p = 0.5: IoU^D {test['miou_d']:.4f}, IoU^I {test['miou_i']:.4f}, " + (
        f"pixel acc {test['pixel_acc']:.4f}"
    )
    assert lines[4].startswith(f"test at p = {test['threshold@val']:.4g} (tuned on validation): IoU^D ")
    assert re.search(r"^AP \(threshold-free ranking\): val 0\.\d{4}, test 0\.\d{4}$", out, re.M)
    assert re.search(r"^collapsed: (no|yes: .*)$", out, re.M) and "results:" in out
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["loss_options"] == {"soft_iou": {"per_image": True}}
    assert (cfg["lr_schedule"], cfg["warmup_steps"], cfg["steps"], cfg["eval_every"]) == ("constant", 1, 4, 1)
    assert summary["steps"] == 4 and f"test metrics at step {summary['best_step']} " in out
    assert {r["loss"] for r in _rows(tmp_path / "results.csv")} == {"soft_iou"}


def test_rerun_says_already_complete_and_no_resume_redoes(tmp_path, capsys):
    argv = ["train", *TINY, "--out", str(tmp_path)]
    assert main(argv) == 0
    first = capsys.readouterr().out
    stamp = (tmp_path / "summary.json").stat().st_mtime_ns
    assert main(argv) == 0
    again = capsys.readouterr().out
    assert again.startswith(f"{tmp_path}: already complete (use --no-resume to redo)\n")
    assert again.splitlines()[1:] == first.splitlines()  # the stored summary, printed the same way
    assert (tmp_path / "summary.json").stat().st_mtime_ns == stamp  # nothing recomputed or rewritten
    assert main([*argv, "--no-resume"]) == 0
    assert "already complete" not in capsys.readouterr().out
    assert (tmp_path / "summary.json").stat().st_mtime_ns != stamp


def test_out_defaults_to_runs_and_the_run_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY, "--loss", "0.5*bce+0.5*soft_iou", "--seed", "2"]) == 0
    run = tmp_path / "runs" / "fg0.05_0.5xbcep0.5xsoft_iou_unet_s2"
    assert (
        run / "summary.json"
    ).is_file() and f"results: {run.relative_to(tmp_path)}" in capsys.readouterr().out


def test_sweep_is_resumable_and_prints_one_line_per_run(tmp_path, capsys):
    grid = "--losses bce soft_iou --fg-fracs 0.1 --seeds 0".split()
    args = ["sweep", *TINY, *grid, "--out", str(tmp_path)]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert first.count(": done") == 2 and "already complete" not in first
    header = next(line for line in first.splitlines() if line.lstrip().startswith("run"))
    for column in ("fg_frac", "best_step", "iou@0.5", "iou@tuned", "threshold", "ap", "collapsed"):
        assert column in header
    assert re.search(r"fg0\.1_soft_iou_unet_s0 +0\.1000 +\d+ +0\.\d{4} +0\.\d{4} +0\.\d{4} +0\.\d{4}", first)
    table = _rows(tmp_path / "results.csv")
    assert {r["loss"] for r in table} == {"bce", "soft_iou"}
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/checkpoint.pt")}
    assert main(args) == 0
    second = capsys.readouterr().out
    assert second.count(": already complete") == 2 and ": done" not in second
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # nothing retrained
    assert len(_rows(tmp_path / "results.csv")) == len(table)


# ------------------------------------------------------------------------------------------- folder data
def _folder(root, sizes, fg=True):
    """Images and 0/1 masks of the given (H, W) sizes; 255 marks a border outside the field of view."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        mask = np.zeros((h, w), np.uint8)
        mask[: h // 3, : w // 2] = 1 if fg else 0
        mask[:, -2:] = 255
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    return root


def test_folder_data_of_mixed_sizes_needs_and_takes_size(tmp_path, capsys):
    data = _folder(tmp_path / "data", [(16, 20), (20, 16)] * 5)
    base = [
        "train",
        *TINY,
        "--profile",
        "cpu",
        "--data",
        "folder",
        "--path",
        str(data),
        "--ignore-index",
        "255",
    ]
    assert main([*base, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: images have different sizes") and "--size H W" in err and err.count("\n") == 1
    )
    assert main([*base, "--size", "12", "12", "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"data folder {data} \(foreground \d+\.\d\d % of train pixels\)", out)
    spec = json.loads((tmp_path / "b" / "config.json").read_text())["data"]
    assert spec["size"] == [12, 12] and spec["scale"] == 1  # folder data: no silent shrink (cpu: CamVid /2)


def test_masks_without_foreground_warn_in_one_line(tmp_path, capsys):
    data = _folder(tmp_path / "data", [(16, 16)] * 10, fg=False)  # 0/1 masks, no 1 anywhere
    argv = ["train", *TINY, "--data", "folder", "--path", str(data), "--ignore-index", "255"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "foreground pixel" in line]
    assert warned and all(
        re.fullmatch(r"warning: no mask under .* outside ignore_index=255", w) for w in warned
    )


def test_class_masks_print_per_class_iou(tmp_path, capsys):
    data = _folder(tmp_path / "data", [(16, 16)] * 10)
    for m in (data / "masks").glob("*.png"):  # classes 0, 1, 2 (the 255 border becomes class 2)
        Image.fromarray(np.minimum(np.asarray(Image.open(m)), 2).astype(np.uint8)).save(m)
    argv = ["train", *TINY, "--data", "folder", "--path", str(data), "--num-classes", "3"]
    assert main([*argv, "--loss", "cross_entropy", "--out", str(tmp_path / "run")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(f"data folder {data}, seed 0")  # no foreground fraction for class masks
    assert re.fullmatch(r"test at argmax: IoU\^D 0\.\d{4}, IoU\^I 0\.\d{4}, pixel acc 0\.\d{4}", lines[3])
    per_class = [line.split()[0] for line in lines if line.startswith("  ")]
    assert sorted(per_class) == ["0", "1", "2"] and "p = " not in "\n".join(lines)


def test_collapsed_run_prints_its_hint(capsys):
    from iou_lib.cli import _print_run
    from iou_lib.train import TrainConfig

    test = {"miou_d": 0.0, "miou_i": 0.0, "pixel_acc": 0.95}
    summary = {"steps": 500, "best_step": 50, "wall_s": 1.0, "test": test, "collapsed": True}
    _print_run(TrainConfig(out_dir="x"), {**summary, "collapse_hint": "start from BCE: 'bce:K,lovasz_hinge'"})
    assert "collapsed: yes: start from BCE: 'bce:K,lovasz_hinge'" in capsys.readouterr().out.splitlines()
    _print_run(TrainConfig(out_dir="x"), {**summary, "collapsed": False, "collapse_hint": None})
    assert "collapsed: no" in capsys.readouterr().out.splitlines()


def test_truncated_image_is_named_in_a_one_line_error(tmp_path, capsys):
    data = _folder(tmp_path / "data", [(16, 16)] * 5)
    bad = data / "images" / "3.png"
    bad.write_bytes(bad.read_bytes()[:300])
    argv = ["train", *TINY, "--data", "folder", "--path", str(data), "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"error: cannot read image {re.escape(str(bad))}: .*truncated.*\n", err), err
    with pytest.raises(ValueError, match="cannot read image"):
        main([*argv, "--debug"])


# ------------------------------------------------------------------------------------------ bad arguments
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--loss", "nope"], "argument --loss: unknown loss 'nope'.*available losses: .*soft_iou"),
        (["train", "--schedule", "bce,soft_iou"], "argument --schedule: .*needs ':"),
        (
            ["train", "--loss-option", "soft_iou.per_image=true"],
            r"argument --loss-option: options given for \['soft_iou'\], which the loss 'bce' does not use",
        ),
        (
            ["train", "--loss", "soft_iou", "--loss-option", "soft_iou.colour=1"],
            "argument --loss-option: soft_iou.colour=1: .*colour",
        ),
        (
            ["train", "--loss", "soft_iou", "--loss-option", "soft_iou.smooth=-1"],
            "argument --loss-option: soft_iou.smooth=-1: smooth",
        ),
        (["train", "--fg-frac", "1.5"], r"argument --fg-frac: expected a number in \[0, 0.9\]"),
        (["train", "--fg-frac", "0"], "argument --fg-frac: 0 gives empty masks .*--empty-frac"),
        (["sweep", "--losses", "bce", "--fg-fracs", "0.1", "0"], "argument --fg-fracs: 0 gives empty masks"),
        (["train", "--fg-frac", "nan"], r"argument --fg-frac: expected a number in \[0, 0.9\], got nan"),
        (["train", "--lr", "inf"], "argument --lr: expected a finite number > 0, got inf"),
        (["train", "--lr", "1e400"], "argument --lr: expected a finite number > 0, got inf"),
        (["train", "--lr", "nan"], "argument --lr: expected a finite number > 0, got nan"),
        (["train", "--steps", "0"], "argument --steps: expected a positive integer"),
        (["train", "--steps", "5", "--epochs", "2"], "argument --epochs: not allowed with argument --steps"),
        (["train", "--warmup-steps", "-1"], "argument --warmup-steps: expected an integer >= 0"),
        (["train", "--lr-schedule", "step"], "argument --lr-schedule: invalid choice"),
        (["train", "--ignore-index", "300"], r"argument --ignore-index: expected a mask value in 0..255"),
        (["train", "--data", "folder"], "argument --path: required with --data folder"),
        (["train", "--cls", "car"], "argument --cls: only valid with --data camvid"),
        (["train", "--size", "8", "8"], "argument --size: only for --data folder"),
        (["train", "--crop", "8"], "argument --crop: .*add --augment"),
        (["train", "--loss-option", "per_image"], "argument --loss-option: expected NAME.KEY=VALUE"),
        (
            ["train", "--data", "folder", "--path", "x", "--num-classes", "3", "--ignore-index", "255"],
            "argument --loss: bce: loss 'bce' takes no ignore_index",
        ),
        (
            ["sweep", "--losses", "bce:10,lovasz_hinge", "--loss-option", "lovasz_hinge.per_image=maybe"],
            r"argument --loss-option: lovasz_hinge.per_image=\"maybe\": .*per_image",
        ),
        (["train", "--model", "resnet"], "argument --model: invalid choice"),
        (["sweep", "--losses", "bce:3,soft_iou", "--steps", "2"], "argument --losses: .*soft_iou"),
        (["sweep"], "the following arguments are required: --losses"),
    ],
)
def test_bad_arguments_give_one_line_errors_before_writing(argv, message, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and re.search(message, err), err
    assert not out.exists()  # nothing written


def test_too_short_and_zero_step_runs_are_one_line_errors(tmp_path, capsys):
    assert main(["train", *SMALL, "--epochs", "1", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: ") and err.count("\n") == 1 and "fewer than 100" in err and "--steps 2" in err
    )
    data = _folder(tmp_path / "data", [(16, 16)] * 5)  # 4 training images, batches of 8
    folder = ["--data", "folder", "--path", str(data), "--ignore-index", "255"]
    assert main(["train", *TINY, *folder, "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "no optimizer step" in err
    assert not (tmp_path / "b" / "summary.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_unavailable_device_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--device", "cuda"])
    assert (
        exc.value.code == 2 and "argument --device: device 'cuda' is not available" in capsys.readouterr().err
    )


def test_user_errors_from_a_run_exit_2_without_traceback(tmp_path):
    """From a shell: one line, status 2; ``--debug`` shows the traceback."""
    argv = [sys.executable, "-m", "iou_lib", "train", "--data", "folder", "--path", str(tmp_path / "none")]
    proc = subprocess.run(
        [*argv, "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and proc.stderr == f"error: data folder {tmp_path / 'none'} does not exist\n"
    proc = subprocess.run(
        [*argv, "--out", str(tmp_path / "run"), "--debug"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "FileNotFoundError" in proc.stderr
