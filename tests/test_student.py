"""tools/make_student.py: student copies keep exercises, drop solutions, and never eat a student's edits.

The copies live in the git-ignored ``notebooks/student/``; these tests build them in a temporary folder.
"""

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
TOOL = REPO / "tools" / "make_student.py"
_spec = importlib.util.spec_from_file_location("make_student", TOOL)
make_student = importlib.util.module_from_spec(_spec)
sys.modules["make_student"] = make_student  # its dataclass looks its module up by name
_spec.loader.exec_module(make_student)

SOURCES = make_student.sources(NOTEBOOKS)


def _tagged(nb, tag: str) -> list[str]:
    return [c.source for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


def test_there_are_notebooks_to_copy():
    assert SOURCES, "no notebooks/NN_topic.ipynb found"


def test_the_student_folder_is_git_ignored_and_untracked():
    probe = "notebooks/student/03_anything.ipynb"
    ignored = subprocess.run(["git", "check-ignore", "-q", probe], cwd=REPO)
    assert ignored.returncode == 0, f"{probe} is not git-ignored"
    tracked = subprocess.run(
        ["git", "ls-files", "notebooks/student"], cwd=REPO, capture_output=True, text=True
    )
    assert tracked.stdout == "", f"student copies are still tracked:\n{tracked.stdout}"


@pytest.fixture(scope="module")
def copies(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("student")
    make_student.update(NOTEBOOKS, dest)
    return dest


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_copy_keeps_exercises_and_drops_solutions(source, copies):
    full = nbformat.read(source, as_version=4)
    student = nbformat.read(copies / source.name, as_version=4)
    nbformat.validate(student)
    assert _tagged(student, "solution") == []
    assert _tagged(student, "exercise") == _tagged(full, "exercise")
    for solution in _tagged(full, "solution"):
        assert solution not in [c.source for c in student.cells], "a solution's code survived untagged"
    assert all(c.outputs == [] and c.execution_count is None for c in student.cells if c.cell_type == "code")
    # Everything that is not a solution is still there, in order (after the student-copy note).
    kept = [c.source for c in full.cells if "solution" not in c.get("metadata", {}).get("tags", [])]
    assert [c.source for c in student.cells[1:]] == kept
    assert "widgets" not in student.metadata


def _toy_notebook() -> nbformat.NotebookNode:
    def code(src, tags=(), outputs=()):
        cell = nbformat.v4.new_code_cell(src, metadata={"tags": list(tags)} if tags else {})
        cell.outputs, cell.execution_count = [nbformat.v4.new_output("stream", text=o) for o in outputs], 1
        return cell

    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Toy\n\nExercise: write `f`."),
            code("def f(x):\n    ...  # your code\ncheck_f(f)", tags=["exercise"]),
            code("def f(x):\n    return 2 * x\ncheck_f(f)", tags=["solution"], outputs=["ok\n"]),
            code("print(1)", outputs=["1\n"]),
        ]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return nb


def test_student_copy_of_a_toy_notebook():
    nb = _toy_notebook()
    before = nbformat.writes(nb)
    student = make_student.student_copy(nb, "09_toy.ipynb")
    assert nbformat.writes(nb) == before, "the source notebook was modified"
    assert [c.source.split("\n")[0] for c in student.cells[1:]] == ["# Toy", "def f(x):", "print(1)"]
    assert student.cells[2].metadata["tags"] == ["exercise"]
    assert student.cells[3].outputs == [] and student.cells[3].execution_count is None
    note = student.cells[0].source
    assert "Student copy" in note and "09_toy.ipynb" in note and "--only 09 --force" in note
    assert "widgets" not in student.metadata
    assert student.metadata["jupytext"] == {"formats": "ipynb"}
    # Re-creating or re-executing the notebook (new cell ids, run-time metadata) does not change the copy.
    again = copy.deepcopy(nb)
    for i, cell in enumerate(again.cells):
        cell.id = f"fresh{i}"
        cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00"}
    again.metadata["language_info"] = {"name": "python"}
    rendered_again = make_student.render(make_student.student_copy(again, "09_toy.ipynb"))
    assert rendered_again == make_student.render(student)


def test_a_cell_tagged_both_ways_is_refused():
    nb = _toy_notebook()
    nb.cells[1].metadata["tags"] = ["exercise", "solution"]
    with pytest.raises(ValueError, match="tagged both"):
        make_student.student_copy(nb, "09_toy.ipynb")


@pytest.fixture
def toy_src(tmp_path) -> Path:
    src = tmp_path / "nb"
    src.mkdir()
    for name in ("03_toy.ipynb", "04_other.ipynb"):
        nbformat.write(_toy_notebook(), src / name)
    return src


def _answer(path: Path) -> None:
    """Edit a copy as a student would: fill in the exercise cell."""
    nb = nbformat.read(path, as_version=4)
    nb.cells[2].source = "def f(x):\n    return x + x  # my answer\ncheck_f(f)"
    nbformat.write(nb, path)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, cwd=REPO)


def test_an_edited_copy_survives_and_only_force_resets_it(toy_src):
    dest = toy_src / "student"
    first = _run("--src", str(toy_src))
    assert first.returncode == 0 and "2 written" in first.stdout, first.stderr
    _answer(dest / "03_toy.ipynb")
    edited = (dest / "03_toy.ipynb").read_text()

    again = _run("--src", str(toy_src))  # plain re-run: the answer stays
    assert again.returncode == 0
    assert (dest / "03_toy.ipynb").read_text() == edited
    assert "kept your edited 03_toy.ipynb" in again.stdout and "--only 03 --force" in again.stdout

    # The notebook changes upstream: the untouched copy follows it, the edited copy is still kept.
    for name in ("03_toy.ipynb", "04_other.ipynb"):
        nb = nbformat.read(toy_src / name, as_version=4)
        nb.cells[0].source += "\n\nA new hint."
        nbformat.write(nb, toy_src / name)
    update = _run("--src", str(toy_src))
    assert "1 written" in update.stdout
    assert "A new hint." in (dest / "04_other.ipynb").read_text()
    assert (dest / "03_toy.ipynb").read_text() == edited

    not_forced = _run("--src", str(toy_src), "--only", "03")  # --only alone does not discard work
    assert (dest / "03_toy.ipynb").read_text() == edited and "kept your edited" in not_forced.stdout

    _answer(dest / "04_other.ipynb")
    reset = _run("--src", str(toy_src), "--only", "03", "--force")  # reset one notebook, not the other
    assert reset.returncode == 0 and "1 written" in reset.stdout
    assert "my answer" not in (dest / "03_toy.ipynb").read_text()
    assert "A new hint." in (dest / "03_toy.ipynb").read_text()
    assert "my answer" in (dest / "04_other.ipynb").read_text()
    manifest = json.loads((dest / make_student.MANIFEST).read_text())
    assert set(manifest) == {"03_toy.ipynb", "04_other.ipynb"}


def test_a_copy_that_predates_the_manifest_counts_as_edited(toy_src):
    dest = toy_src / "student"
    dest.mkdir()
    (dest / "03_toy.ipynb").write_text("{}")  # written by hand or by an older version of the tool
    report = make_student.update(toy_src, dest)
    assert report.kept_edited == ["03_toy.ipynb"] and report.written == ["04_other.ipynb"]
    assert (dest / "03_toy.ipynb").read_text() == "{}"


def test_unknown_notebook_for_only_is_a_clear_error(toy_src):
    done = _run("--src", str(toy_src), "--only", "07")
    assert done.returncode == 2
    assert "--only 07: no such notebook" in done.stderr and "03_toy" in done.stderr
    assert "Traceback" not in done.stderr
