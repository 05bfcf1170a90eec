"""The training engine: step budgets, schedules, best-validation selection, files, resume after SIGKILL."""

import csv
import dataclasses
import json
import math
import os
import signal
import stat
import subprocess
import sys
import time

import pytest
import torch
from test_folders import CAMVID, needs_camvid  # the CamVid location the tests use

from iou_lib.train import DataSpec, TrainConfig, engine, fit, parse_schedule
from iou_lib.train.objective import build_loss, loss_inputs
from iou_lib.train.runtime import select_device

TINY = DataSpec(n_train=64, n_val=32, image_size=32, fg_frac=0.1)


@pytest.fixture(autouse=True)
def one_thread():
    """Train on one thread: on a busy 2-core machine two OpenMP threads can run 10x slower, not faster."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _rows(res, split, metric):
    return [(r["step"], r["value"]) for r in res.rows if r["split"] == split and r["metric"] == metric]


def test_short_run_learns_with_ten_validation_passes(tmp_path):
    # 100 Adam steps on 48 px images (about 15 s of CPU); measured test IoU 0.62, loss 0.70 -> 0.43
    cfg = TrainConfig(
        DataSpec(n_train=192, n_val=64, image_size=48, fg_frac=0.15, n_objects=3),
        loss="bce",
        steps=100,
        width=8,
        lr=3e-3,
        progress=False,
        out_dir=str(tmp_path),
    )
    res = fit(cfg)
    s = res.summary
    train_loss = [v for _, v in _rows(res, "train", "loss")]
    assert [step for step, _ in _rows(res, "val", "miou_d@tuned")] == list(range(10, 101, 10))
    assert train_loss[-1] < 0.7 * train_loss[0]
    assert s["steps"] == 100 and s["best_step"] in range(10, 101, 10) and s["collapsed"] is False
    assert s["test"]["miou_d"] > 0.5, s
    assert s["test"]["miou_d@tuned"] >= s["test"]["miou_d"] - 1e-12
    assert 0 < s["ap"]["test"] <= 1 and s["ap"]["val"] == s["val"]["ap"]
    assert {r["step"] for r in res.rows if r["split"] == "test"} == {s["best_step"]}
    # results.csv is the tidy table of the run, also readable mid-run (written atomically at each pass)
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(res.rows) and {"split", "step", "metric", "value"} <= set(rows[0])
    assert json.loads((tmp_path / "summary.json").read_text())["test"]["miou_d"] == s["test"]["miou_d"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["lr_schedule"] == "cosine" and config["budget"]["warmup_steps"] == 5
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # files follow the umask like any other file (mkstemp alone would leave them 0600)
    umask = os.umask(0)
    os.umask(umask)
    for name in ("results.csv", "summary.json", "config.json", "checkpoint.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


def test_budget_smaller_than_one_epoch_and_zero_step_runs():
    res = fit(TrainConfig(TINY, steps=3, width=4, progress=False))  # 4 steps make an epoch
    assert res.summary["steps"] == 3 and [s for s, _ in _rows(res, "train", "loss")] == [1, 2, 3]
    with pytest.raises(
        ValueError, match="8 training images make no batch of 16: the run would take no optimizer"
    ):
        fit(TrainConfig(DataSpec(n_train=8, n_val=4, image_size=16), steps=5, progress=False))
    with pytest.raises(
        ValueError, match=r"2 epochs x 4 steps per epoch = 8 optimizer steps, fewer than 100.*steps=8"
    ):
        fit(TrainConfig(TINY, epochs=2, progress=False))
    with pytest.raises(ValueError, match="give steps or epochs, not both"):
        TrainConfig(steps=10, epochs=1)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        TrainConfig(steps=0)


def test_profile_budget_is_in_steps():
    cfg = TrainConfig.from_profile("fast", data=DataSpec(n_train=16, n_val=4, image_size=16))
    b = cfg.budget(16)
    assert (b.steps, b.steps_per_epoch, b.eval_every, b.warmup_steps) == (200, 1, 20, 10)
    assert len(b.eval_steps()) >= 10


def test_learning_rate_schedule_and_eval_points():
    b = TrainConfig(steps=200).budget(512)
    lrs = [b.lr_factor(s) for s in range(200)]
    assert lrs[:10] == [pytest.approx((s + 1) / 10) for s in range(10)]  # 5 % linear warm-up
    assert lrs[10] == 1.0 and all(a >= c for a, c in zip(lrs[10:], lrs[11:], strict=False))  # then decays
    assert lrs[105] == pytest.approx(0.5) and lrs[-1] < 1e-3  # cosine: half way at the middle
    const = TrainConfig(steps=200, lr_schedule="constant").budget(512)
    assert {const.lr_factor(s) for s in range(200)} == {1.0}
    assert b.eval_steps() == list(range(20, 201, 20))
    assert TrainConfig(steps=105).budget(512).eval_steps()[-2:] == [100, 105]
    with pytest.raises(ValueError, match="eval_every=50 gives 4 validation passes"):
        TrainConfig(steps=200, eval_every=50).budget(512)
    with pytest.raises(ValueError, match="lr_schedule must be one of cosine, constant"):
        TrainConfig(lr_schedule="step")


def test_schedule_parsing_and_errors():
    assert parse_schedule("bce:2,soft_iou", 5) == [("bce", 2), ("soft_iou", 3)]
    assert parse_schedule("bce:1,0.5*bce+0.5*soft_iou:2", 3) == [("bce", 1), ("0.5*bce+0.5*soft_iou", 2)]
    with pytest.raises(ValueError, match="needs ':steps'"):
        parse_schedule("bce,soft_iou", 5)
    with pytest.raises(ValueError, match="take 6 steps, leaving none of the run's 5"):
        parse_schedule("bce:6,soft_iou", 5)
    with pytest.raises(ValueError, match="covers 4 steps; the run has 5"):
        parse_schedule("bce:2,soft_iou:2", 5)
    with pytest.raises(ValueError, match="available losses: .*soft_iou"):
        parse_schedule("bce:2,nope", 5)


def test_schedule_switches_loss_after_k_steps():
    def losses_of(spec):
        res = fit(TrainConfig(TINY, loss=spec, steps=4, eval_every=1, width=4, progress=False))
        return [v for _, v in _rows(res, "train", "loss")]

    sched, plain = losses_of("bce:2,soft_iou"), losses_of("bce")
    assert sched[:2] == plain[:2]  # same seed, same first phase: identical first two steps
    assert sched[2] != plain[2] and 0 <= sched[2] <= 1  # then soft IoU (a loss in [0, 1])


def test_best_validation_weights_are_the_result(monkeypatch):
    """A run whose validation IoU peaks early reports the early weights and tests them."""
    seen = []
    real = engine.evaluate_split

    def scripted(run, split, val_thresholds=None):
        out = real(run, split, val_thresholds)
        fingerprint = sum(float(p.detach().double().sum()) for p in run.model.parameters())
        if split == 1:  # validation: IoU peaks at the 3rd pass (step 6)
            seen.append(fingerprint)
            out[0]["miou_d@tuned"] = [0.1, 0.2, 0.9, 0.3, 0.4][len(seen) - 1]
        else:
            seen.append(("test", fingerprint))
        return out

    monkeypatch.setattr(engine, "evaluate_split", scripted)
    res = fit(TrainConfig(TINY, steps=10, eval_every=2, width=4, progress=False))
    assert res.summary["best_step"] == 6 and res.summary["val"]["miou_d@tuned"] == 0.9
    assert seen[-1] == ("test", seen[2]) != ("test", seen[4])  # tested at the step-6 weights
    assert sum(float(p.detach().double().sum()) for p in res.model.parameters()) == seen[2]


def test_select_keeps_the_first_best_and_ignores_nan():
    model = torch.nn.Linear(2, 1)
    best = engine.Best()
    assert engine.select(best, 1, {"miou_d": 0.1, "miou_d@tuned": math.nan}, model.state_dict()) is False
    assert engine.select(best, 2, {"miou_d": 0.1, "miou_d@tuned": 0.5}, model.state_dict()) is True
    with torch.no_grad():
        model.weight.add_(1)
    assert engine.select(best, 3, {"miou_d": 0.2, "miou_d@tuned": 0.5}, model.state_dict()) is False  # a tie
    assert best.step == 2 and not torch.equal(best.state["weight"], model.weight)
    assert engine.select(best, 4, {"miou_d": 0.6}, model.state_dict()) is True  # multi-class: miou_d


def test_seeds_trained_together_match_separate_runs(tmp_path):
    """fit_group trains 2 seeds as one grouped network: each run's numbers are its single run's (up to
    float rounding of grouped convolutions), and each folder holds a single run's checkpoint."""
    cfgs = [
        TrainConfig(
            TINY, steps=6, eval_every=3, width=4, seed=s, progress=False, out_dir=str(tmp_path / f"s{s}")
        )
        for s in (0, 1)
    ]
    together = engine.fit_group(cfgs)
    for cfg, res in zip(cfgs, together, strict=True):
        alone = fit(dataclasses.replace(cfg, out_dir=None))
        a, b = (
            dict(((r["split"], r["step"], r["metric"]), r["value"]) for r in x.rows) for x in (res, alone)
        )
        assert a.keys() == b.keys()
        for key in a:
            if key[2] not in ("images_per_s", "threshold@tuned", "threshold@val"):
                assert a[key] == pytest.approx(b[key], abs=2e-3, nan_ok=True), key
        assert res.summary["seeds_together"] == 2 and res.summary["best_step"] == alone.summary["best_step"]
        # the checkpoint is a single run's: fit(cfg) alone finds the run finished and only re-tests it
        again = fit(cfg)
        assert again.summary["steps"] == 6 and again.summary["test"]["miou_d"] == pytest.approx(
            res.summary["test"]["miou_d"], abs=1e-5
        )
    with pytest.raises(ValueError, match="differ in more than seed and out_dir"):
        engine.fit_group([cfgs[0], dataclasses.replace(cfgs[1], lr=1e-3)])


def test_device_that_is_missing_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(
        ValueError, match="device 'cuda' asked for, but this torch build or machine has no CUDA"
    ):
        select_device("cuda")
    with pytest.raises(ValueError, match="device 'cuda:0' asked for"):
        fit(TrainConfig(TINY, steps=2, device="cuda:0", progress=False))
    with pytest.raises(ValueError, match="not a torch device string"):
        select_device("gpu0")


def test_out_dir_guards(tmp_path):
    run = tmp_path / "run"
    fit(TrainConfig(TINY, steps=2, width=4, progress=False, out_dir=str(run)))
    # another configuration's run is never overwritten silently, resume or not
    other = TrainConfig(TINY, steps=2, width=4, seed=1, progress=False, out_dir=str(run), resume=False)
    with pytest.raises(
        ValueError, match="holds the run of another configuration.*overwrite=True \\(--overwrite\\)"
    ):
        fit(other)
    (run / ".results.csv.abc123.tmp").write_text("half a file")  # left by a killed write
    res = fit(dataclasses.replace(other, overwrite=True))
    assert res.summary["steps"] == 2 and json.loads((run / "config.json").read_text())["seed"] == 1
    assert not list(run.glob(".*.tmp"))
    # a sweep's folder (runs in sub-folders) is not a run folder
    with pytest.raises(ValueError, match="holds a sweep \\(1 runs in sub-folders, e.g. 'run'\\)"):
        fit(TrainConfig(TINY, steps=2, width=4, progress=False, out_dir=str(tmp_path)))


def test_binary_ignored_pixels_are_neutral():
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 6, 6, requires_grad=True)
    target = torch.randint(0, 2, (2, 6, 6))
    target[:, :2] = 255  # ignored rows
    for spec in ("soft_iou", "lovasz_hinge", "soft_dice"):
        z, y = loss_inputs(logits, target, 1, 255)
        loss = build_loss(spec, {}, 1, 255)(z, y)
        ref = build_loss(spec, {}, 1, None)(logits[:, :, 2:], target[:, None, 2:].float())
        assert loss.item() == pytest.approx(ref.item(), abs=1e-6), spec
        (grad,) = torch.autograd.grad(loss, logits)
        assert grad[:, :, :2].abs().max() == 0


def test_multiclass_losses_get_ignore_index():
    loss = build_loss("0.5*cross_entropy+0.5*lovasz_softmax", {}, 3, 11)
    kwargs = [m.kwargs for m in loss.modules() if hasattr(m, "kwargs")]
    assert kwargs and all(k["ignore_index"] == 11 for k in kwargs)


_RUN = """
import sys, torch
torch.set_num_threads(1)
from iou_lib.train import DataSpec, TrainConfig, fit
cfg = TrainConfig(DataSpec(n_train=128, n_val=32, image_size=32, fg_frac=0.1), loss="bce:16,soft_iou",
                  steps=40, eval_every=4, width=8, progress=False, out_dir=sys.argv[1])
fit(cfg)
"""


def _run(out):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", _RUN, str(out)], env=env)


def _metrics(out):
    with open(out / "results.csv") as f:
        return {
            (r["split"], r["step"], r["metric"]): r["value"]
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
    step = torch.load(killed / "checkpoint.pt", weights_only=False)["step"]
    assert step < 40 and not (killed / "summary.json").exists(), "the run finished before it was killed"
    resumed = _run(killed)
    assert resumed.wait(timeout=180) == 0 and ref.wait(timeout=180) == 0
    a, b = _metrics(killed), _metrics(full)
    assert a == b  # every train loss and every val/test metric, bit for bit (as printed)
    assert ("val", "40", "miou_d") in a and sum(k[0] == "val" and k[2] == "ap" for k in a) == 10
    best = json.loads((killed / "summary.json").read_text())["best_step"]
    assert ("test", str(best), "miou_d") in a and best == json.loads((full / "summary.json").read_text())[
        "best_step"
    ]


@needs_camvid
def test_camvid_multiclass_and_binary_runs():
    for cls, loss in ((None, "0.5*cross_entropy+0.5*lovasz_softmax"), ("car", "soft_iou")):
        res = fit(
            TrainConfig(
                DataSpec(kind="camvid", path=str(CAMVID), class_name=cls, scale=4),
                loss=loss,
                steps=12,
                width=4,
                depth=2,
                batch_size=32,
                progress=False,
            )
        )
        s = res.summary["test"]
        assert 0 <= s["miou_d"] <= 1 and 0 < s["pixel_acc"] <= 1
        if cls is None:
            assert {f"iou_d/{c}" for c in ("Sky", "Road", "Bicyclist")} <= set(s)
        else:
            assert 0 <= s["ap"] <= 1 and 0 < res.summary["fg_frac"] < 0.2


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_run_learns_like_cpu():
    data = DataSpec(n_train=192, n_val=64, image_size=48, fg_frac=0.15, n_objects=3)
    res = fit(TrainConfig(data, loss="bce", steps=100, width=8, lr=3e-3, device="cuda", progress=False))
    assert next(res.model.parameters()).is_cuda
    loss = [v for _, v in _rows(res, "train", "loss")]
    assert all(map(math.isfinite, loss)) and loss[-1] < 0.6 * loss[0]
    assert res.summary["test"]["miou_d"] > 0.5, res.summary


def test_run_grid_trains_seeds_together_and_skips_finished_runs(tmp_path):
    from iou_lib.experiments import grid_configs, run_grid

    base = TrainConfig(TINY, steps=4, eval_every=2, width=4, progress=False)
    cfgs = grid_configs(base, ["bce", "soft_iou"], None, [0, 1], tmp_path)
    done = []
    table = run_grid(
        cfgs,
        tmp_path,
        on_done=lambda c, r: done.append((c.name, r and r.summary["seeds_together"])),
        seeds_together=True,
    )
    assert sorted(done) == sorted((c.name, 2) for c in cfgs)  # two groups of two seeds
    assert set(table["run"]) == {c.name for c in cfgs} and "step" in table
    done.clear()
    run_grid(cfgs, tmp_path, on_done=lambda c, r: done.append(r))
    assert done == [None] * 4


def test_run_grid_groups_seeds_on_gpu_only_by_default(tmp_path):
    """On a CPU the default trains seeds one at a time (oneDNN's channels_last kernels beat a grouped
    convolution there); the engine's models and batches are channels_last on every device."""
    from iou_lib.experiments import grid_configs, run_grid

    base = TrainConfig(TINY, steps=4, eval_every=2, width=4, device="cpu", progress=False)
    done = []
    run_grid(
        grid_configs(base, ["bce"], None, [0, 1], tmp_path),
        tmp_path,
        on_done=lambda c, r: done.append(r.summary["seeds_together"]),
    )
    assert done == [1, 1]
    res = fit(dataclasses.replace(base, out_dir=str(tmp_path / "one")))
    assert any(
        p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
        for p in res.model.parameters()
    )


def test_build_loss_states_the_task_explicitly() -> None:
    """The engine passes mode= to every loss that takes it, so shapes never decide the task: a binary
    run's loss refuses a multi-channel prediction instead of pooling its channels."""
    assert "mode='multiclass'" in repr(build_loss("soft_iou", {}, 3, None))
    assert "mode='binary'" in repr(build_loss("lovasz_hinge", {}, 1, None))
    assert "mode='multilabel'" in repr(build_loss("soft_iou", {"soft_iou": {"mode": "multilabel"}}, 1, None))
    with pytest.raises(ValueError, match="mode='binary'"):
        logits, target = torch.randn(2, 3, 8, 8), torch.randint(0, 2, (2, 3, 8, 8)).float()
        build_loss("soft_iou", {}, 1, None)(logits, target)


def test_run_names_say_which_data(tmp_path):
    """Default run names: the foreground fraction (synthetic), the folder's name and class (folder data),
    the CamVid class or 'all' (CamVid)."""
    drive = tmp_path / "drive"
    cfg = TrainConfig(TINY, loss="soft_iou", seed=3)
    assert cfg.name == f"fg{TINY.fg_frac:g}_soft_iou_unet_s3"
    folder = TrainConfig(DataSpec(kind="folder", path=str(drive)), loss="bce")
    assert folder.name == "folder-drive_bce_unet_s0"
    picked = TrainConfig(DataSpec(kind="folder", path=str(drive), class_name="vessel"), loss="bce")
    assert picked.name == "folder-drive-vessel_bce_unet_s0"
    assert TrainConfig(DataSpec(kind="camvid"), loss="bce").name == "camvid-all_bce_unet_s0"
