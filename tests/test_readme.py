"""README.md as the front page: its quick start runs, its figure exists, its map matches the notebooks,
every command it shows runs as written (with ``--help``), and its tables are the config and the measured
notebook times."""

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, flags=re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def test_quick_start_runs():
    blocks = re.findall(r"```python\n(.*?)```", section("Library quick start"), flags=re.S)
    assert len(blocks) == 1
    done = subprocess.run(
        [sys.executable, "-c", blocks[0]], capture_output=True, text=True, timeout=600, cwd=REPO
    )
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


# --------------------------------------------------------------------- every command runs as written
# Commands are taken from ```bash blocks (one per line) and from inline code that starts with `python`,
# `.venv/bin/python` or `bash`. `python` means the environment's Python: the README activates it once.
INLINE = re.compile(r"`((?:\.venv/bin/)?python [^`]+|bash [^`]+\.sh[^`]*)`")
ENV_VARS_READ = {"IOU_PROFILE", "IOU_DATA_DIR"}  # what an `export` in the README may set


def readme_commands() -> list[list[str]]:
    lines = [
        line for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S) for line in block.splitlines()
    ]
    lines += INLINE.findall(README)
    commands = []
    for line in lines:
        words = shlex.split(line, comments=True)
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value before the program
            assert words[0].split("=")[0] in ENV_VARS_READ, f"README sets an unknown variable: {line}"
            words = words[1:]
        if words:
            commands.append(words)
    return commands


COMMANDS = readme_commands()


def _check_python(args: list[str]) -> None:
    if args[:2] == ["-m", "iou_lib"] or args[:1] == ["-c"]:
        pytest.fail(f"unexpected python command form: {args}")
    # --help last: argparse parses everything before it, so a renamed option or a bad choice fails here.
    done = subprocess.run(
        [sys.executable, *args, "--help"], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert done.returncode == 0 and "usage:" in done.stdout, (
        f"python {' '.join(args)}:\n{done.stderr[-1500:]}"
    )


def _check(words: list[str]) -> None:
    program, args = words[0], words[1:]
    if program in ("python", ".venv/bin/python"):
        _check_python(args)
    elif program == "bash":
        script = REPO / args[0]
        assert script.is_file(), f"README runs a missing script: {args[0]}"
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    elif program == "jupyter":
        jupyter = Path(sys.executable).with_name("jupyter")
        done = subprocess.run(
            [str(jupyter), *args, "--help"], capture_output=True, text=True, timeout=600, cwd=REPO
        )
        assert done.returncode == 0, done.stderr[-1500:]
        assert all((REPO / a).exists() for a in args[1:] if not a.startswith("-")), args  # the files it opens
    elif program == "source":
        assert args == [".venv/bin/activate"] and (Path(sys.prefix) / "bin" / "activate").is_file()
    elif program == "export":
        assert args and args[0].split("=")[0] in ENV_VARS_READ, words
    elif program == "conda":
        env = (REPO / "environment.yml").read_text()
        if args[:2] == ["env", "create"]:
            assert args[2:] == ["-f", "environment.yml"]
        else:
            assert args[0] == "activate" and re.search(rf"^name: {re.escape(args[1])}$", env, flags=re.M), (
                args
            )
    elif program == "ssh":
        assert "-L" in args, "the README's ssh command is the port-forwarding tunnel"
    else:
        pytest.fail(f"README command with a program this test does not know how to check: {words}")


def test_readme_commands_were_found():
    programs = {c[0] for c in COMMANDS}
    assert {".venv/bin/python", "bash", "source"} <= programs, programs
    assert ["bash", "tools/lab.sh"] in COMMANDS and ["bash", "tools/test.sh"] in COMMANDS


@pytest.mark.parametrize("words", COMMANDS, ids=[" ".join(c)[:60] for c in COMMANDS])
def test_readme_command_runs_as_written(words):
    _check(words)


def test_bare_python_comes_after_the_activation_step():
    activation = README.index("source .venv/bin/activate")
    bare = [m.start() for m in re.finditer(r"(?<![/\w])python (tools/|-m )", README)]
    assert all(pos > activation for pos in bare), "a bare `python` command appears before the activation step"


# ---------------------------------------------------------------------- generated and checked tables
def test_profile_table_matches_the_config():
    from iou_lib.config import PROFILES

    rows = re.findall(
        r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \| ([^|]+) \|$", section("Profiles and GPU use"), re.M
    )
    assert [r[0] for r in rows] == list(PROFILES)
    for name, synthetic, camvid in rows:
        p = PROFILES[name]
        seeds = f"{len(p.seeds)} seed{'s' * (len(p.seeds) > 1)}"
        assert synthetic.strip() == (
            f"{p.image_size} px, U-Net width {p.width} and depth {p.depth}, {p.steps:,} steps, {seeds}"
        ), name
        shrunk = f"{p.camvid_scale}x shrunk ({240 // p.camvid_scale}x{180 // p.camvid_scale})"
        size = "stored size (240x180)" if p.camvid_scale == 1 else shrunk
        assert camvid.strip() == f"{size}, {p.camvid_steps:,} steps", name


def test_notebook_times_table_is_the_stored_measurement():
    spec = importlib.util.spec_from_file_location("time_notebooks", REPO / "tools" / "time_notebooks.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    times = tool.load()
    assert "fast" in times, "no measured fast-profile times in docs/notebook_times.json"
    notebooks = {p.stem for p in tool.notebooks()}
    stale = {name for runs in times.values() for name in runs} - notebooks
    assert not stale, f"docs/notebook_times.json times notebooks that no longer exist: {sorted(stale)}"
    block = README.split(tool.START, 1)[1].split(tool.END, 1)[0]
    assert block.strip() == tool.render_table(times), (
        "run `.venv/bin/python tools/time_notebooks.py --readme`"
    )
