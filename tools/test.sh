#!/usr/bin/env bash
# Set everything up from a fresh clone and run the whole test suite (unit, property, reference,
# doctests, notebooks through nbval in the `fast` profile, the browser test). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh test
export IOU_PROFILE="${IOU_PROFILE:-fast}"
# CamVid tests and notebook 08's live runs need the data set: set IOU_DATA_DIR (see data/README.md) to
# include them; without it they are skipped with a reason that names IOU_DATA_DIR.
.venv/bin/ruff check .
.venv/bin/python tools/check_pairs.py notebooks
exec .venv/bin/python -m pytest "$@"
