"""README.md as the front page: its quick start runs, its figure exists, its map matches the notebooks."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, flags=re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def test_quick_start_runs():
    blocks = re.findall(r"```python\n(.*?)```", section("Library quick start"), flags=re.S)
    assert len(blocks) == 1
    done = subprocess.run([sys.executable, "-c", blocks[0]], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"IoU per image \d\.\d{3}", done.stdout)
    assert "soft_iou" in done.stdout


def test_images_exist():
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert images, "the README shows no figure"
    for path in images:
        assert (REPO / path).is_file(), path


def test_notebook_map_matches_the_notebooks():
    mapped = re.findall(r"^\| `(\d\d_\w+)` \|", section("Notebook map"), flags=re.M)
    present = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert mapped == sorted(mapped) and [m[:2] for m in mapped] == [f"{i:02d}" for i in range(len(mapped))]
    assert mapped == present, f"README map {mapped} vs notebooks/ {present}"


def test_the_two_commands_and_placeholders():
    commands = section("The two commands")
    assert "```bash\nbash tools/lab.sh\n```" in commands
    assert "```bash\nbash tools/test.sh\n```" in commands
    assert section("Benchmarks").strip()


def test_experiment_section_is_generated():
    # the numbers are generated from data/results/ (tests/test_findings.py checks they are current)
    text = section("What the experiments show")
    assert "<!-- results:start -->" in text and "<!-- results:end -->" in text and "Primary contrast" in text
