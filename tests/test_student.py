"""tools/make_student.py and the committed student copies in notebooks/student/.

The committed copies must be current, keep every exercise cell (with its self-check) and no solution
cell, and be valid notebooks without outputs. The tool itself is checked on a small notebook.
"""

import copy
import importlib.util
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
STUDENT = NOTEBOOKS / "student"
_spec = importlib.util.spec_from_file_location("make_student", REPO / "tools" / "make_student.py")
make_student = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_student)

SOURCES = make_student.sources(NOTEBOOKS)


def _tagged(nb, tag: str) -> list[str]:
    return [c.source for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


def test_there_are_notebooks_to_copy():
    assert SOURCES, "no notebooks/NN_topic.ipynb found"


def test_committed_copies_are_up_to_date():
    problems = make_student.stale(NOTEBOOKS, STUDENT)
    assert not problems, f"run `python tools/make_student.py`: {problems}"


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_copy_keeps_exercises_and_drops_solutions(source):
    full = nbformat.read(source, as_version=4)
    copy_path = STUDENT / source.name
    assert copy_path.exists(), f"{copy_path} missing"
    student = nbformat.read(copy_path, as_version=4)
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

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Toy\n\nExercise: write `f`."),
        code("def f(x):\n    ...  # your code\ncheck_f(f)", tags=["exercise"]),
        code("def f(x):\n    return 2 * x\ncheck_f(f)", tags=["solution"], outputs=["ok\n"]),
        code("print(1)", outputs=["1\n"]),
    ])
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
    assert "Student copy" in student.cells[0].source and "09_toy.ipynb" in student.cells[0].source
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


def test_check_mode_flags_missing_stale_and_orphaned_copies(tmp_path, capsys):
    src, dest = tmp_path / "nb", tmp_path / "nb" / "student"
    src.mkdir()
    nbformat.write(_toy_notebook(), src / "09_toy.ipynb")
    assert make_student.main(["--src", str(src), "--check"]) == 1  # missing
    assert make_student.main(["--src", str(src)]) == 0
    assert make_student.main(["--src", str(src), "--check"]) == 0
    nb = nbformat.read(src / "09_toy.ipynb", as_version=4)
    nb.cells[1].source += "\n# a new hint"
    nbformat.write(nb, src / "09_toy.ipynb")
    assert make_student.main(["--src", str(src), "--check"]) == 1  # out of date
    make_student.main(["--src", str(src)])
    (dest / "08_gone.ipynb").write_text((dest / "09_toy.ipynb").read_text())
    assert make_student.main(["--src", str(src), "--check"]) == 1  # orphaned copy
    err = capsys.readouterr().err
    assert "09_toy.ipynb: missing" in err and "out of date" in err and "08_gone.ipynb" in err
    make_student.main(["--src", str(src)])
    assert sorted(p.name for p in dest.iterdir()) == ["09_toy.ipynb"]
