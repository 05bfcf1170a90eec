"""``python -m benchmarks.training``: evaluation cost and training throughput of the engine, before and after.

Three measurements, each interleaved (round by round) so that load from other processes hits every
contender alike; the *ratios* are the result, absolute numbers depend on the machine's load:

1. **Validation pass** (the ``cpu`` profile's validation split: 256 images of 96 px, batches of 16):
   ms per pass of ``evaluate`` with the engine's histogram thresholds (401 thresholds, AP) against the
   engine of ``--baseline`` (a git revision; its ``evaluate`` ran one confusion-matrix accumulator per
   threshold, 20 in all), for the metric work alone (a model that replays stored logits) and for a whole
   pass with the profile's U-Net.
2. **Training steps** (``fast`` profile: 64 px, U-Net width 8, batch 16): images/s per seed of one run
   and of 5 seeds trained together as one grouped network (:func:`iou_lib.train.engine.fit_group`).
3. **Whole runs** (``fast`` profile, ``bce``, fg 5 %): wall time of one run of the baseline engine, one
   run of this engine, and 5 seeds together.

``--snapshot`` writes the report between the ``training`` markers of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from iou_lib.data.synthetic import SyntheticSegmentation
from iou_lib.models import build_model
from iou_lib.train import DataSpec, TrainConfig, batches, engine, evaluate, runtime

ROOT = Path(__file__).resolve().parent.parent
MARK_START, MARK_END = "<!-- training:start -->", "<!-- training:end -->"


def load_baseline(rev: str) -> ModuleType | None:
    """The single-module engine ``iou_lib/train.py`` of git revision ``rev``, importable beside ours."""
    try:
        source = subprocess.run(
            ["git", "show", f"{rev}:iou_lib/train.py"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None
    path = Path(tempfile.mkdtemp()) / "baseline_train.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_train", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["baseline_train"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


class Replay(torch.nn.Module):
    """Returns stored logits batch after batch: times the metric work of an evaluation alone."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits, self.i = logits, 0
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.logits[self.i : self.i + len(x)]
        self.i = (self.i + len(x)) % len(self.logits)
        return out


def interleaved(contenders: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each contender, called in turn, ``rounds`` times (after one warm-up call)."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():
        fn()
    for _ in range(rounds):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def evaluation_cost(baseline: ModuleType | None, rounds: int) -> list[str]:
    ds = SyntheticSegmentation(256, 96, 0.02, seed=1)
    g = torch.Generator().manual_seed(0)
    logits = 2 * torch.randn(256, 1, 96, 96, generator=g) + 3 * (ds.labels[:, None].float() - 0.5)
    torch.manual_seed(0)
    unet = build_model("unet", 3, 1, 16, 3).eval()
    contenders: dict[str, Callable[[], Any]] = {}
    for what, model in (("metrics only", Replay(logits)), ("U-Net width 16 + metrics", unet)):
        contenders[f"{what}: this engine"] = lambda m=model: evaluate(m, batches(ds, range(256), 16))
        if baseline is not None:
            contenders[f"{what}: baseline"] = lambda m=model: baseline.evaluate(
                m, batches(ds, range(256), 16)
            )
    times = interleaved(contenders, rounds)
    lines = ["| pass | this engine (ms) | baseline (ms) | ratio |", "|---|---:|---:|---:|"]
    for what in ("metrics only", "U-Net width 16 + metrics"):
        ours = 1000 * statistics.median(times[f"{what}: this engine"])
        base = times.get(f"{what}: baseline")
        if base:
            b = 1000 * statistics.median(base)
            lines.append(f"| {what} | {ours:.0f} | {b:.0f} | {ours / b:.2f}x |")
        else:
            lines.append(f"| {what} | {ours:.0f} | n/a | |")
    return lines


def _fast_config(seed: int = 0, **kw: Any) -> TrainConfig:
    return TrainConfig.from_profile(
        "fast", data=DataSpec.from_profile("fast"), seed=seed, progress=False, **kw
    )


@contextlib.contextmanager
def contiguous_layout() -> Iterator[None]:
    """The engine as it was before channels_last on CPU: NCHW models and batches (for runs set up inside)."""
    runtime.MEMORY_FORMAT = torch.contiguous_format
    try:
        yield
    finally:
        runtime.MEMORY_FORMAT = torch.channels_last


def _nchw(fn: Callable[[], Any]) -> Callable[[], Any]:
    def call() -> Any:
        with contiguous_layout():
            return fn()

    return call


def training_throughput(rounds: int, steps: int, compile: bool = False) -> list[str]:
    """Images/s of training steps: one seed NCHW (before), one seed channels_last (the engine's layout on
    every device now), with ``compile`` also compiled (``make_results.py --compile``; its one-off compile
    falls in the untimed warm-up call), five seeds as one grouped network (how the engine trains seeds on a
    GPU)."""
    with contiguous_layout():
        before = engine.setup([_fast_config()])
    single = engine.setup([_fast_config()])
    group = engine.setup([_fast_config(s) for s in range(5)])
    contenders = {
        "1 seed, NCHW (before)": _nchw(lambda: engine.train_until(before, before.step + steps)),
        "1 seed, channels_last": lambda: engine.train_until(single, single.step + steps),
    }
    if compile:
        compiled = engine.setup([_fast_config(compile=True)])
        contenders["1 seed, channels_last + torch.compile"] = lambda: engine.train_until(
            compiled, compiled.step + steps
        )
    grouped = "5 seeds together (grouped convolutions)"
    contenders[grouped] = lambda: engine.train_until(group, group.step + steps)
    times = interleaved(contenders, rounds)
    lines = ["| training | s per step | images/s per seed | images/s, all seeds |", "|---|---:|---:|---:|"]
    for name in contenders:
        seeds = 5 if name == grouped else 1
        per_step = statistics.median(times[name]) / steps
        per_seed = 16 / per_step
        lines.append(f"| {name} | {per_step:.3f} | {per_seed:.1f} | {seeds * per_seed:.1f} |")
    return lines


def whole_runs(baseline: ModuleType | None) -> list[str]:
    contenders: dict[str, Callable[[], Any]] = {
        "this engine, 1 run (200 steps, 10 validation passes)": lambda: engine.fit_group([_fast_config()]),
        "this engine, 1 run, NCHW (before)": _nchw(lambda: engine.fit_group([_fast_config()])),
        "this engine, 5 seeds together": lambda: engine.fit_group([_fast_config(s) for s in range(5)]),
    }
    if baseline is not None:
        cfg = baseline.TrainConfig(
            baseline.DataSpec(image_size=64, n_train=512, n_val=128),
            epochs=6,
            width=8,
            depth=3,
            lr=3e-3,
            progress=False,
        )
        contenders["baseline engine, 1 run (192 steps, 6 validation passes)"] = lambda: baseline.fit(cfg)
    lines = ["| run (fast profile) | wall s | s per seed |", "|---|---:|---:|"]
    for name, fn in contenders.items():
        t0 = time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
        lines.append(f"| {name} | {wall:.1f} | {wall / (5 if '5 seeds' in name else 1):.1f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="5d9b79e", help="git revision of the engine to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed call")
    parser.add_argument("--skip-runs", action="store_true", help="leave out the whole-run wall times")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile row")
    parser.add_argument("--snapshot", action="store_true", help="write into benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    baseline = load_baseline(args.baseline)
    load0 = os.getloadavg()[0]
    sections = [
        f"### Validation pass, {args.rounds} interleaved rounds (median)",
        *evaluation_cost(baseline, args.rounds),
        "",
        f"### Training steps, {args.rounds} interleaved rounds of {args.steps} steps (median)",
        *training_throughput(args.rounds, args.steps, compile=not args.no_compile),
    ]
    if not args.skip_runs:
        sections += ["", "### Whole runs, one after another", *whole_runs(baseline)]
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    head = (
        f"{stamp} · {platform.machine()} · torch {torch.__version__} · {args.threads} thread(s) of "
        f"{os.cpu_count()} CPUs · baseline {args.baseline if baseline else 'not available'} · load average "
        f"before {load0:.2f}, after {os.getloadavg()[0]:.2f}"
    )
    text = "\n".join([head, "", *sections])
    print(text)
    if args.snapshot:
        path = ROOT / "benchmarks" / "RESULTS.md"
        old = path.read_text()
        block = f"{MARK_START}\n{text}\n{MARK_END}"
        if MARK_START in old:
            new = old[: old.index(MARK_START)] + block + old[old.index(MARK_END) + len(MARK_END) :]
        else:
            new = old.rstrip("\n") + "\n\n## Training engine\n\n" + block + "\n"
        path.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
