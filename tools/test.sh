#!/usr/bin/env bash
# Set everything up from a fresh clone and run the whole test suite (unit, property, reference,
# doctests, notebooks through nbval in the `fast` profile, the browser test). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh test
export IOU_PROFILE="${IOU_PROFILE:-fast}"
if [ -z "${IOU_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
    IOU_DATA_DIR="$(cd ../shared/data && pwd)"
    export IOU_DATA_DIR
fi
.venv/bin/ruff check .
.venv/bin/python tools/check_pairs.py notebooks
exec .venv/bin/python -m pytest "$@"
