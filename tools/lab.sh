#!/usr/bin/env bash
# Set everything up from a fresh clone and open the workbook in JupyterLab, rooted at the repository
# (README.md, data/ and notebooks/ all visible) with notebooks/00_welcome.ipynb open.
# Extra arguments go to `jupyter lab`, e.g. on a remote GPU machine:
#   bash tools/lab.sh --no-browser --port 8888          (then tunnel: ssh -L 8888:localhost:8888 host)
#   bash tools/lab.sh --no-browser --ip 0.0.0.0 --port 8888   (listen on every interface: trusted networks only)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh lab
.venv/bin/python tools/make_student.py  # your working copies in notebooks/student/ (edited ones are kept)
args=(--ServerApp.root_dir="$PWD")
[ "$(id -u)" = "0" ] && args+=(--allow-root)  # containers and cloud machines often run as root
exec .venv/bin/jupyter lab "${args[@]}" notebooks/00_welcome.ipynb "$@"
