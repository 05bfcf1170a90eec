#!/usr/bin/env bash
# Set everything up from a fresh clone and open the workbook in JupyterLab.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh lab
args=()
[ "$(id -u)" = "0" ] && args+=(--allow-root)  # containers and cloud machines often run as root
exec .venv/bin/jupyter lab "${args[@]}" notebooks/00_welcome.ipynb "$@"
