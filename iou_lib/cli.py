"""Command line: ``python -m iou_lib train ...`` (one run) and ``python -m iou_lib sweep ...`` (a grid).

Sizes default to the run profile (``--profile``, else ``IOU_PROFILE``, else detected); every size
option overrides it. Examples::

    python -m iou_lib train --fg-frac 0.02 --loss soft_iou --out runs/one
    python -m iou_lib train --schedule bce:2,soft_iou --epochs 6 --out runs/finetune
    python -m iou_lib train --data camvid --cls car --loss "0.5*bce+0.5*lovasz_hinge" --out runs/car
    python -m iou_lib sweep --losses bce soft_iou --fg-fracs 0.02 0.2 --seeds 0 1 2 --out runs/grid
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from iou_lib import config as _config
from iou_lib import losses
from iou_lib.experiments import grid_configs, run_grid, summarize
from iou_lib.models import MODELS
from iou_lib.train import DataSpec, TrainConfig, fit, loss_names, parse_schedule

__all__ = ["build_parser", "main"]


def _checked(
    cast: Callable[[str], float], ok: Callable[[float], bool], expected: str
) -> Callable[[str], float]:
    """An argparse ``type``: ``cast`` the text, then require ``ok(value)``; errors say what was expected."""

    def parse(text: str) -> float:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    return parse


_fraction = _checked(float, lambda v: 0 <= v <= 0.9, "a number in [0, 0.9]")
_positive = _checked(int, lambda v: v >= 1, "a positive integer")
_non_negative = _checked(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _checked(float, lambda v: v > 0, "a number > 0")


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
    d.add_argument("--ignore-index", type=int, help="folder data: mask value to ignore")
    d.add_argument("--scale", type=_positive, help="shrink real images by this factor (default: profile)")
    d.add_argument("--augment", action="store_true", help="random flips (and --crop) during training")
    d.add_argument("--crop", type=_positive, help="random square crop side when augmenting")
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
        help="keyword argument for one loss, e.g. soft_iou.per_image=true (repeatable)",
    )
    m.add_argument("--epochs", type=_positive, help="epochs (default: profile)")
    m.add_argument("--batch-size", type=_positive, help="batch size (default: profile)")
    m.add_argument("--lr", type=_positive_float, help="Adam learning rate (default: profile)")
    m.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps")
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
    m.add_argument("--out", required=True, help="output folder (results.csv, checkpoint.pt, summary.json)")
    m.add_argument("--no-resume", action="store_true", help="start afresh even if a checkpoint exists")
    m.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The ``iou-workbook`` / ``python -m iou_lib`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m iou_lib", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,sweep}")
    names = ", ".join(losses.available())
    train = sub.add_parser(
        "train", help="train and evaluate one run", description=f"Train one run. Losses: {names}."
    )
    _common(train)
    train.add_argument(
        "--fg-frac", type=_fraction, default=0.05, help="synthetic foreground fraction (default 0.05)"
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
        help="loss per epoch phase, e.g. 'bce:2,soft_iou' (bce for 2 epochs, then soft_iou)",
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
    sweep.add_argument(
        "--losses",
        type=_loss_spec,
        nargs="+",
        required=True,
        help="loss specs or schedules (each one grid axis value)",
    )
    sweep.add_argument(
        "--fg-fracs",
        type=_fraction,
        nargs="+",
        help="synthetic foreground fractions (default: profile; ignored for real data)",
    )
    sweep.add_argument("--seeds", type=int, nargs="+", help="seeds (default: profile)")
    return parser


def _config_from_args(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[TrainConfig, dict[str, dict[str, Any]]]:
    """The run config (for a sweep: its first loss) and the loss options of all losses."""
    profile = _config.get_profile(args.profile)
    data_kw = {
        k: v
        for k, v in {
            "image_size": args.image_size,
            "n_train": args.n_train,
            "n_val": args.n_val,
            "scale": args.scale,
        }.items()
        if v is not None
    }
    if args.data == "folder" and not args.path:
        parser.error("argument --path: required with --data folder")
    if args.cls and args.data != "camvid":
        parser.error("argument --cls: only valid with --data camvid")
    data = DataSpec.from_profile(
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
    options: dict[str, dict[str, Any]] = {}
    for name, key, value in args.loss_option:
        options.setdefault(name, {})[key] = value
    train_kw = {
        k: v
        for k, v in {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "width": args.width,
            "depth": args.depth,
        }.items()
        if v is not None
    }
    sweep = args.command == "sweep"
    loss = args.losses[0] if sweep else (args.schedule or args.loss)
    specs = args.losses if sweep else [loss]
    unused = sorted(set(options) - set().union(*(loss_names(s) for s in specs)))
    if unused:
        which = "no loss of --losses uses" if sweep else f"the loss {loss!r} does not use"
        parser.error(f"argument --loss-option: options given for {unused}, which {which}")
    try:  # the loss specs are the only settings the config checks that argparse has not checked
        cfg = TrainConfig.from_profile(
            profile,
            data=data,
            model=args.model,
            loss=loss,
            loss_options={n: o for n, o in options.items() if n in loss_names(loss)},
            device=args.device,
            amp=args.amp,
            compile=args.compile,
            out_dir=args.out,
            resume=not args.no_resume,
            progress=not args.no_progress,
            seed=getattr(args, "seed", 0),
            **train_kw,
        )
        for spec in args.losses if sweep else []:
            parse_schedule(spec, cfg.epochs)
    except ValueError as e:
        parser.error(f"argument {'--losses' if sweep else '--schedule' if args.schedule else '--loss'}: {e}")
    return cfg, options


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    cfg, options = _config_from_args(args, parser)
    if args.command == "train":
        result = fit(cfg)
        for key, value in result.summary.items():
            if "curve" not in key:
                print(f"{key:24s} {value:.4f}")
        print(f"results: {cfg.out_dir}/results.csv")
        return 0
    fracs = (
        (args.fg_fracs or _config.get_profile(args.profile).fg_fracs)
        if cfg.data.kind == "synthetic"
        else None
    )
    seeds = args.seeds if args.seeds is not None else _config.get_profile(args.profile).seeds
    configs = grid_configs(cfg, args.losses, fracs, seeds, args.out, loss_options=options)

    def report(c: TrainConfig, result: Any) -> None:
        state = "skipped (finished)" if result is None else f"test miou_d {result.summary['test/miou_d']:.4f}"
        print(f"{c.name}: {state}", flush=True)

    table = run_grid(configs, args.out, on_done=report)
    print(summarize(table).to_string(index=False))
    print(f"results: {args.out}/results.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
