"""A throw-away JupyterLab server and a headless Chromium driving it, for the browser test.

Nothing leaks into the user's Jupyter set-up or the repository: the server's runtime, config, data,
workspace and settings directories are temporary, file checkpoints go to a temporary folder, and
autosave is off, so opening and running a notebook never rewrites the committed ``.ipynb``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# User settings for the test's JupyterLab: no autosave (the repository's files stay untouched), every
# cell kept in the DOM (no windowing), and no news or update pop-ups over the notebook.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def chromium_path() -> str | None:
    """The Chromium binary the browser test drives, or None when this machine has none."""
    return CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _jupyter() -> str:
    """The ``jupyter`` next to this interpreter (the project's .venv), else the one on PATH."""
    candidate = Path(sys.executable).with_name("jupyter")
    return str(candidate) if candidate.exists() else "jupyter"


@contextlib.contextmanager
def jupyter_lab(root_dir: Path, tmp: Path, env: dict[str, str] | None = None, timeout: float = 60.0
                ) -> Iterator[str]:
    """Run ``jupyter lab`` on a free port with a random token; yield the URL that logs in.

    The server runs in its own process group and is stopped (SIGTERM, then SIGKILL) on exit.
    """
    token = secrets.token_hex(16)
    port = free_port()
    dirs = {name: tmp / name for name in ("runtime", "config", "data", "settings", "workspaces", "ckpt")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    for rel, value in LAB_SETTINGS.items():
        path = dirs["settings"] / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    full_env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
        **(env or {}),
    }
    cmd = [
        _jupyter(), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
        f"--FileCheckpoints.checkpoint_dir={dirs['ckpt']}", "--LabApp.news_url=",
        "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI runners often run as root
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(proc, f"{base}/api/status?token={token}", timeout, tmp / "server.log")
        yield f"{base}/lab?token={token}"
    finally:
        _stop(proc, f"{base}/api/shutdown?token={token}")
        log.close()


def _wait_for_server(proc: subprocess.Popen, url: str, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        time.sleep(0.3)
    raise TimeoutError(f"jupyter lab did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen, shutdown_url: str) -> None:
    """Stop the server: its shutdown API first (which also stops its kernels), then signals."""
    with contextlib.suppress(OSError):
        urllib.request.urlopen(urllib.request.Request(shutdown_url, method="POST"), timeout=5).close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
