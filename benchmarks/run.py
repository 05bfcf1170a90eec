"""``python -m benchmarks``: time our losses and metrics against peers and plain baselines, in one run.

For every case (shape x logit regime) and group, the runner first checks that each implementation
reproduces the value it claims to (``Impl.equals``; an ``AssertionError`` stops the run), then times
forward + backward of all of them interleaved, then measures their peak memory. It also times one
training step of a small U-Net with several losses (the loss's share of the step) and profiles our
Lovász losses (where the time goes). Results go to ``results.json`` and ``results.md`` in ``--out``;
``--snapshot`` also writes them into ``benchmarks/RESULTS.md`` and the README's Benchmarks table.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import os
import platform
import sys
from pathlib import Path

import torch

from benchmarks import report, snapshot
from benchmarks.baselines import lovasz_hinge_loop
from benchmarks.cases import Case, Group, groups_for, make_inputs, peer_status
from benchmarks.measure import (
    loss_call,
    page_faults_per_call,
    peak_memory_bytes,
    summary,
    time_interleaved,
    top_ops,
)
from iou_lib.data.synthetic import blob_masks
from iou_lib.losses import functional, lovasz_hinge, lovasz_softmax, soft_iou

FULL = {
    "binary": [(8, 1, 256, 256), (8, 1, 512, 512), (32, 1, 256, 256)],
    "multiclass": [(8, 21, 128, 128)],
}
CUDA_EXTRA = {"binary": [(32, 1, 512, 512)], "multiclass": [(16, 21, 256, 256)]}
QUICK = {"binary": [(2, 1, 64, 64)], "multiclass": [(2, 5, 32, 32)]}
REGIMES = ("random", "late")
SNAPSHOT = Path(__file__).parent / "RESULTS.md"
README = Path(__file__).parent.parent / "README.md"


def check_values(group: Group, values: dict[str, float], case: Case) -> None:
    """Every implementation must reproduce the value it claims to (before any timing)."""
    for impl in group.impls:
        if impl.equals is None:
            continue
        got, want = values[impl.name], values[impl.equals]
        if not math.isclose(got, want, rel_tol=impl.rtol, abs_tol=impl.atol):
            raise AssertionError(
                f"{group.name} [{case.label}]: {impl.name} = {got!r} differs from {impl.equals} = {want!r}"
            )


def run_case(
    case: Case, groups: list[Group], device: torch.device, rounds: int, reps: int, clock: str
) -> list[dict]:
    logits, target = make_inputs(case, device)
    rows = []
    for group in groups:
        calls, values = {}, {}
        for impl in group.impls:
            call = loss_call(impl.fn, logits, impl.prepare(target), impl.backward)
            values[impl.name] = float(call())
            calls[impl.name] = call
        check_values(group, values, case)
        times = time_interleaved(calls, device, rounds, reps, warmup=1 if rounds == 1 else 2, clock=clock)
        for impl in group.impls:
            rows.append(
                {
                    "group": group.name,
                    "task": case.task,
                    "case": case.label,
                    "shape": list(case.shape),
                    "regime": case.regime,
                    "impl": impl.name,
                    "library": impl.library,
                    "role": "ours"
                    if impl.library == "iou_lib"
                    else impl.library
                    if impl.library == "baseline"
                    else "peer",
                    "value": values[impl.name],
                    "checked_against": impl.equals,
                    "backward": impl.backward,
                    **summary(times[impl.name]),
                    "peak_mb": peak_memory_bytes(calls[impl.name], device) / 2**20,
                    "page_faults": page_faults_per_call(calls[impl.name], device, 2 * rounds),
                }
            )
    return report.add_ratios(rows)


def train_share(device: torch.device, quick: bool, rounds: int, clock: str) -> dict:
    """The loss's share of one training step (forward, loss, backward, Adam step) of a small U-Net."""
    b, size, width, depth = (2, 64, 4, 2) if quick else (8, 256, 16, 3)
    try:
        from iou_lib.models import UNet

        model, model_name = (
            UNet(3, 1, width, depth).to(device),
            f"iou_lib.models.UNet(width={width}, depth={depth})",
        )
    except ImportError:  # the library's models are not there: a small conv net of our own
        conv = torch.nn.Conv2d
        model = torch.nn.Sequential(
            conv(3, width, 3, padding=1), torch.nn.ReLU(), conv(width, 1, 3, padding=1)
        )
        model, model_name = model.to(device), f"fallback 2-layer conv net (width={width})"
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(b, 3, size, size, device=device)
    y = blob_masks(b, size, 0.35).squeeze(1).to(device)
    loss_fns = {
        "iou_lib.bce": functional("bce"),
        "iou_lib.soft_iou": functools.partial(soft_iou, per_image=True),
        "iou_lib.lovasz_hinge": lovasz_hinge,
        "baseline.lovasz_hinge_loop": lovasz_hinge_loop,
    }

    def step(loss_fn) -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    step_times = time_interleaved(
        {n: functools.partial(step, f) for n, f in loss_fns.items()}, device, rounds, 1, 1, clock
    )
    with torch.no_grad():
        logits = model(x)
    loss_times = time_interleaved(
        {n: loss_call(f, logits, y, True) for n, f in loss_fns.items()}, device, rounds, 3, 1, clock
    )
    out = {"model": model_name, "input": [b, 3, size, size], "losses": {}}
    for name in loss_fns:
        step_ms, loss_ms = summary(step_times[name])["median_ms"], summary(loss_times[name])["median_ms"]
        out["losses"][name] = {"step_ms": step_ms, "loss_ms": loss_ms, "share": loss_ms / step_ms}
    return out


def profiles(device: torch.device, quick: bool) -> dict[str, list[dict]]:
    """Top ops by self CPU time (forward + backward) of our Lovász losses and the binary soft IoU."""
    shapes = QUICK if quick else FULL
    soft_iou_per_image = functools.partial(soft_iou, per_image=True)
    runs = [(t, f, r) for t, f in (("binary", lovasz_hinge), ("multiclass", lovasz_softmax)) for r in REGIMES]
    runs.append(("binary", soft_iou_per_image, "random"))
    out = {}
    for task, fn, regime in runs:
        case = Case(task, shapes[task][0], regime)
        logits, target = make_inputs(case, device)
        name = getattr(fn, "__name__", None) or fn.func.__name__ + "[per_image]"
        out[f"iou_lib.{name} {case.label}"] = top_ops(loss_call(fn, logits, target, True), 2 if quick else 10)
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, one round: a smoke run")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="output folder")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5, quick 1)")
    parser.add_argument("--reps", type=int, default=None, help="timed calls per round (default 2, quick 1)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--no-train", action="store_true", help="skip the training-step share")
    parser.add_argument(
        "--snapshot",
        action="store_true",
        help="also write the run into benchmarks/RESULTS.md and the README's Benchmarks table",
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="CPU timer: wall clock (default) or process CPU time (steadier on a shared machine, 1 thread)",
    )
    args = parser.parse_args(argv)
    if args.snapshot and args.quick:
        parser.error("--snapshot writes the committed results: run it without --quick")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    rounds = args.rounds or (1 if args.quick else 5)
    reps = args.reps or (1 if args.quick else 2)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        peers = peer_status()
        load_before = os.getloadavg()
        shapes = QUICK if args.quick else FULL
        rows = []
        for task, task_shapes in shapes.items():
            extra = CUDA_EXTRA[task] if device.type == "cuda" and not args.quick else []
            groups = groups_for(task, peers, n_classes=task_shapes[0][1])
            for shape in task_shapes + extra:
                for regime in REGIMES:
                    case = Case(task, shape, regime)
                    print(f"[benchmarks] {case.task} {case.label}", flush=True)
                    rows += run_case(case, groups, device, rounds, reps, args.clock)
        results = {
            "meta": {
                "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "command": " ".join(["python -m benchmarks", *(sys.argv[1:] if argv is None else argv)]),
                "quick": args.quick,
                "device": str(device),
                "device_name": torch.cuda.get_device_name(device)
                if device.type == "cuda"
                else platform.processor() or platform.machine(),
                "torch": torch.__version__,
                "threads": args.threads,
                "clock": "cuda events" if device.type == "cuda" else args.clock,
                "cpu_count": os.cpu_count(),
                "rounds": rounds,
                "reps": reps,
                "load_before": load_before,
                "peers": peers,
            },
            "rows": rows,
            "train_share": None
            if args.no_train
            else train_share(device, args.quick, max(rounds, 2), args.clock),
            "profiles": profiles(device, args.quick),
        }
        results["meta"]["load_after"] = os.getloadavg()
        results["targets"] = report.evaluate_targets(rows, quick=args.quick)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=1))
        (args.out / "results.md").write_text(report.markdown(results))
        print(f"[benchmarks] wrote {args.out / 'results.md'} and results.json", flush=True)
        if args.snapshot:
            snapshot.write(results, SNAPSHOT, README)
            print(f"[benchmarks] wrote {SNAPSHOT} and the Benchmarks table of {README}", flush=True)
    finally:
        torch.set_num_threads(previous_threads)
    return 0
