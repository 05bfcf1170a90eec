"""The project's promises about its own set-up: pins, the conda/pip agreement, the CI command."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

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
    for extra in ("lab", "test"):
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
