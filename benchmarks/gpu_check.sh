#!/usr/bin/env bash
# GPU check (a few minutes on one CUDA GPU; torch preinstalled, no internet needed):
#   1. the tests marked `cuda` (they skip on CPU-only machines),
#   2. a short training run in the `gpu` profile (bf16 autocast, channels_last), printing images/s,
#   3. 5 seeds of that run trained together as one grouped network (images/s per seed),
#   4. the single run with torch.compile (set GPU_CHECK_COMPILE=0 to skip).
# Usage: bash benchmarks/gpu_check.sh            (PYTHON=/path/to/python to choose the interpreter)
# Not run in the development session (no GPU there); every step runs on CPU code paths that are tested.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # iou_lib without installing it
export IOU_PROFILE=gpu
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

"$PY" - <<'PY'
import torch
assert torch.cuda.is_available(), "benchmarks/gpu_check.sh needs a CUDA GPU"
print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, bf16 {torch.cuda.is_bf16_supported()}")
PY

echo "== 1. CUDA tests"
if "$PY" -c "import pytest" 2>/dev/null; then
    # -o addopts= : the project's pytest options need nbval, which a bare GPU image may lack
    "$PY" -m pytest -o addopts= -p no:cacheprovider -m cuda -rs -q tests/test_models.py tests/test_train.py
else
    echo "pytest not installed: CUDA tests skipped"
fi

throughput() {  # training images/s (per seed) between validation passes, after the first (cudnn autotuning)
    "$PY" - "$@" <<'PY'
import csv, sys
for path in sys.argv[1:]:
    vals = [float(r["value"]) for r in csv.DictReader(open(path)) if r["metric"] == "images_per_s"]
    steady = vals[1:] or vals
    print(f"{path}: train images/s {[round(v) for v in vals]}; steady mean {sum(steady) / len(steady):.0f}")
PY
}

echo "== 2. gpu profile, synthetic fg 2 %, soft_iou, 300 steps"
"$PY" -m iou_lib train --profile gpu --fg-frac 0.02 --loss soft_iou --steps 300 --no-progress --out "$OUT/run"
throughput "$OUT/run/results.csv"

echo "== 3. 5 seeds of the same run trained together (one grouped network)"
"$PY" - "$OUT/seeds" <<'PY'
import sys, time
from iou_lib.train import DataSpec, TrainConfig
from iou_lib.train.engine import fit_group
cfgs = [TrainConfig.from_profile("gpu", data=DataSpec.from_profile("gpu", fg_frac=0.02), loss="soft_iou",
                                 steps=300, seed=s, progress=False, out_dir=f"{sys.argv[1]}/s{s}") for s in range(5)]
t0 = time.perf_counter()
res = fit_group(cfgs)
print(f"5 seeds together: {time.perf_counter() - t0:.1f} s wall, test IoU",
      [round(r.summary["test"]["miou_d"], 3) for r in res])
PY
throughput "$OUT"/seeds/s0/results.csv

if [ "${GPU_CHECK_COMPILE:-1}" = "1" ]; then
    echo "== 4. single run with torch.compile, 200 steps"
    "$PY" -m iou_lib train --profile gpu --fg-frac 0.02 --loss soft_iou --steps 200 --compile --no-progress \
        --out "$OUT/compiled"
    throughput "$OUT/compiled/results.csv"
fi
echo "gpu_check: OK"
