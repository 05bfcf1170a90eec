#!/usr/bin/env bash
# Set up the workbook's environment in .venv (idempotent). Usage: bash tools/setup.sh [lab|test]
#   lab  : the library, the book's plotting and widget stack, JupyterLab
#   test : lab + the test tools, the reference libraries and a headless browser for the browser test
# Output stays short: pip runs quietly except for torch, the one large download (about 200 MB on CPU,
# several GB with CUDA), whose progress bar stays visible.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-lab}" in
    lab) extras="book,lab" ;;
    test) extras="book,lab,test" ;;
    *) echo "usage: bash tools/setup.sh [lab|test]" >&2; exit 2 ;;
esac
python="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $("$python" --version)"
    "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check)
"${pip[@]}" install --quiet --upgrade pip
# torch is pinned exactly: on CPU-only machines a local CPU wheel of 2.13.0 is used when present.
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null
then
    echo "setup: installing torch==2.13.0 (large download, progress below)"
    "${pip[@]}" install --progress-bar on "torch==2.13.0"
fi
echo "setup: installing iou_lib and the [$extras] extras"
# The message filter hides setuptools' informational note on editable installs (10 lines, no action needed).
PYTHONWARNINGS="ignore:Editable installation" "${pip[@]}" install --quiet "torch==2.13.0" -e ".[$extras]"

if [ "${1:-lab}" = "test" ] && ! command -v chromium >/dev/null 2>&1; then
    # The browser test drives Debian's Chromium (test tools cannot download their own browsers here).
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing chromium for the browser test"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
            || echo "setup: could not install chromium; the browser test will be skipped" >&2
    else
        echo "setup: chromium not found and not root; the browser test will be skipped" >&2
    fi
fi
echo "setup: done. Run the workbook's Python as .venv/bin/python, or first: source .venv/bin/activate"
