"""The training engine: learning, schedules, ignored pixels, atomic results, resume after SIGKILL."""

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from test_folders import CAMVID, needs_camvid  # the CamVid location the tests use

from iou_lib.data.synthetic import SyntheticSegmentation
from iou_lib.metrics import IoUAccumulator
from iou_lib.train import (
    DataSpec,
    TrainConfig,
    _build_loss,
    _loss_inputs,
    batches,
    evaluate,
    fit,
    parse_schedule,
)

TINY = DataSpec(n_train=64, n_val=32, image_size=32, fg_frac=0.1)


@pytest.fixture(autouse=True)
def one_thread():
    """Train on one thread: on a busy 2-core machine two OpenMP threads can run 10x slower, not faster."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_short_run_learns(tmp_path):
    # 96 Adam steps on 48 px images (7 s of CPU); measured test IoU 0.71
    cfg = TrainConfig(
        DataSpec(n_train=192, n_val=64, image_size=48, fg_frac=0.15, n_objects=3),
        loss="bce",
        epochs=8,
        width=8,
        lr=3e-3,
        progress=False,
        out_dir=str(tmp_path),
    )
    res = fit(cfg)
    train_loss = [r["value"] for r in res.rows if r["split"] == "train" and r["metric"] == "loss"]
    assert len(train_loss) == 8 and train_loss[-1] < 0.6 * train_loss[0]
    assert res.summary["test/miou_d"] > 0.5, res.summary
    assert res.summary["test/miou_d@best"] >= res.summary["test/miou_d"]
    # results.csv is the tidy table of the run, also readable mid-run (written atomically per epoch)
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(res.rows) and {"split", "epoch", "metric", "value"} <= set(rows[0])
    assert json.loads((tmp_path / "summary.json").read_text())["test/miou_d"] == res.summary["test/miou_d"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_evaluate_matches_the_accumulator_and_picks_the_best_threshold():
    ds = SyntheticSegmentation(12, 16, 0.2, seed=0)
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 1, 3, padding=1)
    out = evaluate(model, batches(ds, range(12), 5), thresholds=(0.3, 0.5, 0.7))
    with torch.no_grad():
        prob = torch.sigmoid(model(ds.batch(torch.arange(12))[0]))[:, 0]
    for t in (0.3, 0.5, 0.7):
        acc = IoUAccumulator(2)
        acc.update((prob > t).long(), ds.labels.long())
        assert out[f"curve_d@{t:.2f}"] == pytest.approx(float(acc.compute().iou[1]))
    best = max((0.3, 0.5, 0.7), key=lambda t: out[f"curve_d@{t:.2f}"])
    assert out["threshold_d@best"] == best and out["miou_d@best"] == out[f"curve_d@{best:.2f}"]


def test_schedule_parsing_and_errors():
    assert parse_schedule("bce:2,soft_iou", 5) == [("bce", 2), ("soft_iou", 3)]
    assert parse_schedule("bce:1,0.5*bce+0.5*soft_iou:2", 3) == [("bce", 1), ("0.5*bce+0.5*soft_iou", 2)]
    with pytest.raises(ValueError, match="needs ':epochs'"):
        parse_schedule("bce,soft_iou", 5)
    with pytest.raises(ValueError, match="take 6 epochs, leaving none of the run's 5"):
        parse_schedule("bce:6,soft_iou", 5)
    with pytest.raises(ValueError, match="covers 4 epochs; the run has 5"):
        parse_schedule("bce:2,soft_iou:2", 5)
    with pytest.raises(ValueError, match="available losses: .*soft_iou"):
        parse_schedule("bce:2,nope", 5)
    with pytest.raises(ValueError, match="epochs must be"):
        TrainConfig(epochs=0)


def test_schedule_switches_loss_after_k_epochs():
    def losses_of(spec):
        res = fit(TrainConfig(TINY, loss=spec, epochs=2, width=4, progress=False))
        return [r["value"] for r in res.rows if r["metric"] == "loss"]

    sched, plain = losses_of("bce:1,soft_iou"), losses_of("bce")
    assert sched[0] == plain[0]  # same seed, same first phase: identical first epoch
    assert sched[1] != plain[1] and 0 <= sched[1] <= 1  # then soft IoU (a loss in [0, 1])


def test_binary_ignored_pixels_are_neutral():
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 6, 6, requires_grad=True)
    target = torch.randint(0, 2, (2, 6, 6))
    target[:, :2] = 255  # ignored rows
    for spec in ("soft_iou", "lovasz_hinge", "soft_dice"):
        z, y = _loss_inputs(logits, target, 1, 255)
        loss = _build_loss(spec, {}, 1, 255)(z, y)
        ref = _build_loss(spec, {}, 1, None)(logits[:, :, 2:], target[:, None, 2:].float())
        assert loss.item() == pytest.approx(ref.item(), abs=1e-6), spec
        (grad,) = torch.autograd.grad(loss, logits)
        assert grad[:, :, :2].abs().max() == 0


def test_multiclass_losses_get_ignore_index():
    loss = _build_loss("0.5*cross_entropy+0.5*lovasz_softmax", {}, 3, 11)
    kwargs = [m.kwargs for m in loss.modules() if hasattr(m, "kwargs")]
    assert kwargs and all(k["ignore_index"] == 11 for k in kwargs)


_RUN = """
import sys, torch
torch.set_num_threads(1)
from iou_lib.train import DataSpec, TrainConfig, fit
cfg = TrainConfig(DataSpec(n_train=128, n_val=32, image_size=32, fg_frac=0.1), loss="bce:2,soft_iou",
                  epochs=5, width=8, progress=False, out_dir=sys.argv[1])
fit(cfg)
"""


def _run(out):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", _RUN, str(out)], env=env)


def _metrics(out):
    with open(out / "results.csv") as f:
        return {
            (r["split"], r["epoch"], r["metric"]): r["value"]
            for r in csv.DictReader(f)
            if r["metric"] != "images_per_s"
        }


def test_resume_after_sigkill_reproduces_the_uninterrupted_run(tmp_path):
    killed, full = tmp_path / "killed", tmp_path / "full"
    proc = _run(killed)
    ref = _run(full)  # the uninterrupted run, in parallel
    deadline = time.time() + 120
    while not (killed / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (killed / "checkpoint.pt").exists(), "the run never wrote a checkpoint"
    epoch = torch.load(killed / "checkpoint.pt", weights_only=False)["epoch"]
    assert epoch < 5 and not (killed / "summary.json").exists(), "the run finished before it was killed"
    resumed = _run(killed)
    assert resumed.wait(timeout=180) == 0 and ref.wait(timeout=180) == 0
    a, b = _metrics(killed), _metrics(full)
    assert a == b  # every train loss and every val/test metric, bit for bit (as printed)
    assert ("test", "5", "miou_d") in a


@needs_camvid
def test_camvid_multiclass_and_binary_runs():
    for cls, loss in ((None, "0.5*cross_entropy+0.5*lovasz_softmax"), ("car", "soft_iou")):
        res = fit(
            TrainConfig(
                DataSpec(kind="camvid", path=str(CAMVID), class_name=cls, scale=4),
                loss=loss,
                epochs=1,
                width=4,
                depth=2,
                batch_size=32,
                progress=False,
            )
        )
        s = res.summary
        assert 0 <= s["test/miou_d"] <= 1 and 0 < s["test/pixel_acc"] <= 1
        if cls is None:
            assert {f"test/iou_d/{c}" for c in ("Sky", "Road", "Bicyclist")} <= set(s)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_run_learns_like_cpu():
    data = DataSpec(n_train=192, n_val=64, image_size=48, fg_frac=0.15, n_objects=3)
    res = fit(TrainConfig(data, loss="bce", epochs=8, width=8, lr=3e-3, device="cuda", progress=False))
    assert next(res.model.parameters()).is_cuda
    loss = [r["value"] for r in res.rows if r["metric"] == "loss"]
    assert all(map(math.isfinite, loss)) and loss[-1] < 0.6 * loss[0]
    assert res.summary["test/miou_d"] > 0.5, res.summary
