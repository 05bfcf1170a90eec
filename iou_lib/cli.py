"""Command line: python -m iou_lib train ... (one run) and python -m iou_lib sweep ... (a grid of runs).

Sizes default to the run profile (--profile, else the IOU_PROFILE environment variable, else detected);
every size option overrides it. A run's budget is counted in optimizer steps (--steps). Output goes to
--out (default: runs/<run name>); running a finished run again prints its stored summary.

Examples:

    python -m iou_lib train --fg-frac 0.02 --loss soft_iou --steps 600
    python -m iou_lib train --schedule bce:100,soft_iou --steps 600 --out runs/finetune
    python -m iou_lib train --data camvid --cls car --loss "0.5*bce+0.5*lovasz_hinge" --out runs/car
    python -m iou_lib train --data folder --path mydata --size 256 256 --loss soft_iou
    python -m iou_lib sweep --losses bce soft_iou --fg-fracs 0.02 0.2 --seeds 0 1 2 --out runs/grid

User errors (bad options, bad data) end in one line "error: ..." and exit status 2; --debug shows the
traceback. Warnings are printed as one line "warning: ...".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import torch

from iou_lib import config as _config
from iou_lib import losses
from iou_lib.data.folders import CAMVID_CLASSES, CAMVID_IGNORE
from iou_lib.experiments import grid_configs, run_grid, summarize
from iou_lib.models import MODELS
from iou_lib.train import DataSpec, TrainConfig, fit, loss_names, parse_schedule
from iou_lib.train.objective import build_loss, loss_inputs

__all__ = ["build_parser", "main"]

USER_ERRORS = (ValueError, OSError, FloatingPointError)
"""Exceptions that report a problem with the input (options, data, a diverging run), not a bug: the command
line prints them as one line and exits with status 2."""

METRICS_NOTE = "IoU^D (miou_d) pools every test pixel into one IoU; IoU^I (miou_i) averages each image's IoU."


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``error: ...``, with exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _checked(
    cast: Callable[[str], float], ok: Callable[[float], bool], expected: str
) -> Callable[[str], float]:
    """An argparse ``type``: ``cast`` the text, then require a finite value with ``ok(value)``."""

    def parse(text: str) -> float:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not (math.isfinite(value) and ok(value)):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    return parse


_fraction = _checked(float, lambda v: 0 <= v <= 0.9, "a number in [0, 0.9]")
_positive = _checked(int, lambda v: v >= 1, "a positive integer")
_non_negative = _checked(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _checked(float, lambda v: v > 0, "a finite number > 0")
_label = _checked(int, lambda v: 0 <= v <= 255, "a mask value in 0..255")


def _fg_fraction(text: str) -> float:
    """A synthetic foreground fraction: in (0, 0.9]; 0 would train on empty masks."""
    value = _fraction(text)
    if value == 0:
        raise argparse.ArgumentTypeError(
            "0 gives empty masks (nothing to segment, IoU undefined); "
            "use --empty-frac for a share of images without foreground"
        )
    return value


def _device(text: str) -> str:
    """``auto`` or a torch device this machine has."""
    if text == "auto":
        return text
    try:
        dev = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}") from None
    mps = getattr(torch.backends, "mps", None)
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available() and (dev.index or 0) < torch.cuda.device_count(),
        "mps": mps is not None and mps.is_available(),
    }
    if not available.get(dev.type, False):
        raise argparse.ArgumentTypeError(f"device {text!r} is not available here (use auto or cpu)")
    return text


def _loss_spec(text: str) -> str:
    """A loss spec or schedule, checked against the registry (unknown names list the available ones)."""
    try:
        for phase in text.split(","):
            losses.parse(phase.partition(":")[0])
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _loss_option(text: str) -> tuple[str, str, Any]:
    name, dot, rest = text.partition(".")
    key, eq, value = rest.partition("=")
    if not (dot and eq and name and key):
        raise argparse.ArgumentTypeError(
            f"expected NAME.KEY=VALUE (e.g. soft_iou.per_image=true), got {text!r}"
        )
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return name, key, parsed


def _common(p: argparse.ArgumentParser) -> None:
    d = p.add_argument_group("data")
    d.add_argument(
        "--data",
        choices=("synthetic", "folder", "camvid"),
        default="synthetic",
        help="data source (default: synthetic)",
    )
    d.add_argument("--image-size", type=_positive, help="synthetic image side in pixels (default: profile)")
    d.add_argument("--n-train", type=_positive, help="synthetic training images (default: profile)")
    d.add_argument(
        "--n-val", type=_positive, help="synthetic validation (and test) images (default: profile)"
    )
    d.add_argument("--n-objects", type=_positive, default=4, help="foreground objects per image (default: 4)")
    d.add_argument("--empty-frac", type=_fraction, default=0.0, help="share of images without foreground")
    d.add_argument("--path", help="folder data root, or CamVid root (default: $IOU_DATA_DIR[/camvid])")
    d.add_argument(
        "--cls",
        help="CamVid class for a binary view (car, pedestrian, bicyclist, sign, pole, ...)"
        "; omit for all 11 classes",
    )
    d.add_argument(
        "--num-classes",
        type=_positive,
        default=1,
        help="folder data: 1 = binary masks (0/1 or 0/255), C = class-index masks",
    )
    d.add_argument(
        "--ignore-index",
        type=_label,
        help="folder data: mask value to ignore, e.g. 255 for pixels outside the field of view",
    )
    d.add_argument(
        "--size",
        type=_positive,
        nargs=2,
        metavar=("H", "W"),
        help="folder data: resize every image (bilinear) and mask (nearest) to H x W; needed when the "
        "images differ in size",
    )
    d.add_argument(
        "--scale",
        type=_positive,
        help="shrink real images by an integer factor (default: 1 for folder data, the profile's for CamVid)",
    )
    d.add_argument("--augment", action="store_true", help="random flips (and --crop) during training")
    d.add_argument(
        "--crop", type=_positive, help="random square crop side; needs --augment (refused without it)"
    )
    m = p.add_argument_group("model and training")
    m.add_argument("--model", choices=sorted(MODELS), default="unet", help="network (default: unet)")
    m.add_argument("--width", type=_positive, help="channels of the first stage (default: profile)")
    m.add_argument("--depth", type=_non_negative, help="down-sampling stages (default: profile)")
    m.add_argument(
        "--loss-option",
        type=_loss_option,
        action="append",
        default=[],
        metavar="NAME.KEY=VALUE",
        help="keyword argument for one loss, e.g. soft_iou.per_image=true (repeatable; checked on a "
        "tiny batch before anything is written)",
    )
    budget = m.add_mutually_exclusive_group()
    budget.add_argument(
        "--steps", type=_positive, help="optimizer steps of the run (default: profile; epochs follow)"
    )
    budget.add_argument("--epochs", type=_positive, help="legacy: the budget in epochs instead of --steps")
    m.add_argument("--batch-size", type=_positive, help="batch size (default: profile)")
    m.add_argument("--lr", type=_positive_float, help="peak Adam learning rate (default: profile)")
    m.add_argument(
        "--lr-schedule",
        choices=("cosine", "constant"),
        help="cosine: linear warm-up, then cosine decay to 0 (the default); constant: --lr throughout",
    )
    m.add_argument(
        "--warmup-steps",
        type=_non_negative,
        help="steps of linear warm-up (default: 5 %% of the steps for cosine, 0 for constant)",
    )
    m.add_argument(
        "--eval-every",
        type=_positive,
        help="steps between validation passes (default: at least 10 per run); the test metrics are taken "
        "at the step with the best validation IoU",
    )
    m.add_argument(
        "--device", type=_device, default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps"
    )
    m.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bf16 autocast (default: on for CUDA)",
    )
    m.add_argument("--compile", action="store_true", help="torch.compile the model")
    m.add_argument(
        "--profile", choices=sorted(_config.PROFILES), help="run profile (default: IOU_PROFILE or detected)"
    )
    m.add_argument(
        "--no-resume", action="store_true", help="start afresh even if the run exists or has finished"
    )
    m.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the files of another configuration's run in --out (refused without this)",
    )
    m.add_argument("--no-progress", action="store_true", help="no progress bars")
    m.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m iou_lib`` argument parser."""
    parser = _Parser(
        prog="python -m iou_lib", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,sweep}")
    names = ", ".join(losses.available())
    train = sub.add_parser(
        "train", help="train and evaluate one run", description=f"Train one run. Losses: {names}."
    )
    _common(train)
    train.set_defaults(parser=train)  # errors found after parsing point to this command's --help
    train.add_argument(
        "--out", help="output folder: results.csv, checkpoint.pt, summary.json (default: runs/<run name>)"
    )
    train.add_argument(
        "--fg-frac", type=_fg_fraction, default=0.05, help="synthetic foreground fraction (default 0.05)"
    )
    which = train.add_mutually_exclusive_group()
    which.add_argument(
        "--loss",
        type=_loss_spec,
        default="bce",
        help="loss name or weighted sum, e.g. soft_iou or '0.25*bce+0.75*soft_iou' (default: bce)",
    )
    which.add_argument(
        "--schedule",
        type=_loss_spec,
        help="loss per phase, e.g. 'bce:100,soft_iou' (bce for 100 optimizer steps, then soft_iou)",
    )
    train.add_argument(
        "--seed", type=int, default=0, help="seed of data, initialisation and order (default 0)"
    )
    sweep = sub.add_parser(
        "sweep",
        help="a resumable grid: losses x fg fractions x seeds",
        description=f"Run a grid of runs into one results table; finished runs are "
        f"skipped, interrupted ones resume. Losses: {names}.",
    )
    _common(sweep)
    sweep.set_defaults(parser=sweep)
    sweep.add_argument("--out", help="output folder of the grid (default: runs/sweep_<data>)")
    sweep.add_argument(
        "--losses",
        type=_loss_spec,
        nargs="+",
        required=True,
        help="loss specs or schedules (each one grid axis value)",
    )
    sweep.add_argument(
        "--fg-fracs",
        type=_fg_fraction,
        nargs="+",
        help="synthetic foreground fractions (default: profile; ignored for real data)",
    )
    sweep.add_argument("--seeds", type=int, nargs="+", help="seeds (default: profile)")
    return parser


def _task(args: argparse.Namespace) -> tuple[int, int | None]:
    """``(num_classes, ignore_index)`` of the data the options ask for (known before any data is read)."""
    if args.data == "folder":
        return args.num_classes, args.ignore_index if args.num_classes > 1 else None
    if args.data == "camvid" and not args.cls:
        return len(CAMVID_CLASSES), CAMVID_IGNORE
    return 1, None


def _check_losses(specs: Sequence[str], options: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    """Build every phase's loss as training does and run it on a tiny batch: a bad --loss-option key or
    value, or a loss that does not fit the data, fails here, before anything is written."""
    num_classes, ignore = _task(args)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, num_classes, 4, 4, generator=g)
    target = torch.randint(0, max(num_classes, 2), (2, 4, 4), generator=g)
    for spec in specs:
        for phase, _ in parse_schedule(spec, None):
            try:
                build_loss(phase, options, num_classes, ignore)(
                    *loss_inputs(logits, target, num_classes, ignore)
                )
            except (TypeError, ValueError) as e:
                given = [
                    f"{n}.{k}={json.dumps(v)}"
                    for n in loss_names(phase)
                    for k, v in options.get(n, {}).items()
                ]
                raise ValueError(f"{' '.join(given) or phase}: {e}") from None


def _data_spec(args: argparse.Namespace, profile: _config.Profile) -> DataSpec:
    data_kw = {
        k: v
        for k, v in {"image_size": args.image_size, "n_train": args.n_train, "n_val": args.n_val}.items()
        if v is not None
    }
    if args.data == "folder":  # no silent shrink of the user's images
        data_kw.update(scale=args.scale or 1, size=tuple(args.size) if args.size else None)
    elif args.scale is not None:
        data_kw["scale"] = args.scale
    return DataSpec.from_profile(
        profile,
        kind=args.data,
        fg_frac=getattr(args, "fg_frac", 0.05),
        n_objects=args.n_objects,
        empty_frac=args.empty_frac,
        path=args.path,
        class_name=args.cls,
        num_classes=args.num_classes,
        ignore_index=args.ignore_index,
        augment=args.augment,
        crop=args.crop,
        **data_kw,
    )


def _config_from_args(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[TrainConfig, dict[str, dict[str, Any]]]:
    """The run config (for a sweep: its first loss) and the loss options of all losses."""
    if args.data == "folder" and not args.path:
        parser.error("argument --path: required with --data folder")
    if args.cls and args.data != "camvid":
        parser.error("argument --cls: only valid with --data camvid")
    if args.size and args.data != "folder":
        parser.error("argument --size: only for --data folder (synthetic: --image-size; CamVid: --scale)")
    if args.crop and not args.augment:
        parser.error("argument --crop: random crops are a training augmentation; add --augment")
    profile = _config.get_profile(args.profile)
    options: dict[str, dict[str, Any]] = {}
    for name, key, value in args.loss_option:
        options.setdefault(name, {})[key] = value
    sweep = args.command == "sweep"
    specs = args.losses if sweep else [args.schedule or args.loss]
    flag = "--losses" if sweep else "--schedule" if args.schedule else "--loss"
    unused = sorted(set(options) - set().union(*(loss_names(s) for s in specs)))
    if unused:
        which = "no loss of --losses uses" if sweep else f"the loss {specs[0]!r} does not use"
        parser.error(f"argument --loss-option: options given for {unused}, which {which}")
    train_kw = {
        k: v
        for k, v in {
            "steps": args.steps,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "lr_schedule": args.lr_schedule,
            "warmup_steps": args.warmup_steps,
            "eval_every": args.eval_every,
            "width": args.width,
            "depth": args.depth,
            "amp": args.amp,
            "overwrite": args.overwrite or None,
        }.items()
        if v is not None
    }
    try:  # everything but the loss: errors name the setting
        cfg = TrainConfig.from_profile(
            profile,
            data=_data_spec(args, profile),
            model=args.model,
            device=args.device,
            compile=args.compile,
            resume=not args.no_resume,
            progress=not args.no_progress,
            seed=getattr(args, "seed", 0),
            **train_kw,
        )
    except ValueError as e:
        parser.error(str(e))
    try:  # each loss spec or schedule against the run's budget
        runs = [
            dataclasses.replace(
                cfg, loss=spec, loss_options={n: o for n, o in options.items() if n in loss_names(spec)}
            )
            for spec in specs
        ]
    except ValueError as e:
        parser.error(f"argument {flag}: {e}")
    try:
        _check_losses(specs, options, args)
    except ValueError as e:
        parser.error(f"argument {'--loss-option' if options else flag}: {e}")
    out = args.out or str(Path("runs") / (f"sweep_{args.data}" if sweep else runs[0].name))
    return dataclasses.replace(runs[0], out_dir=out), options


def _finished_summary(cfg: TrainConfig) -> dict[str, Any] | None:
    """The stored summary when ``cfg.out_dir`` holds this run, finished; else ``None`` (a folder holding
    another run is left to :func:`~iou_lib.train.fit`, which refuses it)."""
    out = Path(cfg.out_dir or "")
    if not (cfg.resume and (out / "summary.json").is_file() and (out / "config.json").is_file()):
        return None
    if not cfg.same_run(json.loads((out / "config.json").read_text())):
        return None
    return json.loads((out / "summary.json").read_text())


def _describe_data(data: DataSpec) -> str:
    if data.kind == "synthetic":
        return f"synthetic, foreground {data.fg_frac:g}"
    if data.kind == "camvid":
        return f"CamVid {data.class_name or 'all 11 classes'}"
    return f"folder {data.path}"


def _print_run(cfg: TrainConfig, summary: dict[str, Any]) -> None:
    """A header naming the run, how the two IoUs differ, the test metrics, AP and whether it collapsed."""
    fg = summary.get("fg_frac")
    measured = (
        f" (foreground {100 * fg:.2f} % of train pixels)" if cfg.data.kind != "synthetic" and fg else ""
    )
    print(f"run {cfg.name}: loss {cfg.loss}, data {_describe_data(cfg.data)}{measured}, seed {cfg.seed}")
    steps, best = summary["steps"], summary["best_step"]
    print(
        f"{steps} optimizer step{'s' * (steps != 1)}, test metrics at step {best} (best validation IoU), "
        f"{summary['wall_s']:.0f} s"
    )
    print(METRICS_NOTE)
    test = summary["test"]
    iou_d, iou_i, acc = test["miou_d"], test["miou_i"], test["pixel_acc"]
    classes = [k.partition("/")[2] for k in test if k.startswith("iou_d/")]  # multi-class tasks
    at = "argmax" if classes else "p = 0.5"
    print(f"test at {at}: IoU^D {iou_d:.4f}, IoU^I {iou_i:.4f}, pixel acc {acc:.4f}")
    if "threshold@val" in test:  # binary tasks
        thr, iou_d, iou_i = test["threshold@val"], test["miou_d@val_thr"], test["miou_i@val_thr"]
        print(f"test at p = {thr:.4g} (tuned on validation): IoU^D {iou_d:.4f}, IoU^I {iou_i:.4f}")
    for name in classes:
        print(f"  {name:12s} IoU^D {test[f'iou_d/{name}']:.4f}, IoU^I {test[f'iou_i/{name}']:.4f}")
    ap = summary.get("ap") or {}
    if ap.get("test") is not None:
        print(f"AP (threshold-free ranking): val {ap['val']:.4f}, test {ap['test']:.4f}")
    print(f"collapsed: yes: {summary['collapse_hint']}" if summary.get("collapsed") else "collapsed: no")
    print(f"results: {Path(cfg.out_dir or '') / 'results.csv'}")


def _train(cfg: TrainConfig) -> int:
    summary = _finished_summary(cfg)
    if summary is not None:
        print(f"{cfg.out_dir}: already complete (use --no-resume to redo)")
    else:
        fit(cfg)
        summary = json.loads((Path(cfg.out_dir or "") / "summary.json").read_text())
    _print_run(cfg, summary)
    return 0


def _run_row(cfg: TrainConfig) -> dict[str, Any]:
    """One line of the sweep's summary, from a finished run's ``summary.json``."""
    s = json.loads((Path(cfg.out_dir or "") / "summary.json").read_text())
    test, nan = s.get("test", {}), math.nan
    return {
        "run": cfg.name,
        "fg_frac": s.get("fg_frac", cfg.data.fg_frac if cfg.data.kind == "synthetic" else nan),
        "best_step": s.get("best_step"),
        "iou@0.5": test.get("miou_d", nan),
        "iou@tuned": test.get("miou_d@val_thr", nan),
        "threshold": test.get("threshold@val", nan),
        "ap": (s.get("ap") or {}).get("test", nan),
        "collapsed": "yes" if s.get("collapsed") else "",
    }


def _sweep(args: argparse.Namespace, cfg: TrainConfig, options: dict[str, dict[str, Any]]) -> int:
    import pandas as pd

    profile = _config.get_profile(args.profile)
    fracs = (args.fg_fracs or profile.fg_fracs) if cfg.data.kind == "synthetic" else None
    seeds = args.seeds if args.seeds is not None else profile.seeds
    out = cfg.out_dir or ""
    configs = grid_configs(cfg, args.losses, fracs, seeds, out, loss_options=options)

    def report(c: TrainConfig, result: Any) -> None:
        state = "already complete" if result is None else "done"
        print(f"{c.name}: {state}", flush=True)

    table = run_grid(configs, out, on_done=report)
    print(
        "\nper run: test IoU^D (all test pixels pooled into one IoU) at p = 0.5 and at the threshold tuned "
        "on validation, test AP, and the step of the best validation IoU"
    )
    print(pd.DataFrame([_run_row(c) for c in configs]).to_string(index=False, float_format="{:.4f}".format))
    print("\nmean over seeds of test IoU^D at 0.5 (ci95: half width of the 95 % t interval)")
    print(summarize(table).to_string(index=False, float_format="{:.4f}".format))
    print(f"results: {out}/results.csv")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for a user error, printed as one line)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():  # warnings as one line each, like errors
            warnings.showwarning = lambda message, *_: print(f"warning: {message}", file=sys.stderr)
            cfg, options = _config_from_args(args, args.parser)
            return _train(cfg) if args.command == "train" else _sweep(args, cfg, options)
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume from the last checkpoint", file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        if args.debug:
            raise
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
