#!/usr/bin/env bash
# Set up the workbook's environment in .venv (idempotent). Usage: bash tools/setup.sh [lab|test]
#   lab  : the library, JupyterLab and the widget front end
#   test : lab + the test tools, the reference libraries and a headless browser for the browser test
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-lab}"
python="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
pip=".venv/bin/python -m pip"
$pip install --quiet --upgrade pip
# torch is pinned exactly: on CPU-only machines a local CPU wheel of 2.13.0 is used when present.
extras="lab"
[ "$what" = "test" ] && extras="lab,test"
$pip install --quiet "torch==2.13.0" -e ".[$extras]"

if [ "$what" = "test" ] && ! command -v chromium >/dev/null 2>&1; then
    # The browser test drives Debian's Chromium (test tools cannot download their own browsers here).
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
            || echo "setup: could not install chromium; the browser test will be skipped" >&2
    else
        echo "setup: chromium not found and not root; the browser test will be skipped" >&2
    fi
fi
