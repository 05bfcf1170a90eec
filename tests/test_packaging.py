"""The project's promises about its own set-up: pins, the conda/pip agreement, the CI command, and a
light core install (torch and numpy only) for people who want the losses and metrics alone."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _conda_pip_requirements() -> list[str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    reqs = []
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not stripped.startswith("- "):
            break
        reqs.append(stripped[2:].strip())
    return [r for r in reqs if not r.startswith("-e")]


def test_torch_is_pinned_exactly():
    deps = _pyproject()["project"]["dependencies"]
    assert "torch==2.13.0" in deps


def test_environment_yml_matches_pyproject():
    project = _pyproject()["project"]
    pip_side = list(project["dependencies"])
    for extra in ("book", "lab", "test"):
        pip_side += project["optional-dependencies"][extra]
    conda_side = _conda_pip_requirements()
    # Same packages with the same version specifiers, whichever file a user starts from.
    assert sorted(set(pip_side)) == sorted(set(conda_side)), (
        f"only in pyproject: {sorted(set(pip_side) - set(conda_side))}; "
        f"only in environment.yml: {sorted(set(conda_side) - set(pip_side))}"
    )
    assert len({_name(r) for r in conda_side}) == len(conda_side), "a package is listed twice"


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    commands = [line.strip() for block in blocks for line in block.splitlines() if line.strip()]
    assert "bash tools/test.sh" in commands and "bash tools/lab.sh" in commands
    ci = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert ci[-1] == "bash tools/test.sh"


BOOK_STACK = ("pandas", "matplotlib", "seaborn", "ipywidgets", "tqdm", "PIL", "torchmetrics", "IPython")
CORE_CHECK = f"""
import importlib.metadata, importlib.util, sys
import torch
from iou_lib import losses, metrics, relax
z, y = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
assert abs(losses.SoftIoULoss(per_image=True)(z, y).item() - 0.5) < 1e-6
assert metrics.binary_iou(metrics.predict(z + 1), y).item() == 1.0
assert relax.soft_union(torch.ones(3), torch.zeros(3)).item() == 3.0
present = [m for m in {BOOK_STACK} if importlib.util.find_spec(m) is not None]
assert not present, f"the core venv can import {{present}}"
core = [r for r in importlib.metadata.requires("iou-workbook") if "extra ==" not in r]
assert sorted(core) == ["numpy", "torch==2.13.0"], core
print("core ok:", losses.__file__)
"""


def test_core_dependencies_are_torch_and_numpy_and_the_book_stack_is_an_extra():
    project = _pyproject()["project"]
    assert sorted(project["dependencies"]) == ["numpy", "torch==2.13.0"]
    book = {_name(r) for r in project["optional-dependencies"]["book"]}
    assert {"pandas", "matplotlib", "seaborn", "ipywidgets", "tqdm", "pillow"} <= book
    setup = (ROOT / "tools" / "setup.sh").read_text()
    assert 'lab) extras="book,lab"' in setup and 'test) extras="book,lab,test"' in setup


def test_importing_the_core_does_not_import_the_book_stack():
    code = (
        "import sys; import iou_lib.losses, iou_lib.metrics, iou_lib.relax; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {BOOK_STACK[:4] + BOOK_STACK[5:]!r}))"
    )  # not tqdm: torch itself imports it when it is installed
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def _distribution_closure(names: list[str]) -> set[str]:
    """The installed distributions ``names`` need (their requirements without markers, recursively)."""
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [_name(r) for r in importlib.metadata.requires(name) or [] if ";" not in r]
    return seen


def test_the_core_installs_alone_into_a_fresh_venv(tmp_path):
    """A fresh venv that sees only torch and numpy (with their own requirements) gets the project with
    ``--no-deps``; the core then imports and computes, and the book stack is not importable there.

    To stay fast, torch is not reinstalled: the venv sees this environment's torch, numpy and their
    requirements through symbolic links (nothing else of this environment), via a ``.pth`` file.
    """
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    if not python.exists():
        pytest.skip("venv layout without bin/python (not a POSIX platform)")
    shared = tmp_path / "torch_only"
    shared.mkdir()
    # setuptools: the build backend, for the --no-build-isolation install below (not a runtime need)
    for dist_name in _distribution_closure(["torch", "numpy", "setuptools"]):
        dist = importlib.metadata.distribution(dist_name)
        for top in {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            link, source = shared / top, Path(dist.locate_file(top))
            if source.exists() and not link.exists():
                link.symlink_to(source)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "torch_only.pth").write_text(str(shared) + "\n")
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps"]
    install += ["--no-build-isolation", "--no-index", str(ROOT)]
    env = {**os.environ, "PIP_NO_CACHE_DIR": "1"}
    subprocess.run(install, check=True, cwd=tmp_path, env=env, capture_output=True, text=True)
    out = subprocess.run(
        [str(python), "-c", CORE_CHECK], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"core ok: {site}" in out.stdout  # the installed copy, not the repository's
