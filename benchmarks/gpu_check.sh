#!/usr/bin/env bash
# GPU check (a few minutes on one CUDA GPU; torch preinstalled, no internet needed):
#   1. the tests marked `cuda` (they skip on CPU-only machines),
#   2. a short training run in the `gpu` profile (bf16 autocast, channels_last), printing images/s,
#   3. the same run for one epoch with torch.compile (set GPU_CHECK_COMPILE=0 to skip).
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

throughput() {  # mean training images/s over the epochs after the first (warm-up, cudnn autotuning)
    "$PY" - "$1" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["metric"] == "images_per_s"]
vals = [float(r["value"]) for r in rows]
steady = vals[1:] or vals
print(f"train images/s per epoch: {[round(v) for v in vals]}; steady mean {sum(steady) / len(steady):.0f}")
PY
}

echo "== 2. gpu profile, synthetic fg 2 %, soft_iou, 3 epochs"
"$PY" -m iou_lib train --profile gpu --fg-frac 0.02 --loss soft_iou --epochs 3 --no-progress --out "$OUT/run"
throughput "$OUT/run/results.csv"

if [ "${GPU_CHECK_COMPILE:-1}" = "1" ]; then
    echo "== 3. same with torch.compile, 2 epochs"
    "$PY" -m iou_lib train --profile gpu --fg-frac 0.02 --loss soft_iou --epochs 2 --compile --no-progress \
        --out "$OUT/compiled"
    throughput "$OUT/compiled/results.csv"
fi
echo "gpu_check: OK"
