#!/usr/bin/env bash
# Set everything up from a fresh clone and open the workbook in JupyterLab.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh lab
exec .venv/bin/jupyter lab notebooks/00_welcome.ipynb "$@"
