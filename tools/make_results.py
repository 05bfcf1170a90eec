"""Regenerate the stored experiment results in ``data/results/`` (one command, resumable).

    python tools/make_results.py [--profile cpu|gpu|quick] [--only synthetic|camvid] [--threads 1]

Every experiment is a ``python -m iou_lib sweep ...`` command line (run in this process through
:func:`iou_lib.cli.main`); each run lives in its own folder under ``runs/<profile>/`` and a finished run is
never redone, so an interrupted regeneration continues where it stopped. At the end the runs of each
group are reduced to a small tidy CSV, ``data/results/<group>_<profile>.csv``, with a provenance sidecar
``<group>_<profile>.json`` (the commands, profile, sizes, device, date, git commit, torch version, planned
and finished runs).

Groups and the notebooks that read them:

* ``synthetic`` (notebooks 06 and 07): eight losses at one imbalanced setting (E2, E3, E6), a sweep of the
  foreground fraction for three losses (E4; all eight in the gpu grid), and soft IoU aggregated per image
  vs per batch, with and without empty images, and the empty-image rule (E5);
* ``camvid`` (notebook 08): one binary model per class for five classes with BCE, soft IoU and BCE then
  soft IoU; one 11-class model with cross-entropy, Lovász-softmax and cross-entropy then Lovász-softmax.

Profiles (the ``PLANS`` below say exactly what each runs):

* ``cpu``: what is stored in the repository, sized for a 2-core CPU shared with other jobs (its 99 runs
  took about an hour there, two or three processes at a time, one torch thread each). Smaller
  than the ``cpu`` run profile of :mod:`iou_lib.config`: 64 px synthetic images, width-8 U-Net, 144 steps,
  3 seeds; CamVid shrunk 4x to 60x45, width 8, 440 steps, 2 seeds;
* ``gpu``: the full grid at the ``gpu`` run profile's sizes (all eight losses in the sweep, five seeds,
  CamVid at 240x180). Not run for the stored results: no GPU was available when they were made;
* ``quick``: a tiny grid (seconds) that exercises the whole pipeline; the tests run it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ("synthetic", "camvid")
# rows kept in the stored tables: learning curves and the final test metrics (all of them)
KEEP = {"train": ("loss",), "val": ("miou_d", "miou_i")}


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one profile of this script runs. Sizes are command-line options of ``python -m iou_lib``."""

    cli_profile: str  # the iou_lib run profile the sizes start from
    synthetic_sizes: tuple[str, ...]
    synthetic_epochs: int
    setting: float  # the foreground fraction of the loss comparison (notebook 06)
    losses: tuple[str, ...]  # compared at ``setting``; "{half}" is half the epochs (a schedule)
    fg_fracs: tuple[float, ...]  # the sweep (notebook 07)
    sweep_losses: tuple[str, ...]
    empty_frac: float  # share of images without foreground in the aggregation experiment
    seeds: tuple[int, ...]
    camvid_sizes: tuple[str, ...]
    camvid_epochs: int
    camvid_classes: tuple[str, ...]
    camvid_binary_losses: tuple[str, ...]
    camvid_multi_losses: tuple[str, ...]
    camvid_seeds: tuple[int, ...]
    note: str


_LOSSES = ("bce", "weighted_bce", "focal", "soft_iou", "soft_dice", "lovasz_hinge", "bce:{half},soft_iou",
           "0.25*bce+0.75*soft_iou")
_CLASSES = ("car", "pedestrian", "bicyclist", "signsymbol", "pole")
_BINARY = ("bce", "soft_iou", "bce:{half},soft_iou")
_MULTI = ("cross_entropy", "lovasz_softmax", "cross_entropy:{half},lovasz_softmax")

PLANS: dict[str, Plan] = {
    "cpu": Plan(
        cli_profile="fast",
        synthetic_sizes=("--image-size", "64", "--n-train", "384", "--n-val", "96", "--batch-size", "16",
                         "--width", "8", "--depth", "3", "--lr", "0.003"),
        synthetic_epochs=6, setting=0.02, losses=_LOSSES, fg_fracs=(0.5, 0.1, 0.02, 0.01),
        sweep_losses=("bce", "weighted_bce", "soft_iou"), empty_frac=0.3, seeds=(0, 1, 2),
        camvid_sizes=("--scale", "4", "--batch-size", "16", "--width", "8", "--depth", "3", "--lr", "0.003"),
        camvid_epochs=20, camvid_classes=("car", "pedestrian", "bicyclist", "signsymbol", "pole"),
        camvid_binary_losses=_BINARY, camvid_multi_losses=_MULTI, camvid_seeds=(0, 1),
        note="reduced grid for a 2-core CPU shared with other jobs: synthetic 64 px, 384 train / 96 val / "
             "96 test images, U-Net width 8, depth 3, 6 epochs (144 Adam steps), 3 seeds; CamVid shrunk 4x "
             "(60x45), U-Net width 8, depth 3, 20 epochs (440 steps), 2 seeds",
    ),
    "gpu": Plan(
        cli_profile="gpu", synthetic_sizes=(), synthetic_epochs=20, setting=0.02, losses=_LOSSES,
        fg_fracs=(0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005), sweep_losses=_LOSSES, empty_frac=0.3,
        seeds=(0, 1, 2, 3, 4), camvid_sizes=(), camvid_epochs=100, camvid_classes=_CLASSES,
        camvid_binary_losses=_BINARY, camvid_multi_losses=_MULTI, camvid_seeds=(0, 1, 2),
        note="full grid at the gpu run profile's sizes (128 px synthetic, CamVid 240x180), 5 / 3 seeds",
    ),
    "quick": Plan(
        cli_profile="fast",
        synthetic_sizes=("--image-size", "16", "--n-train", "16", "--n-val", "8", "--batch-size", "8",
                         "--width", "4", "--depth", "1"),
        synthetic_epochs=2, setting=0.1, losses=("bce", "bce:{half},soft_iou"), fg_fracs=(0.1,),
        sweep_losses=("soft_iou",), empty_frac=0.5, seeds=(0,),
        camvid_sizes=("--scale", "8", "--batch-size", "32", "--width", "4", "--depth", "1"), camvid_epochs=2,
        camvid_classes=("car",), camvid_binary_losses=("soft_iou",), camvid_multi_losses=("cross_entropy",),
        camvid_seeds=(0,),
        note="tiny smoke-test grid (seconds); its numbers mean nothing",
    ),
}


@dataclasses.dataclass(frozen=True)
class Step:
    """One sweep command; ``columns`` are added to its rows in the stored table."""

    group: str
    out: str  # folder under runs/<profile>/
    argv: tuple[str, ...]
    columns: tuple[tuple[str, object], ...] = ()

    @property
    def n_runs(self) -> int:
        """How many runs the command trains (fractions x losses x seeds)."""
        counts = {}
        for i, word in enumerate(self.argv):
            if word in ("--fg-fracs", "--losses", "--seeds"):
                rest = self.argv[i + 1:]
                counts[word] = next((j for j, w in enumerate(rest) if w.startswith("--")), len(rest))
        return counts.get("--fg-fracs", 1) * counts["--losses"] * counts["--seeds"]


def _schedule(specs: Sequence[str], epochs: int) -> list[str]:
    return [s.format(half=epochs // 2) for s in specs]


def steps(plan: Plan, data_path: str | None = None) -> list[Step]:
    """The sweep commands of a plan, most informative first (so partial results are useful). CamVid is
    read from ``data_path`` if given, else the command line finds it through ``IOU_DATA_DIR``."""
    common = ("--profile", plan.cli_profile, "--no-progress")
    syn = (*common, *plan.synthetic_sizes, "--epochs", str(plan.synthetic_epochs))
    seeds = ("--seeds", *map(str, plan.seeds))
    sweep_fracs = [f for f in sorted(plan.fg_fracs) if f != plan.setting]
    out: list[Step] = [
        Step("synthetic", "synthetic", ("sweep", *syn, "--fg-fracs", str(plan.setting), *seeds, "--losses",
                                        *_schedule(plan.losses, plan.synthetic_epochs))),
        *(Step("synthetic", "synthetic", ("sweep", *syn, "--fg-fracs", str(f), *seeds, "--losses",
                                          *_schedule(plan.sweep_losses, plan.synthetic_epochs)))
          for f in sweep_fracs),
    ]
    # aggregation (E5): soft IoU per image vs per batch, with and without empty images
    per_image = ("--loss-option", "soft_iou.per_image=true")
    raw = ("--loss-option", "soft_iou.empty=raw")
    for name, empty, options in (("per_image", 0.0, per_image), ("empty", plan.empty_frac, ()),
                                 ("empty_per_image", plan.empty_frac, per_image),
                                 ("empty_per_image_raw", plan.empty_frac, (*per_image, *raw))):
        rule = "raw" if raw[1] in options else "fp_rate"
        out.append(Step("synthetic", name, ("sweep", *syn, "--fg-fracs", str(plan.setting), "--empty-frac",
                                            str(empty), *options, *seeds, "--losses", "soft_iou"),
                        (("empty_frac", empty), ("per_image", bool(options)), ("empty_rule", rule))))
    cam = (*common, "--data", "camvid", *(("--path", data_path) if data_path else ()), *plan.camvid_sizes,
           "--epochs", str(plan.camvid_epochs), "--seeds", *map(str, plan.camvid_seeds))
    for cls in plan.camvid_classes:
        losses = _schedule(plan.camvid_binary_losses, plan.camvid_epochs)
        out.append(Step("camvid", "camvid_binary", ("sweep", *cam, "--cls", cls, "--losses", *losses)))
    out.append(Step("camvid", "camvid_multi", ("sweep", *cam, "--losses",
                                               *_schedule(plan.camvid_multi_losses, plan.camvid_epochs))))
    return out


def _git(*args: str) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return proc.stdout.strip()


def _relative(path: Path) -> str:
    """``path`` relative to the repository when inside it (provenance stays machine-independent)."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _device() -> str:
    import torch

    from iou_lib.config import default_device

    dev = default_device()
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    cpu = platform.processor() or platform.machine()
    return f"{dev.type} ({cpu}, {os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads)"


def reduce_table(table, folder: str, columns: dict[str, object], seeds: Sequence[int]):  # noqa: ANN001, ANN201
    """Keep the runs of ``seeds`` (a run folder may hold others, e.g. from a larger grid), their learning
    curves (:data:`KEEP`) and all final test metrics; prefix ``run`` with the run ``folder`` (names repeat
    across folders) and add the step's ``columns``."""
    table = table[table["seed"].isin(seeds)]
    keep = table["split"].eq("test")
    for split, metrics in KEEP.items():
        keep |= table["split"].eq(split) & table["metric"].isin(metrics)
    out = table[keep].copy()
    out["run"] = folder + "/" + out["run"]
    for key, value in {"empty_frac": 0.0, "per_image": False, "empty_rule": "fp_rate", **columns}.items():
        out[key] = value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or resume) the grid of a profile and write the stored tables; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PLANS), default="cpu", help="which grid (default: cpu)")
    parser.add_argument("--only", choices=GROUPS, help="one group of experiments")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs", help="run cache (default: runs/)")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "data" / "results",
                        help="where the tables go (default: data/results/)")
    parser.add_argument("--data-dir", help="CamVid location (default: $IOU_DATA_DIR)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    parser.add_argument("--reverse", action="store_true",
                        help="run the steps in reverse order (a second process can then share the work)")
    parser.add_argument("--collect", action="store_true",
                        help="train nothing: write the tables from the runs finished so far")
    args = parser.parse_args(argv)

    import pandas as pd
    import torch

    from iou_lib import cli
    from iou_lib.data.folders import camvid_root
    from iou_lib.experiments import load_results

    if args.threads:
        torch.set_num_threads(args.threads)
    plan = PLANS[args.profile]
    if args.profile == "gpu" and not (torch.cuda.is_available() or args.dry_run or args.collect):
        print("the gpu grid needs a CUDA GPU (days on a CPU); --dry-run lists its commands", file=sys.stderr)
        return 1
    groups = [args.only] if args.only else list(GROUPS)
    if "camvid" in groups:
        try:
            camvid_root(args.data_dir)
        except (ValueError, FileNotFoundError) as e:
            print(f"skipping camvid: {e}", file=sys.stderr)
            groups.remove("camvid")
            if args.only:
                return 1
    runs = args.runs_dir / args.profile
    todo = [s for s in steps(plan, args.data_dir) if s.group in groups]
    todo = todo[::-1] if args.reverse else todo
    for group in groups:
        t0 = time.time()
        commands, folders = [], {}
        for step in (s for s in todo if s.group == group):
            argv_ = [*step.argv, "--out", str(runs / step.out)]
            shown = [*step.argv, "--out", _relative(runs / step.out)]
            commands.append(shlex.join(["python", "-m", "iou_lib", *shown]))
            print(commands[-1], flush=True)
            folders[step.out] = dict(step.columns)
            if not (args.dry_run or args.collect) and cli.main(argv_) != 0:
                return 1
        if args.dry_run:
            continue
        seeds = plan.seeds if group == "synthetic" else plan.camvid_seeds
        table = pd.concat([reduce_table(load_results(runs / f), f, c, seeds) for f, c in folders.items()],
                          ignore_index=True)
        name = f"{group}_{args.profile}"
        planned = sum(s.n_runs for s in todo if s.group == group)
        args.results_dir.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.results_dir / f"{name}.csv", index=False, float_format="%.5g")
        provenance = {
            "table": f"{name}.csv", "group": group, "profile": args.profile, "cli_profile": plan.cli_profile,
            "grid": dataclasses.asdict(plan), "note": plan.note, "commands": commands,
            "command": shlex.join(["python", "tools/make_results.py", "--profile", args.profile,
                                   "--only", group]),
            "device": _device(), "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "git_commit": _git("rev-parse", "HEAD"), "git_dirty": bool(_git("status", "--porcelain")),
            "torch": torch.__version__, "python": platform.python_version(),
            "n_runs": int(table["run"].nunique()),
            "n_rows": len(table), "planned_runs": planned, "complete": int(table["run"].nunique()) == planned,
            "wall_s": None if args.collect else round(time.time() - t0, 1),  # of this call, training included
        }
        (args.results_dir / f"{name}.json").write_text(json.dumps(provenance, indent=1) + "\n")
        print(f"wrote {args.results_dir / name}.csv ({len(table)} rows, {provenance['n_runs']} runs)",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
