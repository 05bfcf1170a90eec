"""tools/check_pairs.py: agreeing pairs pass; edits, missing twins and cell-type changes are flagged."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "check_pairs.py"
_spec = importlib.util.spec_from_file_location("check_pairs", TOOL)
check_pairs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_pairs)


def _notebook(*sources: tuple[str, str]) -> nbformat.NotebookNode:
    make = {"markdown": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell}
    nb = nbformat.v4.new_notebook(cells=[make[kind](src) for kind, src in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


CELLS = (("markdown", "# Title\n\nSome prose."), ("code", "x = 1\nassert x == 1"))


def _write_pair(folder: Path, stem: str, nb: nbformat.NotebookNode) -> None:
    jupytext.write(nb, folder / f"{stem}.py", fmt="py:percent")
    jupytext.write(nb, folder / f"{stem}.ipynb")


def test_agreeing_pair_passes(tmp_path):
    _write_pair(tmp_path, "01_a", _notebook(*CELLS))
    assert check_pairs.check(tmp_path) == []
    assert check_pairs.main([str(tmp_path)]) == 0


def test_outputs_in_the_ipynb_do_not_count(tmp_path):
    nb = _notebook(*CELLS)
    _write_pair(tmp_path, "01_a", nb)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="hello\n")]
    nb.cells[1].execution_count = 3
    jupytext.write(nb, tmp_path / "01_a.ipynb")
    assert check_pairs.check(tmp_path) == []


def test_edited_source_is_flagged(tmp_path, capsys):
    _write_pair(tmp_path, "01_a", _notebook(*CELLS))
    jupytext.write(_notebook(CELLS[0], ("code", "x = 2")), tmp_path / "01_a.py", fmt="py:percent")
    problems = check_pairs.check(tmp_path)
    assert len(problems) == 1 and "01_a.py and .ipynb disagree: cell 1 differs in source" in problems[0]
    assert check_pairs.main([str(tmp_path)]) == 1
    assert "disagree" in capsys.readouterr().err


def test_changed_cell_type_and_count_are_flagged(tmp_path):
    _write_pair(tmp_path, "01_a", _notebook(*CELLS))
    jupytext.write(_notebook(("code", CELLS[0][1]), CELLS[1]), tmp_path / "01_a.ipynb")
    assert "differs in cell type" in check_pairs.check(tmp_path)[0]
    jupytext.write(_notebook(*CELLS, ("code", "y = 3")), tmp_path / "01_a.ipynb")
    assert "cell counts differ: .py has 2, .ipynb has 3" in check_pairs.check(tmp_path)[0]


def test_missing_twins_are_flagged_both_ways(tmp_path):
    nb = _notebook(*CELLS)
    jupytext.write(nb, tmp_path / "01_only_py.py", fmt="py:percent")
    jupytext.write(nb, tmp_path / "02_only_ipynb.ipynb")
    problems = check_pairs.check(tmp_path)
    assert any("01_only_py.py has no paired 01_only_py.ipynb" in p for p in problems)
    assert any("02_only_ipynb.ipynb has no paired 02_only_ipynb.py" in p for p in problems)
    assert len(problems) == 2


def test_student_folder_is_ignored(tmp_path):
    _write_pair(tmp_path, "01_a", _notebook(*CELLS))
    (tmp_path / "student").mkdir()
    jupytext.write(_notebook(*CELLS), tmp_path / "student" / "01_a.ipynb")
    assert check_pairs.check(tmp_path) == []


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        check_pairs.check(tmp_path / "nope")


def test_command_line_reports_a_mismatch_with_exit_code_1(tmp_path):
    _write_pair(tmp_path, "01_a", _notebook(*CELLS))
    (tmp_path / "01_a.ipynb").unlink()
    bad = subprocess.run([sys.executable, str(TOOL), str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 1 and "01_a.py has no paired 01_a.ipynb" in bad.stderr
