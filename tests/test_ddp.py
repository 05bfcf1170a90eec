"""The trainer under torchrun: two CPU processes (gloo), counts reduced over ranks, only rank 0 writes."""

import json
import os
import subprocess
import sys

import pytest
import torch

from iou_lib.data import load_splits
from iou_lib.models import build_model
from iou_lib.train import TrainConfig, batches, evaluate

_SCRIPT = """
import os, sys, torch
torch.set_num_threads(1)
from iou_lib.train import DataSpec, TrainConfig, fit
cfg = TrainConfig(DataSpec(n_train=32, n_val=9, image_size=24, fg_frac=0.2), steps=8, width=4, depth=2,
                  batch_size=4, progress=False, out_dir=sys.argv[1])
res = fit(cfg)
weights = sum(float(p.double().abs().sum()) for p in res.model.parameters())
print("RANK", os.environ["RANK"], os.environ["WORLD_SIZE"], res.summary["val"]["miou_d"], repr(weights))
"""


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_cpu_processes(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(tmp_path / "out"),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = sorted(line.split() for line in proc.stdout.splitlines() if line.startswith("RANK"))
    assert [line[1:3] for line in lines] == [["0", "2"], ["1", "2"]]
    assert lines[0][3] == lines[1][3]  # both ranks report the same (all-reduced) metric
    assert lines[0][4] == lines[1][4]  # different shards, synchronised gradients: identical weights

    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt",
        "config.json",
        "results.csv",
        "summary.json",
    ]
    summary = json.loads((out / "summary.json").read_text())
    # The reduced validation IoU equals a single-process evaluation of the saved model on all 9 images
    # (shards of 5 and 4 images: 2 and 1 batches of 4, nothing padded or counted twice).
    cfg = TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
    _, val, _ = load_splits(cfg.data, seed=cfg.seed)
    model = build_model(cfg.model, 3, 1, cfg.width, cfg.depth, cfg.norm)
    # (the summary's validation metrics are those of the selected, best-validation weights)
    model.load_state_dict(torch.load(out / "checkpoint.pt", weights_only=False)["best"]["state"])
    ref = evaluate(model, batches(val, range(len(val)), 5))
    for key in ("miou_d", "miou_i", "miou_d@tuned", "ap"):
        assert summary["val"][key] == pytest.approx(ref[key], abs=1e-6), key
